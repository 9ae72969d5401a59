use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "image_locations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub image_id: String,
    pub url: String,
    /// JSON object.
    pub metadata: String,
    pub status: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
