//! The schema's state for the admin commands (`db sync`, `db version`,
//! `db check`) and for `serve` when it must not migrate: which migrations the
//! database has, and which it still needs.

use glance_migrations::{Migrator, MigratorTrait};
use sea_orm::{DatabaseConnection, DbErr};

use crate::config::Config;

/// `glance-manage db check`'s exit code when the schema needs upgrading (its
/// "run `glance-manage db expand`"). Ours has no expand/migrate/contract phases,
/// so 3 is the only "not up to date" code; 4 and 5 never occur.
pub const CHECK_PENDING_EXIT: u8 = 3;

/// The migrations applied to a database and those it still needs, by name
/// (`m20261124_000001_create_images`...), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    pub applied: Vec<String>,
    pub pending: Vec<String>,
}

impl SchemaStatus {
    /// The latest applied migration: the schema's version. `None` for a database
    /// no migration ever ran on.
    pub fn version(&self) -> Option<&str> {
        self.applied.last().map(String::as_str)
    }

    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Why an admin command, or `serve` with migrations left to the operator,
/// could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("data dir {}: {source}", .path.display())]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "database schema is not up to date ({} pending: {}); run `glance-api db sync`",
        .0.len(),
        .0.join(", ")
    )]
    Pending(Vec<String>),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The configured database as it is, schema untouched (`[database]
/// connection`, or SQLite in `data_dir`, which is made if missing).
pub async fn open(config: &Config) -> Result<DatabaseConnection, SchemaError> {
    let dir = &config.default.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| SchemaError::DataDir {
        path: dir.clone(),
        source,
    })?;
    let pool = super::PoolOptions {
        acquire_timeout: std::time::Duration::from_secs(config.database.pool_timeout),
        max_connections: Some(2),
    };
    Ok(super::open_with(&config.database_url(), pool).await?)
}

/// Reads the schema's state without changing anything: a database that never
/// saw a migration (no `seaql_migrations` table) has every migration pending,
/// and the table is not created, so a read-only account can run `db check`.
pub async fn status(db: &DatabaseConnection) -> Result<SchemaStatus, DbErr> {
    let mut status = SchemaStatus {
        applied: Vec::new(),
        pending: Vec::new(),
    };
    for m in Migrator::get_migration_with_status_read_only(db).await? {
        let name = m.name().to_string();
        match m.status() {
            sea_orm_migration::MigrationStatus::Applied => status.applied.push(name),
            sea_orm_migration::MigrationStatus::Pending => status.pending.push(name),
        }
    }
    Ok(status)
}

/// Applies every pending migration (`db sync`); returns the names applied, in
/// order, so the command can say what it did.
pub async fn sync(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let before = status(db).await?;
    Migrator::up(db, None).await?;
    Ok(before.pending)
}

/// `Ok` when no migration is pending; the refusal `serve` gives otherwise.
pub async fn ensure_current(db: &DatabaseConnection) -> Result<(), SchemaError> {
    let status = status(db).await?;
    if status.is_current() {
        Ok(())
    } else {
        Err(SchemaError::Pending(status.pending))
    }
}
