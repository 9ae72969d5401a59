//! What the integration tests (`tests/`) and the benches (`benches/`) share, so
//! none of them includes another's source file.
//!
//! - [`seed`]: a large, deterministic image catalogue written straight to the
//!   database, with the list requests measured over it;
//! - [`database`]: a database of its own on a database server, dropped afterwards;
//! - [`http`]: the requests API tests send, against a server's base URL;
//! - [`pg_count`]: a proxy that counts the statements sent to PostgreSQL.
//!
//! Starting servers stays in `tests/common`: the child-process one needs the
//! path of the test's own build of the binary (`CARGO_BIN_EXE_*`), and the
//! in-process one shares its set-up.

pub mod database;
pub mod http;
pub mod pg_count;
pub mod seed;
