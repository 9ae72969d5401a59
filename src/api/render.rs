//! Domain objects as Glance's JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use glance_layers::{Image, Member};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

/// Glance's `isotime`: `YYYY-MM-DDThh:mm:ssZ`.
pub fn isotime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The image as `GET /v2/images/{id}` shows it: extra properties first, then every
/// base attribute (null when unset), then `direct_url` when `view` asks for it,
/// then the links, then `stores` once it has data.
/// Written straight to the serializer: a list of 1000 images builds no `Value`s.
pub fn image<'a>(img: &'a Image, view: &'a ImageView) -> ImageJson<'a> {
    ImageJson(img, view)
}

/// See [`image`].
pub struct ImageJson<'a>(&'a Image, &'a ImageView);

/// What the configuration adds to every image shown.
#[derive(Debug, Clone, Default)]
pub struct ImageView {
    /// `show_image_direct_url`: `Some` shows it, choosing by these weights.
    pub direct_url: Option<StoreWeights>,
    /// `show_multiple_locations`: every image shows `locations`, `[]` when it
    /// has none.
    pub locations: bool,
}

/// Store weights by store id, as `[<store>] weight` sets them; empty without
/// `enabled_backends`, where Glance does not sort and the first location wins.
#[derive(Debug, Clone, Default)]
pub struct StoreWeights(pub std::collections::BTreeMap<String, i64>);

impl StoreWeights {
    /// Glance's `sort_image_locations(..)[0]`: the location in the heaviest
    /// store, the earliest of equals (its sort is stable); a location naming no
    /// store, or a store not enabled, weighs 0.
    pub fn best<'a>(&self, locations: &'a [glance_layers::image::Location]) -> Option<&'a str> {
        let weight = |l: &glance_layers::image::Location| {
            l.metadata
                .get("store")
                .and_then(Value::as_str)
                .and_then(|id| self.0.get(id).copied())
                .unwrap_or(0)
        };
        let mut best: Option<(&glance_layers::image::Location, i64)> = None;
        for l in locations {
            let w = weight(l);
            if best.is_none_or(|(_, bw)| w > bw) {
                best = Some((l, w));
            }
        }
        best.map(|(l, _)| l.url.as_str())
    }
}

/// Base attributes, which an extra property may not shadow.
const BASE_KEYS: &[&str] = &[
    "name",
    "disk_format",
    "container_format",
    "visibility",
    "size",
    "virtual_size",
    "status",
    "checksum",
    "protected",
    "min_ram",
    "min_disk",
    "owner",
    "os_hidden",
    "os_hash_algo",
    "os_hash_value",
    "id",
    "created_at",
    "updated_at",
    "tags",
    "direct_url",
    "self",
    "file",
    "schema",
    "stores",
];

/// Properties kept for the service's own use and never shown, as Glance hides
/// `os_glance_stage_host` and `os_glance_hash_op_host`.
const HIDDEN_KEYS: &[&str] = &[
    "os_glance_stage_host",
    "os_glance_hash_op_host",
    glance_layers::import::records::STAGED_AT,
];

/// `prefix` + `id` + `suffix`, serialized as one string without building it first.
struct Link<'a>(&'a str, &'a str, &'a str);

impl Serialize for Link<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}{}{}", self.0, self.1, self.2))
    }
}

