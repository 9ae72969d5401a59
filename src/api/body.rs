//! The response body type, small constructors for responses, and the idle
//! timeout on request bodies.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as the API reads it, whatever the server hands in.
pub trait RequestBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

impl<B> RequestBody for B
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
}

/// Every response body: small buffers for JSON, a stream for image data.
pub type ApiBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> ApiBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> ApiBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A JSON response whose body is already serialized.
pub fn json(status: StatusCode, body: Vec<u8>) -> Response<ApiBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `204 No Content` as Glance's webob sends it for actions and uploads.
pub fn no_content_html() -> Response<ApiBody> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

/// A bare `204`, as Glance sends for member deletes and data-less downloads.
pub fn no_content() -> Response<ApiBody> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// A request body that brought no byte for `client_socket_timeout` while the
/// service waited for one.
#[derive(Debug, thiserror::Error)]
#[error("no request body data for {0:?}")]
pub struct BodyIdle(pub Duration);

pin_project_lite::pin_project! {
    /// A request body that fails with [`BodyIdle`] when the client leaves it idle.
    ///
    /// The clock runs only while the service is waiting for data: time the
    /// service spends elsewhere (writing to a slow store) is not the client's.
    pub struct IdleTimeout<B> {
        #[pin]
        inner: B,
        timeout: Option<Duration>,
        #[pin]
        waiting: Option<tokio::time::Sleep>,
    }
}

impl<B> IdleTimeout<B> {
    /// `None` waits forever.
    pub fn new(inner: B, timeout: Option<Duration>) -> Self {
        IdleTimeout {
            inner,
            timeout,
            waiting: None,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting.set(None);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let Some(timeout) = *this.timeout else {
                    return Poll::Pending;
                };
                if this.waiting.is_none() {
                    this.waiting.set(Some(tokio::time::sleep(timeout)));
                }
                match this.waiting.as_pin_mut().map(|w| w.poll(cx)) {
                    Some(Poll::Ready(())) => Poll::Ready(Some(Err(BodyIdle(timeout).into()))),
                    _ => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    #[tokio::test(start_paused = true)]
    async fn only_time_spent_waiting_for_the_client_counts() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let stream = tokio_stream_from(rx);
        let mut body = std::pin::pin!(IdleTimeout::new(
            StreamBody::new(stream),
            Some(Duration::from_secs(10))
        ));
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        // The service is busy for 60 s, then the client sends at once.
        tokio::time::sleep(Duration::from_secs(60)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"b"))))
            .await
            .unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        // 9 s of waiting, then data: still fine.
        let sender = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(9)).await;
            sender
                .send(Ok(Frame::data(Bytes::from_static(b"c"))))
                .await
                .unwrap();
        });
        assert!(body.frame().await.unwrap().is_ok());
        // Then nothing: the 10th second of waiting ends it.
        let t0 = tokio::time::Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyIdle>());
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
    }

    fn tokio_stream_from<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
