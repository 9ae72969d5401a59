//! The image cache of this API node (`image_cache_dir`): whole images on local
//! disk in front of every store, indexed in the database as Glance's
//! `centralized_db` driver does, filled by downloads (the tee) and by the
//! prefetcher, bounded by LRU pruning, and cleaned of stalled fills.
//!
//! The cache layer (`glance_layers::cache`) decides when the cache is used; this
//! module is the cache: `files` (the directory), `tee` (filling), `prefetch`
//! (the queue's worker), `upkeep` (prune, clean, start-up reconciliation). The
//! index rows live in `crate::db::cache`.
//!
//! One server process owns a cache directory: at start-up whatever is in
//! `incomplete/` was left by a crash and is removed.

mod files;
mod prefetch;
mod tee;
mod upkeep;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use glance_layers::cache::{CacheState, CachedImage, ClearTarget, ImageCache, Pruned};
use glance_layers::store::StoreSet;
use glance_layers::{DataStream, ErrorSource, Image, ImageError, ImageStatus};
use tokio::sync::{Mutex, mpsc};

use crate::db::Repo;
use files::CacheDir;

/// What the cache is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: std::path::PathBuf,
    /// Bytes the finished files may take together.
    pub max_size: u64,
    /// An incomplete file untouched this long is a stalled fill.
    pub stall_time: Duration,
    /// This node's key in the index (`worker_self_reference_url`).
    pub node_url: String,
}

/// The cache; cheap to clone.
#[derive(Clone)]
pub struct DiskCache {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    dir: CacheDir,
    repo: Repo,
    node: i32,
    max_size: u64,
    stall_time: Duration,
    /// Ids for the prefetcher.
    prefetch: mpsc::UnboundedSender<String>,
    /// Commits and prunes one at a time, so each sees the sizes the other left.
    sizing: Mutex<()>,
}

