//! Staging and import records in SQL. Every step of an import checks, in its
//! transaction, that the import still holds its lease and its lock (Glance's
//! `os_glance_import_task` property, whose primary key on `(image_id, name)`
//! makes taking it atomic): a step of an import whose lock was stolen or whose
//! lease recovery took back changes nothing.

use glance_layers::import::ImageChanges;
use glance_layers::import::records::{FAILED_IMPORT, IMPORT_LOCK, IMPORTING_TO_STORES, STAGED_AT};
use glance_layers::{ImageError, ImageStatus, StoredData, Task, TaskStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    SqlErr, TransactionTrait,
};

use super::entity::lease::{self, Column as LeaseColumn};
use super::entity::{image, location, property};
use super::leases::{Lease, held_on, release_on};
use super::repo::{insert_location, transition_on, with_data_attributes};
use super::tasks::{TaskChange, insert_task_on, update_task_on};
use super::{Repo, db_error, end_txn, to_micros};

type Result<T> = std::result::Result<T, ImageError>;

/// Why `begin_import` did not begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportBlocked {
    /// Another import holds the lock.
    Locked,
    /// The image left the status the import needs.
    Status,
}

/// What an import step changes besides its location.
pub struct StoreWritten<'a> {
    pub store_id: &'a str,
    pub stored: &'a StoredData,
    /// Set the data attributes: the first store written of a new image.
    pub first_data: bool,
    pub virtual_size: Option<i64>,
    pub activate: bool,
}

impl Repo {
    /// Records staged data: the stage lease released, the size and where the data
    /// is kept on the (still `uploading`) image. `false` when the lease is no
    /// longer held or the image left `uploading`.
    pub async fn finish_stage(
        &self,
        (lease_id, boot_id): (&str, &str),
        image_id: &str,
        size: u64,
        url: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = async {
            if !release_on(&txn, lease_id, boot_id).await? {
                return Ok((false, false));
            }
            let res = image::Entity::update_many()
                .col_expr(image::Column::Size, Expr::value(size as i64))
                .col_expr(image::Column::UpdatedAt, Expr::value(to_micros(at)))
                .filter(image::Column::Id.eq(image_id))
                .filter(image::Column::Status.eq(ImageStatus::Uploading.as_str()))
                .filter(image::Column::Deleted.eq(false))
                .exec(&txn)
                .await
                .map_err(db_error)?;
            if res.rows_affected != 1 {
                return Ok((false, false));
            }
            set_property(&txn, image_id, STAGED_AT, url).await?;
            Ok((true, true))
        }
        .await;
        end_txn(txn, outcome).await
    }

