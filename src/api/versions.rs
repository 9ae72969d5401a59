//! The version document of `GET /` and `GET /versions`.

use serde_json::json;

/// The versions we advertise, newest first: what a Glance with several stores and
/// no image cache lists, less the versions whose routes are not built yet. v2.17
/// (the locations API) is left out: clients such as glanceclient and Nova look
/// for it to decide which routes to call, and would call routes that answer 404
/// instead of falling back.
pub const VERSIONS: &[(&str, &str)] = &[
    ("v2.15", "CURRENT"),
    ("v2.13", "SUPPORTED"),
    ("v2.12", "SUPPORTED"),
    ("v2.11", "SUPPORTED"),
    ("v2.10", "SUPPORTED"),
    ("v2.9", "SUPPORTED"),
    ("v2.8", "SUPPORTED"),
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
