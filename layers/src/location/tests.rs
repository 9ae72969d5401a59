//! The location layer against a store in a map and a core in a mutex.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tower::{Layer, ServiceExt};

use super::*;
use crate::store::{Capabilities, MemoryStore, Store, StoreError, StoredObject, Upload};
use crate::uploads::UploadLease;
use crate::{
    BoxFuture, ByteRange, DataStream, Image, ImageData, ImageStatus, RequestContext, StoredData,
};

/// The memory store, failing any put whose data contains the byte 0xFF.
#[derive(Default)]
struct FlakyStore(MemoryStore);

#[async_trait]
impl Store for FlakyStore {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn owns(&self, url: &str) -> bool {
        self.0.owns(url)
    }
    async fn put(&self, upload: &Upload<'_>, data: DataStream) -> Result<StoredObject, StoreError> {
        let on_fire = Arc::new(AtomicBool::new(false));
        let seen = on_fire.clone();
        let data = data
            .map(move |chunk| match chunk {
                Ok(c) if c.contains(&0xFF) => {
                    seen.store(true, Ordering::Relaxed);
                    Err(ImageError::internal("disk on fire"))
                }
                other => other,
            })
            .boxed();
        match self.0.put(upload, data).await {
            Err(_) if on_fire.load(Ordering::Relaxed) => {
                Err(StoreError::failed("flaky", "disk on fire"))
            }
            other => other,
        }
    }
    async fn get(&self, url: &str, range: Option<Range<u64>>) -> Result<DataStream, StoreError> {
        self.0.get(url, range).await
    }
    async fn delete(&self, url: &str) -> Result<(), StoreError> {
        self.0.delete(url).await
    }
    async fn discard(
        &self,
        image_id: &str,
        upload_id: &str,
        partial: Option<&str>,
        with_final: bool,
    ) -> Result<(), StoreError> {
        self.0
            .discard(image_id, upload_id, partial, with_final)
            .await
    }
    async fn size(&self, url: &str) -> Result<u64, StoreError> {
        self.0.size(url).await
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
    async fn begin(
        &self,
        _: &RequestContext,
        _: &str,
        store_id: &str,
    ) -> Result<UploadLease, ImageError> {
        self.steps.lock().unwrap().push("begin");
        let mut guard = self.image.lock().unwrap();
        let img = guard.as_mut().ok_or_else(|| ImageError::not_found("img"))?;
        img.status = ImageStatus::Saving;
        Ok(UploadLease {
            id: "lease".into(),
            image_id: img.id.clone(),
            store_id: store_id.into(),
            image: Arc::new(img.clone()),
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
    async fn remove_location(&self, image: &Image, url: &str) -> Result<Image, ImageError> {
        let mut image = image.clone();
        image.locations.retain(|l| l.url != url);
        Ok(image)
    }
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

fn service(core: Core, store: Arc<FlakyStore>) -> impl ImageService {
    let records = Arc::new(core.clone());
    LocationLayer::new(
        StoreSet::single("map", store),
        HashAlgo::Sha512,
        records,
        Default::default(),
    )
    .layer(core)
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
    let (core, store) = (Core::with_image(), Arc::new(FlakyStore::default()));
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
    assert_eq!(store.0.len(), 1);
}

#[tokio::test]
async fn a_failed_store_write_aborts_and_keeps_nothing() {
    let (core, store) = (Core::with_image(), Arc::new(FlakyStore::default()));
    let err = service(core.clone(), store.clone())
        .oneshot(upload(b"\xff"))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unavailable { .. }));
    assert_eq!(*core.steps.lock().unwrap(), ["begin", "abort"]);
    assert_eq!(
        core.image.lock().unwrap().as_ref().unwrap().status,
        ImageStatus::Queued
    );
    assert!(store.0.is_empty());
}

#[tokio::test]
async fn downloads_fall_back_to_the_next_location() {
    let (core, store) = (Core::with_image(), Arc::new(FlakyStore::default()));
    let svc = service(core.clone(), store.clone());
    svc.clone().oneshot(upload(b"payload")).await.unwrap();
    {
        let mut guard = core.image.lock().unwrap();
        let img = guard.as_mut().unwrap();
        let mut lost = img.locations[0].clone();
        lost.url = "memory://lost".into();
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
    let (core, store) = (Core::with_image(), Arc::new(FlakyStore::default()));
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
    assert!(store.0.is_empty(), "data removed with the image");
}
