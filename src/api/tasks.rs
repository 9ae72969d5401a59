//! `/v2/tasks[/{task_id}]`, Glance's legacy (deprecated) tasks API, and
//! `/v2/images/{image_id}/tasks`, an image's import tasks.
//!
//! Glance checks `tasks_api_access` before it reads a tasks request, so a caller
//! it refuses learns that rather than what is wrong with the request: a request
//! that fails to parse asks the stack for that check before it answers 400.

use glance_layers::request::SortDir;
use glance_layers::task::{NewTask, Task, TaskQuery, TaskSortKey, TaskStatus};
use glance_layers::{ImageError, ImageResponse, Operation, RequestContext};
use http::{HeaderValue, Response, StatusCode, header, request::Parts};
use serde_json::{Map, Value};

use super::body::RequestBody;
use super::errors::{ApiError, webob_error_bare};
use super::parse::PageLimits;
use super::render::isotime;
use super::{Api, ApiBody, body, images, json, not_found, ok_json};

type Result<T> = std::result::Result<T, ApiError>;

/// The `type` values of the task schema.
const TYPES: [&str; 3] = ["import", "api_image_import", "location_import"];

fn bad(msg: impl Into<String>) -> ImageError {
    ImageError::Invalid(msg.into())
}

fn schema_error(reason: impl std::fmt::Display) -> ImageError {
    bad(format!(
        "Provided object does not match schema 'task': {reason}"
    ))
}

/// `err`, unless the caller may not use the tasks API at all: then that.
async fn refused_first(api: &Api, ctx: RequestContext, err: ApiError) -> ApiError {
    match api.call_stack(ctx, Operation::TasksAccess).await {
        Err(refused) => refused.into(),
        Ok(_) => err,
    }
}

pub(super) async fn list(
    api: &Api,
    ctx: RequestContext,
    parts: &Parts,
) -> Result<Response<ApiBody>> {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let query = match list_query(&pairs, api.config.page_limits) {
        Ok(q) => q,
        Err(e) => return Err(refused_first(api, ctx, e.into()).await),
    };
    let limit = query.limit;
    let ImageResponse::Tasks(tasks) = api.call_stack(ctx, Operation::ListTasks(query)).await?
    else {
        return Err(ImageError::internal("list tasks answered with something else").into());
    };
    let first = images::first_link("/v2/tasks", &pairs);
    let next = tasks
        .last()
        .filter(|_| limit > 0 && tasks.len() as u64 == limit)
        .map(|last| {
            let sep = if first.contains('?') { '&' } else { '?' };
            format!("{first}{sep}marker={}", last.id)
        });
    let mut page = Map::new();
    page.insert("tasks".into(), tasks.iter().map(stub_json).collect());
    page.insert("first".into(), first.into());
    page.insert("schema".into(), "/v2/schemas/tasks".into());
    if let Some(next) = next {
        page.insert("next".into(), next.into());
    }
    Ok(ok_json(StatusCode::OK, &page))
}

