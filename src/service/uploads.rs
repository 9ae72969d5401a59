//! The core's side of moving data: an upload's status steps and the lease they
//! are taken under (see `crate::recovery`), and forgetting a location.

use std::sync::Arc;

use async_trait::async_trait;
use glance_layers::uploads::{UploadLease, UploadRecords};
use glance_layers::{Image, ImageError, ImageStatus, RequestContext, StoredData};

use super::{ImageCore, Result};
use crate::db::Finish;

#[async_trait]
impl UploadRecords for ImageCore {
    async fn begin(
        &self,
        ctx: &RequestContext,
        image_id: &str,
        store_id: &str,
    ) -> Result<UploadLease> {
        let image = self.image(ctx, image_id).await?;
        let missing: Vec<&str> = [
            ("disk_format", image.disk_format.is_none()),
            ("container_format", image.container_format.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, unset)| unset.then_some(name))
        .collect();
        match missing.as_slice() {
            [] => {}
            [one] => {
                return Err(ImageError::Invalid(format!(
                    "Property {one} must be set prior to saving data."
                )));
            }
            many => {
                return Err(ImageError::Invalid(format!(
                    "Properties {} must be set prior to saving data.",
                    many.join(", ")
                )));
            }
        }
        let conflict = |status: ImageStatus| {
            ImageError::Conflict(format!(
                "Image status transition from {status} to saving is not allowed"
            ))
        };
        if image.status != ImageStatus::Queued {
            return Err(conflict(image.status));
        }
        // Live before the database has it, so no sweep takes it for a dead one.
        let lease = self.leases.take_upload(image_id, store_id);
        let begun_at = super::now();
        match self.repo.begin_upload(&lease, begun_at).await {
            Ok(true) => {
                // The record as `begin` left it, which `finish` builds on.
                let mut saving = image.as_ref().clone();
                saving.status = ImageStatus::Saving;
                saving.updated_at = begun_at;
                Ok(UploadLease {
                    id: lease.id,
                    image_id: lease.image_id,
                    store_id: lease.store_id,
                    image: Arc::new(saving),
                })
            }
            Ok(false) => {
                self.leases.let_go(&lease.id);
                // Another upload or a delete got there first; say which status it
                // left, as Glance does.
                let now = self.repo.get(image_id).await?;
                match now {
                    Some(now) => Err(conflict(now.status)),
                    None => Err(ImageError::not_found(image_id)),
                }
            }
            Err(e) => {
                // If the writes landed after all, recovery finds a lease no upload
                // holds and puts the image back.
                self.leases.let_go(&lease.id);
                Err(e)
            }
        }
    }

    async fn note_partial(&self, lease: &UploadLease, partial: &str) -> Result<()> {
        if self
            .repo
            .note_partial(&lease.id, self.leases.boot_id(), partial)
            .await?
        {
            Ok(())
        } else {
            Err(ImageError::Conflict(format!(
                "Image {} upload was taken back by recovery.",
                lease.image_id
            )))
        }
    }

    async fn finish(&self, lease: &UploadLease, stored: &StoredData) -> Result<Image> {
        let id = lease.image_id.as_str();
        let virtual_size = stored.virtual_size.and_then(|n| i64::try_from(n).ok());
        let now = super::now();
        let lease_ref = (lease.id.as_str(), self.leases.boot_id());
        let began = lease.image.updated_at;
        let finish = self
            .repo
            .finish_upload(id, stored, virtual_size, lease_ref, began, now)
            .await?;
        if finish != Finish::NotHeld {
            self.leases.let_go(&lease.id);
        }
        match finish {
            Finish::Untouched => {
                // Exactly what the transaction wrote, on the record as `begin`
                // left it: nothing else changed in between.
                let mut image = lease.image.as_ref().clone();
                image.status = ImageStatus::Active;
                image.size = Some(stored.size as i64);
                image.virtual_size = virtual_size;
                image.checksum = Some(stored.checksum.clone());
                image.os_hash_algo = Some(stored.os_hash_algo.clone());
                image.os_hash_value = Some(stored.os_hash_value.clone());
                image.locations.push(stored.location.clone());
                image.updated_at = now;
                return Ok(image);
            }
            // A PATCH came in while the data flowed: the record as it is now.
            Finish::Changed => {
                return self
                    .repo
                    .get(id)
                    .await?
                    .ok_or_else(|| ImageError::not_found(id));
            }
            Finish::NotHeld => {}
        }
        if self.repo.is_deleted(id).await? {
            return Err(ImageError::DeletedDuringUpload(format!(
                "Image {id} could not be found after upload. The image may have been deleted during the upload."
            )));
        }
        Err(ImageError::Conflict(format!(
            "Image {id} changed status during the upload."
        )))
    }

    async fn holds(&self, lease: &UploadLease) -> Result<bool> {
        self.repo.lease_held(&lease.id, self.leases.boot_id()).await
    }

    async fn abort(&self, lease: &UploadLease, data_left: bool) -> Result<()> {
        let result = self
            .repo
            .abort_upload(&lease.id, self.leases.boot_id(), data_left)
            .await;
        self.leases.let_go(&lease.id);
        result.map(|_| ())
    }

    fn forget(&self, lease: &UploadLease) {
        self.leases.let_go(&lease.id);
    }

    async fn remove_location(&self, image: &Image, url: &str) -> Result<Image> {
        if !self.repo.remove_location(&image.id, url).await? {
            return Err(ImageError::NotFound(format!(
                "Image {} has no location {url}",
                image.id
            )));
        }
        let mut image = image.clone();
        image.locations.retain(|l| l.url != url);
        Ok(image)
    }

    async fn save_locations(&self, before: &Image, after: &Image) -> Result<Image> {
        let mut after = after.clone();
        after.updated_at = super::now();
        if !self.repo.save_locations(before, &after).await? {
            return Err(ImageError::Conflict(format!(
                "Image {} was changed by another request; try again.",
                before.id
            )));
        }
        Ok(after)
    }
}
