//! The image cache layer: Glance's per-node cache in front of every store
//! (`glance/api/middleware/cache.py` and the cache API of
//! `glance/api/v2/cached_images.py`), as a domain layer.
//!
//! It sits inside policy and around the location layer, so the download rules
//! (policy, deactivated images) are judged before a cached copy is served, and a
//! miss still reads the stores. A whole download (no range) of a cached image is
//! served from the cache; one that is not cached is teed into it on its way to
//! the client, and lands only if it ends whole and verifies. A ranged read never
//! reads nor fills the cache. Deleting an image evicts it.
//!
//! What the cache is made of (files, an index, a prefetch queue) is the server's
//! business, behind [`ImageCache`]; this layer only decides when to use it.
//! Without this layer in the stack the cache API answers "not supported" (the
//! core's answer), as Glance does without `image_cache_dir`.

mod ops;

pub use ops::not_found as image_not_found;

use std::sync::Arc;

use async_trait::async_trait;

use crate::middleware::{Middleware, MiddlewareLayer, Next};
use crate::{
    DataStream, Image, ImageDownload, ImageError, ImageRequest, ImageResponse, ImageService,
    Operation,
};

/// The cache API's operations (`/v2/cache...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOp {
    /// `GET /v2/cache`: what this node caches and has queued.
    List,
    /// `PUT /v2/cache/{image_id}`: queue an active image for the prefetcher.
    Queue { id: String },
    /// `DELETE /v2/cache/{image_id}`: out of the cache and the queue.
    Delete { id: String },
    /// `DELETE /v2/cache` with `x-image-cache-clear-target`.
    Clear(ClearTarget),
    /// `GET /v2/cache/nodes/{image_id}`: the nodes that cache an image.
    Nodes { id: String },
    /// `POST /v2/cache/clean`: drop stalled fills and invalid entries.
    Clean,
    /// `POST /v2/cache/prune`: evict least recently used images down to the
    /// size bound.
    Prune,
}

impl CacheOp {
    /// Glance's policy rule for the operation.
    pub fn rule(&self) -> &'static str {
        match self {
            CacheOp::List => "cache_list",
            CacheOp::Queue { .. } => "cache_image",
            CacheOp::Delete { .. } | CacheOp::Clear(_) => "cache_delete",
            CacheOp::Nodes { .. } => "list_cached_nodes",
            CacheOp::Clean => "cache_clean",
            CacheOp::Prune => "cache_prune",
        }
    }

    pub fn image_id(&self) -> Option<&str> {
        match self {
            CacheOp::Queue { id } | CacheOp::Delete { id } | CacheOp::Nodes { id } => Some(id),
            _ => None,
        }
    }
}

/// What `DELETE /v2/cache` empties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearTarget {
    Cache,
    Queue,
    /// Both (an empty or missing header).
    All,
    /// Any other value: refused (400) once policy allowed the clear and the
    /// cache is on, as Glance reads the header last.
    Invalid,
}

/// One cached image, as the `centralized_db` driver reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedImage {
    /// The index row's id.
    pub id: i64,
    pub image_id: String,
    /// Seconds since the epoch.
    pub last_accessed: f64,
    pub last_modified: f64,
    pub size: u64,
    pub hits: i64,
    pub checksum: Option<String>,
}

/// `GET /v2/cache`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheState {
    pub cached: Vec<CachedImage>,
    /// Oldest first.
    pub queued: Vec<String>,
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub files: u64,
    pub bytes: u64,
}

/// What the cache API answers.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheReply {
    State(CacheState),
    Nodes(Vec<String>),
    Pruned(Pruned),
    /// Done; nothing to report.
    Done,
}

