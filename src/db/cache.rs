//! The image cache's index in SQL (Glance's `centralized_db` driver): which
//! images each node caches, their size, hits and last access. Every query is
//! scoped to one node by its `node_reference_id`, except [`Repo::cache_nodes`].

use glance_layers::ImageError;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entity::cached_image::{self, Column};
use super::entity::node_reference;
use super::{Repo, db_error, is_duplicate};

pub use super::entity::cached_image::Model as CacheRow;

type Result<T> = std::result::Result<T, ImageError>;

impl Repo {
    /// The id of the node with this URL, recorded on first use.
    pub async fn cache_node(&self, url: &str) -> Result<i32> {
        let find = || {
            node_reference::Entity::find()
                .filter(node_reference::Column::NodeReferenceUrl.eq(url))
                .one(self.writer())
        };
        if let Some(row) = find().await.map_err(db_error)? {
            return Ok(row.node_reference_id);
        }
        let insert = node_reference::Entity::insert(node_reference::ActiveModel {
            node_reference_id: NotSet,
            node_reference_url: Set(url.to_string()),
        })
        .exec_without_returning(self.writer())
        .await;
        match insert {
            // Another node process with the same URL got there first.
            Err(e) if !is_duplicate(&e) => return Err(db_error(e)),
            _ => {}
        }
        find()
            .await
            .map_err(db_error)?
            .map(|r| r.node_reference_id)
            .ok_or_else(|| ImageError::internal("node reference vanished after insert"))
    }

    /// Records a file that just joined the node's cache (replacing a stale row).
    pub async fn cache_insert(
        &self,
        node: i32,
        image_id: &str,
        size: u64,
        checksum: Option<String>,
        now_us: i64,
    ) -> Result<()> {
        self.cache_remove(node, image_id).await?;
        cached_image::Entity::insert(cached_image::ActiveModel {
            id: NotSet,
            image_id: Set(image_id.to_string()),
            last_accessed: Set(now_us),
            last_modified: Set(now_us),
            size: Set(size as i64),
            hits: Set(0),
            checksum: Set(checksum),
            node_reference_id: Set(node),
        })
        .exec_without_returning(self.writer())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub async fn cache_row(&self, node: i32, image_id: &str) -> Result<Option<CacheRow>> {
        cached_image::Entity::find()
            .filter(Column::NodeReferenceId.eq(node))
            .filter(Column::ImageId.eq(image_id))
            .one(self.connection())
            .await
            .map_err(db_error)
    }

    /// One more hit, now.
    pub async fn cache_hit(&self, node: i32, image_id: &str, now_us: i64) -> Result<()> {
        cached_image::Entity::update_many()
            .col_expr(Column::Hits, Expr::col(Column::Hits).add(1))
            .col_expr(Column::LastAccessed, Expr::value(now_us))
            .filter(Column::NodeReferenceId.eq(node))
            .filter(Column::ImageId.eq(image_id))
            .exec(self.writer())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// The node's entries, least recently accessed first (the prune order).
    pub async fn cache_rows(&self, node: i32) -> Result<Vec<CacheRow>> {
        cached_image::Entity::find()
            .filter(Column::NodeReferenceId.eq(node))
            .order_by_asc(Column::LastAccessed)
            .order_by_asc(Column::Id)
            .all(self.connection())
            .await
            .map_err(db_error)
    }

    /// `true` if there was a row.
    pub async fn cache_remove(&self, node: i32, image_id: &str) -> Result<bool> {
        let res = cached_image::Entity::delete_many()
            .filter(Column::NodeReferenceId.eq(node))
            .filter(Column::ImageId.eq(image_id))
            .exec(self.writer())
            .await
            .map_err(db_error)?;
        Ok(res.rows_affected > 0)
    }

    pub async fn cache_remove_all(&self, node: i32) -> Result<u64> {
        let res = cached_image::Entity::delete_many()
            .filter(Column::NodeReferenceId.eq(node))
            .exec(self.writer())
            .await
            .map_err(db_error)?;
        Ok(res.rows_affected)
    }

    /// The URLs of the nodes that cache the image.
    pub async fn cache_nodes(&self, image_id: &str) -> Result<Vec<String>> {
        let nodes: Vec<i32> = cached_image::Entity::find()
            .select_only()
            .column(Column::NodeReferenceId)
            .filter(Column::ImageId.eq(image_id))
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db_error)?;
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let urls = node_reference::Entity::find()
            .filter(node_reference::Column::NodeReferenceId.is_in(nodes))
            .order_by_asc(node_reference::Column::NodeReferenceId)
            .all(self.connection())
            .await
            .map_err(db_error)?;
        Ok(urls.into_iter().map(|n| n.node_reference_url).collect())
    }
}
