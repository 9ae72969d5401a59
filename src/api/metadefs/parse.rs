//! Metadef request bodies and queries, checked against Glance's schemas and
//! limits: a bad one is a 400 (a read-only attribute a 403) in Glance's words.

use glance_layers::ImageError;
use glance_layers::metadef::{
    NamespaceFields, NamespaceQuery, NamespaceSortKey, NamespaceVisibility, NewAssociation,
    NewNamespace, NewObject, NewProperty,
};
use serde_json::{Map, Value};

use crate::api::parse::PageLimits;

type Result<T> = std::result::Result<T, ImageError>;

/// jsonschema's refusal, as Glance words it.
fn mismatch(schema: &str, reason: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid(format!(
        "Provided object does not match schema '{schema}': {reason}"
    ))
}

/// The property types Glance's schema allows.
const PROPERTY_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// The keys of a property definition Glance keeps (its `PropertyType`).
const PROPERTY_KEYS: [&str; 18] = [
    "type",
    "title",
    "description",
    "operators",
    "default",
    "readonly",
    "minimum",
    "maximum",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "confidential",
    "items",
    "uniqueItems",
    "minItems",
    "maxItems",
    "additionalItems",
];

fn object<'a>(body: &'a Value, schema: &str) -> Result<&'a Map<String, Value>> {
    body.as_object()
        .ok_or_else(|| mismatch(schema, format!("{body} is not of type 'object'")))
}

/// An optional string of at most `max` characters.
fn opt_str(o: &Map<String, Value>, key: &str, max: usize, schema: &str) -> Result<Option<String>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => {
            Err(mismatch(schema, format!("'{s}' is too long")))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(mismatch(schema, format!("{other} is not of type 'string'"))),
    }
}

fn req_str(o: &Map<String, Value>, key: &str, max: usize, schema: &str) -> Result<String> {
    opt_str(o, key, max, schema)?
        .ok_or_else(|| mismatch(schema, format!("'{key}' is a required property")))
}

/// Glance's deserializer refuses what only the server writes.
fn check_read_only(o: &Map<String, Value>) -> Result<()> {
    for key in ["self", "schema", "created_at", "updated_at"] {
        if o.contains_key(key) {
            return Err(ImageError::Forbidden(format!(
                "Attribute '{key}' is read-only."
            )));
        }
    }
    Ok(())
}

/// The namespace's own fields, as create and update take them.
pub fn namespace_fields(body: &Value) -> Result<NamespaceFields> {
    const S: &str = "namespace";
    let o = object(body, S)?;
    check_read_only(o)?;
    let visibility = match o.get("visibility") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) => Some(
            NamespaceVisibility::parse(v)
                .ok_or_else(|| mismatch(S, format!("'{v}' is not one of ['public', 'private']")))?,
        ),
        Some(other) => return Err(mismatch(S, format!("{other} is not of type 'string'"))),
    };
    let protected = match o.get("protected") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(mismatch(S, format!("{other} is not of type 'boolean'"))),
    };
    Ok(NamespaceFields {
        namespace: req_str(o, "namespace", 80, S)?,
        display_name: opt_str(o, "display_name", 80, S)?,
        description: opt_str(o, "description", 500, S)?,
        visibility,
        protected,
        owner: opt_str(o, "owner", 255, S)?,
    })
}

/// `POST /v2/metadefs/namespaces`.
pub fn new_namespace(body: &Value) -> Result<NewNamespace> {
    const S: &str = "namespace";
    let fields = namespace_fields(body)?;
    let o = object(body, S)?;
    let list = |key: &str| -> Result<Vec<Value>> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(other) => Err(mismatch(S, format!("{other} is not of type 'array'"))),
        }
    };
    let resource_type_associations = list("resource_type_associations")?
        .iter()
        .map(|a| association(a, S))
        .collect::<Result<_>>()?;
    let objects = list("objects")?
        .iter()
        .map(|v| new_object_in(v, S))
        .collect::<Result<_>>()?;
    let tags = list("tags")?
        .iter()
        .map(|t| tag_name(t, S))
        .collect::<Result<_>>()?;
    let properties = match o.get("properties") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(name, schema)| property(name, schema, S))
            .collect::<Result<_>>()?,
        Some(other) => return Err(mismatch(S, format!("{other} is not of type 'object'"))),
    };
    Ok(NewNamespace {
        fields,
        resource_type_associations,
        properties,
        objects,
        tags,
    })
}