    /// Records `task`, takes the import lock for it (first dropping `stale`, a
    /// lock being stolen), moves the image `from → to`, sets the progress
    /// properties and takes the import lease, in one transaction: a lock always
    /// names a task that exists, and a refused import leaves no task.
    #[allow(clippy::too_many_arguments)]
    pub async fn begin_import(
        &self,
        image_id: &str,
        task: &Task,
        stale: Option<&str>,
        from: ImageStatus,
        to: ImageStatus,
        importing_to: &str,
        lease: &Lease,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<std::result::Result<(), ImportBlocked>> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = async {
            if let Some(stale) = stale {
                property::Entity::delete_many()
                    .filter(property::Column::ImageId.eq(image_id))
                    .filter(property::Column::Name.eq(IMPORT_LOCK))
                    .filter(property::Column::Value.eq(stale))
                    .exec(&txn)
                    .await
                    .map_err(db_error)?;
            }
            insert_task_on(&txn, task).await?;
            let lock = property::ActiveModel {
                image_id: Set(image_id.to_string()),
                name: Set(IMPORT_LOCK.to_string()),
                value: Set(task.id.clone()),
            };
            if let Err(e) = property::Entity::insert(lock)
                .exec_without_returning(&txn)
                .await
            {
                if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
                    return Ok((Err(ImportBlocked::Locked), false));
                }
                return Err(db_error(e));
            }
            let moved = if from == to {
                touch(&txn, image_id, from, at).await?
            } else {
                transition_on(&txn, image_id, from, to, at).await?
            };
            if !moved {
                return Ok((Err(ImportBlocked::Status), false));
            }
            set_property(&txn, image_id, IMPORTING_TO_STORES, importing_to).await?;
            set_property(&txn, image_id, FAILED_IMPORT, "").await?;
            lease::Entity::insert(lease::ActiveModel::from(lease.clone()))
                .exec_without_returning(&txn)
                .await
                .map_err(db_error)?;
            Ok((Ok(()), true))
        }
        .await;
        end_txn(txn, outcome).await
    }

    /// Points the import's lease at the store it writes next. `false` when the
    /// lease or the lock is no longer the import's.
    pub async fn import_writes_to(
        &self,
        lease_id: &str,
        boot_id: &str,
        image_id: &str,
        task_id: &str,
        store_id: &str,
    ) -> Result<bool> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = async {
            if !holds_lock(&txn, image_id, task_id).await? {
                return Ok((false, false));
            }
            let res = lease::Entity::update_many()
                .col_expr(LeaseColumn::StoreId, Expr::value(store_id))
                .col_expr(LeaseColumn::Partial, Expr::value(Option::<String>::None))
                .filter(LeaseColumn::Id.eq(lease_id))
                .filter(LeaseColumn::BootId.eq(boot_id))
                .exec(&txn)
                .await
                .map_err(db_error)?;
            if res.rows_affected != 1 {
                return Ok((false, false));
            }
            Ok((true, true))
        }
        .await;
        end_txn(txn, outcome).await
    }

    /// Records one store's copy of the data. `false` (nothing recorded) when the
    /// import lost its lease or lock, or the image was deleted.
    pub async fn import_stored(
        &self,
        image_id: &str,
        task_id: &str,
        lease: (&str, &str),
        written: StoreWritten<'_>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let now = to_micros(at);
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = async {
            if !holds_lock(&txn, image_id, task_id).await?
                || !held_on(&txn, lease.0, lease.1).await?
            {
                return Ok((false, false));
            }
            let stored = written.stored;
            let mut update = image::Entity::update_many()
                .col_expr(image::Column::UpdatedAt, Expr::value(now))
                .filter(image::Column::Id.eq(image_id))
                .filter(image::Column::Deleted.eq(false));
            if written.first_data {
                update = with_data_attributes(update, stored, written.virtual_size);
            }
            if written.activate {
                update = update
                    .col_expr(
                        image::Column::Status,
                        Expr::value(ImageStatus::Active.as_str()),
                    )
                    .filter(image::Column::Status.eq(ImageStatus::Importing.as_str()));
            }
            if update.exec(&txn).await.map_err(db_error)?.rows_affected != 1 {
                return Ok((false, false));
            }
            insert_location(&txn, image_id, &stored.location, now).await?;
            move_store(&txn, image_id, written.store_id, None).await?;
            Ok((true, true))
        }
        .await;
        end_txn(txn, outcome).await
    }

    /// Records what import plugins changed on an `importing` image: its formats
    /// and added properties. `false` (nothing changed) when the import lost its
    /// lock or the image left `importing`.
    pub async fn import_amend(
        &self,
        image_id: &str,
        task_id: &str,
        changes: &ImageChanges,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = async {
            if !holds_lock(&txn, image_id, task_id).await? {
                return Ok((false, false));
            }
            let mut update = image::Entity::update_many()
                .col_expr(image::Column::UpdatedAt, Expr::value(to_micros(at)))
                .filter(image::Column::Id.eq(image_id))
                .filter(image::Column::Status.eq(ImageStatus::Importing.as_str()))
                .filter(image::Column::Deleted.eq(false));
            if let Some(f) = &changes.disk_format {
                update = update.col_expr(image::Column::DiskFormat, Expr::value(f.as_str()));
            }
            if let Some(f) = &changes.container_format {
                update = update.col_expr(image::Column::ContainerFormat, Expr::value(f.as_str()));
            }
            if update.exec(&txn).await.map_err(db_error)?.rows_affected != 1 {
                return Ok((false, false));
            }
            for (name, value) in &changes.properties {
                set_property(&txn, image_id, name, value).await?;
            }
            Ok((true, true))
        }
        .await;
        end_txn(txn, outcome).await
    }

    /// Lists `store_id` as failed instead of importing. `false` when the import
    /// lost its lock.
    pub async fn import_store_failed(
        &self,
        image_id: &str,
        task_id: &str,
        store_id: &str,
    ) -> Result<bool> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = async {
            if !holds_lock(&txn, image_id, task_id).await? {
                return Ok((false, false));
            }
            move_store(&txn, image_id, store_id, Some(FAILED_IMPORT)).await?;
            Ok((true, true))
        }
        .await;
        end_txn(txn, outcome).await
    }

    /// Ends an import: lease and lock released, the importing list emptied, the
    /// staged data forgotten, and, when `requeue`, the image back from
    /// `importing` to `queued` without its locations. With `lease` the lease must
    /// still be held by `(id, boot_id)` (else `false`, nothing changes);
    /// recovery passes the lease it claimed.
    /// The task's outcome is recorded in the same transaction.
    pub async fn finish_import(
        &self,
        image_id: &str,
        task_id: &str,
        lease: (&str, &str),
        requeue: bool,
        outcome: &TaskChange<'_>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = async {
            if !release_on(&txn, lease.0, lease.1).await? {
                return Ok((false, false));
            }
            end_import(&txn, image_id, task_id, requeue, at).await?;
            // The task records the end whatever its status was (a task failed
            // by a lock thief stays failed).
            update_task_on(&txn, task_id, outcome).await?;
            Ok((true, true))
        }
        .await;
        end_txn(txn, outcome).await
    }

    /// After recovery removed a dead import's data: its lease gone, and with
    /// `task` (the lock's holder) the import ended as [`Self::finish_import`]
    /// ends a failed one, and the task failed.
    pub async fn settle_import(
        &self,
        claimed: &Lease,
        token: &str,
        task: Option<&str>,
        requeue: bool,
        task_ttl: chrono::Duration,
    ) -> Result<()> {
        let now = chrono::Utc::now();
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = async {
            if !release_on(&txn, &claimed.id, token).await? {
                return Ok(((), false));
            }
            if let Some(task) = task {
                let failure = TaskChange {
                    from: &[TaskStatus::Pending, TaskStatus::Processing],
                    to: TaskStatus::Failure,
                    message: "Import did not finish: the server running it stopped.",
                    result: None,
                    expires_at: Some(now + task_ttl),
                };
                end_import(&txn, &claimed.image_id, task, requeue, now).await?;
                update_task_on(&txn, task, &failure).await?;
            }
            Ok(((), true))
        }
        .await;
        end_txn(txn, outcome).await
    }
}

