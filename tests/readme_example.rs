//! The README's stateful-layer example is `examples/rate_limit_layer.rs`, which CI
//! compiles (clippy builds every example): this keeps the two the same text.

fn between<'a>(text: &'a str, begin: &str, end: &str) -> &'a str {
    let start = text
        .find(begin)
        .unwrap_or_else(|| panic!("no {begin:?} marker"))
        + begin.len();
    let stop = text[start..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end:?} marker"));
    &text[start..start + stop]
}

#[test]
fn the_readme_shows_the_rate_limit_example_as_it_compiles() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let example = std::fs::read_to_string(format!("{root}/examples/rate_limit_layer.rs")).unwrap();
    let shown = between(
        &readme,
        "<!-- begin: examples/rate_limit_layer.rs -->\n```rust\n",
        "```\n<!-- end: examples/rate_limit_layer.rs -->",
    );
    let compiled = between(&example, "// begin: README\n", "// end: README");
    assert_eq!(
        shown, compiled,
        "README.md and examples/rate_limit_layer.rs differ"
    );
    let lines = shown.lines().count();
    assert!(lines <= 30, "the example grew to {lines} lines");
}
