//! The kit every layer here is written with: implement [`Middleware`] for a
//! layer's state, and [`MiddlewareLayer`] writes the tower `Layer`, the `Service`,
//! readiness and the hand-over to the rest of the stack once for all of them.
//!
//! A stateful layer of your own (a rate limiter, an audit trail with its own sink)
//! is a struct and one `async fn`:
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use glance_layers::{ImageError, ImageRequest, ImageResponse, ImageService};
//! use glance_layers::middleware::{Middleware, MiddlewareLayer, Next};
//!
//! /// Counts the requests it refused.
//! #[derive(Default)]
//! struct NoDeletes {
//!     refused: AtomicU64,
//! }
//!
//! impl Middleware for NoDeletes {
//!     async fn call<S: ImageService>(
//!         &self,
//!         req: ImageRequest,
//!         next: Next<S>,
//!     ) -> Result<ImageResponse, ImageError> {
//!         if req.op.name() == "delete_image" {
//!             self.refused.fetch_add(1, Ordering::Relaxed);
//!             return Err(ImageError::Forbidden("Deletes are off today.".into()));
//!         }
//!         next.run(req).await
//!     }
//! }
//!
//! let layer: MiddlewareLayer<NoDeletes> = NoDeletes::default().into_layer();
//! # let _ = layer;
//! ```

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service, ServiceExt};

use crate::{BoxFuture, BoxImageService, ImageError, ImageRequest, ImageResponse, ImageService};

/// What a layer does with each request. `next` is the rest of the stack, ready to
/// take one request; a layer may answer without it, change the request, or look
/// at the answer.
pub trait Middleware: Send + Sync + 'static {
    fn call<S: ImageService>(
        &self,
        req: ImageRequest,
        next: Next<S>,
    ) -> impl Future<Output = Result<ImageResponse, ImageError>> + Send;

    /// This middleware as a tower layer, ready for `ServiceBuilder::layer` or the
    /// server's `AppBuilder::layer`.
    fn into_layer(self) -> MiddlewareLayer<Self>
    where
        Self: Sized,
    {
        MiddlewareLayer::from_middleware(self)
    }
}

/// The rest of the stack below a layer.
pub struct Next<S = BoxImageService> {
    inner: S,
    /// Driven to readiness by the service's `poll_ready` before it was handed
    /// over; clones are not, and wait for readiness when run.
    ready: bool,
}

impl<S: ImageService> Next<S> {
    pub(crate) fn ready(inner: S) -> Self {
        Next { inner, ready: true }
    }

    /// Passes the request on and waits for the answer.
    pub async fn run(mut self, req: ImageRequest) -> Result<ImageResponse, ImageError> {
        if self.ready {
            self.inner.call(req).await
        } else {
            self.inner.oneshot(req).await
        }
    }

    /// Boxes the rest of the stack, for code that does not want its type.
    pub fn boxed(self) -> Next {
        Next {
            inner: BoxImageService::new(self.inner),
            ready: self.ready,
        }
    }
}

/// A second handle on the rest of the stack, for a layer that asks it more than
/// once per request.
impl<S: ImageService> Clone for Next<S> {
    fn clone(&self) -> Self {
        Next {
            inner: self.inner.clone(),
            ready: false,
        }
    }
}

/// A [`Middleware`] as a tower layer.
pub struct MiddlewareLayer<M> {
    middleware: Arc<M>,
}

impl<M> MiddlewareLayer<M> {
    /// Wraps `middleware`; every service the layer makes shares it.
    pub fn from_middleware(middleware: M) -> Self {
        MiddlewareLayer {
            middleware: Arc::new(middleware),
        }
    }
}

impl<M> Clone for MiddlewareLayer<M> {
    fn clone(&self) -> Self {
        MiddlewareLayer {
            middleware: self.middleware.clone(),
        }
    }
}

impl<M, S> Layer<S> for MiddlewareLayer<M> {
    type Service = MiddlewareService<M, S>;

    fn layer(&self, inner: S) -> Self::Service {
        MiddlewareService {
            middleware: self.middleware.clone(),
            inner,
        }
    }
}

/// The service made by [`MiddlewareLayer`].
pub struct MiddlewareService<M, S> {
    middleware: Arc<M>,
    inner: S,
}

impl<M, S: Clone> Clone for MiddlewareService<M, S> {
    fn clone(&self) -> Self {
        MiddlewareService {
            middleware: self.middleware.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<M: Middleware, S: ImageService> Service<ImageRequest> for MiddlewareService<M, S> {
    type Response = ImageResponse;
    type Error = ImageError;
    type Future = BoxFuture<Result<ImageResponse, ImageError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ImageError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ImageRequest) -> Self::Future {
        // The ready service goes down with the request; a fresh clone stays for
        // the next call, as tower asks of services that call inner from a future.
        let fresh = self.inner.clone();
        let next = Next::ready(std::mem::replace(&mut self.inner, fresh));
        let middleware = self.middleware.clone();
        Box::pin(async move { middleware.call(req, next).await })
    }
}
