//! The location layer: moves image data between requests and stores.
//!
//! Uploads stream into a store while [`digest`] hashes them, under a lease taken
//! from the image records ([`UploadRecords`]) (`upload.rs`); downloads stream from
//! the first location that answers (`download.rs`); deletes remove the data after
//! the record (`replicas.rs`).

pub mod digest;
mod download;
mod legacy;
mod replicas;
pub(crate) mod upload;

use std::sync::Arc;

use crate::image::Location;
use crate::inspect::FormatPolicy;
use crate::middleware::{Middleware, MiddlewareLayer, Next};
use crate::store::StoreSet;
use crate::uploads::UploadRecords;
use crate::{ImageError, ImageRequest, ImageResponse, ImageService, Operation, StoreInfo};
use digest::HashAlgo;

/// Streams data in and out of the stores.
pub struct Locations {
    stores: StoreSet,
    algo: HashAlgo,
    records: Arc<dyn UploadRecords>,
    format: FormatPolicy,
    options: LocationOptions,
}

/// How clients may change locations.
#[derive(Debug, Clone)]
pub struct LocationOptions {
    /// Glance's `show_multiple_locations`: `PATCH` may change `/locations`.
    pub patch_locations: bool,
    /// `image_location_quota`: most locations an image may have; negative is
    /// no limit.
    pub quota: i64,
    /// Whether stores are named (`enabled_backends`): only then does a new
    /// location carry its store's id.
    pub multistore: bool,
}

impl Default for LocationOptions {
    fn default() -> Self {
        LocationOptions {
            patch_locations: false,
            quota: 10,
            multistore: false,
        }
    }
}

/// The location layer.
pub type LocationLayer = MiddlewareLayer<Locations>;

impl MiddlewareLayer<Locations> {
    /// `format` is what uploads of `bare` containers must be (see [`crate::inspect`]).
    pub fn new(
        stores: StoreSet,
        algo: HashAlgo,
        records: Arc<dyn UploadRecords>,
        format: FormatPolicy,
    ) -> Self {
        Self::with_options(stores, algo, records, format, LocationOptions::default())
    }

    /// As [`Self::new`], with `options` for changing locations.
    pub fn with_options(
        stores: StoreSet,
        algo: HashAlgo,
        records: Arc<dyn UploadRecords>,
        format: FormatPolicy,
        options: LocationOptions,
    ) -> Self {
        MiddlewareLayer::from_middleware(Locations {
            stores,
            algo,
            records,
            format,
            options,
        })
    }
}

impl Middleware for Locations {
    async fn call<S: ImageService>(
        &self,
        req: ImageRequest,
        next: Next<S>,
    ) -> Result<ImageResponse, ImageError> {
        let ImageRequest { ctx, op } = req;
        match op {
            Operation::Upload { id, data, store } => {
                upload::upload(&ctx, self, id, data, store).await
            }
            Operation::Download { id, range } => {
                let image = next
                    .run(ImageRequest::new(ctx, Operation::Get { id }))
                    .await?
                    .into_image()?;
                download::download(&self.stores, image, range).await
            }
            op @ Operation::Delete { .. } => {
                replicas::delete(next, &self.stores, ImageRequest::new(ctx, op)).await
            }
            Operation::DeleteFromStore { id, store_id } => {
                replicas::delete_from_store(next, &*self.records, &self.stores, ctx, id, store_id)
                    .await
            }
            Operation::Update { id, changes }
                if self.options.patch_locations && changes.iter().any(|c| c.key == "locations") =>
            {
                legacy::update(self, next, ctx, id, changes).await
            }
            Operation::GetLocations { id } => {
                next.run(ImageRequest::new(ctx, Operation::Get { id }))
                    .await
            }
            Operation::StoresInfo { detail } => Ok(ImageResponse::Stores(self.describe(detail))),
            op => next.run(ImageRequest::new(ctx, op)).await,
        }
    }
}

impl Locations {
    /// `/v2/info/stores`: every enabled store; `detail` adds its settings.
    fn describe(&self, detail: bool) -> Vec<StoreInfo> {
        let stores = &self.stores;
        // Without named stores only the one that takes uploads is shown; the
        // http store beside it reads locations and is no choice to make.
        stores
            .iter()
            .filter(|(id, _)| self.options.multistore || *id == stores.default_id())
            .map(|(id, store)| StoreInfo {
                id: id.to_string(),
                kind: store.kind(),
                default: id == stores.default_id(),
                read_only: !store.capabilities().write,
                weight: stores.weight(id),
                description: stores.description(id).map(str::to_string),
                properties: if detail {
                    store.properties()
                } else {
                    serde_json::Value::Null
                },
            })
            .collect()
    }
}

/// A new location, checked as Glance's `_check_image_location` does.
pub(crate) struct CheckedLocation {
    /// As it is kept: with its store's id when stores are named.
    pub(crate) location: Location,
    pub(crate) store_id: String,
    pub(crate) store: Arc<dyn crate::store::Store>,
    /// Bytes of data the store reports there.
    pub(crate) size: u64,
}

/// Checks a location a client gives (legacy `PATCH`, the location API): a store
/// must own the URL, never a local one (`file://`...), and report data there;
/// anything else is "Invalid location".
pub(crate) async fn check_new_location(
    stores: &StoreSet,
    multistore: bool,
    mut location: Location,
) -> Result<CheckedLocation, ImageError> {
    let invalid = || ImageError::Invalid("Invalid location".into());
    let scheme = location
        .url
        .split_once(':')
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    if matches!(scheme.as_str(), "" | "file" | "filesystem" | "swift+config") {
        return Err(invalid());
    }
    let (store_id, store) = stores
        .owner_of(&location.url, store_of(&location))
        .ok_or_else(invalid)?;
    let size = match store.size(&location.url).await {
        Ok(size) if size > 0 => size,
        Ok(_) => return Err(invalid()),
        Err(e) => {
            tracing::info!(url = %location.url, error = %e, "location refused");
            return Err(invalid());
        }
    };
    if multistore {
        location.metadata.insert(
            "store".into(),
            serde_json::Value::String(store_id.to_string()),
        );
    }
    Ok(CheckedLocation {
        location,
        store_id: store_id.to_string(),
        store: store.clone(),
        size,
    })
}

pub(crate) fn store_of(loc: &Location) -> Option<&str> {
    loc.metadata.get("store").and_then(|v| v.as_str())
}

#[cfg(test)]
mod tests;
