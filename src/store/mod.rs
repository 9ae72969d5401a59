//! Storage backends behind `glance_layers::store::Store`.

mod file;
mod http;
pub mod measured;
mod s3;
mod traced_http;

pub use file::FileStore;
pub use http::HttpStore;
// The memory store is part of the contract crate, so third parties can test with it.
pub use glance_layers::store::MemoryStore;
pub use s3::{S3Options, S3Store};

use std::sync::Arc;

use glance_layers::store::{StoreEntry, StoreSet};

use crate::config::Config;

/// Glance's reserved stores: staging (see `Config::staging_dir`) and tasks
/// (accepted, unused).
fn is_reserved(id: &str) -> bool {
    matches!(id, "os_glance_staging_store" | "os_glance_tasks_store")
}

/// Where staged and downloaded data waits for its import.
pub fn staging(config: &Config) -> Result<FileStore, String> {
    let dir = config.staging_dir()?;
    FileStore::new(&dir, config.glance_store.filesystem_store_fsync)
        .map_err(|e| format!("staging store {}: {e}", dir.display()))
}

/// The stores `config` enables: `[DEFAULT] enabled_backends = "id:type,..."` with a
/// section per id, or one `file` store when that is unset.
pub fn from_config(config: &Config) -> Result<StoreSet, String> {
    let fsync = config.glance_store.filesystem_store_fsync;
    let default = config.glance_store.default_backend.clone();
    let Some(enabled) = &config.default.enabled_backends else {
        if let Some(extra) = config.backends.keys().find(|k| !is_reserved(k)) {
            return Err(format!(
                "unknown section [{extra}] (no enabled_backends names it)"
            ));
        }
        let store =
            FileStore::new(config.store_dir(), fsync).map_err(|e| format!("file store: {e}"))?;
        let gs = &config.glance_store;
        for kind in &gs.stores {
            if !matches!(kind.as_str(), "file" | "http") {
                return Err(format!(
                    "[glance_store] stores: {kind:?} is not supported (file, http)"
                ));
            }
        }
        if !gs.stores.iter().any(|k| k == "http") {
            return Ok(StoreSet::single(default, Arc::new(store)));
        }
        // The http store reads `http(s)://` locations beside the one file store
        // that takes uploads; without `enabled_backends` stores are not named in
        // requests, so its id is only internal.
        let http = http_store(
            config,
            gs.https_insecure,
            gs.https_ca_certificates_file.as_deref(),
            gs.http_proxy_information.as_deref(),
        )?;
        let entry = |store: Arc<dyn glance_layers::store::Store>| StoreEntry {
            store,
            weight: 0,
            description: None,
        };
        let http_id = if default == "http" {
            "http-store"
        } else {
            "http"
        };
        return StoreSet::new(
            default.clone(),
            vec![
                (default, entry(Arc::new(store))),
                (http_id.to_string(), entry(Arc::new(http))),
            ],
        );
    };
    let mut stores = Vec::new();
    for item in enabled.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, kind) = item
            .split_once(':')
            .map(|(a, b)| (a.trim(), b.trim()))
            .ok_or_else(|| format!("enabled_backends entry {item:?} is not id:type"))?;
        let section = config.backends.get(id).cloned().unwrap_or_default();
        let store: Arc<dyn glance_layers::store::Store> = match kind {
            "file" => {
                let dir = section
                    .filesystem_store_datadir
                    .clone()
                    .unwrap_or_else(|| config.default.data_dir.join("images").join(id));
                Arc::new(FileStore::new(dir, fsync).map_err(|e| format!("store {id}: {e}"))?)
            }
            "s3" => {
                let need = |v: &Option<String>, name: &str| {
                    v.clone()
                        .ok_or_else(|| format!("store {id}: [{id}] {name} is required"))
                };
                Arc::new(S3Store::new(S3Options {
                    host: need(&section.s3_store_host, "s3_store_host")?,
                    access_key: need(&section.s3_store_access_key, "s3_store_access_key")?,
                    secret_key: need(&section.s3_store_secret_key, "s3_store_secret_key")?,
                    bucket: need(&section.s3_store_bucket, "s3_store_bucket")?,
                    region: section.s3_store_region_name.clone(),
                    chunk_size: section.s3_store_large_object_chunk_size.max(5) << 20,
                    concurrency: section.s3_store_thread_pools.max(1),
                })?)
            }
            "http" => Arc::new(http_store(
                config,
                section.https_insecure,
                section.https_ca_certificates_file.as_deref(),
                section.http_proxy_information.as_deref(),
            )?),
            other => {
                return Err(format!(
                    "store {id}: type {other:?} is not supported (file, s3, http)"
                ));
            }
        };
        stores.push((
            id.to_string(),
            StoreEntry {
                store,
                weight: section.weight,
                description: section.store_description.clone(),
            },
        ));
    }
    for section in config.backends.keys().filter(|k| !is_reserved(k)) {
        if !stores.iter().any(|(id, _)| id == section) {
            return Err(format!(
                "unknown section [{section}] (enabled_backends does not name it)"
            ));
        }
    }
    StoreSet::new(default, stores)
}

/// An http store: its requests follow `[import_filtering_opts]` and refuse the
/// cloud's internal addresses, as web-download's do.
fn http_store(
    config: &Config,
    insecure: bool,
    ca_file: Option<&std::path::Path>,
    proxy: Option<&str>,
) -> Result<HttpStore, String> {
    let mut fetcher = crate::fetch::WebFetcher::new(&config.import_filtering_opts)?
        .with_tls(insecure, ca_file)
        .map_err(|e| format!("http store: {e}"))?;
    if let Some(proxy) = proxy {
        fetcher = fetcher
            .with_proxy(proxy)
            .map_err(|e| format!("http store: {e}"))?;
    }
    Ok(HttpStore::new(Arc::new(fetcher)))
}
