//! sea-orm entities, one file per table (see `migrations/`).

pub mod cached_image;
pub mod image;
pub mod lease;
pub mod location;
pub mod member;
pub mod metadef_association;
pub mod metadef_namespace;
pub mod metadef_object;
pub mod metadef_property;
pub mod metadef_resource_type;
pub mod metadef_tag;
pub mod node_reference;
pub mod property;
pub mod tag;
pub mod task;
pub mod task_info;
