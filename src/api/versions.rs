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

/// What an image cache (`image_cache_dir`) puts first, as Glance lists it: the
/// cache API (v2.14), its 202 fix (v2.16) and clean/prune (v2.18), which
/// becomes the current version; v2.17 and v2.15 move up among them.
pub const CACHE_VERSIONS: &[(&str, &str)] = &[
    ("v2.18", "CURRENT"),
    ("v2.17", "SUPPORTED"),
    ("v2.16", "SUPPORTED"),
    ("v2.15", "SUPPORTED"),
    ("v2.14", "SUPPORTED"),
];

/// The versions listed, in Glance's order.
fn listed(cache: bool) -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    let (head, rest): (&[_], &[_]) = if cache {
        (CACHE_VERSIONS, VERSIONS)
    } else {
        (&[], VERSIONS)
    };
    // With the cache, what its list holds is not repeated from the other.
    head.iter().chain(
        rest.iter()
            .filter(move |(id, _)| !head.iter().any(|(h, _)| h == id)),
    )
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
        let current: Vec<_> = off.iter().filter(|(_, s)| s == "CURRENT").collect();
        assert_eq!(current, [&("v2.17".to_string(), "CURRENT".to_string())]);
        assert!(
            !off.iter()
                .any(|(id, _)| ["v2.14", "v2.16", "v2.18"].contains(&id.as_str()))
        );
        let on = ids(true);
        let names = |v: &[(String, String)]| {
            v.iter()
                .map(|(id, _)| id.clone())
                .collect::<Vec<_>>()
                .join(" ")
        };
        // Glance's order (`glance/api/versions.py`, with several stores).
        assert_eq!(
            names(&on),
            "v2.18 v2.17 v2.16 v2.15 v2.14 v2.13 v2.12 v2.11 v2.10 v2.9 v2.8 v2.7 v2.6 v2.5 v2.4 v2.3 v2.2 v2.1 v2.0"
        );
        assert_eq!(
            names(&off),
            "v2.15 v2.13 v2.12 v2.11 v2.10 v2.9 v2.8 v2.17 v2.7 v2.6 v2.5 v2.4 v2.3 v2.2 v2.1 v2.0"
        );
        assert_eq!(on[0], ("v2.18".into(), "CURRENT".into()));
        assert_eq!(on.iter().filter(|(_, s)| s == "CURRENT").count(), 1);
        assert!(is_served("v2.18", true) && !is_served("v2.18", false));
    }
}