/// The cache itself, as the server builds it. Every method is about this node's
/// cache only, except [`ImageCache::nodes`].
#[async_trait]
pub trait ImageCache: Send + Sync + 'static {
    /// The cached data of `image` and its length, counting a hit; `None` when it
    /// is not (wholly) cached.
    async fn open(&self, image: &Image) -> Result<Option<(DataStream, u64)>, ImageError>;

    /// `data`, the whole of `image` on its way to a client, passed through
    /// unchanged while a copy is written aside. The copy joins the cache only if
    /// the stream ends without error with the image's size and checksum; a cut or
    /// failed stream leaves nothing.
    fn tee(&self, image: &Image, data: DataStream) -> DataStream;

    /// Drops the image from the cache and the queue.
    async fn evict(&self, image_id: &str) -> Result<(), ImageError>;

    async fn state(&self) -> Result<CacheState, ImageError>;

    /// Queues `image` for the prefetcher (a no-op if cached or queued already).
    async fn queue(&self, image: &Image) -> Result<(), ImageError>;

    /// Drops the image from cache and queue; `false` if it was in neither.
    async fn delete(&self, image_id: &str) -> Result<bool, ImageError>;

    async fn clear(&self, target: ClearTarget) -> Result<(), ImageError>;

    /// The nodes whose cache holds the image.
    async fn nodes(&self, image_id: &str) -> Result<Vec<String>, ImageError>;

    async fn clean(&self) -> Result<(), ImageError>;

    async fn prune(&self) -> Result<Pruned, ImageError>;
}

/// Serves and fills the cache.
pub struct Cache {
    cache: Arc<dyn ImageCache>,
}

/// The cache layer.
pub type CacheLayer = MiddlewareLayer<Cache>;

impl MiddlewareLayer<Cache> {
    pub fn new(cache: Arc<dyn ImageCache>) -> Self {
        MiddlewareLayer::from_middleware(Cache { cache })
    }
}

impl Middleware for Cache {
    async fn call<S: ImageService>(
        &self,
        req: ImageRequest,
        next: Next<S>,
    ) -> Result<ImageResponse, ImageError> {
        let ImageRequest { ctx, op } = req;
        match op {
            Operation::Download { id, range: None } => {
                let req = ImageRequest::new(
                    ctx,
                    Operation::Download {
                        id: id.clone(),
                        range: None,
                    },
                );
                self.download(req, id, next).await
            }
            Operation::Delete { id } => {
                let req = ImageRequest::new(ctx, Operation::Delete { id: id.clone() });
                let resp = next.run(req).await?;
                // The record is gone; a cache failure must not undo that.
                if let Err(e) = self.cache.evict(&id).await {
                    tracing::warn!(image = %id, error = %e, "could not evict a deleted image from the cache");
                }
                Ok(resp)
            }
            Operation::Cache(op) => ops::run(&*self.cache, ctx, op, next).await,
            op => next.run(ImageRequest::new(ctx, op)).await,
        }
    }
}

impl Cache {
    /// A whole download: from the cache on a hit, else from the stores with a
    /// copy teed into the cache.
    async fn download<S: ImageService>(
        &self,
        req: ImageRequest,
        id: String,
        next: Next<S>,
    ) -> Result<ImageResponse, ImageError> {
        // The record the policy layer judged; without one, ask below.
        let image = match req.ctx.loaded.get(&id) {
            Some(image) => Some(image),
            None => match next.clone().run(req.derive(Operation::Get { id })).await {
                Ok(resp) => Some(Arc::new(resp.into_image()?)),
                // Let the real download give the real answer.
                Err(_) => None,
            },
        };
        if let Some(image) = image.filter(|i| has_data(i)) {
            match self.cache.open(&image).await {
                Ok(Some((data, length))) => {
                    return Ok(ImageResponse::Data(ImageDownload {
                        image: Box::new((*image).clone()),
                        data,
                        range: None,
                        length,
                    }));
                }
                Ok(None) => {}
                // A broken cache is a miss: the stores still have the data.
                Err(e) => tracing::warn!(image = %image.id, error = %e, "image cache unreadable"),
            }
        }
        match next.run(req).await? {
            ImageResponse::Data(mut d) if d.range.is_none() && has_data(&d.image) => {
                let data = std::mem::replace(&mut d.data, Box::pin(futures_util::stream::empty()));
                d.data = self.cache.tee(&d.image, data);
                Ok(ImageResponse::Data(d))
            }
            other => Ok(other),
        }
    }
}

/// Only an active image with data is cached: its data never changes again.
fn has_data(image: &Image) -> bool {
    image.status == crate::ImageStatus::Active && image.size.is_some_and(|s| s >= 0)
}

#[cfg(test)]
mod tests;
