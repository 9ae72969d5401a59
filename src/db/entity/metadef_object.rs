use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "metadef_objects")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub namespace_id: i32,
    pub name: String,
    pub description: Option<String>,
    /// A JSON list of the required property names.
    pub required: Option<String>,
    /// name → property schema, as JSON text.
    pub json_schema: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
