//! glance_store's `http` store: image data that stays on a web server, behind an
//! `http(s)://` location ("location-only" images). It only reads: uploads,
//! imports and deletes never go to it, and `/v2/info/stores` shows it read-only.
//!
//! Every request goes through the web-download fetcher, so the same address
//! rules apply: `[import_filtering_opts]` and the refusal of the cloud's
//! internal addresses, checked again on each redirect.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use glance_layers::store::{Capabilities, Store, StoreError, StoredObject, Upload};
use glance_layers::{DataStream, ImageError};
use reqwest::{Method, StatusCode};

use crate::fetch::WebFetcher;

/// Reads `http` and `https` locations.
pub struct HttpStore {
    fetcher: Arc<WebFetcher>,
}

impl HttpStore {
    pub fn new(fetcher: Arc<WebFetcher>) -> Self {
        HttpStore { fetcher }
    }

    /// The answer to `method` on `url`, or why there is none.
    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<(reqwest::Response, String), StoreError> {
        let (response, shown) =
            self.fetcher
                .send(method, url, headers)
                .await
                .map_err(|e| match e {
                    // Refused by the address rules, or a broken redirect: for the
                    // caller, there is no data at this URL.
                    ImageError::Invalid(why) => {
                        tracing::info!(%url, %why, "http store refused a location");
                        StoreError::NotFound(url.to_string())
                    }
                    e => StoreError::failed("http", e),
                })?;
        match response.status() {
            s if s.is_success() => Ok((response, shown)),
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(StoreError::NotFound(shown)),
            s => Err(StoreError::failed("http", format!("{shown} answered {s}"))),
        }
    }
}

#[async_trait]
impl Store for HttpStore {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            random_read: true,
            write: false,
        }
    }

    fn owns(&self, url: &str) -> bool {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        matches!(scheme.as_deref(), Some("http" | "https"))
    }

    async fn put(&self, _: &Upload<'_>, _: DataStream) -> Result<StoredObject, StoreError> {
        Err(StoreError::NotSupported("adding images"))
    }

    async fn discard(&self, _: &str, _: &str, _: Option<&str>, _: bool) -> Result<(), StoreError> {
        // Nothing is ever written here.
        Ok(())
    }

    async fn get(&self, url: &str, range: Option<Range<u64>>) -> Result<DataStream, StoreError> {
        let header = range
            .as_ref()
            .map(|r| format!("bytes={}-{}", r.start, r.end.saturating_sub(1)));
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("range", h.as_str())).collect();
        let (response, shown) = self.send(Method::GET, url, &headers).await?;
        let length = match &range {
            // A server that ignores `Range` sends the whole object: that is not
            // the part asked for.
            Some(_) if response.status() != StatusCode::PARTIAL_CONTENT => {
                return Err(StoreError::NotSupported("random access"));
            }
            Some(r) => r.end - r.start,
            None => u64::MAX,
        };
        Ok(self.fetcher.body(response, length, shown))
    }

    async fn delete(&self, _: &str) -> Result<(), StoreError> {
        // The web server's data is not ours to delete (glance_store's
        // `StoreDeleteNotSupported`).
        Err(StoreError::NotSupported("deleting images"))
    }

    /// The size the server announces for a `HEAD`; 0 when it announces none.
    async fn size(&self, url: &str) -> Result<u64, StoreError> {
        let (response, _) = self.send(Method::HEAD, url, &[]).await?;
        Ok(response
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }
}
