//! The stream cutter: an upload's bytes are counted as they flow and the stream
//! fails at the first byte past the size cap or the project's storage limit,
//! never after the data is stored.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::ledger::{Hold, Over};
use super::limits::{MIB, over_limit, size_cap_error};
use crate::{BoxFuture, DataStream, ImageError};

/// Which per-project byte limit binds an upload.
#[derive(Debug, Clone, Copy)]
pub(super) enum Total {
    /// `image_size_total`, reported in MiB as oslo.limit does.
    Unified(u64),
    /// `user_storage_quota`, reported in bytes as Glance's StorageQuotaFull does.
    Legacy(u64),
    /// `image_stage_total`, for data on its way to the staging store.
    Staging(u64),
}

/// What an upload stream checks each chunk against.
pub(super) struct Guard {
    pub(super) hold: Arc<Hold>,
    /// The project's stored bytes when the upload began.
    pub(super) used: u64,
    pub(super) total: Option<Total>,
    pub(super) project: String,
}

impl Guard {
    pub(super) fn limit(&self) -> Option<u64> {
        match self.total? {
            Total::Unified(b) | Total::Legacy(b) | Total::Staging(b) => Some(b),
        }
    }

    /// A known size over what is left is refused before any byte is read.
    pub(super) fn check_up_front(&self, expected: u64) -> Result<(), ImageError> {
        let Some(limit) = self.limit() else {
            return Ok(());
        };
        let used = self.hold.bytes_used(self.used);
        if used.saturating_add(expected) > limit {
            return Err(self.error(used, expected));
        }
        Ok(())
    }

    /// Reserves `n` more bytes of the project's total, or says why not.
    fn take(&self, n: u64) -> Result<(), ImageError> {
        let Some(limit) = self.limit() else {
            return Ok(());
        };
        self.hold
            .take_bytes(self.used, limit, n)
            .map_err(|Over { used, mine }| self.error(used, mine + n))
    }

    fn error(&self, used: u64, attempted: u64) -> ImageError {
        match self.total {
            Some(Total::Legacy(limit)) => ImageError::quota_exceeded(
                "user_storage_quota",
                format!(
                    "Image exceeds the storage quota: The size of the data {attempted} will exceed the limit. {} bytes remaining.",
                    limit.saturating_sub(used)
                ),
            ),
            Some(Total::Unified(limit)) => over_limit(
                &self.project,
                "image_size_total",
                limit / MIB,
                used / MIB,
                attempted.div_ceil(MIB),
            ),
            Some(Total::Staging(limit)) => over_limit(
                &self.project,
                "image_stage_total",
                limit / MIB,
                used / MIB,
                attempted.div_ceil(MIB),
            ),
            None => size_cap_error(),
        }
    }
}

/// Passes at most `cap` bytes and no more than the project may still store,
/// then fails with `QuotaExceeded`: the shape of `http_body_util::Limited`, with our errors.
pub struct LimitedStream {
    inner: DataStream,
    cap: u64,
    seen: u64,
    guard: Guard,
    failed: bool,
    /// At the end of the data, the project's gate is taken before the stream
    /// says so: the upload lands (its database write) under it.
    landing: Option<BoxFuture<tokio::sync::OwnedMutexGuard<()>>>,
}

impl LimitedStream {
    pub(super) fn new(inner: DataStream, cap: u64, guard: Guard) -> Self {
        LimitedStream {
            inner,
            cap,
            seen: 0,
            guard,
            failed: false,
            landing: None,
        }
    }
}

impl Stream for LimitedStream {
    type Item = Result<Bytes, ImageError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        if let Some(landing) = this.landing.as_mut() {
            let gate = std::task::ready!(landing.as_mut().poll(cx));
            this.landing = None;
            this.guard.hold.set_landing(gate);
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                this.seen += n;
                let verdict = if this.seen > this.cap {
                    Err(size_cap_error())
                } else {
                    this.guard.take(n)
                };
                match verdict {
                    Ok(()) => Poll::Ready(Some(Ok(chunk))),
                    Err(e) => {
                        this.failed = true;
                        this.guard.hold.release_bytes();
                        Poll::Ready(Some(Err(e)))
                    }
                }
            }
            Poll::Ready(None) if this.guard.limit().is_some() => {
                let gate = this.guard.hold.gate();
                this.landing = Some(Box::pin(gate.lock_owned()));
                Pin::new(this).poll_next(cx)
            }
            other => other,
        }
    }
}
