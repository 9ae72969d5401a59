//! Image attributes and their rules: which may be written, which are read-only or
//! reserved, what values they take, and how JSON-patch changes apply to an image.
//! Shared by create (`POST /v2/images`) and update (`PATCH /v2/images/{id}`).

use serde_json::Value;

use crate::ImageError;
use crate::image::{Image, ImageStatus, Visibility};

/// Glance's default `[image_format] disk_formats`.
pub const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
/// Glance's default `[image_format] container_formats`.
pub const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];

/// Attributes nobody may write.
pub const READ_ONLY: &[&str] = &[
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "size",
    "virtual_size",
    "direct_url",
    "self",
    "file",
    "schema",
    "id",
    "os_hash_algo",
    "os_hash_value",
    "stores",
];
/// Attributes reserved for Glance itself.
pub const RESERVED: &[&str] = &["location", "deleted", "deleted_at"];
/// The namespace of properties Glance sets for itself.
pub const RESERVED_NAMESPACE: &str = "os_glance";

/// What kind of key a property name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    ReadOnly,
    Reserved,
    /// A base attribute a client may write.
    Base,
    /// `locations`, handled by the (not yet built) locations API.
    Locations,
    /// A custom property.
    Extra,
}

pub fn classify(key: &str) -> KeyKind {
    match key {
        k if READ_ONLY.contains(&k) => KeyKind::ReadOnly,
        k if RESERVED.contains(&k) || k.starts_with(RESERVED_NAMESPACE) => KeyKind::Reserved,
        "locations" => KeyKind::Locations,
        "name" | "visibility" | "protected" | "os_hidden" | "min_disk" | "min_ram"
        | "container_format" | "disk_format" | "owner" | "tags" => KeyKind::Base,
        _ => KeyKind::Extra,
    }
}

/// A checked value for one writable attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    Name(Option<String>),
    Visibility(Visibility),
    Protected(bool),
    OsHidden(bool),
    MinDisk(i64),
    MinRam(i64),
    ContainerFormat(Option<String>),
    DiskFormat(Option<String>),
    Owner(Option<String>),
    Tags(Vec<String>),
    Extra(String, String),
}

fn schema_error(reason: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid(format!(
        "Provided object does not match schema 'image': {reason}"
    ))
}

/// Refuses keys a client may not write, with Glance's messages.
pub fn check_writable(key: &str) -> Result<KeyKind, ImageError> {
    match classify(key) {
        KeyKind::ReadOnly => Err(ImageError::Forbidden(format!(
            "Attribute '{key}' is read-only."
        ))),
        KeyKind::Reserved => Err(ImageError::Forbidden(format!(
            "Attribute '{key}' is reserved."
        ))),
        kind => Ok(kind),
    }
}

