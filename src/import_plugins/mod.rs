//! Glance's import plugins (`[image_import_opts] image_import_plugins`), run by
//! the import job on staged data before the stores are written (see
//! `glance_layers::import::plugins`). Staged data is a file of the staging
//! store: the plugins read it and write their output under the import's
//! temporary name there, then rename it over the staged file, so the staged
//! URL never changes and a crash mid-step leaves only what recovery removes.
//!
//! | name | what it does |
//! |---|---|
//! | `image_conversion` | `qemu-img convert` to `[image_conversion] output_format`, after the format inspector and `qemu-img info` passed the data |
//! | `image_decompression` | gzip, or zip of exactly one member, replaced by its content |
//! | `inject_image_metadata` | `[inject_metadata_properties] inject` added to the image |
//! | `no_op` | nothing |
//!
//! Glance's decompression also opens LHA archives when the optional `lhafile`
//! Python module is installed; that is not built here, and LHA data fails the
//! import as it does in a Glance without `lhafile`.

mod conversion;
mod decompression;
mod inject;
pub mod qemu;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use glance_layers::ImageError;
use glance_layers::import::{ImportPlugin, PluginInput, PluginOutcome, Plugins};

use crate::config::Config;
use crate::store::FileStore;
pub use conversion::ImageConversion;
pub use decompression::ImageDecompression;
pub use inject::InjectMetadata;

/// The plugins named in `image_import_plugins`, in that order, over the
/// staging store. `Err` names a plugin that is not built here.
pub fn build(config: &Config, staging: &Arc<FileStore>) -> Result<Plugins, String> {
    let mut plugins: Plugins = Vec::new();
    for name in &config.image_import_opts.image_import_plugins {
        let plugin: Arc<dyn ImportPlugin> = match name.as_str() {
            "no_op" => Arc::new(NoOp),
            "image_conversion" => {
                if !on_path("qemu-img") || !on_path("prlimit") {
                    tracing::warn!(
                        "image_conversion needs qemu-img and prlimit, and one is not on PATH: imports will fail"
                    );
                }
                Arc::new(ImageConversion::new(
                    staging.clone(),
                    config.image_conversion.output_format,
                    config.image_format.policy(),
                    config.default.image_size_cap,
                ))
            }
            "image_decompression" => Arc::new(ImageDecompression::new(
                staging.clone(),
                config.default.image_size_cap,
            )),
            "inject_image_metadata" => Arc::new(InjectMetadata::new(
                config.inject_metadata_properties.inject.clone(),
                config.inject_metadata_properties.ignore_user_roles.clone(),
            )),
            other => {
                return Err(format!(
                    "image_import_plugins: {other:?} is not an import plugin (image_conversion, image_decompression, inject_image_metadata, no_op)"
                ));
            }
        };
        plugins.push(plugin);
    }
    Ok(plugins)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// `no_op`: Glance's example plugin.
struct NoOp;

#[async_trait]
impl ImportPlugin for NoOp {
    fn name(&self) -> &'static str {
        "no_op"
    }

    async fn run(&self, _: &PluginInput<'_>) -> Result<PluginOutcome, ImageError> {
        Ok(PluginOutcome::default())
    }
}

/// Where a plugin writes its output: the import's temporary name in the
/// staging store. Removed when dropped unless it replaced the staged data.
struct Scratch {
    path: Option<PathBuf>,
}

impl Scratch {
    fn new(staging: &FileStore, input: &PluginInput<'_>) -> Result<Scratch, ImageError> {
        let path = staging.scratch_path(&input.image.id, input.lease_id)?;
        Ok(Scratch { path: Some(path) })
    }

    fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("a scratch file is used before it replaces")
    }

    /// Moves the output over the staged data, in one rename.
    async fn replace(mut self, staged: &Path) -> Result<(), ImageError> {
        let path = self.path.take().expect("a scratch file replaces once");
        tokio::fs::rename(&path, staged).await.map_err(|e| {
            let _ = std::fs::remove_file(&path);
            io_failure("could not replace the staged data", e)
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A local file could not be read or written: the staging disk's problem, not
/// the data's.
fn io_failure(what: &str, e: std::io::Error) -> ImageError {
    ImageError::unavailable(
        format!("Import failed: {what}."),
        Some(Arc::new(e) as glance_layers::ErrorSource),
    )
}

/// Data a plugin refuses; the message is Glance's.
fn refused(message: impl Into<String>) -> ImageError {
    ImageError::InvalidImageData(message.into())
}
