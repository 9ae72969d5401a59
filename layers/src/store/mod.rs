//! What the location layer needs from a storage backend: the [`Store`] contract.
//! The server's backends (file, S3) live in its `src/store/`; [`MemoryStore`] lives
//! here, so that layers and their tests can run without a disk.
//!
//! # Testing your own store
//!
//! With the `testing` feature, `store::conformance` is the suite every store of the
//! server passes. Run it against yours from a test of your crate:
//!
//! ```toml
//! [dev-dependencies]
//! glance-layers = { version = "0.1", features = ["testing"] }
//! ```
//!
//! ```no_run
//! # #[cfg(feature = "testing")]
//! # async fn test() {
//! use std::sync::Arc;
//! use glance_layers::store::{MemoryStore, conformance};
//!
//! // In a `#[tokio::test]`; build your store instead of this one.
//! let store = Arc::new(MemoryStore::default());
//! conformance::run_all(store, conformance::Options::default()).await;
//! # }
//! ```
//!
//! Each property is also a function of its own (`conformance::round_trip`, ...),
//! and a failure panics with the property's name. What only your backend can show
//! (its temporary files are gone, say) stays in your own tests.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{DataStream, ImageError};

#[cfg(feature = "testing")]
pub mod conformance;
mod memory;

pub use memory::MemoryStore;

/// A backend's own error, kept as the cause of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Failures of a store, as callers branch on them. Backend failures keep the
/// backend's error as their [`source`](std::error::Error::source), so a log can
/// say which disk or which S3 request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No object at this URL, or the URL is not one of the store's.
    #[error("no data at {0}")]
    NotFound(String),
    /// The disk, or a quota the backend enforces, is full.
    // The cause is in the message as well as in `source`, as object_store's
    // errors do, so that a log line of the error alone names it.
    #[error("store {store} is full: {source}")]
    Full {
        store: String,
        #[source]
        source: BoxError,
    },
    #[error("the store does not support {0}")]
    NotSupported(&'static str),
    /// The data stream handed to `put` failed; the store removed what it wrote.
    #[error(transparent)]
    Data(ImageError),
    /// The backend failed (I/O, network, refused credentials); `source` says how.
    #[error("store {store}: {source}")]
    Failed {
        store: String,
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// A failure of `store`, caused by `source`.
    pub fn failed(store: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Failed {
            store: store.into(),
            source: source.into(),
        }
    }

    /// `store` is full; `source` is how the backend said so.
    pub fn full(store: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Full {
            store: store.into(),
            source: source.into(),
        }
    }

    /// An I/O failure of `store`: [`StoreError::Full`] when the disk or the user's
    /// disk quota is full (ENOSPC, EDQUOT), else [`StoreError::Failed`]. A missing
    /// file is left to the caller, which knows the URL it stands for.
    pub fn io(store: impl Into<String>, e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                StoreError::full(store, e)
            }
            _ => StoreError::failed(store, e),
        }
    }
}

/// The one place store failures become domain errors.
impl From<StoreError> for ImageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => ImageError::NotFound("Image data not found.".into()),
            e @ StoreError::Full { .. } => {
                tracing::warn!(error = %e, "store full");
                ImageError::StoreFull("Image storage media is full.".into())
            }
            StoreError::NotSupported(what) => {
                ImageError::Unsupported(format!("The store does not support {what}."))
            }
            StoreError::Data(e) => e,
            e @ StoreError::Failed { .. } => ImageError::unavailable(
                "The image store is not available.",
                Some(std::sync::Arc::new(e) as crate::ErrorSource),
            ),
        }
    }
}

/// What a store can do, after glance_store's capability bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Ranged reads (READ_RANDOM).
    pub random_read: bool,
    /// Adding images (WRITE_ACCESS).
    pub write: bool,
}

/// Data safely written by [`Store::put`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The location URL, as Glance writes it (`file:///…`, `s3://…`).
    pub url: String,
    pub size: u64,
}

