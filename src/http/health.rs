//! `/healthcheck` as oslo.middleware's healthcheck answers it in Glance's
//! pipeline, in front of everything: no authentication, no request id, never
//! the domain stack. Glance mounts it as an app at the `/healthcheck` prefix,
//! so every method and every path below it gets the answer: `200 OK` (`HEAD` a
//! 204), and `503` with `DISABLED BY FILE` while `disable_by_file_path` exists
//! (by default Glance's `/etc/glance/healthcheck_disable`), so an operator takes
//! a node out of a load balancer before stopping it. The body is plain text,
//! HTML or JSON by `Accept`, byte for byte as oslo renders them.
//!
//! With `detailed = true`, an admin asking for JSON (`Accept:
//! application/json`, with the usual credentials) also gets the database and
//! every store checked, each as one of the `reasons`; any failing makes it a 503.
//! Everyone else gets oslo's short form.

use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};

use glance_layers::auth::Authenticator;
use glance_layers::store::StoreSet;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use sea_orm::DatabaseConnection;
use serde_json::json;
use tower::{Layer, Service};

use crate::api::{ApiBody, credentials, full_body};
use crate::config::HealthcheckSection;

/// What the detailed form checks, and who may see it.
#[derive(Clone)]
pub struct HealthDetail {
    pub auth: Arc<dyn Authenticator>,
    pub db: DatabaseConnection,
    pub stores: StoreSet,
}

#[derive(Clone)]
pub struct HealthLayer {
    health: Arc<Health>,
}

struct Health {
    path: String,
    disable_file: Option<PathBuf>,
    detail: Option<HealthDetail>,
}

impl HealthLayer {
    pub fn new(cfg: &HealthcheckSection, detail: HealthDetail) -> Self {
        HealthLayer {
            health: Arc::new(Health {
                path: cfg.path.clone(),
                disable_file: cfg
                    .disable_by_file_path
                    .clone()
                    .filter(|p| !p.as_os_str().is_empty()),
                detail: cfg.detailed.then_some(detail),
            }),
        }
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = HealthCheck<S>;

    fn layer(&self, inner: S) -> HealthCheck<S> {
        HealthCheck {
            inner,
            health: self.health.clone(),
        }
    }
}

#[derive(Clone)]
pub struct HealthCheck<S> {
    inner: S,
    health: Arc<Health>,
}

impl<S, B> Service<Request<B>> for HealthCheck<S>
where
    S: Service<Request<B>, Response = Response<ApiBody>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<ApiBody>;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Response<ApiBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        // paste's urlmap: the prefix itself or anything below it.
        let ours = path
            .strip_prefix(self.health.path.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if !ours {
            return Box::pin(self.inner.call(req));
        }
        let health = self.health.clone();
        let head = req.method() == Method::HEAD;
        let headers = req.headers().clone();
        Box::pin(async move { Ok(health.answer(head, &headers).await) })
    }
}

/// One check's verdict, as oslo lists it in `reasons`.
struct Reason {
    class: &'static str,
    healthy: bool,
    details: String,
}

impl Health {
    fn disabled(&self) -> Option<String> {
        self.disable_file
            .as_ref()
            .filter(|p| p.exists())
            .map(|p| format!("Path '{}' exists", p.display()))
    }

