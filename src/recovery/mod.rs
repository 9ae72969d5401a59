//! Crash recovery: nothing stays `saving`, no data stays orphaned.
//!
//! Every upload runs under a lease (see `migrations`' `leases` table and
//! [`LeaseKeeper`]). At start-up, and then every `recovery_interval`, a sweep
//! takes back the leases whose holder is gone: this node's from an earlier life,
//! any node's that expired (their node stopped renewing them), and abandoned ones
//! (their upload gave up but could not remove its data). For each it removes the
//! data in the store, then puts the image back in `queued`, as a failed upload
//! does, and says so with the `image.upload` error notification Glance sends for
//! one. A lease another node renews is never touched. At start-up it also removes
//! temporary data in the stores that no lease accounts for.
//!
//! The same loop renews this node's live leases every third of `upload_lease_ttl`.

pub mod leases;
pub mod node;

use std::sync::Arc;
use std::time::Duration;

use glance_layers::import::records::STAGING_STORE;
use glance_layers::notifier::{EventSink, Notification, Priority};
use glance_layers::store::{Store, StoreSet};

use crate::db::Repo;
use crate::db::leases::Lease;
use crate::db::to_micros;
use crate::store::FileStore;

pub use leases::LeaseKeeper;
pub use node::NodeIdentity;

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Images put back to `queued`.
    pub requeued: Vec<String>,
    /// Leases whose data was removed and that are gone now.
    pub settled: usize,
    /// Leases whose cleanup failed; retried by a later sweep.
    pub deferred: usize,
    /// Temporary data no lease accounted for, removed.
    pub strays: usize,
}

/// Runs the sweeps and renewals. Cheap to clone.
#[derive(Clone)]
pub struct Recovery {
    repo: Repo,
    stores: StoreSet,
    /// Where stages and downloads write.
    staging: Arc<FileStore>,
    keeper: LeaseKeeper,
    sink: Arc<dyn EventSink>,
    publisher_id: Arc<str>,
    /// How long a task failed by recovery is kept.
    task_ttl: chrono::Duration,
}

impl Recovery {
    pub fn new(
        repo: Repo,
        stores: StoreSet,
        staging: Arc<FileStore>,
        keeper: LeaseKeeper,
        sink: Arc<dyn EventSink>,
        publisher_id: &str,
    ) -> Self {
        Recovery {
            repo,
            stores,
            staging,
            keeper,
            sink,
            publisher_id: publisher_id.into(),
            task_ttl: chrono::Duration::hours(48),
        }
    }

    /// Keeps the tasks it fails for `ttl` (`[task] task_time_to_live`).
    pub fn with_task_ttl(mut self, ttl: chrono::Duration) -> Self {
        self.task_ttl = ttl;
        self
    }

    /// The start-up pass: the leases with no live holder, then stray data.
    pub async fn sweep(&self) -> Result<SweepReport, String> {
        let mut report = self.sweep_leases().await?;
        report.strays = self.sweep_strays().await?;
        report.strays += self.sweep_staging().await?;
        Ok(report)
    }

