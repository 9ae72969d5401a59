//! HTTP ⇄ domain: the Images API v2 as Glance serves it, over the domain stack.
//!
//! This module parses paths, queries, headers and JSON into [`ImageRequest`]s, and
//! renders what the stack answers (or the [`ImageError`] it fails with) as Glance's
//! status codes, headers and bodies. It holds no image logic of its own.

mod body;
mod errors;
#[doc(hidden)] // public for benches/render.rs only
pub mod json;
pub mod parse;
#[doc(hidden)] // public for benches/render.rs only
pub mod render;
mod routes;
mod schemas;
mod versions;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use glance_layers::{
    BoxFuture, BoxImageService, Credentials, ImageData, ImageError, ImageRequest, ImageResponse,
    MemberStatus, Operation, RequestContext,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header, request::Parts};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Limited, StreamBody};
use tower::{Service, ServiceExt};

pub use body::{ApiBody, BoxError};
pub use errors::{status_of, webob_error};
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
    /// Enabled store ids, for `OpenStack-image-store-ids`.
    pub store_ids: Vec<String>,
    /// Keystone's URI for `WWW-Authenticate`, when Keystone authenticates callers.
    pub www_authenticate: Option<String>,
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
            Route::Images | Route::InfoUsage | Route::OpenApi,
            &Method::GET
        )
    )
}

