//! Task records in SQL: Glance's `tasks` and `task_info` tables, the list with its
//! marker pagination, the compare-and-swap status changes a task runner makes, and
//! the lazy expiry Glance calls `_task_soft_delete`: a task whose `expires_at` has
//! passed is marked deleted by the first read that meets it, and is not returned.

use chrono::{DateTime, Utc};
use glance_layers::ImageError;
use glance_layers::request::SortDir;
use glance_layers::task::{Task, TaskQuery, TaskSortKey, TaskStatus};
use sea_orm::sea_query::{Expr, ExprTrait, Func, SimpleExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use super::entity::task::{self, Column};
use super::entity::task_info;
use super::{Repo, db_error, from_micros, to_micros};

type Result<T> = std::result::Result<T, ImageError>;

fn task_from_rows(row: task::Model, info: Option<task_info::Model>) -> Task {
    let json = |text: Option<String>| {
        text.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .filter(|v| !v.is_null())
    };
    let (input, result, message) = match info {
        Some(i) => (json(i.input), json(i.result), i.message),
        None => (None, None, None),
    };
    Task {
        // A status this code does not know is one it cannot resume.
        status: TaskStatus::parse(&row.status).unwrap_or(TaskStatus::Failure),
        id: row.id,
        kind: row.kind,
        owner: row.owner,
        expires_at: row.expires_at.map(from_micros),
        created_at: from_micros(row.created_at),
        updated_at: from_micros(row.updated_at),
        deleted_at: row.deleted_at.map(from_micros),
        deleted: row.deleted,
        image_id: row.image_id,
        request_id: row.request_id,
        user_id: row.user_id,
        input: input.unwrap_or(serde_json::Value::Null),
        result,
        message: message.unwrap_or_default(),
    }
}

/// JSON as stored: text, or NULL for null.
fn json_text(v: &serde_json::Value) -> Option<String> {
    (!v.is_null()).then(|| v.to_string())
}

/// Glance sorts by the key asked for, then `created_at`, then `id` (and by
/// `created_at, id` when the key is one of those two), all in one direction.
fn sort_keys(key: TaskSortKey) -> Vec<TaskSortKey> {
    match key {
        TaskSortKey::CreatedAt | TaskSortKey::Id => vec![TaskSortKey::CreatedAt, TaskSortKey::Id],
        k => vec![k, TaskSortKey::CreatedAt, TaskSortKey::Id],
    }
}

/// Keys that may be NULL compare through a sentinel that sorts first, so that
/// every backend orders them alike and markers stay exact.
fn sort_expr(key: TaskSortKey) -> SimpleExpr {
    let col = |c: Column| Expr::col((task::Entity, c));
    let text =
        |c: Column| -> SimpleExpr { Func::coalesce([col(c), Expr::Constant("".into())]).into() };
    let time = |c: Column| -> SimpleExpr {
        Func::coalesce([col(c), Expr::Constant((-1i64).into())]).into()
    };
    match key {
        TaskSortKey::Id => col(Column::Id),
        TaskSortKey::Type => col(Column::Kind),
        TaskSortKey::Status => col(Column::Status),
        TaskSortKey::CreatedAt => col(Column::CreatedAt),
        TaskSortKey::UpdatedAt => col(Column::UpdatedAt),
        TaskSortKey::Deleted => col(Column::Deleted),
        TaskSortKey::Owner => text(Column::Owner),
        TaskSortKey::ImageId => text(Column::ImageId),
        TaskSortKey::RequestId => text(Column::RequestId),
        TaskSortKey::UserId => text(Column::UserId),
        TaskSortKey::ExpiresAt => time(Column::ExpiresAt),
        TaskSortKey::DeletedAt => time(Column::DeletedAt),
    }
}

fn marker_value(key: TaskSortKey, m: &task::Model) -> sea_orm::Value {
    let text = |v: &Option<String>| v.clone().unwrap_or_default().into();
    match key {
        TaskSortKey::Id => m.id.clone().into(),
        TaskSortKey::Type => m.kind.clone().into(),
        TaskSortKey::Status => m.status.clone().into(),
        TaskSortKey::CreatedAt => m.created_at.into(),
        TaskSortKey::UpdatedAt => m.updated_at.into(),
        TaskSortKey::Deleted => m.deleted.into(),
        TaskSortKey::Owner => text(&m.owner),
        TaskSortKey::ImageId => text(&m.image_id),
        TaskSortKey::RequestId => text(&m.request_id),
        TaskSortKey::UserId => text(&m.user_id),
        TaskSortKey::ExpiresAt => m.expires_at.unwrap_or(-1).into(),
        TaskSortKey::DeletedAt => m.deleted_at.unwrap_or(-1).into(),
    }
}

/// Rows strictly after the marker in the sort order, as `src/db/list.rs` writes
/// it for images: `k1 >= m1 AND (k1 > m1 OR (k1 = m1 AND k2 > m2) OR ...)`, the
/// first term there so that an index on k1 starts at the marker.
fn after_marker(keys: &[TaskSortKey], dir: SortDir, marker: &task::Model) -> Condition {
    let past = |e: SimpleExpr, v: sea_orm::Value| match dir {
        SortDir::Asc => e.gt(v),
        SortDir::Desc => e.lt(v),
    };
    let mut from = Condition::all();
    if let Some(&first) = keys.first() {
        let v = marker_value(first, marker);
        from = from.add(match dir {
            SortDir::Asc => sort_expr(first).gte(v),
            SortDir::Desc => sort_expr(first).lte(v),
        });
    }
    let mut any = Condition::any();
    for (i, &key) in keys.iter().enumerate() {
        let mut all = Condition::all();
        for &before in &keys[..i] {
            all = all.add(sort_expr(before).eq(marker_value(before, marker)));
        }
        any = any.add(all.add(past(sort_expr(key), marker_value(key, marker))));
    }
    from.add(any)
}

impl Repo {
    /// Adds a task and its info row, in one transaction. `Conflict` when the id
    /// is taken.
    pub async fn insert_task(&self, t: &Task) -> Result<()> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        if let Err(e) = insert_task_on(&txn, t).await {
            txn.rollback().await.map_err(db_error)?;
            return Err(e);
        }
        txn.commit().await.map_err(db_error)
    }

    /// The live task with this id, with its input, result and message; `None`
    /// when there is none, or when it has expired (it is marked deleted now).
    pub async fn get_task(&self, id: &str) -> Result<Option<Task>> {
        let found = task::Entity::find_by_id(id.to_string())
            .find_also_related(task_info::Entity)
            .filter(Column::Deleted.eq(false))
            .one(self.connection())
            .await
            .map_err(db_error)?;
        let Some((row, info)) = found else {
            return Ok(None);
        };
        let now = to_micros(Utc::now());
        if row.expires_at.is_some_and(|e| e <= now) {
            self.expire_tasks(Condition::all().add(Column::Id.eq(id)), now)
                .await?;
            return Ok(None);
        }
        Ok(Some(task_from_rows(row, info)))
    }

    /// One page of live tasks, filtered and sorted as `q` says; `owner: None`
    /// lists every project's (an admin's view). The marker must be a live task
    /// the caller may see: `Invalid` when there is none, `Forbidden` when it is
    /// another project's, as Glance answers.
    pub async fn list_tasks(&self, q: &TaskQuery, owner: Option<&str>) -> Result<Vec<Task>> {
        let mut scope = Condition::all();
        if let Some(o) = owner {
            scope = scope.add(Column::Owner.eq(o));
        }
        self.expire_tasks(scope.clone(), to_micros(Utc::now()))
            .await?;
        let mut cond = scope.add(Column::Deleted.eq(false));
        if let Some(s) = q.status {
            cond = cond.add(Column::Status.eq(s.as_str()));
        }
        if let Some(k) = &q.kind {
            cond = cond.add(Column::Kind.eq(k.as_str()));
        }
        let keys = sort_keys(q.sort_key);
        if let Some(marker_id) = &q.marker {
            let marker = task::Entity::find_by_id(marker_id.clone())
                .filter(Column::Deleted.eq(false))
                .one(self.connection())
                .await
                .map_err(db_error)?
                .ok_or_else(|| {
                    ImageError::Invalid(format!("Task with the given id {marker_id} was not found"))
                })?;
            if owner.is_some() && marker.owner.is_some() && marker.owner.as_deref() != owner {
                return Err(ImageError::Forbidden(format!(
                    "Forbidding request, task {marker_id} is not visible"
                )));
            }
            cond = cond.add(after_marker(&keys, q.sort_dir, &marker));
        }
        let order = match q.sort_dir {
            SortDir::Asc => Order::Asc,
            SortDir::Desc => Order::Desc,
        };
        let mut select = task::Entity::find()
            .find_also_related(task_info::Entity)
            .filter(cond);
        for key in keys {
            select = select.order_by(sort_expr(key), order.clone());
        }
        let rows = select
            .limit(q.limit)
            .all(self.connection())
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(row, info)| task_from_rows(row, info))
            .collect())
    }

    /// The live tasks of an image, oldest first (Glance's `tasks_get_by_image`,
    /// which names no order).
    pub async fn tasks_of_image(&self, image_id: &str) -> Result<Vec<Task>> {
        let now = to_micros(Utc::now());
        self.expire_tasks(Condition::all().add(Column::ImageId.eq(image_id)), now)
            .await?;
        let rows = task::Entity::find()
            .find_also_related(task_info::Entity)
            .filter(Column::ImageId.eq(image_id))
            .filter(Column::Deleted.eq(false))
            .filter(
                Condition::any()
                    .add(Column::ExpiresAt.is_null())
                    .add(Column::ExpiresAt.gt(now)),
            )
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .all(self.connection())
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(row, info)| task_from_rows(row, info))
            .collect())
    }

    /// `from → to` if the task's status is one of `from`, with its message, and
    /// its `result` and `expires_at` when given (`None` leaves them as they
    /// are); `updated_at` becomes now. Returns whether the task changed.
    pub async fn update_task(
        &self,
        id: &str,
        from: &[TaskStatus],
        to: TaskStatus,
        message: &str,
        result: Option<&serde_json::Value>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let change = TaskChange {
            from,
            to,
            message,
            result,
            expires_at,
        };
        match update_task_on(&txn, id, &change).await {
            Ok(true) => {
                txn.commit().await.map_err(db_error)?;
                Ok(true)
            }
            other => {
                // Now, not when the connection is next used: InnoDB keeps the
                // lock on the row the update read until then.
                txn.rollback().await.map_err(db_error)?;
                other
            }
        }
    }

    /// A `processing` task's progress message ("Copied 512 MiB"); `updated_at`
    /// becomes now, which tells that the task still lives. Returns whether the
    /// task was still processing.
    pub async fn set_task_message(&self, id: &str, message: &str) -> Result<bool> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let res = task::Entity::update_many()
            .col_expr(Column::UpdatedAt, Expr::value(to_micros(Utc::now())))
            .filter(Column::Id.eq(id))
            .filter(Column::Deleted.eq(false))
            .filter(Column::Status.eq(TaskStatus::Processing.as_str()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if res.rows_affected != 1 {
            // Now, not when the connection is next used: InnoDB keeps the lock
            // on the row the update read until then.
            txn.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        task_info::Entity::update_many()
            .col_expr(task_info::Column::Message, Expr::value(message))
            .filter(task_info::Column::TaskId.eq(id))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// Marks the live tasks in `scope` whose `expires_at` is at or before `now`
    /// deleted, as Glance's `_task_soft_delete` does (`updated_at` stays). Looks
    /// first, on the readers, so that reads that find nothing due write nothing.
    async fn expire_tasks(&self, scope: Condition, now: i64) -> Result<()> {
        let due = scope
            .add(Column::Deleted.eq(false))
            .add(Column::ExpiresAt.lte(now));
        let any: Option<String> = task::Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(due.clone())
            .limit(1)
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(db_error)?;
        if any.is_some() {
            task::Entity::update_many()
                .col_expr(Column::Deleted, Expr::value(true))
                .col_expr(Column::DeletedAt, Expr::value(now))
                .filter(due)
                .exec(self.writer())
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }
}

/// A task's move to another status; see [`Repo::update_task`].
pub struct TaskChange<'a> {
    pub from: &'a [TaskStatus],
    pub to: TaskStatus,
    pub message: &'a str,
    pub result: Option<&'a serde_json::Value>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Inserts a task's two rows on `conn` (a transaction the caller ends).
pub(crate) async fn insert_task_on<C: ConnectionTrait>(conn: &C, t: &Task) -> Result<()> {
    let inserted = task::Entity::insert(task::ActiveModel {
        id: Set(t.id.clone()),
        kind: Set(t.kind.clone()),
        status: Set(t.status.as_str().into()),
        owner: Set(t.owner.clone()),
        expires_at: Set(t.expires_at.map(to_micros)),
        created_at: Set(to_micros(t.created_at)),
        updated_at: Set(to_micros(t.updated_at)),
        deleted_at: Set(t.deleted_at.map(to_micros)),
        deleted: Set(t.deleted),
        image_id: Set(t.image_id.clone()),
        request_id: Set(t.request_id.clone()),
        user_id: Set(t.user_id.clone()),
    })
    .exec_without_returning(conn)
    .await;
    match inserted {
        Err(e) if super::is_duplicate(&e) => {
            return Err(ImageError::Conflict(format!(
                "Task ID {} already exists!",
                t.id
            )));
        }
        other => other.map_err(db_error)?,
    };
    task_info::Entity::insert(task_info::ActiveModel {
        task_id: Set(t.id.clone()),
        input: Set(json_text(&t.input)),
        result: Set(t.result.as_ref().and_then(json_text)),
        message: Set(Some(t.message.clone())),
    })
    .exec_without_returning(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Applies `change` to task `id` on `conn` (a transaction the caller ends);
/// `false` when the task is not in one of `change.from`.
pub(crate) async fn update_task_on<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    change: &TaskChange<'_>,
) -> Result<bool> {
    let mut update = task::Entity::update_many()
        .col_expr(Column::Status, Expr::value(change.to.as_str()))
        .col_expr(Column::UpdatedAt, Expr::value(to_micros(Utc::now())));
    if let Some(at) = change.expires_at {
        update = update.col_expr(Column::ExpiresAt, Expr::value(to_micros(at)));
    }
    let res = update
        .filter(Column::Id.eq(id))
        .filter(Column::Deleted.eq(false))
        .filter(Column::Status.is_in(change.from.iter().map(|s| s.as_str())))
        .exec(conn)
        .await
        .map_err(db_error)?;
    if res.rows_affected != 1 {
        return Ok(false);
    }
    let mut info = task_info::Entity::update_many()
        .col_expr(task_info::Column::Message, Expr::value(change.message));
    if let Some(r) = change.result {
        info = info.col_expr(task_info::Column::Result, Expr::value(json_text(r)));
    }
    info.filter(task_info::Column::TaskId.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(true)
}
