//! sea-orm entities, one file per table (see `migrations/`).

pub mod cached_image;
pub mod image;
pub mod lease;
pub mod location;
pub mod member;
pub mod node_reference;
pub mod property;
pub mod tag;
pub mod task;
pub mod task_info;
