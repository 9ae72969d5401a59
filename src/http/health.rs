//! `/healthcheck` as oslo.middleware's healthcheck answers it in Glance's
//! pipeline, in front of everything: no authentication, no request id, never
//! the domain stack. `GET` is `200 OK` (`HEAD` a 204), and `503` with
//! `DISABLED BY FILE` while `disable_by_file_path` exists, so an operator takes
//! a node out of a load balancer before stopping it.
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
                disable_file: cfg.disable_by_file_path.clone(),
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
        let ours = req.uri().path() == self.health.path
            && matches!(*req.method(), Method::GET | Method::HEAD);
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
        let wants_json = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
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
            Some(d) if wants_json && is_admin(d, headers).await => Some(d),
            _ => None,
        };
        if let Some(d) = detail {
            reasons.push(check_database(&d.db).await);
            for (id, store) in d.stores.iter() {
                let result = store.check().await;
                reasons.push(Reason {
                    class: "StoreHealthcheck",
                    healthy: result.is_ok(),
                    details: match result {
                        Ok(()) => format!("store {id} ({}) answers", store.kind()),
                        Err(e) => format!("store {id} ({}): {e}", store.kind()),
                    },
                });
            }
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
        let (body, content_type) = if wants_json {
            let doc = match detail {
                Some(_) => json!({
                    "detailed": true,
                    "now": chrono::Utc::now().to_rfc3339(),
                    "version": env!("CARGO_PKG_VERSION"),
                    "reasons": reasons.iter().map(|r| json!({
                        "class": r.class,
                        "reason": verdict(r),
                        "details": r.details,
                    })).collect::<Vec<_>>(),
                }),
                None => json!({
                    "detailed": false,
                    "reasons": short_reasons(&reasons, verdict),
                }),
            };
            (doc.to_string(), "application/json")
        } else {
            (
                short_reasons(&reasons, verdict).join("\n"),
                "text/plain; charset=UTF-8",
            )
        };
        let mut resp = Response::new(if head { full_body("") } else { full_body(body) });
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        resp
    }
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

async fn check_database(db: &DatabaseConnection) -> Reason {
    let result = db.ping().await;
    Reason {
        class: "DatabaseHealthcheck",
        healthy: result.is_ok(),
        details: match result {
            Ok(()) => format!("{:?} answers", db.get_database_backend()),
            Err(e) => format!("{:?}: {e}", db.get_database_backend()),
        },
    }
}
