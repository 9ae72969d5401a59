//! The core's side of staging and importing: status steps, the import lock and
//! its stealing, the task record, and the progress properties (see
//! `glance_layers::import::records`).

use std::sync::Arc;

use async_trait::async_trait;
use glance_layers::import::ImageChanges;
use glance_layers::import::records::{
    FAILED_IMPORT, IMPORT_LOCK, IMPORTING_TO_STORES, ImportJob, ImportOutcome, ImportPlan,
    ImportRecords, STAGED_AT, STAGING_STORE,
};
use glance_layers::store::StoredObject;
use glance_layers::uploads::UploadLease;
use glance_layers::{
    Image, ImageError, ImageStatus, ImportMethod, RequestContext, StoredData, Task, TaskStatus,
};

use super::{ImageCore, Result};
use crate::db::imports::{ImportBlocked, StoreWritten};
use crate::db::leases::{IMPORT, STAGE};
use crate::db::tasks::TaskChange;

/// How long a lock of a task that stopped moving is honoured (Glance's numbers):
/// 60 minutes since its last update, twice that while it is `pending`.
const LOCK_EXPIRY_MINUTES: i64 = 60;

impl ImageCore {
    fn lease_of(&self, lease: &crate::db::leases::Lease, image: Image) -> UploadLease {
        UploadLease {
            id: lease.id.clone(),
            image_id: lease.image_id.clone(),
            store_id: lease.store_id.clone(),
            image: Arc::new(image),
        }
    }

    /// Whether the lock held by `task_id` may be taken over; `Some(task)` is the
    /// task that held it, to be failed.
    async fn stale_lock(&self, image_id: &str, task_id: &str) -> Result<Option<Option<Task>>> {
        let Some(task) = self.repo.get_task(task_id).await? else {
            tracing::warn!(image = %image_id, task = %task_id, "import lock of a task that no longer exists; taking it over");
            return Ok(Some(None));
        };
        let mut expiry = chrono::Duration::minutes(LOCK_EXPIRY_MINUTES);
        if task.status == TaskStatus::Pending {
            expiry = expiry * 2;
        }
        let age = chrono::Utc::now() - task.updated_at;
        if age >= expiry {
            return Ok(Some(Some(task)));
        }
        tracing::info!(image = %image_id, task = %task_id, status = %task.status, remaining = (expiry - age).num_seconds(), "image import lock held");
        Ok(None)
    }
}

/// Glance's 409s for an import the image's status does not allow.
fn check_status(method: &ImportMethod, image: &Image) -> Result<ImageStatus> {
    let conflict = |m: String| Err(ImageError::Conflict(m));
    let status = image.status;
    if let ImportMethod::Location { .. } = method {
        if status != ImageStatus::Queued {
            return conflict(format!(
                "It's not allowed to add locations if image status is {}.",
                status.as_str()
            ));
        }
        return Ok(status);
    }
    if status == ImageStatus::Active && *method != ImportMethod::CopyImage {
        return conflict("Image with status active cannot be target for import".into());
    }
    if status != ImageStatus::Active && *method == ImportMethod::CopyImage {
        return conflict("Only images with status active can be targeted for copying".into());
    }
    if status != ImageStatus::Queued
        && matches!(
            method,
            ImportMethod::WebDownload { .. } | ImportMethod::GlanceDownload { .. }
        )
    {
        return conflict(format!(
            "Image needs to be in 'queued' state to use '{}' method",
            method.name()
        ));
    }
    if status != ImageStatus::Uploading && *method == ImportMethod::GlanceDirect {
        return conflict(
            "Image needs to be staged before 'glance-direct' method can be used".into(),
        );
    }
    if image.container_format.is_none() {
        return conflict("'container_format' needs to be set before import".into());
    }
    if image.disk_format.is_none() {
        return conflict("'disk_format' needs to be set before import".into());
    }
    Ok(status)
}

#[async_trait]
impl ImportRecords for ImageCore {
    async fn begin_stage(&self, ctx: &RequestContext, image_id: &str) -> Result<UploadLease> {
        let image = self.image(ctx, image_id).await?;
        if image.status != ImageStatus::Queued {
            return Err(ImageError::Conflict(format!(
                "Image status transition from {} to uploading is not allowed",
                image.status
            )));
        }
        let lease = self.leases.take(STAGE, image_id, STAGING_STORE);
        let at = super::now();
        match self.repo.begin_upload(&lease, at).await {
            Ok(true) => {
                let mut uploading = image.as_ref().clone();
                uploading.status = ImageStatus::Uploading;
                uploading.updated_at = at;
                Ok(self.lease_of(&lease, uploading))
            }
            Ok(false) => {
                self.leases.let_go(&lease.id);
                let now = self.repo.get(image_id).await?;
                match now {
                    Some(now) => Err(ImageError::Conflict(format!(
                        "Image status transition from {} to uploading is not allowed",
                        now.status
                    ))),
                    None => Err(ImageError::not_found(image_id)),
                }
            }
            Err(e) => {
                self.leases.let_go(&lease.id);
                Err(e)
            }
        }
    }

