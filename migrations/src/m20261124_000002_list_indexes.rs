//! Indexes that let `GET /v2/images` stop after one page whatever the filter.
//!
//! Every list query has `deleted = false` and is ordered by `created_at, id` unless
//! asked otherwise. With an index on the filtered column alone, a database must
//! sort every match; SQLite (which has no statistics unless someone runs ANALYZE)
//! walks `ix_images_deleted_created` in order instead and tests each row, which
//! reads the whole table when the value is rare (a project with ten images).
//! (column, deleted, created_at, id) gives the matches already in order, and
//! replaces the index on the column alone.
//!
//! Sorting by name orders by `COALESCE(name, '')` (markers stay exact when names
//! are NULL), then by `created_at DESC, id DESC`. One index per direction of the
//! name reads that order as it is: (deleted, name, created_at DESC, id DESC)
//! forwards for `name:asc`, (deleted, name, created_at, id) backwards for
//! `name:desc`. MariaDB cannot index an expression (nor MySQL before 8.0.13), so
//! there a name sort still sorts.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (new index, the index on the column alone it replaces, the column).
const BY_FILTER: &[(&str, &str, &str)] = &[
    ("ix_images_owner_created", "ix_images_owner", "owner"),
    (
        "ix_images_visibility_created",
        "ix_images_visibility",
        "visibility",
    ),
    ("ix_images_status_created", "ix_images_status", "status"),
    ("ix_images_name_created", "ix_images_name", "name"),
];

/// Indexes on the name sort expression, as `src/db/list.rs` writes it.
const NAME_SORT: &[(&str, &str)] = &[
    ("ix_images_sort_name_asc", "created_at DESC, id DESC"),
    ("ix_images_sort_name_desc", "created_at, id"),
];

fn on_images(name: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(Alias::new("images")).if_not_exists();
    for c in cols {
        idx.col(Alias::new(*c));
    }
    idx.to_owned()
}

fn drop_on_images(name: &str) -> IndexDropStatement {
    Index::drop()
        .name(name)
        .table(Alias::new("images"))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, replaced, col) in BY_FILTER {
            manager
                .create_index(on_images(name, &[col, "deleted", "created_at", "id"]))
                .await?;
            manager.drop_index(drop_on_images(replaced)).await?;
        }
        if manager.get_database_backend() != DbBackend::MySql {
            for (name, rest) in NAME_SORT {
                manager
                    .get_connection()
                    .execute_unprepared(&format!(
                        "CREATE INDEX {name} ON images (deleted, (COALESCE(name, '')), {rest})"
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::MySql {
            for (name, _) in NAME_SORT {
                manager.drop_index(drop_on_images(name)).await?;
            }
        }
        for (name, replaced, col) in BY_FILTER {
            manager.create_index(on_images(replaced, &[col])).await?;
            manager.drop_index(drop_on_images(name)).await?;
        }
        Ok(())
    }
}
