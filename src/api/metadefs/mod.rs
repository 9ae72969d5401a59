//! `/v2/metadefs/...`: Glance's metadata definitions API, HTTP ⇄ domain.
//! Creates answer 201 (a namespace also with `Location`), updates 200,
//! deletes 204.

pub(crate) mod parse;
mod render;

use glance_layers::metadef::{MetadefOp, MetadefResponse};
use glance_layers::{ImageError, ImageResponse, RequestContext};
use http::{HeaderValue, Method, Response, StatusCode, header, request::Parts};

use super::body::RequestBody;
use super::errors::ApiError;
use super::routes::Route;
use super::{Api, ApiBody, body, ok_json};

type Result<T> = std::result::Result<T, ApiError>;

fn query_pairs(parts: &Parts) -> Vec<(String, String)> {
    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn query_value(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

/// Serves one metadef route (the router sent only those here).
pub(super) async fn handle<B: RequestBody>(
    api: &Api,
    ctx: RequestContext,
    route: Route,
    parts: &Parts,
    body: B,
    base: &str,
) -> Result<Response<ApiBody>> {
    let m = &parts.method;
    let pairs = query_pairs(parts);
    let takes_body = route.takes_body(m);
    let json = if takes_body {
        Some(api.json_body(body).await?)
    } else {
        None
    };
    let json = || {
        json.as_ref()
            .ok_or_else(|| ImageError::internal("a metadef route read no body"))
    };
    use Route::*;
    let op = match route {
        MetadefNamespaces if m == Method::GET => {
            MetadefOp::ListNamespaces(parse::namespace_query(&pairs, api.config.page_limits)?)
        }
        MetadefNamespaces => MetadefOp::CreateNamespace(Box::new(parse::new_namespace(json()?)?)),
        MetadefNamespace(namespace) if m == Method::GET => MetadefOp::GetNamespace {
            namespace,
            resource_type: query_value(&pairs, "resource_type"),
        },
        MetadefNamespace(namespace) if m == Method::PUT => MetadefOp::UpdateNamespace {
            namespace,
            fields: parse::namespace_fields(json()?)?,
        },
        MetadefNamespace(namespace) => MetadefOp::DeleteNamespace { namespace },
        MetadefResourceTypes => MetadefOp::ListResourceTypes,
        MetadefAssociations(namespace) if m == Method::GET => {
            MetadefOp::ListAssociations { namespace }
        }
        MetadefAssociations(namespace) => MetadefOp::CreateAssociation {
            namespace,
            association: parse::association(json()?, "resource_type_association")?,
        },
        MetadefAssociation(namespace, resource_type) => MetadefOp::DeleteAssociation {
            namespace,
            resource_type,
        },
        MetadefProperties(namespace) if m == Method::GET => MetadefOp::ListProperties { namespace },
        MetadefProperties(namespace) if m == Method::POST => MetadefOp::CreateProperty {
            namespace,
            property: parse::new_property(json()?)?,
        },
        MetadefProperties(namespace) => MetadefOp::DeleteProperties { namespace },
        MetadefProperty(namespace, name) if m == Method::GET => MetadefOp::GetProperty {
            namespace,
            name,
            resource_type: query_value(&pairs, "resource_type"),
        },
        MetadefProperty(namespace, name) if m == Method::PUT => MetadefOp::UpdateProperty {
            namespace,
            name,
            property: parse::new_property(json()?)?,
        },
        MetadefProperty(namespace, name) => MetadefOp::DeleteProperty { namespace, name },
        MetadefObjects(namespace) if m == Method::GET => MetadefOp::ListObjects { namespace },
        MetadefObjects(namespace) if m == Method::POST => MetadefOp::CreateObject {
            namespace,
            object: parse::new_object(json()?)?,
        },
        MetadefObjects(namespace) => MetadefOp::DeleteObjects { namespace },
        MetadefObject(namespace, name) if m == Method::GET => {
            MetadefOp::GetObject { namespace, name }
        }
        MetadefObject(namespace, name) if m == Method::PUT => MetadefOp::UpdateObject {
            namespace,
            name,
            object: parse::new_object(json()?)?,
        },
        MetadefObject(namespace, name) => MetadefOp::DeleteObject { namespace, name },
        MetadefTags(namespace) if m == Method::GET => MetadefOp::ListTags { namespace },
        MetadefTags(namespace) if m == Method::POST => MetadefOp::CreateTags {
            namespace,
            tags: parse::tags(json()?)?,
            append: parse::is_true(
                parts
                    .headers
                    .get("x-openstack-append")
                    .and_then(|v| v.to_str().ok()),
            ),
        },
        MetadefTags(namespace) => MetadefOp::DeleteTags { namespace },
        MetadefTag(namespace, name) if m == Method::GET => MetadefOp::GetTag { namespace, name },
        MetadefTag(namespace, name) if m == Method::POST => {
            parse::path_tag(&name)?;
            MetadefOp::CreateTag { namespace, name }
        }
        MetadefTag(namespace, name) if m == Method::PUT => MetadefOp::UpdateTag {
            namespace,
            name,
            new_name: parse::tag_update(json()?)?,
        },
        MetadefTag(namespace, name) => MetadefOp::DeleteTag { namespace, name },
        _ => return Err(ImageError::NotFound("The resource could not be found.".into()).into()),
    };
    let limit = match &op {
        MetadefOp::ListNamespaces(q) => q.limit,
        _ => 0,
    };
    let ImageResponse::Metadef(resp) = api
        .call_stack(ctx, glance_layers::Operation::Metadef(op))
        .await?
    else {
        return Err(
            ImageError::internal("a metadef operation answered with something else").into(),
        );
    };
    if m == Method::DELETE {
        return Ok(body::no_content_html());
    }
    let status = if m == Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let value = match &resp {
        MetadefResponse::Namespace(ns) => render::namespace(ns),
        MetadefResponse::Namespaces(list) => {
            let rest: Vec<(String, String)> =
                pairs.into_iter().filter(|(k, _)| k != "marker").collect();
            render::namespaces(list, limit, &rest)
        }
        MetadefResponse::ResourceTypes(list) => render::resource_types(list),
        MetadefResponse::Associations(list) => render::associations(list),
        MetadefResponse::Association { association, .. } => render::association(association),
        MetadefResponse::Property(p) => render::property(p),
        MetadefResponse::Properties(list) => render::properties(list),
        MetadefResponse::Object(o) => render::object(o),
        MetadefResponse::Objects(list) => render::objects(list),
        MetadefResponse::Tag(t) => render::tag(t),
        MetadefResponse::Tags(list) => render::tags(list),
    };
    let mut resp_http = ok_json(status, &value);
    if let (MetadefResponse::Namespace(ns), true) = (&resp, status == StatusCode::CREATED) {
        let location = format!("{base}{}", render::namespace_href(&ns.namespace));
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp_http.headers_mut().insert(header::LOCATION, v);
        }
    }
    Ok(resp_http)
}