    /// Staged data no image waits on (Glance's staging cleaner): its image is
    /// gone, or no longer `uploading` or `importing` (a crash between a delete
    /// and the removal of its staged data, say). Names that are not image ids
    /// are left alone.
    async fn sweep_staging(&self) -> Result<usize, String> {
        let objects = match self.staging.objects().await {
            Ok(objects) => objects,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the staging store");
                return Ok(0);
            }
        };
        let mut removed = 0;
        for (name, url) in objects {
            if uuid::Uuid::parse_str(&name).is_err() {
                continue;
            }
            let image = self.repo.get(&name).await.map_err(|e| e.to_string())?;
            let waited_on = image.is_some_and(|i| {
                matches!(
                    i.status,
                    glance_layers::ImageStatus::Uploading | glance_layers::ImageStatus::Importing
                )
            });
            if waited_on {
                continue;
            }
            match self.staging.delete(&url).await {
                Ok(()) => {
                    tracing::info!(image = %name, "removed staged data no image waits on");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(image = %name, error = %e, "could not remove stray staged data")
                }
            }
        }
        Ok(removed)
    }

    /// The periodic pass: the leases with no live holder only. Stray data (from
    /// before leases, or a removal that failed) is rare and needs a listing of
    /// every store, so it waits for the next start.
    pub async fn sweep_leases(&self) -> Result<SweepReport, String> {
        let mut report = SweepReport::default();
        let now = to_micros(chrono::Utc::now());
        let candidates = self
            .repo
            .candidate_leases(self.keeper.node_id(), now)
            .await
            .map_err(|e| e.to_string())?;
        for seen in candidates {
            // Read after the lease rows: a lease of ours in the database is in
            // the live set until its upload is done with the database.
            let ours_now =
                seen.node_id == self.keeper.node_id() && seen.boot_id == self.keeper.boot_id();
            if ours_now && self.keeper.is_live(&seen.id) {
                continue;
            }
            self.reclaim(seen, &mut report).await;
        }
        Ok(report)
    }

    async fn reclaim(&self, seen: Lease, report: &mut SweepReport) {
        let token = uuid::Uuid::new_v4().simple().to_string();
        match self
            .repo
            .claim_lease(
                &seen,
                self.keeper.node_id(),
                &token,
                self.keeper.expiry_from_now(),
            )
            .await
        {
            Ok(true) => {}
            // Renewed, finished or claimed by another node since we read it.
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(lease = %seen.id, error = %e, "could not claim a lease");
                report.deferred += 1;
                return;
            }
        }
        if seen.kind == crate::db::leases::IMPORT {
            return self.reclaim_import(seen, &token, report).await;
        }
        if let Err(e) = self.discard(&seen).await {
            // The claim runs out after upload_lease_ttl; a later sweep retries.
            tracing::warn!(image = %seen.image_id, lease = %seen.id, error = %e, "could not remove the data of an unfinished upload yet");
            report.deferred += 1;
            return;
        }
        match self.repo.settle_claimed(&seen, &token).await {
            Ok(requeued) => {
                report.settled += 1;
                if requeued {
                    tracing::warn!(image = %seen.image_id, node = %seen.node_id, "took back an upload that did not finish; the image is queued again");
                    self.sink.publish(Notification::now(
                        &self.publisher_id,
                        "image.upload",
                        Priority::Error,
                        serde_json::json!(format!(
                            "Image {} upload did not finish (its server stopped or lost its database); the image is queued again.",
                            seen.image_id
                        )),
                    ));
                    report.requeued.push(seen.image_id.clone());
                }
            }
            Err(e) => {
                tracing::warn!(lease = %seen.id, error = %e, "could not settle a reclaimed lease");
                report.deferred += 1;
            }
        }
    }

    /// An import whose node died: the data it wrote goes (its partial write, and,
    /// for an image that never became active, every location and the staged
    /// data), then its task fails, its lock is released and the image returns to
    /// `queued` (a copy's image stays `active`).
    async fn reclaim_import(&self, seen: Lease, token: &str, report: &mut SweepReport) {
        let image = match self.repo.get(&seen.image_id).await {
            Ok(image) => image,
            Err(e) => {
                tracing::warn!(image = %seen.image_id, error = %e, "could not read the image of an unfinished import");
                report.deferred += 1;
                return;
            }
        };
        let requeue = image
            .as_ref()
            .is_some_and(|i| i.status == glance_layers::ImageStatus::Importing);
        let mut failed = self.discard_import(&seen, image.as_ref(), requeue).await;
        let task = image
            .as_ref()
            .and_then(|i| {
                i.properties
                    .get(glance_layers::import::records::IMPORT_LOCK)
            })
            .cloned();
        if failed.is_none() {
            let settled = self
                .repo
                .settle_import(&seen, token, task.as_deref(), requeue, self.task_ttl)
                .await;
            if let Err(e) = settled {
                failed = Some(e.to_string());
            }
        }
        if let Some(e) = failed {
            tracing::warn!(image = %seen.image_id, lease = %seen.id, error = %e, "could not take back an unfinished import yet");
            report.deferred += 1;
            return;
        }
        report.settled += 1;
        if requeue {
            tracing::warn!(image = %seen.image_id, node = %seen.node_id, "took back an import that did not finish; the image is queued again");
            report.requeued.push(seen.image_id.clone());
        }
    }

    /// Removes an unfinished import's data; `Some` says what could not be removed.
    async fn discard_import(
        &self,
        seen: &Lease,
        image: Option<&glance_layers::Image>,
        requeue: bool,
    ) -> Option<String> {
        let recorded_in = |store_id: &str| {
            image.is_some_and(|i| {
                i.locations
                    .iter()
                    .any(|l| l.metadata.get("store").and_then(|v| v.as_str()) == Some(store_id))
            })
        };
        let mut result = None;
        if let Some(store) = self.store_of(&seen.store_id) {
            // The object under the final name is the import's own unless a
            // location records it (a copy that landed before the node died).
            let with_final = requeue || !recorded_in(&seen.store_id);
            if let Err(e) = store
                .discard(
                    &seen.image_id,
                    &seen.id,
                    seen.partial.as_deref(),
                    with_final,
                )
                .await
            {
                result = Some(e.to_string());
            }
        }
        if requeue {
            for loc in image.map(|i| i.locations.as_slice()).unwrap_or_default() {
                let store = self
                    .stores
                    .for_location(&loc.url, loc.metadata.get("store").and_then(|v| v.as_str()));
                if let Some(store) = store
                    && let Err(e) = store.delete(&loc.url).await
                    && !matches!(e, glance_layers::store::StoreError::NotFound(_))
                {
                    result = Some(e.to_string());
                }
            }
            if let Err(e) = self
                .staging
                .discard(&seen.image_id, &seen.id, None, true)
                .await
            {
                result = Some(e.to_string());
            }
        }
        result
    }

    /// The store a lease writes to: an enabled one, or staging.
    fn store_of(&self, store_id: &str) -> Option<Arc<dyn Store>> {
        if store_id == STAGING_STORE {
            return Some(self.staging.clone() as Arc<dyn Store>);
        }
        self.stores.get(store_id).cloned()
    }

    /// Removes what the lease's upload left. An abandoned lease's image went back
    /// to `queued` already and may be uploading again under the same final name,
    /// so only its own partial data goes; otherwise the image is still `saving`
    /// under this lease and an object under its final name is one the upload
    /// completed but never recorded.
    async fn discard(&self, lease: &Lease) -> Result<(), String> {
        let Some(store) = self.store_of(&lease.store_id) else {
            // A store no longer enabled: nothing we can reach to remove.
            tracing::warn!(store = %lease.store_id, image = %lease.image_id, "the store of an unfinished upload is not enabled; its data cannot be removed");
            return Ok(());
        };
        store
            .discard(
                &lease.image_id,
                &lease.id,
                lease.partial.as_deref(),
                !lease.abandoned,
            )
            .await
            .map_err(|e| e.to_string())
    }

    /// Temporary data with no lease: left by a process that died before leases
    /// existed, or whose lease is settled but whose file removal failed.
    async fn sweep_strays(&self) -> Result<usize, String> {
        let mut removed = 0;
        let staging: Arc<dyn Store> = self.staging.clone();
        let staging = (STAGING_STORE, &staging);
        for (_, store) in self.stores.iter().chain(std::iter::once(staging)) {
            let found = match store.temporary().await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "could not list a store's temporary data");
                    continue;
                }
            };
            if found.is_empty() {
                continue;
            }
            let ids: Vec<String> = found.iter().map(|(_, upload)| upload.clone()).collect();
            // Listed before this lookup: a temporary file is made after its lease,
            // so one whose lease is missing now has no upload behind it.
            let leased = self
                .repo
                .existing_leases(&ids)
                .await
                .map_err(|e| e.to_string())?;
            for (image, upload) in found {
                if leased.contains(&upload) {
                    continue;
                }
                match store.discard(&image, &upload, None, false).await {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(image = %image, error = %e, "could not remove stray temporary data")
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Renews this node's live leases.
    pub async fn renew(&self) -> Result<u64, String> {
        let live = self.keeper.live();
        if live.is_empty() {
            return Ok(0);
        }
        self.repo
            .renew_leases(&live, self.keeper.boot_id(), self.keeper.expiry_from_now())
            .await
            .map_err(|e| e.to_string())
    }

    /// Renews every third of the lease time and sweeps every `interval`, until the
    /// runtime ends, each in a task of its own (a slow sweep must not let our own
    /// leases lapse). A failure (the database is down, say) is logged and retried.
    pub fn spawn(self, interval: Duration) {
        let renew_every = (self.keeper.ttl() / 3).max(Duration::from_millis(200));
        let renewer = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(renew_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = renewer.renew().await {
                    tracing::warn!(error = %e, "could not renew upload leases");
                }
            }
        });
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(200)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self.sweep_leases().await {
                    Ok(r) if r != SweepReport::default() => tracing::info!(?r, "recovery sweep"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "recovery sweep failed; retrying later"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests;
