//! `PUT /stage`: the data goes to the staging store, unhashed (the import hashes
//! it on its way to the final stores), under a lease of kind `stage`. Whatever
//! ends the staging early rolls it back as a failed upload is: the data goes,
//! the image returns to `queued`.

use std::sync::Arc;

use super::Settings;
use crate::location::upload::{DataState, LeaseJournal, UploadGuard};
use crate::store::Upload;
use crate::uploads::UploadRecords;
use crate::{ImageData, ImageError, ImageResponse, RequestContext};

pub(super) async fn stage(
    settings: &Settings,
    ctx: &RequestContext,
    id: String,
    data: ImageData,
) -> Result<ImageResponse, ImageError> {
    let records = settings.records.clone();
    let lease = records.begin_stage(ctx, &id).await?;
    let upload_records: Arc<dyn UploadRecords> = records.clone();
    let mut guard = UploadGuard {
        armed: Some((upload_records, lease.clone())),
        state: DataState::NotStored,
        store: settings.staging.clone(),
    };
    let journal = LeaseJournal {
        records: records.as_ref(),
        lease: &lease,
    };
    let target = Upload {
        image_id: &id,
        upload_id: &lease.id,
        journal: &journal,
    };
    let stored = match settings.staging.put(&target, data.stream).await {
        Ok(stored) => stored,
        Err(e) => {
            guard.abort().await;
            return Err(e.into());
        }
    };
    if let Some(expected) = data.expected_size
        && expected != stored.size
    {
        guard.state = DataState::Stored(stored.url.clone());
        guard.abort().await;
        return Err(ImageError::Invalid(format!(
            "Size of uploaded data ({}) does not match the size the request announced ({expected}).",
            stored.size
        )));
    }
    guard.state = DataState::Stored(stored.url.clone());
    match records.finish_stage(&lease, &stored).await {
        Ok(image) => {
            guard.armed = None;
            ctx.loaded.replace(image.clone());
            Ok(ImageResponse::image(image))
        }
        Err(e) => {
            guard.abort().await;
            Err(e)
        }
    }
}