    async fn answer(&self, head: bool, headers: &http::HeaderMap) -> Response<ApiBody> {
        let form = if head {
            Form::Head
        } else {
            negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
        };
        let mut reasons = vec![match self.disabled() {
            Some(details) => Reason {
                class: "DisableByFileHealthcheck",
                healthy: false,
                details,
            },
            None => Reason {
                class: "DisableByFileHealthcheck",
                healthy: true,
                details: "No file disables this node".into(),
            },
        }];
        let detail = match &self.detail {
            Some(d) if form == Form::Json && is_admin(d, headers).await => Some(d),
            _ => None,
        };
        if let Some(d) = detail {
            // All at once, each bounded: a load balancer's probe must not wait
            // out a pool or an HTTP timeout behind one unreachable backend.
            let stores = d.stores.iter().map(|(id, store)| async move {
                let result = bounded(store.check()).await;
                Reason {
                    class: "StoreHealthcheck",
                    healthy: result.is_ok(),
                    details: match result {
                        Ok(()) => format!("store {id} ({}) answers", store.kind()),
                        Err(e) => format!("store {id} ({}): {e}", store.kind()),
                    },
                }
            });
            let (database, stores) = futures_util::future::join(
                check_database(&d.db),
                futures_util::future::join_all(stores),
            )
            .await;
            reasons.push(database);
            reasons.extend(stores);
        }
        let healthy = reasons.iter().all(|r| r.healthy);
        let status = match (healthy, head) {
            (true, true) => StatusCode::NO_CONTENT,
            (true, false) => StatusCode::OK,
            (false, _) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let verdict = |r: &Reason| {
            if r.healthy {
                "OK"
            } else if r.class == "DisableByFileHealthcheck" {
                "DISABLED BY FILE"
            } else {
                "FAILED"
            }
        };
        let short = short_reasons(&reasons, verdict);
        let (body, content_type) = match (form, detail) {
            // webob drops a 204's content type; a 503 to HEAD keeps oslo's.
            (Form::Head, _) if healthy => (String::new(), None),
            (Form::Head, _) => (String::new(), Some("text/plain; charset=UTF-8")),
            (Form::Plain, _) => (short.join("\n"), Some("text/plain; charset=UTF-8")),
            (Form::Html, _) => (html_page(&short), Some("text/html; charset=UTF-8")),
            (Form::Json, Some(_)) => (
                oslo_json(&json!({
                    "detailed": true,
                    "now": chrono::Utc::now().to_rfc3339(),
                    "reasons": reasons.iter().map(|r| json!({
                        "class": r.class,
                        "details": r.details,
                        "reason": verdict(r),
                    })).collect::<Vec<_>>(),
                    "version": env!("CARGO_PKG_VERSION"),
                })),
                Some("application/json"),
            ),
            (Form::Json, None) => (
                oslo_json(&json!({"detailed": false, "reasons": short})),
                Some("application/json"),
            ),
        };
        let mut resp = Response::new(full_body(body));
        *resp.status_mut() = status;
        if let Some(content_type) = content_type {
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        resp
    }
}

/// The forms oslo answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Head,
    Plain,
    Html,
    Json,
}

/// oslo's choice among its offers (`text/plain`, `text/html`,
/// `application/json`, in that order) with webob's `acceptable_offers`: each
/// offer takes the q of the most specific range that matches it, the highest q
/// wins and a tie goes to the earlier offer; nothing acceptable (or no header)
/// is plain text, never a 406.
fn negotiate(accept: Option<&str>) -> Form {
    const OFFERS: [(&str, Form); 3] = [
        ("text/plain", Form::Plain),
        ("text/html", Form::Html),
        ("application/json", Form::Json),
    ];
    let Some(accept) = accept else {
        return Form::Plain;
    };
    let ranges = crate::api::accept::media_ranges(accept);
    let mut best: Option<(f32, Form)> = None;
    for (offer, form) in OFFERS {
        let (kind, _) = offer.split_once('/').unwrap_or((offer, ""));
        // (specificity, q) of the most specific matching range.
        let matched = ranges
            .iter()
            .filter_map(|(range, q)| {
                let specificity = if range == offer {
                    3
                } else if range.strip_suffix("/*") == Some(kind) {
                    2
                } else if range == "*/*" {
                    1
                } else {
                    return None;
                };
                Some((specificity, *q))
            })
            .max_by_key(|(specificity, _)| *specificity);
        if let Some((_, q)) = matched
            && q > 0.0
            && best.is_none_or(|(b, _)| q > b)
        {
            best = Some((q, form));
        }
    }
    best.map_or(Form::Plain, |(_, form)| form)
}

/// `json.dumps(doc, indent=4, sort_keys=True)`, as oslo writes its JSON.
/// serde_json keeps keys in the order written (`preserve_order` is on in our
/// build), so the documents above list theirs sorted.
fn oslo_json(doc: &serde_json::Value) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(doc, &mut ser).expect("a JSON value serializes");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// oslo's HTML page without details (its Jinja template, rendered as it
/// renders it: the blank lines and the glued `</TR><TR>` are the template's).
fn html_page(reasons: &[String]) -> String {
    let rows: String = reasons
        .iter()
        .map(|r| format!("<TR>\n\n    <TD>{}</TD>\n\n</TR>", html_escape(r)))
        .collect();
    format!(
        "<HTML>\n<HEAD><TITLE>Healthcheck Status</TITLE></HEAD>\n<BODY>\n\n\
         <H2>Result of {} checks:</H2>\n<TABLE bgcolor=\"#ffffff\" border=\"1\">\n<TBODY>\n\
         <TR>\n\n<TH>\nReason\n</TH>\n</TR>\n{rows}\n</TBODY>\n</TABLE>\n<HR></HR>\n\n</BODY>\n</HTML>",
        reasons.len()
    )
}

/// Jinja's `|e` (markupsafe: `&#34;` and `&#39;` for quotes), not the error
/// pages' escaping, which is Python's `html.escape` and writes quotes otherwise.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// oslo's short form: `OK` when all is well, else what is wrong.
fn short_reasons(reasons: &[Reason], verdict: impl Fn(&Reason) -> &'static str) -> Vec<String> {
    let failing: Vec<String> = reasons
        .iter()
        .filter(|r| !r.healthy)
        .map(|r| verdict(r).to_string())
        .collect();
    if failing.is_empty() {
        vec!["OK".into()]
    } else {
        failing
    }
}

async fn is_admin(d: &HealthDetail, headers: &http::HeaderMap) -> bool {
    d.auth
        .authenticate(&credentials(headers))
        .await
        .is_ok_and(|identity| identity.is_admin)
}

/// How long one backend's check may take before it counts as failed.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `check`, failed with a message of its own after [`CHECK_TIMEOUT`].
async fn bounded<E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    }
}