/// Where a store notes what an unfinished `put` leaves behind that cannot be found
/// again from the upload's ids alone (an S3 multipart upload id, say), so that it
/// can be removed even if this process dies. The note is durable once `note`
/// returns; the store must call it before creating what it names.
#[async_trait]
pub trait PutJournal: Send + Sync {
    async fn note(&self, partial: &str) -> Result<(), StoreError>;
}

/// A journal that keeps nothing: for data no one needs to recover.
pub struct NoJournal;

#[async_trait]
impl PutJournal for NoJournal {
    async fn note(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The upload a [`Store::put`] writes: temporary data is named after `upload_id`, so
/// that recovery can tell whose it is.
pub struct Upload<'a> {
    pub image_id: &'a str,
    pub upload_id: &'a str,
    pub journal: &'a dyn PutJournal,
}

impl<'a> Upload<'a> {
    /// An upload no lease tracks (tests, tools).
    pub fn untracked(image_id: &'a str, upload_id: &'a str) -> Self {
        Upload {
            image_id,
            upload_id,
            journal: &NoJournal,
        }
    }
}

/// A storage backend. Implementations must never leave partial data under a final
/// name: a failed or cancelled `put` removes what it wrote, or has noted in the
/// upload's journal what [`Store::discard`] must remove.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Glance's store type name (`file`, `s3`, ...).
    fn kind(&self) -> &'static str;

    fn capabilities(&self) -> Capabilities;

    /// Whether `url` points into this store.
    fn owns(&self, url: &str) -> bool;

    /// Writes the whole stream, or nothing.
    async fn put(&self, upload: &Upload<'_>, data: DataStream) -> Result<StoredObject, StoreError>;

    /// Removes what an unfinished `put` of `upload_id` may have left: its temporary
    /// data, what it noted (`partial`), and, with `with_final`, an object it may
    /// have completed under the image's final name before the process died (the
    /// caller knows no committed location uses it and no other upload of the image
    /// runs). Data that is already gone is not an error.
    async fn discard(
        &self,
        image_id: &str,
        upload_id: &str,
        partial: Option<&str>,
        with_final: bool,
    ) -> Result<(), StoreError>;

    /// `(image_id, upload_id)` of the temporary data in the store, so that data no
    /// lease accounts for can be found and discarded. Stores whose temporary data
    /// is always noted in a journal return nothing.
    async fn temporary(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(Vec::new())
    }

    /// Streams the object, or the `range` of it.
    async fn get(&self, url: &str, range: Option<Range<u64>>) -> Result<DataStream, StoreError>;

    async fn delete(&self, url: &str) -> Result<(), StoreError>;

    async fn size(&self, url: &str) -> Result<u64, StoreError>;

    /// Whether the store answers now, for the detailed health check. The
    /// default trusts it; stores behind a network or a mount check.
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Settings shown to admins by `/v2/info/stores/detail`.
    fn properties(&self) -> serde_json::Value {
        serde_json::Value::Object(Default::default())
    }
}

/// One enabled store and how it is presented.
#[derive(Clone)]
pub struct StoreEntry {
    pub store: Arc<dyn Store>,
    /// Locations in heavier stores are read first.
    pub weight: i64,
    pub description: Option<String>,
}

/// The enabled stores, by id, with the default one (Glance's `enabled_backends`).
#[derive(Clone)]
pub struct StoreSet {
    default: String,
    stores: BTreeMap<String, StoreEntry>,
}

impl StoreSet {
    /// A set of one store, which is the default.
    pub fn single(id: impl Into<String>, store: Arc<dyn Store>) -> Self {
        let id = id.into();
        StoreSet {
            default: id.clone(),
            stores: BTreeMap::from([(
                id,
                StoreEntry {
                    store,
                    weight: 0,
                    description: None,
                },
            )]),
        }
    }

