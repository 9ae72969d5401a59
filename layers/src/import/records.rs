//! What an import asks of the image records: the status steps of staging and
//! importing, the import lock, the task, and the progress properties. The core
//! implements it, as it implements [`UploadRecords`], whose lease steps
//! (`holds`, `abort`, `forget`, `note_partial`) staging and imports reuse: a
//! lease's kind says which status an abort returns from.
//!
//! An import holds two things while it runs:
//! * the import lock, Glance's `os_glance_import_task` property naming its task,
//!   which keeps a second import off the image;
//! * a lease (see [`UploadLease`]) naming this node and the store it writes to,
//!   so that if the node dies its partial data is removed, its task failed, its
//!   lock released and its image put back in `queued`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::store::StoredObject;
use crate::uploads::{UploadLease, UploadRecords};
use crate::{Image, ImageError, ImportMethod, RequestContext, StoredData, Task};

/// The property holding the import lock: the id of the task that holds it.
pub const IMPORT_LOCK: &str = "os_glance_import_task";
/// Stores still to be written by the running import, sorted and comma-joined.
pub const IMPORTING_TO_STORES: &str = "os_glance_importing_to_stores";
/// Stores the import failed to write, sorted and comma-joined.
pub const FAILED_IMPORT: &str = "os_glance_failed_import";
/// Where the staged data of an image is (a URL of the staging store). Ours, not
/// Glance's (Glance derives the path from the image id): any node can find the
/// data, whatever store stages it. Hidden from responses.
pub const STAGED_AT: &str = "os_glance_stage_uri";
/// The id of the reserved staging store, as Glance names it.
pub const STAGING_STORE: &str = "os_glance_staging_store";

/// An import as checked and planned before its task exists.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    pub method: ImportMethod,
    /// The stores to write, resolved and known to exist.
    pub stores: Vec<String>,
    /// With copy-image, drop stores that already hold the image instead of
    /// refusing them.
    pub all_stores: bool,
    pub all_stores_must_succeed: bool,
    /// The task's input: `{"image_id", "import_req", "backend"}` as Glance keeps it.
    pub task_input: serde_json::Value,
}

/// A started import: its task, lock and lease are taken.
#[derive(Debug, Clone)]
pub struct ImportJob {
    pub task: Task,
    pub method: ImportMethod,
    /// What is left to write, in order.
    pub stores: Vec<String>,
    pub all_stores_must_succeed: bool,
    /// The image as the import found it (before `importing`).
    pub image: Arc<Image>,
    /// Held while the import runs; its `store_id` follows the store being written.
    pub lease: UploadLease,
    /// The caller's context (the token glance-download fetches with).
    pub ctx: RequestContext,
}

impl ImportJob {
    /// Whether this import copies an active image (the image stays active).
    pub fn is_copy(&self) -> bool {
        self.method == ImportMethod::CopyImage
    }
}

/// How an import ended, for its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Success,
    Failure(String),
}

#[async_trait]
pub trait ImportRecords: UploadRecords {
    /// `queued → uploading` under a new lease of kind `stage`. Aborting it (see
    /// [`UploadRecords::abort`]) puts the image back in `queued`.
    async fn begin_stage(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<UploadLease, ImageError>;

    /// Records the staged data (size, where it is) and releases the lease; the
    /// image stays `uploading` until an import takes the data.
    async fn finish_stage(
        &self,
        lease: &UploadLease,
        staged: &StoredObject,
    ) -> Result<Image, ImageError>;

    /// Checks the image's status and formats for the method, takes the import
    /// lock (stealing a stale one), creates the task, moves the image to
    /// `importing` (copy-image leaves it `active`) with the progress properties,
    /// and takes the lease. `None` when there is nothing to do (copy-image to
    /// stores that all hold the image already).
    async fn begin_import(
        &self,
        ctx: &RequestContext,
        image_id: &str,
        plan: ImportPlan,
    ) -> Result<Option<ImportJob>, ImageError>;

    /// The task runs now (`pending → processing`).
    async fn import_running(&self, job: &ImportJob) -> Result<(), ImageError>;

    /// The lease now covers a write to `store_id` (its partial data, if any, is
    /// noted afresh). `Conflict` when the lock is no longer the job's or the image
    /// is gone: the import must stop.
    async fn import_writes_to(&self, job: &ImportJob, store_id: &str) -> Result<(), ImageError>;

    /// Records the data written to `store_id`: a location, the data attributes
    /// (on the first store of a new image), `active` when `set_active`, and
    /// `store_id` off the importing list.
    async fn import_stored(
        &self,
        job: &ImportJob,
        store_id: &str,
        stored: &StoredData,
        set_active: bool,
    ) -> Result<Image, ImageError>;

    /// Records what the import plugins changed on the image (its formats, added
    /// properties) before its data is written. `Conflict` when the lock is no
    /// longer the job's or the image is gone.
    async fn import_amend(
        &self,
        job: &ImportJob,
        changes: &super::plugins::ImageChanges,
    ) -> Result<(), ImageError>;

    /// Moves `store_id` from the importing list to the failed list.
    async fn import_store_failed(&self, job: &ImportJob, store_id: &str) -> Result<(), ImageError>;

    /// Ends the import: the task's outcome, the lock and the lease released, the
    /// progress list emptied. On failure an image that is not active goes back to
    /// `queued` without locations or staged data (the caller removed their data
    /// first). Answers the task as it ended.
    async fn finish_import(
        &self,
        job: &ImportJob,
        outcome: ImportOutcome,
    ) -> Result<Task, ImageError>;

    /// The task's progress message ("Copied N MiB").
    async fn import_progress(&self, job: &ImportJob, message: &str);

    /// Moves a task that is not an image import (a legacy `import` task): to
    /// `processing` from `pending`, or to its end, which sets its expiry.
    async fn move_task(
        &self,
        task_id: &str,
        to: crate::TaskStatus,
        message: &str,
        result: Option<serde_json::Value>,
    ) -> Result<(), ImageError>;
}