    async fn finish_stage(&self, lease: &UploadLease, staged: &StoredObject) -> Result<Image> {
        let at = super::now();
        let done = self
            .repo
            .finish_stage(
                (&lease.id, self.leases.boot_id()),
                &lease.image_id,
                staged.size,
                &staged.url,
                at,
            )
            .await?;
        if !done {
            if self.repo.is_deleted(&lease.image_id).await? {
                return Err(ImageError::NotFound(format!(
                    "Image {} could not be found after upload. The image may have been deleted during the upload.",
                    lease.image_id
                )));
            }
            return Err(ImageError::Conflict(format!(
                "Image {} changed status while its data was staged.",
                lease.image_id
            )));
        }
        self.leases.let_go(&lease.id);
        let mut image = lease.image.as_ref().clone();
        image.size = Some(staged.size as i64);
        image.updated_at = at;
        image
            .properties
            .insert(STAGED_AT.into(), staged.url.clone());
        Ok(image)
    }

    async fn begin_import(
        &self,
        ctx: &RequestContext,
        image_id: &str,
        plan: ImportPlan,
    ) -> Result<Option<ImportJob>> {
        let image = self.image(ctx, image_id).await?;
        let from = check_status(&plan.method, &image)?;
        let mut stores = plan.stores;
        if plan.method == ImportMethod::CopyImage {
            let present: Vec<&str> = image
                .locations
                .iter()
                .filter_map(|l| l.metadata.get("store").and_then(|v| v.as_str()))
                .collect();
            if plan.all_stores {
                stores.retain(|s| !present.contains(&s.as_str()));
                if stores.is_empty() {
                    tracing::info!(image = %image_id, "copy-image: the image is in every store already");
                    return Ok(None);
                }
            } else if let Some(s) = stores.iter().find(|s| present.contains(&s.as_str())) {
                return Err(ImageError::Invalid(format!(
                    "Image is already present at store '{s}'"
                )));
            }
        }
        let stale = match image.properties.get(IMPORT_LOCK) {
            None => None,
            Some(holder) => match self.stale_lock(image_id, holder).await? {
                Some(task) => Some((holder.clone(), task)),
                None => {
                    return Err(ImageError::Conflict(format!(
                        "New operation on image '{image_id}' is not permitted as prior operation is still in progress"
                    )));
                }
            },
        };
        let identity = ctx.identity.as_ref();
        let at = super::now();
        let task = Task {
            id: uuid::Uuid::new_v4().to_string(),
            kind: match plan.method {
                ImportMethod::Location { .. } => "location_import",
                _ => "api_image_import",
            }
            .into(),
            status: TaskStatus::Pending,
            owner: identity.and_then(|i| i.project_id.clone()),
            expires_at: None,
            created_at: at,
            updated_at: at,
            deleted_at: None,
            deleted: false,
            image_id: Some(image_id.to_string()),
            request_id: Some(ctx.request_id.clone()).filter(|r| !r.is_empty()),
            user_id: identity.and_then(|i| i.user_id.clone()),
            input: plan.task_input,
            result: None,
            message: String::new(),
        };
        let to = if plan.method == ImportMethod::CopyImage {
            ImageStatus::Active
        } else {
            ImageStatus::Importing
        };
        let mut importing = stores.clone();
        importing.sort();
        let lease = self.leases.take(IMPORT, image_id, "");
        let begun = self
            .repo
            .begin_import(
                image_id,
                &task,
                stale.as_ref().map(|(holder, _)| holder.as_str()),
                from,
                to,
                &importing.join(","),
                &lease,
                at,
            )
            .await;
        let refused = match begun {
            Ok(Ok(())) => None,
            Ok(Err(ImportBlocked::Locked)) => Some(ImageError::Conflict(format!(
                "New operation on image '{image_id}' is not permitted as prior operation is still in progress"
            ))),
            Ok(Err(ImportBlocked::Status)) => Some(ImageError::Conflict(format!(
                "Image {image_id} changed status; the import cannot start."
            ))),
            Err(e) => Some(e),
        };
        if let Some(e) = refused {
            self.leases.let_go(&lease.id);
            return Err(e);
        }
        if let Some((holder, old)) = stale {
            if old.is_some() {
                let _ = self
                    .move_task(&holder, TaskStatus::Failure, "Expired lock preempted", None)
                    .await;
            }
            tracing::warn!(image = %image_id, stale = %holder, task = %task.id, "took over a stale import lock");
        }
        let mut started = image.as_ref().clone();
        started.status = to;
        started.updated_at = at;
        started
            .properties
            .insert(IMPORT_LOCK.into(), task.id.clone());
        started
            .properties
            .insert(IMPORTING_TO_STORES.into(), importing.join(","));
        started
            .properties
            .insert(FAILED_IMPORT.into(), String::new());
        ctx.loaded.replace(started);
        Ok(Some(ImportJob {
            lease: self.lease_of(&lease, image.as_ref().clone()),
            task,
            method: plan.method,
            stores,
            all_stores_must_succeed: plan.all_stores_must_succeed,
            image: image.clone(),
            ctx: ctx.clone(),
        }))
    }

