//! The `memory` store: images in a map. For tests and experiments only: it holds
//! each image whole, which the other stores never do. It is always compiled (it is
//! small and needs nothing the crate does not already use), so a layer's tests can
//! build a stack over it without a feature.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use super::{Capabilities, Store, StoreError, StoredObject, Upload};
use crate::DataStream;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// Images in a map, under `memory://<image id>`. Clones share the map.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<HashMap<String, Bytes>>>,
}

impl MemoryStore {
    /// Objects stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bytes>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            random_read: true,
            write: true,
        }
    }

    fn owns(&self, url: &str) -> bool {
        url.starts_with("memory://")
    }

    async fn put(
        &self,
        upload: &Upload<'_>,
        mut data: DataStream,
    ) -> Result<StoredObject, StoreError> {
        let image_id = upload.image_id;
        let mut buf = BytesMut::new();
        while let Some(chunk) = data.next().await {
            buf.extend_from_slice(&chunk.map_err(StoreError::Data)?);
        }
        let url = format!("memory://{image_id}");
        let size = buf.len() as u64;
        self.lock().insert(url.clone(), buf.freeze());
        Ok(StoredObject { url, size })
    }

    async fn get(&self, url: &str, range: Option<Range<u64>>) -> Result<DataStream, StoreError> {
        let data = self
            .lock()
            .get(url)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(url.to_string()))?;
        let data = match range {
            Some(r) => data.slice(r.start as usize..r.end as usize),
            None => data,
        };
        Ok(futures_util::stream::once(async move { Ok(data) }).boxed())
    }

    /// Nothing is written before the put completes, so only a final object can
    /// be left.
    async fn discard(
        &self,
        image_id: &str,
        _: &str,
        _: Option<&str>,
        with_final: bool,
    ) -> Result<(), StoreError> {
        if with_final {
            self.lock().remove(&format!("memory://{image_id}"));
        }
        Ok(())
    }

    async fn delete(&self, url: &str) -> Result<(), StoreError> {
        self.lock()
            .remove(url)
            .map(|_| ())
            .ok_or_else(|| StoreError::NotFound(url.to_string()))
    }

    async fn size(&self, url: &str) -> Result<u64, StoreError> {
        self.lock()
            .get(url)
            .map(|b| b.len() as u64)
            .ok_or_else(|| StoreError::NotFound(url.to_string()))
    }
}
