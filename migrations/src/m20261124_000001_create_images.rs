use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn index(table: &str, name: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(Alias::new(table)).if_not_exists();
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
                    .table("images")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len_null("name", 255))
                    .col(string_len("status", 30))
                    .col(string_len("visibility", 20))
                    .col(boolean("protected"))
                    .col(boolean("os_hidden"))
                    .col(string_len_null("checksum", 32))
                    .col(string_len_null("os_hash_algo", 64))
                    .col(string_len_null("os_hash_value", 128))
                    .col(big_integer("min_disk"))
                    .col(big_integer("min_ram"))
                    .col(big_integer_null("size"))
                    .col(big_integer_null("virtual_size"))
                    .col(string_len_null("container_format", 32))
                    .col(string_len_null("disk_format", 32))
                    .col(string_len_null("owner", 255))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .col(boolean("deleted"))
                    .col(big_integer_null("deleted_at"))
                    .to_owned(),
            )
            .await?;
        // The list query filters on `deleted` and sorts by (created_at, id) by
        // default; the others serve Glance's filters and sort keys.
        for (name, cols) in [
            (
                "ix_images_deleted_created",
                &["deleted", "created_at", "id"][..],
            ),
            ("ix_images_owner", &["owner"][..]),
            ("ix_images_status", &["status"][..]),
            ("ix_images_visibility", &["visibility"][..]),
            ("ix_images_name", &["name"][..]),
            ("ix_images_updated_at", &["updated_at"][..]),
            ("ix_images_size", &["size"][..]),
            ("ix_images_checksum", &["checksum"][..]),
            ("ix_images_os_hash_value", &["os_hash_value"][..]),
        ] {
            manager.create_index(index("images", name, cols)).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table("image_properties")
                    .if_not_exists()
                    .col(string_len("image_id", 36))
                    .col(string_len("name", 255))
                    .col(text("value"))
                    .primary_key(Index::create().col("image_id").col("name"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_image_properties_image")
                            .from("image_properties", "image_id")
                            .to("images", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "image_properties",
                "ix_image_properties_name",
                &["name"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("image_tags")
                    .if_not_exists()
                    .col(string_len("image_id", 36))
                    .col(string_len("value", 255))
                    .primary_key(Index::create().col("image_id").col("value"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_image_tags_image")
                            .from("image_tags", "image_id")
                            .to("images", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("image_tags", "ix_image_tags_value", &["value"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("image_members")
                    .if_not_exists()
                    .col(string_len("image_id", 36))
                    .col(string_len("member", 255))
                    .col(string_len("status", 20))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .primary_key(Index::create().col("image_id").col("member"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_image_members_image")
                            .from("image_members", "image_id")
                            .to("images", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "image_members",
                "ix_image_members_member_status",
                &["member", "status"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("image_locations")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string_len("image_id", 36))
                    .col(text("url"))
                    .col(text("metadata"))
                    .col(string_len("status", 30))
                    .col(big_integer("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_image_locations_image")
                            .from("image_locations", "image_id")
                            .to("images", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "image_locations",
                "ix_image_locations_image_id",
                &["image_id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "image_locations",
            "image_members",
            "image_tags",
            "image_properties",
            "images",
        ] {
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
