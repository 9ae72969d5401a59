//! The database: connection, migrations, and the queries of the core service.

pub mod entity;
pub mod list;
mod repo;

use std::time::Duration;

use glance_layers::ImageError;
use glance_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

pub use repo::Repo;

/// Opens the database at `url` (`sqlite://…`, `postgres://…`, `mysql://…`) and brings
/// its schema up to date.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let pool = if url.starts_with("sqlite:") && url.contains(":memory:") {
        // Each connection would get its own empty in-memory database.
        1
    } else if url.starts_with("sqlite:") {
        8
    } else {
        16
    };
    let db = Database::connect(options(url, pool)).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// SQLite takes one writer at a time; others wait in its busy handler, which
/// sleeps 1, 2, 5, 10... ms between tries and made the write tail long. A pool
/// of one connection for writes queues them in order instead, without sleeping.
/// `None` where the database serves concurrent writers itself (or is in memory,
/// where `connect`'s one connection already does this).
pub async fn connect_writer(url: &str) -> Result<Option<DatabaseConnection>, DbErr> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") {
        return Ok(None);
    }
    Database::connect(options(url, 1)).await.map(Some)
}

fn options(url: &str, pool: u32) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .max_connections(pool)
        .min_connections(1);
    if url.starts_with("sqlite:") {
        // WAL lets readers run beside the one writer; NORMAL sync is durable in WAL
        // mode across process crashes, which is what we need for metadata.
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
        });
    }
    opts
}

/// Applies pending migrations only (`glance-api migrate`).
pub async fn migrate(url: &str) -> Result<(), DbErr> {
    connect(url).await.map(|_| ())
}

/// Maps a database failure to what a client should see; the cause goes to the log.
pub(crate) fn db_error(e: DbErr) -> ImageError {
    match &e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
            tracing::error!(error = %e, "database unavailable");
            ImageError::Unavailable("The database is not available.".into())
        }
        _ => {
            tracing::error!(error = %e, "database error");
            ImageError::internal(e)
        }
    }
}

/// Whether the statement failed on a unique key (a row with that key exists).
pub(crate) fn is_duplicate(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Microseconds since the epoch, the storage form of timestamps.
pub(crate) fn to_micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}
