//! HTTP ⇄ domain: the Images API v2 as Glance serves it, over the domain stack.
//!
//! This module parses paths, queries, headers and JSON into [`ImageRequest`]s, and
//! renders what the stack answers (or the [`ImageError`] it fails with) as Glance's
//! status codes, headers and bodies. It holds no image logic of its own.

pub(crate) mod accept;
mod body;
mod cache;
mod data;
mod discovery;
mod errors;
mod images;
mod import;
#[doc(hidden)] // public for benches/render.rs only
pub mod json;
mod locations;
mod members;
mod metadefs;
pub mod parse;
#[doc(hidden)] // public for benches/render.rs only
pub mod render;
mod routes;
pub use routes::label as route_label;
mod schemas;
mod tags;
mod tasks;
mod versions;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use glance_layers::{
    BoxFuture, BoxImageService, Credentials, ImageError, ImageRequest, ImageResponse, Operation,
    RequestContext,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header, request::Parts};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower::{Service, ServiceExt};

use body::RequestBody;
pub(crate) use body::full as full_body;
pub use body::{ApiBody, BoxError};
use errors::ApiError;
pub(crate) use errors::error_response;
pub use errors::webob_error;
/// The metadef body checks, which the catalogue loader applies to its files too.
pub(crate) use metadefs::parse as metadefs_parse;
use parse::PageLimits;
use routes::Route;

/// The OpenAPI 3 document of everything served, at `/v2/openapi.json`.
pub const OPENAPI: &[u8] = include_bytes!("openapi.json");

/// The request id header, as Glance names it.
pub const REQUEST_ID: &str = "x-openstack-request-id";

/// What the HTTP side needs to know beyond the domain stack.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Glance's `public_endpoint`: the base of absolute URLs; else the `Host` header.
    pub public_endpoint: Option<String>,
    pub page_limits: PageLimits,
    /// Largest JSON request body accepted.
    pub max_json_body: usize,
    /// A request body that brings no byte for this long ends the request
    /// (`client_socket_timeout`); `None` waits forever.
    pub body_idle_timeout: Option<std::time::Duration>,
    /// Enabled store ids, for `OpenStack-image-store-ids`; empty without
    /// `enabled_backends` (then requests name no stores).
    pub store_ids: Vec<String>,
    /// Keystone's URI for `WWW-Authenticate`, when Keystone authenticates callers.
    pub www_authenticate: Option<String>,
    /// `enabled_import_methods`, for `/v2/info/import`, the
    /// `OpenStack-image-import-methods` header and the import body checks.
    pub import_methods: Vec<String>,
    /// What configuration adds to every image shown (`direct_url`).
    pub image_view: render::ImageView,
    /// Whether this node has an image cache: it adds versions to the versions
    /// document.
    pub image_cache: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            public_endpoint: None,
            page_limits: PageLimits {
                default: 25,
                max: 1000,
            },
            max_json_body: 15 << 20,
            body_idle_timeout: None,
            store_ids: Vec::new(),
            www_authenticate: None,
            import_methods: Vec::new(),
            image_view: render::ImageView::default(),
            image_cache: false,
        }
    }
}

/// The API as a tower service over HTTP requests.
#[derive(Clone)]
pub struct Api {
    stack: BoxImageService,
    config: Arc<ApiConfig>,
}

impl Api {
    pub fn new(stack: BoxImageService, config: ApiConfig) -> Self {
        Api {
            stack,
            config: Arc::new(config),
        }
    }
}

impl<B> Service<Request<B>> for Api
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ApiBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<ApiBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let api = self.clone();
        Box::pin(async move { Ok(api.handle(req).await) })
    }
}

fn not_found() -> ImageError {
    ImageError::NotFound("The resource could not be found.".into())
}

/// Routes whose body Glance never reads (it sets no `body_reject` on them): a
/// body there is ignored rather than refused. Every other route that takes no
/// body refuses one, as Glance does.
fn ignores_body(route: &Route, method: &Method) -> bool {
    matches!(
        (route, method),
        (
            Route::Images | Route::InfoUsage | Route::OpenApi | Route::Tasks | Route::Task(_),
            &Method::GET
        ) | (Route::Task(_), &Method::DELETE)
            // Glance's cache routes read no body (only the GETs refuse one).
            | (
                Route::Cache | Route::CacheImage(_),
                &Method::DELETE | &Method::PUT
            )
            | (Route::CacheClean | Route::CachePrune, &Method::POST)
    )
}

/// What reading a request body failed with, as the client should learn it.
fn body_error(e: BoxError) -> ApiError {
    if e.is::<http_body_util::LengthLimitError>() {
        ApiError::BodyTooLarge
    } else {
        stream_error(e).into()
    }
}

