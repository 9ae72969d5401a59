//! Leases on work in flight that leaves data behind if its node dies.
//!
//! An upload holds a lease from the moment its image goes `saving` until the image
//! is `active` (the lease is released in the same transaction) or back in `queued`
//! with its data removed. The lease names the node that receives the data and that
//! node's life (`boot_id`), and is renewed while the node lives; `partial` is what
//! the store said it must remove if the work never finishes (an S3 multipart
//! upload id, say). Recovery reclaims a lease whose node restarted or whose
//! `expires_at` passed. `kind` lets staging, imports and copies reuse the table.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("leases")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("kind", 20))
                    .col(string_len("image_id", 36))
                    .col(string_len("store_id", 255))
                    .col(string_len("node_id", 255))
                    .col(string_len("boot_id", 36))
                    // Set once the owner gave up on the work but could not remove
                    // its data: only the cleanup is left to do.
                    .col(boolean("abandoned"))
                    .col(text_null("partial"))
                    .col(big_integer("created_at"))
                    .col(big_integer("expires_at"))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_leases_node", "node_id"),
            ("ix_leases_expires", "expires_at"),
            ("ix_leases_image", "image_id"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Alias::new("leases"))
                        .col(Alias::new(col))
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("leases").if_exists().to_owned())
            .await
    }
}
