//! What the quota layer counts against: the limits (fixed, or per project from a
//! [`LimitSource`]), the usage it reads ([`UsageSource`]), and what a passed limit
//! says to the client.

use async_trait::async_trait;

use crate::ImageError;

/// Glance's default `image_size_cap`: 1 TiB.
pub const DEFAULT_IMAGE_SIZE_CAP: u64 = 1 << 40;

pub(super) const MIB: u64 = 1 << 20;

/// The limits that are the same for every project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Largest single image, in bytes.
    pub image_size_cap: u64,
    /// Glance's legacy `user_storage_quota`: bytes a project may store.
    pub user_storage_quota: Option<u64>,
}

impl Default for QuotaLimits {
    fn default() -> Self {
        QuotaLimits {
            image_size_cap: DEFAULT_IMAGE_SIZE_CAP,
            user_storage_quota: None,
        }
    }
}

/// One project's limits under Glance's resource names. `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectLimits {
    /// Images a project may own.
    pub image_count_total: Option<u64>,
    /// Bytes a project may store.
    pub image_size_total: Option<u64>,
    /// Bytes a project may have staged.
    pub image_stage_total: Option<u64>,
    /// Images of the project receiving data at once.
    pub image_count_uploading: Option<u64>,
}

impl ProjectLimits {
    pub(super) fn is_unlimited(&self) -> bool {
        *self == ProjectLimits::default()
    }
}

/// Where a project's limits come from: fixed configuration, or Keystone's
/// unified limits.
#[async_trait]
pub trait LimitSource: Send + Sync + 'static {
    async fn limits(&self, project_id: &str) -> Result<ProjectLimits, ImageError>;

    /// Whether `/v2/info/usage` reports anything (Glance answers `{}` without
    /// unified limits; we also report limits set in configuration).
    fn reports_usage(&self) -> bool {
        true
    }
}

/// The same limits for every project, from configuration.
#[async_trait]
impl LimitSource for ProjectLimits {
    async fn limits(&self, _: &str) -> Result<ProjectLimits, ImageError> {
        Ok(self.clone())
    }

    fn reports_usage(&self) -> bool {
        !self.is_unlimited()
    }
}

/// A project's current consumption, as the database has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub image_count: u64,
    /// Bytes of the project's images.
    pub image_size_total: u64,
    /// Bytes staged for import.
    pub image_stage_total: u64,
    /// Ids of the images with data on the way in (`saving`, `uploading`, `importing`).
    pub uploading: Vec<String>,
}

/// Where the quota layer reads a project's usage.
#[async_trait]
pub trait UsageSource: Send + Sync + 'static {
    async fn usage(&self, project_id: &str) -> Result<Usage, ImageError>;
}

/// oslo.limit's message, which Glance passes through to the client.
pub(super) fn over_limit(
    project: &str,
    resource: &str,
    limit: u64,
    used: u64,
    delta: u64,
) -> ImageError {
    ImageError::quota_exceeded(
        resource,
        format!(
            "Project {project} is over a limit for [Resource {resource} is over limit of {limit} due to current usage {used} and delta {delta}]"
        ),
    )
}

pub(super) fn size_cap_error() -> ImageError {
    ImageError::quota_exceeded(
        "image_size_cap",
        "Image exceeds the storage quota: The provided image is too large.",
    )
}
