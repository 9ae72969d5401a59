//! Property values as long as the API accepts, on MySQL/MariaDB too.
//!
//! `image_properties.value` is `TEXT`: unlimited on PostgreSQL and SQLite, but
//! 64 KiB on MySQL/MariaDB, while a create body may hold a 10 MiB value (Glance
//! has no limit of its own). `LONGTEXT` holds up to 4 GiB there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn value_column(mysql_type: &str) -> TableAlterStatement {
    Table::alter()
        .table(Alias::new("image_properties"))
        .modify_column(
            ColumnDef::new(Alias::new("value"))
                .custom(Alias::new(mysql_type))
                .not_null(),
        )
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::MySql {
            manager.alter_table(value_column("LONGTEXT")).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::MySql {
            manager.alter_table(value_column("TEXT")).await?;
        }
        Ok(())
    }
}
