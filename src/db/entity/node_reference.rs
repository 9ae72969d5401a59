use sea_orm::entity::prelude::*;

/// An API node that keeps an image cache, by `worker_self_reference_url`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "node_reference")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub node_reference_id: i32,
    pub node_reference_url: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
