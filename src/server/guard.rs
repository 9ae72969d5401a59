//! The service of one connection: refuses what the protocol layer must refuse
//! before the API sees it, and keeps the connection's activity up to date.
//!
//! Refused: a request with both `Content-Length` and `Transfer-Encoding` (400,
//! found by [`super::framing`]), a header line over `max_header_line` or a header
//! section over `max_header_size` (431). Each answer closes an HTTP/1
//! connection, as Glance's server does.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use std::pin::Pin;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tower::Service;

use super::activity::{Activity, InFlight};
use super::framing::Conflicts;
use crate::api::{ApiBody, BoxError, webob_error};
use crate::app::HttpService;

/// Header limits; 0 is none.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimits {
    pub section: usize,
    pub line: usize,
}

/// What a connection's service shares with the connection's reader and driver.
#[derive(Debug)]
pub struct ConnectionState {
    requests: AtomicU64,
    pub conflicts: Arc<Conflicts>,
    pub activity: Arc<Activity>,
}

impl ConnectionState {
    pub fn new() -> Arc<Self> {
        Arc::new(ConnectionState {
            requests: AtomicU64::new(0),
            conflicts: Arc::new(Conflicts::default()),
            activity: Activity::new(),
        })
    }
}

#[derive(Clone)]
pub struct Guard {
    inner: HttpService,
    conn: Arc<ConnectionState>,
    limits: HeaderLimits,
}

impl Guard {
    pub fn new(inner: HttpService, conn: Arc<ConnectionState>, limits: HeaderLimits) -> Self {
        Guard {
            inner,
            conn,
            limits,
        }
    }

    fn refusal(&self, req: &Request<Incoming>, index: u64) -> Option<Response<ApiBody>> {
        let http1 = req.version() <= Version::HTTP_11;
        let (status, message) = if http1 && self.conn.conflicts.is_conflicting(index) {
            (
                StatusCode::BAD_REQUEST,
                "Content-Length and Transfer-Encoding are not allowed together.",
            )
        } else if self.limits.line > 0
            && req
                .headers()
                .iter()
                .any(|(name, value)| line_len(name.as_str(), value) > self.limits.line)
        {
            (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "A request header line is longer than max_header_line.",
            )
        } else if self.limits.section > 0 && section_len(req) > self.limits.section {
            (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "The request headers are larger than max_header_size.",
            )
        } else {
            return None;
        };
        let mut resp = webob_error(status, message, req.headers());
        if http1 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Some(resp)
    }
}

/// `name: value` as the client sent it on its line.
fn line_len(name: &str, value: &HeaderValue) -> usize {
    name.len() + 2 + value.len()
}

/// The request line and header lines with their line ends, as HTTP/1 sends them.
fn section_len<B>(req: &Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let request_line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let lines: usize = req
        .headers()
        .iter()
        .map(|(name, value)| line_len(name.as_str(), value) + 2)
        .sum();
    request_line + lines + 2
}

/// The response body, holding the request in flight until hyper drops it.
struct Holding {
    body: ApiBody,
    _in_flight: InFlight,
}

impl Body for Holding {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

fn holding(body: ApiBody, in_flight: InFlight) -> ApiBody {
    ApiBody::new(Holding {
        body,
        _in_flight: in_flight,
    })
}

impl Service<Request<Incoming>> for Guard {
    type Response = Response<ApiBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<ApiBody>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let in_flight = self.conn.activity.start();
        // HTTP/1 serves a connection's requests one after another, in the order
        // their heads were read, so this is the head's position.
        let index = self.conn.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(resp) = self.refusal(&req, index) {
            return Box::pin(async move { Ok(resp.map(|b| holding(b, in_flight))) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(resp.map(|b| holding(b, in_flight)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_measured_as_http1_sends_it() {
        let req = Request::builder()
            .method("GET")
            .uri("/v2/images?limit=1")
            .header("host", "x")
            .header("accept", "*/*")
            .body(())
            .unwrap();
        let wire = "GET /v2/images?limit=1 HTTP/1.1\r\nhost: x\r\naccept: */*\r\n\r\n";
        assert_eq!(section_len(&req), wire.len());
    }
}
