//! `/v2/images` and `/v2/images/{id}`: list, create, show, update, delete, and the
//! deactivate/reactivate actions.

use glance_layers::{ImageError, ImageResponse, Operation, RequestContext};
use http::{HeaderValue, Response, StatusCode, header, request::Parts};

use super::body::RequestBody;
use super::errors::ApiError;
use super::{Api, ApiBody, body, media_type, ok_json, parse, render};

type Result<T> = std::result::Result<T, ApiError>;

pub(super) async fn list(
    api: &Api,
    ctx: RequestContext,
    parts: &Parts,
) -> Result<Response<ApiBody>> {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let query = parse::list_query(&pairs, api.config.page_limits)?;
    let limit = query.limit;
    let ImageResponse::Images(page) = api.call_stack(ctx, Operation::List(query)).await? else {
        return Err(ImageError::internal("list answered with something else").into());
    };
    Ok(ok_json(
        StatusCode::OK,
        &list_body(&page.images, &pairs, limit, &api.config.image_view),
    ))
}

pub(super) async fn create<B: RequestBody>(
    api: &Api,
    ctx: RequestContext,
    body: B,
    base: &str,
) -> Result<Response<ApiBody>> {
    let new = parse::new_image(&api.json_body(body).await?)?;
    let image = api
        .call_stack(ctx, Operation::Create(new))
        .await?
        .into_image()?;
    let mut resp = ok_json(
        StatusCode::CREATED,
        &render::image(&image, &api.config.image_view),
    );
    if let Ok(loc) = HeaderValue::from_str(&format!("{base}/v2/images/{}", image.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    let store_ids = &api.config.store_ids;
    if !store_ids.is_empty()
        && let Ok(v) = HeaderValue::from_str(&store_ids.join(","))
    {
        resp.headers_mut().insert("openstack-image-store-ids", v);
    }
    // openstacksdk and OSC decide from this header whether to import.
    let methods = &api.config.import_methods;
    if !methods.is_empty()
        && let Ok(v) = HeaderValue::from_str(&methods.join(","))
    {
        resp.headers_mut()
            .insert("openstack-image-import-methods", v);
    }
    Ok(resp)
}

pub(super) async fn show(api: &Api, ctx: RequestContext, id: String) -> Result<Response<ApiBody>> {
    let image = api
        .call_stack(ctx, Operation::Get { id })
        .await?
        .into_image()?;
    Ok(ok_json(
        StatusCode::OK,
        &render::image(&image, &api.config.image_view),
    ))
}

pub(super) async fn update<B: RequestBody>(
    api: &Api,
    ctx: RequestContext,
    id: String,
    parts: &Parts,
    body: B,
) -> Result<Response<ApiBody>> {
    let draft4 = match media_type(&parts.headers).as_deref() {
        Some("application/openstack-images-v2.1-json-patch") => false,
        Some("application/openstack-images-v2.0-json-patch") => true,
        other => {
            // Glance leaves webob's placeholder in when there is no Content-Type.
            return Err(ApiError::UnsupportedMediaType(format!(
                "The request media type {} is not supported by this server.",
                other.unwrap_or("${CONTENT_TYPE}")
            )));
        }
    };
    let changes = glance_layers::patch::parse_changes(&api.json_body(body).await?, draft4)?;
    let image = api
        .call_stack(ctx, Operation::Update { id, changes })
        .await?
        .into_image()?;
    Ok(ok_json(
        StatusCode::OK,
        &render::image(&image, &api.config.image_view),
    ))
}

pub(super) async fn delete(
    api: &Api,
    ctx: RequestContext,
    id: String,
) -> Result<Response<ApiBody>> {
    api.call_stack(ctx, Operation::Delete { id }).await?;
    Ok(body::no_content_html())
}

pub(super) async fn deactivate(
    api: &Api,
    ctx: RequestContext,
    id: String,
) -> Result<Response<ApiBody>> {
    api.call_stack(ctx, Operation::Deactivate { id }).await?;
    Ok(body::no_content_html())
}

pub(super) async fn reactivate(
    api: &Api,
    ctx: RequestContext,
    id: String,
) -> Result<Response<ApiBody>> {
    api.call_stack(ctx, Operation::Reactivate { id }).await?;
    Ok(body::no_content_html())
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

/// A list's `first` link as Glance writes it: `path` with the request's query
/// re-encoded, each parameter once (last value, first position), without
/// `marker`. Its `next` adds `marker` at the end.
pub(super) fn first_link(path: &str, pairs: &[(String, String)]) -> String {
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
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// `first` and `next` as Glance writes them (see [`first_link`]).
fn list_body<'a>(
    images: &'a [glance_layers::Image],
    pairs: &[(String, String)],
    limit: u64,
    view: &'a render::ImageView,
) -> ListBody<'a> {
    let first = first_link("/v2/images", pairs);
    let next = images
        .last()
        .filter(|_| limit > 0 && images.len() as u64 == limit)
        .map(|last| {
            let sep = if first.contains('?') { '&' } else { '?' };
            format!("{first}{sep}marker={}", last.id)
        });
    ListBody {
        images: images.iter().map(|i| render::image(i, view)).collect(),
        first,
        schema: "/v2/schemas/images",
        next,
    }
}
