//! Glance's import plugins (`[image_import_opts] image_import_plugins`) as the
//! import job sees them: steps run in the configured order once the data is
//! staged and before it is written to the stores, for glance-direct and
//! web-download (never for copy-image: the data is already the image's).
//!
//! A plugin may replace the staged data (under the same URL, so the staged
//! data stays where the image's records say it is) and may change the image:
//! its formats and properties. The job records the changes of all the plugins
//! at once, after the last one succeeded, so that a failed plugin leaves the
//! image as the import found it. A plugin's error fails the import as any
//! other failure does.
//!
//! This crate holds only the contract; the plugins themselves (which run
//! `qemu-img`, read files) belong to the server.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Settings;
use super::records::{ImportJob, STAGING_STORE};
use crate::{Image, ImageError, RequestContext};

/// What a plugin works on.
pub struct PluginInput<'a> {
    /// The image as the earlier plugins left it.
    pub image: &'a Image,
    /// Who asked for the import.
    pub ctx: &'a RequestContext,
    /// The staged data: a URL of the staging store.
    pub staged: &'a str,
    /// The import's lease: temporary data in the staging store named after it
    /// (the store's temporary name for `(image id, lease id)`) is the import's,
    /// and is removed by recovery if this node dies mid-step.
    pub lease_id: &'a str,
}

/// What plugins change on the image.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImageChanges {
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    /// Added or overwritten properties.
    pub properties: BTreeMap<String, String>,
}

impl ImageChanges {
    pub fn is_empty(&self) -> bool {
        self.disk_format.is_none() && self.container_format.is_none() && self.properties.is_empty()
    }

    /// Applies `later` over these changes (a later plugin wins).
    fn merge(&mut self, later: ImageChanges) {
        if later.disk_format.is_some() {
            self.disk_format = later.disk_format;
        }
        if later.container_format.is_some() {
            self.container_format = later.container_format;
        }
        self.properties.extend(later.properties);
    }

    /// The image as it is with these changes.
    pub fn apply_to(&self, image: &mut Image) {
        if let Some(f) = &self.disk_format {
            image.disk_format = Some(f.clone());
        }
        if let Some(f) = &self.container_format {
            image.container_format = Some(f.clone());
        }
        for (k, v) in &self.properties {
            image.properties.insert(k.clone(), v.clone());
        }
    }
}

/// What one plugin did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PluginOutcome {
    pub changes: ImageChanges,
    /// The staged data was replaced (same URL, new content).
    pub replaced_data: bool,
}

/// One of Glance's import plugins.
#[async_trait::async_trait]
pub trait ImportPlugin: Send + Sync + 'static {
    /// Glance's name for it (`image_conversion`...), for logs.
    fn name(&self) -> &'static str;

    /// Runs on the staged data. `Err` fails the import with its message
    /// (`ImageError::InvalidImageData` for data the plugin refuses).
    async fn run(&self, input: &PluginInput<'_>) -> Result<PluginOutcome, ImageError>;
}

/// The configured plugins, in order.
pub type Plugins = Vec<Arc<dyn ImportPlugin>>;

/// Runs every plugin on the staged data at `staged` and records their changes.
/// Answers the job with its image as changed (what the store writes check
/// against) and whether the staged data was replaced.
pub(super) async fn run_all(
    s: &Settings,
    job: &ImportJob,
    staged: &str,
) -> Result<(ImportJob, bool), ImageError> {
    if s.plugins.is_empty() {
        return Ok((job.clone(), false));
    }
    // Plugins write temporary data next to the staged data: the lease covers
    // the staging store while they run.
    s.records.import_writes_to(job, STAGING_STORE).await?;
    let mut image = (*job.image).clone();
    let mut changes = ImageChanges::default();
    let mut replaced = false;
    for plugin in &s.plugins {
        let input = PluginInput {
            image: &image,
            ctx: &job.ctx,
            staged,
            lease_id: &job.lease.id,
        };
        let outcome = plugin.run(&input).await.inspect_err(|e| {
            tracing::warn!(image = %image.id, plugin = plugin.name(), error = %e, "import plugin failed");
        })?;
        tracing::debug!(image = %image.id, plugin = plugin.name(), ?outcome, "import plugin ran");
        outcome.changes.apply_to(&mut image);
        changes.merge(outcome.changes);
        replaced |= outcome.replaced_data;
    }
    if !changes.is_empty() {
        s.records.import_amend(job, &changes).await?;
    }
    let mut job = job.clone();
    job.image = Arc::new(image);
    Ok((job, replaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_plugin_wins_and_properties_add_up() {
        let mut all = ImageChanges {
            disk_format: Some("qcow2".into()),
            properties: [("a".to_string(), "1".to_string())].into(),
            ..Default::default()
        };
        all.merge(ImageChanges {
            disk_format: Some("raw".into()),
            container_format: Some("bare".into()),
            properties: [("b".to_string(), "2".to_string())].into(),
        });
        assert_eq!(all.disk_format.as_deref(), Some("raw"));
        assert_eq!(all.container_format.as_deref(), Some("bare"));
        assert_eq!(all.properties.len(), 2);
        assert!(!all.is_empty());
        assert!(ImageChanges::default().is_empty());
    }
}
