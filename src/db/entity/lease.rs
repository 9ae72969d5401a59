use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "leases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `upload` (staging, imports and copies will add theirs).
    pub kind: String,
    pub image_id: String,
    pub store_id: String,
    pub node_id: String,
    /// The life of the node that holds it (or the token of a recovery claim).
    pub boot_id: String,
    /// The owner gave up but could not remove the data: only cleanup is left.
    pub abandoned: bool,
    /// What the store noted it must remove (see `Store::discard`).
    pub partial: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