/// Checks `value` against the image schema for `key` (already known writable).
pub fn parse_attribute(key: &str, value: &Value) -> Result<Attribute, ImageError> {
    fn opt_string(key: &str, v: &Value, max: usize) -> Result<Option<String>, ImageError> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) if s.chars().count() <= max => Ok(Some(s.clone())),
            Value::String(_) => Err(schema_error(format!("'{key}' is too long"))),
            other => Err(schema_error(format!(
                "{other} is not of type 'null', 'string'"
            ))),
        }
    }
    fn one_of(key: &str, v: &Value, allowed: &[&str]) -> Result<Option<String>, ImageError> {
        match opt_string(key, v, 255)? {
            Some(s) if !allowed.contains(&s.as_str()) => {
                Err(schema_error(format!("'{s}' is not one of {allowed:?}")))
            }
            other => Ok(other),
        }
    }
    fn boolean(v: &Value) -> Result<bool, ImageError> {
        v.as_bool()
            .ok_or_else(|| schema_error(format!("{v} is not of type 'boolean'")))
    }
    fn non_negative(v: &Value) -> Result<i64, ImageError> {
        match v.as_i64() {
            Some(n) if n >= 0 => Ok(n),
            Some(n) => Err(schema_error(format!("{n} is less than the minimum of 0"))),
            None => Err(schema_error(format!("{v} is not of type 'integer'"))),
        }
    }
    Ok(match key {
        "name" => Attribute::Name(opt_string(key, value, 255)?),
        "visibility" => {
            let s = value.as_str().unwrap_or_default();
            Attribute::Visibility(s.parse().map_err(|_| {
                schema_error(format!(
                    "{value} is not one of ['community', 'public', 'private', 'shared']"
                ))
            })?)
        }
        "protected" => Attribute::Protected(boolean(value)?),
        "os_hidden" => Attribute::OsHidden(boolean(value)?),
        "min_disk" => Attribute::MinDisk(non_negative(value)?),
        "min_ram" => Attribute::MinRam(non_negative(value)?),
        "container_format" => Attribute::ContainerFormat(one_of(key, value, CONTAINER_FORMATS)?),
        "disk_format" => Attribute::DiskFormat(one_of(key, value, DISK_FORMATS)?),
        "owner" => Attribute::Owner(opt_string(key, value, 255)?),
        "tags" => {
            let items = value
                .as_array()
                .ok_or_else(|| schema_error(format!("{value} is not of type 'array'")))?;
            let mut tags = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(t) => tags.push(check_tag(t)?.to_string()),
                    None => return Err(schema_error(format!("{item} is not of type 'string'"))),
                }
            }
            Attribute::Tags(tags)
        }
        _ => {
            if key.chars().count() > 255 {
                return Err(schema_error(format!(
                    "'{key}' does not match any of the regexes"
                )));
            }
            match value {
                Value::String(s) => Attribute::Extra(key.to_string(), s.clone()),
                other => {
                    return Err(schema_error(format!("{other} is not of type 'string'")));
                }
            }
        }
    })
}

/// Tags are strings of at most 255 characters.
pub fn check_tag(tag: &str) -> Result<&str, ImageError> {
    if tag.chars().count() > 255 {
        return Err(ImageError::Invalid(format!(
            "Provided object does not match schema 'image': '{tag}' is too long"
        )));
    }
    Ok(tag)
}

/// Writes a checked attribute into the image, enforcing the rules that depend on
/// the image's state.
pub fn set_attribute(image: &mut Image, attr: Attribute) -> Result<(), ImageError> {
    let formats_frozen = !matches!(image.status, ImageStatus::Queued | ImageStatus::Importing);
    match attr {
        Attribute::Name(v) => image.name = v,
        Attribute::Visibility(v) => image.visibility = v,
        Attribute::Protected(v) => image.protected = v,
        Attribute::OsHidden(v) => image.os_hidden = v,
        Attribute::MinDisk(v) => image.min_disk = v,
        Attribute::MinRam(v) => image.min_ram = v,
        Attribute::ContainerFormat(v) => {
            if formats_frozen && v != image.container_format {
                return Err(ImageError::Forbidden(
                    "Attribute container_format can be only replaced for a queued image.".into(),
                ));
            }
            image.container_format = v
        }
        Attribute::DiskFormat(v) => {
            if formats_frozen && v != image.disk_format {
                return Err(ImageError::Forbidden(
                    "Attribute disk_format can be only replaced for a queued image.".into(),
                ));
            }
            image.disk_format = v
        }
        Attribute::Owner(v) => image.owner = v,
        Attribute::Tags(v) => image.tags = v.into_iter().collect(),
        Attribute::Extra(k, v) => {
            image.properties.insert(k, v);
        }
    }
    Ok(())
}

/// One JSON-patch operation Glance accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOp {
    Add,
    Replace,
    Remove,
}

/// One change of a `PATCH`, its pointer already decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub op: PatchOp,
    /// The property: the pointer's first token (`""` for the pointer `/`).
    pub key: String,
    /// The second token of `/locations/N`, which `add` and `remove` take.
    pub position: Option<String>,
    pub value: Option<Value>,
    /// Draft-4 (`application/openstack-images-v2.0-json-patch`) semantics: `add` of
    /// an existing property is a conflict.
    pub draft4: bool,
}

