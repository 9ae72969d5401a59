//! The cache layer over a cache in a map and a core that counts store reads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use tower::{Layer, ServiceExt};

use super::*;
use crate::{ByteRange, ImageStatus, RequestContext};

const DATA: &[u8] = b"0123456789";

/// Whole images by id; a tee lands only a stream that ended with all the bytes.
#[derive(Default)]
struct MapCache {
    entries: Arc<Mutex<HashMap<String, Bytes>>>,
    queued: Mutex<Vec<String>>,
}

impl MapCache {
    fn get(&self, id: &str) -> Option<Bytes> {
        self.entries.lock().unwrap().get(id).cloned()
    }
}

#[async_trait]
impl ImageCache for MapCache {
    async fn open(&self, image: &Image) -> Result<Option<(DataStream, u64)>, ImageError> {
        Ok(self.get(&image.id).map(|b| {
            let len = b.len() as u64;
            (stream::iter([Ok(b)]).boxed(), len)
        }))
    }
    fn tee(&self, image: &Image, data: DataStream) -> DataStream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (copy, entries) = (seen.clone(), self.entries.clone());
        let (id, size) = (image.id.clone(), image.size.unwrap_or(0) as usize);
        let end = stream::once(async move {
            let seen = seen.lock().unwrap().clone();
            if seen.len() == size {
                entries.lock().unwrap().insert(id, seen.into());
            }
            None
        })
        .filter_map(futures_util::future::ready);
        data.inspect_ok(move |c| copy.lock().unwrap().extend_from_slice(c))
            .chain(end)
            .boxed()
    }
    async fn evict(&self, id: &str) -> Result<(), ImageError> {
        self.entries.lock().unwrap().remove(id);
        Ok(())
    }
    async fn state(&self) -> Result<CacheState, ImageError> {
        Ok(CacheState::default())
    }
    async fn queue(&self, image: &Image) -> Result<(), ImageError> {
        self.queued.lock().unwrap().push(image.id.clone());
        Ok(())
    }
    async fn delete(&self, id: &str) -> Result<bool, ImageError> {
        Ok(self.entries.lock().unwrap().remove(id).is_some())
    }
    async fn clear(&self, _: ClearTarget) -> Result<(), ImageError> {
        Ok(())
    }
    async fn nodes(&self, _: &str) -> Result<Vec<String>, ImageError> {
        Ok(Vec::new())
    }
    async fn clean(&self) -> Result<(), ImageError> {
        Ok(())
    }
    async fn prune(&self) -> Result<Pruned, ImageError> {
        Ok(Pruned::default())
    }
}

fn image(status: ImageStatus) -> Image {
    let mut i = Image::new("img".into(), chrono::Utc::now());
    i.status = status;
    i.size = Some(DATA.len() as i64);
    i
}

/// The stack below the cache: one image, and a count of the store reads.
fn below(status: ImageStatus, reads: Arc<AtomicUsize>) -> impl crate::ImageService {
    tower::service_fn(move |req: ImageRequest| {
        let reads = reads.clone();
        let fut: crate::BoxFuture<_> = Box::pin(async move {
            match req.op {
                Operation::Download { range, .. } => {
                    reads.fetch_add(1, Ordering::SeqCst);
                    let range = range.map(|r| r.resolve(DATA.len() as u64)).transpose()?;
                    let part = match &range {
                        Some(r) => &DATA[r.start as usize..r.end as usize],
                        None => DATA,
                    };
                    Ok(ImageResponse::Data(ImageDownload {
                        image: Box::new(image(status)),
                        length: part.len() as u64,
                        data: stream::iter([Ok(Bytes::from_static(part))]).boxed(),
                        range,
                    }))
                }
                _ => Ok(ImageResponse::image(image(status))),
            }
        });
        fut
    })
}

async fn call(
    cache: &Arc<MapCache>,
    reads: &Arc<AtomicUsize>,
    op: Operation,
) -> Result<ImageResponse, ImageError> {
    CacheLayer::new(cache.clone())
        .layer(below(ImageStatus::Active, reads.clone()))
        .oneshot(ImageRequest::new(RequestContext::default(), op))
        .await
}

async fn body(resp: ImageResponse) -> Vec<u8> {
    let ImageResponse::Data(d) = resp else {
        panic!("{resp:?}")
    };
    let chunks: Vec<Bytes> = d.data.try_collect().await.unwrap();
    chunks.concat()
}

fn download(range: Option<ByteRange>) -> Operation {
    Operation::Download {
        id: "img".into(),
        range,
    }
}

#[tokio::test]
async fn a_whole_download_fills_the_cache_and_the_next_is_served_from_it() {
    let (cache, reads) = (Arc::new(MapCache::default()), Arc::default());
    assert_eq!(
        body(call(&cache, &reads, download(None)).await.unwrap()).await,
        DATA
    );
    assert_eq!(cache.get("img").as_deref(), Some(DATA));
    assert_eq!(
        body(call(&cache, &reads, download(None)).await.unwrap()).await,
        DATA
    );
    assert_eq!(reads.load(Ordering::SeqCst), 1, "the second read was a hit");
}

#[tokio::test]
async fn a_ranged_read_neither_reads_nor_fills_the_cache() {
    let (cache, reads) = (Arc::new(MapCache::default()), Arc::default());
    let range = Some(ByteRange::Bounded { first: 2, last: 4 });
    assert_eq!(
        body(call(&cache, &reads, download(range)).await.unwrap()).await,
        b"234"
    );
    assert_eq!(cache.get("img"), None);
    // Even with the image cached, the range comes from the store.
    cache
        .entries
        .lock()
        .unwrap()
        .insert("img".into(), Bytes::from_static(b"cached!!!!"));
    assert_eq!(
        body(call(&cache, &reads, download(range)).await.unwrap()).await,
        b"234"
    );
    assert_eq!(reads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn deleting_an_image_evicts_it() {
    let (cache, reads) = (Arc::new(MapCache::default()), Arc::default());
    body(call(&cache, &reads, download(None)).await.unwrap()).await;
    assert!(cache.get("img").is_some());
    call(&cache, &reads, Operation::Delete { id: "img".into() })
        .await
        .unwrap();
    assert_eq!(cache.get("img"), None);
}

#[tokio::test]
async fn only_active_images_are_queued() {
    let cache = Arc::new(MapCache::default());
    let queue = |status| {
        CacheLayer::new(cache.clone())
            .layer(below(status, Arc::default()))
            .oneshot(ImageRequest::new(
                RequestContext::default(),
                Operation::Cache(CacheOp::Queue { id: "img".into() }),
            ))
    };
    match queue(ImageStatus::Queued).await {
        Err(ImageError::Invalid(m)) => {
            assert_eq!(
                m,
                "Only images with status active can be targeted for queueing"
            )
        }
        other => panic!("{other:?}"),
    }
    queue(ImageStatus::Active).await.unwrap();
    assert_eq!(*cache.queued.lock().unwrap(), ["img"]);
}
