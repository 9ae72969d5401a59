//! The database: connection, migrations, and the queries of the core service.

pub mod admin;
pub mod cache;
pub mod entity;
pub mod imports;
pub mod leases;
pub mod list;
pub mod metadefs;
pub mod purge;
mod repo;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;

use glance_layers::{ErrorSource, ImageError};
use glance_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

pub use repo::{Finish, Repo};

/// How the pools wait and how big they grow.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// How long a query waits for a connection before the request gets a 503.
    pub acquire_timeout: Duration,
    /// Connections per pool; `None` picks by backend.
    pub max_connections: Option<u32>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            acquire_timeout: Duration::from_secs(5),
            max_connections: None,
        }
    }
}

/// Ends a transaction with what was done in it: `Ok((value, true))` commits,
/// anything else rolls back. At once, explicitly: a transaction that is merely
/// dropped is rolled back only when its connection is next used, and until
/// then InnoDB keeps the row locks it took (and a `DROP DATABASE` waits).
pub(crate) async fn end_txn<T>(
    txn: sea_orm::DatabaseTransaction,
    outcome: Result<(T, bool), ImageError>,
) -> Result<T, ImageError> {
    match outcome {
        Ok((value, true)) => {
            txn.commit().await.map_err(db_error)?;
            Ok(value)
        }
        Ok((value, false)) => {
            txn.rollback().await.map_err(db_error)?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "could not roll a transaction back");
            }
            Err(e)
        }
    }
}

/// Opens the database at `url` (`sqlite://…`, `postgres://…`, `mysql://…`) and brings
/// its schema up to date.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    connect_with(url, PoolOptions::default()).await
}

/// [`connect`] with explicit pool options.
pub async fn connect_with(url: &str, pool: PoolOptions) -> Result<DatabaseConnection, DbErr> {
    let db = open_with(url, pool).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// Opens the database at `url` as it is, without touching its schema: for the
/// admin commands that report on it, and for `serve` when migrating is left to
/// the operator (`[database] auto_migrate = false`).
pub async fn open_with(url: &str, pool: PoolOptions) -> Result<DatabaseConnection, DbErr> {
    let size = if url.starts_with("sqlite:") && url.contains(":memory:") {
        // Each connection would get its own empty in-memory database.
        1
    } else if url.starts_with("sqlite:") {
        pool.max_connections.unwrap_or(8)
    } else {
        pool.max_connections.unwrap_or(16)
    };
    Database::connect(options(url, size, pool.acquire_timeout)).await
}

/// SQLite takes one writer at a time; others wait in its busy handler, which
/// sleeps 1, 2, 5, 10... ms between tries and made the write tail long. A pool
/// of one connection for writes queues them in order instead, without sleeping.
/// `None` where the database serves concurrent writers itself (or is in memory,
/// where `connect`'s one connection already does this).
pub async fn connect_writer(
    url: &str,
    pool: PoolOptions,
) -> Result<Option<DatabaseConnection>, DbErr> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") {
        return Ok(None);
    }
    Database::connect(options(url, 1, pool.acquire_timeout))
        .await
        .map(Some)
}

fn options(url: &str, size: u32, acquire_timeout: Duration) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        // A connect attempt never outlasts the wait for a connection.
        .connect_timeout(acquire_timeout.min(Duration::from_secs(10)))
        .acquire_timeout(acquire_timeout)
        .max_connections(size)
        .min_connections(1);
    // Every acquisition reports its wait as a trace event, which the telemetry
    // turns into the pool-wait histogram (sea-orm gives us no place to time it).
    let timed = log::LevelFilter::Trace;
    opts.map_sqlx_postgres_pool_opts(move |o| o.acquire_time_level(timed))
        .map_sqlx_mysql_pool_opts(move |o| o.acquire_time_level(timed))
        .map_sqlx_sqlite_pool_opts(move |o| o.acquire_time_level(timed));
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
/// A database that cannot be reached, or that dropped the connection under a
/// query, is a 503 (the client may retry); anything else is a 500.
pub(crate) fn db_error(e: DbErr) -> ImageError {
    if is_unavailable(&e) {
        tracing::error!(error = %e, "database unavailable");
        ImageError::unavailable(
            "The database is not available.",
            Some(Arc::new(e) as ErrorSource),
        )
    } else {
        tracing::error!(error = %e, "database error");
        ImageError::Internal {
            message: "database error".into(),
            source: Some(Arc::new(e)),
        }
    }
}

/// Whether `e` says the database is out of reach rather than that the statement
/// was wrong: no connection to be had, the connection broke, or the server is
/// shutting down or starting.
pub(crate) fn is_unavailable(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    let runtime = match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return false,
    };
    let sea_orm::RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    match sqlx.as_ref() {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::Protocol(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed => true,
        Sqlx::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: class 08 (connection exception), 57P01-57P03 (admin
            // shutdown, crash shutdown, cannot connect now). MySQL/MariaDB: 1053
            // (server shutdown), 2006 (gone away), 2013 (lost connection), 1927
            // (connection killed).
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "1053" | "2006" | "2013" | "1927"
                )
        }
        _ => false,
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

/// The pool's size and idle connections, read at each metrics scrape: a pool
/// at its `max_pool_size` with none idle is one where requests wait.
pub fn pool_readings(db: &DatabaseConnection) -> crate::telemetry::metrics::Readings {
    use crate::telemetry::metrics::{Kind, Readings};
    use sea_orm::DbBackend;
    fn of<DB: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<DB>) -> Readings {
        let (p1, p2) = (pool.clone(), pool.clone());
        Readings::default()
            .with(
                "glance_db_pool_connections",
                "Connections the database pool holds",
                Kind::Gauge,
                move || i64::from(p1.size()),
            )
            .with(
                "glance_db_pool_idle_connections",
                "Connections idle in the database pool",
                Kind::Gauge,
                move || p2.num_idle() as i64,
            )
    }
    match db.get_database_backend() {
        DbBackend::Postgres => of(db.get_postgres_connection_pool()),
        DbBackend::MySql => of(db.get_mysql_connection_pool()),
        DbBackend::Sqlite => of(db.get_sqlite_connection_pool()),
        // A backend with no pool we know of reports none.
        #[allow(unreachable_patterns)]
        _ => Readings::default(),
    }
}
