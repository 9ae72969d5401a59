//! `etc/glance-api.conf.sample`: every option in glance-api.conf form, with its
//! doc comment, its type and its default, as oslo-config-generator writes
//! Glance's. `tests/config_sample.rs` keeps the shipped file equal to
//! [`sample_config`].

use super::Config;
use super::known::{RESERVED_STORES, SECTIONS, STORE_OPTIONS};
use super::option_doc::OptionDoc;

const WIDTH: usize = 70;

/// The paragraphs at the top of the sample.
const HEADER: &[&str] = &[
    "glance-api.conf for this server: Glance's own glance-api.conf works as it is. \
     Options this server does not implement are ignored, and named in one warning at \
     start. Glance's spellings read as ours: [DEFAULT] bind_host and bind_port (for \
     bind), [paste_deploy] flavor = keystone (for [auth] mode = keystone), \
     [oslo_messaging_notifications] transport_url (for [DEFAULT] transport_url), and \
     oslo.db's SQLAlchemy URLs in [database] connection.",
    "The same sections and keys may be written as TOML instead (a .toml file), and any \
     option set as GLANCE__SECTION__KEY=value in the environment \
     (GLANCE__DEFAULT__BIND=0.0.0.0:9292).",
    "Every option below is commented out and shows its default. Regenerate this file \
     with: GLANCE_REGENERATE_SAMPLE=1 cargo test --test config_sample",
];

/// The sample configuration, generated from the option definitions.
pub fn sample_config() -> String {
    let defaults = serde_json::to_value(Config::default()).expect("defaults serialize");
    let mut sections: Vec<_> = SECTIONS.iter().collect();
    // DEFAULT first, then by name, as oslo-config-generator orders them.
    sections.sort_by_key(|s| (s.name != "DEFAULT", s.name));
    let mut out = String::new();
    for (i, paragraph) in HEADER.iter().enumerate() {
        if i > 0 {
            out.push_str("#\n");
        }
        wrap(&mut out, paragraph);
    }
    for section in sections {
        out.push_str(&format!("\n[{}]\n", section.name));
        for option in section.options {
            render(&mut out, option, &defaults[section.name][option.key]);
        }
    }
    let store_defaults =
        serde_json::to_value(super::BackendSection::default()).expect("defaults serialize");
    out.push('\n');
    wrap(
        &mut out,
        &format!(
            "Each store named in [DEFAULT] enabled_backends (id:type) has a section named \
             by its id, and Glance's reserved stores {} have theirs, with these options.",
            RESERVED_STORES.join(" and ")
        ),
    );
    out.push_str("#[<store id>]\n");
    for option in STORE_OPTIONS {
        render(&mut out, option, &store_defaults[option.key]);
    }
    out
}

fn render(out: &mut String, option: &OptionDoc, default: &serde_json::Value) {
    out.push('\n');
    wrap(out, &option.help_text());
    out.push_str(&format!("# Type: {}\n", option.kind()));
    let value = match default {
        serde_json::Value::Null => "<None>".to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(","),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}:{}", scalar(v)))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let value = if value.is_empty() {
        String::new()
    } else {
        format!(" {value}")
    };
    out.push_str(&format!("#{} ={value}\n", option.key));
}

fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `text` as `# ` comment lines of at most `WIDTH` columns.
fn wrap(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        out.push_str(&line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_defaults_and_wrapping() {
        let kind = |rust_type| {
            OptionDoc {
                key: "k",
                rust_type,
                help: &[],
            }
            .kind()
        };
        assert_eq!(kind("Option < u64 >"), "integer");
        assert_eq!(kind("Vec<String>"), "list");
        assert_eq!(kind("std::collections::BTreeMap<String, String>"), "dict");
        assert_eq!(kind("Option<PathBuf>"), "string");
        assert_eq!(kind("AuthMode"), "string");
        let sample = sample_config();
        assert!(sample.contains("\n[DEFAULT]\n"));
        assert!(sample.contains("# Type: string\n#bind = 127.0.0.1:9292\n"));
        assert!(
            sample.contains("#enabled_import_methods = glance-direct,web-download,copy-image\n")
        );
        assert!(sample.contains("#public_endpoint = <None>\n"));
        assert!(sample.contains("#allowed_origin =\n"));
        // Help is wrapped; a default may run longer, as in oslo's samples.
        assert!(
            sample
                .lines()
                .filter(|l| l.starts_with("# "))
                .all(|l| l.len() <= WIDTH),
            "a help line is too long"
        );
    }

    /// Loaded as a glance-api.conf, the sample is the defaults with nothing
    /// ignored, both as shipped (all commented out) and with every option that
    /// has a default uncommented: the defaults it shows read back as they are.
    #[test]
    fn the_sample_loads_as_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("glance-api.conf");
        let sample = sample_config();
        let stores_at = sample.find("#[<store id>]").unwrap();
        let uncommented: String = sample[..stores_at]
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(opt) if !opt.starts_with(' ') && !opt.ends_with("<None>") => opt,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uncommented.contains("\nbind = 127.0.0.1:9292\n"));
        for text in [sample.clone(), uncommented] {
            std::fs::write(&path, text).unwrap();
            let loaded = Config::load_reporting(
                Some(&path),
                Vec::new(),
                &super::super::Overrides::default(),
            )
            .unwrap();
            assert_eq!(loaded.config, Config::default());
            assert!(loaded.ignored.is_empty(), "{:?}", loaded.ignored);
        }
    }
}