impl PatchOp {
    fn name(self) -> &'static str {
        match self {
            PatchOp::Add => "add",
            PatchOp::Replace => "replace",
            PatchOp::Remove => "remove",
        }
    }
}

const OPS: [PatchOp; 3] = [PatchOp::Add, PatchOp::Remove, PatchOp::Replace];

/// A JSON value as Python's `str()` prints it, for messages that quote one.
fn python_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses a JSON-patch document in the v2.1 (RFC 6902) or v2.0 (draft 4) syntax,
/// checking each change as Glance's deserializer does before the image is read:
/// operation, pointer, path depth, value present, attribute writable, value valid.
pub fn parse_changes(doc: &Value, draft4: bool) -> Result<Vec<Change>, ImageError> {
    let bad = |m: &str| ImageError::Invalid(m.to_string());
    let list = doc
        .as_array()
        .ok_or_else(|| bad("Request body must be a JSON array of operation objects."))?;
    let mut changes = Vec::with_capacity(list.len());
    for raw in list {
        let obj = raw
            .as_object()
            .ok_or_else(|| bad("Operations must be JSON objects."))?;
        let (op, path) = if draft4 {
            let found: Vec<_> = OPS
                .into_iter()
                .filter_map(|op| obj.get(op.name()).map(|p| (op, p)))
                .collect();
            match found.as_slice() {
                [(op, path)] => (*op, *path),
                [] => {
                    return Err(bad(
                        "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
                    ));
                }
                _ => {
                    return Err(bad(
                        "Operation objects must contain only one member named \"add\", \"remove\", or \"replace\".",
                    ));
                }
            }
        } else {
            let op = match obj.get("op") {
                None | Some(Value::Null) => {
                    return Err(bad(
                        "Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.",
                    ));
                }
                Some(v) => OPS
                    .into_iter()
                    .find(|op| v.as_str() == Some(op.name()))
                    .ok_or_else(|| {
                        bad(&format!(
                            "Invalid operation: `{}`. It must be one of the following: add, remove, replace.",
                            python_str(v)
                        ))
                    })?,
            };
            let path = obj
                .get("path")
                .ok_or_else(|| bad("Unable to find 'path' in JSON Schema change"))?;
            (op, path)
        };
        // Glance fails with a 500 on a pointer that is not a string.
        let path = path
            .as_str()
            .ok_or_else(|| bad("Pointer must be a string"))?;
        let mut tokens = decode_pointer(path)?;
        // One token, except `/locations/N` for add and remove.
        let depth = if tokens[0] == "locations" && op != PatchOp::Replace {
            2
        } else {
            1
        };
        if tokens.len() != depth {
            return Err(bad(&format!(
                "Invalid JSON pointer for this resource: '/{}'",
                tokens.join("/")
            )));
        }
        let position = if depth == 2 { tokens.pop() } else { None };
        let key = tokens.pop().unwrap_or_default();
        let value = match op {
            PatchOp::Remove => None,
            _ => Some(obj.get("value").cloned().ok_or_else(|| {
                bad(&format!(
                    "Operation \"{}\" requires a member named \"value\".",
                    op.name()
                ))
            })?),
        };
        check_change(&key, position.is_some(), value.as_ref())?;
        changes.push(Change {
            op,
            key,
            position,
            value,
            draft4,
        });
    }
    Ok(changes)
}

/// Glance's `_validate_change`: the attribute may be written, and the value fits
/// the image schema (an element of the array, for `/locations/N`).
fn check_change(key: &str, element: bool, value: Option<&Value>) -> Result<(), ImageError> {
    let kind = check_writable(key)?;
    let Some(value) = value else { return Ok(()) };
    match kind {
        KeyKind::Locations if element => check_locations(std::slice::from_ref(value)),
        KeyKind::Locations => match value.as_array() {
            Some(items) => check_locations(items),
            None => Err(schema_error(format!(
                "{} is not of type 'array'",
                python_str(value)
            ))),
        },
        _ => parse_attribute(key, value).map(|_| ()),
    }
}

