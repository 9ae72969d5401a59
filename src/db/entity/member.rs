use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "image_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub image_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub member: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
