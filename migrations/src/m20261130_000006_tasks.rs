//! Tasks: Glance's record of background work (`tasks`), and what each was asked
//! to do and how it ended (`task_info`), as Glance splits them.
//!
//! An image import runs as a task of type `api_image_import`; the legacy
//! `/v2/tasks` API creates `import` tasks. A task that ends gets an `expires_at`
//! and is soft-deleted (`deleted`, `deleted_at`) by the first read after it.
//! `input` and `result` are JSON objects as text.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn index(name: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(Alias::new("tasks")).if_not_exists();
    for c in cols {
        idx.col(Alias::new(*c));
    }
    idx.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tasks")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("type", 30))
                    .col(string_len("status", 30))
                    .col(string_len_null("owner", 255))
                    .col(big_integer_null("expires_at"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .col(big_integer_null("deleted_at"))
                    .col(boolean("deleted"))
                    .col(string_len_null("image_id", 36))
                    .col(string_len_null("request_id", 64))
                    .col(string_len_null("user_id", 64))
                    .to_owned(),
            )
            .await?;
        // The list filters on `deleted` (and `owner` unless an admin asks) and
        // sorts by (created_at, id) by default; an image's tasks are read by
        // image; the sweep of expired tasks reads `deleted, expires_at`; a stale
        // import lock is judged by the status and age of its task.
        for (name, cols) in [
            (
                "ix_tasks_owner_created",
                &["owner", "deleted", "created_at", "id"][..],
            ),
            ("ix_tasks_deleted_created", &["deleted", "created_at", "id"]),
            ("ix_tasks_image", &["image_id", "created_at"]),
            ("ix_tasks_deleted_expires", &["deleted", "expires_at"]),
            ("ix_tasks_status_updated", &["status", "updated_at"]),
        ] {
            manager.create_index(index(name, cols)).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table("task_info")
                    .if_not_exists()
                    .col(string_len("task_id", 36).primary_key())
                    .col(text_null("input"))
                    .col(text_null("result"))
                    .col(text_null("message"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_task_info_task")
                            .from("task_info", "task_id")
                            .to("tasks", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["task_info", "tasks"] {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