/// What reading a request body failed with, as the client should learn it.
fn body_error(e: BoxError) -> ImageError {
    if e.is::<http_body_util::LengthLimitError>() {
        ImageError::TooLarge("The request body is too large.".into())
    } else if let Some(idle) = e.downcast_ref::<body::BodyIdle>() {
        ImageError::BadRequest(format!(
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
fn credentials(headers: &HeaderMap) -> Credentials {
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

    async fn handle<B>(&self, req: Request<B>) -> Response<ApiBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
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
        let versions =
            |status: StatusCode| body::json(status, json::to_vec(&versions::document(&base)));
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
        if !versions::is_served(prefix) {
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
        let result = if route == Route::NotFound {
            Err(not_found())
        } else if !route.methods().contains(&parts.method) {
            return self.method_not_allowed(&route, &parts);
        } else if !route.takes_body(&parts.method)
            && !ignores_body(&route, &parts.method)
            && has_body(&parts.headers)
        {
            Err(ImageError::BadRequest(
                "A body is not expected with this request.".into(),
            ))
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
        }
    }

    async fn call_stack(
        &self,
        ctx: RequestContext,
        op: Operation,
    ) -> Result<ImageResponse, ImageError> {
        self.stack.clone().oneshot(ImageRequest::new(ctx, op)).await
    }

    async fn json_body<B>(&self, body: B) -> Result<serde_json::Value, ImageError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let collected = Limited::new(body, self.config.max_json_body)
            .collect()
            .await
            .map_err(body_error)?;
        parse::json_body(&collected.to_bytes())
    }

    async fn dispatch<B>(
        &self,
        route: Route,
        parts: &Parts,
        body: B,
        base: &str,
    ) -> Result<Response<ApiBody>, ImageError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let ctx = self.context(parts);
        let image_of = |resp: ImageResponse| resp.into_image();
        Ok(match (route, &parts.method) {
            (Route::Images, &Method::GET) => {
                let pairs: Vec<(String, String)> =
                    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                        .into_owned()
                        .collect();
                let query = parse::list_query(&pairs, self.config.page_limits)?;
                let limit = query.limit;
                let ImageResponse::Images(page) =
                    self.call_stack(ctx, Operation::List(query)).await?
                else {
                    return Err(ImageError::internal("list answered with something else"));
                };
                ok_json(StatusCode::OK, &list_body(&page.images, &pairs, limit))
            }
            (Route::Images, &Method::POST) => {
                let new = parse::new_image(&self.json_body(body).await?)?;
                let image = image_of(self.call_stack(ctx, Operation::Create(new)).await?)?;
                let mut resp = ok_json(StatusCode::CREATED, &render::image(&image));
                if let Ok(loc) = HeaderValue::from_str(&format!("{base}/v2/images/{}", image.id)) {
                    resp.headers_mut().insert(header::LOCATION, loc);
                }
                if !self.config.store_ids.is_empty()
                    && let Ok(v) = HeaderValue::from_str(&self.config.store_ids.join(","))
                {
                    resp.headers_mut().insert("openstack-image-store-ids", v);
                }
                resp
            }
            (Route::Image(id), &Method::GET) => {
                let image = image_of(self.call_stack(ctx, Operation::Get { id }).await?)?;
                ok_json(StatusCode::OK, &render::image(&image))
            }
            (Route::Image(id), &Method::PATCH) => {
                let draft4 = match media_type(&parts.headers).as_deref() {
                    Some("application/openstack-images-v2.1-json-patch") => false,
                    Some("application/openstack-images-v2.0-json-patch") => true,
                    other => {
                        return Err(ImageError::UnsupportedMediaType(format!(
                            "The request media type {} is not supported by this server.",
                            other.unwrap_or("${CONTENT_TYPE}")
                        )));
                    }
                };
                let changes =
                    glance_layers::patch::parse_changes(&self.json_body(body).await?, draft4)?;
                let image = image_of(
                    self.call_stack(ctx, Operation::Update { id, changes })
                        .await?,
                )?;
                ok_json(StatusCode::OK, &render::image(&image))
            }
            (Route::Image(id), &Method::DELETE) => {
                self.call_stack(ctx, Operation::Delete { id }).await?;
                body::no_content_html()
            }
            (Route::ImageFile(id), &Method::PUT) => {
                match media_type(&parts.headers).as_deref() {
                    Some("application/octet-stream") => {}
                    other => {
                        return Err(ImageError::UnsupportedMediaType(format!(
                            "Invalid content type {}",
                            other.unwrap_or("None")
                        )));
                    }
                }
                let header_u64 = |name: &str| -> Result<Option<u64>, ImageError> {
                    match parts
                        .headers
                        .get(name)
                        .map(|v| v.to_str().unwrap_or("").trim().to_string())
                    {
                        None => Ok(None),
                        Some(v) => v.parse().map(Some).map_err(|_| {
                            ImageError::BadRequest(format!("Invalid value for header {name}: {v}"))
                        }),
                    }
                };
                let expected = match header_u64("x-openstack-image-size")? {
                    Some(n) => Some(n),
                    None => header_u64("content-length")?,
                };
                let stream = body.into_data_stream().map_err(|e| body_error(e.into()));
                let data = ImageData::new(stream, expected);
                let store = parts
                    .headers
                    .get("x-image-meta-store")
                    .and_then(|v| v.to_str().ok())
                    .map(|s| s.trim().to_string());
                self.call_stack(ctx, Operation::Upload { id, data, store })
                    .await?;
                body::no_content_html()
            }
            (Route::ImageFile(id), &Method::GET) => {
                let range = match parts.headers.get(header::RANGE) {
                    Some(v) => Some(parse::range(v.to_str().unwrap_or(""))?),
                    None => None,
                };
                download_response(
                    self.call_stack(ctx, Operation::Download { id, range })
                        .await?,
                )?
            }
            (Route::ImageTag(id, tag), &Method::PUT) => {
                self.call_stack(ctx, Operation::AddTag { id, tag }).await?;
                body::no_content_html()
            }
            (Route::ImageTag(id, tag), &Method::DELETE) => {
                self.call_stack(ctx, Operation::DeleteTag { id, tag })
                    .await?;
                body::no_content_html()
            }
            (Route::Deactivate(id), _) => {
                self.call_stack(ctx, Operation::Deactivate { id }).await?;
                body::no_content_html()
            }
            (Route::Reactivate(id), _) => {
                self.call_stack(ctx, Operation::Reactivate { id }).await?;
                body::no_content_html()
            }
            (Route::Members(id), &Method::GET) => {
                match self.call_stack(ctx, Operation::ListMembers { id }).await? {
                    ImageResponse::Members(ms) => ok_json(StatusCode::OK, &render::members(&ms)),
                    _ => return Err(ImageError::internal("members answered with something else")),
                }
            }
            (Route::Members(id), &Method::POST) => {
                let body = self.json_body(body).await?;
                let member_id = match body.get("member") {
                    None => {
                        return Err(ImageError::BadRequest(
                            "Member to be added not specified".into(),
                        ));
                    }
                    Some(serde_json::Value::String(s)) if s.is_empty() => {
                        return Err(ImageError::BadRequest("Member can't be empty".into()));
                    }
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                member_response(
                    self.call_stack(ctx, Operation::AddMember { id, member_id })
                        .await?,
                )?
            }
            (Route::Member(id, member_id), &Method::GET) => member_response(
                self.call_stack(ctx, Operation::GetMember { id, member_id })
                    .await?,
            )?,
            (Route::Member(id, member_id), &Method::PUT) => {
                let body = self.json_body(body).await?;
                let status: MemberStatus = match body.get("status") {
                    None => return Err(ImageError::BadRequest("Status not specified".into())),
                    Some(v) => v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                        ImageError::BadRequest("Incorrect request: Status must be \"pending\", \"accepted\" or \"rejected\".".into())
                    })?,
                };
                member_response(
                    self.call_stack(
                        ctx,
                        Operation::UpdateMember {
                            id,
                            member_id,
                            status,
                        },
                    )
                    .await?,
                )?
            }
            (Route::Member(id, member_id), &Method::DELETE) => {
                self.call_stack(ctx, Operation::DeleteMember { id, member_id })
                    .await?;
                body::no_content()
            }
            (Route::Schema(name), _) => {
                self.call_stack(ctx, Operation::Authenticate).await?;
                let doc = schemas::document(name).ok_or_else(not_found)?;
                body::json(StatusCode::OK, doc.to_vec())
            }
            (Route::OpenApi, _) => {
                self.call_stack(ctx, Operation::Authenticate).await?;
                body::json(StatusCode::OK, OPENAPI.to_vec())
            }
            (Route::StoreImage(store_id, id), _) => {
                self.call_stack(ctx, Operation::DeleteFromStore { id, store_id })
                    .await?;
                body::no_content_html()
            }
            (Route::InfoImport, _) => {
                self.call_stack(ctx, Operation::Authenticate).await?;
                ok_json(
                    StatusCode::OK,
                    &serde_json::json!({"import-methods": {
                        "description": "Import methods available.",
                        "type": "array",
                        "value": [],
                    }}),
                )
            }
            (Route::InfoStores { detail }, _) => {
                match self
                    .call_stack(ctx, Operation::StoresInfo { detail })
                    .await?
                {
                    ImageResponse::Stores(s) => {
                        ok_json(StatusCode::OK, &render::stores(&s, detail))
                    }
                    _ => return Err(ImageError::internal("stores answered with something else")),
                }
            }
            (Route::InfoUsage, _) => match self.call_stack(ctx, Operation::Usage).await? {
                ImageResponse::Usage(u) => ok_json(StatusCode::OK, &render::usage(&u)),
                _ => return Err(ImageError::internal("usage answered with something else")),
            },
            _ => return Err(not_found()),
        })
    }
}

fn member_response(resp: ImageResponse) -> Result<Response<ApiBody>, ImageError> {
    match resp {
        ImageResponse::Member(m) => Ok(body::json(
            StatusCode::OK,
            json::to_vec(&render::member(&m)),
        )),
        _ => Err(ImageError::internal(
            "member operation answered with something else",
        )),
    }
}

/// A list page: `images`, `first`, `schema`, then `next` when the page is full.
#[derive(serde::Serialize)]
struct ListBody<'a> {
    images: Vec<render::ImageJson<'a>>,
    first: String,
    schema: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// `first` and `next` as Glance writes them: the request's query re-encoded, each
/// parameter once (last value, first position), without `marker`.
fn list_body<'a>(
    images: &'a [glance_layers::Image],
    pairs: &[(String, String)],
    limit: u64,
) -> ListBody<'a> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (k, v) in pairs.iter().filter(|(k, _)| k != "marker") {
        match seen.iter_mut().find(|(sk, _)| *sk == k.as_str()) {
            Some(slot) => slot.1 = v.as_str(),
            None => seen.push((k.as_str(), v.as_str())),
        }
    }
    let query: Vec<String> = seen
        .iter()
        .map(|(k, v)| format!("{}={}", parse::quote_plus(k), parse::quote_plus(v)))
        .collect();
    let first = if query.is_empty() {
        "/v2/images".to_string()
    } else {
        format!("/v2/images?{}", query.join("&"))
    };
    let next = images
        .last()
        .filter(|_| limit > 0 && images.len() as u64 == limit)
        .map(|last| {
            let sep = if first.contains('?') { '&' } else { '?' };
            format!("{first}{sep}marker={}", last.id)
        });
    ListBody {
        images: images.iter().map(render::image).collect(),
        first,
        schema: "/v2/schemas/images",
        next,
    }
}

/// A JSON response in Glance's formatting.
fn ok_json<T: serde::Serialize + ?Sized>(status: StatusCode, v: &T) -> Response<ApiBody> {
    body::json(status, json::to_vec(v))
}

fn download_response(resp: ImageResponse) -> Result<Response<ApiBody>, ImageError> {
    let download = match resp {
        ImageResponse::Data(d) => d,
        ImageResponse::NoData(_) => return Ok(body::no_content()),
        _ => {
            return Err(ImageError::internal(
                "download answered with something else",
            ));
        }
    };
    let size = download.image.size.unwrap_or_default();
    let frames = download
        .data
        .map_ok(Frame::data)
        .map_err(|e| -> BoxError { Box::new(e) });
    let mut resp = Response::new(StreamBody::new(frames.boxed()).boxed_unsync());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(download.length));
    if let Some(md5) = download
        .image
        .checksum
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        h.insert("content-md5", md5);
    }
    if let Some(r) = &download.range {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            r.start,
            r.end.saturating_sub(1),
            size
        )) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}
