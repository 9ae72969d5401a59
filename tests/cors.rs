//! `[cors]`: the headers oslo.middleware's CORS filter adds, for an allowed
//! origin only, and a preflight answered before anyone is authenticated.

mod common;

use glance_api::config::{AuthMode, Config, CorsSection, Overrides};
use reqwest::Method;

const ORIGIN: &str = "https://horizon.example.com";

/// CORS on for one origin, and callers must say who they are (so a request
/// without identity is refused: a browser's preflight carries none).
fn horizon(c: &mut Config) {
    c.cors.allowed_origin = vec![ORIGIN.into()];
    c.auth.mode = AuthMode::TrustedHeaders;
}

fn preflight(s: &common::TestServer, origin: &str, method: &str) -> reqwest::RequestBuilder {
    s.client
        .request(Method::OPTIONS, format!("{}/v2/images", s.url))
        .header("origin", origin)
        .header("access-control-request-method", method)
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

fn cors_headers(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_is_answered_without_identity() {
    let s = common::start_with(horizon, |b| b).await;
    let r = preflight(&s, ORIGIN, "POST")
        .header(
            "access-control-request-headers",
            "x-auth-token, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&r, "access-control-max-age"), Some("3600"));
    // oslo echoes what was asked for, once it is all allowed.
    assert_eq!(header(&r, "access-control-allow-methods"), Some("POST"));
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("x-auth-token,content-type")
    );
    assert_eq!(header(&r, "vary"), Some("Origin"));
}

#[tokio::test]
async fn preflight_for_what_is_not_allowed_gets_no_cors_headers() {
    let s = common::start_with(horizon, |b| b).await;
    // Glance's default methods leave out HEAD; an unknown header is refused too.
    let asked = [
        preflight(&s, ORIGIN, "HEAD"),
        preflight(&s, ORIGIN, "GET").header("access-control-request-headers", "x-secret"),
        preflight(&s, "https://evil.example.com", "GET"),
        s.client
            .request(Method::OPTIONS, format!("{}/v2/images", s.url))
            .header("origin", ORIGIN),
    ];
    for req in asked {
        let r = req.send().await.unwrap();
        // Still the empty 200 every OPTIONS gets, so the browser decides.
        assert_eq!(r.status(), 200);
        assert!(cors_headers(&r).is_empty(), "{:?}", r.headers());
    }
}

#[tokio::test]
async fn requests_from_an_allowed_origin_may_be_read_by_the_page() {
    let s = common::start_with(horizon, |b| b).await;
    let r = glance_testkit::http::as_project(s.get("/v2/images"), "p1", "member,reader")
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some(
            "X-Image-Meta-Checksum,X-Auth-Token,X-Subject-Token,X-Service-Token,X-OpenStack-Request-ID"
        )
    );
    assert_eq!(header(&r, "vary"), Some("Origin"));
    // A refusal is readable too, so the page can tell the user why.
    let r = s
        .get("/v2/images")
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(ORIGIN));
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let s = common::start_with(horizon, |b| b).await;
    let r = glance_testkit::http::as_project(s.get("/v2/images"), "p1", "member,reader")
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(cors_headers(&r).is_empty(), "{:?}", r.headers());
}

#[tokio::test]
async fn without_allowed_origins_cors_is_off() {
    let s = common::start().await;
    let r = s
        .get("/v2/images")
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(cors_headers(&r).is_empty(), "{:?}", r.headers());
    let r = preflight(&s, ORIGIN, "GET").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(cors_headers(&r).is_empty(), "{:?}", r.headers());
}

#[tokio::test]
async fn glance_api_conf_lists_and_the_wildcard() {
    // Comma strings, as glance-api.conf writes them.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("glance.toml");
    std::fs::write(
        &file,
        "[cors]\nallowed_origin = \"https://a.example, *\"\nallow_credentials = false\n\
         expose_headers = \"X-OpenStack-Request-ID\"\nallow_methods = \"GET, HEAD\"\n\
         allow_headers = \"X-Auth-Token\"\nmax_age = 0\n",
    )
    .unwrap();
    let loaded = Config::load(Some(&file), Vec::new(), &Overrides::default()).unwrap();
    assert_eq!(
        loaded.cors.allowed_origin,
        vec!["https://a.example".to_string(), "*".to_string()]
    );
    assert_eq!(loaded.cors.allow_methods, vec!["GET", "HEAD"]);
    let cors: CorsSection = loaded.cors;
    let s = common::start_with(|c| c.cors = cors, |b| b).await;

    let r = preflight(&s, "https://a.example", "HEAD")
        .header("access-control-request-headers", "X-Auth-Token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://a.example")
    );
    assert_eq!(header(&r, "access-control-allow-methods"), Some("HEAD"));
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("X-Auth-Token")
    );
    // No credentials and no max age, as configured.
    assert_eq!(header(&r, "access-control-allow-credentials"), None);
    assert_eq!(header(&r, "access-control-max-age"), None);

    // Any other origin is let in by `*`, and answered with `*` as oslo does.
    let r = s
        .get("/v2/images")
        .header("origin", "https://b.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("X-OpenStack-Request-ID")
    );
}
