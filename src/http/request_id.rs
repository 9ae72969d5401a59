//! `x-openstack-request-id`: every request gets one (`req-<uuid>`), a client's own
//! is honoured (prefixed with `req-` when it lacks it), and the response carries it.
//! Ids longer than Glance's `max_request_id_length` (64) are refused with 431.

use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::api::{ApiBody, REQUEST_ID, webob_error};

const MAX_LEN: usize = 64;

#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> RequestId<S> {
        RequestId { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RequestId<S> {
    inner: S,
}

fn request_id_of<B>(req: &Request<B>) -> Result<HeaderValue, ()> {
    match req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(given) if !given.is_empty() => {
            let id = if given.starts_with("req-") {
                given.to_string()
            } else {
                format!("req-{given}")
            };
            if id.len() > MAX_LEN {
                return Err(());
            }
            HeaderValue::from_str(&id).map_err(|_| ())
        }
        _ => HeaderValue::from_str(&format!("req-{}", uuid::Uuid::new_v4())).map_err(|_| ()),
    }
}

impl<S, B> Service<Request<B>> for RequestId<S>
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

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = match request_id_of(&req) {
            Ok(id) => id,
            Err(()) => {
                let resp = webob_error(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    &format!("Request id is longer than the maximum of {MAX_LEN} characters."),
                    req.headers(),
                );
                return Box::pin(async move { Ok(resp) });
            }
        };
        req.headers_mut().insert(REQUEST_ID, id.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            resp.headers_mut().insert(REQUEST_ID, id);
            Ok(resp)
        })
    }
}