    /// Several stores; `default` must be one of them.
    pub fn new(
        default: impl Into<String>,
        stores: Vec<(String, StoreEntry)>,
    ) -> Result<Self, String> {
        let default = default.into();
        let mut map = BTreeMap::new();
        for (id, entry) in stores {
            if map.insert(id.clone(), entry).is_some() {
                return Err(format!("store id {id:?} is enabled twice"));
            }
        }
        if !map.contains_key(&default) {
            return Err(format!(
                "default_backend {default:?} is not among the enabled backends"
            ));
        }
        Ok(StoreSet {
            default,
            stores: map,
        })
    }

    pub fn default_id(&self) -> &str {
        &self.default
    }

    /// The same set with each store replaced by `wrap(id, store)`: to put
    /// instrumentation or a cache around every store at once.
    pub fn map_stores(self, mut wrap: impl FnMut(&str, Arc<dyn Store>) -> Arc<dyn Store>) -> Self {
        let stores = self
            .stores
            .into_iter()
            .map(|(id, entry)| {
                let store = wrap(&id, entry.store);
                (id, StoreEntry { store, ..entry })
            })
            .collect();
        StoreSet {
            default: self.default,
            stores,
        }
    }

    pub fn default_store(&self) -> &Arc<dyn Store> {
        &self.stores[&self.default].store
    }

    pub fn get(&self, id: &str) -> Option<&Arc<dyn Store>> {
        self.stores.get(id).map(|e| &e.store)
    }

    pub fn weight(&self, id: &str) -> i64 {
        self.stores.get(id).map(|e| e.weight).unwrap_or(0)
    }

    pub fn description(&self, id: &str) -> Option<&str> {
        self.stores.get(id).and_then(|e| e.description.as_deref())
    }

    /// The store holding `url`: the one named in the location metadata, else the
    /// first that owns the URL.
    pub fn for_location(&self, url: &str, store_id: Option<&str>) -> Option<&Arc<dyn Store>> {
        store_id
            .and_then(|id| self.stores.get(id))
            .map(|e| &e.store)
            .filter(|s| s.owns(url))
            .or_else(|| self.stores.values().map(|e| &e.store).find(|s| s.owns(url)))
    }

    /// Like [`Self::for_location`], with the store's id.
    pub fn owner_of(&self, url: &str, store_id: Option<&str>) -> Option<(&str, &Arc<dyn Store>)> {
        store_id
            .and_then(|id| self.stores.get_key_value(id))
            .filter(|(_, e)| e.store.owns(url))
            .or_else(|| self.stores.iter().find(|(_, e)| e.store.owns(url)))
            .map(|(id, e)| (id.as_str(), &e.store))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<dyn Store>)> {
        self.stores.iter().map(|(k, v)| (k.as_str(), &v.store))
    }

    pub fn ids(&self) -> Vec<String> {
        self.stores.keys().cloned().collect()
    }
}

impl std::fmt::Debug for StoreSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSet")
            .field("default", &self.default)
            .field("stores", &self.stores.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;

    use super::*;

    #[test]
    fn a_full_disk_or_quota_is_full_and_keeps_its_cause() {
        for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
            let e = StoreError::io("file", io::Error::new(kind, "no room"));
            assert!(matches!(e, StoreError::Full { .. }), "{e:?}");
            assert_eq!(e.to_string(), "store file is full: no room");
            let cause = e.source().expect("the cause is kept");
            let cause = cause.downcast_ref::<io::Error>().expect("as an io::Error");
            assert_eq!(cause.kind(), kind);
            assert!(matches!(ImageError::from(e), ImageError::StoreFull(_)));
        }
    }

    #[test]
    fn other_io_failures_are_failed_and_unavailable() {
        let e = StoreError::io(
            "file",
            io::Error::new(io::ErrorKind::PermissionDenied, "read-only"),
        );
        assert!(matches!(e, StoreError::Failed { .. }), "{e:?}");
        assert_eq!(e.to_string(), "store file: read-only");
        assert!(e.source().unwrap().downcast_ref::<io::Error>().is_some());
        let image_error = ImageError::from(e);
        assert!(matches!(image_error, ImageError::Unavailable { .. }));
        let cause = image_error.source().expect("the store error is kept");
        assert!(cause.to_string().starts_with("store file"));
    }
}
