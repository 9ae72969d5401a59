//! Storage backends behind `glance_layers::store::Store`.

mod file;
mod memory;
mod s3;

pub use file::FileStore;
pub use memory::MemoryStore;
pub use s3::{S3Options, S3Store};
