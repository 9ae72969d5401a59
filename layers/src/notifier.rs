//! The notifier layer: after each outcome, an event in Glance's notification format
//! (`image.create`, `image.update`, `image.upload`, ...) goes to an [`EventSink`].
//! Publishing never blocks or fails a request: sinks queue and drop.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::image::{Image, Member};
use crate::middleware::{Middleware, MiddlewareLayer, Next};
use crate::{ImageError, ImageRequest, ImageResponse, ImageService, Operation};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use futures_util::Stream;
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Priority {
    Info,
    Warn,
    Error,
}

/// One notification, with oslo.messaging's envelope fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub message_id: String,
    pub publisher_id: String,
    pub event_type: String,
    pub priority: Priority,
    pub payload: Value,
    /// `YYYY-MM-DD hh:mm:ss.ffffff`, as oslo.messaging writes it.
    pub timestamp: String,
}

/// Where notifications go. `publish` must return at once.
pub trait EventSink: Send + Sync + 'static {
    fn publish(&self, notification: Notification);
}

/// Emits Glance's notifications for what passes through.
pub struct Notifier {
    emitter: Emitter,
}

/// The notifier layer.
pub type NotifierLayer = MiddlewareLayer<Notifier>;

impl MiddlewareLayer<Notifier> {
    /// `publisher_id` is Glance's `default_publisher_id`, `image.localhost` by default.
    pub fn new(sink: Arc<dyn EventSink>, publisher_id: &str) -> Self {
        MiddlewareLayer::from_middleware(Notifier {
            emitter: Emitter {
                sink,
                publisher_id: publisher_id.into(),
            },
        })
    }
}

#[derive(Clone)]
struct Emitter {
    sink: Arc<dyn EventSink>,
    publisher_id: Arc<str>,
}

impl Notification {
    /// A notification sent now, with a fresh message id.
    pub fn now(publisher_id: &str, event_type: &str, priority: Priority, payload: Value) -> Self {
        Notification {
            message_id: uuid::Uuid::new_v4().to_string(),
            publisher_id: publisher_id.to_string(),
            event_type: event_type.to_string(),
            priority,
            payload,
            timestamp: Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        }
    }
}

impl Emitter {
    fn emit(&self, event_type: &str, priority: Priority, payload: Value) {
        self.sink.publish(Notification::now(
            &self.publisher_id,
            event_type,
            priority,
            payload,
        ));
    }
}

/// Glance's `format_image_notification`.
pub fn image_payload(image: &Image) -> Value {
    json!({
        "id": image.id,
        "name": image.name,
        "status": image.status.as_str(),
        "created_at": isotime(image.created_at),
        "updated_at": isotime(image.updated_at),
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "protected": image.protected,
        "checksum": image.checksum,
        "owner": image.owner,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "is_public": image.visibility == crate::Visibility::Public,
        "visibility": image.visibility.as_str(),
        // The staging location is the service's own business (see `render`).
        "properties": image
            .properties
            .iter()
            .filter(|(k, _)| k.as_str() != crate::import::records::STAGED_AT)
            .collect::<std::collections::BTreeMap<_, _>>(),
        "tags": image.tags,
        "deleted": false,
        "deleted_at": null,
    })
}

/// Glance's `format_image_member_notification`.
pub fn member_payload(member: &Member, deleted: bool) -> Value {
    json!({
        "image_id": member.image_id,
        "member_id": member.member_id,
        "status": member.status.as_str(),
        "created_at": isotime(member.created_at),
        "updated_at": isotime(member.updated_at),
        "deleted": deleted,
        "deleted_at": if deleted { Some(isotime(Utc::now())) } else { None },
    })
}

