//! The shared store conformance suite (`glance_layers::store::conformance`) run
//! against file, memory and S3, and what only one backend can show: the file store
//! leaves no temporary files, S3 aborts a multipart upload from its journal note.

mod common;

use common::s3;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use glance_api::store::{FileStore, MemoryStore, S3Store};
use glance_layers::ImageError;
use glance_layers::store::conformance::{
    self, Options, channel_stream, pattern, stream_of, upload,
};
use glance_layers::store::{PutJournal, Store, StoreError, Upload};
use tokio::sync::mpsc;

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

#[tokio::test]
async fn file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::new(dir.path().join("images"), true).unwrap());
    conformance::run_all(store, Options::default()).await;
    // `temporary()` lists only names it recognises: look at the directory itself.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("images"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "files left: {left:?}");
}

#[tokio::test]
async fn memory_store_conforms() {
    let store = MemoryStore::default();
    conformance::run_all(Arc::new(store.clone()), Options::default()).await;
    assert!(store.is_empty(), "objects left: {}", store.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let addr = s3::start(dir.path(), "glance").await;
    let store = Arc::new(S3Store::new(s3::options(addr, "glance")).unwrap());
    // 12 MiB: three parts of 5 MiB, so an unfinished put has sent a whole part.
    conformance::run_all(store, Options::default().with_big(12 << 20)).await;
    assert_eq!(
        open_multipart_uploads(dir.path()),
        0,
        "multipart uploads left open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refuses_a_wrong_secret() {
    let dir = tempfile::tempdir().unwrap();
    let addr = s3::start(dir.path(), "glance").await;
    let mut opts = s3::options(addr, "glance");
    opts.secret_key = "wrong".into();
    let store = S3Store::new(opts).unwrap();
    let err = store
        .put(&upload("x"), stream_of(b"hello", 5))
        .await
        .unwrap_err();
    // A failure of the store, which keeps object_store's error as its cause.
    assert!(matches!(err, StoreError::Failed { .. }), "{err:?}");
    let cause = std::error::Error::source(&err).expect("a cause");
    assert!(
        matches!(
            cause.downcast_ref::<object_store::Error>(),
            Some(object_store::Error::PermissionDenied { .. })
        ),
        "{cause:?}"
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
    let mut put = Box::pin(store.put(&target, channel_stream(rx)));
    tx.send(Ok(Bytes::from(pattern(6 << 20)))).await.unwrap();
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
