//! The domain contract of the image service and the tower layers that make up its
//! Domain Controller.
//!
//! Glance wraps its image repository in a chain of proxies
//! (`authorization → notifier → policy → quota → location → db`). Here each of those
//! is a [`tower::Layer`] over a [`tower::Service`] of [`ImageRequest`]s, so the chain can
//! be reordered, trimmed or joined by a team's own layer. This crate knows nothing of
//! HTTP or SQL: what a layer needs from the outside (a store, a usage source, an event
//! sink, an authenticator, an image lookup) is a trait defined here and implemented by
//! the server.
//!
//! # Writing your own layer
//!
//! [`from_fn`] turns an `async fn(ImageRequest, Next)` into a layer:
//!
//! ```
//! use glance_layers::{from_fn, ImageRequest, ImageResponse, ImageError, Next, Operation};
//!
//! /// Refuses images named "forbidden", logs everything else.
//! async fn audit(req: ImageRequest, next: Next) -> Result<ImageResponse, ImageError> {
//!     if let Operation::Create(new) = &req.op {
//!         if new.name.as_deref() == Some("forbidden") {
//!             return Err(ImageError::Forbidden("That name is not allowed here.".into()));
//!         }
//!     }
//!     let op = req.op.name();
//!     let result = next.run(req).await;
//!     tracing::info!(op, ok = result.is_ok(), "audit");
//!     result
//! }
//!
//! let layer = from_fn(audit);
//! # let _ = layer;
//! ```
//!
//! A layer with state of its own implements [`Middleware`] (see [`middleware`]);
//! the built-in layers are written that way. [`stack::Stack`] puts them in
//! Glance's order around a core. See `examples/audit_layer.rs` and
//! `examples/rate_limit_layer.rs` in the repository for layers wired into the
//! server.

pub mod auth;
pub mod cache;
pub mod context;
mod data;
mod error;
mod from_fn;
pub mod image;
pub mod import;
pub mod inspect;
pub mod location;
pub mod metadef;
mod metadef_notify;
pub mod middleware;
pub mod notifier;
pub mod observe;
pub mod patch;
pub mod policy;
pub mod protection;
pub mod quota;
pub mod request;
pub mod stack;
pub mod store;
pub mod task;
pub mod uploads;

pub use context::{CallerSlot, Credentials, Identity, RequestContext};
pub use data::{ByteRange, DataStream, ImageData};
pub use error::{ErrorSource, ImageError};
pub use from_fn::{FromFn, FromFnLayer, from_fn};
pub use image::{Image, ImageStatus, Member, MemberStatus, Visibility};
pub use import::{ImportMethod, ImportRequest, ImportTargets};
pub use middleware::{Middleware, MiddlewareLayer, Next};
pub use request::{
    ImageDownload, ImagePage, ImageRequest, ImageResponse, ListQuery, NewImage, Operation,
    StoreInfo, StoredData, UsageEntry,
};
pub use task::{NewTask, Task, TaskQuery, TaskStatus};

/// A boxed, cloneable domain service: what the stack looks like after type erasure.
pub type BoxImageService =
    tower::util::BoxCloneSyncService<ImageRequest, ImageResponse, ImageError>;

/// The future every layer in this crate returns.
pub type BoxFuture<T> = futures_util::future::BoxFuture<'static, T>;

/// Shorthand for a service that can sit anywhere in the domain stack.
pub trait ImageService:
    tower::Service<
        ImageRequest,
        Response = ImageResponse,
        Error = ImageError,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> ImageService for S where
    S: tower::Service<
            ImageRequest,
            Response = ImageResponse,
            Error = ImageError,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}
