//! Keeping the cache within its bounds and consistent with its index: LRU
//! pruning to `image_cache_max_size`, cleaning stalled fills (older than
//! `image_cache_stall_time`) and invalid files, and reconciling files with index
//! rows at start-up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use glance_layers::ImageError;
use glance_layers::cache::Pruned;

use super::{Inner, files, io_error};

/// Cleans at this period, or at the stall time if that is shorter.
const CLEAN_EVERY: Duration = Duration::from_secs(3600);

/// Makes the directory and the index agree after a crash or a manual change:
/// fills in progress died with the process, a row without its file and a file
/// without its row (a crash between rename and insert) are both dropped.
pub(super) async fn reconcile(inner: &Inner) -> Result<(), ImageError> {
    let failed = |e| io_error("The image cache could not be read.", e);
    for f in inner.dir.incomplete_files().await.map_err(failed)? {
        if let Some(path) = inner.dir.incomplete(&f.name) {
            tracing::info!(file = %path.display(), "removing a cache fill a restart interrupted");
            files::remove(&path).await.map_err(failed)?;
        }
    }
    let on_disk: HashMap<String, u64> = inner
        .dir
        .cached_files()
        .await
        .map_err(failed)?
        .into_iter()
        .map(|f| (f.name, f.size))
        .collect();
    let rows = inner.repo.cache_rows(inner.node).await?;
    let mut indexed = HashSet::new();
    for row in rows {
        match on_disk.get(&row.image_id) {
            Some(size) if *size as i64 == row.size => {
                indexed.insert(row.image_id);
            }
            _ => {
                tracing::info!(image = %row.image_id, "cache entry without its file; dropped");
                inner.remove(&row.image_id).await?;
            }
        }
    }
    for name in on_disk.keys().filter(|n| !indexed.contains(*n)) {
        if let Some(path) = inner.dir.cached(name) {
            tracing::info!(file = %path.display(), "cache file without an entry; removed");
            files::remove(&path).await.map_err(failed)?;
        }
    }
    Ok(())
}

/// Evicts least recently used images until the cache holds at most `max`
/// bytes.
pub(super) async fn prune(inner: &Inner, max: u64) -> Result<Pruned, ImageError> {
    let _sizing = inner.sizing.lock().await;
    prune_locked(inner, max).await
}

/// [`prune`], for a caller that holds `inner.sizing`.
pub(super) async fn prune_locked(inner: &Inner, max: u64) -> Result<Pruned, ImageError> {
    let failed = |e| io_error("The image cache could not be read.", e);
    let on_disk: HashMap<String, u64> = inner
        .dir
        .cached_files()
        .await
        .map_err(failed)?
        .into_iter()
        .map(|f| (f.name, f.size))
        .collect();
    let mut total: u64 = on_disk.values().sum();
    let mut pruned = Pruned::default();
    if total <= max {
        return Ok(pruned);
    }
    tracing::info!(total, max, "image cache over its size; pruning");
    for row in inner.repo.cache_rows(inner.node).await? {
        if total <= max {
            break;
        }
        let size = on_disk.get(&row.image_id).copied().unwrap_or(0);
        inner.remove(&row.image_id).await?;
        total = total.saturating_sub(size);
        pruned.files += 1;
        pruned.bytes += size;
        tracing::debug!(image = %row.image_id, size, "pruned from the image cache");
    }
    Ok(pruned)
}

/// Removes invalid files and fills untouched for longer than the stall time.
pub(super) async fn clean(inner: &Inner) -> Result<(), ImageError> {
    let failed = |e| io_error("The image cache could not be cleaned.", e);
    for f in inner.dir.invalid_files().await.map_err(failed)? {
        if let Some(path) = inner.dir.invalid(&f.name) {
            files::remove(&path).await.map_err(failed)?;
            tracing::info!(file = %path.display(), "removed an invalid cache file");
        }
    }
    let older_than = SystemTime::now()
        .checked_sub(inner.stall_time)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for f in inner.dir.incomplete_files().await.map_err(failed)? {
        if f.modified >= older_than {
            continue;
        }
        if let Some(path) = inner.dir.incomplete(&f.name) {
            files::remove(&path).await.map_err(failed)?;
            tracing::info!(file = %path.display(), "removed a stalled cache file");
        }
    }
    Ok(())
}

/// Cleans now and then for as long as the server runs.
pub(super) fn spawn_cleaner(inner: Arc<Inner>) {
    let every = CLEAN_EVERY
        .min(inner.stall_time)
        .max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = clean(&inner).await {
                tracing::warn!(error = %e, "image cache clean failed");
            }
        }
    });
}
