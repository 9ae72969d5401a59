use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "images")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub visibility: String,
    pub protected: bool,
    pub os_hidden: bool,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub size: Option<i64>,
    pub virtual_size: Option<i64>,
    pub container_format: Option<String>,
    pub disk_format: Option<String>,
    pub owner: Option<String>,
    /// Microseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted: bool,
    pub deleted_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
