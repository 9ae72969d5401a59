//! One conformance suite for every storage backend: file, memory and S3.

mod common;

use common::s3;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use glance_api::store::{FileStore, MemoryStore, S3Store};
use glance_layers::store::{PutJournal, Store, StoreError, Upload};
use glance_layers::{DataStream, ImageError};
use tokio::sync::mpsc;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

/// A journal that remembers what the store noted.
#[derive(Default)]
struct Notes(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl PutJournal for Notes {
    async fn note(&self, partial: &str) -> Result<(), StoreError> {
        self.0.lock().unwrap().push(partial.to_string());
        Ok(())
    }
}

impl Notes {
    fn last(&self) -> Option<String> {
        self.0.lock().unwrap().last().cloned()
    }
}

fn upload(image_id: &'static str) -> Upload<'static> {
    Upload::untracked(image_id, "00000000000000000000000000000001")
}

fn stream_of(bytes: &[u8], chunk: usize) -> DataStream {
    let chunks: Vec<Result<Bytes, ImageError>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(chunks).boxed()
}

async fn read_all(
    store: &dyn Store,
    url: &str,
    range: Option<std::ops::Range<u64>>,
) -> Result<Vec<u8>, StoreError> {
    let mut s = store.get(url, range).await?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.map_err(StoreError::Data)?);
    }
    Ok(out)
}

