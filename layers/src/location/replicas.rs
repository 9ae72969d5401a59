//! Deletes: an image's data goes after its record, and one store's replica can
//! be dropped while others remain.

use super::store_of;
use crate::middleware::Next;
use crate::store::StoreSet;
use crate::uploads::UploadRecords;
use crate::{ImageError, ImageRequest, ImageResponse, ImageService, Operation, RequestContext};

/// Deletes the image, then the data of each of its locations. Data that cannot be
/// removed is logged and left: the record is gone either way.
pub(super) async fn delete<S: ImageService>(
    next: Next<S>,
    stores: &StoreSet,
    req: ImageRequest,
) -> Result<ImageResponse, ImageError> {
    let deleted = next.run(req).await?.into_image()?;
    for loc in &deleted.locations {
        // A read-only store's data (an http location) is not ours to delete.
        if let Some(store) = stores.for_location(&loc.url, store_of(loc))
            && store.capabilities().write
            && let Err(e) = store.delete(&loc.url).await
        {
            tracing::warn!(image = %deleted.id, url = %loc.url, error = %e, "could not delete image data");
        }
    }
    Ok(ImageResponse::image(deleted))
}

/// Removes the replica of an image's data held in one store, keeping the others.
pub(super) async fn delete_from_store<S: ImageService>(
    next: Next<S>,
    records: &dyn UploadRecords,
    stores: &StoreSet,
    ctx: RequestContext,
    id: String,
    store_id: String,
) -> Result<ImageResponse, ImageError> {
    let loaded = ctx.loaded.clone();
    let image = next
        .run(ImageRequest::new(ctx, Operation::Get { id: id.clone() }))
        .await?
        .into_image()?;
    let store = stores
        .get(&store_id)
        .ok_or_else(|| ImageError::Conflict(format!("Unknown store {store_id}.")))?
        .clone();
    if image.status != crate::ImageStatus::Active {
        return Err(ImageError::Conflict(
            "It's not allowed to remove image data from store if image status is not 'active'"
                .into(),
        ));
    }
    let loc = image
        .locations
        .iter()
        .find(|l| store_of(l) == Some(store_id.as_str()))
        .ok_or_else(|| {
            ImageError::NotFound(format!(
                "Image {id} data is not present in store {store_id}"
            ))
        })?
        .clone();
    if image.locations.len() == 1 {
        return Err(ImageError::Forbidden(
            "Cannot delete image data from the only store containing it. Consider deleting the image instead if you want to remove all image data".into(),
        ));
    }
    let updated = records.remove_location(&image, &loc.url).await?;
    loaded.replace(updated.clone());
    if store.capabilities().write
        && let Err(e) = store.delete(&loc.url).await
    {
        tracing::warn!(url = %loc.url, error = %e, "could not delete a removed location's data");
    }
    Ok(ImageResponse::image(updated))
}
