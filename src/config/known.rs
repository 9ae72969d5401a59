//! Which sections and options this server implements, and the removal of the
//! rest from a layer of configuration before it is read.
//!
//! A glance-api.conf carries many options this server has no use for (oslo.log,
//! oslo.messaging's drivers, keystonemiddleware's caching, other stores...).
//! oslo.config ignores options nobody registered, so a Glance configuration
//! works unchanged only if we do the same: such options are dropped and named
//! in one warning, while the options we do implement are still read strictly.

use figment::value::{Dict, Value};

use super::option_doc::{Documented, OptionDoc};
use super::*;

/// A section of `Config` and its options.
pub struct SectionDoc {
    pub name: &'static str,
    pub options: &'static [OptionDoc],
}

/// Every section of `Config` but the per-store ones, in `Config`'s order.
pub const SECTIONS: &[SectionDoc] = &[
    section::<DefaultSection>("DEFAULT"),
    section::<AuthSection>("auth"),
    section::<DatabaseSection>("database"),
    section::<StoreSection>("glance_store"),
    section::<QuotaSection>("quota"),
    section::<NotificationSection>("oslo_messaging_notifications"),
    section::<OsloMessagingRabbitSection>("oslo_messaging_rabbit"),
    section::<TelemetrySection>("telemetry"),
    section::<HealthcheckSection>("healthcheck"),
    section::<PolicySection>("oslo_policy"),
    section::<KeystoneAuthtokenSection>("keystone_authtoken"),
    section::<OsloLimitSection>("oslo_limit"),
    section::<TaskSection>("task"),
    section::<ImageImportSection>("image_import_opts"),
    section::<ImageConversionSection>("image_conversion"),
    section::<InjectMetadataSection>("inject_metadata_properties"),
    section::<ImageFormatSection>("image_format"),
    section::<crate::fetch::ImportFilteringOptions>("import_filtering_opts"),
    section::<CorsSection>("cors"),
];

/// The options of each store's own section.
pub const STORE_OPTIONS: &[OptionDoc] = BackendSection::OPTIONS;

/// Glance's reserved stores, whose sections are read without being named in
/// `enabled_backends`.
pub const RESERVED_STORES: [&str; 2] = ["os_glance_staging_store", "os_glance_tasks_store"];

const fn section<T: Documented>(name: &'static str) -> SectionDoc {
    SectionDoc {
        name,
        options: T::OPTIONS,
    }
}

/// The store ids of an `enabled_backends` value (`id:type, id:type`).
pub fn store_ids(enabled_backends: &str) -> Vec<String> {
    enabled_backends
        .split(',')
        .filter_map(|item| item.split_once(':'))
        .map(|(id, _)| id.trim().to_string())
        .filter(|id| !id.is_empty())
        .collect()
}

/// Removes from `layer` every option this server does not implement, adding its
/// `section.key` to `ignored`. `stores` are the ids `enabled_backends` names:
/// their sections take the per-store options.
pub fn retain_known(layer: &mut Dict, stores: &[String], ignored: &mut Vec<String>) {
    layer.retain(|name, value| {
        let options = if let Some(s) = SECTIONS.iter().find(|s| s.name == name) {
            s.options
        } else if RESERVED_STORES.contains(&name.as_str()) || stores.contains(name) {
            STORE_OPTIONS
        } else {
            &[]
        };
        let Value::Dict(_, keys) = value else {
            ignored.push(name.clone());
            return false;
        };
        keys.retain(|key, value| {
            let known = options.iter().any(|o| o.key == key);
            // TOML's `[a.b.c]` with nothing under it sets nothing.
            if !known && !is_empty_table(value) {
                ignored.push(format!("{name}.{key}"));
            }
            known
        });
        !keys.is_empty()
    });
}

fn is_empty_table(value: &Value) -> bool {
    matches!(value, Value::Dict(_, d) if d.values().all(is_empty_table))
}

