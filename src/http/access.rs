//! The access log and the request metrics: one `INFO` line per request on the
//! target `glance::access` (method, path, status, bytes sent, duration,
//! request id, project), and the `http_server_*` metrics by method and route.
//!
//! Both are taken when the response body has been sent (or the client went
//! away), not when the handler returns: a download's time and bytes are its
//! whole transfer, and it counts as in flight until then.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use glance_layers::CallerSlot;
use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tower::{Layer, Service};

use crate::api::{ApiBody, REQUEST_ID, route_label};
use crate::telemetry::metrics::Metrics;

#[derive(Clone)]
pub struct AccessLayer {
    metrics: Metrics,
}

impl AccessLayer {
    pub fn new(metrics: Metrics) -> Self {
        AccessLayer { metrics }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Access<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B> Service<Request<B>> for Access<S>
where
    S: Service<Request<Counted<B>>, Response = Response<ApiBody>> + Send + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ApiBody>;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Response<ApiBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = req.method().clone();
        let route = route_label(req.uri().path());
        let label = method_label(&method);
        let active = self.metrics.http_active(label, &route);
        active.inc();
        let caller = CallerSlot::default();
        let received = self.metrics.http_request_bytes(label, &route);
        let sent = self.metrics.http_response_bytes(label, &route);
        let mut entry = Entry {
            metrics: self.metrics.clone(),
            started,
            path: req.uri().path().to_string(),
            request_id: req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            caller: caller.clone(),
            method,
            route,
            status: 0,
            active,
            bytes: 0,
            done: false,
        };
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(caller);
        let fut = self.inner.call(Request::from_parts(
            parts,
            Counted::new(body, received, None),
        ));
        Box::pin(async move {
            // Dropped before answering, `entry` logs itself (see its `Drop`).
            let resp = fut.await?;
            entry.status = resp.status().as_u16();
            let (parts, body) = resp.into_parts();
            let counted = Counted::new(body, sent, Some(entry));
            Ok(Response::from_parts(parts, ApiBody::new(counted)))
        })
    }
}

/// The `method` label: the standard methods, and `_OTHER` for any other (as
/// OpenTelemetry's HTTP conventions say), so made-up methods cannot grow the
/// label sets without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// What the log line and the metrics need once the response is over.
struct Entry {
    metrics: Metrics,
    started: Instant,
    method: Method,
    path: String,
    route: String,
    request_id: String,
    caller: CallerSlot,
    status: u16,
    active: Gauge,
    /// Response body bytes sent so far.
    bytes: u64,
    done: bool,
}

impl Entry {
    /// Logs the request and takes its metrics; `complete` is false when the
    /// body was cut short (the client went away mid-download).
    fn finish(&mut self, complete: bool) {
        self.done = true;
        let elapsed = self.started.elapsed();
        self.active.dec();
        self.metrics.http_request(
            method_label(&self.method),
            &self.route,
            self.status,
            elapsed,
        );
        tracing::info!(
            target: "glance::access",
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes = self.bytes,
            duration_ms = format_args!("{:.3}", elapsed.as_secs_f64() * 1000.0),
            request_id = %self.request_id,
            project = %self.caller.project().unwrap_or("-"),
            complete,
            "request",
        );
    }
}

impl Drop for Entry {
    /// A request dropped before it answered (its connection closed mid-upload):
    /// logged with nginx's 499, "client closed request", which no handler sends.
    fn drop(&mut self) {
        if !self.done {
            if self.status == 0 {
                self.status = 499;
            }
            self.finish(false);
        }
    }
}

pin_project_lite::pin_project! {
    /// A body that counts its data bytes into `bytes`; a response's also
    /// finishes its [`Entry`] when it is dropped (sent or not).
    pub struct Counted<B> {
        #[pin]
        inner: B,
        bytes: Counter,
        entry: Option<Entry>,
        // The body's length when it is known up front: hyper stops polling
        // once that much is sent, without asking for the end.
        expected: Option<u64>,
        seen: u64,
        ended: bool,
    }

    impl<B> PinnedDrop for Counted<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mut entry) = this.entry.take() {
                entry.finish(*this.ended);
            }
        }
    }
}

impl<B> Counted<B> {
    fn new(inner: B, bytes: Counter, entry: Option<Entry>) -> Self
    where
        B: Body,
    {
        // An empty body (a 204, a HEAD) is over before it is polled.
        let ended = inner.is_end_stream();
        let expected = inner.size_hint().exact();
        Counted {
            inner,
            bytes,
            entry,
            expected,
            seen: 0,
            ended,
        }
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, Bytes::len) as u64;
                this.bytes.inc_by(n);
                if let Some(entry) = this.entry.as_mut() {
                    entry.bytes += n;
                }
                *this.seen += n;
                // hyper stops polling a body that says it has ended, or that
                // has sent the length it announced.
                if this.inner.is_end_stream() || Some(*this.seen) == *this.expected {
                    *this.ended = true;
                }
            }
            Poll::Ready(None) => *this.ended = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
