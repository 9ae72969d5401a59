//! `PUT /v2/images/{id}/stage` and `POST /v2/images/{id}/import`: interoperable
//! image import. The body checks and their texts are Glance's
//! (`ImagesController`'s request deserializer, `get_stores_from_request`).

use futures_util::TryStreamExt;
use glance_layers::{
    ImageData, ImageError, ImportMethod, ImportRequest, ImportTargets, Operation, RequestContext,
};
use http::{Response, StatusCode, request::Parts};
use http_body_util::BodyExt;

use super::body::RequestBody;
use super::errors::ApiError;
use super::{Api, ApiBody, body, media_type, stream_error};

type Result<T> = std::result::Result<T, ApiError>;

/// `PUT /stage`: the body streams into the staging store.
pub(super) async fn stage<B: RequestBody>(
    api: &Api,
    ctx: RequestContext,
    id: String,
    parts: &Parts,
    body: B,
) -> Result<Response<ApiBody>> {
    // Checked before anything else, as Glance's deserializer does.
    if !api
        .config
        .import_methods
        .iter()
        .any(|m| m == "glance-direct")
    {
        return Err(ImageError::NotFound(
            "'glance-direct' method is not available at this site.".into(),
        )
        .into());
    }
    match media_type(&parts.headers).as_deref() {
        Some("application/octet-stream") => {}
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Invalid content type {}",
                other.unwrap_or("None")
            )));
        }
    }
    let expected = match parts.headers.get("x-openstack-image-size") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ImageError::Invalid("Invalid or missing image size in request headers.".into())
                })?,
        ),
    };
    let expected = expected.or_else(|| {
        parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    let stream = body.into_data_stream().map_err(|e| stream_error(e.into()));
    let data = ImageData::new(stream, expected);
    api.call_stack(ctx, Operation::Stage { id, data }).await?;
    Ok(body::no_content_html())
}

/// `POST /import`: 202 once the import task is started.
pub(super) async fn import<B: RequestBody>(
    api: &Api,
    ctx: RequestContext,
    id: String,
    parts: &Parts,
    body: B,
) -> Result<Response<ApiBody>> {
    let body = api.json_body(body).await?;
    let header_store = parts
        .headers
        .get("x-image-meta-store")
        .map(|v| v.to_str().unwrap_or("").trim().to_string());
    // Without named stores Glance reads neither `stores` nor the header.
    let multistore = !api.config.store_ids.is_empty();
    let request = import_request(body, header_store, &api.config.import_methods, multistore)?;
    api.call_stack(ctx, Operation::Import { id, request })
        .await?;
    let mut resp = body::no_content_html();
    *resp.status_mut() = StatusCode::ACCEPTED;
    Ok(resp)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ImageError::Invalid(message.into()).into()
}

/// The import request, checked as Glance checks it before the image is read.
fn import_request(
    body: serde_json::Value,
    header_store: Option<String>,
    enabled: &[String],
    multistore: bool,
) -> Result<ImportRequest> {
    let method = body
        .get("method")
        .ok_or_else(|| invalid("Import request requires a 'method' field."))?;
    let name = method
        .get("name")
        .ok_or_else(|| invalid("Import request requires a 'name' field."))?;
    let name = name
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| name.to_string());
    if !enabled.contains(&name) {
        return Err(invalid(format!("Unknown import method name '{name}'.")));
    }
    let all_stores_must_succeed = match body.get("all_stores_must_succeed") {
        None => true,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => {
            return Err(invalid(
                "'all_stores_must_succeed' must be boolean value only",
            ));
        }
    };
    let all_stores = match body.get("all_stores") {
        None => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("'all_stores' must be boolean value only")),
    };
    let text = |key: &str| method.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let method = match name.as_str() {
        "glance-direct" => ImportMethod::GlanceDirect,
        "copy-image" => ImportMethod::CopyImage,
        "web-download" => ImportMethod::WebDownload {
            uri: text("uri")
                .ok_or_else(|| invalid("URI for web-download does not pass filtering: None"))?,
        },
        "glance-download" => {
            let region = text("glance_region").ok_or_else(|| {
                invalid("'glance_region' needs to be set for glance-download import method")
            })?;
            let image_id = text("glance_image_id").ok_or_else(|| {
                invalid("'glance_image_id' needs to be set for glance-download import method")
            })?;
            if uuid::Uuid::parse_str(&image_id).is_err() {
                return Err(invalid(format!(
                    "Remote image id does not look like a UUID: {image_id}"
                )));
            }
            ImportMethod::GlanceDownload {
                region,
                image_id,
                interface: text("glance_service_interface").unwrap_or_else(|| "public".into()),
            }
        }
        other => return Err(invalid(format!("Unknown import method name '{other}'."))),
    };
    let targets = if !multistore {
        ImportTargets::Default
    } else if all_stores {
        if body.get("stores").is_some() || header_store.is_some() {
            return Err(invalid(
                "All_stores parameter can't be used with x-image-meta-store header or stores parameter",
            ));
        }
        ImportTargets::All
    } else if let Some(stores) = body.get("stores") {
        if header_store.is_some() {
            return Err(invalid(
                "Stores parameter and x-image-meta-store header can't be both specified",
            ));
        }
        let list = stores
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| invalid("'stores' must be a list of store identifiers"))?;
        ImportTargets::Stores(list)
    } else if let Some(store) = header_store {
        ImportTargets::Stores(vec![store])
    } else {
        ImportTargets::Default
    };
    Ok(ImportRequest {
        method,
        targets,
        all_stores_must_succeed,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn methods() -> Vec<String> {
        ["glance-direct", "web-download", "copy-image"]
            .map(String::from)
            .to_vec()
    }

    fn err(body: serde_json::Value, header: Option<&str>) -> String {
        match import_request(body, header.map(String::from), &methods(), true) {
            Err(ApiError::Image(ImageError::Invalid(m))) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn glance_texts_for_bad_bodies() {
        assert_eq!(
            err(json!({}), None),
            "Import request requires a 'method' field."
        );
        assert_eq!(
            err(json!({"method": {}}), None),
            "Import request requires a 'name' field."
        );
        assert_eq!(
            err(json!({"method": {"name": "glance-download"}}), None),
            "Unknown import method name 'glance-download'."
        );
        assert_eq!(
            err(
                json!({"method": {"name": "copy-image"}, "all_stores": "yes"}),
                None
            ),
            "'all_stores' must be boolean value only"
        );
        assert_eq!(
            err(
                json!({"method": {"name": "copy-image"}, "all_stores_must_succeed": 1}),
                None
            ),
            "'all_stores_must_succeed' must be boolean value only"
        );
        assert_eq!(
            err(
                json!({"method": {"name": "copy-image"}, "all_stores": true, "stores": ["a"]}),
                None
            ),
            "All_stores parameter can't be used with x-image-meta-store header or stores parameter"
        );
        assert_eq!(
            err(
                json!({"method": {"name": "copy-image"}, "stores": ["a"]}),
                Some("b")
            ),
            "Stores parameter and x-image-meta-store header can't be both specified"
        );
    }

    #[test]
    fn without_named_stores_the_stores_asked_for_are_ignored() {
        let req = import_request(
            json!({"method": {"name": "copy-image"}, "all_stores": true, "stores": ["a"]}),
            Some("b".into()),
            &methods(),
            false,
        )
        .unwrap();
        assert_eq!(req.targets, ImportTargets::Default);
    }

    #[test]
    fn targets_come_from_the_body_or_the_header() {
        let req = |body, header: Option<&str>| {
            import_request(body, header.map(String::from), &methods(), true)
                .unwrap()
                .targets
        };
        assert_eq!(
            req(json!({"method": {"name": "glance-direct"}}), None),
            ImportTargets::Default
        );
        assert_eq!(
            req(json!({"method": {"name": "glance-direct"}}), Some("fast")),
            ImportTargets::Stores(vec!["fast".into()])
        );
        assert_eq!(
            req(
                json!({"method": {"name": "glance-direct"}, "stores": ["a", "b"]}),
                None
            ),
            ImportTargets::Stores(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            req(
                json!({"method": {"name": "copy-image"}, "all_stores": true}),
                None
            ),
            ImportTargets::All
        );
    }
}
