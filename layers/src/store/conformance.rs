//! The properties every [`Store`] must have, as async functions that panic with the
//! name of the property a store lacks. The server runs them against its file,
//! memory and S3 stores; see the [module docs](super) to run them against yours.
//!
//! The suite relies on what the contract says, and on nothing a backend chooses:
//!
//! - The store writes, and ranged reads are checked only if it claims
//!   [`Capabilities::random_read`](super::Capabilities).
//! - An image's data has one final URL, the same for every put of the image:
//!   [`Store::discard`] with `with_final` removes "the object under the image's final
//!   name". The properties that check a put left nothing first learn that URL with a
//!   small put of the same image id, then delete it.
//! - Image ids start with `conformance-`; each property removes what it wrote, so the
//!   store must hold none of them when a property starts, and properties of one store
//!   must not run at the same time.
//! - It runs on a Tokio runtime with timers (a `#[tokio::test]` will do): one
//!   property spawns the put it then abandons.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{Store, StoreError, Upload};
use crate::{DataStream, ImageError};

/// How to run the suite.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Bytes of the large object. Make it span several of the store's write units
    /// (S3 parts, say): the properties about unfinished puts send half of it
    /// before the stream fails or stalls. 3 MiB by default.
    pub big: usize,
    /// How long an unfinished put is given to show data it should not, and a
    /// dropped put's clean-up is given to run. 200 ms by default.
    pub settle: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            big: 3 << 20,
            settle: Duration::from_millis(200),
        }
    }
}

impl Options {
    pub fn with_big(mut self, bytes: usize) -> Self {
        self.big = bytes;
        self
    }

    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }
}

/// Every property, one after the other.
pub async fn run_all(store: Arc<dyn Store>, options: Options) {
    round_trip(&store, &options).await;
    empty_object(&store).await;
    failed_put_leaves_nothing(&store, &options).await;
    unfinished_put_leaves_nothing(&store, &options).await;
    discard_removes_the_final_object_only_when_asked(&store).await;
}

/// What was put reads back whole and in ranges, with its size, until it is
/// deleted; then it is not found, and deleting it again is harmless.
pub async fn round_trip(store: &Arc<dyn Store>, options: &Options) {
    const P: &str = "round_trip";
    let big = options.big;
    check(
        P,
        big > 1100,
        format_args!("Options::big must exceed 1100 bytes"),
    );
    let body = pattern(big);
    let stored = ok(
        P,
        "put",
        store
            .put(&upload("conformance-a"), stream_of(&body, 64 << 10))
            .await,
    );
    check(
        P,
        stored.size == big as u64,
        format_args!("put reported {} bytes of {big}", stored.size),
    );
    check(
        P,
        store.owns(&stored.url),
        format_args!("the store does not own the URL it returned: {}", stored.url),
    );
    let size = ok(P, "size", store.size(&stored.url).await);
    check(
        P,
        size == big as u64,
        format_args!("size is {size}, {big} were put"),
    );
    let whole = ok(P, "get", read_all(&**store, &stored.url, None).await);
    check(
        P,
        whole == body,
        format_args!("get returned {} other bytes", whole.len()),
    );
    if store.capabilities().random_read {
        for range in [100..1100, big as u64 - 7..big as u64] {
            let part = ok(
                P,
                "ranged get",
                read_all(&**store, &stored.url, Some(range.clone())).await,
            );
            check(
                P,
                part == body[range.start as usize..range.end as usize],
                format_args!("get of {range:?} returned other bytes"),
            );
        }
    }
    ok(P, "delete", store.delete(&stored.url).await);
    let after = store.size(&stored.url).await;
    check(
        P,
        matches!(after, Err(StoreError::NotFound(_))),
        format_args!("size after delete is {after:?}, not NotFound"),
    );
    check(
        P,
        read_all(&**store, &stored.url, None).await.is_err(),
        format_args!("get after delete succeeded"),
    );
    // NotFound, or Ok where the backend's delete is idempotent (S3).
    let again = store.delete(&stored.url).await;
    check(
        P,
        matches!(again, Ok(()) | Err(StoreError::NotFound(_))),
        format_args!("deleting again gave {again:?}"),
    );
}

/// An empty stream makes an empty object, not an error.
pub async fn empty_object(store: &Arc<dyn Store>) {
    const P: &str = "empty_object";
    let empty = ok(
        P,
        "put",
        store
            .put(&upload("conformance-empty"), stream_of(&[], 1))
            .await,
    );
    check(
        P,
        empty.size == 0,
        format_args!("put reported {} bytes", empty.size),
    );
    let size = ok(P, "size", store.size(&empty.url).await);
    check(P, size == 0, format_args!("size is {size}"));
    let read = ok(P, "get", read_all(&**store, &empty.url, None).await);
    check(
        P,
        read.is_empty(),
        format_args!("get returned {} bytes", read.len()),
    );
    ok(P, "delete", store.delete(&empty.url).await);
}

/// A put whose stream fails half-way returns the stream's error as
/// [`StoreError::Data`] and leaves nothing: no object under the final name, no
/// temporary data.
pub async fn failed_put_leaves_nothing(store: &Arc<dyn Store>, options: &Options) {
    const P: &str = "failed_put_leaves_nothing";
    let url = final_url(P, store, "conformance-b").await;
    let injected = ImageError::internal("the upload stream broke");
    let chunks: Vec<Result<Bytes, ImageError>> = vec![
        Ok(Bytes::from(pattern(options.big / 2))),
        Err(injected.clone()),
    ];
    let result = store
        .put(
            &upload("conformance-b"),
            futures_util::stream::iter(chunks).boxed(),
        )
        .await;
    check(
        P,
        matches!(&result, Err(StoreError::Data(e)) if *e == injected),
        format_args!("put gave {result:?}, not StoreError::Data with the stream's error"),
    );
    nothing_at(P, store, &url, "the failed put").await;
}

