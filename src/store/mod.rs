//! Storage backends behind `glance_layers::store::Store`.

mod file;
mod memory;

pub use file::FileStore;
pub use memory::MemoryStore;
