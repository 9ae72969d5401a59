//! The `glance-manage db`-like commands: `db purge` and `db purge_images_table`
//! delete exactly the rows Glance's purge would (on SQLite, and on the server
//! `GLANCE_TEST_DATABASE_URL` names when set), `db check` exits 3 with
//! migrations pending, and `serve` refuses a stale schema when told not to
//! migrate.

use std::collections::BTreeSet;
use std::process::Command;

use chrono::Utc;
use glance_api::db::entity::{image, location, member, property, tag, task, task_info};
use glance_api::db::purge::{self, PurgeLimits};
use glance_migrations::{Migrator, MigratorTrait};
use glance_testkit::database::ScratchDatabase;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, NotSet, Set};

const DAY: i64 = 86_400 * 1_000_000;
const BIN: &str = env!("CARGO_BIN_EXE_glance-api");

/// A database to run one scenario on: a SQLite file, or a scratch database on
/// the configured server (dropped with this).
struct Target {
    url: String,
    _dir: tempfile::TempDir,
    _scratch: Option<ScratchDatabase>,
}

async fn targets() -> Vec<Target> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    out.push(Target {
        url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("glance.sqlite").display()
        ),
        _dir: dir,
        _scratch: None,
    });
    if let Some(admin) = std::env::var("GLANCE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let scratch = ScratchDatabase::create(&admin, "glance_admin").await;
        out.push(Target {
            url: scratch.url().to_string(),
            _dir: tempfile::tempdir().unwrap(),
            _scratch: Some(scratch),
        });
    }
    out
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// An image `deleted` or not, deleted `days_ago` (`None`: no `deleted_at`),
/// with one location, one member, one tag and `properties` properties.
async fn image(
    db: &DatabaseConnection,
    id: &str,
    deleted: bool,
    days_ago: Option<i64>,
    properties: usize,
) {
    let now = now_micros();
    image::ActiveModel {
        id: Set(id.into()),
        name: Set(Some(id.into())),
        status: Set(if deleted { "deleted" } else { "active" }.into()),
        visibility: Set("shared".into()),
        protected: Set(false),
        os_hidden: Set(false),
        checksum: Set(None),
        os_hash_algo: Set(None),
        os_hash_value: Set(None),
        min_disk: Set(0),
        min_ram: Set(0),
        size: Set(None),
        virtual_size: Set(None),
        container_format: Set(None),
        disk_format: Set(None),
        owner: Set(Some("p".into())),
        created_at: Set(now - 400 * DAY),
        updated_at: Set(now - 400 * DAY),
        deleted: Set(deleted),
        deleted_at: Set(days_ago.map(|d| now - d * DAY)),
    }
    .insert(db)
    .await
    .unwrap();
    for i in 0..properties {
        property::ActiveModel {
            image_id: Set(id.into()),
            name: Set(format!("p{i}")),
            value: Set("v".into()),
        }
        .insert(db)
        .await
        .unwrap();
    }
    tag::ActiveModel {
        image_id: Set(id.into()),
        value: Set("t".into()),
    }
    .insert(db)
    .await
    .unwrap();
    member::ActiveModel {
        image_id: Set(id.into()),
        member: Set("m".into()),
        status: Set("accepted".into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    location::ActiveModel {
        id: NotSet,
        image_id: Set(id.into()),
        url: Set(format!("file:///{id}")),
        metadata: Set("{}".into()),
        status: Set("active".into()),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
}

async fn a_task(db: &DatabaseConnection, id: &str, deleted: bool, days_ago: Option<i64>) {
    let now = now_micros();
    task::ActiveModel {
        id: Set(id.into()),
        kind: Set("import".into()),
        status: Set("success".into()),
        owner: Set(Some("p".into())),
        expires_at: Set(None),
        created_at: Set(now - 400 * DAY),
        updated_at: Set(now - 400 * DAY),
        deleted_at: Set(days_ago.map(|d| now - d * DAY)),
        deleted: Set(deleted),
        image_id: Set(None),
        request_id: Set(None),
        user_id: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    task_info::ActiveModel {
        task_id: Set(id.into()),
        input: Set(Some("{}".into())),
        result: Set(None),
        message: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
}

/// Every row left, as `table:key` strings.
async fn rows(db: &DatabaseConnection) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in image::Entity::find().all(db).await.unwrap() {
        out.insert(format!("images:{}", r.id));
    }
    for r in property::Entity::find().all(db).await.unwrap() {
        out.insert(format!("image_properties:{}/{}", r.image_id, r.name));
    }
    for r in tag::Entity::find().all(db).await.unwrap() {
        out.insert(format!("image_tags:{}", r.image_id));
    }
    for r in member::Entity::find().all(db).await.unwrap() {
        out.insert(format!("image_members:{}", r.image_id));
    }
    for r in location::Entity::find().all(db).await.unwrap() {
        out.insert(format!("image_locations:{}", r.image_id));
    }
    for r in task::Entity::find().all(db).await.unwrap() {
        out.insert(format!("tasks:{}", r.id));
    }
    for r in task_info::Entity::find().all(db).await.unwrap() {
        out.insert(format!("task_info:{}", r.task_id));
    }
    out
}

/// The rows of image `id` other than its `images` row, with `properties`
/// properties.
fn children(id: &str, properties: usize) -> Vec<String> {
    let mut out: Vec<String> = (0..properties)
        .map(|i| format!("image_properties:{id}/p{i}"))
        .collect();
    for t in ["image_tags", "image_members", "image_locations"] {
        out.push(format!("{t}:{id}"));
    }
    out
}

fn without(all: &BTreeSet<String>, gone: &[String]) -> BTreeSet<String> {
    let mut left = all.clone();
    for g in gone {
        assert!(left.remove(g), "{g} was not there to be purged");
    }
    left
}

/// Runs the built binary on the database at `url`; returns (exit code, stdout,
/// stderr).
fn glance_api(url: &str, data_dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("GLANCE__DATABASE__CONNECTION", url)
        .env_remove("GLANCE_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn purge_deletes_exactly_the_old_soft_deleted_rows() {
    for target in targets().await {
        let db = glance_api::db::connect(&target.url).await.unwrap();
        // Live images: never touched, even with an old `deleted_at`.
        image(&db, "live", false, None, 2).await;
        image(&db, "not-soft-deleted", false, Some(90), 1).await;
        // Deleted long ago (the oldest first), and recently.
        image(&db, "oldest", true, Some(50), 3).await;
        image(&db, "old", true, Some(40), 1).await;
        image(&db, "recent", true, Some(10), 1).await;
        a_task(&db, "task-old", true, Some(40)).await;
        a_task(&db, "task-recent", true, Some(10)).await;
        a_task(&db, "task-live", false, None).await;
        let start = rows(&db).await;

        // Two rows per table at most, oldest deletion first: of image_properties,
        // two of "oldest"'s three.
        let limits = PurgeLimits::new(30, 2, Utc::now()).unwrap();
        let report = purge::purge(&db, limits).await.unwrap();
        let first: Vec<String> = [
            "image_properties:oldest/p0",
            "image_properties:oldest/p1",
            "image_tags:oldest",
            "image_tags:old",
            "image_members:oldest",
            "image_members:old",
            "image_locations:oldest",
            "image_locations:old",
            "tasks:task-old",
            "task_info:task-old",
        ]
        .map(String::from)
        .to_vec();
        let after_first = without(&start, &first);
        assert_eq!(rows(&db).await, after_first, "{}", target.url);
        assert_eq!(report.rows("image_properties"), 2);
        assert_eq!(report.rows("task_info"), 1);
        assert_eq!(report.rows("images"), 0, "db purge keeps image rows");

        // The rest, through the binary: all of it (-1), with Glance's spelling.
        let (code, stdout, stderr) = glance_api(
            &target.url,
            target._dir.path(),
            &["db", "purge", "--age_in_days", "30", "--max_rows", "-1"],
        );
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(
            stdout.contains("Deleted 2 row(s) from table image_properties"),
            "{stdout}"
        );
        let second = [
            "image_properties:oldest/p2".to_string(),
            "image_properties:old/p0".to_string(),
        ];
        let after_second = without(&after_first, &second);
        assert_eq!(rows(&db).await, after_second, "{}", target.url);

        // Then the image rows, with purge_images_table; the recent one stays.
        let limits = PurgeLimits::new(30, -1, Utc::now()).unwrap();
        let report = purge::purge_images_table(&db, limits).await.unwrap();
        assert_eq!(report.rows("images"), 2);
        let after_images = without(
            &after_second,
            &["images:oldest".to_string(), "images:old".to_string()],
        );
        assert_eq!(rows(&db).await, after_images, "{}", target.url);

        // What is left is exactly the untouchable rows.
        let mut expected: BTreeSet<String> = BTreeSet::new();
        for (id, props) in [("live", 2), ("not-soft-deleted", 1), ("recent", 1)] {
            expected.insert(format!("images:{id}"));
            expected.extend(children(id, props));
        }
        for t in ["task-recent", "task-live"] {
            expected.insert(format!("tasks:{t}"));
            expected.insert(format!("task_info:{t}"));
        }
        assert_eq!(after_images, expected);
        db.close().await.unwrap();
    }
}

#[tokio::test]
async fn purge_images_table_takes_the_images_children_with_them() {
    for target in targets().await {
        let db = glance_api::db::connect(&target.url).await.unwrap();
        image(&db, "a", true, Some(200), 2).await;
        image(&db, "b", true, Some(190), 1).await;
        image(&db, "c", true, Some(100), 1).await;
        let start = rows(&db).await;
        // One image per run: the oldest, with its child rows.
        let (code, stdout, stderr) = glance_api(
            &target.url,
            target._dir.path(),
            &["db", "purge_images_table", "--max-rows", "1"],
        );
        assert_eq!(code, 0, "{stdout}{stderr}");
        let mut gone = children("a", 2);
        gone.push("images:a".into());
        assert_eq!(rows(&db).await, without(&start, &gone), "{}", target.url);
        db.close().await.unwrap();
    }
}

#[tokio::test]
async fn purge_options_out_of_range_exit_1_with_glance_manages_message() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("glance.sqlite").display()
    );
    for (args, message) in [
        (
            &["db", "purge", "--max-rows", "-2"][..],
            "Minimal rows limit is -1.",
        ),
        (
            &["db", "purge", "--age-in-days", "-1"],
            "Must supply a non-negative value for age.",
        ),
        (
            &["db", "purge_images_table", "--age-in-days", "100000"],
            "Maximal age is count of days since epoch.",
        ),
    ] {
        let (code, _, stderr) = glance_api(&url, dir.path(), args);
        assert_eq!(code, 1, "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn check_exits_3_until_sync_and_serve_without_migrating_refuses_a_stale_schema() {
    for target in targets().await {
        let dir = target._dir.path();
        let (code, stdout, _) = glance_api(&target.url, dir, &["db", "check"]);
        assert_eq!(code, 3, "{stdout}");
        assert!(
            stdout.contains("m20261124_000001_create_images"),
            "{stdout}"
        );

        let (code, _, stderr) = glance_api(
            &target.url,
            dir,
            &["--bind", "127.0.0.1:0", "serve", "--no-migrate"],
        );
        assert_ne!(code, 0);
        assert!(
            stderr.contains("database schema is not up to date")
                && stderr.contains("glance-api db sync"),
            "{stderr}"
        );

        let (code, stdout, stderr) = glance_api(&target.url, dir, &["db", "sync"]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let (code, stdout, _) = glance_api(&target.url, dir, &["db", "check"]);
        assert_eq!(code, 0, "{stdout}");
        let (code, stdout, _) = glance_api(&target.url, dir, &["db", "version"]);
        assert_eq!(code, 0);
        let last = Migrator::migrations()
            .last()
            .map(|m| m.name().to_string())
            .unwrap();
        assert_eq!(stdout.trim(), last);
    }
}

#[tokio::test]
async fn the_app_refuses_to_start_on_a_stale_schema_when_auto_migrate_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = glance_api::config::Config::default();
    config.default.data_dir = dir.path().to_path_buf();
    config.database.auto_migrate = false;
    let Err(e) = glance_api::app::AppBuilder::new(config.clone())
        .build()
        .await
    else {
        panic!("the app started on an empty database");
    };
    assert!(
        e.to_string().contains("database schema is not up to date")
            && e.to_string().contains("run `glance-api db sync`"),
        "{e}"
    );
    // Once synced, it starts.
    glance_api::db::migrate(&config.database_url())
        .await
        .unwrap();
    assert!(
        glance_api::app::AppBuilder::new(config)
            .build()
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn recover_runs_the_start_up_sweep_once_and_not_beside_a_live_node() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("glance.sqlite").display()
    );
    // Temporary data of an upload no lease accounts for (a crash before leases).
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let stray = images.join(format!(".{}.{}.tmp", uuid::Uuid::new_v4(), "f".repeat(32)));
    std::fs::write(&stray, b"old").unwrap();

    // A live process of this node: the sweep would take its uploads for dead.
    let node = glance_api::recovery::NodeIdentity::establish(None, dir.path()).unwrap();
    let (code, _, stderr) = glance_api(&url, dir.path(), &["recover"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("another process runs as node"), "{stderr}");
    assert!(stray.exists());
    drop(node);

    let (code, stdout, stderr) = glance_api(&url, dir.path(), &["recover"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("stray data removed: 1"), "{stdout}");
    assert!(!stray.exists());
}