/// Items of the image schema's `locations`: `{"url": ..., "metadata": {...}}`,
/// optionally with `validation_data`.
fn check_locations(items: &[Value]) -> Result<(), ImageError> {
    for item in items {
        let obj = item
            .as_object()
            .ok_or_else(|| schema_error(format!("{} is not of type 'object'", python_str(item))))?;
        for required in ["url", "metadata"] {
            if !obj.contains_key(required) {
                return Err(schema_error(format!("'{required}' is a required property")));
            }
        }
        match &obj["url"] {
            Value::String(u) if u.chars().count() <= 255 => {}
            Value::String(u) => return Err(schema_error(format!("'{u}' is too long"))),
            other => {
                return Err(schema_error(format!(
                    "{} is not of type 'string'",
                    python_str(other)
                )));
            }
        }
        if !obj["metadata"].is_object() {
            return Err(schema_error(format!(
                "{} is not of type 'object'",
                python_str(&obj["metadata"])
            )));
        }
        if let Some(data) = obj.get("validation_data") {
            check_validation_data(data)?;
        }
    }
    Ok(())
}

fn check_validation_data(data: &Value) -> Result<(), ImageError> {
    let obj = data
        .as_object()
        .ok_or_else(|| schema_error(format!("{} is not of type 'object'", python_str(data))))?;
    for key in obj.keys() {
        if !["checksum", "os_hash_algo", "os_hash_value"].contains(&key.as_str()) {
            return Err(schema_error(format!(
                "Additional properties are not allowed ('{key}' was unexpected)"
            )));
        }
    }
    for required in ["os_hash_algo", "os_hash_value"] {
        if !obj.contains_key(required) {
            return Err(schema_error(format!("'{required}' is a required property")));
        }
    }
    for (key, min, max) in [
        ("checksum", 32, 32),
        ("os_hash_algo", 0, 64),
        ("os_hash_value", 0, 128),
    ] {
        match obj.get(key) {
            None => {}
            Some(Value::String(s)) if (min..=max).contains(&s.chars().count()) => {}
            Some(Value::String(s)) => {
                return Err(schema_error(format!("'{s}' is not a valid {key}")));
            }
            Some(other) => {
                return Err(schema_error(format!(
                    "{} is not of type 'string'",
                    python_str(other)
                )));
            }
        }
    }
    Ok(())
}

/// Python's `str.isspace`, which Glance's `strip()` and `\s` go by.
fn python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Decodes a JSON pointer into its tokens as Glance does: it must start with `/`,
/// may not hold an empty token (`/a//b`, `/a/`) save that any number of leading
/// slashes counts as one, and `~` only in `~0` and `~1`. Each token is trimmed
/// of whitespace, so `/` is the one token `""` and `/ name ` is `name`.
fn decode_pointer(path: &str) -> Result<Vec<String>, ImageError> {
    let refuse = |why: &str| ImageError::Invalid(format!("Pointer `{path}` {why}"));
    let Some(after) = path.strip_prefix('/') else {
        return Err(refuse("does not start with \"/\"."));
    };
    // Glance's `/\s*?/` on all but the first character.
    let mut last_slash = false;
    for c in after.chars() {
        if c == '/' && last_slash {
            return Err(refuse("contains adjacent \"/\"."));
        }
        if c == '/' {
            last_slash = true;
        } else if !python_space(c) {
            last_slash = false;
        }
    }
    if !after.is_empty() && path.ends_with('/') {
        return Err(refuse("end with \"/\"."));
    }
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.peek(), Some('0' | '1')) {
            return Err(refuse(
                "contains \"~\" not part of a recognized escape sequence.",
            ));
        }
    }
    Ok(path
        .trim_start_matches('/')
        .split('/')
        .map(|token| {
            token
                .replace("~1", "/")
                .replace("~0", "~")
                .trim_matches(python_space)
                .to_string()
        })
        .collect())
}

