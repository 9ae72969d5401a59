//! Turn an `async fn(ImageRequest, Next)` into a layer: the shortest way to write
//! your own domain layer.

use std::future::Future;

use crate::middleware::{Middleware, MiddlewareLayer, Next};
use crate::{ImageError, ImageRequest, ImageResponse, ImageService};

/// Makes a layer from an async function that gets each request and the rest of the
/// stack. See the crate docs for an example; for a layer with state of its own,
/// implement [`Middleware`] instead.
pub fn from_fn<F>(f: F) -> FromFnLayer<F> {
    MiddlewareLayer::from_middleware(FromFn { f })
}

/// The layer made by [`from_fn`].
pub type FromFnLayer<F> = MiddlewareLayer<FromFn<F>>;

/// An async function as a [`Middleware`]. It sees the rest of the stack boxed, so
/// its signature need not name the stack's type.
pub struct FromFn<F> {
    f: F,
}

impl<F, Fut> Middleware for FromFn<F>
where
    F: Fn(ImageRequest, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ImageResponse, ImageError>> + Send + 'static,
{
    fn call<S: ImageService>(
        &self,
        req: ImageRequest,
        next: Next<S>,
    ) -> impl Future<Output = Result<ImageResponse, ImageError>> + Send {
        (self.f)(req, next.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Operation, RequestContext};
    use tower::{Layer, ServiceExt};

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