    async fn import_running(&self, job: &ImportJob) -> Result<()> {
        let moved = self
            .repo
            .update_task(
                &job.task.id,
                &[TaskStatus::Pending],
                TaskStatus::Processing,
                "",
                None,
                None,
            )
            .await?;
        if !moved {
            return Err(ImageError::Conflict(format!(
                "Task {} is no longer pending.",
                job.task.id
            )));
        }
        Ok(())
    }

    async fn import_writes_to(&self, job: &ImportJob, store_id: &str) -> Result<()> {
        let held = self
            .repo
            .import_writes_to(
                &job.lease.id,
                self.leases.boot_id(),
                &job.image.id,
                &job.task.id,
                store_id,
            )
            .await?;
        if !held {
            return Err(lost(job));
        }
        Ok(())
    }

    async fn import_stored(
        &self,
        job: &ImportJob,
        store_id: &str,
        stored: &StoredData,
        set_active: bool,
    ) -> Result<Image> {
        let first_data = !job.is_copy() && job.image.checksum.is_none();
        let virtual_size = stored.virtual_size.and_then(|n| i64::try_from(n).ok());
        let recorded = self
            .repo
            .import_stored(
                &job.image.id,
                &job.task.id,
                (&job.lease.id, self.leases.boot_id()),
                StoreWritten {
                    store_id,
                    stored,
                    first_data,
                    virtual_size,
                    activate: set_active,
                },
                super::now(),
            )
            .await?;
        if !recorded {
            return Err(lost(job));
        }
        self.repo
            .get(&job.image.id)
            .await?
            .ok_or_else(|| ImageError::not_found(&job.image.id))
    }

    async fn import_amend(&self, job: &ImportJob, changes: &ImageChanges) -> Result<()> {
        if !self
            .repo
            .import_amend(&job.image.id, &job.task.id, changes, super::now())
            .await?
        {
            return Err(lost(job));
        }
        Ok(())
    }

    async fn import_store_failed(&self, job: &ImportJob, store_id: &str) -> Result<()> {
        if !self
            .repo
            .import_store_failed(&job.image.id, &job.task.id, store_id)
            .await?
        {
            return Err(lost(job));
        }
        Ok(())
    }

    async fn finish_import(&self, job: &ImportJob, outcome: ImportOutcome) -> Result<Task> {
        let requeue = !job.is_copy() && outcome != ImportOutcome::Success;
        let result = serde_json::json!({"image_id": job.image.id});
        let change = match &outcome {
            ImportOutcome::Success => TaskChange {
                from: &[TaskStatus::Pending, TaskStatus::Processing],
                to: TaskStatus::Success,
                message: "",
                result: Some(&result),
                expires_at: Some(super::now() + self.task_ttl),
            },
            ImportOutcome::Failure(message) => TaskChange {
                from: &[TaskStatus::Pending, TaskStatus::Processing],
                to: TaskStatus::Failure,
                message,
                result: None,
                expires_at: Some(super::now() + self.task_ttl),
            },
        };
        let at = super::now();
        let ended = self
            .repo
            .finish_import(
                &job.image.id,
                &job.task.id,
                (&job.lease.id, self.leases.boot_id()),
                requeue,
                &change,
                at,
            )
            .await?;
        self.leases.let_go(&job.lease.id);
        if !ended {
            tracing::warn!(image = %job.image.id, task = %job.task.id, "import was taken back by recovery before it ended");
        }
        let mut task = job.task.clone();
        task.status = change.to;
        task.message = change.message.to_string();
        task.result = change.result.cloned();
        task.expires_at = change.expires_at;
        task.updated_at = at;
        Ok(task)
    }

    async fn move_task(
        &self,
        task_id: &str,
        to: TaskStatus,
        message: &str,
        result: Option<serde_json::Value>,
    ) -> Result<()> {
        let (from, expires): (&[TaskStatus], _) = if to == TaskStatus::Processing {
            (&[TaskStatus::Pending], None)
        } else {
            (
                &[TaskStatus::Pending, TaskStatus::Processing],
                Some(super::now() + self.task_ttl),
            )
        };
        self.repo
            .update_task(task_id, from, to, message, result.as_ref(), expires)
            .await
            .map(|_| ())
    }

    async fn import_progress(&self, job: &ImportJob, message: &str) {
        if let Err(e) = self.repo.set_task_message(&job.task.id, message).await {
            tracing::debug!(task = %job.task.id, error = %e, "could not record import progress");
        }
    }
}

/// The import's lock or lease is gone (stolen, taken back, image deleted).
fn lost(job: &ImportJob) -> ImageError {
    ImageError::Conflict(format!(
        "Import of image {} was stopped: the image was deleted or another operation took it over.",
        job.image.id
    ))
}