impl Serialize for ImageJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ImageJson(img, view) = *self;
        let mut m = s.serialize_map(None)?;
        for (k, v) in &img.properties {
            if !BASE_KEYS.contains(&k.as_str()) && !HIDDEN_KEYS.contains(&k.as_str()) {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("name", &img.name)?;
        m.serialize_entry("disk_format", &img.disk_format)?;
        m.serialize_entry("container_format", &img.container_format)?;
        m.serialize_entry("visibility", img.visibility.as_str())?;
        m.serialize_entry("size", &img.size)?;
        m.serialize_entry("virtual_size", &img.virtual_size)?;
        m.serialize_entry("status", img.status.as_str())?;
        m.serialize_entry("checksum", &img.checksum)?;
        m.serialize_entry("protected", &img.protected)?;
        m.serialize_entry("min_ram", &img.min_ram)?;
        m.serialize_entry("min_disk", &img.min_disk)?;
        m.serialize_entry("owner", &img.owner)?;
        m.serialize_entry("os_hidden", &img.os_hidden)?;
        m.serialize_entry("os_hash_algo", &img.os_hash_algo)?;
        m.serialize_entry("os_hash_value", &img.os_hash_value)?;
        m.serialize_entry("id", &img.id)?;
        m.serialize_entry("created_at", &isotime(img.created_at))?;
        m.serialize_entry("updated_at", &isotime(img.updated_at))?;
        if view.locations {
            m.serialize_entry("locations", &img.locations)?;
        }
        if let Some(url) = view
            .direct_url
            .as_ref()
            .and_then(|w| w.best(&img.locations))
        {
            m.serialize_entry("direct_url", url)?;
        }
        m.serialize_entry("tags", &img.tags)?;
        m.serialize_entry("self", &Link("/v2/images/", &img.id, ""))?;
        m.serialize_entry("file", &Link("/v2/images/", &img.id, "/file"))?;
        m.serialize_entry("schema", "/v2/schemas/image")?;
        let mut stores = img
            .locations
            .iter()
            .filter_map(|l| l.metadata.get("store").and_then(Value::as_str))
            .peekable();
        if stores.peek().is_some() {
            m.serialize_entry("stores", &stores.collect::<Vec<_>>().join(","))?;
        }
        m.end()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use glance_layers::image::Location;

    #[test]
    fn image_json_has_glances_key_order_and_values() {
        let t = "2026-11-24T19:00:00Z".parse().unwrap();
        let mut img = Image::new("i1".into(), t);
        img.name = Some("cirros".into());
        img.size = Some(3);
        img.tags.insert("b".into());
        img.tags.insert("a".into());
        img.properties.insert("zeta".into(), "1".into());
        img.properties.insert("alpha".into(), "2".into());
        let mut metadata = Map::new();
        metadata.insert("store".into(), "fast".into());
        img.locations.push(Location {
            url: "file:///x".into(),
            metadata,
        });
        let got = String::from_utf8(crate::api::json::to_vec(&image(
            &img,
            &ImageView::default(),
        )))
        .unwrap();
        assert_eq!(
            got,
            "{\"alpha\": \"2\", \"zeta\": \"1\", \"name\": \"cirros\", \"disk_format\": null, \
             \"container_format\": null, \"visibility\": \"shared\", \"size\": 3, \
             \"virtual_size\": null, \"status\": \"queued\", \"checksum\": null, \
             \"protected\": false, \"min_ram\": 0, \"min_disk\": 0, \"owner\": null, \
             \"os_hidden\": false, \"os_hash_algo\": null, \"os_hash_value\": null, \
             \"id\": \"i1\", \"created_at\": \"2026-11-24T19:00:00Z\", \
             \"updated_at\": \"2026-11-24T19:00:00Z\", \"tags\": [\"a\", \"b\"], \
             \"self\": \"/v2/images/i1\", \"file\": \"/v2/images/i1/file\", \
             \"schema\": \"/v2/schemas/image\", \"stores\": \"fast\"}"
        );
    }

    #[test]
    fn direct_url_is_the_heaviest_stores_location_and_the_first_of_equals() {
        let at = |url: &str, store: Option<&str>| {
            let mut metadata = Map::new();
            if let Some(s) = store {
                metadata.insert("store".into(), s.into());
            }
            Location {
                url: url.into(),
                metadata,
            }
        };
        let weights = StoreWeights([("a".to_string(), 5), ("b".to_string(), 9)].into());
        let locations = [
            at("u1", Some("a")),
            at("u2", Some("b")),
            at("u3", Some("b")),
            at("u4", None),
        ];
        assert_eq!(weights.best(&locations), Some("u2"));
        // Unweighted (no `enabled_backends`): the first location.
        assert_eq!(StoreWeights::default().best(&locations), Some("u1"));
        // A store not enabled and no store at all both weigh 0, like Glance.
        let unknown = [at("v1", Some("gone")), at("v2", None)];
        assert_eq!(weights.best(&unknown), Some("v1"));
        assert_eq!(weights.best(&[]), None);
    }
}
