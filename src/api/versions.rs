//! The version document of `GET /` and `GET /versions`.

use serde_json::json;

/// The versions we advertise, in Glance's order: what a Glance with several
/// stores and no image cache lists (v2.17 CURRENT after v2.8, as Glance's
/// `versions.py` builds it).
pub const VERSIONS: &[(&str, &str)] = &[
    ("v2.15", "SUPPORTED"),
    ("v2.13", "SUPPORTED"),
    ("v2.12", "SUPPORTED"),
    ("v2.11", "SUPPORTED"),
    ("v2.10", "SUPPORTED"),
    ("v2.9", "SUPPORTED"),
    ("v2.8", "SUPPORTED"),
    ("v2.17", "CURRENT"),
    ("v2.7", "SUPPORTED"),
    ("v2.6", "SUPPORTED"),
    ("v2.5", "SUPPORTED"),
    ("v2.4", "SUPPORTED"),
    ("v2.3", "SUPPORTED"),
    ("v2.2", "SUPPORTED"),
    ("v2.1", "SUPPORTED"),
    ("v2.0", "SUPPORTED"),
];

/// Whether a path's version prefix (`v2`, `v2.5`) routes to our API.
pub fn is_served(prefix: &str) -> bool {
    prefix == "v2" || VERSIONS.iter().any(|(id, _)| *id == prefix)
}

pub fn document(base_url: &str) -> serde_json::Value {
    let href = format!("{}/v2/", base_url.trim_end_matches('/'));
    json!({
        "versions": VERSIONS.iter().map(|(id, status)| json!({
            "id": id,
            "status": status,
            "links": [{"rel": "self", "href": href}],
        })).collect::<Vec<_>>()
    })
}
