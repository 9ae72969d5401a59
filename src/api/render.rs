//! Domain objects as Glance's JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use glance_layers::{Image, Member};
use serde_json::{Map, Value, json};

/// Glance's `isotime`: `YYYY-MM-DDThh:mm:ssZ`.
pub fn isotime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The image as `GET /v2/images/{id}` shows it: extra properties first, then every
/// base attribute (null when unset), then the links, then `stores` once it has data.
pub fn image(img: &Image) -> Value {
    let mut m = Map::with_capacity(24 + img.properties.len());
    for (k, v) in &img.properties {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    let base = json!({
        "name": img.name,
        "disk_format": img.disk_format,
        "container_format": img.container_format,
        "visibility": img.visibility.as_str(),
        "size": img.size,
        "virtual_size": img.virtual_size,
        "status": img.status.as_str(),
        "checksum": img.checksum,
        "protected": img.protected,
        "min_ram": img.min_ram,
        "min_disk": img.min_disk,
        "owner": img.owner,
        "os_hidden": img.os_hidden,
        "os_hash_algo": img.os_hash_algo,
        "os_hash_value": img.os_hash_value,
        "id": img.id,
        "created_at": isotime(img.created_at),
        "updated_at": isotime(img.updated_at),
        "tags": img.tags,
        "self": format!("/v2/images/{}", img.id),
        "file": format!("/v2/images/{}/file", img.id),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(base) = base {
        m.extend(base);
    }
    let stores: Vec<&str> = img
        .locations
        .iter()
        .filter_map(|l| l.metadata.get("store").and_then(Value::as_str))
        .collect();
    if !stores.is_empty() {
        m.insert("stores".into(), Value::String(stores.join(",")));
    }
    Value::Object(m)
}

pub fn member(m: &Member) -> Value {
    json!({
        "member_id": m.member_id,
        "image_id": m.image_id,
        "status": m.status.as_str(),
        "created_at": isotime(m.created_at),
        "updated_at": isotime(m.updated_at),
        "schema": "/v2/schemas/member",
    })
}

pub fn members(ms: &[Member]) -> Value {
    json!({
        "members": ms.iter().map(member).collect::<Vec<_>>(),
        "schema": "/v2/schemas/members",
    })
}

/// `/v2/info/stores[/detail]`: flags are the string `"true"`, present only when true.
pub fn stores(list: &[glance_layers::StoreInfo], detail: bool) -> Value {
    let stores: Vec<Value> = list
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("id".into(), s.id.clone().into());
            if let Some(d) = &s.description {
                m.insert("description".into(), d.clone().into());
            }
            if s.default {
                m.insert("default".into(), "true".into());
            }
            if s.read_only {
                m.insert("read-only".into(), "true".into());
            }
            if detail {
                m.insert("type".into(), s.kind.into());
                m.insert("properties".into(), s.properties.clone());
                m.insert("weight".into(), s.weight.into());
            }
            Value::Object(m)
        })
        .collect();
    json!({ "stores": stores })
}

/// `/v2/info/usage`.
pub fn usage(entries: &[glance_layers::UsageEntry]) -> Value {
    let mut m = Map::new();
    for e in entries {
        m.insert(
            e.resource.into(),
            json!({"limit": e.limit, "usage": e.usage}),
        );
    }
    json!({ "usage": m })
}
