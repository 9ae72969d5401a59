//! The body of a download as the import reads it: chunk by chunk, cut with an
//! error once it passes the byte limit or the server stops sending.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use glance_layers::ImageError;

/// Wraps the response body `inner` of `shown` (the URI, for messages).
pub(crate) fn limited(
    inner: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    max_bytes: u64,
    read_timeout: Duration,
    shown: String,
) -> impl Stream<Item = Result<Bytes, ImageError>> + Send + 'static {
    let state = State {
        inner: inner.boxed(),
        received: 0,
        done: false,
    };
    futures_util::stream::unfold(state, move |mut state| {
        let shown = shown.clone();
        async move {
            if state.done {
                return None;
            }
            let item = match tokio::time::timeout(read_timeout, state.inner.next()).await {
                Err(_) => Err(ImageError::unavailable(
                    format!(
                        "download of {shown} stalled: no data for {}s",
                        read_timeout.as_secs()
                    ),
                    None,
                )),
                Ok(None) => return None,
                Ok(Some(Err(e))) => Err(ImageError::unavailable(
                    format!("download of {shown} broke off"),
                    Some(Arc::new(e) as _),
                )),
                Ok(Some(Ok(chunk))) => {
                    state.received += chunk.len() as u64;
                    match state.received > max_bytes {
                        true => Err(ImageError::Invalid(format!(
                            "download of {shown} is larger than {max_bytes} bytes"
                        ))),
                        false => Ok(chunk),
                    }
                }
            };
            state.done = item.is_err();
            Some((item, state))
        }
    })
}

struct State {
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    received: u64,
    done: bool,
}
