//! Where `web-download` and `glance-download` get their data: a trait, so that
//! this crate knows nothing of HTTP clients.

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
