//! What the fuzz targets share.
//!
//! The list-query and `Range` parsers live in the server crate, whose dependency
//! tree (databases, TLS, object stores: ~430 crates) would have to be built with
//! libFuzzer's instrumentation for two pure functions. They are compiled here from
//! the very same source file instead; it depends on `glance-layers` only.

#[path = "../../src/api/parse.rs"]
pub mod parse;
