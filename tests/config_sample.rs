//! `etc/glance-api.conf.sample` is what `glance_api::config::sample_config()`
//! generates from the option definitions; this fails when they part.
//! `GLANCE_REGENERATE_SAMPLE=1 cargo test --test config_sample` rewrites it.

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
