//! Metadef records as Glance's JSON: WSME writes attributes in name order and
//! leaves out the unset ones; times are `isotime`s.

use glance_layers::metadef::{Association, Namespace, Object, Property, ResourceType, Tag};
use serde_json::{Map, Value, json};

use crate::api::parse::quote_plus;
use crate::api::render::isotime;

fn put_opt(m: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        m.insert(key.into(), json!(v));
    }
}

pub fn namespace_href(name: &str) -> String {
    format!("/v2/metadefs/namespaces/{name}")
}

/// A property's schema as shown: keys in name order.
fn property_schema(schema: &Map<String, Value>) -> Value {
    let mut keys: Vec<&String> = schema.keys().collect();
    keys.sort();
    Value::Object(
        keys.into_iter()
            .map(|k| (k.clone(), schema[k].clone()))
            .collect(),
    )
}

fn properties_map(props: &[Property]) -> Value {
    Value::Object(
        props
            .iter()
            .map(|p| (p.name.clone(), property_schema(&p.schema)))
            .collect(),
    )
}

pub fn association(a: &Association) -> Value {
    let mut m = Map::new();
    m.insert("created_at".into(), json!(isotime(a.created_at)));
    m.insert("name".into(), json!(a.name));
    put_opt(&mut m, "prefix", &a.prefix);
    put_opt(&mut m, "properties_target", &a.properties_target);
    m.insert("updated_at".into(), json!(isotime(a.updated_at)));
    Value::Object(m)
}

pub fn associations(list: &[Association]) -> Value {
    json!({ "resource_type_associations": list.iter().map(association).collect::<Vec<_>>() })
}

pub fn resource_types(list: &[ResourceType]) -> Value {
    json!({ "resource_types": list.iter().map(|t| json!({
        "created_at": isotime(t.created_at),
        "name": t.name,
        "updated_at": isotime(t.updated_at),
    })).collect::<Vec<_>>() })
}

/// A namespace, with whatever of its contents it carries.
pub fn namespace(ns: &Namespace) -> Value {
    let mut m = Map::new();
    m.insert("created_at".into(), json!(isotime(ns.created_at)));
    put_opt(&mut m, "description", &ns.description);
    put_opt(&mut m, "display_name", &ns.display_name);
    m.insert("namespace".into(), json!(ns.namespace));
    if !ns.objects.is_empty() {
        m.insert(
            "objects".into(),
            json!(ns.objects.iter().map(object).collect::<Vec<_>>()),
        );
    }
    put_opt(&mut m, "owner", &ns.owner);
    if !ns.properties.is_empty() {
        m.insert("properties".into(), properties_map(&ns.properties));
    }
    m.insert("protected".into(), json!(ns.protected));
    if !ns.resource_type_associations.is_empty() {
        m.insert(
            "resource_type_associations".into(),
            json!(
                ns.resource_type_associations
                    .iter()
                    .map(association)
                    .collect::<Vec<_>>()
            ),
        );
    }
    m.insert("schema".into(), json!("/v2/schemas/metadefs/namespace"));
    m.insert("self".into(), json!(namespace_href(&ns.namespace)));
    if !ns.tags.is_empty() {
        m.insert(
            "tags".into(),
            json!(
                ns.tags
                    .iter()
                    .map(|t| json!({"name": t.name}))
                    .collect::<Vec<_>>()
            ),
        );
    }
    m.insert("updated_at".into(), json!(isotime(ns.updated_at)));
    m.insert("visibility".into(), json!(ns.visibility.as_str()));
    Value::Object(m)
}

/// A page of namespaces with Glance's `first`, `next` and `schema` links;
/// `query` is the request's, less its marker.
pub fn namespaces(list: &[Namespace], limit: u64, query: &[(String, String)]) -> Value {
    let encode = |pairs: &[(String, String)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let base = "/v2/metadefs/namespaces";
    let mut m = Map::new();
    m.insert(
        "namespaces".into(),
        json!(list.iter().map(namespace).collect::<Vec<_>>()),
    );
    let q = encode(query);
    m.insert(
        "first".into(),
        json!(if q.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{q}")
        }),
    );
    m.insert("schema".into(), json!("/v2/schemas/metadefs/namespaces"));
    if let Some(last) = list
        .last()
        .filter(|_| list.len() as u64 == limit && limit > 0)
    {
        let mut next = query.to_vec();
        next.push(("marker".into(), last.namespace.clone()));
        m.insert("next".into(), json!(format!("{base}?{}", encode(&next))));
    }
    Value::Object(m)
}

pub fn property(p: &Property) -> Value {
    let mut schema = p.schema.clone();
    schema.insert("name".into(), json!(p.name));
    property_schema(&schema)
}

pub fn properties(list: &[Property]) -> Value {
    json!({ "properties": properties_map(list) })
}

pub fn object(o: &Object) -> Value {
    let mut m = Map::new();
    m.insert("created_at".into(), json!(isotime(o.created_at)));
    put_opt(&mut m, "description", &o.description);
    m.insert("name".into(), json!(o.name));
    let props: Map<String, Value> = o
        .properties
        .iter()
        .map(|(k, v)| {
            let v = v
                .as_object()
                .map(property_schema)
                .unwrap_or_else(|| v.clone());
            (k.clone(), v)
        })
        .collect();
    m.insert("properties".into(), Value::Object(props));
    if !o.required.is_empty() {
        m.insert("required".into(), json!(o.required));
    }
    m.insert("schema".into(), json!("/v2/schemas/metadefs/object"));
    m.insert(
        "self".into(),
        json!(format!(
            "{}/objects/{}",
            namespace_href(&o.namespace),
            o.name
        )),
    );
    m.insert("updated_at".into(), json!(isotime(o.updated_at)));
    Value::Object(m)
}

pub fn objects(list: &[Object]) -> Value {
    json!({
        "objects": list.iter().map(object).collect::<Vec<_>>(),
        "schema": "/v2/schemas/metadefs/objects",
    })
}

pub fn tag(t: &Tag) -> Value {
    json!({
        "created_at": isotime(t.created_at),
        "name": t.name,
        "updated_at": isotime(t.updated_at),
    })
}

pub fn tags(list: &[Tag]) -> Value {
    json!({ "tags": list.iter().map(tag).collect::<Vec<_>>() })
}
