//! `/v2/images/{id}/tags/{tag}`: add and remove one tag.

use glance_layers::{Operation, RequestContext};
use http::Response;

use super::errors::ApiError;
use super::{Api, ApiBody, body};

pub(super) async fn add(
    api: &Api,
    ctx: RequestContext,
    id: String,
    tag: String,
) -> Result<Response<ApiBody>, ApiError> {
    api.call_stack(ctx, Operation::AddTag { id, tag }).await?;
    Ok(body::no_content_html())
}

pub(super) async fn delete(
    api: &Api,
    ctx: RequestContext,
    id: String,
    tag: String,
) -> Result<Response<ApiBody>, ApiError> {
    api.call_stack(ctx, Operation::DeleteTag { id, tag })
        .await?;
    Ok(body::no_content_html())
}
