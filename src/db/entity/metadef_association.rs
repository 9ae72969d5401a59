use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "metadef_namespace_resource_types")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub resource_type_id: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub namespace_id: i32,
    pub properties_target: Option<String>,
    pub prefix: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
