//! The image cache's index, as Glance's `centralized_db` driver keeps it: one
//! row per API node (`node_reference`, keyed by `worker_self_reference_url`)
//! and one per image a node caches (`cached_images`). The files themselves stay
//! on each node's disk; these rows say what each holds, for `GET /v2/cache`,
//! LRU pruning and `GET /v2/cache/nodes/{image_id}`.
//!
//! Glance's columns, except that times are integer microseconds since the epoch
//! like every other timestamp here.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("node_reference")
                    .if_not_exists()
                    .col(pk_auto("node_reference_id"))
                    .col(string_len_uniq("node_reference_url", 255))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("cached_images")
                    .if_not_exists()
                    .col(pk_auto("id"))
                    .col(string_len("image_id", 36))
                    .col(big_integer("last_accessed"))
                    .col(big_integer("last_modified"))
                    .col(big_integer("size"))
                    .col(integer("hits"))
                    .col(string_len_null("checksum", 32))
                    .col(integer("node_reference_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_cached_images_node_reference")
                            .from("cached_images", "node_reference_id")
                            .to("node_reference", "node_reference_id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One entry per image and node; `GET /v2/cache/nodes/{id}` reads by
        // image, the LRU prune by node and access time.
        manager
            .create_index(
                Index::create()
                    .name("ix_cached_images_image_id_node_reference_id")
                    .table(Alias::new("cached_images"))
                    .col(Alias::new("image_id"))
                    .col(Alias::new("node_reference_id"))
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_cached_images_node_last_accessed")
                    .table(Alias::new("cached_images"))
                    .col(Alias::new("node_reference_id"))
                    .col(Alias::new("last_accessed"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["cached_images", "node_reference"] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