/// Converts the string values of the store sections in `layer` to the booleans
/// and integers their options want. The store sections reach `Config` through
/// serde's `flatten`, which buffers values and so bypasses figment's own
/// conversion of strings (and its naming of the key in errors); the other
/// sections need none of this. Errors name the option.
pub fn type_store_values(layer: &mut Dict, stores: &[String]) -> Result<(), String> {
    for (name, value) in layer.iter_mut() {
        let is_store = RESERVED_STORES.contains(&name.as_str()) || stores.contains(name);
        let Value::Dict(_, keys) = value else {
            continue;
        };
        if !is_store || SECTIONS.iter().any(|s| s.name == name) {
            continue;
        }
        for (key, value) in keys.iter_mut() {
            let Some(option) = STORE_OPTIONS.iter().find(|o| o.key == key) else {
                continue;
            };
            let Value::String(tag, text) = &*value else {
                continue;
            };
            let typed = match option.kind() {
                "boolean" => value.to_bool_lossy().map(|b| Value::Bool(*tag, b)),
                "integer" => text.trim().parse::<i64>().ok().map(Value::from),
                _ => continue,
            };
            match typed {
                Some(typed) => *value = typed,
                None => {
                    return Err(format!(
                        "{name}.{key} = {text:?}: expected a {}",
                        option.kind()
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The documented options are exactly the fields each section serializes,
    /// so the sample and the tolerance of unknown options cannot drift from
    /// the structs, and every option has help text for the sample.
    #[test]
    fn every_field_of_every_section_is_documented() {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let sections = defaults.as_object().unwrap();
        let names: BTreeSet<&str> = sections.keys().map(String::as_str).collect();
        let documented: BTreeSet<&str> = SECTIONS.iter().map(|s| s.name).collect();
        assert_eq!(
            names, documented,
            "Config's sections (backends flatten to none)"
        );
        let keys = |value: &serde_json::Value| -> BTreeSet<String> {
            value.as_object().unwrap().keys().cloned().collect()
        };
        let doc_keys = |options: &[OptionDoc]| -> BTreeSet<String> {
            options.iter().map(|o| o.key.to_string()).collect()
        };
        for s in SECTIONS {
            assert_eq!(keys(&sections[s.name]), doc_keys(s.options), "[{}]", s.name);
        }
        let store = serde_json::to_value(BackendSection::default()).unwrap();
        assert_eq!(keys(&store), doc_keys(STORE_OPTIONS), "store sections");
        for s in SECTIONS
            .iter()
            .map(|s| (s.name, s.options))
            .chain([("<store>", STORE_OPTIONS)])
        {
            for o in s.1 {
                assert!(
                    !o.help_text().is_empty(),
                    "{}.{} has no doc comment",
                    s.0,
                    o.key
                );
            }
        }
    }

    #[test]
    fn unknown_options_and_sections_are_removed_and_named() {
        let mut layer = Dict::new();
        let mut default = Dict::new();
        default.insert("bind".into(), "0.0.0.0:1".into());
        default.insert("workers".into(), 4.into());
        layer.insert("DEFAULT".into(), default.into());
        let mut rabbit = Dict::new();
        rabbit.insert("amqp_durable_queues".into(), true.into());
        layer.insert("oslo_messaging_rabbit".into(), rabbit.into());
        let mut fast = Dict::new();
        fast.insert("filesystem_store_datadir".into(), "/a".into());
        fast.insert("filesystem_store_file_perm".into(), 0.into());
        layer.insert("fast".into(), fast.clone().into());
        layer.insert("os_glance_staging_store".into(), fast.clone().into());
        layer.insert("stray".into(), fast.into());
        layer.insert("toplevel".into(), 1.into());
        let mut nested = Dict::new();
        nested.insert("store".into(), Dict::new().into());
        layer.insert("glance".into(), nested.into());
        let mut ignored = Vec::new();
        retain_known(
            &mut layer,
            &store_ids(" fast:file, web : http"),
            &mut ignored,
        );
        ignored.sort();
        assert_eq!(
            ignored,
            [
                "DEFAULT.workers",
                "fast.filesystem_store_file_perm",
                "os_glance_staging_store.filesystem_store_file_perm",
                "oslo_messaging_rabbit.amqp_durable_queues",
                "stray.filesystem_store_datadir",
                "stray.filesystem_store_file_perm",
                "toplevel",
            ]
        );
        let kept: Vec<&str> = layer.keys().map(String::as_str).collect();
        assert_eq!(kept, ["DEFAULT", "fast", "os_glance_staging_store"]);
    }
}
