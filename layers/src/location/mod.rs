//! The location layer: moves image data between requests and stores.
//!
//! Uploads stream into the default store while [`digest`] hashes them; the core only
//! ever sees the three steps `BeginUpload → FinishUpload | AbortUpload`. Downloads
//! stream from the first location that answers; deletes remove the data after the
//! record.

pub mod digest;

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use tower::{Layer, Service, ServiceExt};

use crate::image::Location;
use crate::store::{Store, StoreSet};
use crate::{
    BoxFuture, ImageData, ImageDownload, ImageError, ImageRequest, ImageResponse, ImageService,
    Operation, RequestContext, StoredData,
};
use digest::{DigestingStream, HashAlgo};

#[derive(Clone)]
pub struct LocationLayer {
    stores: StoreSet,
    algo: HashAlgo,
}

impl LocationLayer {
    pub fn new(stores: StoreSet, algo: HashAlgo) -> Self {
        LocationLayer { stores, algo }
    }
}

impl<S> Layer<S> for LocationLayer {
    type Service = LocationService<S>;

    fn layer(&self, inner: S) -> LocationService<S> {
        LocationService {
            inner,
            stores: self.stores.clone(),
            algo: self.algo,
        }
    }
}

/// The service made by [`LocationLayer`].
#[derive(Clone)]
pub struct LocationService<S> {
    inner: S,
    stores: StoreSet,
    algo: HashAlgo,
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
        Box::pin(async move {
            let ImageRequest { ctx, op } = req;
            match op {
                Operation::Upload { id, data, store } => {
                    upload(inner, stores, algo, ctx, id, data, store).await
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

async fn upload<S: ImageService>(
    mut inner: S,
    stores: StoreSet,
    algo: HashAlgo,
    ctx: RequestContext,
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
    inner
        .call(ImageRequest::new(
            ctx.clone(),
            Operation::BeginUpload { id: id.clone() },
        ))
        .await?;
    // From here on the image is `saving`: whatever happens, including this future
    // being dropped because the client went away, it must end `active` or `queued`.
    let mut guard = UploadGuard::new(inner.clone(), ctx.clone(), id.clone());
    let (stream, digests) = DigestingStream::new(data.stream, algo, data.expected_size);
    let stored = match store.put(&id, stream.boxed()).await {
        Ok(stored) => stored,
        Err(e) => {
            guard.abort().await;
            return Err(e.into());
        }
    };
    guard.holds(store.clone(), stored.url.clone());
    let Some(digests) = digests.wait().await else {
        guard.abort().await;
        return Err(ImageError::internal(
            "the store finished before the data did",
        ));
    };
    let mut metadata = serde_json::Map::new();
    metadata.insert("store".into(), store_id.into());
    let finish = Operation::FinishUpload {
        id,
        stored: StoredData {
            location: Location {
                url: stored.url,
                metadata,
            },
            size: digests.size,
            checksum: digests.md5,
            os_hash_algo: digests.algo.name().to_string(),
            os_hash_value: digests.multihash,
        },
    };
    let mut inner = inner;
    match inner
        .ready()
        .await?
        .call(ImageRequest::new(ctx, finish))
        .await
    {
        Ok(done) => {
            guard.disarm();
            Ok(done)
        }
        Err(e) => {
            guard.abort().await;
            Err(e)
        }
    }
}

/// Puts a `saving` image back to `queued`, and removes its stored data, unless the
/// upload completed. Runs on drop too, in a task, for uploads cut by a disconnect.
struct UploadGuard<S: ImageService> {
    armed: Option<(S, RequestContext, String)>,
    stored: Option<(Arc<dyn Store>, String)>,
}

impl<S: ImageService> UploadGuard<S> {
    fn new(inner: S, ctx: RequestContext, id: String) -> Self {
        UploadGuard {
            armed: Some((inner, ctx, id)),
            stored: None,
        }
    }

    fn holds(&mut self, store: Arc<dyn Store>, url: String) {
        self.stored = Some((store, url));
    }

    fn disarm(&mut self) {
        self.armed = None;
        self.stored = None;
    }

    async fn abort(&mut self) {
        if let Some((inner, ctx, id)) = self.armed.take() {
            rollback(inner, ctx, id, self.stored.take()).await;
        }
    }
}

impl<S: ImageService> Drop for UploadGuard<S> {
    fn drop(&mut self) {
        if let Some((inner, ctx, id)) = self.armed.take() {
            let stored = self.stored.take();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(rollback(inner, ctx, id, stored));
            }
        }
    }
}

async fn rollback<S: ImageService>(
    inner: S,
    ctx: RequestContext,
    id: String,
    stored: Option<(Arc<dyn Store>, String)>,
) {
    let abort = inner
        .oneshot(ImageRequest::new(
            ctx,
            Operation::AbortUpload { id: id.clone() },
        ))
        .await;
    // If the image already went active (the finish won a race with us), its data is
    // in use and must stay.
    let data_in_use = matches!(abort, Err(ImageError::Conflict(_)));
    if let Err(e) = &abort {
        tracing::debug!(image = %id, error = %e, "upload rollback found the image moved on");
    }
    if let Some((store, url)) = stored
        && !data_in_use
        && let Err(e) = store.delete(&url).await
    {
        tracing::warn!(image = %id, %url, error = %e, "could not remove the data of a failed upload");
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
        async fn put(&self, id: &str, mut data: DataStream) -> Result<StoredObject, StoreError> {
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
                core.steps.lock().unwrap().push(req.op.name());
                let mut guard = core.image.lock().unwrap();
                let img = guard.as_mut().ok_or_else(|| ImageError::not_found("img"))?;
                match req.op {
                    Operation::BeginUpload { .. } => img.status = ImageStatus::Saving,
                    Operation::AbortUpload { .. } => img.status = ImageStatus::Queued,
                    Operation::FinishUpload { stored, .. } => {
                        img.status = ImageStatus::Active;
                        img.size = Some(stored.size as i64);
                        img.checksum = Some(stored.checksum);
                        img.locations.push(stored.location);
                    }
                    Operation::Delete { .. } => {
                        let gone = guard.take().unwrap();
                        return Ok(ImageResponse::image(gone));
                    }
                    _ => {}
                }
                Ok(ImageResponse::image(img.clone()))
            })
        }
    }

    fn service(core: Core, store: Arc<MapStore>) -> impl ImageService {
        LocationLayer::new(StoreSet::single("map", store), HashAlgo::Sha512).layer(core)
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
        assert_eq!(
            *core.steps.lock().unwrap(),
            ["begin_upload", "finish_upload"]
        );
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
        assert_eq!(
            *core.steps.lock().unwrap(),
            ["begin_upload", "abort_upload"]
        );
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
