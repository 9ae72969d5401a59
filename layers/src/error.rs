//! The one error type of the domain. `api/` maps each variant to Glance's status
//! code and error body in a single place.

/// What went wrong with a domain operation, as a client should learn it.
///
/// Messages are shown to clients; internal causes are logged, never echoed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageError {
    /// 400
    #[error("{0}")]
    BadRequest(String),
    /// 401
    #[error("{0}")]
    Unauthorized(String),
    /// 403
    #[error("{0}")]
    Forbidden(String),
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 409
    #[error("{0}")]
    Conflict(String),
    /// 410: the image went away while its data was being written.
    #[error("{0}")]
    Gone(String),
    /// 413: a quota, a size cap or a full store.
    #[error("{0}")]
    TooLarge(String),
    /// 415
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 416, with the size of the whole image for `Content-Range: bytes */size`.
    #[error("Requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    /// 503: a backend (store, database, identity service) cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// The client went away mid-request; nobody will read the answer.
    #[error("the client closed the connection")]
    ClientGone,
    /// 500. The string is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ImageError {
    pub fn not_found(id: &str) -> Self {
        ImageError::NotFound(format!("No image found with ID {id}"))
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ImageError::Internal(cause.to_string())
    }

    /// A short stable name of the variant, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ImageError::BadRequest(_) => "bad_request",
            ImageError::Unauthorized(_) => "unauthorized",
            ImageError::Forbidden(_) => "forbidden",
            ImageError::NotFound(_) => "not_found",
            ImageError::Conflict(_) => "conflict",
            ImageError::Gone(_) => "gone",
            ImageError::TooLarge(_) => "too_large",
            ImageError::UnsupportedMediaType(_) => "unsupported_media_type",
            ImageError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ImageError::Unavailable(_) => "unavailable",
            ImageError::ClientGone => "client_gone",
            ImageError::Internal(_) => "internal",
        }
    }
}