/// The end of an import inside `txn`; see [`Repo::finish_import`].
pub(crate) async fn end_import<C: ConnectionTrait>(
    txn: &C,
    image_id: &str,
    task_id: &str,
    requeue: bool,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    property::Entity::delete_many()
        .filter(property::Column::ImageId.eq(image_id))
        .filter(property::Column::Name.eq(IMPORT_LOCK))
        .filter(property::Column::Value.eq(task_id))
        .exec(txn)
        .await
        .map_err(db_error)?;
    set_property(txn, image_id, IMPORTING_TO_STORES, "").await?;
    property::Entity::delete_many()
        .filter(property::Column::ImageId.eq(image_id))
        .filter(property::Column::Name.eq(STAGED_AT))
        .exec(txn)
        .await
        .map_err(db_error)?;
    if requeue
        && transition_on(
            txn,
            image_id,
            ImageStatus::Importing,
            ImageStatus::Queued,
            at,
        )
        .await?
    {
        location::Entity::update_many()
            .col_expr(location::Column::Status, Expr::value("deleted"))
            .filter(location::Column::ImageId.eq(image_id))
            .exec(txn)
            .await
            .map_err(db_error)?;
    } else {
        touch_any(txn, image_id, at).await?;
    }
    Ok(())
}

async fn holds_lock(txn: &DatabaseTransaction, image_id: &str, task_id: &str) -> Result<bool> {
    Ok(property::Entity::find()
        .filter(property::Column::ImageId.eq(image_id))
        .filter(property::Column::Name.eq(IMPORT_LOCK))
        .filter(property::Column::Value.eq(task_id))
        .one(txn)
        .await
        .map_err(db_error)?
        .is_some())
}