/// A resource type association (`POST …/resource_types`, or in a namespace).
pub fn association(body: &Value, schema: &str) -> Result<NewAssociation> {
    let o = object(body, schema)?;
    Ok(NewAssociation {
        name: req_str(o, "name", 80, schema)?,
        prefix: opt_str(o, "prefix", 80, schema)?,
        properties_target: opt_str(o, "properties_target", 80, schema)?,
    })
}

/// One property definition named `name`: `title` and `type` are required.
fn property(name: &str, body: &Value, schema: &str) -> Result<NewProperty> {
    if name.chars().count() > 80 {
        return Err(mismatch(schema, format!("'{name}' is too long")));
    }
    let o = object(body, schema)?;
    req_str(o, "title", usize::MAX, schema)?;
    match o.get("type") {
        Some(Value::String(t)) if PROPERTY_TYPES.contains(&t.as_str()) => {}
        // Glance's schema lists `None` among the types.
        Some(Value::Null) => {}
        Some(other @ Value::String(_)) => {
            return Err(mismatch(
                schema,
                format!(
                    "{other} is not one of ['array', 'boolean', 'integer', 'number', 'object', 'string', None]"
                ),
            ));
        }
        Some(other) => return Err(mismatch(schema, format!("{other} is not of type 'string'"))),
        None => return Err(mismatch(schema, "'type' is a required property")),
    }
    let kept: Map<String, Value> = PROPERTY_KEYS
        .iter()
        .filter_map(|k| Some((k.to_string(), o.get(*k)?.clone())))
        .filter(|(_, v)| !v.is_null())
        .collect();
    Ok(NewProperty {
        name: name.to_string(),
        schema: kept,
    })
}

/// `POST …/properties` and `PUT …/properties/{name}`: the name is in the body.
pub fn new_property(body: &Value) -> Result<NewProperty> {
    const S: &str = "property";
    let o = object(body, S)?;
    check_read_only(o)?;
    let name = req_str(o, "name", 80, S)?;
    property(&name, body, S)
}

fn new_object_in(body: &Value, schema: &str) -> Result<NewObject> {
    let o = object(body, schema)?;
    check_read_only(o)?;
    let required = match o.get("required") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| mismatch(schema, format!("{v} is not of type 'string'")))
            })
            .collect::<Result<_>>()?,
        Some(other) => return Err(mismatch(schema, format!("{other} is not of type 'array'"))),
    };
    let properties = match o.get("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(name, p)| property(name, p, schema).map(|p| (p.name, Value::Object(p.schema))))
            .collect::<Result<_>>()?,
        Some(other) => return Err(mismatch(schema, format!("{other} is not of type 'object'"))),
    };
    Ok(NewObject {
        name: req_str(o, "name", 80, schema)?,
        description: opt_str(o, "description", usize::MAX, schema)?,
        required,
        properties,
    })
}

/// `POST …/objects` and `PUT …/objects/{name}`.
pub fn new_object(body: &Value) -> Result<NewObject> {
    new_object_in(body, "object")
}

fn tag_name(body: &Value, schema: &str) -> Result<String> {
    let o = object(body, schema)?;
    req_str(o, "name", 255, schema)
}

/// `PUT …/tags/{name}`: the new name.
pub fn tag_update(body: &Value) -> Result<String> {
    let o = object(body, "tag")?;
    check_read_only(o)?;
    tag_name(body, "tag")
}

/// `POST …/tags`: `{"tags": [{"name": …}, …]}`.
pub fn tags(body: &Value) -> Result<Vec<String>> {
    const S: &str = "tags";
    let o = object(body, S)?;
    match o.get("tags") {
        Some(Value::Array(a)) => a.iter().map(|t| tag_name(t, S)).collect(),
        Some(other) => Err(mismatch(S, format!("{other} is not of type 'array'"))),
        None => Err(mismatch(S, "'tags' is a required property")),
    }
}

