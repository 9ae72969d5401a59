//! The `s3` store, through object_store: uploads stream as multipart uploads (parts
//! in flight bounded), aborted on any failure or when the upload is dropped, so an
//! object only ever appears whole under its name. The multipart upload's id goes
//! to the upload's journal before the first part, so one this process could not
//! abort (it died, or S3 was down) is aborted by recovery. Reads may be ranged.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::{StreamExt, TryStreamExt};
use glance_layers::store::{Capabilities, Store, StoreError, StoredObject, Upload};
use glance_layers::{DataStream, ImageError};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, MultipartId, ObjectStore, ObjectStoreExt, PutPayload};

/// Settings of one S3 store, named as glance_store names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// `http://host:port` or a host name (then https).
    pub host: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    pub region: String,
    /// Bytes per multipart part.
    pub chunk_size: usize,
    /// Parts uploading at once.
    pub concurrency: usize,
}

pub struct S3Store {
    store: Arc<AmazonS3>,
    endpoint: String,
    bucket: String,
    options: S3Options,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .finish()
    }
}

/// Error codes by which S3 servers say the store is full: Ceph's bucket or user
/// quota, MinIO's disk. object_store has no variant for this and keeps the
/// response only as text in its error's message, so the message is searched.
const FULL: &[&str] = &[
    "<Code>QuotaExceeded</Code>",
    "<Code>XMinioStorageFull</Code>",
    "507 Insufficient Storage",
];

/// Whether `e`, or an error it was caused by, says the store is full.
fn says_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if FULL.iter().any(|code| text.contains(code)) {
            return true;
        }
        cause = c.source();
    }
    false
}

impl S3Store {
    pub fn new(options: S3Options) -> Result<Self, String> {
        let endpoint = if options.host.contains("://") {
            options.host.trim_end_matches('/').to_string()
        } else {
            format!("https://{}", options.host)
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_bucket_name(&options.bucket)
            .with_access_key_id(&options.access_key)
            .with_secret_access_key(&options.secret_key)
            .with_region(&options.region)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_http_connector(super::traced_http::TracedConnector)
            .build()
            .map_err(|e| format!("s3 store: {e}"))?;
        Ok(S3Store {
            store: Arc::new(store),
            bucket: options.bucket.clone(),
            endpoint,
            options,
        })
    }

    fn authority(&self) -> &str {
        self.endpoint
            .split_once("://")
            .map(|(_, a)| a)
            .unwrap_or(&self.endpoint)
    }

    /// `s3://host/bucket/key` (Glance puts the credentials in the URL too; we keep
    /// them out of the database).
    fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{}/{key}", self.authority(), self.bucket)
    }

    /// object_store's error as a store error that keeps it as its source; a
    /// missing object is not found under its URL.
    fn error(&self, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { path, .. } => StoreError::NotFound(self.url_of(&path)),
            e if says_full(&e) => StoreError::full("s3", e),
            e => StoreError::failed("s3", e),
        }
    }

    fn key_of(&self, url: &str) -> Result<Path, StoreError> {
        let prefix = format!("s3://{}/{}/", self.authority(), self.bucket);
        url.strip_prefix(&prefix)
            .filter(|k| !k.is_empty())
            .map(Path::from)
            .ok_or_else(|| StoreError::NotFound(url.to_string()))
    }
}

/// Aborts the multipart upload unless it completed, also when dropped mid-way. The
/// upload's id is in the lease journal too, so recovery aborts it if this cannot.
struct OpenUpload {
    store: Arc<AmazonS3>,
    path: Path,
    id: Option<MultipartId>,
}

impl OpenUpload {
    async fn abort(mut self) {
        if let Some(id) = self.id.take()
            && let Err(e) = self.store.abort_multipart(&self.path, &id).await
        {
            tracing::warn!(error = %e, "could not abort an S3 multipart upload; recovery will");
        }
    }
}

impl Drop for OpenUpload {
    fn drop(&mut self) {
        if let Some(id) = self.id.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let (store, path) = (self.store.clone(), self.path.clone());
            rt.spawn(async move {
                if let Err(e) = store.abort_multipart(&path, &id).await {
                    tracing::warn!(error = %e, "could not abort an S3 multipart upload; recovery will");
                }
            });
        }
    }
}

