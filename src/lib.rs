//! The server of a Glance-compatible image service: the Images API v2 over a tower
//! stack of domain layers (see the `glance-layers` crate), sea-orm for records and
//! pluggable stores for data. `app` assembles it all from `config`; `main.rs` is a
//! thin CLI over `app` and `server`.

pub mod api;
pub mod app;
pub mod cache;
pub mod config;
pub mod db;
pub mod fetch;
pub mod http;
pub mod import_plugins;
pub mod keystone;
pub mod metadef_catalogue;
pub mod notify;
pub mod recovery;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
