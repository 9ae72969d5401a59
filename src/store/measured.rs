//! A store with its calls measured: `glance_store_operation_duration_seconds`
//! and `glance_store_bytes` per store id, and a span per call (target
//! `glance::store`, below `info`: for the trace exporter). Put around every
//! store by `store::from_config`'s caller, so each backend stays unaware.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures_util::StreamExt;
use glance_layers::DataStream;
use glance_layers::store::{Capabilities, Store, StoreError, StoredObject, Upload};
use tracing::Instrument;

use crate::telemetry::metrics::Metrics;

pub struct MeasuredStore {
    id: String,
    inner: Arc<dyn Store>,
    metrics: Metrics,
}

impl MeasuredStore {
    pub fn wrap(id: &str, inner: Arc<dyn Store>, metrics: Metrics) -> Arc<dyn Store> {
        Arc::new(MeasuredStore {
            id: id.to_string(),
            inner,
            metrics,
        })
    }

    fn span(&self, operation: &'static str) -> tracing::Span {
        tracing::debug_span!(
            target: "glance::store",
            "store",
            otel.name = format!("store {operation}"),
            store = %self.id,
            kind = self.inner.kind(),
            operation,
        )
    }

    /// Runs one call in its span and records its time and outcome.
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.instrument(self.span(operation)).await;
        self.metrics
            .store_call(&self.id, operation, result.is_ok(), started.elapsed());
        result
    }
}

#[async_trait]
impl Store for MeasuredStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn owns(&self, url: &str) -> bool {
        self.inner.owns(url)
    }

    async fn put(&self, upload: &Upload<'_>, data: DataStream) -> Result<StoredObject, StoreError> {
        let written = self.metrics.store_bytes(&self.id, "written");
        let data = data
            .inspect(move |chunk| {
                if let Ok(bytes) = chunk {
                    written.inc_by(bytes.len() as u64);
                }
            })
            .boxed();
        self.timed("put", self.inner.put(upload, data)).await
    }

    async fn discard(
        &self,
        image_id: &str,
        upload_id: &str,
        partial: Option<&str>,
        with_final: bool,
    ) -> Result<(), StoreError> {
        self.timed(
            "discard",
            self.inner.discard(image_id, upload_id, partial, with_final),
        )
        .await
    }

    async fn temporary(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.temporary().await
    }

    /// Timed until the stream ends or is dropped: a get's cost is its reading.
    async fn get(&self, url: &str, range: Option<Range<u64>>) -> Result<DataStream, StoreError> {
        let started = Instant::now();
        let span = self.span("get");
        // The span covers opening the object; its reading is the request's.
        let opened = self.inner.get(url, range).instrument(span).await;
        let stream = match opened {
            Ok(s) => s,
            Err(e) => {
                self.metrics
                    .store_call(&self.id, "get", false, started.elapsed());
                return Err(e);
            }
        };
        let read = self.metrics.store_bytes(&self.id, "read");
        let done = GetDone {
            metrics: self.metrics.clone(),
            id: self.id.clone(),
            started,
            ok: true,
        };
        Ok(stream
            .scan(done, move |done, chunk| {
                match &chunk {
                    Ok(bytes) => {
                        read.inc_by(bytes.len() as u64);
                    }
                    Err(_) => done.ok = false,
                }
                futures_util::future::ready(Some(chunk))
            })
            .boxed())
    }

    async fn delete(&self, url: &str) -> Result<(), StoreError> {
        self.timed("delete", self.inner.delete(url)).await
    }

    async fn size(&self, url: &str) -> Result<u64, StoreError> {
        self.timed("size", self.inner.size(url)).await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.timed("check", self.inner.check()).await
    }

    fn properties(&self) -> serde_json::Value {
        self.inner.properties()
    }
}

/// Records a get when its stream is dropped (read to the end or not).
struct GetDone {
    metrics: Metrics,
    id: String,
    started: Instant,
    ok: bool,
}

impl Drop for GetDone {
    fn drop(&mut self) {
        self.metrics
            .store_call(&self.id, "get", self.ok, self.started.elapsed());
    }
}
