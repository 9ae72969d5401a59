//! HTTP-level middleware of our own (the rest comes from tower-http).

pub mod cors;
pub mod request_id;
