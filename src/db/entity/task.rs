use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `import`, `api_image_import` or `location_import`.
    #[sea_orm(column_name = "type")]
    pub kind: String,
    pub status: String,
    pub owner: Option<String>,
    /// Microseconds since the epoch, as every timestamp.
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    pub deleted: bool,
    pub image_id: Option<String>,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl Related<super::task_info::Entity> for Entity {
    fn to() -> RelationDef {
        super::task_info::Relation::Task.def().rev()
    }
}

impl ActiveModelBehavior for ActiveModel {}
