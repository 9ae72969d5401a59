//! `etc/glance-api.conf.sample` is what `glance_api::config::sample_config()`
//! generates from the option definitions; this fails when they part.
//! `GLANCE_REGENERATE_SAMPLE=1 cargo test --test config_sample` rewrites it.
//! The README's example configuration is checked here too.

#[test]
fn the_shipped_sample_is_generated_from_the_options() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/glance-api.conf.sample");
    let generated = glance_api::config::sample_config();
    if std::env::var_os("GLANCE_REGENERATE_SAMPLE").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let shipped = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        shipped == generated,
        "etc/glance-api.conf.sample is out of date; regenerate it with\n    \
         GLANCE_REGENERATE_SAMPLE=1 cargo test --test config_sample"
    );
}

/// The README's TOML example loads, and every option it sets is one this
/// server implements (a misspelling there would only be warned about).
#[test]
fn the_readme_configuration_names_only_implemented_options() {
    let readme = include_str!("../README.md");
    let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readme.toml");
    std::fs::write(&path, block).unwrap();
    let loaded =
        glance_api::config::Config::load_reporting(Some(&path), Vec::new(), &Default::default())
            .unwrap();
    assert!(loaded.ignored.is_empty(), "{:?}", loaded.ignored);
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
}
