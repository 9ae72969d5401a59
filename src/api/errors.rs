//! The one place where domain errors become HTTP: Glance's status codes and
//! webob's error bodies (HTML, JSON or plain text, chosen by `Accept`).

use glance_layers::ImageError;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::body::{ApiBody, full};

/// Why a request failed: what the domain said, or what only the HTTP side can
/// find wrong with a request.
#[derive(Debug)]
pub enum ApiError {
    Image(ImageError),
    /// The body comes in a media type this route does not take.
    UnsupportedMediaType(String),
    /// The JSON body is over `max_json_body`.
    BodyTooLarge,
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        ApiError::Image(e)
    }
}

/// The status a domain error maps to: Glance's choice for each meaning.
fn status_of(err: &ImageError) -> StatusCode {
    match err {
        // A client that went away gets nothing; 400 is only for the access log.
        ImageError::Invalid(_) | ImageError::Unsupported(_) | ImageError::ClientGone => {
            StatusCode::BAD_REQUEST
        }
        ImageError::NotAuthenticated(_) => StatusCode::UNAUTHORIZED,
        ImageError::Forbidden(_) => StatusCode::FORBIDDEN,
        ImageError::NotFound(_) => StatusCode::NOT_FOUND,
        ImageError::Conflict(_) => StatusCode::CONFLICT,
        // glance_store's StoreAddDisabled and Glance's "deleted during upload"
        // are both HTTPGone.
        ImageError::StoreReadOnly(_) | ImageError::DeletedDuringUpload(_) => StatusCode::GONE,
        // Glance answers StorageFull, StorageQuotaFull, ImageSizeLimitExceeded and
        // the count limits alike with HTTPRequestEntityTooLarge.
        ImageError::QuotaExceeded { .. } | ImageError::StoreFull(_) => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        ImageError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        ImageError::InvalidImageData(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ImageError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ImageError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        // A variant added to the domain later is a 500 until it is mapped here.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// webob's titles, which differ from today's reason phrases in places.
fn title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        413 => "Request Entity Too Large",
        416 => "Requested Range Not Satisfiable",
        s => StatusCode::from_u16(s)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error"),
    }
}

/// The message a client sees for an error.
fn explanation(err: &ImageError) -> String {
    match err {
        ImageError::Internal { .. } => {
            "The server has either erred or is incapable of performing the requested operation."
                .into()
        }
        ImageError::RangeNotSatisfiable { .. } => "The Range requested is not available.".into(),
        other => other.to_string(),
    }
}

/// The error response for `err`, in the format the request's `Accept` asks for.
///
/// With Keystone in front (`www_authenticate` set to its URI), a 401 is
/// keystonemiddleware's: always JSON, naming where to authenticate.
pub fn error_response(
    err: &ApiError,
    request_headers: &HeaderMap,
    www_authenticate: Option<&str>,
) -> Response<ApiBody> {
    let (status, explanation) = match err {
        ApiError::Image(e) => {
            log_cause(e);
            if let ImageError::QuotaExceeded { resource, .. } = e {
                tracing::info!(%resource, "refused over a limit");
            }
            (status_of(e), explanation(e))
        }
        ApiError::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m.clone()),
        ApiError::BodyTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large.".to_string(),
        ),
    };
    let mut resp = match www_authenticate {
        Some(_) if status == StatusCode::UNAUTHORIZED => keystone_unauthorized(),
        _ if status == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            unsupported_media_type(&explanation, request_headers)
        }
        _ => webob_error(status, &explanation, request_headers),
    };
    if status == StatusCode::UNAUTHORIZED {
        let uri = www_authenticate.unwrap_or_default().replace('"', "%22");
        if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{uri}\"")) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    resp
}

/// Internal errors and outages are logged with their whole cause chain; the client
/// sees only the fixed wording.
fn log_cause(err: &ImageError) {
    let (ImageError::Internal { .. } | ImageError::Unavailable { .. }) = err else {
        return;
    };
    let mut chain = String::new();
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        chain.push_str(": ");
        chain.push_str(&c.to_string());
        cause = c.source();
    }
    if matches!(err, ImageError::Internal { .. }) {
        tracing::error!(error = %err, cause = %chain, "internal error");
    } else {
        tracing::warn!(error = %err, cause = %chain, "backend unavailable");
    }
}

