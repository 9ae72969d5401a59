//! The v2 routes: which path is which resource, and which methods it takes.

use http::Method;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Images,
    Image(String),
    ImageFile(String),
    ImageTag(String, String),
    Stage(String),
    Import(String),
    Deactivate(String),
    Reactivate(String),
    Members(String),
    Member(String, String),
    ImageTasks(String),
    ImageLocations(String),
    Tasks,
    Task(String),
    Schema(&'static str),
    InfoImport,
    InfoStores {
        detail: bool,
    },
    InfoUsage,
    OpenApi,
    StoreImage(String, String),
    /// `/v2/cache`: the cache's state (GET), clearing it (DELETE).
    Cache,
    /// `/v2/cache/{image_id}`: queue (PUT), drop (DELETE).
    CacheImage(String),
    CacheNodes(String),
    CacheClean,
    CachePrune,
    MetadefNamespaces,
    MetadefNamespace(String),
    MetadefResourceTypes,
    MetadefAssociations(String),
    MetadefAssociation(String, String),
    MetadefProperties(String),
    MetadefProperty(String, String),
    MetadefObjects(String),
    MetadefObject(String, String),
    MetadefTags(String),
    MetadefTag(String, String),
    NotFound,
}

/// The `route` label of a request path: the template of the route it names
/// (`/v2/images/{image_id}/file`), so labels stay few whatever the ids;
/// `unmatched` for paths no route takes.
pub fn label(path: &str) -> String {
    let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    if matches!(
        &*path,
        "/" | "/versions" | "/versions/" | "/metrics" | "/healthcheck"
    ) {
        return path.into_owned();
    }
    match path.trim_start_matches('/').split_once('/') {
        Some((version, rest)) if version.starts_with('v') => match Route::parse(rest) {
            Route::NotFound => "unmatched".into(),
            route => route.template(),
        },
        _ => "unmatched".into(),
    }
}

impl Route {
    /// Matches the part of a path after `/v2/`, already percent-decoded.
    pub fn parse(rest: &str) -> Route {
        let segs: Vec<&str> = rest.split('/').collect();
        let s = |x: &&str| x.to_string();
        match segs.as_slice() {
            ["images"] => Route::Images,
            ["images", id] if !id.is_empty() => Route::Image(s(id)),
            ["images", id, "file"] => Route::ImageFile(s(id)),
            ["images", id, "tags", tag] if !tag.is_empty() => Route::ImageTag(s(id), s(tag)),
            ["images", id, "stage"] => Route::Stage(s(id)),
            ["images", id, "import"] => Route::Import(s(id)),
            ["images", id, "actions", "deactivate"] => Route::Deactivate(s(id)),
            ["images", id, "actions", "reactivate"] => Route::Reactivate(s(id)),
            ["images", id, "members"] => Route::Members(s(id)),
            ["images", id, "members", m] if !m.is_empty() => Route::Member(s(id), s(m)),
            ["images", id, "tasks"] => Route::ImageTasks(s(id)),
            ["images", id, "locations"] => Route::ImageLocations(s(id)),
            ["tasks"] => Route::Tasks,
            ["tasks", id] if !id.is_empty() => Route::Task(s(id)),
            ["schemas", ..] => match super::schemas::NAMES
                .iter()
                .find(|n| **n == &rest["schemas/".len()..])
            {
                Some(name) => Route::Schema(name),
                None => Route::NotFound,
            },
            ["info", "import"] => Route::InfoImport,
            ["info", "stores"] => Route::InfoStores { detail: false },
            ["info", "stores", "detail"] => Route::InfoStores { detail: true },
            ["info", "usage"] => Route::InfoUsage,
            ["openapi.json"] => Route::OpenApi,
            ["cache"] => Route::Cache,
            ["cache", "clean"] => Route::CacheClean,
            ["cache", "prune"] => Route::CachePrune,
            ["cache", "nodes", id] if !id.is_empty() => Route::CacheNodes(s(id)),
            ["cache", id] if !id.is_empty() => Route::CacheImage(s(id)),
            ["metadefs", ..] => Route::parse_metadefs(&segs[1..]),
            ["stores", store, id] if !store.is_empty() && !id.is_empty() => {
                Route::StoreImage(s(store), s(id))
            }
            _ => Route::NotFound,
        }
    }

