//! HTTP-level middleware of our own (the rest comes from tower-http).

pub mod access;
pub mod cors;
pub mod health;
pub mod metrics_endpoint;
pub mod request_id;
