//! Inspection in the data path: a stream adapter between the request (or the
//! staged data) and the store.
//!
//! Glance inspects while it writes and judges once the bytes are in the store.
//! Here the judgement is part of the stream the store reads: a refusal is the
//! stream's last item, an error, so the store never commits the data (it removes
//! what it wrote, as for any failed stream). When the first [`HEAD_LEN`] bytes
//! already settle a refusal (a qcow2 with a backing file, a QED, a format that is
//! not the image's `disk_format`), the stream fails there, without writing the
//! rest.
//!
//! Only `bare` containers are inspected, as in Glance: the content of an `ova`
//! or `docker` container is not a disk image.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::oneshot;

use super::{Accepted, FormatPolicy, HEAD_LEN, Inspector, check_format};
use crate::{DataStream, Image, ImageError};

/// What the inspection of an upload concluded, known once the store has read the
/// stream to its end.
pub struct FormatCheck(Option<oneshot::Receiver<Accepted>>);

impl FormatCheck {
    /// The `virtual_size` to record: `None` when the image was not inspected,
    /// or the stream did not end cleanly, or inspection has no size for it.
    pub fn virtual_size(self) -> Option<u64> {
        self.0?.try_recv().ok()?.virtual_size
    }
}

/// Wraps `data` in the inspection of `image`'s declared format, when its
/// container is `bare`; other data passes through untouched.
pub fn inspecting(
    data: DataStream,
    image: &Image,
    policy: &FormatPolicy,
) -> (DataStream, FormatCheck) {
    if image.container_format.as_deref() != Some("bare") {
        return (data, FormatCheck(None));
    }
    let (tx, rx) = oneshot::channel();
    let stream = InspectingStream {
        inner: data,
        inspector: Some(Inspector::new()),
        disk_format: image.disk_format.clone().unwrap_or_default(),
        policy: policy.clone(),
        head_judged: false,
        done: Some(tx),
    };
    (Box::pin(stream), FormatCheck(Some(rx)))
}

/// Feeds every chunk to an [`Inspector`] on its way through, and ends the stream
/// with the verdict: `None` (accepted) or an [`ImageError::InvalidImageData`].
struct InspectingStream {
    inner: DataStream,
    /// `None` once the stream has ended, either way.
    inspector: Option<Inspector>,
    disk_format: String,
    policy: FormatPolicy,
    /// Whether the refusals the head settles were looked for.
    head_judged: bool,
    done: Option<oneshot::Sender<Accepted>>,
}

impl InspectingStream {
    fn refuse(&mut self, message: String) -> Poll<Option<Result<Bytes, ImageError>>> {
        tracing::info!(disk_format = %self.disk_format, reason = %message, "image data refused by format inspection");
        self.inspector = None;
        self.done = None;
        Poll::Ready(Some(Err(ImageError::InvalidImageData(message))))
    }
}

impl Stream for InspectingStream {
    type Item = Result<Bytes, ImageError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(inspector) = this.inspector.as_mut() else {
            return Poll::Ready(None);
        };
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                inspector.feed(&chunk);
                if !this.head_judged && inspector.bytes_seen() >= HEAD_LEN as u64 {
                    this.head_judged = true;
                    if let Some(message) =
                        inspector.settled_refusal(&this.disk_format, &this.policy)
                    {
                        return this.refuse(message);
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                let Some(inspector) = this.inspector.take() else {
                    return Poll::Ready(None);
                };
                let verdict = inspector.finish();
                match check_format(&verdict, &this.disk_format, &this.policy) {
                    Ok(accepted) => {
                        if let Some(warning) = &accepted.warning {
                            tracing::warn!(disk_format = %this.disk_format, "{warning}");
                        }
                        if let Some(tx) = this.done.take() {
                            let _ = tx.send(accepted);
                        }
                        Poll::Ready(None)
                    }
                    Err(message) => this.refuse(message),
                }
            }
            Poll::Ready(Some(Err(e))) => {
                this.inspector = None;
                this.done = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{StreamExt, stream};

    fn image(disk: &str, container: &str) -> Image {
        let mut image = Image::new("id".into(), chrono::Utc::now());
        image.disk_format = Some(disk.into());
        image.container_format = Some(container.into());
        image
    }

    /// Drains the inspected stream of `data` in `chunk`-sized pieces: the bytes
    /// passed through, the error that ended it, and the virtual size.
    async fn run(
        data: Vec<u8>,
        chunk: usize,
        image: &Image,
    ) -> (usize, Option<ImageError>, Option<u64>) {
        let chunks: Vec<_> = data
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let (mut s, check) = inspecting(
            stream::iter(chunks).boxed(),
            image,
            &FormatPolicy::default(),
        );
        let mut passed = 0;
        let mut error = None;
        while let Some(item) = s.next().await {
            match item {
                Ok(c) => passed += c.len(),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        (passed, error, check.virtual_size())
    }

    fn qcow2_header(backing: bool) -> Vec<u8> {
        let mut h = vec![0u8; 4 << 20];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        if backing {
            h[8..16].copy_from_slice(&512u64.to_be_bytes());
            h[16..20].copy_from_slice(&8u32.to_be_bytes());
        }
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        h[100..104].copy_from_slice(&104u32.to_be_bytes());
        h
    }

    #[tokio::test]
    async fn raw_passes_whole_with_its_size() {
        let (passed, error, size) = run(vec![7u8; 3 << 20], 65536, &image("raw", "bare")).await;
        assert_eq!((passed, error, size), (3 << 20, None, Some(3 << 20)));
    }

    #[tokio::test]
    async fn a_settled_refusal_stops_the_stream_after_the_head() {
        let (passed, error, size) = run(qcow2_header(true), 65536, &image("qcow2", "bare")).await;
        assert_eq!(
            error,
            Some(ImageError::InvalidImageData(
                "Image failed safety checks".into()
            ))
        );
        // The chunk that completes the head is the one refused.
        assert!(passed < HEAD_LEN && passed + 65536 >= HEAD_LEN, "{passed}");
        assert_eq!(size, None);
        let (passed, error, _) = run(qcow2_header(false), 65536, &image("vmdk", "bare")).await;
        assert_eq!(
            error,
            Some(ImageError::InvalidImageData(
                "Image disk_format vmdk does not match stream data qcow2".into()
            ))
        );
        assert!(passed < HEAD_LEN + 65536);
    }

    #[tokio::test]
    async fn short_streams_are_judged_at_their_end() {
        let mut data = qcow2_header(true);
        data.truncate(4096);
        let (passed, error, _) = run(data, 1000, &image("qcow2", "bare")).await;
        assert_eq!(passed, 4096);
        assert!(matches!(error, Some(ImageError::InvalidImageData(_))));
    }

    #[tokio::test]
    async fn accepted_formats_carry_their_virtual_size() {
        let (passed, error, size) = run(qcow2_header(false), 65536, &image("qcow2", "bare")).await;
        assert_eq!((passed, error, size), (4 << 20, None, Some(1 << 30)));
    }

    #[tokio::test]
    async fn other_containers_are_not_inspected() {
        let (passed, error, size) = run(qcow2_header(true), 65536, &image("qcow2", "ovf")).await;
        assert_eq!((passed, error, size), (4 << 20, None, None));
    }
}