/// keystonemiddleware's refusal of a missing, invalid or expired token.
fn keystone_unauthorized() -> Response<ApiBody> {
    let body = super::json::to_vec(&serde_json::json!({"error": {
        "code": 401,
        "title": "Unauthorized",
        "message": "The request you have made requires authentication.",
    }}));
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    resp
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Html,
    Json,
    Plain,
}

/// webob picks the best of `text/html` and `application/json` by the client's
/// q-values (HTML on a tie) and falls back to plain text; no header means plain.
fn negotiate(headers: &HeaderMap) -> Format {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Format::Plain;
    };
    let mut html = 0.0f32;
    let mut json = 0.0f32;
    for (media, q) in super::accept::media_ranges(accept) {
        match media.as_str() {
            "*/*" => {
                html = html.max(q);
                json = json.max(q);
            }
            "text/*" | "text/html" => html = html.max(q),
            "application/*" | "application/json" => json = json.max(q),
            _ => {}
        }
    }
    match (html, json) {
        (h, j) if h <= 0.0 && j <= 0.0 => Format::Plain,
        (h, j) if h >= j => Format::Html,
        _ => Format::Json,
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// An error page exactly as webob renders `HTTPException(explanation=...)`.
pub fn webob_error(
    status: StatusCode,
    explanation: &str,
    request_headers: &HeaderMap,
) -> Response<ApiBody> {
    webob_page(status, explanation, request_headers, false)
}

/// An error page as webob renders it with `body_template='${explanation}'`: the
/// explanation alone, without the breaks the default template adds.
pub(super) fn webob_error_bare(
    status: StatusCode,
    explanation: &str,
    request_headers: &HeaderMap,
) -> Response<ApiBody> {
    webob_page(status, explanation, request_headers, true)
}

/// webob's 415, which Glance raises with `detail=`: its own sentence naming the
/// request's media type, then the detail (a wrong `Content-Type`, or image data
/// that format inspection refused).
fn unsupported_media_type(detail: &str, request_headers: &HeaderMap) -> Response<ApiBody> {
    let media_type = request_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let sentence = format!("The request media type {media_type} is not supported by this server.");
    let text = PageText {
        html: format!(
            "{}\n<br /><br />\n{}",
            html_escape(&sentence),
            html_escape(detail)
        ),
        message: format!("{sentence}\n<br /><br />\n{detail}"),
        plain: format!("{sentence} \n\n {}", detail.replace(['\n', '\r'], " ")),
    };
    render_page(StatusCode::UNSUPPORTED_MEDIA_TYPE, text, request_headers)
}

fn webob_page(
    status: StatusCode,
    explanation: &str,
    request_headers: &HeaderMap,
    bare: bool,
) -> Response<ApiBody> {
    // The default template's breaks, as HTML and after webob strips the tags.
    let (breaks, plain_tail) = if bare {
        ("", "")
    } else {
        ("<br /><br />\n\n\n", "\n\n   ")
    };
    let text = PageText {
        html: format!("{}{breaks}", html_escape(explanation)),
        message: format!("{explanation}{breaks}"),
        plain: format!("{}{plain_tail}", explanation.replace(['\n', '\r'], " ")),
    };
    render_page(status, text, request_headers)
}

/// What an error page says, as each of webob's renderings shows it.
struct PageText {
    /// Inside `<body>` after the heading; already escaped.
    html: String,
    /// The JSON `message`.
    message: String,
    /// After the status line, tags stripped.
    plain: String,
}

/// The page in the format the request's `Accept` asks for.
fn render_page(
    status: StatusCode,
    text: PageText,
    request_headers: &HeaderMap,
) -> Response<ApiBody> {
    let status_line = format!("{} {}", status.as_u16(), title(status));
    let (content_type, body) = match negotiate(request_headers) {
        Format::Html => (
            "text/html; charset=UTF-8",
            format!(
                "<html>\n <head>\n  <title>{status_line}</title>\n </head>\n <body>\n  <h1>{status_line}</h1>\n  {}\n </body>\n</html>",
                text.html
            ),
        ),
        Format::Json => (
            "application/json",
            String::from_utf8(super::json::to_vec(&serde_json::json!({
                "message": text.message,
                "code": status_line,
                "title": title(status),
            })))
            .unwrap_or_default(),
        ),
        Format::Plain => (
            "text/plain; charset=UTF-8",
            format!("{status_line}\n\n{}", text.plain),
        ),
    };
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(err: ImageError, accept: Option<&str>) -> (StatusCode, String, String) {
        let mut h = HeaderMap::new();
        if let Some(a) = accept {
            h.insert(header::ACCEPT, HeaderValue::from_str(a).unwrap());
        }
        let resp = error_response(&ApiError::Image(err), &h, None);
        let status = resp.status();
        let ct = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    /// Glance 33's answers to a qcow2 with a backing file, as its anchor gave them.
    #[tokio::test]
    async fn refused_image_data_is_webobs_415_with_detail() {
        let render = |accept: Option<&'static str>| async move {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Some(a) = accept {
                h.insert(header::ACCEPT, HeaderValue::from_static(a));
            }
            let err = ImageError::InvalidImageData("Image failed safety checks".into());
            let resp = error_response(&ApiError::Image(err), &h, None);
            assert_eq!(resp.status(), 415);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8(body.to_vec()).unwrap()
        };
        assert_eq!(
            render(Some("*/*")).await,
            "<html>\n <head>\n  <title>415 Unsupported Media Type</title>\n </head>\n <body>\n  <h1>415 Unsupported Media Type</h1>\n  The request media type application/octet-stream is not supported by this server.\n<br /><br />\nImage failed safety checks\n </body>\n</html>"
        );
        assert_eq!(
            render(Some("application/json")).await,
            r#"{"message": "The request media type application/octet-stream is not supported by this server.\n<br /><br />\nImage failed safety checks", "code": "415 Unsupported Media Type", "title": "Unsupported Media Type"}"#
        );
        assert_eq!(
            render(None).await,
            "415 Unsupported Media Type\n\nThe request media type application/octet-stream is not supported by this server. \n\n Image failed safety checks"
        );
    }

    #[tokio::test]
    async fn bodies_match_webob_byte_for_byte() {
        let err = || ImageError::Forbidden("Attribute 'status' is read-only.".into());
        let (s, ct, html) = render(err(), Some("*/*")).await;
        assert_eq!(s, 403);
        assert_eq!(ct, "text/html; charset=UTF-8");
        assert_eq!(
            html,
            "<html>\n <head>\n  <title>403 Forbidden</title>\n </head>\n <body>\n  <h1>403 Forbidden</h1>\n  Attribute &#x27;status&#x27; is read-only.<br /><br />\n\n\n\n </body>\n</html>"
        );
        let (_, ct, json) = render(err(), Some("application/json")).await;
        assert_eq!(ct, "application/json");
        assert_eq!(
            json,
            r#"{"message": "Attribute 'status' is read-only.<br /><br />\n\n\n", "code": "403 Forbidden", "title": "Forbidden"}"#
        );
        let (_, ct, plain) = render(err(), None).await;
        assert_eq!(ct, "text/plain; charset=UTF-8");
        assert_eq!(
            plain,
            "403 Forbidden\n\nAttribute 'status' is read-only.\n\n   "
        );
        let (_, _, tie) = render(err(), Some("application/json, text/html")).await;
        assert!(tie.starts_with("<html>"));
        let (_, _, plain2) = render(err(), Some("image/png")).await;
        assert!(plain2.starts_with("403 Forbidden\n\n"));
    }

    #[tokio::test]
    async fn a_bare_template_shows_the_explanation_alone() {
        let page = |accept: &'static str| async move {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(accept));
            let resp = webob_error_bare(StatusCode::METHOD_NOT_ALLOWED, "No.", &h);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8(body.to_vec()).unwrap()
        };
        assert_eq!(
            page("text/html").await,
            "<html>\n <head>\n  <title>405 Method Not Allowed</title>\n </head>\n <body>\n  <h1>405 Method Not Allowed</h1>\n  No.\n </body>\n</html>"
        );
        assert_eq!(
            page("application/json").await,
            r#"{"message": "No.", "code": "405 Method Not Allowed", "title": "Method Not Allowed"}"#
        );
        assert_eq!(page("text/plain").await, "405 Method Not Allowed\n\nNo.");
    }

    #[tokio::test]
    async fn internal_causes_are_not_shown() {
        let (s, _, body) = render(
            ImageError::internal("password=hunter2"),
            Some("application/json"),
        )
        .await;
        assert_eq!(s, 500);
        assert!(!body.contains("hunter2"));
    }
}
