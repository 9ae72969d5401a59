//! The core's side of an upload: the image's status steps and the lease they are
//! taken under (see `crate::recovery`).

use async_trait::async_trait;
use glance_layers::uploads::{UploadLease, UploadRecords};
use glance_layers::{Image, ImageError, ImageStatus, StoredData};

use super::{ImageCore, Result};

#[async_trait]
impl UploadRecords for ImageCore {
    async fn begin(&self, image_id: &str, store_id: &str) -> Result<UploadLease> {
        let image = self.image(image_id).await?;
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
                return Err(ImageError::BadRequest(format!(
                    "Property {one} must be set prior to saving data."
                )));
            }
            many => {
                return Err(ImageError::BadRequest(format!(
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
        match self.repo.begin_upload(&lease).await {
            Ok(true) => Ok(UploadLease {
                id: lease.id,
                image_id: lease.image_id,
                store_id: lease.store_id,
            }),
            Ok(false) => {
                self.leases.let_go(&lease.id);
                let now = self.image(image_id).await?;
                Err(conflict(now.status))
            }
            Err(e) => {
                // If the commit landed after all, recovery finds a lease no
                // upload holds and puts the image back.
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
        let image = self.image(id).await;
        // Raw data is its own virtual size; other formats need inspection, which is
        // not built yet, so they get none (as Glance does when inspection fails).
        let virtual_size = match &image {
            Ok(i) if i.disk_format.as_deref() == Some("raw") && stored.size > 0 => {
                Some(stored.size as i64)
            }
            _ => None,
        };
        if self
            .repo
            .finish_upload(id, stored, virtual_size, (&lease.id, self.leases.boot_id()))
            .await?
        {
            self.leases.let_go(&lease.id);
            return self.image(id).await;
        }
        if image.is_err() || self.repo.is_deleted(id).await? {
            return Err(ImageError::Gone(format!(
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
}