fn io_error(what: &'static str, e: std::io::Error) -> ImageError {
    ImageError::unavailable(what, Some(Arc::new(e) as ErrorSource))
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl DiskCache {
    /// Opens the cache, records this node, reconciles the directory with the
    /// index, and starts the prefetcher and the periodic cleaner.
    pub async fn start(
        settings: Settings,
        repo: Repo,
        stores: StoreSet,
    ) -> Result<DiskCache, String> {
        let dir = CacheDir::open(&settings.dir)
            .map_err(|e| format!("image_cache_dir {}: {e}", settings.dir.display()))?;
        let node = repo
            .cache_node(&settings.node_url)
            .await
            .map_err(|e| format!("image cache index: {e}"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let cache = DiskCache {
            inner: Arc::new(Inner {
                dir,
                repo,
                node,
                max_size: settings.max_size,
                stall_time: settings.stall_time,
                prefetch: tx,
                sizing: Mutex::new(()),
            }),
        };
        upkeep::reconcile(&cache.inner)
            .await
            .map_err(|e| format!("image cache start-up: {e}"))?;
        if let Err(e) = upkeep::prune(&cache.inner, cache.inner.max_size).await {
            tracing::warn!(error = %e, "image cache prune at start-up failed");
        }
        prefetch::spawn(cache.inner.clone(), stores, rx);
        // Whatever was queued before a restart is still wanted.
        for id in cache.inner.dir.queue().await.unwrap_or_default() {
            let _ = cache.inner.prefetch.send(id);
        }
        upkeep::spawn_cleaner(cache.inner.clone());
        tracing::info!(dir = %settings.dir.display(), node = %settings.node_url, "image cache on");
        Ok(cache)
    }
}

impl Inner {
    /// Moves a verified copy into the cache and records it, first pruning
    /// least recently used images to make room. `false` if it was not wanted
    /// after all (the image went away, or it alone is over the bound).
    async fn commit(
        &self,
        id: &str,
        incomplete: &Path,
        size: u64,
        checksum: String,
    ) -> Result<bool, ImageError> {
        let Some(path) = self.dir.cached(id) else {
            return Ok(false);
        };
        if size > self.max_size {
            tracing::info!(image = %id, size, "image larger than image_cache_max_size; not cached");
            return Ok(false);
        }
        // Deleted or deactivated while it downloaded: evicting already ran.
        match self.repo.get(id).await? {
            Some(image) if image.status == ImageStatus::Active => {}
            _ => return Ok(false),
        }
        let _sizing = self.sizing.lock().await;
        upkeep::prune_locked(self, self.max_size - size).await?;
        tokio::fs::rename(incomplete, &path)
            .await
            .map_err(|e| io_error("The image cache could not be written.", e))?;
        if let Err(e) = self
            .repo
            .cache_insert(self.node, id, size, Some(checksum), now_us())
            .await
        {
            // Never a file without its row: it could not be served nor pruned.
            let _ = files::remove(&path).await;
            return Err(e);
        }
        if let Some(q) = self.dir.queued(id) {
            let _ = files::remove(&q).await;
        }
        tracing::debug!(image = %id, size, "image cached");
        Ok(true)
    }

    /// Out of the cache and the queue; `true` if it was in either.
    async fn remove(&self, id: &str) -> Result<bool, ImageError> {
        let mut found = self.repo.cache_remove(self.node, id).await?;
        for path in [self.dir.cached(id), self.dir.queued(id)]
            .into_iter()
            .flatten()
        {
            found |= files::remove(&path)
                .await
                .map_err(|e| io_error("The image cache could not be changed.", e))?;
        }
        Ok(found)
    }
}

#[async_trait]
impl ImageCache for DiskCache {
    async fn open(&self, image: &Image) -> Result<Option<(DataStream, u64)>, ImageError> {
        let inner = &self.inner;
        let Some(path) = inner.dir.cached(&image.id) else {
            return Ok(None);
        };
        // Only an indexed file is served: the row is written after the rename.
        if inner.repo.cache_row(inner.node, &image.id).await?.is_none() {
            return Ok(None);
        }
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                inner.repo.cache_remove(inner.node, &image.id).await?;
                return Ok(None);
            }
            Err(e) => return Err(io_error("The image cache could not be read.", e)),
        };
        let len = file
            .metadata()
            .await
            .map_err(|e| io_error("The image cache could not be read.", e))?
            .len();
        if image.size != Some(len as i64) {
            tracing::warn!(image = %image.id, len, size = ?image.size, "cached file has the wrong size; evicted");
            inner.remove(&image.id).await?;
            return Ok(None);
        }
        inner
            .repo
            .cache_hit(inner.node, &image.id, now_us())
            .await?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10)
            .map_err(|e| io_error("The image cache could not be read.", e));
        Ok(Some((stream.boxed(), len)))
    }

    fn tee(&self, image: &Image, data: DataStream) -> DataStream {
        let Some(size) = image.size.and_then(|s| u64::try_from(s).ok()) else {
            return data;
        };
        let expected = tee::Expected {
            id: image.id.clone(),
            size,
            checksum: image.checksum.clone(),
        };
        tee::tee(self.inner.clone(), expected, data).0
    }

    async fn evict(&self, image_id: &str) -> Result<(), ImageError> {
        self.inner.remove(image_id).await.map(|_| ())
    }

    async fn state(&self) -> Result<CacheState, ImageError> {
        let inner = &self.inner;
        let secs = |us: i64| us as f64 / 1e6;
        let cached = inner
            .repo
            .cache_rows(inner.node)
            .await?
            .into_iter()
            .map(|r| CachedImage {
                id: r.id.into(),
                image_id: r.image_id,
                last_accessed: secs(r.last_accessed),
                last_modified: secs(r.last_modified),
                size: r.size.max(0) as u64,
                hits: r.hits.into(),
                checksum: r.checksum,
            })
            .collect();
        let queued = inner
            .dir
            .queue()
            .await
            .map_err(|e| io_error("The image cache could not be read.", e))?;
        Ok(CacheState { cached, queued })
    }

    async fn queue(&self, image: &Image) -> Result<(), ImageError> {
        let inner = &self.inner;
        let (Some(queued), Some(incomplete)) =
            (inner.dir.queued(&image.id), inner.dir.incomplete(&image.id))
        else {
            return Ok(());
        };
        // Already cached, being cached or queued: nothing to do (Glance's
        // `queue_image` answers False then).
        if inner.repo.cache_row(inner.node, &image.id).await?.is_some()
            || tokio::fs::try_exists(&incomplete).await.unwrap_or(false)
        {
            return Ok(());
        }
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&queued)
            .await
        {
            Ok(_) => {
                let _ = inner.prefetch.send(image.id.clone());
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_error("The image cache could not be changed.", e)),
        }
    }

    async fn delete(&self, image_id: &str) -> Result<bool, ImageError> {
        self.inner.remove(image_id).await
    }

    async fn clear(&self, target: ClearTarget) -> Result<(), ImageError> {
        let inner = &self.inner;
        // The layer refuses it before it gets here.
        if target == ClearTarget::Invalid {
            return Ok(());
        }
        let failed = |e| io_error("The image cache could not be changed.", e);
        if matches!(target, ClearTarget::Cache | ClearTarget::All) {
            let _sizing = inner.sizing.lock().await;
            inner.repo.cache_remove_all(inner.node).await?;
            for f in inner.dir.cached_files().await.map_err(failed)? {
                if let Some(path) = inner.dir.cached(&f.name) {
                    files::remove(&path).await.map_err(failed)?;
                }
            }
        }
        if matches!(target, ClearTarget::Queue | ClearTarget::All) {
            for id in inner.dir.queue().await.map_err(failed)? {
                if let Some(path) = inner.dir.queued(&id) {
                    files::remove(&path).await.map_err(failed)?;
                }
            }
        }
        Ok(())
    }

    async fn nodes(&self, image_id: &str) -> Result<Vec<String>, ImageError> {
        self.inner.repo.cache_nodes(image_id).await
    }

    async fn clean(&self) -> Result<(), ImageError> {
        upkeep::clean(&self.inner).await
    }

    async fn prune(&self) -> Result<Pruned, ImageError> {
        upkeep::prune(&self.inner, self.inner.max_size).await
    }
}
