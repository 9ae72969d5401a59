//! `/metrics`: the server's metrics as OpenMetrics text. On the API's own
//! address it is for admins only (any other caller gets Glance's 401 or 403);
//! `[telemetry] metrics_listen` serves it on an address of its own, without
//! authentication, for a scraper on a management network.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use glance_layers::auth::Authenticator;
use glance_layers::{CallerSlot, ImageError};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower::{Layer, Service};

use crate::api::{ApiBody, credentials, error_response, full_body};
use crate::telemetry::metrics::{CONTENT_TYPE, Metrics};

const PATH: &str = "/metrics";

#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Metrics,
    auth: Arc<dyn Authenticator>,
    www_authenticate: Option<String>,
}

impl MetricsLayer {
    pub fn new(
        metrics: Metrics,
        auth: Arc<dyn Authenticator>,
        www_authenticate: Option<String>,
    ) -> Self {
        MetricsLayer {
            metrics,
            auth,
            www_authenticate,
        }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsEndpoint<S>;

    fn layer(&self, inner: S) -> MetricsEndpoint<S> {
        MetricsEndpoint {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct MetricsEndpoint<S> {
    inner: S,
    layer: MetricsLayer,
}

impl<S, B> Service<Request<B>> for MetricsEndpoint<S>
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
        if req.uri().path() != PATH || req.method() != Method::GET {
            return Box::pin(self.inner.call(req));
        }
        let layer = self.layer.clone();
        let headers = req.headers().clone();
        let caller = req.extensions().get::<CallerSlot>().cloned();
        Box::pin(async move {
            let identity = layer.auth.authenticate(&credentials(&headers)).await;
            if let (Some(slot), Ok(identity)) = (&caller, &identity) {
                slot.set(identity);
            }
            let refusal = match identity {
                Ok(identity) if identity.is_admin => None,
                Ok(_) => Some(ImageError::Forbidden(
                    "Access was denied to this resource.".into(),
                )),
                Err(e) => Some(e),
            };
            Ok(match refusal {
                None => exposition(&layer.metrics),
                Some(e) => error_response(&e.into(), &headers, layer.www_authenticate.as_deref()),
            })
        })
    }
}

fn exposition(metrics: &Metrics) -> Response<ApiBody> {
    let mut resp = Response::new(full_body(metrics.render()));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

/// Serves `/metrics` alone on `listener`, without authentication, until the
/// process ends; anything else there is a 404.
pub async fn serve(listener: TcpListener, metrics: Metrics) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let resp = if req.uri().path() == PATH {
                exposition(&metrics)
            } else {
                let mut r = Response::new(full_body("404 Not Found\n"));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            };
            async move { Ok::<_, Infallible>(resp) }
        });
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
