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
    ImageError::BadRequest(format!(
        "Provided object does not match schema 'image': {reason}"
    ))
}

/// Refuses keys a client may not write, with Glance's 403 messages.
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
        return Err(ImageError::BadRequest(format!(
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

/// One change of a `PATCH`, its pointer already decoded to a single property name.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub op: PatchOp,
    pub key: String,
    pub value: Option<Value>,
    /// Draft-4 (`application/openstack-images-v2.0-json-patch`) semantics: `add` of
    /// an existing property is a conflict.
    pub draft4: bool,
}

/// Parses a JSON-patch document in the v2.1 (RFC 6902) or v2.0 (draft 4) syntax.
pub fn parse_changes(doc: &Value, draft4: bool) -> Result<Vec<Change>, ImageError> {
    let bad = |m: &str| ImageError::BadRequest(m.to_string());
    let list = doc
        .as_array()
        .ok_or_else(|| bad("Request body must be a JSON array of operation objects."))?;
    let mut changes = Vec::with_capacity(list.len());
    for raw in list {
        let obj = raw
            .as_object()
            .ok_or_else(|| bad("Operations must be JSON objects."))?;
        let (op, path) = if draft4 {
            let found: Vec<_> = [
                ("add", PatchOp::Add),
                ("replace", PatchOp::Replace),
                ("remove", PatchOp::Remove),
            ]
            .into_iter()
            .filter_map(|(name, op)| obj.get(name).map(|p| (op, p)))
            .collect();
            match found.as_slice() {
                [(op, path)] => (*op, *path),
                [] => {
                    return Err(bad(
                        "Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.",
                    ));
                }
                _ => {
                    return Err(bad(
                        "Operation objects must contain only one member named \"add\", \"remove\", or \"replace\".",
                    ));
                }
            }
        } else {
            let op = match obj.get("op").and_then(Value::as_str) {
                Some("add") => PatchOp::Add,
                Some("replace") => PatchOp::Replace,
                Some("remove") => PatchOp::Remove,
                Some(other) => {
                    return Err(bad(&format!(
                        "Invalid operation: `{other}`: Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace."
                    )));
                }
                None => {
                    return Err(bad(
                        "Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.",
                    ));
                }
            };
            let path = obj
                .get("path")
                .ok_or_else(|| bad("Unable to find 'path' in JSON Schema change"))?;
            (op, path)
        };
        let path = path
            .as_str()
            .ok_or_else(|| bad("Pointer must be a string"))?;
        let key = decode_pointer(path)?;
        let value = match op {
            PatchOp::Remove => None,
            _ => Some(
                obj.get("value")
                    .cloned()
                    .ok_or_else(|| bad("Operation \"add\" requires a member named \"value\"."))?,
            ),
        };
        changes.push(Change {
            op,
            key,
            value,
            draft4,
        });
    }
    Ok(changes)
}

/// Decodes a one-token JSON pointer (`/name`, `/a~1b`) to its property name.
fn decode_pointer(path: &str) -> Result<String, ImageError> {
    let invalid =
        || ImageError::BadRequest(format!("Invalid JSON pointer for this resource: '{path}'"));
    let Some(token) = path.strip_prefix('/') else {
        return Err(ImageError::BadRequest(format!(
            "Pointer `{path}` does not start with \"/\"."
        )));
    };
    if token.is_empty() || token.contains('/') {
        return Err(invalid());
    }
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => {
                    return Err(ImageError::BadRequest(format!(
                        "Pointer `{path}` contains \"~\" not part of a recognized escape sequence."
                    )));
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Applies changes to an image in memory, all or nothing, with Glance's rules.
pub fn apply_changes(image: &mut Image, changes: &[Change]) -> Result<(), ImageError> {
    for change in changes {
        let kind = check_writable(&change.key)?;
        if kind == KeyKind::Locations {
            return Err(ImageError::Forbidden(
                "It's not allowed to update locations if locations are invisible.".into(),
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
        let err = |doc| apply_changes(&mut image(), &changes(doc)).unwrap_err();
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
            ImageError::BadRequest(_)
        ));
        assert!(matches!(
            err(json!([{"op":"replace","path":"/min_ram","value":-1}])),
            ImageError::BadRequest(_)
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
}
