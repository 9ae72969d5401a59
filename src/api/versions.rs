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

/// What an image cache (`image_cache_dir`) adds on top, as Glance lists it:
/// the cache API (v2.14), its 202 fix (v2.16) and clean/prune (v2.18), which
/// becomes the current version.
pub const CACHE_VERSIONS: &[(&str, &str)] = &[
    ("v2.18", "CURRENT"),
    ("v2.16", "SUPPORTED"),
    ("v2.15", "SUPPORTED"),
    ("v2.14", "SUPPORTED"),
];

/// The versions listed, newest first.
fn listed(cache: bool) -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    let (head, rest) = if cache {
        // v2.15 is in the cache's list, as SUPPORTED.
        (CACHE_VERSIONS, &VERSIONS[1..])
    } else {
        (&[][..], VERSIONS)
    };
    head.iter().chain(rest)
}

/// Whether a path's version prefix (`v2`, `v2.5`) routes to our API.
pub fn is_served(prefix: &str, cache: bool) -> bool {
    prefix == "v2" || listed(cache).any(|(id, _)| *id == prefix)
}

pub fn document(base_url: &str, cache: bool) -> serde_json::Value {
    let href = format!("{}/v2/", base_url.trim_end_matches('/'));
    json!({
        "versions": listed(cache).map(|(id, status)| json!({
            "id": id,
            "status": status,
            "links": [{"rel": "self", "href": href}],
        })).collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(cache: bool) -> Vec<(String, String)> {
        document("http://h", cache)["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["id"].as_str().unwrap().into(),
                    v["status"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    #[test]
    fn the_cache_adds_its_versions_and_makes_2_18_current() {
        let off = ids(false);
        assert_eq!(off[0], ("v2.15".into(), "CURRENT".into()));
        assert!(
            !off.iter()
                .any(|(id, _)| ["v2.14", "v2.16", "v2.18"].contains(&id.as_str()))
        );
        let on = ids(true);
        assert_eq!(on[0], ("v2.18".into(), "CURRENT".into()));
        assert_eq!(on.iter().filter(|(_, s)| s == "CURRENT").count(), 1);
        for v in ["v2.16", "v2.15", "v2.14"] {
            assert!(on.contains(&(v.into(), "SUPPORTED".into())), "{v}");
        }
        // Everything else is as without the cache.
        assert_eq!(on[4..], off[1..]);
        assert!(is_served("v2.18", true) && !is_served("v2.18", false));
    }
}