pub(super) async fn create<B: RequestBody>(
    api: &Api,
    ctx: RequestContext,
    body: B,
) -> Result<Response<ApiBody>> {
    let parsed = match api.json_body(body).await {
        Ok(v) => new_task(&v).map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let new = match parsed {
        Ok(new) => new,
        Err(e) => return Err(refused_first(api, ctx, e).await),
    };
    let ImageResponse::Task(task) = api.call_stack(ctx, Operation::CreateTask(new)).await? else {
        return Err(ImageError::internal("create task answered with something else").into());
    };
    let mut resp = ok_json(StatusCode::CREATED, &task_json(&task));
    // Relative, as Glance sends it.
    if let Ok(loc) = HeaderValue::from_str(&format!("/v2/tasks/{}", task.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

pub(super) async fn show(api: &Api, ctx: RequestContext, id: String) -> Result<Response<ApiBody>> {
    let ImageResponse::Task(task) = api.call_stack(ctx, Operation::GetTask { id }).await? else {
        return Err(ImageError::internal("get task answered with something else").into());
    };
    Ok(ok_json(StatusCode::OK, &task_json(&task)))
}

/// Tasks are never deleted on request: a 405 to whoever may use the API.
pub(super) async fn delete(
    api: &Api,
    ctx: RequestContext,
    parts: &Parts,
) -> Result<Response<ApiBody>> {
    api.call_stack(ctx, Operation::TasksAccess).await?;
    let mut resp = webob_error_bare(
        StatusCode::METHOD_NOT_ALLOWED,
        "This operation is currently not permitted on Glance Tasks. They are auto deleted \
         after reaching the time based on their expires_at property.",
        &parts.headers,
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    Ok(resp)
}

/// `GET /v2/images/{id}/tasks`: the rows as Glance's database layer returns them,
/// in its plain JSON serializer (ASCII only). A missing image and one the caller
/// may not see are alike: a bare 404.
pub(super) async fn of_image(
    api: &Api,
    ctx: RequestContext,
    id: String,
) -> Result<Response<ApiBody>> {
    let resp = api
        .call_stack(ctx, Operation::ImageTasks { id })
        .await
        .map_err(|e| match e {
            ImageError::NotFound(_) => not_found(),
            e => e,
        })?;
    let ImageResponse::Tasks(tasks) = resp else {
        return Err(ImageError::internal("image tasks answered with something else").into());
    };
    let rows: Vec<Value> = tasks.iter().map(row_json).collect();
    Ok(body::json(
        StatusCode::OK,
        json::to_vec_ascii(&serde_json::json!({ "tasks": rows })),
    ))
}

/// `GET /v2/tasks?...` as Glance's deserializer and database layer read it, in
/// their order: `sort_dir`, the `status` and `type` filters, `marker`, `limit`,
/// then `sort_key`. Glance pops the first `limit`, `marker`, `sort_key` and
/// `sort_dir` and reads the last of a filter.
fn list_query(
    pairs: &[(String, String)],
    limits: PageLimits,
) -> std::result::Result<TaskQuery, ImageError> {
    let first = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let last = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let sort_dir = match first("sort_dir").unwrap_or("desc") {
        "asc" => SortDir::Asc,
        "desc" => SortDir::Desc,
        other => return Err(bad(format!("Invalid sort direction: {other}"))),
    };
    let status = match last("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            Some(TaskStatus::parse(s).ok_or_else(|| bad(format!("Invalid status value: {s}")))?)
        }
    };
    let kind = match last("type").filter(|t| !t.is_empty()) {
        None => None,
        Some("import") => Some("import".to_string()),
        Some(t) => return Err(bad(format!("Invalid type value: {t}"))),
    };
    let marker = first("marker");
    if let Some(m) = marker
        && !m.is_empty()
        && !is_uuid_like(m)
    {
        return Err(bad("Invalid marker format"));
    }
    let limit = match first("limit") {
        None => limits.default,
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| bad("limit param must be an integer"))?;
            if n < 0 {
                return Err(bad("limit param must be positive"));
            }
            n as u64
        }
    };
    let sort_key = TaskSortKey::parse(first("sort_key").unwrap_or("created_at"))
        .ok_or_else(|| bad("Sort key supplied was not valid."))?;
    Ok(TaskQuery {
        limit: limit.min(limits.max),
        marker: marker.map(str::to_string),
        sort_key,
        sort_dir,
        status,
        kind,
    })
}

/// oslo.utils' `is_uuid_like`: 32 hex digits once `urn:`, `uuid:`, surrounding
/// braces and hyphens are dropped.
fn is_uuid_like(s: &str) -> bool {
    let bare = s.replace("urn:", "").replace("uuid:", "");
    let bare = bare.trim_matches(|c| c == '{' || c == '}').replace('-', "");
    bare.len() == 32 && bare.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `POST /v2/tasks`: the body as Glance's deserializer, the task schema and the
/// legacy import's source check take it, in that order.
fn new_task(body: &Value) -> std::result::Result<NewTask, ImageError> {
    // Glance asks `key in body`, which a list also answers.
    let has = |key: &str| match body {
        Value::Object(o) => o.contains_key(key),
        Value::Array(a) => a.iter().any(|v| v.as_str() == Some(key)),
        _ => false,
    };
    for key in ["type", "input"] {
        if !has(key) {
            return Err(bad(format!("Task '{key}' is required")));
        }
    }
    let Value::Object(obj) = body else {
        return Err(schema_error(format!(
            "{} is not of type 'object'",
            py_repr(body)
        )));
    };
    let mut extra: Vec<&String> = obj
        .keys()
        .filter(|k| !SCHEMA.iter().any(|(key, _)| key == k))
        .collect();
    if !extra.is_empty() {
        extra.sort();
        let names: Vec<String> = extra.iter().map(|k| py_str_repr(k)).collect();
        let verb = if extra.len() == 1 { "was" } else { "were" };
        return Err(schema_error(format!(
            "Additional properties are not allowed ({} {verb} unexpected)",
            names.join(", ")
        )));
    }
    for (key, takes) in SCHEMA {
        if let Some(v) = obj.get(*key) {
            takes.check(v).map_err(schema_error)?;
        }
    }
    let kind = obj["type"].as_str().unwrap_or_default().to_string();
    let input = obj["input"].clone();
    let mut image = None;
    if kind == "import" {
        legacy_import_source(input.get("import_from"))?;
        // The web-download filter follows in the import layer, which has it.
        let properties = input
            .get("image_properties")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        image = Some(super::parse::new_image(&properties)?);
    }
    Ok(NewTask { kind, input, image })
}

/// What a property of the task schema takes.
enum Takes {
    String,
    /// The id pattern (a UUID with hyphens).
    Id,
    OneOf(&'static [&'static str]),
    /// `["null", type]`.
    NullOr(&'static str),
}

/// The task schema's properties, in its order (the order jsonschema reports in);
/// `additionalProperties` is false.
const SCHEMA: &[(&str, Takes)] = &[
    ("id", Takes::Id),
    ("type", Takes::OneOf(&TYPES)),
    (
        "status",
        Takes::OneOf(&["pending", "processing", "success", "failure"]),
    ),
    ("input", Takes::NullOr("object")),
    ("result", Takes::NullOr("object")),
    ("owner", Takes::String),
    ("message", Takes::String),
    ("image_id", Takes::String),
    ("request_id", Takes::String),
    ("user_id", Takes::String),
    ("expires_at", Takes::NullOr("string")),
    ("created_at", Takes::String),
    ("updated_at", Takes::String),
    ("self", Takes::String),
    ("schema", Takes::String),
];

const ID_PATTERN: &str =
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";

impl Takes {
    /// jsonschema's message for the first check `v` fails.
    fn check(&self, v: &Value) -> std::result::Result<(), String> {
        match (self, v) {
            (Takes::String, Value::String(_)) => Ok(()),
            (Takes::Id, Value::String(s)) if super::parse::is_uuid(s) => Ok(()),
            (Takes::Id, Value::String(_)) => Err(format!(
                "{} does not match {}",
                py_repr(v),
                py_str_repr(ID_PATTERN)
            )),
            (Takes::String | Takes::Id, _) => {
                Err(format!("{} is not of type 'string'", py_repr(v)))
            }
            (Takes::OneOf(allowed), Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
            (Takes::OneOf(allowed), _) => Err(format!(
                "{} is not one of [{}]",
                py_repr(v),
                allowed
                    .iter()
                    .map(|a| py_str_repr(a))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            (Takes::NullOr(_), Value::Null)
            | (Takes::NullOr("object"), Value::Object(_))
            | (Takes::NullOr("string"), Value::String(_)) => Ok(()),
            (Takes::NullOr(t), _) => Err(format!("{} is not of type 'null', '{t}'", py_repr(v))),
        }
    }
}

/// Glance's `validate_location_uri` of a legacy import's `import_from`: only
/// http(s), and never a local file.
fn legacy_import_source(from: Option<&Value>) -> std::result::Result<(), ImageError> {
    let location = match from {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        // Python's `not location`, and its `str()` of the value.
        None | Some(Value::Null) => return Err(bad("Invalid location: None")),
        Some(Value::String(_)) => return Err(bad("Invalid location: ")),
        Some(other) => return Err(bad(format!("Invalid location: {}", py_repr(other)))),
    };
    if location.starts_with("http://") || location.starts_with("https://") {
        Ok(())
    } else if location.starts_with("file:///") || location.starts_with("filesystem:///") {
        Err(bad(
            "File based imports are not allowed. Please use a non-local source of image data.",
        ))
    } else {
        Err(bad(
            "The given uri is not valid. Please specify a valid uri from the following list \
             of supported uri ['http']",
        ))
    }
}

/// Python's `repr` of a JSON value, as jsonschema's messages show it.
fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str_repr(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `repr` of a string: single quotes unless only double quotes avoid
/// an escape.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `GET /v2/tasks/{id}` and `POST /v2/tasks`: Glance's `_format_task`, keys in
/// its order; the optional ones only when set.
fn task_json(t: &Task) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), t.id.clone().into());
    m.insert("input".into(), t.input.clone());
    m.insert("type".into(), t.kind.clone().into());
    m.insert("status".into(), t.status.as_str().into());
    m.insert("owner".into(), t.owner.clone().into());
    m.insert("message".into(), t.message.clone().into());
    m.insert("result".into(), t.result.clone().unwrap_or(Value::Null));
    m.insert("created_at".into(), isotime(t.created_at).into());
    m.insert("updated_at".into(), isotime(t.updated_at).into());
    m.insert("self".into(), format!("/v2/tasks/{}", t.id).into());
    m.insert("schema".into(), "/v2/schemas/task".into());
    for (key, value) in [
        ("image_id", &t.image_id),
        ("request_id", &t.request_id),
        ("user_id", &t.user_id),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            m.insert(key.into(), v.clone().into());
        }
    }
    if let Some(at) = t.expires_at {
        m.insert("expires_at".into(), isotime(at).into());
    }
    Value::Object(m)
}

/// A task in a list: Glance's `_format_task_stub`, without input, result and
/// message.
fn stub_json(t: &Task) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), t.id.clone().into());
    m.insert("type".into(), t.kind.clone().into());
    m.insert("status".into(), t.status.as_str().into());
    m.insert("owner".into(), t.owner.clone().into());
    m.insert("created_at".into(), isotime(t.created_at).into());
    m.insert("updated_at".into(), isotime(t.updated_at).into());
    m.insert("self".into(), format!("/v2/tasks/{}", t.id).into());
    m.insert("schema".into(), "/v2/schemas/task".into());
    if let Some(at) = t.expires_at {
        m.insert("expires_at".into(), isotime(at).into());
    }
    Value::Object(m)
}

