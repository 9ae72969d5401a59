//! What a client reads to learn the service: schemas, the OpenAPI document, and
//! `/v2/info/{import,stores,usage}`.

use glance_layers::{ImageError, ImageResponse, Operation, RequestContext};
use http::{Response, StatusCode};

use super::errors::ApiError;
use super::{Api, ApiBody, OPENAPI, body, not_found, ok_json, render, schemas};

type Result<T> = std::result::Result<T, ApiError>;

pub(super) async fn schema(
    api: &Api,
    ctx: RequestContext,
    name: &'static str,
) -> Result<Response<ApiBody>> {
    api.call_stack(ctx, Operation::Authenticate).await?;
    let doc = schemas::document(name).ok_or_else(not_found)?;
    Ok(body::json(StatusCode::OK, doc.to_vec()))
}

pub(super) async fn openapi(api: &Api, ctx: RequestContext) -> Result<Response<ApiBody>> {
    api.call_stack(ctx, Operation::Authenticate).await?;
    Ok(body::json(StatusCode::OK, OPENAPI.to_vec()))
}

/// `enabled_import_methods`, as Glance lists them.
pub(super) async fn import_info(api: &Api, ctx: RequestContext) -> Result<Response<ApiBody>> {
    api.call_stack(ctx, Operation::Authenticate).await?;
    Ok(ok_json(
        StatusCode::OK,
        &serde_json::json!({"import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": api.config.import_methods,
        }}),
    ))
}

pub(super) async fn stores(
    api: &Api,
    ctx: RequestContext,
    detail: bool,
) -> Result<Response<ApiBody>> {
    match api
        .call_stack(ctx, Operation::StoresInfo { detail })
        .await?
    {
        ImageResponse::Stores(s) => Ok(ok_json(StatusCode::OK, &render::stores(&s, detail))),
        _ => Err(ImageError::internal("stores answered with something else").into()),
    }
}

pub(super) async fn usage(api: &Api, ctx: RequestContext) -> Result<Response<ApiBody>> {
    match api.call_stack(ctx, Operation::Usage).await? {
        ImageResponse::Usage(u) => Ok(ok_json(StatusCode::OK, &render::usage(&u))),
        _ => Err(ImageError::internal("usage answered with something else").into()),
    }
}
