//! `inject_image_metadata`: `[inject_metadata_properties] inject` is added to
//! every imported image, unless the importing user has one of
//! `ignore_user_roles` (`glance/async_/flows/plugins/inject_image_metadata.py`).
//! As in Glance, keys in the reserved `os_glance` namespace are dropped: the
//! import's own bookkeeping lives there.

use std::collections::BTreeMap;

use async_trait::async_trait;
use glance_layers::ImageError;
use glance_layers::import::{ImageChanges, ImportPlugin, PluginInput, PluginOutcome};

/// Glance's reserved property namespace.
const RESERVED: &str = "os_glance";

pub struct InjectMetadata {
    properties: BTreeMap<String, String>,
    ignore_user_roles: Vec<String>,
}

impl InjectMetadata {
    pub fn new(inject: BTreeMap<String, String>, ignore_user_roles: Vec<String>) -> Self {
        let properties = inject
            .into_iter()
            .filter(|(key, value)| {
                let reserved = key.starts_with(RESERVED);
                if reserved {
                    tracing::warn!(%key, %value, "inject_metadata_properties: a reserved property is never injected");
                }
                !reserved
            })
            .collect();
        InjectMetadata {
            properties,
            ignore_user_roles,
        }
    }
}

#[async_trait]
impl ImportPlugin for InjectMetadata {
    fn name(&self) -> &'static str {
        "inject_image_metadata"
    }

    async fn run(&self, input: &PluginInput<'_>) -> Result<PluginOutcome, ImageError> {
        let ignored = input
            .ctx
            .identity
            .as_ref()
            .is_some_and(|who| self.ignore_user_roles.iter().any(|role| who.has_role(role)));
        if ignored {
            return Ok(PluginOutcome::default());
        }
        Ok(PluginOutcome {
            changes: ImageChanges {
                properties: self.properties.clone(),
                ..Default::default()
            },
            replaced_data: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glance_layers::{Identity, Image, RequestContext};

    async fn injected(plugin: &InjectMetadata, roles: &[&str]) -> BTreeMap<String, String> {
        let ctx = RequestContext {
            identity: Some(Identity {
                roles: roles.iter().map(|r| r.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let image = Image::new("an-image".into(), chrono::Utc::now());
        let input = PluginInput {
            image: &image,
            ctx: &ctx,
            staged: "file:///nowhere",
            lease_id: "lease",
        };
        plugin.run(&input).await.unwrap().changes.properties
    }

    #[tokio::test]
    async fn injected_unless_the_importer_has_an_ignored_role() {
        let plugin = InjectMetadata::new(
            [
                ("hw_vif_model".to_string(), "virtio".to_string()),
                ("os_glance_import_task".to_string(), "mine".to_string()),
            ]
            .into(),
            vec!["admin".into(), "reader".into()],
        );
        let member = injected(&plugin, &["member"]).await;
        assert_eq!(member.len(), 1, "the reserved key is dropped: {member:?}");
        assert_eq!(member["hw_vif_model"], "virtio");
        assert!(injected(&plugin, &["member", "admin"]).await.is_empty());
        assert!(injected(&plugin, &["Reader"]).await.is_empty());
    }
}
