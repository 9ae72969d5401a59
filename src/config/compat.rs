//! Glance's spellings of settings this server names differently, rewritten to
//! ours in one layer of configuration before it is read, so a glance-api.conf
//! keeps its meaning:
//!
//! - `[DEFAULT] bind_host` and `bind_port` make `bind` (`host:port`); a half
//!   left out keeps the `bind` the earlier layers give (`127.0.0.1:9292` by
//!   default). A `bind` in the same layer wins over them.
//! - `[paste_deploy] flavor`: a `keystone...` flavor is `[auth] mode = keystone`,
//!   the others (`caching`, `cachemanagement`, none) Glance's unauthenticated
//!   pipeline, `noauth`. An `[auth] mode` in the same layer wins.
//! - `[oslo_messaging_notifications] driver`: `messaging` (oslo's v1 envelope)
//!   is sent as `messagingv2`, and `test` is `noop`; `routing` is not
//!   implemented and leaves the driver as it was.
//! - `[DEFAULT] use_json` (oslo.log's JSON formatter) is `[telemetry]
//!   json_logs`; a `json_logs` in the same layer wins.
//! - `[glance_store] default_store = file` says what this server does anyway
//!   without `enabled_backends`; another value is reported as not implemented.
//!
//! Each rewrite that changes a meaning is described in `notes`.

use figment::value::{Dict, Value};

/// Rewrites `layer` in place; `bind_so_far` is `[DEFAULT] bind` as the earlier
/// layers leave it.
pub fn translate(layer: &mut Dict, bind_so_far: &str, notes: &mut Vec<String>) {
    bind(layer, bind_so_far, notes);
    flavor(layer, notes);
    notifications(layer, notes);
    json_logs(layer);
    if let Some(store) = section(layer, "glance_store")
        && store.get("default_store").and_then(text).as_deref() == Some("file")
    {
        store.remove("default_store");
    }
    layer.retain(|_, v| !matches!(v, Value::Dict(_, d) if d.is_empty()));
}

fn section<'a>(layer: &'a mut Dict, name: &str) -> Option<&'a mut Dict> {
    match layer.get_mut(name) {
        Some(Value::Dict(_, d)) => Some(d),
        _ => None,
    }
}

/// Section `name`, made empty first when the layer has none.
fn section_or_new<'a>(layer: &'a mut Dict, name: &str) -> &'a mut Dict {
    if !layer.contains_key(name) {
        layer.insert(name.into(), Dict::new().into());
    }
    section(layer, name).expect("inserted above")
}

/// A scalar as text: INI gives strings, TOML and the environment numbers too.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(_, s) => Some(s.clone()),
        Value::Num(..) | Value::Bool(..) | Value::Char(..) => {
            serde_json::to_value(value).ok().map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
        }
        _ => None,
    }
}

fn bind(layer: &mut Dict, bind_so_far: &str, notes: &mut Vec<String>) {
    let Some(default) = section(layer, "DEFAULT") else {
        return;
    };
    let host = default.remove("bind_host");
    let port = default.remove("bind_port");
    if host.is_none() && port.is_none() {
        return;
    }
    if default.contains_key("bind") {
        notes.push("DEFAULT.bind_host and bind_port are ignored: bind is set".into());
        return;
    }
    let (old_host, old_port) = match bind_so_far.rsplit_once(':') {
        Some((h, p)) => (h.trim_matches(['[', ']']).to_string(), p.to_string()),
        None => (bind_so_far.to_string(), "9292".to_string()),
    };
    let host = host.as_ref().and_then(text).unwrap_or(old_host);
    let port = port.as_ref().and_then(text).unwrap_or(old_port);
    let bind = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    default.insert("bind".into(), bind.into());
}

fn flavor(layer: &mut Dict, notes: &mut Vec<String>) {
    let Some(flavor) = section(layer, "paste_deploy").and_then(|p| p.remove("flavor")) else {
        return;
    };
    let flavor = text(&flavor).unwrap_or_default();
    let mode = if flavor.starts_with("keystone") {
        "keystone"
    } else if matches!(flavor.as_str(), "" | "caching" | "cachemanagement") {
        "noauth"
    } else {
        notes.push(format!(
            "paste_deploy.flavor {flavor:?} is not one of Glance's; [auth] mode decides"
        ));
        return;
    };
    let auth = section_or_new(layer, "auth");
    if auth.contains_key("mode") {
        notes.push("paste_deploy.flavor is ignored: [auth] mode is set".into());
    } else {
        auth.insert("mode".into(), mode.into());
    }
}

fn json_logs(layer: &mut Dict) {
    let Some(use_json) = section(layer, "DEFAULT").and_then(|d| d.remove("use_json")) else {
        return;
    };
    section_or_new(layer, "telemetry")
        .entry("json_logs".into())
        .or_insert(use_json);
}

