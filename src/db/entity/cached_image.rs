use sea_orm::entity::prelude::*;

/// One image in one node's cache.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cached_images")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub image_id: String,
    /// Microseconds since the epoch, like every timestamp here.
    pub last_accessed: i64,
    pub last_modified: i64,
    pub size: i64,
    pub hits: i32,
    /// MD5 of the cached data, hex.
    pub checksum: Option<String>,
    pub node_reference_id: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
