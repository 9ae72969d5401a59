//! `POST /v2/images/{id}/import` as the domain sees it, after the API checked its
//! body: which method, into which stores.

/// One of Glance's import methods, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportMethod {
    /// Data staged with `PUT /stage`.
    GlanceDirect,
    /// Data fetched from a URL.
    WebDownload { uri: String },
    /// Data of this image, already in one store, copied to others.
    CopyImage,
    /// An image of another region's Glance.
    GlanceDownload {
        region: String,
        image_id: String,
        interface: String,
    },
}

impl ImportMethod {
    /// The method's name in requests and in `enabled_import_methods`.
    pub fn name(&self) -> &'static str {
        match self {
            ImportMethod::GlanceDirect => "glance-direct",
            ImportMethod::WebDownload { .. } => "web-download",
            ImportMethod::CopyImage => "copy-image",
            ImportMethod::GlanceDownload { .. } => "glance-download",
        }
    }
}

/// Where the data goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportTargets {
    /// No store named: the default store.
    Default,
    /// `stores` in the body, or `X-Image-Meta-Store`.
    Stores(Vec<String>),
    /// `all_stores: true`: every writable store.
    All,
}

/// An import request.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRequest {
    pub method: ImportMethod,
    pub targets: ImportTargets,
    /// `false`: the image goes active at the first store written, and a failed
    /// store is only listed in `os_glance_failed_import`.
    pub all_stores_must_succeed: bool,
    /// The request body as the client sent it: the task's `input` keeps it.
    pub body: serde_json::Value,
}

/// Fetches what `web-download` (and `glance-download`) import from other hosts.
/// The server's implementation refuses the cloud's internal addresses; this
/// crate only needs the two steps.
#[async_trait::async_trait]
pub trait WebSource: Send + Sync + 'static {
    /// Whether `uri` may be fetched, asked before the import task is created;
    /// `Err` explains the refusal (for logs: the client gets Glance's text).
    async fn check(&self, uri: &str) -> Result<(), String>;

    /// Opens `uri` with extra request `headers` (a token, say). The stream ends
    /// in an error once more than `max_bytes` arrive, or if the server stops
    /// sending; `expected_size` is the announced `Content-Length`.
    async fn open(
        &self,
        uri: &str,
        headers: &[(&str, &str)],
        max_bytes: u64,
    ) -> Result<crate::ImageData, crate::ImageError>;
}