fn isotime(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn upload_payload(image: &Image) -> Value {
    let mut p = image_payload(image);
    p["os_glance_importing_to_stores"] = json!([]);
    p["os_glance_failed_import"] = json!([]);
    p
}

impl Middleware for Notifier {
    async fn call<S: ImageService>(
        &self,
        mut req: ImageRequest,
        next: Next<S>,
    ) -> Result<ImageResponse, ImageError> {
        let emitter = self.emitter.clone();
        enum Event {
            Image(&'static str),
            Member(&'static str),
            Upload,
            Send {
                receiver_project: Option<String>,
                receiver_user: Option<String>,
            },
            None,
        }
        let event = match &req.op {
            Operation::Create(_) => Event::Image("image.create"),
            Operation::Update { .. }
            | Operation::AddTag { .. }
            | Operation::DeleteTag { .. }
            | Operation::Deactivate { .. }
            | Operation::Reactivate { .. } => Event::Image("image.update"),
            Operation::Delete { .. } => Event::Image("image.delete"),
            Operation::AddMember { .. } => Event::Member("image.member.create"),
            Operation::UpdateMember { .. } => Event::Member("image.member.update"),
            Operation::DeleteMember { .. } => Event::Member("image.member.delete"),
            Operation::Upload { .. } => Event::Upload,
            Operation::Download { .. } => Event::Send {
                receiver_project: req.ctx.project_id().map(str::to_string),
                receiver_user: req.ctx.identity.as_ref().and_then(|i| i.user_id.clone()),
            },
            _ => Event::None,
        };
        // image.prepare carries the image as it was before the data came, as
        // the layers below loaded it: sent when the data starts to flow, or
        // once the upload is refused if it never did.
        let prepare = match &mut req.op {
            Operation::Upload { id, data, .. } => {
                let prepare = Prepare::new(emitter.clone(), req.ctx.loaded.clone(), id);
                let on_first = prepare.clone();
                let taken = std::mem::replace(
                    data,
                    crate::ImageData::new(futures_util::stream::empty(), None),
                );
                *data = taken.map_stream(|inner| FirstPoll {
                    inner,
                    on_first: Some(Box::new(move || on_first.send())),
                });
                Some(prepare)
            }
            _ => None,
        };
        let metadef = match &req.op {
            Operation::Metadef(op) => Some(crate::metadef_notify::MetadefEvent::of(op)),
            _ => None,
        };
        let result = next.run(req).await;
        if let (Some(event), Ok(ImageResponse::Metadef(resp))) = (&metadef, &result) {
            for (kind, payload) in event.notifications(resp) {
                emitter.emit(&kind, Priority::Info, payload);
            }
        }
        if let Some(prepare) = prepare {
            prepare.send();
        }
        match (&event, &result) {
            (Event::Image(kind), Ok(ImageResponse::Image(image))) => {
                let mut payload = image_payload(image);
                if *kind == "image.delete" {
                    payload["deleted"] = json!(true);
                    payload["deleted_at"] =
                        json!(isotime(image.deleted_at.unwrap_or_else(Utc::now)));
                }
                emitter.emit(kind, Priority::Info, payload);
            }
            (Event::Member(kind), Ok(ImageResponse::Member(member))) => {
                emitter.emit(
                    kind,
                    Priority::Info,
                    member_payload(member, *kind == "image.member.delete"),
                );
            }
            (Event::Upload, Ok(ImageResponse::Image(image))) => {
                emitter.emit("image.upload", Priority::Info, upload_payload(image));
                emitter.emit("image.activate", Priority::Info, image_payload(image));
                emitter.emit("image.update", Priority::Info, image_payload(image));
            }
            (Event::Upload, Err(e))
                if !matches!(
                    e,
                    ImageError::NotFound(_)
                        | ImageError::NotAuthenticated(_)
                        | ImageError::Forbidden(_)
                ) =>
            {
                emitter.emit("image.upload", Priority::Error, json!(e.to_string()));
            }
            _ => {}
        }
        match (event, result) {
            (
                Event::Send {
                    receiver_project,
                    receiver_user,
                },
                Ok(ImageResponse::Data(mut download)),
            ) => {
                let expected = download.length;
                let owner = download.image.owner.clone();
                let image_id = download.image.id.clone();
                let on_end = move |sent: u64| {
                    let priority = if sent == expected {
                        Priority::Info
                    } else {
                        Priority::Error
                    };
                    emitter.emit(
                        "image.send",
                        priority,
                        json!({
                            "bytes_sent": sent,
                            "image_id": image_id,
                            "owner_id": owner,
                            "receiver_tenant_id": receiver_project,
                            "receiver_user_id": receiver_user,
                        }),
                    );
                };
                download.data = Box::pin(CountingStream {
                    inner: download.data,
                    sent: 0,
                    on_end: Some(Box::new(on_end)),
                });
                Ok(ImageResponse::Data(download))
            }
            (_, result) => result,
        }
    }
}

/// Sends `image.prepare` once per upload, with the image as it was loaded.
#[derive(Clone)]
struct Prepare {
    emitter: Emitter,
    loaded: crate::context::LoadedImage,
    image_id: Arc<str>,
    sent: Arc<std::sync::atomic::AtomicBool>,
}

impl Prepare {
    fn new(emitter: Emitter, loaded: crate::context::LoadedImage, image_id: &str) -> Self {
        Prepare {
            emitter,
            loaded,
            image_id: image_id.into(),
            sent: Arc::default(),
        }
    }

    /// Nothing when no layer loaded the image (the caller may not see it).
    fn send(&self) {
        let Some(image) = self.loaded.get(&self.image_id) else {
            return;
        };
        if !self.sent.swap(true, std::sync::atomic::Ordering::AcqRel) {
            self.emitter
                .emit("image.prepare", Priority::Info, upload_payload(&image));
        }
    }
}

/// Runs `on_first` when the stream is first polled: when an upload's data starts
/// to flow into its store.
struct FirstPoll {
    inner: crate::DataStream,
    on_first: Option<Box<dyn FnOnce() + Send>>,
}

impl Stream for FirstPoll {
    type Item = Result<Bytes, ImageError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.on_first.take() {
            first();
        }
        this.inner.as_mut().poll_next(cx)
    }
}

/// Counts the bytes a download sends and reports them once, when the stream ends or
/// is dropped (the client went away).
struct CountingStream {
    inner: crate::DataStream,
    sent: u64,
    on_end: Option<Box<dyn FnOnce(u64) + Send>>,
}

impl Stream for CountingStream {
    type Item = Result<Bytes, ImageError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polled = this.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => this.sent += chunk.len() as u64,
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(f) = this.on_end.take() {
                    f(this.sent)
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for CountingStream {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(self.sent)
        }
    }
}

/// A sink that keeps what it is given, for tests.
#[derive(Default, Clone)]
pub struct MemorySink(Arc<std::sync::Mutex<Vec<Notification>>>);

impl MemorySink {
    pub fn events(&self) -> Vec<Notification> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl EventSink for MemorySink {
    fn publish(&self, n: Notification) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ImageData, RequestContext};
    use tower::{Layer, ServiceExt};

    fn core() -> impl ImageService {
        tower::service_fn(|req: ImageRequest| async move {
            let id = req.op.image_id().unwrap_or("new").to_string();
            let mut image = Image::new(id, Utc::now());
            if matches!(req.op, Operation::Delete { .. }) {
                image.deleted_at = Some(Utc::now());
            }
            if let Operation::Upload { .. } = req.op {
                // As the core does: the record read before the data came stays
                // in the request.
                req.ctx.loaded.keep(image.clone());
                image.status = crate::ImageStatus::Active;
            }
            Ok(ImageResponse::image(image))
        })
    }

    async fn events_of(op: Operation) -> Vec<Notification> {
        let sink = MemorySink::default();
        let svc = NotifierLayer::new(Arc::new(sink.clone()), "image.localhost").layer(core());
        svc.oneshot(ImageRequest::new(RequestContext::default(), op))
            .await
            .unwrap();
        sink.events()
    }

    #[tokio::test]
    async fn create_and_delete_carry_glance_payloads() {
        let created = events_of(Operation::Create(Default::default())).await;
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].event_type, "image.create");
        assert_eq!(created[0].publisher_id, "image.localhost");
        for key in [
            "id",
            "name",
            "status",
            "checksum",
            "is_public",
            "properties",
            "tags",
            "deleted",
        ] {
            assert!(created[0].payload.get(key).is_some(), "{key}");
        }
        let deleted = events_of(Operation::Delete { id: "a".into() }).await;
        assert_eq!(deleted[0].event_type, "image.delete");
        assert_eq!(deleted[0].payload["deleted"], json!(true));
        assert!(deleted[0].payload["deleted_at"].is_string());
    }

    #[tokio::test]
    async fn an_upload_prepares_uploads_and_activates() {
        let data = ImageData::new(futures_util::stream::empty(), Some(0));
        let kinds: Vec<_> = events_of(Operation::Upload {
            id: "a".into(),
            data,
            store: None,
        })
        .await
        .into_iter()
        .map(|n| n.event_type)
        .collect();
        assert_eq!(
            kinds,
            [
                "image.prepare",
                "image.upload",
                "image.activate",
                "image.update"
            ]
        );
    }

    #[tokio::test]
    async fn prepare_goes_out_when_the_data_starts_to_flow() {
        use futures_util::StreamExt;
        let sink = MemorySink::default();
        let seen = sink.clone();
        // A core that loads the image, then reads the data and looks at what was
        // published by then, as a long upload would be seen from outside.
        let core = tower::service_fn(move |req: ImageRequest| {
            let seen = seen.clone();
            async move {
                let Operation::Upload { id, mut data, .. } = req.op else {
                    unreachable!()
                };
                req.ctx.loaded.keep(Image::new(id.clone(), Utc::now()));
                assert!(seen.events().is_empty(), "nothing before the data");
                while data.stream.next().await.is_some() {}
                let kinds: Vec<String> = seen.events().into_iter().map(|n| n.event_type).collect();
                assert_eq!(kinds, ["image.prepare"], "prepare while the data flows");
                Ok(ImageResponse::image(Image::new(id, Utc::now())))
            }
        });
        let svc = NotifierLayer::new(Arc::new(sink.clone()), "image.localhost").layer(core);
        let data = ImageData::new(
            futures_util::stream::iter([Ok(Bytes::from_static(b"abc"))]),
            Some(3),
        );
        let op = Operation::Upload {
            id: "a".into(),
            data,
            store: None,
        };
        svc.oneshot(ImageRequest::new(RequestContext::default(), op))
            .await
            .unwrap();
        let kinds: Vec<String> = sink.events().into_iter().map(|n| n.event_type).collect();
        assert_eq!(kinds.iter().filter(|k| *k == "image.prepare").count(), 1);
    }
}
