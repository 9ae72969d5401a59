//! Metadata definitions (metadefs): Glance's catalogue of the properties an
//! image, flavor, volume... may carry, in Glance's six tables.
//!
//! Names are unique where Glance's are: a namespace by its name, a resource type
//! by its name, and a property, object or tag by (namespace, name). Property and
//! object schemas are JSON text, as in Glance (`json_schema`). On MySQL/MariaDB
//! the name columns are binary-collated, as the image keys are
//! (`m20261130_000005`), so the API compares them byte for byte on every backend.

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A name column of `len` characters; binary collation on MySQL/MariaDB.
fn name_col(backend: DbBackend, column: &str, len: u32) -> ColumnDef {
    let mut col = ColumnDef::new(Alias::new(column));
    if backend == DbBackend::MySql {
        col.custom(Alias::new(format!(
            "VARCHAR({len}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )));
    } else {
        col.string_len(len);
    }
    col.not_null().to_owned()
}

/// Long text: MySQL's `TEXT` stops at 64 KiB, and a property's schema with a
/// long `enum` may pass it.
fn long_text(backend: DbBackend, column: &str, null: bool) -> ColumnDef {
    let mut col = ColumnDef::new(Alias::new(column));
    if backend == DbBackend::MySql {
        col.custom(Alias::new("MEDIUMTEXT"));
    } else {
        col.text();
    }
    if null {
        col.null();
    } else {
        col.not_null();
    }
    col.to_owned()
}

fn child_fk(table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_namespace"))
        .from(table, "namespace_id")
        .to("metadef_namespaces", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn unique(table: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(format!("ux_{table}_{}", cols.join("_")))
        .table(Alias::new(table))
        .unique()
        .if_not_exists();
    for c in cols {
        idx.col(Alias::new(*c));
    }
    idx.to_owned()
}

/// The child tables of a namespace: properties, objects and tags.
const CHILDREN: [&str; 3] = ["metadef_properties", "metadef_objects", "metadef_tags"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let b = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table("metadef_namespaces")
                    .if_not_exists()
                    .col(pk_auto("id"))
                    .col(name_col(b, "namespace", 80))
                    .col(string_len_null("display_name", 80))
                    .col(text_null("description"))
                    .col(string_len("visibility", 32))
                    .col(boolean("protected"))
                    .col(string_len_null("owner", 255))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique("metadef_namespaces", &["namespace"]))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("metadef_resource_types")
                    .if_not_exists()
                    .col(pk_auto("id"))
                    .col(name_col(b, "name", 80))
                    .col(boolean("protected"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique("metadef_resource_types", &["name"]))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("metadef_namespace_resource_types")
                    .if_not_exists()
                    .col(integer("resource_type_id"))
                    .col(integer("namespace_id"))
                    .col(string_len_null("properties_target", 80))
                    .col(string_len_null("prefix", 80))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .primary_key(
                        Index::create()
                            .col(Alias::new("resource_type_id"))
                            .col(Alias::new("namespace_id")),
                    )
                    .foreign_key(&mut child_fk("metadef_namespace_resource_types"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_metadef_ns_rt_resource_type")
                            .from("metadef_namespace_resource_types", "resource_type_id")
                            .to("metadef_resource_types", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A namespace's associations are read by namespace.
        manager
            .create_index(
                Index::create()
                    .name("ix_metadef_ns_rt_namespace")
                    .table(Alias::new("metadef_namespace_resource_types"))
                    .col(Alias::new("namespace_id"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        for table in CHILDREN {
            let mut t = Table::create();
            t.table(Alias::new(table))
                .if_not_exists()
                .col(pk_auto("id"))
                .col(integer("namespace_id"))
                .col(name_col(b, "name", 80))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut child_fk(table));
            match table {
                "metadef_properties" => {
                    t.col(long_text(b, "json_schema", false));
                }
                "metadef_objects" => {
                    t.col(text_null("description"))
                        .col(text_null("required"))
                        .col(long_text(b, "json_schema", false));
                }
                _ => {}
            }
            manager.create_table(t.to_owned()).await?;
            manager
                .create_index(unique(table, &["namespace_id", "name"]))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "metadef_tags",
            "metadef_objects",
            "metadef_properties",
            "metadef_namespace_resource_types",
            "metadef_resource_types",
            "metadef_namespaces",
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
