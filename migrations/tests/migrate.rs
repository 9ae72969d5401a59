//! The migrations apply, revert and re-apply on SQLite; CI runs the same against
//! PostgreSQL and MariaDB through the server's integration suites.

use glance_migrations::{Migrator, MigratorTrait};
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, Statement};

#[tokio::test]
async fn up_down_up_on_sqlite() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let tables = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        ))
        .await
        .unwrap();
    let names: Vec<String> = tables
        .iter()
        .map(|r| r.try_get("", "name").unwrap())
        .collect();
    for t in [
        "image_locations",
        "image_members",
        "image_properties",
        "image_tags",
        "images",
    ] {
        assert!(names.contains(&t.to_string()), "{t} missing from {names:?}");
    }
    Migrator::down(&db, None).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
}
