use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "metadef_properties")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub namespace_id: i32,
    pub name: String,
    /// The property's JSON schema, as text.
    pub json_schema: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
