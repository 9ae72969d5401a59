//! The prefetcher (Glance's `CacheWorker`): fills the cache with the images
//! queued by `PUT /v2/cache/{id}`, one at a time, reading them from their
//! stores as a download would and writing them through the same tee.

use std::sync::Arc;

use futures_util::StreamExt;
use glance_layers::store::StoreSet;
use glance_layers::{DataStream, Image, ImageError, ImageStatus};
use tokio::sync::mpsc;

use super::{Inner, files, tee};

pub(super) fn spawn(inner: Arc<Inner>, stores: StoreSet, mut ids: mpsc::UnboundedReceiver<String>) {
    tokio::spawn(async move {
        while let Some(id) = ids.recv().await {
            match fetch(&inner, &stores, &id).await {
                Ok(()) => {}
                // The entry stays queued; queueing it again retries.
                Err(e) => tracing::warn!(image = %id, error = %e, "prefetch failed"),
            }
        }
    });
}

async fn fetch(inner: &Arc<Inner>, stores: &StoreSet, id: &str) -> Result<(), ImageError> {
    let Some(queued) = inner.dir.queued(id) else {
        return Ok(());
    };
    // Dequeued (or the queue cleared) since it was submitted.
    if !tokio::fs::try_exists(&queued).await.unwrap_or(false) {
        return Ok(());
    }
    let dequeue = || async {
        let _ = files::remove(&queued).await;
    };
    if inner.repo.cache_row(inner.node, id).await?.is_some() {
        dequeue().await;
        return Ok(());
    }
    let image = match inner.repo.get(id).await? {
        Some(image) if image.status == ImageStatus::Active => image,
        _ => {
            tracing::info!(image = %id, "queued image is gone or not active; dequeued");
            dequeue().await;
            return Ok(());
        }
    };
    let Some(size) = image.size.and_then(|s| u64::try_from(s).ok()) else {
        dequeue().await;
        return Ok(());
    };
    let data = read(stores, &image).await?;
    let expected = tee::Expected {
        id: image.id.clone(),
        size,
        checksum: image.checksum.clone(),
    };
    let (mut data, writer) = tee::tee(inner.clone(), expected, data);
    while let Some(chunk) = data.next().await {
        chunk?;
    }
    // The writer judges the copy once the stream is gone; the commit dequeues.
    drop(data);
    let _ = writer.await;
    Ok(())
}

/// The image's data from the first of its locations that answers, heavier
/// stores first (as the location layer reads a download).
async fn read(stores: &StoreSet, image: &Image) -> Result<DataStream, ImageError> {
    let store_of = |l: &glance_layers::image::Location| {
        l.metadata
            .get("store")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let mut locations: Vec<_> = image.locations.iter().collect();
    locations
        .sort_by_key(|l| std::cmp::Reverse(store_of(l).map(|s| stores.weight(&s)).unwrap_or(0)));
    let mut last = ImageError::unavailable("No location of the image could be read.", None);
    for loc in locations {
        let Some(store) = stores.for_location(&loc.url, store_of(loc).as_deref()) else {
            continue;
        };
        match store.get(&loc.url, None).await {
            Ok(data) => return Ok(data),
            Err(e) => last = e.into(),
        }
    }
    Err(last)
}