    /// `/v2/metadefs/...`, after `metadefs/`.
    fn parse_metadefs(segs: &[&str]) -> Route {
        let s = |x: &&str| x.to_string();
        match segs {
            ["namespaces"] => Route::MetadefNamespaces,
            ["resource_types"] => Route::MetadefResourceTypes,
            ["namespaces", ns, rest @ ..] if !ns.is_empty() => match rest {
                [] => Route::MetadefNamespace(s(ns)),
                ["resource_types"] => Route::MetadefAssociations(s(ns)),
                ["resource_types", rt] if !rt.is_empty() => Route::MetadefAssociation(s(ns), s(rt)),
                ["properties"] => Route::MetadefProperties(s(ns)),
                ["properties", p] if !p.is_empty() => Route::MetadefProperty(s(ns), s(p)),
                ["objects"] => Route::MetadefObjects(s(ns)),
                ["objects", o] if !o.is_empty() => Route::MetadefObject(s(ns), s(o)),
                ["tags"] => Route::MetadefTags(s(ns)),
                ["tags", t] if !t.is_empty() => Route::MetadefTag(s(ns), s(t)),
                _ => Route::NotFound,
            },
            _ => Route::NotFound,
        }
    }

    /// The methods the route answers, in the order Glance lists them in `Allow`.
    pub fn methods(&self) -> &'static [Method] {
        match self {
            Route::Images => &[Method::GET, Method::POST],
            Route::Image(_) => &[Method::GET, Method::PATCH, Method::DELETE],
            Route::ImageFile(_) => &[Method::GET, Method::PUT],
            Route::ImageTag(..) => &[Method::PUT, Method::DELETE],
            Route::Deactivate(_) | Route::Reactivate(_) | Route::Import(_) => &[Method::POST],
            Route::Stage(_) => &[Method::PUT],
            Route::Members(_) => &[Method::GET, Method::POST],
            Route::Member(..) => &[Method::GET, Method::PUT, Method::DELETE],
            Route::Tasks => &[Method::GET, Method::POST],
            // Glance's reject route for it lists only POST, though GET is served.
            Route::ImageLocations(_) => &[Method::GET, Method::POST],
            Route::Task(_) => &[Method::GET, Method::DELETE],
            Route::ImageTasks(_)
            | Route::Schema(_)
            | Route::InfoImport
            | Route::InfoStores { .. }
            | Route::InfoUsage
            | Route::OpenApi => &[Method::GET],
            Route::StoreImage(..) => &[Method::DELETE],
            Route::Cache => &[Method::GET, Method::DELETE],
            Route::CacheImage(_) => &[Method::DELETE, Method::PUT],
            Route::CacheNodes(_) => &[Method::GET],
            Route::CacheClean | Route::CachePrune => &[Method::POST],
            Route::MetadefNamespaces | Route::MetadefAssociations(_) => {
                &[Method::GET, Method::POST]
            }
            Route::MetadefNamespace(_) | Route::MetadefProperty(..) | Route::MetadefObject(..) => {
                &[Method::GET, Method::PUT, Method::DELETE]
            }
            Route::MetadefResourceTypes => &[Method::GET],
            Route::MetadefAssociation(..) => &[Method::DELETE],
            Route::MetadefProperties(_) | Route::MetadefObjects(_) | Route::MetadefTags(_) => {
                &[Method::GET, Method::POST, Method::DELETE]
            }
            Route::MetadefTag(..) => &[Method::GET, Method::POST, Method::PUT, Method::DELETE],
            Route::NotFound => &[],
        }
    }

    /// Whether Glance answers the route's other methods with 405 (it maps a
    /// `reject` route for them); without one, they are a 404.
    pub fn rejects_other_methods(&self) -> bool {
        !matches!(self, Route::ImageTasks(_))
    }

    /// The route's path template in the OpenAPI document (and the `route` label
    /// of the request metrics). The match is exhaustive, so a new route does not
    /// build until it has one.
    pub fn template(&self) -> String {
        match self {
            Route::Images => "/v2/images".into(),
            Route::Image(_) => "/v2/images/{image_id}".into(),
            Route::ImageFile(_) => "/v2/images/{image_id}/file".into(),
            Route::ImageTag(..) => "/v2/images/{image_id}/tags/{tag_value}".into(),
            Route::Stage(_) => "/v2/images/{image_id}/stage".into(),
            Route::Import(_) => "/v2/images/{image_id}/import".into(),
            Route::Deactivate(_) => "/v2/images/{image_id}/actions/deactivate".into(),
            Route::Reactivate(_) => "/v2/images/{image_id}/actions/reactivate".into(),
            Route::Members(_) => "/v2/images/{image_id}/members".into(),
            Route::Member(..) => "/v2/images/{image_id}/members/{member_id}".into(),
            Route::ImageTasks(_) => "/v2/images/{image_id}/tasks".into(),
            Route::ImageLocations(_) => "/v2/images/{image_id}/locations".into(),
            Route::Tasks => "/v2/tasks".into(),
            Route::Task(_) => "/v2/tasks/{task_id}".into(),
            Route::Schema(name) => format!("/v2/schemas/{name}"),
            Route::InfoImport => "/v2/info/import".into(),
            Route::InfoStores { detail: false } => "/v2/info/stores".into(),
            Route::InfoStores { detail: true } => "/v2/info/stores/detail".into(),
            Route::InfoUsage => "/v2/info/usage".into(),
            Route::OpenApi => "/v2/openapi.json".into(),
            Route::StoreImage(..) => "/v2/stores/{store_id}/{image_id}".into(),
            Route::Cache => "/v2/cache".into(),
            Route::CacheImage(_) => "/v2/cache/{image_id}".into(),
            Route::CacheNodes(_) => "/v2/cache/nodes/{image_id}".into(),
            Route::CacheClean => "/v2/cache/clean".into(),
            Route::CachePrune => "/v2/cache/prune".into(),
            Route::MetadefNamespaces => "/v2/metadefs/namespaces".into(),
            Route::MetadefNamespace(_) => "/v2/metadefs/namespaces/{namespace_name}".into(),
            Route::MetadefResourceTypes => "/v2/metadefs/resource_types".into(),
            Route::MetadefAssociations(_) => {
                "/v2/metadefs/namespaces/{namespace_name}/resource_types".into()
            }
            Route::MetadefAssociation(..) => {
                "/v2/metadefs/namespaces/{namespace_name}/resource_types/{resource_type_name}"
                    .into()
            }
            Route::MetadefProperties(_) => {
                "/v2/metadefs/namespaces/{namespace_name}/properties".into()
            }
            Route::MetadefProperty(..) => {
                "/v2/metadefs/namespaces/{namespace_name}/properties/{property_name}".into()
            }
            Route::MetadefObjects(_) => "/v2/metadefs/namespaces/{namespace_name}/objects".into(),
            Route::MetadefObject(..) => {
                "/v2/metadefs/namespaces/{namespace_name}/objects/{object_name}".into()
            }
            Route::MetadefTags(_) => "/v2/metadefs/namespaces/{namespace_name}/tags".into(),
            Route::MetadefTag(..) => {
                "/v2/metadefs/namespaces/{namespace_name}/tags/{tag_name}".into()
            }
            Route::NotFound => String::new(),
        }
    }

    /// Whether the route is one of `/v2/metadefs/...`.
    pub fn is_metadef(&self) -> bool {
        matches!(
            self,
            Route::MetadefNamespaces
                | Route::MetadefNamespace(_)
                | Route::MetadefResourceTypes
                | Route::MetadefAssociations(_)
                | Route::MetadefAssociation(..)
                | Route::MetadefProperties(_)
                | Route::MetadefProperty(..)
                | Route::MetadefObjects(_)
                | Route::MetadefObject(..)
                | Route::MetadefTags(_)
                | Route::MetadefTag(..)
        )
    }

    /// Whether the route and method take a request body at all.
    pub fn takes_body(&self, method: &Method) -> bool {
        matches!(
            (self, method),
            (Route::Images, &Method::POST)
                | (Route::Image(_), &Method::PATCH)
                | (Route::ImageFile(_), &Method::PUT)
                | (Route::Stage(_), &Method::PUT)
                | (Route::Import(_), &Method::POST)
                | (Route::ImageLocations(_), &Method::POST)
                | (Route::Members(_), &Method::POST)
                | (Route::Member(..), &Method::PUT)
                | (Route::Tasks, &Method::POST)
                | (Route::MetadefNamespaces, &Method::POST)
                | (Route::MetadefNamespace(_), &Method::PUT)
                | (Route::MetadefAssociations(_), &Method::POST)
                | (Route::MetadefProperties(_), &Method::POST)
                | (Route::MetadefProperty(..), &Method::PUT)
                | (Route::MetadefObjects(_), &Method::POST)
                | (Route::MetadefObject(..), &Method::PUT)
                | (Route::MetadefTags(_), &Method::POST)
                | (Route::MetadefTag(..), &Method::PUT)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every route served is in `/v2/openapi.json`, and nothing else is.
    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_slice(super::super::OPENAPI).unwrap();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "parameters")
                    .map(move |m| (path.clone(), m.to_uppercase()))
            })
            .collect();
        let mut examples: Vec<String> = [
            "images",
            "images/i",
            "images/i/file",
            "images/i/stage",
            "images/i/import",
            "images/i/tags/t",
            "images/i/actions/deactivate",
            "images/i/actions/reactivate",
            "images/i/members",
            "images/i/members/m",
            "images/i/tasks",
            "images/i/locations",
            "tasks",
            "tasks/t",
            "info/import",
            "info/stores",
            "info/stores/detail",
            "info/usage",
            "openapi.json",
            "stores/s/i",
            "cache",
            "cache/i",
            "cache/nodes/i",
            "cache/clean",
            "cache/prune",
            "metadefs/namespaces",
            "metadefs/namespaces/n",
            "metadefs/resource_types",
            "metadefs/namespaces/n/resource_types",
            "metadefs/namespaces/n/resource_types/r",
            "metadefs/namespaces/n/properties",
            "metadefs/namespaces/n/properties/p",
            "metadefs/namespaces/n/objects",
            "metadefs/namespaces/n/objects/o",
            "metadefs/namespaces/n/tags",
            "metadefs/namespaces/n/tags/t",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        examples.extend(
            super::super::schemas::NAMES
                .iter()
                .map(|n| format!("schemas/{n}")),
        );
        let mut served: BTreeSet<(String, String)> = examples
            .iter()
            .flat_map(|p| {
                let route = Route::parse(p);
                assert_ne!(route, Route::NotFound, "{p}");
                route
                    .methods()
                    .iter()
                    .map(move |m| (route.template(), m.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        // Served outside the v2 router.
        served.insert(("/".into(), "GET".into()));
        served.insert(("/versions".into(), "GET".into()));
        let missing: Vec<_> = served.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "undocumented {missing:?}, not served {extra:?}"
        );
    }

    #[test]
    fn paths_map_to_routes() {
        assert_eq!(Route::parse("images"), Route::Images);
        assert_eq!(Route::parse("images/abc"), Route::Image("abc".into()));
        assert_eq!(Route::parse("images/abc/"), Route::NotFound);
        assert_eq!(Route::parse("images/"), Route::NotFound);
        assert_eq!(
            Route::parse("images/a/tags/t"),
            Route::ImageTag("a".into(), "t".into())
        );
        assert_eq!(Route::parse("images/a/tags"), Route::NotFound);
        assert_eq!(Route::parse("images/a/actions/explode"), Route::NotFound);
        assert_eq!(Route::parse("schemas/member"), Route::Schema("member"));
        assert_eq!(
            Route::parse("schemas/metadefs/tag"),
            Route::Schema("metadefs/tag")
        );
        assert_eq!(Route::parse("schemas/nope"), Route::NotFound);
        assert_eq!(Route::parse("cache/clean"), Route::CacheClean);
        assert_eq!(Route::parse("cache/abc"), Route::CacheImage("abc".into()));
        assert_eq!(
            Route::parse("cache/nodes/abc"),
            Route::CacheNodes("abc".into())
        );
        assert_eq!(Route::parse("cache/"), Route::NotFound);
    }
}
