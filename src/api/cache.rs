//! `/v2/cache...`: the image cache API (Glance's `cached_images.py`), admin only
//! by default. Without an image cache every route answers 404 "Caching via API
//! is not supported at this site." (after the policy check, as in Glance).

use glance_layers::cache::{CacheOp, CacheReply, ClearTarget};
use glance_layers::{ImageError, ImageResponse, Operation, RequestContext};
use http::{HeaderValue, Response, StatusCode, header, request::Parts};
use serde_json::json;

use super::errors::ApiError;
use super::{Api, ApiBody, body, ok_json};

type Result<T> = std::result::Result<T, ApiError>;

const CLEAR_TARGET: &str = "x-image-cache-clear-target";

async fn run(api: &Api, ctx: RequestContext, op: CacheOp) -> Result<CacheReply> {
    match api.call_stack(ctx, Operation::Cache(op)).await? {
        ImageResponse::Cache(reply) => Ok(reply),
        _ => Err(ImageError::internal("the cache API answered with something else").into()),
    }
}

/// What webob sends for an action that returns nothing: the status, an empty
/// HTML body.
fn empty(status: StatusCode) -> Response<ApiBody> {
    let mut resp = body::no_content_html();
    *resp.status_mut() = status;
    resp
}

/// `GET /v2/cache`: this node's cached and queued images.
pub(super) async fn state(api: &Api, ctx: RequestContext) -> Result<Response<ApiBody>> {
    let CacheReply::State(state) = run(api, ctx, CacheOp::List).await? else {
        return Err(ImageError::internal("cache list answered with something else").into());
    };
    let cached: Vec<_> = state
        .cached
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "image_id": c.image_id,
                "last_accessed": c.last_accessed,
                "last_modified": c.last_modified,
                "size": c.size,
                "hits": c.hits,
                "checksum": c.checksum,
            })
        })
        .collect();
    Ok(ok_json(
        StatusCode::OK,
        &json!({"cached_images": cached, "queued_images": state.queued}),
    ))
}

/// `PUT /v2/cache/{image_id}`: 202, the prefetcher fills it.
pub(super) async fn queue(api: &Api, ctx: RequestContext, id: String) -> Result<Response<ApiBody>> {
    run(api, ctx, CacheOp::Queue { id }).await?;
    Ok(empty(StatusCode::ACCEPTED))
}

/// `DELETE /v2/cache/{image_id}`.
pub(super) async fn delete(
    api: &Api,
    ctx: RequestContext,
    id: String,
) -> Result<Response<ApiBody>> {
    run(api, ctx, CacheOp::Delete { id }).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `DELETE /v2/cache`: the cache, the queue, or both (no or an empty header).
pub(super) async fn clear(
    api: &Api,
    ctx: RequestContext,
    parts: &Parts,
) -> Result<Response<ApiBody>> {
    let target = parts
        .headers
        .get(CLEAR_TARGET)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_lowercase());
    // An unknown target is refused by the cache layer, after the policy and
    // the enabled check, as Glance reads the header last.
    let target = match target.as_deref() {
        None | Some("") => ClearTarget::All,
        Some("cache") => ClearTarget::Cache,
        Some("queue") => ClearTarget::Queue,
        Some(_) => ClearTarget::Invalid,
    };
    run(api, ctx, CacheOp::Clear(target)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `GET /v2/cache/nodes/{image_id}`: the nodes caching the image.
pub(super) async fn nodes(api: &Api, ctx: RequestContext, id: String) -> Result<Response<ApiBody>> {
    let CacheReply::Nodes(nodes) = run(api, ctx, CacheOp::Nodes { id }).await? else {
        return Err(ImageError::internal("cache nodes answered with something else").into());
    };
    Ok(ok_json(StatusCode::OK, &nodes))
}

/// `POST /v2/cache/clean`.
pub(super) async fn clean(api: &Api, ctx: RequestContext) -> Result<Response<ApiBody>> {
    run(api, ctx, CacheOp::Clean).await?;
    Ok(empty(StatusCode::OK))
}

/// `POST /v2/cache/prune`.
pub(super) async fn prune(api: &Api, ctx: RequestContext) -> Result<Response<ApiBody>> {
    let CacheReply::Pruned(p) = run(api, ctx, CacheOp::Prune).await? else {
        return Err(ImageError::internal("cache prune answered with something else").into());
    };
    let mut resp = ok_json(
        StatusCode::OK,
        &json!({"total_files_pruned": p.files, "total_bytes_pruned": p.bytes}),
    );
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