/// Applies changes to an image in memory, all or nothing, with Glance's rules.
pub fn apply_changes(image: &mut Image, changes: &[Change]) -> Result<(), ImageError> {
    for change in changes {
        let kind = check_writable(&change.key)?;
        if kind == KeyKind::Locations {
            // Locations are not shown (`show_multiple_locations` is off), so
            // they may not be changed either.
            let empty = change
                .value
                .as_ref()
                .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty));
            return Err(ImageError::Forbidden(
                match change.op {
                    PatchOp::Replace if empty => "Cannot set locations to empty list.",
                    PatchOp::Replace => {
                        "It's not allowed to update locations if locations are invisible."
                    }
                    PatchOp::Add => "It's not allowed to add locations if locations are invisible.",
                    PatchOp::Remove => {
                        "It's not allowed to remove locations if locations are invisible."
                    }
                }
                .into(),
            ));
        }
        let is_base = kind == KeyKind::Base;
        let exists = is_base || image.properties.contains_key(&change.key);
        match change.op {
            PatchOp::Add | PatchOp::Replace => {
                if change.op == PatchOp::Add && change.draft4 && exists {
                    return Err(ImageError::Conflict(format!(
                        "Property {} already present.",
                        change.key
                    )));
                }
                if change.op == PatchOp::Replace && !exists {
                    return Err(ImageError::Conflict(format!(
                        "Property {} does not exist.",
                        change.key
                    )));
                }
                let value = change.value.as_ref().unwrap_or(&Value::Null);
                let attr = parse_attribute(&change.key, value)?;
                set_attribute(image, attr)?;
            }
            PatchOp::Remove => {
                if is_base {
                    return Err(ImageError::Forbidden(format!(
                        "Property {} may not be removed.",
                        change.key
                    )));
                }
                if image.properties.remove(&change.key).is_none() {
                    return Err(ImageError::Conflict(format!(
                        "Property {} does not exist.",
                        change.key
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image() -> Image {
        Image::new("i".into(), chrono::Utc::now())
    }

    fn changes(doc: Value) -> Vec<Change> {
        parse_changes(&doc, false).unwrap()
    }

    #[test]
    fn add_replace_remove_extra_properties() {
        let mut img = image();
        apply_changes(
            &mut img,
            &changes(json!([{"op":"add","path":"/foo","value":"1"}])),
        )
        .unwrap();
        apply_changes(
            &mut img,
            &changes(json!([{"op":"add","path":"/foo","value":"2"}])),
        )
        .unwrap();
        assert_eq!(img.properties["foo"], "2");
        apply_changes(
            &mut img,
            &changes(json!([{"op":"replace","path":"/foo","value":"3"}])),
        )
        .unwrap();
        apply_changes(&mut img, &changes(json!([{"op":"remove","path":"/foo"}]))).unwrap();
        assert!(img.properties.is_empty());
    }

    #[test]
    fn glance_status_codes_for_bad_changes() {
        let mut img = image();
        // Refused when parsed (as Glance's deserializer does) or when applied.
        let err = |doc| {
            parse_changes(&doc, false)
                .and_then(|c| apply_changes(&mut image(), &c))
                .unwrap_err()
        };
        assert!(matches!(
            err(json!([{"op":"replace","path":"/nope","value":"x"}])),
            ImageError::Conflict(_)
        ));
        assert!(matches!(
            err(json!([{"op":"remove","path":"/nope"}])),
            ImageError::Conflict(_)
        ));
        assert!(matches!(
            err(json!([{"op":"remove","path":"/name"}])),
            ImageError::Forbidden(_)
        ));
        assert!(matches!(
            err(json!([{"op":"replace","path":"/status","value":"active"}])),
            ImageError::Forbidden(_)
        ));
        assert!(matches!(
            err(json!([{"op":"add","path":"/os_glance_x","value":"y"}])),
            ImageError::Forbidden(_)
        ));
        assert!(matches!(
            err(json!([{"op":"add","path":"/foo","value":5}])),
            ImageError::Invalid(_)
        ));
        assert!(matches!(
            err(json!([{"op":"replace","path":"/min_ram","value":-1}])),
            ImageError::Invalid(_)
        ));
        assert!(parse_changes(&json!([{"op":"test","path":"/name","value":"x"}]), false).is_err());
        assert!(
            parse_changes(&json!([{"op":"replace","path":"name","value":"x"}]), false).is_err()
        );
        assert!(
            parse_changes(&json!([{"op":"replace","path":"/a/b","value":"x"}]), false).is_err()
        );
        assert!(parse_changes(&json!({}), false).is_err());
        // nothing applied from a failed document
        let doc =
            changes(json!([{"op":"add","path":"/a","value":"1"},{"op":"remove","path":"/zz"}]));
        let before = img.clone();
        let mut copy = img.clone();
        assert!(apply_changes(&mut copy, &doc).is_err());
        img = before;
        assert!(img.properties.is_empty());
    }

    #[test]
    fn formats_freeze_once_data_arrives() {
        let mut img = image();
        img.status = ImageStatus::Active;
        img.disk_format = Some("raw".into());
        let doc = changes(json!([{"op":"replace","path":"/disk_format","value":"qcow2"}]));
        assert!(matches!(
            apply_changes(&mut img, &doc),
            Err(ImageError::Forbidden(_))
        ));
    }

    #[test]
    fn draft4_syntax_and_escapes() {
        let doc = parse_changes(
            &json!([{"replace":"/name","value":"old"}, {"add":"/a~1b~0c","value":"v"}]),
            true,
        )
        .unwrap();
        assert_eq!(doc[1].key, "a/b~c");
        let mut img = image();
        apply_changes(&mut img, &doc).unwrap();
        assert_eq!(img.name.as_deref(), Some("old"));
        let dup = parse_changes(&json!([{"add":"/name","value":"x"}]), true).unwrap();
        assert!(matches!(
            apply_changes(&mut img, &dup),
            Err(ImageError::Conflict(_))
        ));
    }

    fn parse_err(path: &str) -> String {
        match parse_changes(&json!([{"op": "add", "path": path, "value": "v"}]), false) {
            Err(ImageError::Invalid(m)) => m,
            other => panic!("{path}: {other:?}"),
        }
    }

    fn key(path: &str) -> String {
        let doc = json!([{"op": "add", "path": path, "value": "v"}]);
        parse_changes(&doc, false).unwrap().remove(0).key
    }

    #[test]
    fn the_root_pointer_is_the_property_named_empty() {
        // As Glance: `/` decodes to the one token "", a custom property like any other.
        assert_eq!(key("/"), "");
        let mut img = image();
        let doc = |v: Value| parse_changes(&v, false).unwrap();
        for op in [
            json!([{"op": "replace", "path": "/", "value": "x"}]),
            json!([{"op": "remove", "path": "/"}]),
        ] {
            assert_eq!(
                apply_changes(&mut img, &doc(op)),
                Err(ImageError::Conflict("Property  does not exist.".into()))
            );
        }
        assert!(matches!(
            parse_changes(&json!([{"op": "add", "path": "/", "value": 5}]), false),
            Err(ImageError::Invalid(_))
        ));
        apply_changes(
            &mut img,
            &doc(json!([{"op": "add", "path": "/", "value": "x"}])),
        )
        .unwrap();
        assert_eq!(img.properties[""], "x");
        apply_changes(
            &mut img,
            &doc(json!([{"op": "replace", "path": "/", "value": "y"}])),
        )
        .unwrap();
        assert_eq!(img.properties[""], "y");
        apply_changes(&mut img, &doc(json!([{"op": "remove", "path": "/"}]))).unwrap();
        assert!(img.properties.is_empty());
        let draft4 = parse_changes(&json!([{"add": "/", "value": "x"}]), true).unwrap();
        assert_eq!(draft4[0].key, "");
    }

    #[test]
    fn pointers_decode_as_glance_decodes_them() {
        // Leading slashes count as one; tokens are trimmed of whitespace.
        assert_eq!(key("//a"), "a");
        assert_eq!(key("/ b "), "b");
        assert_eq!(key("/ "), "");
        assert_eq!(key("/a~1b~0c~01"), "a/b~c~1");
        assert_eq!(
            parse_err("/ /a"),
            "Invalid JSON pointer for this resource: '//a'"
        );
        assert_eq!(
            parse_err("/a//b"),
            "Pointer `/a//b` contains adjacent \"/\"."
        );
        assert_eq!(
            parse_err("/a/ /b"),
            "Pointer `/a/ /b` contains adjacent \"/\"."
        );
        assert_eq!(parse_err("/a/"), "Pointer `/a/` end with \"/\".");
        assert_eq!(parse_err("//"), "Pointer `//` end with \"/\".");
        assert_eq!(
            parse_err("/a~2"),
            "Pointer `/a~2` contains \"~\" not part of a recognized escape sequence."
        );
        assert_eq!(
            parse_err("/a~"),
            "Pointer `/a~` contains \"~\" not part of a recognized escape sequence."
        );
        assert_eq!(parse_err(""), "Pointer `` does not start with \"/\".");
        assert_eq!(parse_err(" /c"), "Pointer ` /c` does not start with \"/\".");
        assert_eq!(
            parse_err("/a/b"),
            "Invalid JSON pointer for this resource: '/a/b'"
        );
    }

    #[test]
    fn locations_take_a_position_for_add_and_remove_only() {
        let parse = |doc: Value| parse_changes(&doc, false);
        let add = parse(json!([{"op": "add", "path": "/locations/0",
            "value": {"url": "http://a", "metadata": {}}}]))
        .unwrap();
        assert_eq!(add[0].position.as_deref(), Some("0"));
        let forbidden = |doc: Value| match apply_changes(&mut image(), &parse(doc).unwrap()) {
            Err(ImageError::Forbidden(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            forbidden(json!([{"op": "remove", "path": "/locations/0"}])),
            "It's not allowed to remove locations if locations are invisible."
        );
        assert_eq!(
            forbidden(json!([{"op": "replace", "path": "/locations", "value": []}])),
            "Cannot set locations to empty list."
        );
        assert!(matches!(
            apply_changes(&mut image(), &add),
            Err(ImageError::Forbidden(_))
        ));
        for doc in [
            json!([{"op": "remove", "path": "/locations"}]),
            json!([{"op": "replace", "path": "/locations/0", "value": []}]),
            json!([{"op": "add", "path": "/locations", "value": {}}]),
            json!([{"op": "add", "path": "/locations/0", "value": "x"}]),
            json!([{"op": "add", "path": "/locations/0", "value": {"url": "u"}}]),
            json!([{"op": "replace", "path": "/locations", "value": null}]),
        ] {
            assert!(
                matches!(parse(doc.clone()), Err(ImageError::Invalid(_))),
                "{doc}"
            );
        }
    }

    #[test]
    fn operations_and_values_with_glance_messages() {
        let msg = |doc: Value, draft4| match parse_changes(&doc, draft4) {
            Err(ImageError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            msg(json!([{"op": "move", "path": "/a"}]), false),
            "Invalid operation: `move`. It must be one of the following: add, remove, replace."
        );
        assert_eq!(
            msg(json!([{"op": true, "path": "/a"}]), false),
            "Invalid operation: `True`. It must be one of the following: add, remove, replace."
        );
        assert_eq!(
            msg(json!([{"op": "replace", "path": "/a"}]), false),
            "Operation \"replace\" requires a member named \"value\"."
        );
        assert_eq!(
            msg(json!([{"path": "/a", "value": "x"}]), true),
            "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\"."
        );
        // Read-only and reserved attributes are refused before the image is read.
        assert!(matches!(
            parse_changes(&json!([{"op": "remove", "path": "/status"}]), false),
            Err(ImageError::Forbidden(_))
        ));
    }
}
