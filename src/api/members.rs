//! `/v2/images/{id}/members[/{member_id}]`: an image's sharing with other projects.

use glance_layers::{ImageError, ImageResponse, MemberStatus, Operation, RequestContext};
use http::{Response, StatusCode};

use super::body::RequestBody;
use super::errors::ApiError;
use super::{Api, ApiBody, body, ok_json, render};

type Result<T> = std::result::Result<T, ApiError>;

pub(super) async fn list(api: &Api, ctx: RequestContext, id: String) -> Result<Response<ApiBody>> {
    match api.call_stack(ctx, Operation::ListMembers { id }).await? {
        ImageResponse::Members(ms) => Ok(ok_json(StatusCode::OK, &render::members(&ms))),
        _ => Err(ImageError::internal("members answered with something else").into()),
    }
}

pub(super) async fn add<B: RequestBody>(
    api: &Api,
    ctx: RequestContext,
    id: String,
    body: B,
) -> Result<Response<ApiBody>> {
    let body = api.json_body(body).await?;
    let member_id = match body.get("member") {
        None => return Err(ImageError::Invalid("Member to be added not specified".into()).into()),
        Some(serde_json::Value::String(s)) if s.is_empty() => {
            return Err(ImageError::Invalid("Member can't be empty".into()).into());
        }
        Some(serde_json::Value::String(s)) => s.clone(),
        // Glance takes any JSON value and uses its text.
        Some(other) => other.to_string(),
    };
    member_response(
        api.call_stack(ctx, Operation::AddMember { id, member_id })
            .await?,
    )
}

pub(super) async fn show(
    api: &Api,
    ctx: RequestContext,
    id: String,
    member_id: String,
) -> Result<Response<ApiBody>> {
    member_response(
        api.call_stack(ctx, Operation::GetMember { id, member_id })
            .await?,
    )
}

pub(super) async fn update<B: RequestBody>(
    api: &Api,
    ctx: RequestContext,
    id: String,
    member_id: String,
    body: B,
) -> Result<Response<ApiBody>> {
    let body = api.json_body(body).await?;
    let status: MemberStatus = match body.get("status") {
        None => return Err(ImageError::Invalid("Status not specified".into()).into()),
        Some(v) => v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
            ImageError::Invalid(
                "Incorrect request: Status must be \"pending\", \"accepted\" or \"rejected\"."
                    .into(),
            )
        })?,
    };
    let op = Operation::UpdateMember {
        id,
        member_id,
        status,
    };
    member_response(api.call_stack(ctx, op).await?)
}

pub(super) async fn delete(
    api: &Api,
    ctx: RequestContext,
    id: String,
    member_id: String,
) -> Result<Response<ApiBody>> {
    api.call_stack(ctx, Operation::DeleteMember { id, member_id })
        .await?;
    Ok(body::no_content())
}

fn member_response(resp: ImageResponse) -> Result<Response<ApiBody>> {
    match resp {
        ImageResponse::Member(m) => Ok(ok_json(StatusCode::OK, &render::member(&m))),
        _ => Err(ImageError::internal("member operation answered with something else").into()),
    }
}
