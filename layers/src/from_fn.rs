//! Turn an `async fn(ImageRequest, Next)` into a layer: the shortest way to write
//! your own domain layer.

use std::future::Future;
use std::task::{Context, Poll};

use tower::{Layer, Service, ServiceExt};

use crate::{BoxFuture, BoxImageService, ImageError, ImageRequest, ImageResponse, ImageService};

/// Makes a layer from an async function that gets each request and the rest of the
/// stack. See the crate docs for an example.
pub fn from_fn<F>(f: F) -> FromFnLayer<F> {
    FromFnLayer { f }
}

/// The layer made by [`from_fn`].
#[derive(Clone)]
pub struct FromFnLayer<F> {
    f: F,
}

impl<S, F: Clone> Layer<S> for FromFnLayer<F> {
    type Service = FromFn<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        FromFn {
            f: self.f.clone(),
            inner,
        }
    }
}

/// The service made by [`FromFnLayer`].
#[derive(Clone)]
pub struct FromFn<S, F> {
    f: F,
    inner: S,
}

impl<S, F, Fut> Service<ImageRequest> for FromFn<S, F>
where
    S: ImageService,
    F: Fn(ImageRequest, Next) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<ImageResponse, ImageError>> + Send + 'static,
{
    type Response = ImageResponse;
    type Error = ImageError;
    type Future = BoxFuture<Result<ImageResponse, ImageError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ImageError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ImageRequest) -> Self::Future {
        let next = Next {
            inner: BoxImageService::new(crate::take_ready(&mut self.inner)),
        };
        Box::pin((self.f)(req, next))
    }
}

/// The rest of the stack, as a [`from_fn`] layer sees it.
#[derive(Clone)]
pub struct Next {
    inner: BoxImageService,
}

impl Next {
    /// Passes the request on and waits for the answer.
    pub async fn run(self, req: ImageRequest) -> Result<ImageResponse, ImageError> {
        self.inner.oneshot(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Operation, RequestContext};

    #[tokio::test]
    async fn a_function_layer_sees_and_can_refuse_requests() {
        async fn deny_deletes(req: ImageRequest, next: Next) -> Result<ImageResponse, ImageError> {
            if matches!(req.op, Operation::Delete { .. }) {
                return Err(ImageError::Forbidden("no".into()));
            }
            next.run(req).await
        }
        let core = tower::service_fn(|req: ImageRequest| async move {
            let id = req.op.image_id().unwrap_or_default().to_string();
            Ok::<_, ImageError>(ImageResponse::image(crate::Image::new(
                id,
                chrono::Utc::now(),
            )))
        });
        let svc = from_fn(deny_deletes).layer(core);
        let get = ImageRequest::new(RequestContext::default(), Operation::Get { id: "a".into() });
        assert!(svc.clone().oneshot(get).await.is_ok());
        let del = ImageRequest::new(
            RequestContext::default(),
            Operation::Delete { id: "a".into() },
        );
        assert_eq!(
            svc.oneshot(del).await.unwrap_err(),
            ImageError::Forbidden("no".into())
        );
    }
}
