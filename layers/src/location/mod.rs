//! The location layer: moves image data between requests and stores.
//!
//! Uploads stream into the default store while [`digest`] hashes them, under a
//! lease taken from the image records ([`UploadRecords`]). Downloads
//! stream from the first location that answers; deletes remove the data after the
//! record.

pub mod digest;

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use tower::{Layer, Service, ServiceExt};

use crate::image::Location;
use crate::store::{PutJournal, Store, StoreError, StoreSet, Upload};
use crate::uploads::{UploadLease, UploadRecords};
use crate::{
    BoxFuture, ImageData, ImageDownload, ImageError, ImageRequest, ImageResponse, ImageService,
    Operation, RequestContext, StoredData,
};
use digest::{DigestingStream, HashAlgo};

#[derive(Clone)]
pub struct LocationLayer {
    stores: StoreSet,
    algo: HashAlgo,
    records: Arc<dyn UploadRecords>,
}

impl LocationLayer {
    pub fn new(stores: StoreSet, algo: HashAlgo, records: Arc<dyn UploadRecords>) -> Self {
        LocationLayer {
            stores,
            algo,
            records,
        }
    }
}

impl<S> Layer<S> for LocationLayer {
    type Service = LocationService<S>;

    fn layer(&self, inner: S) -> LocationService<S> {
        LocationService {
            inner,
            stores: self.stores.clone(),
            algo: self.algo,
            records: self.records.clone(),
        }
    }
}

/// The service made by [`LocationLayer`].
#[derive(Clone)]
pub struct LocationService<S> {
    inner: S,
    stores: StoreSet,
    algo: HashAlgo,
    records: Arc<dyn UploadRecords>,
}

impl<S: ImageService> Service<ImageRequest> for LocationService<S> {
    type Response = ImageResponse;
    type Error = ImageError;
    type Future = BoxFuture<Result<ImageResponse, ImageError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ImageError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ImageRequest) -> Self::Future {
        let inner = crate::take_ready(&mut self.inner);
        let stores = self.stores.clone();
        let algo = self.algo;
        let records = self.records.clone();
        Box::pin(async move {
            let ImageRequest { ctx, op } = req;
            match op {
                Operation::Upload { id, data, store } => {
                    upload(records, stores, algo, id, data, store).await
                }
                Operation::Download { id, range } => {
                    let image = inner
                        .oneshot(ImageRequest::new(ctx, Operation::Get { id }))
                        .await?
                        .into_image()?;
                    download(&stores, image, range).await
                }
                Operation::Delete { id } => {
                    let deleted = inner
                        .oneshot(ImageRequest::new(ctx, Operation::Delete { id }))
                        .await?
                        .into_image()?;
                    for loc in &deleted.locations {
                        if let Some(store) = stores.for_location(&loc.url, store_of(loc))
                            && let Err(e) = store.delete(&loc.url).await
                        {
                            tracing::warn!(image = %deleted.id, url = %loc.url, error = %e, "could not delete image data");
                        }
                    }
                    Ok(ImageResponse::image(deleted))
                }
                Operation::DeleteFromStore { id, store_id } => {
                    delete_from_store(inner, &stores, ctx, id, store_id).await
                }
                Operation::StoresInfo { detail } => Ok(ImageResponse::Stores(
                    stores
                        .iter()
                        .map(|(id, store)| crate::StoreInfo {
                            id: id.to_string(),
                            kind: store.kind(),
                            default: id == stores.default_id(),
                            read_only: !store.capabilities().write,
                            weight: stores.weight(id),
                            description: stores.description(id).map(str::to_string),
                            properties: if detail {
                                store.properties()
                            } else {
                                serde_json::Value::Null
                            },
                        })
                        .collect(),
                )),
                op => inner.oneshot(ImageRequest::new(ctx, op)).await,
            }
        })
    }
}

fn store_of(loc: &Location) -> Option<&str> {
    loc.metadata.get("store").and_then(|v| v.as_str())
}

