//! The `s3` store, through object_store: uploads stream as multipart uploads (parts
//! in flight bounded), aborted on any failure or when the upload is dropped, so an
//! object only ever appears whole under its name. Reads may be ranged.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use glance_layers::store::{Capabilities, Store, StoreError, StoredObject};
use glance_layers::{DataStream, ImageError};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};

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
    store: Arc<dyn ObjectStore>,
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

fn backend(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { path, .. } => StoreError::NotFound(path),
        other => StoreError::Backend {
            store: "s3".into(),
            message: other.to_string(),
        },
    }
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

    fn key_of(&self, url: &str) -> Result<Path, StoreError> {
        let prefix = format!("s3://{}/{}/", self.authority(), self.bucket);
        url.strip_prefix(&prefix)
            .filter(|k| !k.is_empty())
            .map(Path::from)
            .ok_or_else(|| StoreError::NotFound(url.to_string()))
    }
}

/// Aborts the multipart upload unless it completed, also when dropped mid-way.
struct Upload(Option<WriteMultipart>);

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(w) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if let Err(e) = w.abort().await {
                    tracing::warn!(error = %e, "could not abort an S3 multipart upload");
                }
            });
        }
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

    async fn put(&self, image_id: &str, mut data: DataStream) -> Result<StoredObject, StoreError> {
        if image_id.is_empty() || image_id.contains(['/', '\0']) {
            return Err(StoreError::Data(ImageError::BadRequest(
                "Invalid image id.".into(),
            )));
        }
        let path = Path::from(image_id);
        let multipart = self.store.put_multipart(&path).await.map_err(backend)?;
        let mut upload = Upload(Some(WriteMultipart::new_with_chunk_size(
            multipart,
            self.options.chunk_size,
        )));
        let mut size = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(StoreError::Data)?;
            size += chunk.len() as u64;
            let w = upload.0.as_mut().expect("upload in progress");
            w.wait_for_capacity(self.options.concurrency)
                .await
                .map_err(backend)?;
            w.put(chunk);
        }
        let w = upload.0.take().expect("upload in progress");
        // `finish` aborts the upload itself when a part or the completion fails.
        w.finish().await.map_err(backend)?;
        Ok(StoredObject {
            url: self.url_of(image_id),
            size,
        })
    }

    async fn get(&self, url: &str, range: Option<Range<u64>>) -> Result<DataStream, StoreError> {
        let path = self.key_of(url)?;
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self.store.get_opts(&path, opts).await.map_err(backend)?;
        Ok(result
            .into_stream()
            .map_err(|e| {
                tracing::error!(error = %e, "reading from S3 failed");
                ImageError::Unavailable("Reading the image data failed.".into())
            })
            .boxed())
    }

    async fn delete(&self, url: &str) -> Result<(), StoreError> {
        let path = self.key_of(url)?;
        self.store.delete(&path).await.map_err(backend)
    }

    async fn size(&self, url: &str) -> Result<u64, StoreError> {
        let path = self.key_of(url)?;
        Ok(self.store.head(&path).await.map_err(backend)?.size)
    }

    fn properties(&self) -> serde_json::Value {
        serde_json::json!({
            "s3_store_large_object_size": 0,
            "s3_store_large_object_chunk_size": self.options.chunk_size >> 20,
            "s3_store_thread_pools": self.options.concurrency,
        })
    }
}