/// The journal note for a multipart upload: `multipart:<upload id>`.
const MULTIPART: &str = "multipart:";

/// Cuts a stream of chunks into parts of exactly `size` bytes (the last may be
/// shorter) without copying: some S3 servers want every part but the last the same size.
struct Parts {
    size: usize,
    pending: Vec<Bytes>,
    pending_len: usize,
}

impl Parts {
    fn push(&mut self, mut chunk: Bytes) -> Vec<PutPayload> {
        let mut full = Vec::new();
        while !chunk.is_empty() {
            let take = (self.size - self.pending_len).min(chunk.len());
            self.pending.push(chunk.split_to(take));
            self.pending_len += take;
            if self.pending_len == self.size {
                full.push(self.take());
            }
        }
        full
    }

    fn take(&mut self) -> PutPayload {
        self.pending_len = 0;
        std::mem::take(&mut self.pending).into_iter().collect()
    }
}

#[async_trait]
impl Store for S3Store {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            random_read: true,
            write: true,
        }
    }

    fn owns(&self, url: &str) -> bool {
        self.key_of(url).is_ok()
    }

    async fn put(
        &self,
        upload: &Upload<'_>,
        mut data: DataStream,
    ) -> Result<StoredObject, StoreError> {
        let image_id = upload.image_id;
        if image_id.is_empty() || image_id.contains(['/', '\0']) {
            return Err(StoreError::Data(ImageError::Invalid(
                "Invalid image id.".into(),
            )));
        }
        let path = Path::from(image_id);
        let id = self
            .store
            .create_multipart(&path)
            .await
            .map_err(|e| self.error(e))?;
        let open = OpenUpload {
            store: self.store.clone(),
            path: path.clone(),
            id: Some(id.clone()),
        };
        // Before any part: an upload that dies from here on is found by its note.
        if let Err(e) = upload.journal.note(&format!("{MULTIPART}{id}")).await {
            open.abort().await;
            return Err(e);
        }
        let mut parts = Parts {
            size: self.options.chunk_size,
            pending: Vec::new(),
            pending_len: 0,
        };
        let mut in_flight = FuturesUnordered::new();
        let mut done: Vec<Option<PartId>> = Vec::new();
        let mut size = 0u64;
        let result: Result<(), StoreError> = async {
            loop {
                let next = data.next().await.transpose().map_err(StoreError::Data)?;
                let finished = next.is_none();
                let payloads = match next {
                    Some(chunk) => {
                        size += chunk.len() as u64;
                        parts.push(chunk)
                    }
                    None if parts.pending_len > 0 => vec![parts.take()],
                    None => Vec::new(),
                };
                for payload in payloads {
                    let idx = done.len();
                    done.push(None);
                    let (store, path, id) = (self.store.clone(), path.clone(), id.clone());
                    in_flight.push(async move {
                        store
                            .put_part(&path, &id, idx, payload)
                            .await
                            .map(|part| (idx, part))
                    });
                    // Bounded: at most `concurrency` parts held in memory and in flight.
                    while in_flight.len() >= self.options.concurrency {
                        let (idx, part) = in_flight
                            .next()
                            .await
                            .expect("parts in flight")
                            .map_err(|e| self.error(e))?;
                        done[idx] = Some(part);
                    }
                }
                if finished {
                    break;
                }
            }
            while let Some(finished) = in_flight.next().await {
                let (idx, part) = finished.map_err(|e| self.error(e))?;
                done[idx] = Some(part);
            }
            Ok(())
        }
        .await;
        drop(in_flight);
        if let Err(e) = result {
            open.abort().await;
            return Err(e);
        }
        let parts: Vec<PartId> = done
            .into_iter()
            .map(|p| p.expect("every part finished"))
            .collect();
        if let Err(e) = self.store.complete_multipart(&path, &id, parts).await {
            open.abort().await;
            return Err(self.error(e));
        }
        let mut open = open;
        open.id = None;
        Ok(StoredObject {
            url: self.url_of(image_id),
            size,
        })
    }

    async fn discard(
        &self,
        image_id: &str,
        _upload_id: &str,
        partial: Option<&str>,
        with_final: bool,
    ) -> Result<(), StoreError> {
        let path = Path::from(image_id);
        if let Some(id) = partial.and_then(|p| p.strip_prefix(MULTIPART)) {
            match self.store.abort_multipart(&path, &id.to_string()).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                // Some S3 servers answer AccessDenied for an upload id they no
                // longer know; either way, asking again would not help.
                Err(e @ object_store::Error::PermissionDenied { .. }) => {
                    tracing::warn!(error = %e, "S3 refused to abort a multipart upload; taking it as gone");
                }
                Err(e) => return Err(self.error(e)),
            }
        }
        if with_final {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(e)),
            }
        }
        Ok(())
    }

    async fn get(&self, url: &str, range: Option<Range<u64>>) -> Result<DataStream, StoreError> {
        let path = self.key_of(url)?;
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| self.error(e))?;
        Ok(result
            .into_stream()
            .map_err(|e| {
                tracing::error!(error = %e, "reading from S3 failed");
                ImageError::unavailable(
                    "Reading the image data failed.",
                    Some(std::sync::Arc::new(e) as glance_layers::ErrorSource),
                )
            })
            .boxed())
    }

    async fn delete(&self, url: &str) -> Result<(), StoreError> {
        let path = self.key_of(url)?;
        self.store.delete(&path).await.map_err(|e| self.error(e))
    }

    async fn size(&self, url: &str) -> Result<u64, StoreError> {
        let path = self.key_of(url)?;
        Ok(self
            .store
            .head(&path)
            .await
            .map_err(|e| self.error(e))?
            .size)
    }

    /// The bucket answers: a `HEAD` of a key that is never written is a 404
    /// when the endpoint, the credentials and the bucket are right.
    async fn check(&self) -> Result<(), StoreError> {
        let probe = object_store::path::Path::from("glance-health-probe");
        match self.store.head(&probe).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    fn properties(&self) -> serde_json::Value {
        serde_json::json!({
            "s3_store_large_object_size": 0,
            "s3_store_large_object_chunk_size": self.options.chunk_size >> 20,
            "s3_store_thread_pools": self.options.concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> S3Store {
        S3Store::new(S3Options {
            host: "http://127.0.0.1:9".into(),
            access_key: "a".into(),
            secret_key: "s".into(),
            bucket: "glance".into(),
            region: "us-east-1".into(),
            chunk_size: 5 << 20,
            concurrency: 1,
        })
        .unwrap()
    }

    /// What object_store's retry error says of a refused request, as text.
    #[derive(Debug)]
    struct Response(&'static str);
    impl std::fmt::Display for Response {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "Error performing PUT http://s3/glance/img in 1ms - {}",
                self.0
            )
        }
    }
    impl std::error::Error for Response {}

    #[test]
    fn full_codes_make_a_full_store_that_keeps_the_cause() {
        for body in [
            "Server returned non-2xx status code: 403 Forbidden: <Error><Code>QuotaExceeded</Code></Error>",
            "Server returned non-2xx status code: 507 Insufficient Storage: <Error><Code>XMinioStorageFull</Code></Error>",
        ] {
            let e = store().error(object_store::Error::Generic {
                store: "S3",
                source: Box::new(Response(body)),
            });
            assert!(matches!(e, StoreError::Full { .. }), "{e:?}");
            let source = std::error::Error::source(&e).unwrap();
            assert!(source.downcast_ref::<object_store::Error>().is_some());
        }
    }

    #[test]
    fn other_failures_are_failed_and_missing_objects_not_found() {
        let e = store().error(object_store::Error::Generic {
            store: "S3",
            source: Box::new(Response(
                "Server returned non-2xx status code: 500 Internal Server Error: ",
            )),
        });
        assert!(matches!(e, StoreError::Failed { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("store s3: Generic S3 error: "),
            "{e}"
        );
        let e = store().error(object_store::Error::NotFound {
            path: "img".into(),
            source: Box::new(Response("404")),
        });
        assert!(
            matches!(&e, StoreError::NotFound(url) if url == "s3://127.0.0.1:9/glance/img"),
            "{e:?}"
        );
    }
}