/// Sets one property (delete and insert: see `Repo::update` on MySQL's collation).
pub(crate) async fn set_property<C: ConnectionTrait>(
    conn: &C,
    image_id: &str,
    name: &str,
    value: &str,
) -> Result<()> {
    property::Entity::delete_many()
        .filter(property::Column::ImageId.eq(image_id))
        .filter(property::Column::Name.eq(name))
        .exec(conn)
        .await
        .map_err(db_error)?;
    property::Entity::insert(property::ActiveModel {
        image_id: Set(image_id.to_string()),
        name: Set(name.to_string()),
        value: Set(value.to_string()),
    })
    .exec_without_returning(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn property_value<C: ConnectionTrait>(
    conn: &C,
    image_id: &str,
    name: &str,
) -> Result<Option<String>> {
    Ok(property::Entity::find()
        .filter(property::Column::ImageId.eq(image_id))
        .filter(property::Column::Name.eq(name))
        .one(conn)
        .await
        .map_err(db_error)?
        .map(|p| p.value))
}

/// Takes `store_id` off the importing list and, with `to`, adds it to that list;
/// both stay sorted and comma-joined, as Glance shows them.
async fn move_store<C: ConnectionTrait>(
    conn: &C,
    image_id: &str,
    store_id: &str,
    to: Option<&str>,
) -> Result<()> {
    let importing = property_value(conn, image_id, IMPORTING_TO_STORES).await?;
    set_property(
        conn,
        image_id,
        IMPORTING_TO_STORES,
        &edit_list(importing.as_deref(), store_id, false),
    )
    .await?;
    if let Some(to) = to {
        let list = property_value(conn, image_id, to).await?;
        set_property(
            conn,
            image_id,
            to,
            &edit_list(list.as_deref(), store_id, true),
        )
        .await?;
    }
    Ok(())
}

/// A comma-joined store list with `store_id` added or removed, sorted.
pub fn edit_list(list: Option<&str>, store_id: &str, add: bool) -> String {
    let mut items: Vec<&str> = list
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != store_id)
        .collect();
    if add {
        items.push(store_id);
    }
    items.sort_unstable();
    items.join(",")
}

/// Bumps `updated_at` if the image is in `status`; whether it was.
async fn touch<C: ConnectionTrait>(
    conn: &C,
    image_id: &str,
    status: ImageStatus,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool> {
    let res = image::Entity::update_many()
        .col_expr(image::Column::UpdatedAt, Expr::value(to_micros(at)))
        .filter(image::Column::Id.eq(image_id))
        .filter(image::Column::Status.eq(status.as_str()))
        .filter(image::Column::Deleted.eq(false))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(res.rows_affected == 1)
}

async fn touch_any<C: ConnectionTrait>(
    conn: &C,
    image_id: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    image::Entity::update_many()
        .col_expr(image::Column::UpdatedAt, Expr::value(to_micros(at)))
        .filter(image::Column::Id.eq(image_id))
        .filter(image::Column::Deleted.eq(false))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::edit_list;

    #[test]
    fn store_lists_stay_sorted_and_comma_joined() {
        assert_eq!(edit_list(None, "b", true), "b");
        assert_eq!(edit_list(Some("c,a"), "b", true), "a,b,c");
        assert_eq!(edit_list(Some("a,b,c"), "b", false), "a,c");
        assert_eq!(edit_list(Some(""), "a", false), "");
        assert_eq!(edit_list(Some("a"), "a", true), "a");
    }
}