/// A tag name in a path: Glance's tag schema allows 255 characters.
pub fn path_tag(name: &str) -> Result<()> {
    if name.chars().count() > 255 {
        return Err(mismatch("tag", format!("'{name}' is too long")));
    }
    Ok(())
}

/// `X-Openstack-Append`, read as oslo's `bool_from_string`.
pub fn is_true(header: Option<&str>) -> bool {
    header.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "t" | "true" | "on" | "y" | "yes"
        )
    })
}

/// `GET /v2/metadefs/namespaces` query.
pub fn namespace_query(pairs: &[(String, String)], limits: PageLimits) -> Result<NamespaceQuery> {
    let get = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let limit = match get("limit") {
        None => limits.default,
        Some(l) => {
            let n: i64 = l
                .trim()
                .parse()
                .map_err(|_| ImageError::Invalid("limit param must be an integer".into()))?;
            if n < 0 {
                return Err(ImageError::Invalid("limit param must be positive".into()));
            }
            n as u64
        }
    }
    .min(limits.max);
    let descending = match get("sort_dir").unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        other => {
            return Err(ImageError::Invalid(format!(
                "Invalid sort direction: {other}"
            )));
        }
    };
    let sort_key = match get("sort_key").unwrap_or("created_at") {
        "created_at" => NamespaceSortKey::CreatedAt,
        "updated_at" => NamespaceSortKey::UpdatedAt,
        "namespace" => NamespaceSortKey::Namespace,
        other => return Err(ImageError::Invalid(format!("Invalid sort key: {other}"))),
    };
    let visibility = match get("visibility") {
        None | Some("") => None,
        Some(v) => Some(
            NamespaceVisibility::parse(v)
                .ok_or_else(|| ImageError::Invalid(format!("Invalid visibility value: {v}")))?,
        ),
    };
    let resource_types = get("resource_types")
        .map(|r| {
            r.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(NamespaceQuery {
        limit,
        marker: get("marker").map(str::to_string),
        sort_key,
        descending,
        visibility,
        resource_types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespaces_are_checked_against_glance_limits() {
        let long = "x".repeat(81);
        let e = namespace_fields(&json!({"namespace": long})).unwrap_err();
        assert!(matches!(e, ImageError::Invalid(m) if m.contains("is too long")));
        assert!(matches!(
            namespace_fields(&json!({"display_name": "a"})),
            Err(ImageError::Invalid(m)) if m.contains("'namespace' is a required property")
        ));
        assert!(matches!(
            namespace_fields(&json!({"namespace": "a", "visibility": "shared"})),
            Err(ImageError::Invalid(_))
        ));
        assert!(matches!(
            namespace_fields(&json!({"namespace": "a", "self": "x"})),
            Err(ImageError::Forbidden(m)) if m == "Attribute 'self' is read-only."
        ));
        let ok = new_namespace(&json!({
            "namespace": "a",
            "properties": {"p": {"title": "P", "type": "string", "bogus": 1}},
            "tags": [{"name": "t"}],
        }))
        .unwrap();
        assert_eq!(ok.properties[0].schema.len(), 2, "unknown keys are dropped");
        assert_eq!(ok.tags, ["t"]);
    }

    #[test]
    fn properties_need_a_title_and_a_known_type() {
        assert!(new_property(&json!({"name": "p", "type": "string"})).is_err());
        assert!(new_property(&json!({"name": "p", "title": "P", "type": "blob"})).is_err());
        assert!(new_property(&json!({"name": "p", "title": "P", "type": "integer"})).is_ok());
    }

    #[test]
    fn list_queries_follow_glance() {
        let limits = PageLimits {
            default: 25,
            max: 1000,
        };
        let q = |s: &str| {
            let pairs: Vec<(String, String)> =
                form_urlencoded::parse(s.as_bytes()).into_owned().collect();
            namespace_query(&pairs, limits)
        };
        assert_eq!(q("").unwrap().limit, 25);
        assert_eq!(q("limit=5000").unwrap().limit, 1000);
        assert!(q("limit=-1").is_err());
        assert!(q("sort_dir=up").is_err());
        assert!(q("visibility=community").is_err());
        assert_eq!(
            q("resource_types=OS::Nova::Flavor,OS::Glance::Image")
                .unwrap()
                .resource_types
                .len(),
            2
        );
    }
}
