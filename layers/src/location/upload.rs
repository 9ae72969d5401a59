//! Upload: the request's bytes stream into a store while they are hashed, under
//! an upload lease; whatever ends the upload early (an error, a cut connection)
//! rolls it back, and what a rollback cannot do stays in the lease for recovery.

use std::sync::Arc;

use futures_util::StreamExt;

use super::Locations;
use super::digest::DigestingStream;
use crate::image::Location;
use crate::inspect;
use crate::store::{PutJournal, Store, StoreError, Upload};
use crate::uploads::{UploadLease, UploadRecords};
use crate::{ImageData, ImageError, ImageResponse, RequestContext, StoredData};

pub(super) async fn upload(
    ctx: &RequestContext,
    layer: &Locations,
    id: String,
    data: ImageData,
    store_id: Option<String>,
) -> Result<ImageResponse, ImageError> {
    let records = layer.records.clone();
    let stores = &layer.stores;
    let store_id = store_id.unwrap_or_else(|| stores.default_id().to_string());
    let store = stores
        .get(&store_id)
        .ok_or_else(|| ImageError::Invalid(format!("Store for identifier {store_id} not found")))?
        .clone();
    if !store.capabilities().write {
        return Err(ImageError::StoreReadOnly(
            "Adding images to this store is disabled.".into(),
        ));
    }
    let lease = records.begin(ctx, &id, &store_id).await?;
    // From here on the image is `saving`: whatever happens, including this future
    // being dropped because the client went away, it must end `active` or `queued`.
    let mut guard = UploadGuard {
        armed: Some((records.clone(), lease.clone())),
        state: DataState::NotStored,
        store: store.clone(),
    };
    let (stream, digests) = DigestingStream::new(data.stream, layer.algo, data.expected_size);
    let (stream, format) = inspect::inspecting(stream.boxed(), &lease.image, &layer.format);
    let journal = LeaseJournal {
        records: records.as_ref(),
        lease: &lease,
    };
    let target = Upload {
        image_id: &id,
        upload_id: &lease.id,
        journal: &journal,
    };
    let stored = match store.put(&target, stream).await {
        Ok(stored) => stored,
        Err(e) => {
            guard.abort().await;
            return Err(e.into());
        }
    };
    guard.state = DataState::Stored(stored.url.clone());
    let Some(digests) = digests.wait().await else {
        guard.abort().await;
        return Err(ImageError::internal(
            "the store finished before the data did",
        ));
    };
    let mut metadata = serde_json::Map::new();
    metadata.insert("store".into(), store_id.into());
    let stored = StoredData {
        location: Location {
            url: stored.url,
            metadata,
        },
        size: digests.size,
        checksum: digests.md5,
        os_hash_algo: digests.algo.name().to_string(),
        os_hash_value: digests.multihash,
        virtual_size: format.virtual_size(),
    };
    match records.finish(&lease, &stored).await {
        Ok(image) => {
            guard.armed = None;
            ctx.loaded.replace(image.clone());
            Ok(ImageResponse::image(image))
        }
        Err(e) => {
            guard.abort().await;
            Err(e)
        }
    }
}

/// Lets a store note its partial data in the upload's lease.
pub(crate) struct LeaseJournal<'a> {
    pub(crate) records: &'a dyn UploadRecords,
    pub(crate) lease: &'a UploadLease,
}

#[async_trait::async_trait]
impl PutJournal for LeaseJournal<'_> {
    async fn note(&self, partial: &str) -> Result<(), StoreError> {
        self.records
            .note_partial(self.lease, partial)
            .await
            .map_err(|e| StoreError::failed("journal", e))
    }
}

/// Where an upload's data stands when it has to be rolled back.
pub(crate) enum DataState {
    /// The store has not finished the put: it removed what it wrote, or noted in
    /// the lease what it could not remove (the lease then outlives the abort).
    NotStored,
    /// Stored whole at this URL, which `finish` may or may not have recorded.
    Stored(String),
}

/// Puts a `saving` image back to `queued`, and removes its stored data, unless the
/// upload completed. Runs on drop too, in a task, for uploads cut by a disconnect.
pub(crate) struct UploadGuard {
    pub(crate) armed: Option<(Arc<dyn UploadRecords>, UploadLease)>,
    pub(crate) state: DataState,
    pub(crate) store: Arc<dyn Store>,
}

impl UploadGuard {
    pub(crate) async fn abort(&mut self) {
        if let Some((records, lease)) = self.armed.take() {
            let state = std::mem::replace(&mut self.state, DataState::NotStored);
            rollback(records, lease, state, self.store.clone()).await;
        }
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if let Some((records, lease)) = self.armed.take() {
            let state = std::mem::replace(&mut self.state, DataState::NotStored);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(rollback(records, lease, state, self.store.clone()));
            }
        }
    }
}

/// Removes the upload's data, then puts the image back in `queued`. In that
/// order: once the image is `queued` another upload may write under the same
/// final name. Whatever fails here (the database is gone, say) stays in the lease,
/// and recovery finishes the job.
async fn rollback(
    records: Arc<dyn UploadRecords>,
    lease: UploadLease,
    state: DataState,
    store: Arc<dyn Store>,
) {
    let data_left = match state {
        DataState::NotStored => false,
        DataState::Stored(url) => match records.holds(&lease).await {
            // `finish` committed after all: the data is the image's now.
            Ok(false) => return,
            Ok(true) => match store.delete(&url).await {
                Ok(()) | Err(StoreError::NotFound(_)) => false,
                Err(e) => {
                    tracing::warn!(image = %lease.image_id, %url, error = %e, "could not remove the data of a failed upload");
                    true
                }
            },
            Err(e) => {
                tracing::warn!(image = %lease.image_id, error = %e, "upload rollback left to recovery");
                records.forget(&lease);
                return;
            }
        },
    };
    if let Err(e) = records.abort(&lease, data_left).await {
        tracing::warn!(image = %lease.image_id, error = %e, "upload rollback left to recovery");
    }
}
