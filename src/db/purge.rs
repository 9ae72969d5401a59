//! `glance-api db purge` and `db purge_images_table`: Glance's
//! `purge_deleted_rows` and `purge_deleted_rows_from_images`
//! (`glance/db/sqlalchemy/api.py`), on our schema.
//!
//! Only `images` and `tasks` are soft-deleted here. Glance also soft-deletes an
//! image's properties, tags, members and locations with it (same `deleted_at`);
//! ours stay attached to the deleted image, so "a child row deleted before the
//! cut-off" is "a child row of an image deleted before the cut-off".
//!
//! As in Glance since OSSN-0075, `db purge` keeps the `images` rows themselves:
//! a deleted image's row is what stops its id from being used again. They go
//! only with `db purge_images_table`, whose default age is longer.
//! The metadef tables have no soft delete, and are never touched.
//!
//! Each table loses at most `max_rows` rows per run (`-1`: all), oldest
//! deletion first. Statements are built from constants and integers only.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use super::to_micros;

/// `--age_in_days` of `db purge` when not given (Glance's).
pub const DEFAULT_AGE_IN_DAYS: i64 = 30;
/// `--age_in_days` of `db purge_images_table` when not given (Glance's).
pub const DEFAULT_IMAGES_AGE_IN_DAYS: i64 = 180;
/// `--max_rows` when not given (Glance's).
pub const DEFAULT_MAX_ROWS: i64 = 100;

/// Rows deleted by one statement when every row is to go (`max_rows = -1`): a
/// bounded `LIMIT` keeps each statement short, and MySQL needs one to keep the
/// inner select a materialized derived table (see [`delete_batch`]).
const BATCH: i64 = 10_000;

/// Why a purge did not run; the texts are glance-manage's, which exits 1 with them.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("Must supply a non-negative value for age.")]
    NegativeAge,
    #[error("Maximal age is count of days since epoch.")]
    AgeBeforeEpoch,
    #[error("Minimal rows limit is -1.")]
    RowsBelowMinimum,
    /// Glance keeps `max_rows` within a 4-byte integer, as its databases do.
    #[error("'max_rows' value out of range, must not exceed 2147483647.")]
    RowsAboveMaximum,
    #[error("Purge command failed: {0}")]
    Db(#[from] DbErr),
}

/// A validated `--age_in_days` and `--max_rows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeLimits {
    /// Rows deleted before this (microseconds since the epoch) go.
    cutoff: i64,
    /// `None`: no limit.
    max_rows: Option<i64>,
}

impl PurgeLimits {
    /// Checks the options as glance-manage does, against `now`.
    pub fn new(age_in_days: i64, max_rows: i64, now: DateTime<Utc>) -> Result<Self, PurgeError> {
        if age_in_days < 0 {
            return Err(PurgeError::NegativeAge);
        }
        if age_in_days >= now.timestamp() / 86_400 {
            return Err(PurgeError::AgeBeforeEpoch);
        }
        if max_rows < -1 {
            return Err(PurgeError::RowsBelowMinimum);
        }
        if max_rows > i64::from(i32::MAX) {
            return Err(PurgeError::RowsAboveMaximum);
        }
        Ok(PurgeLimits {
            cutoff: to_micros(now) - age_in_days * 86_400 * 1_000_000,
            max_rows: (max_rows != -1).then_some(max_rows),
        })
    }
}

/// Rows deleted from each table, in the order they were purged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub deleted: Vec<(&'static str, u64)>,
}

impl PurgeReport {
    /// Rows deleted from `table` (0 when it was not purged).
    pub fn rows(&self, table: &str) -> u64 {
        self.deleted
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }
}

/// A table that refers to `images` by `image_id`, and its primary key.
struct ImageChild {
    table: &'static str,
    key: &'static [&'static str],
}

/// Glance's order of the image tables (`models.py`), children before parents.
const IMAGE_CHILDREN: [ImageChild; 4] = [
    ImageChild {
        table: "image_properties",
        key: &["image_id", "name"],
    },
    ImageChild {
        table: "image_tags",
        key: &["image_id", "value"],
    },
    ImageChild {
        table: "image_locations",
        key: &["id"],
    },
    ImageChild {
        table: "image_members",
        key: &["image_id", "member"],
    },
];

/// `db purge`: task information of old deleted tasks first (Glance forces it,
/// as `task_info` has no soft delete of its own), then the child rows of old
/// deleted images, then the tasks. The images stay (see the module's notes).
pub async fn purge(db: &DatabaseConnection, limits: PurgeLimits) -> Result<PurgeReport, DbErr> {
    let cutoff = limits.cutoff;
    let mut report = PurgeReport::default();
    let deleted_tasks = format!(
        "FROM task_info c JOIN tasks p ON p.id = c.task_id \
         WHERE p.deleted = TRUE AND p.deleted_at < {cutoff} ORDER BY p.deleted_at, c.task_id"
    );
    let n = delete_rows(db, "task_info", &["task_id"], &deleted_tasks, limits).await?;
    report.deleted.push(("task_info", n));
    for child in &IMAGE_CHILDREN {
        let of_deleted_images = format!(
            "FROM {} c JOIN images p ON p.id = c.image_id \
             WHERE p.deleted = TRUE AND p.deleted_at < {cutoff} ORDER BY p.deleted_at, {}",
            child.table,
            qualified(child.key)
        );
        let n = delete_rows(db, child.table, child.key, &of_deleted_images, limits).await?;
        report.deleted.push((child.table, n));
    }
    let old_tasks = format!(
        "FROM tasks c WHERE c.deleted = TRUE AND c.deleted_at < {cutoff} \
         ORDER BY c.deleted_at, c.id"
    );
    let n = delete_rows(db, "tasks", &["id"], &old_tasks, limits).await?;
    report.deleted.push(("tasks", n));
    for (table, rows) in &report.deleted {
        tracing::info!(table, rows, "purged deleted rows");
    }
    Ok(report)
}

