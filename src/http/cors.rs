//! Cross-origin resource sharing as oslo.middleware's CORS filter does it, the
//! first filter of every Glance pipeline, configured by `[cors]`.
//!
//! The request goes through untouched and only the response is decorated, so a
//! preflight never meets auth: the API answers every `OPTIONS` with an empty 200
//! itself, and whatever else answers one (a 431 for an over-long request id) is
//! turned into an empty 200 here, as oslo does.
//!
//! tower-http's `CorsLayer` is not used because it answers differently: it lists
//! every allowed method and header where oslo echoes the requested ones, it sends
//! its headers to a preflight whose method or headers are not allowed (oslo sends
//! none, so the browser stops), and it refuses `*` with credentials, which oslo
//! allows (answering `Access-Control-Allow-Origin: *`).

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::config::CorsSection;

/// Headers every origin may send, whatever `allow_headers` says (oslo's
/// `simple_headers`).
const SIMPLE_HEADERS: &[&str] = &[
    "Accept",
    "Accept-Language",
    "Content-Type",
    "Cache-Control",
    "Content-Language",
    "Expires",
    "Last-Modified",
    "Pragma",
];

/// The `[cors]` options, checked once.
#[derive(Debug)]
struct Policy {
    origins: Vec<String>,
    allow_credentials: bool,
    /// `expose_headers` joined, or `None` when there are none.
    expose_headers: Option<HeaderValue>,
    /// `None` when `max_age` is 0.
    max_age: Option<HeaderValue>,
    allow_methods: Vec<String>,
    /// `allow_headers` and the simple headers, upper-cased.
    allow_headers: Vec<String>,
}

impl Policy {
    /// The origin to answer with: the request's own, or `*` when only the
    /// wildcard lets it in; `None` when it is not allowed.
    fn origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let given = headers.get(header::ORIGIN)?;
        let listed = |o: &str| self.origins.iter().any(|allowed| allowed == o);
        match given.to_str() {
            Ok(o) if listed(o) => Some(given.clone()),
            _ if listed("*") => Some(HeaderValue::from_static("*")),
            _ => None,
        }
    }
}

/// Adds CORS headers for the origins in `[cors] allowed_origin`.
#[derive(Debug, Clone)]
pub struct CorsLayer {
    policy: Arc<Policy>,
}

impl CorsLayer {
    /// `None` when no origin is allowed: then CORS is off and nothing is added.
    pub fn from_config(c: &CorsSection) -> Result<Option<Self>, String> {
        if c.allowed_origin.is_empty() {
            return Ok(None);
        }
        let joined = |what: &str, items: &[String]| {
            HeaderValue::from_str(&items.join(",")).map_err(|_| format!("[cors] {what}: {items:?}"))
        };
        let policy = Policy {
            origins: c.allowed_origin.clone(),
            allow_credentials: c.allow_credentials,
            expose_headers: if c.expose_headers.is_empty() {
                None
            } else {
                Some(joined("expose_headers", &c.expose_headers)?)
            },
            max_age: (c.max_age > 0).then(|| HeaderValue::from(c.max_age)),
            allow_methods: c.allow_methods.clone(),
            allow_headers: c
                .allow_headers
                .iter()
                .map(String::as_str)
                .chain(SIMPLE_HEADERS.iter().copied())
                .map(str::to_ascii_uppercase)
                .collect(),
        };
        Ok(Some(CorsLayer {
            policy: Arc::new(policy),
        }))
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Cors<S> {
        Cors {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cors<S> {
    inner: S,
    policy: Arc<Policy>,
}

/// What the request asked, kept for decorating its response.
enum Asked {
    /// An `OPTIONS` request; the CORS headers to add, if it passed the checks.
    Preflight(Option<HeaderMap>),
    /// Any other request from an allowed origin.
    Simple(HeaderValue),
    /// Any other request, without an allowed origin.
    Nothing,
}

/// oslo's preflight checks, in its order: an allowed origin, a requested method
/// among `allow_methods`, every requested header allowed. Any failure sends the
/// preflight back without CORS headers.
fn preflight_headers(policy: &Policy, req: &HeaderMap) -> Option<HeaderMap> {
    let origin = policy.origin(req)?;
    let method = req.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    if !policy
        .allow_methods
        .iter()
        .any(|m| m.as_bytes() == method.as_bytes())
    {
        return None;
    }
    let requested: Vec<&str> = match req.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        Some(v) => v
            .to_str()
            .ok()?
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect(),
        None => Vec::new(),
    };
    if requested
        .iter()
        .any(|h| !policy.allow_headers.contains(&h.to_ascii_uppercase()))
    {
        return None;
    }
    let mut out = HeaderMap::new();
    out.insert(header::VARY, HeaderValue::from_static("Origin"));
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if policy.allow_credentials {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if let Some(age) = &policy.max_age {
        out.insert(header::ACCESS_CONTROL_MAX_AGE, age.clone());
    }
    // The method and headers asked for, not the whole allowed lists.
    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method.clone());
    if !requested.is_empty()
        && let Ok(v) = HeaderValue::from_str(&requested.join(","))
    {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    Some(out)
}

fn decorate_simple<B>(policy: &Policy, origin: HeaderValue, resp: &mut Response<B>) {
    let headers = resp.headers_mut();
    let vary = match headers.get(header::VARY).and_then(|v| v.to_str().ok()) {
        Some(v) => HeaderValue::from_str(&format!("{v},Origin")).ok(),
        None => Some(HeaderValue::from_static("Origin")),
    };
    if let Some(vary) = vary {
        headers.insert(header::VARY, vary);
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if policy.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if let Some(expose) = &policy.expose_headers {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Cors<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let policy = &self.policy;
        let asked = if req.method() == Method::OPTIONS {
            Asked::Preflight(preflight_headers(policy, req.headers()))
        } else {
            match policy.origin(req.headers()) {
                Some(origin) => Asked::Simple(origin),
                None => Asked::Nothing,
            }
        };
        let policy = policy.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            // Something below chose its own CORS headers; oslo defers to it.
            if resp
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            {
                return Ok(resp);
            }
            match asked {
                Asked::Preflight(add) => {
                    if !resp.status().is_success() {
                        resp = Response::new(ResB::default());
                        *resp.status_mut() = StatusCode::OK;
                    }
                    if let Some(add) = add {
                        // Each name once, replacing any the response had (`Vary`).
                        resp.headers_mut().extend(add);
                    }
                }
                Asked::Simple(origin) => decorate_simple(&policy, origin, &mut resp),
                Asked::Nothing => {}
            }
            Ok(resp)
        })
    }
}
