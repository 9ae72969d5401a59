//! The v2 routes: which path is which resource, and which methods it takes.

use http::Method;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Images,
    Image(String),
    ImageFile(String),
    ImageTag(String, String),
    Deactivate(String),
    Reactivate(String),
    Members(String),
    Member(String, String),
    Schema(&'static str),
    InfoImport,
    InfoStores { detail: bool },
    InfoUsage,
    NotFound,
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
            ["images", id, "actions", "deactivate"] => Route::Deactivate(s(id)),
            ["images", id, "actions", "reactivate"] => Route::Reactivate(s(id)),
            ["images", id, "members"] => Route::Members(s(id)),
            ["images", id, "members", m] if !m.is_empty() => Route::Member(s(id), s(m)),
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
            Route::Deactivate(_) | Route::Reactivate(_) => &[Method::POST],
            Route::Members(_) => &[Method::GET, Method::POST],
            Route::Member(..) => &[Method::GET, Method::PUT, Method::DELETE],
            Route::Schema(_) | Route::InfoImport | Route::InfoStores { .. } | Route::InfoUsage => {
                &[Method::GET]
            }
            Route::NotFound => &[],
        }
    }

    /// Whether the route and method take a request body at all.
    pub fn takes_body(&self, method: &Method) -> bool {
        matches!(
            (self, method),
            (Route::Images, &Method::POST)
                | (Route::Image(_), &Method::PATCH)
                | (Route::ImageFile(_), &Method::PUT)
                | (Route::Members(_), &Method::POST)
                | (Route::Member(..), &Method::PUT)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