/// What a failing image data stream means to the upload it feeds.
fn stream_error(e: BoxError) -> ImageError {
    if let Some(idle) = e.downcast_ref::<body::BodyIdle>() {
        ImageError::Invalid(format!(
            "No request body data was received for {} seconds.",
            idle.0.as_secs()
        ))
    } else {
        tracing::debug!(error = %e, "request body failed");
        ImageError::ClientGone
    }
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// The headers keystonemiddleware sets for the services behind it.
const IDENTITY_HEADERS: &[&str] = &[
    "x-identity-status",
    "x-user-id",
    "x-user-name",
    "x-user-domain-id",
    "x-user-domain-name",
    "x-project-id",
    "x-project-name",
    "x-project-domain-id",
    "x-project-domain-name",
    "x-tenant-id",
    "x-domain-id",
    "x-domain-name",
    "x-roles",
    "x-is-admin-project",
    "openstack-system-scope",
    "x-service-identity-status",
    "x-service-user-id",
    "x-service-project-id",
    "x-service-roles",
];

/// The credentials the auth layer will judge, as the edge found them.
pub(crate) fn credentials(headers: &HeaderMap) -> Credentials {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let identity_headers: BTreeMap<String, String> = IDENTITY_HEADERS
        .iter()
        .filter_map(|name| Some((name.to_string(), get(name)?)))
        .collect();
    Credentials {
        // keystonemiddleware also takes Swift's name for it.
        auth_token: get("x-auth-token").or_else(|| get("x-storage-token")),
        service_token: get("x-service-token"),
        identity_headers,
    }
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

impl Api {
    fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(p) = &self.config.public_endpoint {
            return p.trim_end_matches('/').to_string();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    async fn handle<B: RequestBody>(&self, req: Request<B>) -> Response<ApiBody> {
        let (parts, body) = req.into_parts();
        let body = body::IdleTimeout::new(body, self.config.body_idle_timeout);
        if parts.method == Method::OPTIONS {
            let mut resp = Response::new(body::empty());
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            return resp;
        }
        let path = percent_encoding::percent_decode_str(parts.uri.path())
            .decode_utf8_lossy()
            .into_owned();
        let base = self.base_url(&parts.headers);
        let versions = |status: StatusCode| {
            body::json(
                status,
                json::to_vec(&versions::document(&base, self.config.image_cache)),
            )
        };
        if path == "/" {
            return versions(StatusCode::MULTIPLE_CHOICES);
        }
        if path == "/versions" || path == "/versions/" {
            return versions(StatusCode::OK);
        }
        let trimmed = path.trim_start_matches('/');
        let (prefix, rest) = match trimmed.split_once('/') {
            Some((p, r)) => (p, Some(r)),
            None => (trimmed, None),
        };
        if !versions::is_served(prefix, self.config.image_cache) {
            return versions(StatusCode::MULTIPLE_CHOICES);
        }
        let Some(rest) = rest else {
            let mut resp = Response::new(body::empty());
            *resp.status_mut() = StatusCode::FOUND;
            if let Ok(loc) = HeaderValue::from_str(&format!("{base}/{prefix}/")) {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            return resp;
        };
        let route = Route::parse(rest);
        let result = if route == Route::NotFound
            || (!route.rejects_other_methods() && !route.methods().contains(&parts.method))
        {
            Err(not_found().into())
        } else if !route.methods().contains(&parts.method) {
            return self.method_not_allowed(&route, &parts);
        } else if !route.takes_body(&parts.method)
            && !ignores_body(&route, &parts.method)
            && has_body(&parts.headers)
        {
            Err(ImageError::Invalid("A body is not expected with this request.".into()).into())
        } else {
            self.dispatch(route.clone(), &parts, body, &base).await
        };
        match result {
            Ok(resp) => resp,
            Err(e) => {
                let mut resp = errors::error_response(
                    &e,
                    &parts.headers,
                    self.config.www_authenticate.as_deref(),
                );
                if matches!(route, Route::Image(_))
                    && resp.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE
                {
                    resp.headers_mut().insert(
                        "accept-patch",
                        HeaderValue::from_static("application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch"),
                    );
                }
                resp
            }
        }
    }

    fn method_not_allowed(&self, route: &Route, parts: &Parts) -> Response<ApiBody> {
        let allow: Vec<&str> = route.methods().iter().map(Method::as_str).collect();
        let mut resp = webob_error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!(
                "The method {} is not allowed for this resource.",
                parts.method
            ),
            &parts.headers,
        );
        if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        resp
    }

    fn context(&self, parts: &Parts) -> RequestContext {
        RequestContext {
            request_id: parts
                .headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            credentials: credentials(&parts.headers),
            identity: None,
            loaded: Default::default(),
            // The access log's slot, when the edge put one in.
            caller: parts.extensions.get().cloned().unwrap_or_default(),
        }
    }

    async fn call_stack(
        &self,
        ctx: RequestContext,
        op: Operation,
    ) -> Result<ImageResponse, ImageError> {
        self.stack.clone().oneshot(ImageRequest::new(ctx, op)).await
    }

    async fn json_body<B: RequestBody>(&self, body: B) -> Result<serde_json::Value, ApiError> {
        let collected = Limited::new(body, self.config.max_json_body)
            .collect()
            .await
            .map_err(body_error)?;
        Ok(parse::json_body(&collected.to_bytes())?)
    }

    /// Hands the request to the resource it is for.
    async fn dispatch<B: RequestBody>(
        &self,
        route: Route,
        parts: &Parts,
        body: B,
        base: &str,
    ) -> Result<Response<ApiBody>, ApiError> {
        let ctx = self.context(parts);
        let m = &parts.method;
        match route {
            Route::Images if m == Method::GET => images::list(self, ctx, parts).await,
            Route::Images if m == Method::POST => images::create(self, ctx, body, base).await,
            Route::Image(id) if m == Method::GET => images::show(self, ctx, id).await,
            Route::Image(id) if m == Method::PATCH => {
                images::update(self, ctx, id, parts, body).await
            }
            Route::Image(id) if m == Method::DELETE => images::delete(self, ctx, id).await,
            Route::Deactivate(id) => images::deactivate(self, ctx, id).await,
            Route::Reactivate(id) => images::reactivate(self, ctx, id).await,
            Route::ImageFile(id) if m == Method::PUT => {
                data::upload(self, ctx, id, parts, body).await
            }
            Route::ImageFile(id) if m == Method::GET => data::download(self, ctx, id, parts).await,
            Route::Stage(id) => import::stage(self, ctx, id, parts, body).await,
            Route::Import(id) => import::import(self, ctx, id, parts, body).await,
            Route::StoreImage(store_id, id) => {
                data::delete_from_store(self, ctx, id, store_id).await
            }
            Route::ImageTag(id, tag) if m == Method::PUT => tags::add(self, ctx, id, tag).await,
            Route::ImageTag(id, tag) if m == Method::DELETE => {
                tags::delete(self, ctx, id, tag).await
            }
            Route::Members(id) if m == Method::GET => members::list(self, ctx, id).await,
            Route::Members(id) if m == Method::POST => members::add(self, ctx, id, body).await,
            Route::Member(id, member) if m == Method::GET => {
                members::show(self, ctx, id, member).await
            }
            Route::Member(id, member) if m == Method::PUT => {
                members::update(self, ctx, id, member, body).await
            }
            Route::Member(id, member) if m == Method::DELETE => {
                members::delete(self, ctx, id, member).await
            }
            Route::ImageTasks(id) => tasks::of_image(self, ctx, id).await,
            Route::ImageLocations(id) if m == Method::POST => {
                locations::add(self, ctx, id, body).await
            }
            Route::ImageLocations(id) if m == Method::GET => locations::list(self, ctx, id).await,
            Route::Tasks if m == Method::GET => tasks::list(self, ctx, parts).await,
            Route::Tasks if m == Method::POST => tasks::create(self, ctx, body).await,
            Route::Task(id) if m == Method::GET => tasks::show(self, ctx, id).await,
            Route::Task(_) if m == Method::DELETE => tasks::delete(self, ctx, parts).await,
            Route::Schema(name) => discovery::schema(self, ctx, name).await,
            Route::OpenApi => discovery::openapi(self, ctx).await,
            Route::InfoImport => discovery::import_info(self, ctx).await,
            Route::InfoStores { detail } => discovery::stores(self, ctx, detail).await,
            Route::InfoUsage => discovery::usage(self, ctx).await,
            Route::Cache if m == Method::GET => cache::state(self, ctx).await,
            Route::Cache if m == Method::DELETE => cache::clear(self, ctx, parts).await,
            Route::CacheImage(id) if m == Method::PUT => cache::queue(self, ctx, id).await,
            Route::CacheImage(id) if m == Method::DELETE => cache::delete(self, ctx, id).await,
            Route::CacheNodes(id) => cache::nodes(self, ctx, id).await,
            Route::CacheClean => cache::clean(self, ctx).await,
            Route::CachePrune => cache::prune(self, ctx).await,
            r if r.is_metadef() => metadefs::handle(self, ctx, r, parts, body, base).await,
            _ => Err(not_found().into()),
        }
    }
}

/// A JSON response in Glance's formatting.
fn ok_json<T: serde::Serialize + ?Sized>(status: StatusCode, v: &T) -> Response<ApiBody> {
    body::json(status, json::to_vec(v))
}