/// What every store must do. `big` is large enough to need several S3 parts.
async fn conformance(store: Arc<dyn Store>, big: usize) {
    let body = data(big);
    // put, get, size
    let stored = store
        .put(&upload("img-a"), stream_of(&body, 64 << 10))
        .await
        .unwrap();
    assert_eq!(stored.size, big as u64);
    assert!(store.owns(&stored.url), "{}", stored.url);
    assert_eq!(store.size(&stored.url).await.unwrap(), big as u64);
    assert!(read_all(&*store, &stored.url, None).await.unwrap() == body);
    // ranged get
    let part = read_all(&*store, &stored.url, Some(100..1100))
        .await
        .unwrap();
    assert_eq!(part, &body[100..1100]);
    let tail = read_all(&*store, &stored.url, Some(big as u64 - 7..big as u64))
        .await
        .unwrap();
    assert_eq!(tail, &body[big - 7..]);
    // an empty object
    let empty = store
        .put(&upload("img-empty"), stream_of(&[], 1))
        .await
        .unwrap();
    assert_eq!(empty.size, 0);
    assert!(
        read_all(&*store, &empty.url, None)
            .await
            .unwrap()
            .is_empty()
    );
    // delete
    store.delete(&stored.url).await.unwrap();
    assert!(matches!(
        store.size(&stored.url).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(read_all(&*store, &stored.url, None).await.is_err());
    // Deleting again is harmless: NotFound, or Ok where the backend (S3) is idempotent.
    assert!(matches!(
        store.delete(&stored.url).await,
        Ok(()) | Err(StoreError::NotFound(_))
    ));

    // a stream that fails half-way leaves nothing under the name
    let mut failing: Vec<Result<Bytes, ImageError>> = vec![Ok(Bytes::from(data(6 << 20)))];
    failing.push(Err(ImageError::ClientGone));
    let err = store
        .put(
            &upload("img-b"),
            futures_util::stream::iter(failing).boxed(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Data(ImageError::ClientGone)),
        "{err:?}"
    );
    let b_url = empty.url.replace("img-empty", "img-b");
    assert!(
        store.size(&b_url).await.is_err(),
        "a failed put must leave no object"
    );

    // while a put is in flight, nothing is visible under the final name; a put
    // whose future is dropped leaves nothing either
    let (tx, rx) = mpsc::channel::<Result<Bytes, ImageError>>(4);
    let in_flight = {
        let store = store.clone();
        tokio::spawn(async move {
            let s = tokio_stream_from(rx);
            store.put(&upload("img-c"), s).await
        })
    };
    tx.send(Ok(Bytes::from(data(6 << 20)))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c_url = empty.url.replace("img-empty", "img-c");
    assert!(
        store.size(&c_url).await.is_err(),
        "partial data visible under the final name"
    );
    in_flight.abort();
    let _ = in_flight.await;
    drop(tx);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        store.size(&c_url).await.is_err(),
        "a dropped put left an object"
    );
    assert!(
        store.temporary().await.unwrap().is_empty(),
        "a dropped put left temporary data"
    );

    // discard: what an unfinished put left under the final name goes with
    // `with_final`; data already gone is no error
    let d = store
        .put(&upload("img-d"), stream_of(&body[..1000], 100))
        .await
        .unwrap();
    store
        .discard("img-d", "00000000000000000000000000000002", None, false)
        .await
        .unwrap();
    assert_eq!(
        store.size(&d.url).await.unwrap(),
        1000,
        "kept without with_final"
    );
    store
        .discard("img-d", "00000000000000000000000000000002", None, true)
        .await
        .unwrap();
    assert!(store.size(&d.url).await.is_err(), "removed with with_final");
    store
        .discard("img-d", "00000000000000000000000000000002", None, true)
        .await
        .unwrap();
    store.delete(&empty.url).await.unwrap();
}

fn tokio_stream_from(mut rx: mpsc::Receiver<Result<Bytes, ImageError>>) -> DataStream {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

#[tokio::test]
async fn file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::new(dir.path().join("images"), true).unwrap());
    conformance(store, 3 << 20).await;
    let left: Vec<_> = std::fs::read_dir(dir.path().join("images"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(Arc::new(MemoryStore::default()), 3 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let addr = s3::start(dir.path(), "glance").await;
    let store = Arc::new(S3Store::new(s3::options(addr, "glance")).unwrap());
    // 12 MiB: three parts of 5 MiB.
    conformance(store, 12 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refuses_a_wrong_secret() {
    let dir = tempfile::tempdir().unwrap();
    let addr = s3::start(dir.path(), "glance").await;
    let mut opts = s3::options(addr, "glance");
    opts.secret_key = "wrong".into();
    let store = S3Store::new(opts).unwrap();
    assert!(
        store
            .put(&upload("x"), stream_of(b"hello", 5))
            .await
            .is_err()
    );
}

/// Open multipart uploads in s3s-fs's directory (`.upload-<id>.json`).
fn open_multipart_uploads(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("glance"))
        .into_iter()
        .chain(std::fs::read_dir(dir))
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".upload"))
        .count()
}

/// A put that dies with its process (no destructor runs) leaves an open
/// multipart upload, noted in the journal before the first part; discarding
/// with that note aborts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_discard_aborts_a_multipart_upload_noted_before_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let addr = s3::start(dir.path(), "glance").await;
    let store = S3Store::new(s3::options(addr, "glance")).unwrap();
    let notes = Notes::default();
    let target = Upload {
        image_id: "img-crash",
        upload_id: "00000000000000000000000000000003",
        journal: &notes,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, ImageError>>(4);
    let mut put = Box::pin(store.put(&target, tokio_stream_from(rx)));
    tx.send(Ok(Bytes::from(data(6 << 20)))).await.unwrap();
    // Let it create the upload and send a part, then vanish without a trace.
    let _ = tokio::time::timeout(Duration::from_secs(2), &mut put).await;
    std::mem::forget(put);
    let note = notes.last().expect("the multipart upload was noted");
    assert!(open_multipart_uploads(dir.path()) > 0, "an upload is open");
    store
        .discard("img-crash", target.upload_id, Some(&note), true)
        .await
        .unwrap();
    assert_eq!(
        open_multipart_uploads(dir.path()),
        0,
        "the upload was aborted"
    );
    // Again: the upload is gone already, which is no error.
    store
        .discard("img-crash", target.upload_id, Some(&note), true)
        .await
        .unwrap();
}
