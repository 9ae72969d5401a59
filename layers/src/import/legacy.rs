//! The legacy `import` task of `POST /v2/tasks` (deprecated in Glance, still
//! served): it creates an image from `image_properties` and uploads into it
//! what `import_from` serves, in the background. Its URI passes the same filter
//! as web-download's.

use std::sync::Arc;

use super::Settings;
use crate::middleware::Next;
use crate::{
    ImageData, ImageError, ImageRequest, ImageResponse, NewTask, Operation, RequestContext,
    TaskStatus,
};

/// Checks the source, records the task, and starts it.
pub(super) async fn create(
    settings: Arc<Settings>,
    ctx: RequestContext,
    new: NewTask,
    next: Next,
) -> Result<ImageResponse, ImageError> {
    let uri = new
        .input
        .get("import_from")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let web = settings.web.clone().ok_or_else(|| {
        ImageError::Unsupported("Import tasks are not supported by this server.".into())
    })?;
    if let Err(why) = web.check(&uri).await {
        tracing::info!(%uri, %why, "legacy import task refused");
        return Err(ImageError::Invalid(format!(
            "URI for legacy import task does not pass filtering: {uri}"
        )));
    }
    let image = new.image.clone().unwrap_or_default();
    let created = next
        .clone()
        .run(ImageRequest::new(ctx.clone(), Operation::CreateTask(new)))
        .await?;
    let ImageResponse::Task(task) = &created else {
        return Err(ImageError::internal(
            "create task answered with something else",
        ));
    };
    let task_id = task.id.clone();
    settings.runner.clone().spawn(async move {
        let records = settings.records.clone();
        if let Err(e) = records
            .move_task(&task_id, TaskStatus::Processing, "", None)
            .await
        {
            tracing::warn!(task = %task_id, error = %e, "legacy import task could not start");
            return;
        }
        let ended = match run(&settings, ctx, image, &uri, next).await {
            Ok(image_id) => {
                let result = serde_json::json!({"image_id": image_id});
                records
                    .move_task(&task_id, TaskStatus::Success, "", Some(result))
                    .await
            }
            Err(e) => {
                // Glance's text for a failed import task.
                let message = format!("Error: {e}");
                records
                    .move_task(&task_id, TaskStatus::Failure, &message, None)
                    .await
            }
        };
        if let Err(e) = ended {
            tracing::warn!(task = %task_id, error = %e, "could not record the end of a legacy import task");
        }
    });
    Ok(created)
}

/// Creates the image and uploads the download into it (through the location
/// layer, as `PUT /file` does); the image's id.
async fn run(
    settings: &Settings,
    ctx: RequestContext,
    image: crate::NewImage,
    uri: &str,
    next: Next,
) -> Result<String, ImageError> {
    let image = next
        .clone()
        .run(ImageRequest::new(ctx.clone(), Operation::Create(image)))
        .await?
        .into_image()?;
    let web = settings
        .web
        .as_ref()
        .ok_or_else(|| ImageError::Unsupported("web-download is not enabled.".into()))?;
    let data: ImageData = web.open(uri, &[], settings.size_cap).await?;
    next.run(ImageRequest::new(
        ctx,
        Operation::Upload {
            id: image.id.clone(),
            data,
            store: None,
        },
    ))
    .await?;
    Ok(image.id)
}