async fn upload(
    records: Arc<dyn UploadRecords>,
    stores: StoreSet,
    algo: HashAlgo,
    id: String,
    data: ImageData,
    store_id: Option<String>,
) -> Result<ImageResponse, ImageError> {
    let store_id = store_id.unwrap_or_else(|| stores.default_id().to_string());
    let store = stores
        .get(&store_id)
        .ok_or_else(|| {
            ImageError::BadRequest(format!("Store for identifier {store_id} not found"))
        })?
        .clone();
    if !store.capabilities().write {
        return Err(ImageError::Gone(
            "Adding images to this store is disabled.".into(),
        ));
    }
    let lease = records.begin(&id, &store_id).await?;
    // From here on the image is `saving`: whatever happens, including this future
    // being dropped because the client went away, it must end `active` or `queued`.
    let mut guard = UploadGuard {
        armed: Some((records.clone(), lease.clone())),
        state: DataState::NotStored,
        store: store.clone(),
    };
    let (stream, digests) = DigestingStream::new(data.stream, algo, data.expected_size);
    let journal = LeaseJournal {
        records: records.as_ref(),
        lease: &lease,
    };
    let target = Upload {
        image_id: &id,
        upload_id: &lease.id,
        journal: &journal,
    };
    let stored = match store.put(&target, stream.boxed()).await {
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
    };
    match records.finish(&lease, &stored).await {
        Ok(image) => {
            guard.armed = None;
            Ok(ImageResponse::image(image))
        }
        Err(e) => {
            guard.abort().await;
            Err(e)
        }
    }
}

/// Lets a store note its partial data in the upload's lease.
struct LeaseJournal<'a> {
    records: &'a dyn UploadRecords,
    lease: &'a UploadLease,
}

#[async_trait::async_trait]
impl PutJournal for LeaseJournal<'_> {
    async fn note(&self, partial: &str) -> Result<(), StoreError> {
        self.records
            .note_partial(self.lease, partial)
            .await
            .map_err(|e| StoreError::Backend {
                store: "journal".into(),
                message: e.to_string(),
            })
    }
}

/// Where an upload's data stands when it has to be rolled back.
enum DataState {
    /// The store has not finished the put: it removed what it wrote, or noted in
    /// the lease what it could not remove (the lease then outlives the abort).
    NotStored,
    /// Stored whole at this URL, which `finish` may or may not have recorded.
    Stored(String),
}

/// Puts a `saving` image back to `queued`, and removes its stored data, unless the
/// upload completed. Runs on drop too, in a task, for uploads cut by a disconnect.
struct UploadGuard {
    armed: Option<(Arc<dyn UploadRecords>, UploadLease)>,
    state: DataState,
    store: Arc<dyn Store>,
}

