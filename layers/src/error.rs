//! The one error type of the domain. Each variant says what went wrong; the API
//! alone decides which HTTP status and which words a client gets for it
//! (`src/api/errors.rs` in the server).

use std::sync::Arc;

/// The cause behind an error, kept for logs and for `Error::source` chains.
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong with a domain operation.
///
/// Messages are meant for clients; causes (`source`) are logged, never echoed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Nobody vouches for the caller: no credentials, or credentials that do not hold.
    #[error("{0}")]
    NotAuthenticated(String),
    /// The caller is known but the rules (policy, protections, the image's state)
    /// do not let them do this.
    #[error("{0}")]
    Forbidden(String),
    /// The image, member, tag or location does not exist, or the caller may not
    /// know that it does.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong: malformed, or a value out of its domain.
    #[error("{0}")]
    Invalid(String),
    /// The request clashes with the current state: a status that does not allow
    /// it, a duplicate, or a concurrent change.
    #[error("{0}")]
    Conflict(String),
    /// Doing this would pass a limit. `resource` is the limit's configuration
    /// name (`image_size_cap`, `image_count_total`, `image_property_quota`, ...).
    #[error("{message}")]
    QuotaExceeded { resource: String, message: String },
    /// The image data is not what this cloud stores: its content does not match
    /// its `disk_format`, or it fails that format's safety checks (Glance's
    /// `InvalidImageData`; see [`crate::inspect`]).
    #[error("{0}")]
    InvalidImageData(String),
    /// The store has no room left for the data.
    #[error("{0}")]
    StoreFull(String),
    /// The store asked for takes no new data.
    #[error("{0}")]
    StoreReadOnly(String),
    /// This server or the image's store cannot do what was asked (an operation
    /// it does not offer, random access on a store without it).
    #[error("{0}")]
    Unsupported(String),
    /// The image was deleted while its data was being written.
    #[error("{0}")]
    DeletedDuringUpload(String),
    /// The byte range asked for lies outside the data; `size` is the whole image's.
    #[error("Requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    /// A backend (store, database, identity service) cannot be reached now;
    /// trying again later may work.
    #[error("{message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<ErrorSource>,
    },
    /// The client went away mid-request; nobody will read the answer.
    #[error("the client closed the connection")]
    ClientGone,
    /// A bug or a broken invariant. The message and source are for the log only.
    #[error("internal error: {message}")]
    Internal {
        message: String,
        #[source]
        source: Option<ErrorSource>,
    },
}

impl ImageError {
    pub fn not_found(id: &str) -> Self {
        ImageError::NotFound(format!("No image found with ID {id}"))
    }

    /// A broken invariant, described for the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ImageError::Internal {
            message: cause.to_string(),
            source: None,
        }
    }

    /// A backend that cannot be reached, with the client-facing `message` and the
    /// `source` that says why.
    pub fn unavailable(message: impl Into<String>, source: impl Into<Option<ErrorSource>>) -> Self {
        ImageError::Unavailable {
            message: message.into(),
            source: source.into(),
        }
    }

    /// A limit that would be passed.
    pub fn quota_exceeded(resource: &str, message: impl Into<String>) -> Self {
        ImageError::QuotaExceeded {
            resource: resource.to_string(),
            message: message.into(),
        }
    }

    /// A short stable name of the variant, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ImageError::NotAuthenticated(_) => "not_authenticated",
            ImageError::Forbidden(_) => "forbidden",
            ImageError::NotFound(_) => "not_found",
            ImageError::Invalid(_) => "invalid",
            ImageError::Conflict(_) => "conflict",
            ImageError::QuotaExceeded { .. } => "quota_exceeded",
            ImageError::InvalidImageData(_) => "invalid_image_data",
            ImageError::StoreFull(_) => "store_full",
            ImageError::StoreReadOnly(_) => "store_read_only",
            ImageError::Unsupported(_) => "unsupported",
            ImageError::DeletedDuringUpload(_) => "deleted_during_upload",
            ImageError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ImageError::Unavailable { .. } => "unavailable",
            ImageError::ClientGone => "client_gone",
            ImageError::Internal { .. } => "internal",
        }
    }
}

/// Errors are equal when they mean the same to a client: same variant, same
/// message. Sources are causes for the log and do not take part.
impl PartialEq for ImageError {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.to_string() == other.to_string()
    }
}

impl Eq for ImageError {}
