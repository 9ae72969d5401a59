//! The v2.17 location API: `POST /v2/images/{id}/locations` starts a
//! `location_import` task under the image's import lock, which checks the
//! location (a store must own it and report data; never `file://`), reads the
//! data to compute its checksum and hash (`do_secure_hash`), compares them with
//! the `validation_data` given, and records the location with the image `active`.
//!
//! The task runs as an import does (`job.rs`), so a crash is recovered the same
//! way: the lease expires, the task fails, the image goes back to `queued`.
//! Glance's flow: `glance/async_/flows/location_import.py`.

use futures_util::StreamExt;
use md5::Md5;
use serde_json::json;
use sha2::Digest;

use super::records::ImportJob;
use super::{ImportMethod, ImportPlan, Imports, Settings, ValidationData};
use crate::image::Location;
use crate::store::StoreError;
use crate::{ImageError, ImageResponse, ImageStatus, RequestContext, StoredData};

/// How the location API reads what it registers.
#[derive(Debug, Clone)]
pub struct LocationImportOptions {
    /// Read the data to compute its checksum and hash (Glance's `do_secure_hash`);
    /// without it, `validation_data` is taken as given.
    pub do_secure_hash: bool,
    /// Reads of the data tried before the task fails (`http_retries`).
    pub http_retries: u32,
}

impl Default for LocationImportOptions {
    fn default() -> Self {
        LocationImportOptions {
            do_secure_hash: true,
            http_retries: 3,
        }
    }
}

impl Imports {
    /// Checks the request as Glance does before it takes the lock, then starts
    /// the task. `image` is the image as the caller may see it.
    pub(super) async fn add_location(
        &self,
        ctx: &RequestContext,
        image: &crate::Image,
        url: String,
        validation: Option<ValidationData>,
    ) -> Result<ImageResponse, ImageError> {
        let s = &self.settings;
        if image.status != ImageStatus::Queued {
            return Err(ImageError::Conflict(format!(
                "It's not allowed to add locations if image status is {}.",
                image.status.as_str()
            )));
        }
        let service = ctx.identity.as_ref().is_some_and(|i| i.has_role("service"));
        if !service {
            let http_store = s.stores.iter().any(|(_, store)| store.kind() == "http");
            if !url.starts_with("http") || !http_store {
                return Err(ImageError::Forbidden(
                    "http store must be enabled to use location API by normal user.".into(),
                ));
            }
        }
        if let Some(v) = &validation {
            check_hash_value(v)?;
        }
        let validation_json = match &validation {
            Some(v) => json!({"os_hash_algo": v.os_hash_algo, "os_hash_value": v.os_hash_value}),
            None => json!({}),
        };
        let plan = ImportPlan {
            method: ImportMethod::Location {
                url: url.clone(),
                validation,
            },
            stores: Vec::new(),
            all_stores: false,
            all_stores_must_succeed: true,
            task_input: json!({
                "image_id": image.id,
                "loc_url": url,
                "validation_data": validation_json,
            }),
        };
        if let Some(job) = s.records.begin_import(ctx, &image.id, plan).await? {
            let task = job.task.clone();
            s.events.task("create", &task, task.status, &task.message);
            s.runner.spawn(super::job::run(self.settings.clone(), job));
        }
        Ok(ImageResponse::Empty)
    }
}

/// Glance's `_validate_hashing_data`: hex, of the algorithm's length.
fn check_hash_value(v: &ValidationData) -> Result<(), ImageError> {
    let bytes = hex::decode(&v.os_hash_value).map_err(|_| {
        ImageError::Invalid(format!(
            "os_hash_value ({}) is not a valid hexadecimal value",
            v.os_hash_value
        ))
    })?;
    let want = Hasher::new(&v.os_hash_algo)
        .map(|h| h.len())
        .ok_or_else(|| ImageError::Invalid(format!("Invalid os_hash_algo {}", v.os_hash_algo)))?;
    if bytes.len() != want {
        return Err(ImageError::Invalid(format!(
            "os_hash_value: ({}) is not the correct size for ({}) (should be ({want}) bytes)",
            v.os_hash_value, v.os_hash_algo
        )));
    }
    Ok(())
}

