//! Watching the stack work. [`Stack::build`](crate::stack::Stack::build) puts an
//! [`Observed`] around every layer and the core: each call gets a tracing span
//! (a child of the one around it, so a trace shows the request crossing auth,
//! policy, quota, … down to the core) and, when the server plugs in a
//! [`StackObserver`], its outcome and time are reported there (the server's
//! metrics). Nothing here depends on how those are exported.
//!
//! The spans are at `DEBUG` under the target `glance::layer`, so the default
//! `info` log shows none of them; a trace exporter enables them for itself.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::{BoxFuture, ImageError, ImageRequest, ImageResponse};

/// Receives what the stack reports. Every method has a default that ignores
/// the report, so an observer implements only what it records.
pub trait StackObserver: Send + Sync + 'static {
    /// `layer` ended a call for `operation` (the request's policy name, see
    /// [`Operation::name`](crate::Operation::name)) after `elapsed`, time spent
    /// below it included; `outcome` is `"ok"` or the error's
    /// [`kind`](ImageError::kind).
    fn layer_call(
        &self,
        layer: &'static str,
        operation: &'static str,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        let _ = (layer, operation, outcome, elapsed);
    }

    /// The policy layer refused a request on `rule` (a 403, or the 404 of an
    /// image the caller may not see).
    fn policy_denied(&self, rule: &str) {
        let _ = rule;
    }

    /// A request was refused for passing the limit named `resource`.
    fn quota_refused(&self, resource: &str) {
        let _ = resource;
    }
}

/// The observer a stack reports to, if any; cheap to clone.
pub type Observer = Option<Arc<dyn StackObserver>>;

/// Wraps a layer so that the service it makes is [`Observed`] under `name`.
#[derive(Clone)]
pub struct ObservedLayer<L> {
    inner: L,
    name: &'static str,
    observer: Observer,
}

impl<L> ObservedLayer<L> {
    pub fn new(name: &'static str, inner: L, observer: Observer) -> Self {
        ObservedLayer {
            inner,
            name,
            observer,
        }
    }
}

impl<L: Layer<S>, S> Layer<S> for ObservedLayer<L> {
    type Service = Observed<L::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed::new(self.name, self.inner.layer(inner), self.observer.clone())
    }
}

/// A service run inside a span named after its layer, its calls reported.
#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    name: &'static str,
    observer: Observer,
    /// The stack's outermost wrapper also reports quota refusals: every
    /// refusal passes it once, whichever layer made it.
    outermost: bool,
}

impl<S> Observed<S> {
    pub fn new(name: &'static str, inner: S, observer: Observer) -> Self {
        Observed {
            inner,
            name,
            observer,
            outermost: false,
        }
    }

    /// The wrapper around the whole stack (see `outermost`).
    pub fn outermost(name: &'static str, inner: S, observer: Observer) -> Self {
        Observed {
            outermost: true,
            ..Observed::new(name, inner, observer)
        }
    }
}

impl<S> Service<ImageRequest> for Observed<S>
where
    S: Service<ImageRequest, Response = ImageResponse, Error = ImageError>,
    S::Future: Send + 'static,
{
    type Response = ImageResponse;
    type Error = ImageError;
    type Future = BoxFuture<Result<ImageResponse, ImageError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ImageError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ImageRequest) -> Self::Future {
        let operation = req.op.name();
        let layer = self.name;
        let span = tracing::debug_span!(
            target: "glance::layer",
            "layer",
            otel.name = layer,
            layer,
            operation,
            outcome = tracing::field::Empty,
        );
        let fut = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        let observer = self.observer.clone();
        let outermost = self.outermost;
        let started = Instant::now();
        let record = span.clone();
        fut.map(move |result| {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            };
            record.record("outcome", outcome);
            if let Some(o) = &observer {
                o.layer_call(layer, operation, outcome, started.elapsed());
                if let (true, Err(ImageError::QuotaExceeded { resource, .. })) =
                    (outermost, &result)
                {
                    o.quota_refused(resource);
                }
            }
            result
        })
        .instrument(span)
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{Identity, Operation, RequestContext};

    #[derive(Default)]
    struct Calls(Mutex<Vec<(&'static str, &'static str, &'static str)>>);

    impl StackObserver for Calls {
        fn layer_call(
            &self,
            layer: &'static str,
            op: &'static str,
            outcome: &'static str,
            _: Duration,
        ) {
            self.0.lock().unwrap().push((layer, op, outcome));
        }
    }

    #[tokio::test]
    async fn reports_each_call_with_its_outcome() {
        let calls = Arc::new(Calls::default());
        let failing = tower::service_fn(|_: ImageRequest| async {
            Err::<ImageResponse, _>(ImageError::not_found("x"))
        });
        let mut svc = Observed::new(
            "core",
            failing,
            Some(calls.clone() as Arc<dyn StackObserver>),
        );
        let req = ImageRequest::new(
            RequestContext {
                identity: Some(Identity::default()),
                ..RequestContext::default()
            },
            Operation::Get { id: "x".into() },
        );
        let err = svc.call(req).await.unwrap_err();
        assert_eq!(err.kind(), "not_found");
        assert_eq!(
            *calls.0.lock().unwrap(),
            vec![("core", "get_image", "not_found")]
        );
    }
}
