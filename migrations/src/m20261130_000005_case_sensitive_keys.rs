//! Property names and tags compared byte for byte on MySQL/MariaDB too.
//!
//! Their default collation there (`utf8mb4_general_ci`) is case-insensitive, so
//! `os_distro` and `OS_DISTRO` on one image, or the tags `Ubuntu` and `ubuntu`,
//! collide in the primary key, while the API (as on PostgreSQL and SQLite) holds
//! them apart: the second write failed with a duplicate-key error. A binary
//! collation makes MySQL agree with the other backends.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `table.column` as a 255-character utf8mb4 string with `collation`.
fn key_column(table: &str, column: &str, collation: &str) -> TableAlterStatement {
    Table::alter()
        .table(Alias::new(table))
        .modify_column(
            ColumnDef::new(Alias::new(column))
                .custom(Alias::new(format!(
                    "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {collation}"
                )))
                .not_null(),
        )
        .to_owned()
}

const KEYS: [(&str, &str); 2] = [("image_properties", "name"), ("image_tags", "value")];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::MySql {
            for (table, column) in KEYS {
                manager
                    .alter_table(key_column(table, column, "utf8mb4_bin"))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::MySql {
            for (table, column) in KEYS {
                manager
                    .alter_table(key_column(table, column, "utf8mb4_general_ci"))
                    .await?;
            }
        }
        Ok(())
    }
}
