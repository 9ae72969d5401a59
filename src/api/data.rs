//! `/v2/images/{id}/file` (upload and download) and `/v2/stores/{store}/{id}`
//! (drop one store's replica): the routes that carry image data.

use futures_util::{StreamExt, TryStreamExt};
use glance_layers::{ImageData, ImageError, ImageResponse, Operation, RequestContext};
use http::{HeaderValue, Response, StatusCode, header, request::Parts};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use super::body::RequestBody;
use super::errors::ApiError;
use super::{Api, ApiBody, BoxError, body, media_type, parse, stream_error};

type Result<T> = std::result::Result<T, ApiError>;

/// `PUT /file`: the body streams through the stack into a store, never whole in
/// memory.
pub(super) async fn upload<B: RequestBody>(
    api: &Api,
    ctx: RequestContext,
    id: String,
    parts: &Parts,
    body: B,
) -> Result<Response<ApiBody>> {
    match media_type(&parts.headers).as_deref() {
        Some("application/octet-stream") => {}
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Invalid content type {}",
                other.unwrap_or("None")
            )));
        }
    }
    let header_u64 = |name: &str| -> std::result::Result<Option<u64>, ImageError> {
        match parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("").trim().to_string())
        {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ImageError::Invalid(format!("Invalid value for header {name}: {v}"))),
        }
    };
    let expected = match header_u64("x-openstack-image-size")? {
        Some(n) => Some(n),
        None => header_u64("content-length")?,
    };
    let stream = body.into_data_stream().map_err(|e| stream_error(e.into()));
    let data = ImageData::new(stream, expected);
    let store = parts
        .headers
        .get("x-image-meta-store")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string());
    api.call_stack(ctx, Operation::Upload { id, data, store })
        .await?;
    Ok(body::no_content_html())
}

/// `GET /file`, whole or one `Range`.
pub(super) async fn download(
    api: &Api,
    ctx: RequestContext,
    id: String,
    parts: &Parts,
) -> Result<Response<ApiBody>> {
    let range = match parts.headers.get(header::RANGE) {
        Some(v) => Some(parse::range(v.to_str().unwrap_or(""))?),
        None => None,
    };
    let download = match api
        .call_stack(ctx, Operation::Download { id, range })
        .await?
    {
        ImageResponse::Data(d) => d,
        ImageResponse::NoData(_) => return Ok(body::no_content()),
        _ => return Err(ImageError::internal("download answered with something else").into()),
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

pub(super) async fn delete_from_store(
    api: &Api,
    ctx: RequestContext,
    id: String,
    store_id: String,
) -> Result<Response<ApiBody>> {
    api.call_stack(ctx, Operation::DeleteFromStore { id, store_id })
        .await?;
    Ok(body::no_content_html())
}
