//! What the integration tests (`tests/`) and the benches (`benches/`) share, so
//! none of them includes another's source file.
//!
//! - [`seed`]: a large, deterministic image catalogue written straight to the
//!   database, with the list requests measured over it;
//! - [`database`]: a database of its own on a database server, dropped afterwards;
//! - [`pg_count`]: a proxy that counts the statements sent to PostgreSQL;

pub mod database;
pub mod pg_count;
pub mod seed;
