//! What the location layer asks of the image records while it moves data: the
//! steps of an upload, and forgetting a location whose data it removes. The core
//! implements it; the location layer is handed it, as the policy layer is handed
//! an [`ImageLookup`](crate::policy::ImageLookup). These steps are not
//! [`Operation`](crate::Operation)s: no client asks for them and no other layer
//! has a say in them.
//!
//! An upload runs under a lease: from `begin` (the image goes `saving`) until
//! `finish` (it goes `active`, in the same transaction that releases the lease) or
//! `abort` (back to `queued`). The lease names the node receiving the data, so if
//! that node dies its uploads can be found, their data removed and their images
//! put back in `queued`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Image, ImageError, RequestContext, StoredData};

/// An upload's hold on its image while the data flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadLease {
    /// Also names the upload's temporary data in the store.
    pub id: String,
    pub image_id: String,
    pub store_id: String,
    /// The image as it was when the upload began (`queued`).
    pub image: Arc<Image>,
}

#[async_trait]
pub trait UploadRecords: Send + Sync + 'static {
    /// `queued → saving` under a new lease. `Invalid` when the image lacks its
    /// disk or container format, `Conflict` from any status but `queued`.
    /// `ctx` is the upload request's: its [`LoadedImage`](crate::context::LoadedImage)
    /// spares a read.
    async fn begin(
        &self,
        ctx: &RequestContext,
        image_id: &str,
        store_id: &str,
    ) -> Result<UploadLease, ImageError>;

    /// Records what the store must remove should the upload never finish.
    async fn note_partial(&self, lease: &UploadLease, partial: &str) -> Result<(), ImageError>;

    /// `saving → active` with the data's attributes and location; the lease is
    /// released in the same transaction.
    async fn finish(&self, lease: &UploadLease, stored: &StoredData) -> Result<Image, ImageError>;

    /// Whether the lease is still held, i.e. `finish` has not committed. Asked
    /// before removing data that `finish` may or may not have recorded.
    async fn holds(&self, lease: &UploadLease) -> Result<bool, ImageError>;

    /// `saving → queued`. The lease is released, or kept for recovery to finish
    /// the cleanup when `data_left` (the store could not remove what it wrote).
    /// Either way this node is done with the lease, as after [`Self::forget`].
    async fn abort(&self, lease: &UploadLease, data_left: bool) -> Result<(), ImageError>;

    /// This node stops holding the lease without settling it (the records could
    /// not be reached): recovery takes the upload back and removes its data.
    fn forget(&self, lease: &UploadLease);

    /// Forgets one location of `image` (whose data the caller removes next) and
    /// answers the image without it; `NotFound` if it has no such location.
    async fn remove_location(&self, image: &Image, url: &str) -> Result<Image, ImageError>;

    /// Saves `after`'s locations, status, size, checksum and hash over `before`'s,
    /// if the image is still as `before` left it (same status, not updated
    /// since); `Conflict` when it is not. For the location API and the legacy
    /// `PATCH` of `/locations`; records that cannot do it answer `Unsupported`.
    async fn save_locations(&self, before: &Image, after: &Image) -> Result<Image, ImageError> {
        let _ = (before, after);
        Err(ImageError::Unsupported(
            "These image records cannot change locations.".into(),
        ))
    }
}
