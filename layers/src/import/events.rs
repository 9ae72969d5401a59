//! The notifications of an import, as Glance sends them: `task.*` as the task
//! moves (never with its input), and `image.prepare`, `image.upload` and
//! `image.activate` for each store written, with the store as `backend`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::notifier::{EventSink, Notification, Priority, image_payload};
use crate::{Image, Task, TaskStatus};

/// Where an import's events go; `None` publishes nothing.
#[derive(Clone, Default)]
pub struct ImportEvents(Option<(Arc<dyn EventSink>, Arc<str>)>);

impl ImportEvents {
    pub fn new(sink: Arc<dyn EventSink>, publisher_id: &str) -> Self {
        ImportEvents(Some((sink, publisher_id.into())))
    }

    fn emit(&self, event_type: &str, priority: Priority, payload: Value) {
        if let Some((sink, publisher)) = &self.0 {
            sink.publish(Notification::now(publisher, event_type, priority, payload));
        }
    }

    /// `task.<event>` for the task, now in `status` with `message`.
    pub(super) fn task(&self, event: &str, task: &Task, status: TaskStatus, message: &str) {
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        };
        let priority = if status == TaskStatus::Failure {
            Priority::Error
        } else {
            Priority::Info
        };
        self.emit(
            &format!("task.{event}"),
            priority,
            json!({
                "id": task.id,
                "type": task.kind,
                "status": status.as_str(),
                "result": task.result,
                "owner": task.owner,
                "message": message,
                "expires_at": time(task.expires_at),
                "created_at": time(Some(task.created_at)),
                "updated_at": time(Some(chrono::Utc::now())),
                "deleted": false,
                "deleted_at": null,
            }),
        );
    }

    /// `image.<event>` for data going to (or landed in) `backend`.
    pub(super) fn image(&self, event: &str, image: &Image, backend: &str) {
        let mut payload = image_payload(image);
        let list = |key: &str| -> Vec<&str> {
            image
                .properties
                .get(key)
                .map(|v| v.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default()
        };
        payload["os_glance_importing_to_stores"] = json!(list(super::records::IMPORTING_TO_STORES));
        payload["os_glance_failed_import"] = json!(list(super::records::FAILED_IMPORT));
        payload["backend"] = json!(backend);
        self.emit(&format!("image.{event}"), Priority::Info, payload);
    }
}
