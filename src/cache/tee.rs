//! The tee: image data on its way to a client, copied aside into
//! `incomplete/<id>` by a writer task, which moves the copy into the cache only
//! if it got exactly the image's size and its MD5 matches the image's checksum.
//!
//! The end of the data is the end of the channel: hyper may drop a response
//! body once it has sent `Content-Length` bytes without polling it to its end,
//! so the writer judges what it received when the sender goes away, whether the
//! stream ended, failed, or the client left. A short copy is removed; one of the
//! right size with the wrong checksum goes to `invalid/` for the operator.
//!
//! The client never waits for the disk more than a few chunks: the queue to the
//! writer is bounded (so memory is too), and if the writer gives up the data
//! passes through untouched.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use glance_layers::{DataStream, ImageError};
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::Inner;

/// Chunks queued to the writer before the client waits for it.
const QUEUED_CHUNKS: usize = 16;

/// What the copy must be to join the cache.
pub(super) struct Expected {
    pub id: String,
    pub size: u64,
    pub checksum: Option<String>,
}

/// `data` teed into the cache, and the writer task (done once the copy is in
/// the cache or given up).
pub(super) fn tee(
    cache: Arc<Inner>,
    expected: Expected,
    data: DataStream,
) -> (DataStream, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    let writer = tokio::spawn(write(cache, expected, rx));
    let stream = Tee {
        inner: data,
        tx: Some(PollSender::new(tx)),
        pending: None,
    };
    (stream.boxed(), writer)
}

struct Tee {
    inner: DataStream,
    /// `None` once the writer is gone or the data failed: pass through only.
    tx: Option<PollSender<Bytes>>,
    /// A chunk waiting for room in the writer's queue before it goes on.
    pending: Option<Bytes>,
}

impl Stream for Tee {
    type Item = Result<Bytes, ImageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match ready!(this.inner.poll_next_unpin(cx)) {
                Some(Ok(chunk)) if this.tx.is_some() => this.pending = Some(chunk),
                Some(Err(e)) => {
                    // A failed read is never cached: the writer sees the
                    // channel close short of the size.
                    this.tx = None;
                    return Poll::Ready(Some(Err(e)));
                }
                other => {
                    // The end (the writer judges the copy when `tx` drops with
                    // the stream), or a chunk with no writer to copy it to.
                    if other.is_none() {
                        this.tx = None;
                    }
                    return Poll::Ready(other);
                }
            }
        }
        if let Some(tx) = this.tx.as_mut() {
            match ready!(tx.poll_reserve(cx)) {
                Ok(()) => {
                    let chunk = this.pending.clone().unwrap_or_default();
                    if tx.send_item(chunk).is_err() {
                        this.tx = None;
                    }
                }
                // The writer gave up (another fill of this image is running, or
                // the disk failed): the client still gets every byte.
                Err(_) => this.tx = None,
            }
        }
        Poll::Ready(this.pending.take().map(Ok))
    }
}

/// Removes the incomplete file unless the copy was moved away, also when the
/// task is dropped at shutdown.
struct Incomplete(Option<PathBuf>);

impl Drop for Incomplete {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn write(cache: Arc<Inner>, expected: Expected, mut rx: mpsc::Receiver<Bytes>) {
    let Some(path) = cache.dir.incomplete(&expected.id) else {
        return;
    };
    // `create_new`: an incomplete file means another fill of the image is
    // running (or a crash left one, which start-up and `clean` remove).
    let file = match tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .await
    {
        Ok(f) => f,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                tracing::warn!(image = %expected.id, error = %e, "cannot start a cache file");
            }
            return;
        }
    };
    let mut guard = Incomplete(Some(path.clone()));
    let mut file = tokio::io::BufWriter::with_capacity(256 << 10, file);
    let mut md5 = Md5::new();
    let mut written = 0u64;
    while let Some(chunk) = rx.recv().await {
        written += chunk.len() as u64;
        if written > expected.size {
            tracing::warn!(image = %expected.id, "image data longer than its size; not cached");
            return;
        }
        md5.update(&chunk);
        if let Err(e) = file.write_all(&chunk).await {
            tracing::warn!(image = %expected.id, error = %e, "cache write failed");
            return;
        }
    }
    if written != expected.size {
        tracing::debug!(image = %expected.id, written, size = expected.size, "download cut short; not cached");
        return;
    }
    let sum = hex::encode(md5.finalize());
    if expected.checksum.as_ref().is_some_and(|want| *want != sum) {
        tracing::warn!(image = %expected.id, got = %sum, want = ?expected.checksum,
            "image data does not match its checksum; kept in the cache's invalid/ directory");
        if let Some(invalid) = cache.dir.invalid(&expected.id)
            && tokio::fs::rename(&path, &invalid).await.is_ok()
        {
            guard.0 = None;
        }
        return;
    }
    let synced = async {
        file.flush().await?;
        file.get_ref().sync_all().await
    };
    if let Err(e) = synced.await {
        tracing::warn!(image = %expected.id, error = %e, "cache write failed");
        return;
    }
    drop(file);
    match cache.commit(&expected.id, &path, expected.size, sum).await {
        Ok(true) => guard.0 = None,
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(image = %expected.id, error = %e, "could not add an image to the cache")
        }
    }
}
