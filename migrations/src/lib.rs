//! The schema of the image service, as sea-orm migrations that run unchanged on
//! SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! Timestamps are stored as integer microseconds since the epoch: every backend
//! orders and compares them exactly, which list markers rely on.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_images;
mod m20261124_000002_list_indexes;
mod m20261130_000003_long_property_values;
mod m20261130_000004_leases;
mod m20261130_000005_case_sensitive_keys;
mod m20261130_000006_tasks;
mod m20261130_000007_metadefs;
mod m20261130_000010_image_cache;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_images::Migration),
            Box::new(m20261124_000002_list_indexes::Migration),
            Box::new(m20261130_000003_long_property_values::Migration),
            Box::new(m20261130_000004_leases::Migration),
            Box::new(m20261130_000005_case_sensitive_keys::Migration),
            Box::new(m20261130_000006_tasks::Migration),
            Box::new(m20261130_000007_metadefs::Migration),
            Box::new(m20261130_000010_image_cache::Migration),
        ]
    }
}
