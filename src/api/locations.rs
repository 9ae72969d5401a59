//! The v2.17 location API: `POST /v2/images/{id}/locations` (202, the work is a
//! `location_import` task) and `GET /v2/images/{id}/locations`. The body checks
//! are Glance's location schema (`get_add_location_properties`), whose
//! `dependentRequired` makes `os_hash_algo` and `os_hash_value` go together.

use glance_layers::import::ValidationData;
use glance_layers::{ImageError, Operation, RequestContext};
use http::{Response, StatusCode};
use serde_json::Value;

use super::body::RequestBody;
use super::errors::ApiError;
use super::{Api, ApiBody, body, ok_json};

type Result<T> = std::result::Result<T, ApiError>;

const ALGORITHMS: [&str; 4] = ["sha1", "sha256", "sha512", "md5"];

pub(super) async fn add<B: RequestBody>(
    api: &Api,
    ctx: RequestContext,
    id: String,
    body: B,
) -> Result<Response<ApiBody>> {
    let body = api.json_body(body).await?;
    let (url, validation) = parse(&body)?;
    api.call_stack(
        ctx,
        Operation::AddLocation {
            id,
            url,
            validation,
        },
    )
    .await?;
    let mut resp = body::no_content_html();
    *resp.status_mut() = StatusCode::ACCEPTED;
    Ok(resp)
}

pub(super) async fn list(api: &Api, ctx: RequestContext, id: String) -> Result<Response<ApiBody>> {
    let image = api
        .call_stack(ctx, Operation::GetLocations { id })
        .await?
        .into_image()?;
    Ok(ok_json(StatusCode::OK, &image.locations))
}

fn schema_error(detail: String) -> ApiError {
    ImageError::Invalid(format!(
        "Provided object does not match schema 'location': {detail}"
    ))
    .into()
}

/// The URL and the validation data of a request body.
fn parse(body: &Value) -> Result<(String, Option<ValidationData>)> {
    let Some(obj) = body.as_object() else {
        return Err(schema_error(format!("{body} is not of type 'object'")));
    };
    let url = match obj.get("url") {
        Some(Value::String(u)) => u.clone(),
        Some(other) => return Err(schema_error(format!("{other} is not of type 'string'"))),
        None => return Err(schema_error("'url' is a required property".into())),
    };
    let validation = match obj.get("validation_data") {
        None => None,
        Some(Value::Object(data)) => {
            if let Some(extra) = data
                .keys()
                .find(|k| !matches!(k.as_str(), "os_hash_algo" | "os_hash_value"))
            {
                return Err(schema_error(format!(
                    "Additional properties are not allowed ('{extra}' was unexpected)"
                )));
            }
            let text = |key: &str, max: usize| -> Result<Option<String>> {
                match data.get(key) {
                    None => Ok(None),
                    Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
                    Some(Value::String(s)) => Err(schema_error(format!("'{s}' is too long"))),
                    Some(other) => Err(schema_error(format!("{other} is not of type 'string'"))),
                }
            };
            let algo = text("os_hash_algo", 64)?;
            let value = text("os_hash_value", 128)?;
            if let Some(a) = &algo
                && !ALGORITHMS.contains(&a.as_str())
            {
                return Err(schema_error(format!(
                    "'{a}' is not one of ['sha1', 'sha256', 'sha512', 'md5']"
                )));
            }
            match (algo, value) {
                (Some(os_hash_algo), Some(os_hash_value)) => Some(ValidationData {
                    os_hash_algo,
                    os_hash_value,
                }),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(schema_error(
                        "'os_hash_value' is a dependency of 'os_hash_algo'".into(),
                    ));
                }
                (None, Some(_)) => {
                    return Err(schema_error(
                        "'os_hash_algo' is a dependency of 'os_hash_value'".into(),
                    ));
                }
            }
        }
        Some(other) => return Err(schema_error(format!("{other} is not of type 'object'"))),
    };
    Ok((url, validation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_body_follows_glances_location_schema() {
        let (url, v) = parse(&json!({"url": "http://a/b"})).unwrap();
        assert_eq!(url, "http://a/b");
        assert!(v.is_none());
        let (_, v) = parse(&json!({"url": "u", "validation_data": {"os_hash_algo": "sha256", "os_hash_value": "ab"}})).unwrap();
        assert_eq!(v.unwrap().os_hash_algo, "sha256");
        for bad in [
            json!([]),
            json!({}),
            json!({"url": 7}),
            json!({"url": "u", "validation_data": {"os_hash_value": "ab"}}),
            json!({"url": "u", "validation_data": {"os_hash_algo": "sha256"}}),
            json!({"url": "u", "validation_data": {"os_hash_algo": "sha123", "os_hash_value": "ab"}}),
            json!({"url": "u", "validation_data": {"os_hash_algo": "md5", "os_hash_value": "ab", "x": 1}}),
            json!({"url": "u", "validation_data": "x"}),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }
}
