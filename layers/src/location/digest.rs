//! Hashing and size checking of upload data as it flows to the store, in the same
//! pass as the write: MD5 for Glance's `checksum`, and the configured multihash.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use md5::Md5;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::sync::oneshot;
use tokio_util::sync::PollSender;

use crate::{DataStream, ImageError};

/// Glance's `hashing_algorithm` values we support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgo {
    Sha256,
    Sha384,
    #[default]
    Sha512,
}

impl HashAlgo {
    pub fn parse(name: &str) -> Option<HashAlgo> {
        match name {
            "sha256" => Some(HashAlgo::Sha256),
            "sha384" => Some(HashAlgo::Sha384),
            "sha512" => Some(HashAlgo::Sha512),
            _ => None,
        }
    }

    /// Bytes in a digest.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgo::Sha256 => 32,
            HashAlgo::Sha384 => 48,
            HashAlgo::Sha512 => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha384 => "sha384",
            HashAlgo::Sha512 => "sha512",
        }
    }
}

enum MultiHasher {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl MultiHasher {
    fn new(algo: HashAlgo) -> Self {
        match algo {
            HashAlgo::Sha256 => MultiHasher::Sha256(Sha256::new()),
            HashAlgo::Sha384 => MultiHasher::Sha384(Sha384::new()),
            HashAlgo::Sha512 => MultiHasher::Sha512(Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            MultiHasher::Sha256(h) => h.update(data),
            MultiHasher::Sha384(h) => h.update(data),
            MultiHasher::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> String {
        match self {
            MultiHasher::Sha256(h) => hex::encode(h.finalize()),
            MultiHasher::Sha384(h) => hex::encode(h.finalize()),
            MultiHasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// What was learnt about the data once it all went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub md5: String,
    pub algo: HashAlgo,
    pub multihash: String,
}

/// Chunks queued for the multihash thread, at most.
const HASH_QUEUE: usize = 16;

/// Passes the data through, hashing it, and fails the stream when its length differs
/// from the expected size. MD5 is computed inline; the multihash on a blocking
/// thread fed clones of the chunks (a `Bytes` clone is a reference count), so the
/// two hashes and the write overlap on a machine with cores to spare.
pub struct DigestingStream {
    inner: DataStream,
    md5: Md5,
    size: u64,
    expected: Option<u64>,
    to_hasher: Option<PollSender<Bytes>>,
    /// A chunk waiting for room in the hasher's queue.
    pending: Option<Bytes>,
    done: Option<oneshot::Sender<(u64, String)>>,
}

/// Resolves to the digests once the stream has ended cleanly.
pub struct PendingDigests {
    inline: oneshot::Receiver<(u64, String)>,
    multihash: tokio::task::JoinHandle<String>,
    algo: HashAlgo,
}

impl PendingDigests {
    /// `None` when the stream failed or was not read to its end.
    pub async fn wait(self) -> Option<Digests> {
        let (size, md5) = self.inline.await.ok()?;
        let multihash = self.multihash.await.ok()?;
        Some(Digests {
            size,
            md5,
            algo: self.algo,
            multihash,
        })
    }
}

impl DigestingStream {
    pub fn new(inner: DataStream, algo: HashAlgo, expected: Option<u64>) -> (Self, PendingDigests) {
        let (tx, rx) = oneshot::channel();
        let (chunks_tx, mut chunks) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE);
        let multihash = tokio::task::spawn_blocking(move || {
            let mut hasher = MultiHasher::new(algo);
            while let Some(chunk) = chunks.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher.finish()
        });
        let stream = DigestingStream {
            inner,
            md5: Md5::new(),
            size: 0,
            expected,
            to_hasher: Some(PollSender::new(chunks_tx)),
            pending: None,
            done: Some(tx),
        };
        (
            stream,
            PendingDigests {
                inline: rx,
                multihash,
                algo,
            },
        )
    }

    fn mismatch(&self, got: &str) -> ImageError {
        ImageError::Invalid(format!(
            "Size mismatch: expected {} bytes, got {got} bytes",
            self.expected.unwrap_or_default()
        ))
    }

    fn fail(&mut self, e: ImageError) -> Poll<Option<Result<Bytes, ImageError>>> {
        self.done = None;
        self.to_hasher = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for DigestingStream {
    type Item = Result<Bytes, ImageError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done.is_none() {
                return Poll::Ready(None);
            }
            if let Some(chunk) = this.pending.take() {
                let Some(tx) = this.to_hasher.as_mut() else {
                    return Poll::Ready(None);
                };
                match tx.poll_reserve(cx) {
                    Poll::Pending => {
                        this.pending = Some(chunk);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(())) => {
                        if tx.send_item(chunk.clone()).is_err() {
                            return this.fail(ImageError::internal("the hashing thread stopped"));
                        }
                        this.md5.update(&chunk);
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    Poll::Ready(Err(_)) => {
                        return this.fail(ImageError::internal("the hashing thread stopped"));
                    }
                }
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.size += chunk.len() as u64;
                    if this.expected.is_some_and(|e| this.size > e) {
                        let e = this.mismatch("more");
                        return this.fail(e);
                    }
                    this.pending = Some(chunk);
                }
                Poll::Ready(None) => {
                    if this.expected.is_some_and(|e| this.size != e) {
                        let got = this.size.to_string();
                        let e = this.mismatch(&got);
                        return this.fail(e);
                    }
                    // Closing the queue lets the hashing thread finish.
                    this.to_hasher = None;
                    let md5 = std::mem::take(&mut this.md5);
                    if let Some(tx) = this.done.take() {
                        let _ = tx.send((this.size, hex::encode(md5.finalize())));
                    }
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => return this.fail(e),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{StreamExt, stream};

    async fn drain(
        chunks: Vec<&'static [u8]>,
        expected: Option<u64>,
    ) -> (Result<(), ImageError>, Option<Digests>) {
        let src = stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed();
        let (mut s, rx) = DigestingStream::new(src, HashAlgo::Sha512, expected);
        let mut result = Ok(());
        while let Some(item) = s.next().await {
            if let Err(e) = item {
                result = Err(e);
                break;
            }
        }
        (result, rx.wait().await)
    }

    #[tokio::test]
    async fn digests_match_known_values() {
        let (ok, d) = drain(vec![b"hello ", b"world"], None).await;
        assert!(ok.is_ok());
        let d = d.unwrap();
        assert_eq!(d.size, 11);
        assert_eq!(d.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert!(d.multihash.starts_with("309ecc489c12d6eb4cc40f50c902f2b4"));
        let (_, empty) = drain(vec![], Some(0)).await;
        assert_eq!(empty.unwrap().md5, "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[tokio::test]
    async fn size_mismatches_fail_the_stream() {
        let (long, d) = drain(vec![b"0123456789"], Some(5)).await;
        assert!(matches!(long, Err(ImageError::Invalid(m)) if m.contains("Size mismatch")));
        assert!(d.is_none());
        let (short, _) = drain(vec![b"012"], Some(5)).await;
        assert!(matches!(short, Err(ImageError::Invalid(_))));
    }
}