impl UploadGuard {
    async fn abort(&mut self) {
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

/// Removes the replica of an image's data held in one store, keeping the others.
async fn delete_from_store<S: ImageService>(
    inner: S,
    stores: &StoreSet,
    ctx: RequestContext,
    id: String,
    store_id: String,
) -> Result<ImageResponse, ImageError> {
    let image = inner
        .clone()
        .oneshot(ImageRequest::new(
            ctx.clone(),
            Operation::Get { id: id.clone() },
        ))
        .await?
        .into_image()?;
    let store = stores
        .get(&store_id)
        .ok_or_else(|| ImageError::Conflict(format!("Unknown store {store_id}.")))?
        .clone();
    if image.status != crate::ImageStatus::Active {
        return Err(ImageError::Conflict(
            "It's not allowed to remove image data from store if image status is not 'active'"
                .into(),
        ));
    }
    let loc = image
        .locations
        .iter()
        .find(|l| store_of(l) == Some(store_id.as_str()))
        .ok_or_else(|| {
            ImageError::NotFound(format!(
                "Image {id} data is not present in store {store_id}"
            ))
        })?
        .clone();
    if image.locations.len() == 1 {
        return Err(ImageError::Forbidden(
            "Cannot delete image data from the only store containing it. Consider deleting the image instead if you want to remove all image data".into(),
        ));
    }
    let updated = inner
        .oneshot(ImageRequest::new(
            ctx,
            Operation::RemoveLocation {
                id,
                url: loc.url.clone(),
            },
        ))
        .await?;
    if let Err(e) = store.delete(&loc.url).await {
        tracing::warn!(url = %loc.url, error = %e, "could not delete a removed location's data");
    }
    Ok(updated)
}

async fn download(
    stores: &StoreSet,
    image: crate::Image,
    range: Option<crate::ByteRange>,
) -> Result<ImageResponse, ImageError> {
    let size = match (image.size, image.locations.is_empty()) {
        (Some(size), false) => size as u64,
        _ => return Ok(ImageResponse::NoData(Box::new(image))),
    };
    let range = range.map(|r| r.resolve(size)).transpose()?;
    let mut last_error = ImageError::Unavailable("No location of the image could be read.".into());
    // Heavier stores first, as Glance orders locations by store weight.
    let mut locations: Vec<&Location> = image.locations.iter().collect();
    locations
        .sort_by_key(|l| std::cmp::Reverse(store_of(l).map(|s| stores.weight(s)).unwrap_or(0)));
    for loc in locations {
        let Some(store) = stores.for_location(&loc.url, store_of(loc)) else {
            continue;
        };
        if range.is_some() && !store.capabilities().random_read {
            last_error = ImageError::BadRequest(
                "Random access is not supported by this image's store.".into(),
            );
            continue;
        }
        match store.get(&loc.url, range.clone()).await {
            Ok(data) => {
                let length = range.as_ref().map(|r| r.end - r.start).unwrap_or(size);
                return Ok(ImageResponse::Data(ImageDownload {
                    image: Box::new(image.clone()),
                    data,
                    range,
                    length,
                }));
            }
            Err(e) => {
                tracing::warn!(image = %image.id, url = %loc.url, error = %e, "location unreadable");
                last_error = e.into();
            }
        }
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Capabilities, StoreError, StoredObject};
    use crate::{ByteRange, DataStream, Image, ImageStatus};
    use async_trait::async_trait;
    use bytes::{Bytes, BytesMut};
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A store in a map, failing any put whose data contains the byte 0xFF.
    #[derive(Default)]
    struct MapStore(Mutex<HashMap<String, Bytes>>);

    #[async_trait]
    impl Store for MapStore {
        fn kind(&self) -> &'static str {
            "map"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                random_read: true,
                write: true,
            }
        }
        fn owns(&self, url: &str) -> bool {
            url.starts_with("map://")
        }
        async fn put(
            &self,
            upload: &Upload<'_>,
            mut data: DataStream,
        ) -> Result<StoredObject, StoreError> {
            let id = upload.image_id;
            let mut buf = BytesMut::new();
            while let Some(chunk) = data.next().await {
                let chunk = chunk.map_err(StoreError::Data)?;
                if chunk.contains(&0xFF) {
                    return Err(StoreError::Backend {
                        store: "map".into(),
                        message: "disk on fire".into(),
                    });
                }
                buf.extend_from_slice(&chunk);
            }
            let url = format!("map://{id}");
            let size = buf.len() as u64;
            self.0.lock().unwrap().insert(url.clone(), buf.freeze());
            Ok(StoredObject { url, size })
        }
        async fn get(
            &self,
            url: &str,
            range: Option<std::ops::Range<u64>>,
        ) -> Result<DataStream, StoreError> {
            let data = self
                .0
                .lock()
                .unwrap()
                .get(url)
                .cloned()
                .ok_or_else(|| StoreError::NotFound(url.into()))?;
            let data = match range {
                Some(r) => data.slice(r.start as usize..r.end as usize),
                None => data,
            };
            Ok(futures_util::stream::once(async move { Ok(data) }).boxed())
        }
        async fn delete(&self, url: &str) -> Result<(), StoreError> {
            self.0
                .lock()
                .unwrap()
                .remove(url)
                .map(|_| ())
                .ok_or_else(|| StoreError::NotFound(url.into()))
        }
        async fn discard(
            &self,
            image_id: &str,
            _: &str,
            _: Option<&str>,
            with_final: bool,
        ) -> Result<(), StoreError> {
            if with_final {
                self.0.lock().unwrap().remove(&format!("map://{image_id}"));
            }
            Ok(())
        }
        async fn size(&self, url: &str) -> Result<u64, StoreError> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .get(url)
                .map(|b| b.len() as u64)
                .unwrap_or(0))
        }
    }

    /// A core that keeps one image and records the upload steps it is asked for.
    #[derive(Clone, Default)]
    struct Core {
        image: Arc<Mutex<Option<Image>>>,
        steps: Arc<Mutex<Vec<&'static str>>>,
    }

    impl Core {
        fn with_image() -> Self {
            let mut img = Image::new("img".into(), chrono::Utc::now());
            img.disk_format = Some("raw".into());
            img.container_format = Some("bare".into());
            Core {
                image: Arc::new(Mutex::new(Some(img))),
                ..Core::default()
            }
        }
    }

    #[async_trait]
    impl UploadRecords for Core {
        async fn begin(&self, _: &str, store_id: &str) -> Result<UploadLease, ImageError> {
            self.steps.lock().unwrap().push("begin");
            let mut guard = self.image.lock().unwrap();
            let img = guard.as_mut().ok_or_else(|| ImageError::not_found("img"))?;
            img.status = ImageStatus::Saving;
            Ok(UploadLease {
                id: "lease".into(),
                image_id: img.id.clone(),
                store_id: store_id.into(),
            })
        }
        async fn note_partial(&self, _: &UploadLease, _: &str) -> Result<(), ImageError> {
            Ok(())
        }
        async fn finish(&self, _: &UploadLease, stored: &StoredData) -> Result<Image, ImageError> {
            self.steps.lock().unwrap().push("finish");
            let mut guard = self.image.lock().unwrap();
            let img = guard.as_mut().ok_or_else(|| ImageError::not_found("img"))?;
            img.status = ImageStatus::Active;
            img.size = Some(stored.size as i64);
            img.checksum = Some(stored.checksum.clone());
            img.locations.push(stored.location.clone());
            Ok(img.clone())
        }
        async fn holds(&self, _: &UploadLease) -> Result<bool, ImageError> {
            Ok(true)
        }
        fn forget(&self, _: &UploadLease) {}
        async fn abort(&self, _: &UploadLease, _: bool) -> Result<(), ImageError> {
            self.steps.lock().unwrap().push("abort");
            if let Some(img) = self.image.lock().unwrap().as_mut() {
                img.status = ImageStatus::Queued;
            }
            Ok(())
        }
    }

    impl tower::Service<ImageRequest> for Core {
        type Response = ImageResponse;
        type Error = ImageError;
        type Future = BoxFuture<Result<ImageResponse, ImageError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ImageError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: ImageRequest) -> Self::Future {
            let core = self.clone();
            Box::pin(async move {
                let mut guard = core.image.lock().unwrap();
                let img = guard.as_mut().ok_or_else(|| ImageError::not_found("img"))?;
                if let Operation::Delete { .. } = req.op {
                    let gone = guard.take().unwrap();
                    return Ok(ImageResponse::image(gone));
                }
                Ok(ImageResponse::image(img.clone()))
            })
        }
    }

    fn service(core: Core, store: Arc<MapStore>) -> impl ImageService {
        let records = Arc::new(core.clone());
        LocationLayer::new(StoreSet::single("map", store), HashAlgo::Sha512, records).layer(core)
    }

    fn upload(bytes: &'static [u8]) -> ImageRequest {
        let data = ImageData::new(
            futures_util::stream::iter([Ok(Bytes::from_static(bytes))]),
            None,
        );
        ImageRequest::new(
            RequestContext::default(),
            Operation::Upload {
                id: "img".into(),
                data,
                store: None,
            },
        )
    }

    fn op(op: Operation) -> ImageRequest {
        ImageRequest::new(RequestContext::default(), op)
    }

    #[tokio::test]
    async fn upload_stores_hashes_and_finishes() {
        let (core, store) = (Core::with_image(), Arc::new(MapStore::default()));
        let done = service(core.clone(), store.clone())
            .oneshot(upload(b"hello world"))
            .await
            .unwrap();
        let img = done.into_image().unwrap();
        assert_eq!(img.status, ImageStatus::Active);
        assert_eq!(
            img.checksum.as_deref(),
            Some("5eb63bbbe01eeed093cb22bb8f5acdc3")
        );
        assert_eq!(img.locations[0].metadata["store"], "map");
        assert_eq!(*core.steps.lock().unwrap(), ["begin", "finish"]);
        assert_eq!(store.0.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_failed_store_write_aborts_and_keeps_nothing() {
        let (core, store) = (Core::with_image(), Arc::new(MapStore::default()));
        let err = service(core.clone(), store.clone())
            .oneshot(upload(b"\xff"))
            .await
            .unwrap_err();
        assert!(matches!(err, ImageError::Unavailable(_)));
        assert_eq!(*core.steps.lock().unwrap(), ["begin", "abort"]);
        assert_eq!(
            core.image.lock().unwrap().as_ref().unwrap().status,
            ImageStatus::Queued
        );
        assert!(store.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn downloads_fall_back_to_the_next_location() {
        let (core, store) = (Core::with_image(), Arc::new(MapStore::default()));
        let svc = service(core.clone(), store.clone());
        svc.clone().oneshot(upload(b"payload")).await.unwrap();
        {
            let mut guard = core.image.lock().unwrap();
            let img = guard.as_mut().unwrap();
            let mut lost = img.locations[0].clone();
            lost.url = "map://lost".into();
            img.locations.insert(0, lost);
        }
        let ImageResponse::Data(d) = svc
            .oneshot(op(Operation::Download {
                id: "img".into(),
                range: None,
            }))
            .await
            .unwrap()
        else {
            panic!("expected data")
        };
        let bytes: Vec<Bytes> = d.data.map(|c| c.unwrap()).collect().await;
        assert_eq!(bytes.concat(), b"payload");
    }

    #[tokio::test]
    async fn downloads_ranges_and_deletes() {
        let (core, store) = (Core::with_image(), Arc::new(MapStore::default()));
        let svc = service(core.clone(), store.clone());
        let empty = svc
            .clone()
            .oneshot(op(Operation::Download {
                id: "img".into(),
                range: None,
            }))
            .await
            .unwrap();
        assert!(matches!(empty, ImageResponse::NoData(_)));
        svc.clone().oneshot(upload(b"0123456789")).await.unwrap();
        let part = svc
            .clone()
            .oneshot(op(Operation::Download {
                id: "img".into(),
                range: Some(ByteRange::Suffix(3)),
            }))
            .await
            .unwrap();
        let ImageResponse::Data(d) = part else {
            panic!("expected data")
        };
        assert_eq!(d.range, Some(7..10));
        let bytes: Vec<Bytes> = d.data.map(|c| c.unwrap()).collect().await;
        assert_eq!(bytes.concat(), b"789");
        let bad = svc
            .clone()
            .oneshot(op(Operation::Download {
                id: "img".into(),
                range: Some(ByteRange::From(10)),
            }))
            .await;
        assert!(matches!(
            bad,
            Err(ImageError::RangeNotSatisfiable { size: 10 })
        ));
        svc.oneshot(op(Operation::Delete { id: "img".into() }))
            .await
            .unwrap();
        assert!(
            store.0.lock().unwrap().is_empty(),
            "data removed with the image"
        );
    }
}