/// oslo.serialization's form of a datetime: `YYYY-MM-DDTHH:MM:SS.ffffff`, no zone.
fn db_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// A task as Glance's database layer formats it (`_task_format` with its info).
fn row_json(t: &Task) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), t.id.clone().into());
    m.insert("type".into(), t.kind.clone().into());
    m.insert("status".into(), t.status.as_str().into());
    m.insert("owner".into(), t.owner.clone().into());
    m.insert("expires_at".into(), t.expires_at.map(db_time).into());
    m.insert("created_at".into(), db_time(t.created_at).into());
    m.insert("updated_at".into(), db_time(t.updated_at).into());
    m.insert("deleted_at".into(), t.deleted_at.map(db_time).into());
    m.insert("deleted".into(), t.deleted.into());
    m.insert("image_id".into(), t.image_id.clone().into());
    m.insert("request_id".into(), t.request_id.clone().into());
    m.insert("user_id".into(), t.user_id.clone().into());
    m.insert("input".into(), t.input.clone());
    m.insert("result".into(), t.result.clone().unwrap_or(Value::Null));
    m.insert("message".into(), t.message.clone().into());
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> PageLimits {
        PageLimits {
            default: 25,
            max: 1000,
        }
    }

    fn query(q: &str) -> std::result::Result<TaskQuery, String> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        list_query(&pairs, limits()).map_err(|e| e.to_string())
    }

    fn create(body: Value) -> std::result::Result<NewTask, String> {
        new_task(&body).map_err(|e| e.to_string())
    }

    #[test]
    fn list_parameters_and_their_errors() {
        let q = query("").unwrap();
        assert_eq!(q, TaskQuery::default());
        let q =
            query("limit=5000&sort_key=status&sort_dir=asc&status=success&type=import").unwrap();
        assert_eq!(q.limit, 1000);
        assert_eq!(q.sort_key, TaskSortKey::Status);
        assert_eq!(q.sort_dir, SortDir::Asc);
        assert_eq!(q.status, Some(TaskStatus::Success));
        assert_eq!(q.kind.as_deref(), Some("import"));
        let id = "0b1e8d9e-3c4f-4c8a-9a43-3b1bb5b0d5a1";
        assert_eq!(query(&format!("marker={id}")).unwrap().marker.unwrap(), id);
        assert!(query(&format!("marker={{{}}}", id.to_uppercase())).is_ok());
        assert!(query(&format!("marker={}", id.replace('-', ""))).is_ok());
        for (q, err) in [
            ("sort_dir=up", "Invalid sort direction: up"),
            ("status=done", "Invalid status value: done"),
            (
                "type=api_image_import",
                "Invalid type value: api_image_import",
            ),
            ("marker=abc", "Invalid marker format"),
            ("limit=x", "limit param must be an integer"),
            ("limit=-1", "limit param must be positive"),
            ("sort_key=name", "Sort key supplied was not valid."),
            // Glance's order: the direction before the filters and the marker.
            ("marker=abc&sort_dir=up", "Invalid sort direction: up"),
            ("limit=x&marker=abc", "Invalid marker format"),
        ] {
            assert_eq!(query(q).unwrap_err(), err, "{q}");
        }
    }

    #[test]
    fn create_bodies_as_glance_checks_them() {
        let ok = create(json!({"type": "import", "input": {"import_from": "https://x/y"}}));
        assert_eq!(ok.unwrap().kind, "import");
        assert_eq!(
            create(json!({"type": "api_image_import", "input": null}))
                .unwrap()
                .input,
            Value::Null
        );
        let schema = "Provided object does not match schema 'task': ";
        for (body, err) in [
            (json!({"input": {}}), "Task 'type' is required".to_string()),
            (json!({"type": "import"}), "Task 'input' is required".into()),
            (
                json!({"type": "x", "input": {}, "b": 1, "a": 2}),
                format!("{schema}Additional properties are not allowed ('a', 'b' were unexpected)"),
            ),
            (
                json!({"type": "x", "input": {}}),
                format!(
                    "{schema}'x' is not one of ['import', 'api_image_import', 'location_import']"
                ),
            ),
            (
                json!({"type": "import", "input": "it's"}),
                format!("{schema}\"it's\" is not of type 'null', 'object'"),
            ),
            (
                json!({"type": "import", "input": {}, "status": "done", "owner": 1}),
                format!(
                    "{schema}'done' is not one of ['pending', 'processing', 'success', 'failure']"
                ),
            ),
            (
                json!({"type": "import", "input": {}, "id": "x"}),
                format!("{schema}'x' does not match '{ID_PATTERN}'"),
            ),
            (
                json!({"type": "import", "input": {}, "owner": true}),
                format!("{schema}True is not of type 'string'"),
            ),
            (
                json!({"type": "import", "input": {"import_from": "file:///etc/passwd"}}),
                "File based imports are not allowed. Please use a non-local source of image data."
                    .into(),
            ),
            (
                json!({"type": "import", "input": {}}),
                "Invalid location: None".into(),
            ),
            (
                json!({"type": "import", "input": {"import_from": "swift://c/o"}}),
                "The given uri is not valid. Please specify a valid uri from the following list \
                 of supported uri ['http']"
                    .into(),
            ),
        ] {
            assert_eq!(create(body.clone()).unwrap_err(), err, "{body}");
        }
    }

    #[test]
    fn task_json_has_glances_keys_in_order() {
        let t0 = "2026-11-24T19:00:00.123456Z".parse().unwrap();
        let task = Task {
            id: "t1".into(),
            kind: "import".into(),
            status: TaskStatus::Success,
            owner: Some("p1".into()),
            expires_at: Some(t0),
            created_at: t0,
            updated_at: t0,
            deleted_at: None,
            deleted: false,
            image_id: None,
            request_id: Some("req-1".into()),
            user_id: Some("u1".into()),
            input: json!({"import_from": "http://x", "a": "é"}),
            result: Some(json!({"image_id": "i1"})),
            message: String::new(),
        };
        let text = |v: &Value| String::from_utf8(json::to_vec(v)).unwrap();
        assert_eq!(
            text(&task_json(&task)),
            "{\"id\": \"t1\", \"input\": {\"import_from\": \"http://x\", \"a\": \"é\"}, \
             \"type\": \"import\", \"status\": \"success\", \"owner\": \"p1\", \"message\": \"\", \
             \"result\": {\"image_id\": \"i1\"}, \"created_at\": \"2026-11-24T19:00:00Z\", \
             \"updated_at\": \"2026-11-24T19:00:00Z\", \"self\": \"/v2/tasks/t1\", \
             \"schema\": \"/v2/schemas/task\", \"request_id\": \"req-1\", \"user_id\": \"u1\", \
             \"expires_at\": \"2026-11-24T19:00:00Z\"}"
        );
        assert_eq!(
            text(&stub_json(&task)),
            "{\"id\": \"t1\", \"type\": \"import\", \"status\": \"success\", \"owner\": \"p1\", \
             \"created_at\": \"2026-11-24T19:00:00Z\", \"updated_at\": \"2026-11-24T19:00:00Z\", \
             \"self\": \"/v2/tasks/t1\", \"schema\": \"/v2/schemas/task\", \
             \"expires_at\": \"2026-11-24T19:00:00Z\"}"
        );
        assert_eq!(
            String::from_utf8(json::to_vec_ascii(&row_json(&task))).unwrap(),
            "{\"id\": \"t1\", \"type\": \"import\", \"status\": \"success\", \"owner\": \"p1\", \
             \"expires_at\": \"2026-11-24T19:00:00.123456\", \
             \"created_at\": \"2026-11-24T19:00:00.123456\", \
             \"updated_at\": \"2026-11-24T19:00:00.123456\", \"deleted_at\": null, \
             \"deleted\": false, \"image_id\": null, \"request_id\": \"req-1\", \
             \"user_id\": \"u1\", \"input\": {\"import_from\": \"http://x\", \"a\": \"\\u00e9\"}, \
             \"result\": {\"image_id\": \"i1\"}, \"message\": \"\"}"
        );
    }
}
