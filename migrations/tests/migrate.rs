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
        "metadef_namespace_resource_types",
        "metadef_namespaces",
        "metadef_objects",
        "metadef_properties",
        "metadef_resource_types",
        "metadef_tags",
        "task_info",
        "tasks",
    ] {
        assert!(names.contains(&t.to_string()), "{t} missing from {names:?}");
    }
    Migrator::down(&db, None).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
}

/// The same on the database server CI names in `GLANCE_TEST_DATABASE_URL`
/// (PostgreSQL or MariaDB), in a database made for the test.
#[tokio::test]
async fn up_down_up_on_the_test_database_server() {
    let Some(admin_url) = std::env::var("GLANCE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        return;
    };
    let name = format!("glance_m_{}", std::process::id());
    let admin = Database::connect(&admin_url)
        .await
        .expect("the test database server");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap();
    let db = Database::connect(format!("{base}/{name}")).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    Migrator::down(&db, None).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE {name}"))
        .await
        .unwrap();
}