/// `db purge_images_table`: the rows of old deleted images, oldest first, each
/// with whatever child rows it still has (which `db purge` takes in batches,
/// and which would otherwise stop the delete on their foreign keys).
pub async fn purge_images_table(
    db: &DatabaseConnection,
    limits: PurgeLimits,
) -> Result<PurgeReport, DbErr> {
    let mut report = PurgeReport::default();
    let per_table = |report: &mut PurgeReport, table: &'static str, n: u64| match report
        .deleted
        .iter_mut()
        .find(|(t, _)| *t == table)
    {
        Some((_, total)) => *total += n,
        None => report.deleted.push((table, n)),
    };
    let mut left = limits.max_rows;
    loop {
        let batch = left.map_or(BATCH, |l| l.min(BATCH));
        if batch <= 0 {
            break;
        }
        // One image batch and its children in one transaction, so the children
        // deleted are those of exactly the images deleted.
        let old_images = format!(
            "SELECT id FROM (SELECT c.id FROM images c WHERE c.deleted = TRUE \
             AND c.deleted_at < {} ORDER BY c.deleted_at, c.id LIMIT {batch}) purge_batch",
            limits.cutoff
        );
        let txn = db.begin().await?;
        for child in &IMAGE_CHILDREN {
            let n = txn
                .execute_unprepared(&format!(
                    "DELETE FROM {} WHERE image_id IN ({old_images})",
                    child.table
                ))
                .await?
                .rows_affected();
            per_table(&mut report, child.table, n);
        }
        let n = txn
            .execute_unprepared(&format!("DELETE FROM images WHERE id IN ({old_images})"))
            .await?
            .rows_affected();
        txn.commit().await?;
        per_table(&mut report, "images", n);
        left = left.map(|l| l - n as i64);
        if (n as i64) < batch {
            break;
        }
    }
    if report.rows("images") == 0 {
        per_table(&mut report, "images", 0);
    }
    for (table, rows) in &report.deleted {
        tracing::info!(table, rows, "purged deleted rows");
    }
    Ok(report)
}

/// Deletes the first rows of `table` that `from` (a `FROM ... ORDER BY` over
/// `table` aliased `c`) selects, at most `limits.max_rows`, in batches.
async fn delete_rows(
    db: &DatabaseConnection,
    table: &str,
    key: &[&str],
    from: &str,
    limits: PurgeLimits,
) -> Result<u64, DbErr> {
    let mut total = 0u64;
    let mut left = limits.max_rows;
    loop {
        let batch = left.map_or(BATCH, |l| l.min(BATCH));
        if batch <= 0 {
            return Ok(total);
        }
        let n = delete_batch(db, table, key, from, batch).await?;
        total += n;
        left = left.map(|l| l - n as i64);
        if (n as i64) < batch {
            return Ok(total);
        }
    }
}

/// Glance's `DeleteFromSelect`: `DELETE ... WHERE key IN (SELECT key FROM
/// (SELECT ... LIMIT n) t)`. The select is wrapped in a derived table because
/// MySQL refuses a `LIMIT` in an `IN` subquery, and a subquery on the table
/// being deleted from unless it is materialized first.
async fn delete_batch(
    db: &DatabaseConnection,
    table: &str,
    key: &[&str],
    from: &str,
    limit: i64,
) -> Result<u64, DbErr> {
    let cols = key.join(", ");
    let sql = format!(
        "DELETE FROM {table} WHERE ({cols}) IN \
         (SELECT {cols} FROM (SELECT {} {from} LIMIT {limit}) purge_batch)",
        qualified(key)
    );
    Ok(db.execute_unprepared(&sql).await?.rows_affected())
}

/// `c.a, c.b`: the key columns of the table aliased `c`.
fn qualified(key: &[&str]) -> String {
    key.iter()
        .map(|k| format!("c.{k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn options_are_checked_as_glance_manage_does() {
        assert!(matches!(
            PurgeLimits::new(-1, 100, now()),
            Err(PurgeError::NegativeAge)
        ));
        assert!(matches!(
            PurgeLimits::new(1_800_000_000 / 86_400, 100, now()),
            Err(PurgeError::AgeBeforeEpoch)
        ));
        assert!(matches!(
            PurgeLimits::new(30, -2, now()),
            Err(PurgeError::RowsBelowMinimum)
        ));
        assert_eq!(
            PurgeError::RowsBelowMinimum.to_string(),
            "Minimal rows limit is -1."
        );
        assert!(matches!(
            PurgeLimits::new(30, 1 << 31, now()),
            Err(PurgeError::RowsAboveMaximum)
        ));
        assert!(PurgeLimits::new(30, (1 << 31) - 1, now()).is_ok());
    }

    #[test]
    fn the_cutoff_is_age_days_before_now_and_minus_one_is_unlimited() {
        let limits = PurgeLimits::new(2, -1, now()).unwrap();
        assert_eq!(limits.cutoff, (1_800_000_000 - 2 * 86_400) * 1_000_000);
        assert_eq!(limits.max_rows, None);
        assert_eq!(PurgeLimits::new(0, 5, now()).unwrap().max_rows, Some(5));
    }
}
