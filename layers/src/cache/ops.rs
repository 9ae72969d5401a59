//! The cache API's operations, once policy has allowed them: Glance's checks on
//! the image (it must exist; only an active one may be queued), then the cache.

use std::sync::Arc;

use super::{CacheOp, CacheReply, ClearTarget, ImageCache};
use crate::middleware::Next;
use crate::{
    Image, ImageError, ImageRequest, ImageResponse, ImageService, ImageStatus, Operation,
    RequestContext,
};

pub(super) async fn run<S: ImageService>(
    cache: &dyn ImageCache,
    ctx: RequestContext,
    op: CacheOp,
    next: Next<S>,
) -> Result<ImageResponse, ImageError> {
    let reply = match op {
        CacheOp::List => CacheReply::State(cache.state().await?),
        CacheOp::Queue { id } => {
            let image = image(&ctx, &id, next).await?;
            if image.status != ImageStatus::Active {
                return Err(ImageError::Invalid(
                    "Only images with status active can be targeted for queueing".into(),
                ));
            }
            cache.queue(&image).await?;
            CacheReply::Done
        }
        CacheOp::Delete { id } => {
            // Glance lets an entry of an image that is gone be deleted; only when
            // there is neither an entry nor an image is it a 404.
            if !cache.delete(&id).await? {
                image(&ctx, &id, next).await?;
            }
            CacheReply::Done
        }
        CacheOp::Clear(ClearTarget::Invalid) => {
            return Err(ImageError::Invalid(
                "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string."
                    .into(),
            ));
        }
        CacheOp::Clear(target) => {
            cache.clear(target).await?;
            CacheReply::Done
        }
        CacheOp::Nodes { id } => {
            image(&ctx, &id, next).await?;
            CacheReply::Nodes(cache.nodes(&id).await?)
        }
        CacheOp::Clean => {
            cache.clean().await?;
            CacheReply::Done
        }
        CacheOp::Prune => CacheReply::Pruned(cache.prune().await?),
    };
    Ok(ImageResponse::Cache(reply))
}

/// The image, as the policy layer read it or else from below; missing is
/// Glance's "Image %s not found.".
async fn image<S: ImageService>(
    ctx: &RequestContext,
    id: &str,
    next: Next<S>,
) -> Result<Arc<Image>, ImageError> {
    if let Some(image) = ctx.loaded.get(id) {
        return Ok(image);
    }
    let req = ImageRequest::new(ctx.clone(), Operation::Get { id: id.to_string() });
    match next.run(req).await {
        Ok(resp) => Ok(Arc::new(resp.into_image()?)),
        Err(ImageError::NotFound(_)) => Err(not_found(id)),
        Err(e) => Err(e),
    }
}

/// Glance's text for an image the cache API cannot find.
pub fn not_found(id: &str) -> ImageError {
    ImageError::NotFound(format!("Image {id} not found."))
}