fn notifications(layer: &mut Dict, notes: &mut Vec<String>) {
    let Some(section) = section(layer, "oslo_messaging_notifications") else {
        return;
    };
    match section.get("driver").and_then(text).as_deref() {
        Some("messaging") => {
            notes.push(
                "oslo_messaging_notifications.driver messaging: sent as messagingv2 \
                 (oslo.messaging's v2 envelope)"
                    .into(),
            );
            section.insert("driver".into(), "messagingv2".into());
        }
        Some("test") => {
            section.insert("driver".into(), "noop".into());
        }
        Some("routing") => {
            notes.push(
                "oslo_messaging_notifications.driver routing is not implemented; \
                 the driver stays as it was"
                    .into(),
            );
            section.remove("driver");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(pairs: &[(&str, &str, &str)]) -> Dict {
        let mut dict = Dict::new();
        for (s, k, v) in pairs {
            let entry = dict
                .entry(s.to_string())
                .or_insert_with(|| Dict::new().into());
            if let Value::Dict(_, d) = entry {
                d.insert(k.to_string(), (*v).into());
            }
        }
        dict
    }

    fn get(dict: &Dict, s: &str, k: &str) -> Option<String> {
        match dict.get(s) {
            Some(Value::Dict(_, d)) => d.get(k).and_then(text),
            _ => None,
        }
    }

    #[test]
    fn bind_host_and_port() {
        let mut notes = Vec::new();
        let mut l = layer(&[
            ("DEFAULT", "bind_host", "0.0.0.0"),
            ("DEFAULT", "bind_port", "9393"),
        ]);
        translate(&mut l, "127.0.0.1:9292", &mut notes);
        assert_eq!(get(&l, "DEFAULT", "bind").as_deref(), Some("0.0.0.0:9393"));
        assert_eq!(get(&l, "DEFAULT", "bind_host"), None);

        let mut l = layer(&[("DEFAULT", "bind_host", "::")]);
        translate(&mut l, "127.0.0.1:9000", &mut notes);
        assert_eq!(get(&l, "DEFAULT", "bind").as_deref(), Some("[::]:9000"));

        let mut l = layer(&[("DEFAULT", "bind_port", "1")]);
        translate(&mut l, "[::1]:9292", &mut notes);
        assert_eq!(get(&l, "DEFAULT", "bind").as_deref(), Some("[::1]:1"));
        assert!(notes.is_empty());

        let mut l = layer(&[("DEFAULT", "bind_port", "1"), ("DEFAULT", "bind", "a:2")]);
        translate(&mut l, "127.0.0.1:9292", &mut notes);
        assert_eq!(get(&l, "DEFAULT", "bind").as_deref(), Some("a:2"));
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn paste_flavors() {
        for (flavor, mode) in [
            ("keystone", Some("keystone")),
            ("keystone+cachemanagement", Some("keystone")),
            ("", Some("noauth")),
            ("caching", Some("noauth")),
            ("custom", None),
        ] {
            let mut notes = Vec::new();
            let mut l = layer(&[("paste_deploy", "flavor", flavor)]);
            translate(&mut l, "127.0.0.1:9292", &mut notes);
            assert_eq!(get(&l, "auth", "mode").as_deref(), mode, "{flavor}");
            assert!(!l.contains_key("paste_deploy"), "{flavor}");
            assert_eq!(notes.len(), usize::from(mode.is_none()), "{flavor}");
        }
        let mut notes = Vec::new();
        let mut l = layer(&[
            ("paste_deploy", "flavor", "keystone"),
            ("auth", "mode", "trusted-headers"),
        ]);
        translate(&mut l, "127.0.0.1:9292", &mut notes);
        assert_eq!(get(&l, "auth", "mode").as_deref(), Some("trusted-headers"));
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn notification_drivers_and_their_broker() {
        for (driver, ours) in [
            ("messagingv2", Some("messagingv2")),
            ("messaging", Some("messagingv2")),
            ("log", Some("log")),
            ("noop", Some("noop")),
            ("test", Some("noop")),
            ("routing", None),
        ] {
            let mut notes = Vec::new();
            let mut l = layer(&[
                ("oslo_messaging_notifications", "driver", driver),
                (
                    "oslo_messaging_notifications",
                    "transport_url",
                    "rabbit://n/",
                ),
            ]);
            translate(&mut l, "127.0.0.1:9292", &mut notes);
            let got = get(&l, "oslo_messaging_notifications", "driver");
            assert_eq!(got.as_deref(), ours, "{driver}");
            // The notifications' own broker stays theirs.
            assert_eq!(
                get(&l, "oslo_messaging_notifications", "transport_url").as_deref(),
                Some("rabbit://n/")
            );
        }
    }

    #[test]
    fn use_json_is_json_logs_unless_json_logs_is_set() {
        let mut notes = Vec::new();
        let mut l = layer(&[("DEFAULT", "use_json", "True")]);
        translate(&mut l, "127.0.0.1:9292", &mut notes);
        assert_eq!(get(&l, "telemetry", "json_logs").as_deref(), Some("True"));
        assert_eq!(get(&l, "DEFAULT", "use_json"), None);
        let mut l = layer(&[
            ("DEFAULT", "use_json", "True"),
            ("telemetry", "json_logs", "false"),
        ]);
        translate(&mut l, "127.0.0.1:9292", &mut notes);
        assert_eq!(get(&l, "telemetry", "json_logs").as_deref(), Some("false"));
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn default_store_file_is_what_we_do() {
        let mut notes = Vec::new();
        let mut l = layer(&[("glance_store", "default_store", "file")]);
        translate(&mut l, "127.0.0.1:9292", &mut notes);
        assert!(l.is_empty());
        let mut l = layer(&[("glance_store", "default_store", "rbd")]);
        translate(&mut l, "127.0.0.1:9292", &mut notes);
        assert_eq!(
            get(&l, "glance_store", "default_store").as_deref(),
            Some("rbd")
        );
    }
}