/// The task's work: check the location, hash its data, record it.
pub(super) async fn register(
    s: &Settings,
    job: &ImportJob,
    url: &str,
    validation: Option<&ValidationData>,
) -> Result<(), ImageError> {
    let location = Location {
        url: url.to_string(),
        metadata: serde_json::Map::new(),
    };
    let crate::location::CheckedLocation {
        location,
        store_id,
        store,
        size,
    } = crate::location::check_new_location(&s.stores, s.multistore, location).await?;
    s.records.import_writes_to(job, &store_id).await?;
    let algo = validation
        .map(|v| v.os_hash_algo.clone())
        .unwrap_or_else(|| s.algo.name().to_string());
    let (checksum, os_hash_algo, os_hash_value) = if s.locations.do_secure_hash {
        let (md5, hash) = hash_with_retries(s, &*store, url, &algo).await?;
        if let Some(v) = validation
            && v.os_hash_value != hash
        {
            return Err(ImageError::Invalid(format!(
                "os_hash_value: ({}) not matched with actual os_hash_value: ({hash})",
                v.os_hash_value
            )));
        }
        (md5, algo, hash)
    } else {
        // Taken as given; no checksum is known (an empty value is recorded as
        // none).
        match validation {
            Some(v) => (
                String::new(),
                v.os_hash_algo.clone(),
                v.os_hash_value.clone(),
            ),
            None => (String::new(), String::new(), String::new()),
        }
    };
    let stored = StoredData {
        location,
        size,
        checksum,
        os_hash_algo,
        os_hash_value,
        virtual_size: None,
    };
    s.records
        .import_stored(job, &store_id, &stored, true)
        .await
        .map(drop)
}

/// MD5 and `algo` of the data at `url`, read whole; a read that breaks off is
/// tried again, `http_retries` times in all.
async fn hash_with_retries(
    s: &Settings,
    store: &dyn crate::store::Store,
    url: &str,
    algo: &str,
) -> Result<(String, String), ImageError> {
    let tries = s.locations.http_retries.max(1);
    let mut last = None;
    for attempt in 1..=tries {
        match hash_once(store, url, algo).await {
            Ok(hashes) => return Ok(hashes),
            Err(e) => {
                tracing::info!(%url, attempt, error = %e, "reading a location for its hash failed");
                last = Some(e);
            }
        }
    }
    Err(match last {
        Some(ImageError::NotFound(_)) | None => {
            ImageError::Invalid("Hash calculation failed for image data".into())
        }
        Some(e) => e,
    })
}

async fn hash_once(
    store: &dyn crate::store::Store,
    url: &str,
    algo: &str,
) -> Result<(String, String), ImageError> {
    let mut data = store.get(url, None).await.map_err(|e| match e {
        StoreError::NotFound(_) => ImageError::NotFound("Image data not found.".into()),
        e => e.into(),
    })?;
    let mut md5 = Md5::new();
    let mut hasher = Hasher::new(algo)
        .ok_or_else(|| ImageError::Invalid(format!("Invalid os_hash_algo {algo}")))?;
    while let Some(chunk) = data.next().await {
        let chunk = chunk?;
        md5.update(&chunk);
        hasher.update(&chunk);
    }
    Ok((hex::encode(md5.finalize()), hasher.finish()))
}

/// The algorithms `validation_data` may name, and `hashing_algorithm`'s.
enum Hasher {
    Md5(Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algo: &str) -> Option<Hasher> {
        Some(match algo {
            "md5" => Hasher::Md5(Md5::new()),
            "sha1" => Hasher::Sha1(sha1::Sha1::new()),
            "sha256" => Hasher::Sha256(sha2::Sha256::new()),
            "sha384" => Hasher::Sha384(sha2::Sha384::new()),
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => return None,
        })
    }

    /// Bytes in a digest.
    fn len(&self) -> usize {
        match self {
            Hasher::Md5(_) => 16,
            Hasher::Sha1(_) => 20,
            Hasher::Sha256(_) => 32,
            Hasher::Sha384(_) => 48,
            Hasher::Sha512(_) => 64,
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha384(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_values_must_be_hex_of_the_algorithms_length() {
        let v = |algo: &str, value: &str| ValidationData {
            os_hash_algo: algo.into(),
            os_hash_value: value.into(),
        };
        assert!(check_hash_value(&v("sha256", &"ab".repeat(32))).is_ok());
        assert!(check_hash_value(&v("md5", &"ab".repeat(16))).is_ok());
        let e = check_hash_value(&v("sha512", "dbc9e0f80d131e64b94913a7b40bb5")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "os_hash_value: (dbc9e0f80d131e64b94913a7b40bb5) is not the correct size for (sha512) (should be (64) bytes)"
        );
        let e = check_hash_value(&v("sha1", "xyz")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "os_hash_value (xyz) is not a valid hexadecimal value"
        );
    }

    #[test]
    fn every_algorithm_hashes_as_its_reference() {
        let mut h = Hasher::new("sha1").unwrap();
        h.update(b"abc");
        assert_eq!(h.finish(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let mut h = Hasher::new("md5").unwrap();
        h.update(b"abc");
        assert_eq!(h.finish(), "900150983cd24fb0d6963f7d28e17f72");
        assert!(Hasher::new("sha123").is_none());
    }
}