async fn check_database(db: &DatabaseConnection) -> Reason {
    let result = bounded(db.ping()).await;
    Reason {
        class: "DatabaseHealthcheck",
        healthy: result.is_ok(),
        details: match result {
            Ok(()) => format!("{:?} answers", db.get_database_backend()),
            Err(e) => format!("{:?}: {e}", db.get_database_backend()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_check_that_never_answers_fails_after_the_timeout() {
        let started = tokio::time::Instant::now();
        let result = bounded(std::future::pending::<Result<(), String>>()).await;
        assert_eq!(result, Err("no answer within 5 s".to_string()));
        assert_eq!(started.elapsed(), CHECK_TIMEOUT);
        assert_eq!(
            bounded(async { Err::<(), _>("refused") }).await,
            Err("refused".into())
        );
    }

    #[test]
    fn accept_is_negotiated_as_webob_does_among_oslos_offers() {
        let cases = [
            (None, Form::Plain),
            (Some("*/*"), Form::Plain),
            (Some("image/png"), Form::Plain),
            (Some("application/json"), Form::Json),
            (Some("application/*"), Form::Json),
            (Some("text/html"), Form::Html),
            // A tie goes to the earlier offer: HTML before JSON.
            (Some("application/json, text/html"), Form::Html),
            (Some("text/html;q=0.5, application/json"), Form::Json),
            // The most specific range decides an offer's q.
            (Some("text/*;q=0.1, application/json;q=0.2"), Form::Json),
            (Some("text/*, text/plain;q=0"), Form::Html),
            (Some("text/plain;q=0"), Form::Plain),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(accept), want, "{accept:?}");
        }
    }

    /// oslo.middleware 8.2's pages, as the real Glance 33 served them here.
    #[test]
    fn pages_are_oslos_byte_for_byte() {
        assert_eq!(
            html_page(&["DISABLED BY FILE".into()]),
            "<HTML>\n<HEAD><TITLE>Healthcheck Status</TITLE></HEAD>\n<BODY>\n\n<H2>Result of 1 checks:</H2>\n<TABLE bgcolor=\"#ffffff\" border=\"1\">\n<TBODY>\n<TR>\n\n<TH>\nReason\n</TH>\n</TR>\n<TR>\n\n    <TD>DISABLED BY FILE</TD>\n\n</TR>\n</TBODY>\n</TABLE>\n<HR></HR>\n\n</BODY>\n</HTML>"
        );
        assert_eq!(
            html_page(&["A".into(), "<B>".into()]),
            "<HTML>\n<HEAD><TITLE>Healthcheck Status</TITLE></HEAD>\n<BODY>\n\n<H2>Result of 2 checks:</H2>\n<TABLE bgcolor=\"#ffffff\" border=\"1\">\n<TBODY>\n<TR>\n\n<TH>\nReason\n</TH>\n</TR>\n<TR>\n\n    <TD>A</TD>\n\n</TR><TR>\n\n    <TD>&lt;B&gt;</TD>\n\n</TR>\n</TBODY>\n</TABLE>\n<HR></HR>\n\n</BODY>\n</HTML>"
        );
        assert_eq!(
            oslo_json(&json!({"detailed": false, "reasons": ["OK"]})),
            "{\n    \"detailed\": false,\n    \"reasons\": [\n        \"OK\"\n    ]\n}"
        );
    }
}