/// While a put is in flight nothing shows under the final name, and a put whose
/// future is dropped half-way leaves nothing behind once its clean-up has run.
pub async fn unfinished_put_leaves_nothing(store: &Arc<dyn Store>, options: &Options) {
    const P: &str = "unfinished_put_leaves_nothing";
    let url = final_url(P, store, "conformance-c").await;
    let (tx, rx) = mpsc::channel::<Result<Bytes, ImageError>>(4);
    let in_flight = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put(&upload("conformance-c"), channel_stream(rx))
                .await
        })
    };
    tx.send(Ok(Bytes::from(pattern(options.big / 2))))
        .await
        .unwrap_or_else(|_| panic!("store conformance, {P}: the put stopped reading its stream"));
    tokio::time::sleep(options.settle).await;
    let during = store.size(&url).await;
    check(
        P,
        matches!(during, Err(StoreError::NotFound(_))),
        format_args!("size under the final name during the put is {during:?}, not NotFound"),
    );
    in_flight.abort();
    let _ = in_flight.await;
    drop(tx);
    // Clean-up may run after the drop (an S3 abort is spawned from a destructor).
    tokio::time::sleep(options.settle).await;
    nothing_at(P, store, &url, "the dropped put").await;
}

/// [`Store::discard`] removes an object left under the image's final name only
/// with `with_final`, and data already gone is no error.
pub async fn discard_removes_the_final_object_only_when_asked(store: &Arc<dyn Store>) {
    const P: &str = "discard_removes_the_final_object_only_when_asked";
    let body = pattern(1000);
    let d = ok(
        P,
        "put",
        store
            .put(&upload("conformance-d"), stream_of(&body, 100))
            .await,
    );
    // Another upload id than the put's: what recovery holds for an upload that
    // may or may not have completed the object.
    let upload_id = "00000000000000000000000000000002";
    ok(
        P,
        "discard without with_final",
        store.discard("conformance-d", upload_id, None, false).await,
    );
    let size = store.size(&d.url).await;
    check(
        P,
        matches!(size, Ok(1000)),
        format_args!("size after a discard without with_final is {size:?}, not Ok(1000)"),
    );
    ok(
        P,
        "discard with_final",
        store.discard("conformance-d", upload_id, None, true).await,
    );
    let size = store.size(&d.url).await;
    check(
        P,
        matches!(size, Err(StoreError::NotFound(_))),
        format_args!("size after a discard with_final is {size:?}, not NotFound"),
    );
    ok(
        P,
        "discard of data already gone",
        store.discard("conformance-d", upload_id, None, true).await,
    );
}

/// `len` bytes of a pattern that shows misplaced chunks.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

/// `bytes` as a stream of `chunk`-sized pieces.
pub fn stream_of(bytes: &[u8], chunk: usize) -> DataStream {
    let chunks: Vec<Result<Bytes, ImageError>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(chunks).boxed()
}

/// A stream fed from a channel: a put that waits for its data as long as the
/// sender lives.
pub fn channel_stream(mut rx: mpsc::Receiver<Result<Bytes, ImageError>>) -> DataStream {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Reads the object at `url`, or its `range`, whole.
pub async fn read_all(
    store: &dyn Store,
    url: &str,
    range: Option<Range<u64>>,
) -> Result<Vec<u8>, StoreError> {
    let mut s = store.get(url, range).await?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.map_err(StoreError::Data)?);
    }
    Ok(out)
}

/// An upload of `image_id` that no journal tracks.
pub fn upload(image_id: &str) -> Upload<'_> {
    Upload::untracked(image_id, "00000000000000000000000000000001")
}

/// The final URL of `image_id`, learned from a small put that is then deleted.
async fn final_url(property: &str, store: &Arc<dyn Store>, image_id: &str) -> String {
    let probe = ok(
        property,
        "the put that finds the final URL",
        store.put(&upload(image_id), stream_of(b"probe", 5)).await,
    );
    ok(
        property,
        "deleting that put",
        store.delete(&probe.url).await,
    );
    probe.url
}

/// No object at `url`, and no temporary data.
async fn nothing_at(property: &str, store: &Arc<dyn Store>, url: &str, what: &str) {
    let size = store.size(url).await;
    check(
        property,
        matches!(size, Err(StoreError::NotFound(_))),
        format_args!("{what} left an object under the final name (size: {size:?})"),
    );
    let temporary = ok(property, "temporary", store.temporary().await);
    check(
        property,
        temporary.is_empty(),
        format_args!("{what} left temporary data: {temporary:?}"),
    );
}

#[track_caller]
fn ok<T>(property: &str, what: &str, result: Result<T, StoreError>) -> T {
    result.unwrap_or_else(|e| panic!("store conformance, {property}: {what} failed: {e} ({e:?})"))
}

#[track_caller]
fn check(property: &str, holds: bool, why: std::fmt::Arguments<'_>) {
    if !holds {
        panic!("store conformance, {property}: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn the_memory_store_conforms() {
        run_all(Arc::new(MemoryStore::default()), Options::default()).await;
    }
}
