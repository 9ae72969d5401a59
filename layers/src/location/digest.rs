//! Hashing and size checking of upload data as it flows to the store, in the same
//! pass as the write: MD5 for Glance's `checksum`, and the configured multihash.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use md5::Md5;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::sync::oneshot;

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

/// Passes the data through, hashing it, and fails the stream when its length differs
/// from the expected size. The digests arrive on the receiver once the stream ends
/// cleanly.
pub struct DigestingStream {
    inner: DataStream,
    md5: Md5,
    multi: Option<MultiHasher>,
    algo: HashAlgo,
    size: u64,
    expected: Option<u64>,
    done: Option<oneshot::Sender<Digests>>,
}

impl DigestingStream {
    pub fn new(
        inner: DataStream,
        algo: HashAlgo,
        expected: Option<u64>,
    ) -> (Self, oneshot::Receiver<Digests>) {
        let (tx, rx) = oneshot::channel();
        let stream = DigestingStream {
            inner,
            md5: Md5::new(),
            multi: Some(MultiHasher::new(algo)),
            algo,
            size: 0,
            expected,
            done: Some(tx),
        };
        (stream, rx)
    }

    fn mismatch(&self, got: &str) -> ImageError {
        ImageError::BadRequest(format!(
            "Size mismatch: expected {} bytes, got {got} bytes",
            self.expected.unwrap_or_default()
        ))
    }
}

impl Stream for DigestingStream {
    type Item = Result<Bytes, ImageError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done.is_none() {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.size += chunk.len() as u64;
                if this.expected.is_some_and(|e| this.size > e) {
                    this.done = None;
                    return Poll::Ready(Some(Err(this.mismatch("more"))));
                }
                this.md5.update(&chunk);
                if let Some(m) = this.multi.as_mut() {
                    m.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                if this.expected.is_some_and(|e| this.size != e) {
                    this.done = None;
                    let got = this.size.to_string();
                    return Poll::Ready(Some(Err(this.mismatch(&got))));
                }
                let md5 = std::mem::take(&mut this.md5);
                let digests = Digests {
                    size: this.size,
                    md5: hex::encode(md5.finalize()),
                    algo: this.algo,
                    multihash: this
                        .multi
                        .take()
                        .map(MultiHasher::finish)
                        .unwrap_or_default(),
                };
                if let Some(tx) = this.done.take() {
                    let _ = tx.send(digests);
                }
                Poll::Ready(None)
            }
            other => other,
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
        (result, rx.await.ok())
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
        assert!(matches!(long, Err(ImageError::BadRequest(m)) if m.contains("Size mismatch")));
        assert!(d.is_none());
        let (short, _) = drain(vec![b"012"], Some(5)).await;
        assert!(matches!(short, Err(ImageError::BadRequest(_))));
    }
}
