//! How many SQL statements the server sends PostgreSQL per API operation, counted
//! as `log_statement = all` would log them (each simple query, `BEGIN` and
//! `COMMIT` included, and each prepared-statement execution) by a proxy between
//! the server and the database (`glance_testkit::pg_count`). Every count is
//! printed with its statements; `--nocapture` shows them.
//!
//! PostgreSQL at its standard local address unless `GLANCE_TEST_POSTGRES_URL`
//! says otherwise (see `tests/common/services.rs`); skipped without it, except
//! under CI.

mod common;

use common::services::{self, Service};
use glance_api::config::NotificationDriver;
use glance_testkit::database::ScratchDatabase;
use glance_testkit::pg_count::{Kind, Statement, StatementCounter};
use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
use serde_json::{Value, json};

/// `GET /v2/images/{id}` of an existing image.
const GET_TARGET: usize = 4;
/// Create, get, patch (replace a property) and delete of one image, together.
const CYCLE_TARGET: usize = 14;
/// `PUT /v2/images/{id}/file` of a small body to a queued raw/bare image.
const UPLOAD_TARGET: usize = 10;
/// A page of the list: the page, then the children of all its images at once.
const LIST_TARGET: usize = 2;

/// What the counter sees of a known sequence: a transaction of one `SELECT`,
/// then the same `SELECT` again on its cached prepared statement.
#[tokio::test]
async fn the_counter_counts_what_postgres_would_log() {
    let Some(admin) = services::url(Service::Postgres) else {
        return;
    };
    let counter = StatementCounter::in_front_of(&admin).await.unwrap();
    let mut options = sea_orm::ConnectOptions::new(counter.route(&admin));
    // One connection, so the second SELECT reuses the first one's statement.
    options.max_connections(1).sqlx_logging(false);
    let db = sea_orm::Database::connect(options).await.unwrap();
    let select = || {
        sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT $1::int4 + 1 AS n",
            [41.into()],
        )
    };

    let mark = counter.mark();
    let txn = db.begin().await.unwrap();
    let row = txn.query_one_raw(select()).await.unwrap().unwrap();
    assert_eq!(row.try_get::<i32>("", "n").unwrap(), 42);
    txn.commit().await.unwrap();
    let ran = counter.since(mark);
    print_statements("BEGIN; SELECT; COMMIT", &ran);
    let connection = ran.first().map(|s| s.connection);
    let seen: Vec<(Kind, &str)> = ran.iter().map(|s| (s.kind, s.sql.as_str())).collect();
    assert_eq!(
        seen,
        [
            (Kind::Simple, "BEGIN"),
            (Kind::Extended, "SELECT $1::int4 + 1 AS n"),
            (Kind::Simple, "COMMIT"),
        ]
    );

    // Executed again without a new Parse: the text comes from the statement's name.
    let mark = counter.mark();
    db.query_one_raw(select()).await.unwrap().unwrap();
    let ran = counter.since(mark);
    print_statements("SELECT again", &ran);
    assert_eq!(ran.len(), 1);
    assert_eq!(
        (ran[0].kind, ran[0].sql.as_str()),
        (Kind::Extended, "SELECT $1::int4 + 1 AS n")
    );
    assert_eq!(Some(ran[0].connection), connection);
    let _ = db.close().await;
}

#[tokio::test]
async fn statements_per_operation_stay_within_targets() {
    let Some(admin) = services::url(Service::Postgres) else {
        return;
    };
    let database = ScratchDatabase::create(&admin, "glance_st").await;
    let counter = StatementCounter::in_front_of(&admin).await.unwrap();
    let s = common::start_on(counter.route(database.url()), |c| {
        // Nothing in the background while counting: no sweep, no lease renewal
        // (renewal runs every third of the lease), no broker.
        c.default.recovery_interval = 86_400;
        c.default.upload_lease_ttl = 86_400;
        c.oslo_messaging_notifications.driver = NotificationDriver::Noop;
    })
    .await;

    // Once unmeasured: the pool's connections are opened and each statement is
    // prepared on them, which happens once per connection, not per request.
    let warm = Round::run(&s, &counter).await;
    print_round("warm-up (not asserted)", &warm);
    let round = Round::run(&s, &counter).await;
    print_round("measured", &round);

    let mut over = Vec::new();
    for (what, ran, target) in [
        ("get", round.get.len(), GET_TARGET),
        ("create+get+patch+delete", round.cycle_len(), CYCLE_TARGET),
        ("upload", round.upload.len(), UPLOAD_TARGET),
        ("list", round.list.len(), LIST_TARGET),
    ] {
        if ran > target {
            over.push(format!("{what}: {ran} statements, target {target}"));
        }
    }
    assert!(over.is_empty(), "over target:\n{}", over.join("\n"));
}

/// The statements of each measured operation, on images made for the round.
struct Round {
    get: Vec<Statement>,
    create: Vec<Statement>,
    get_new: Vec<Statement>,
    patch: Vec<Statement>,
    delete: Vec<Statement>,
    upload: Vec<Statement>,
    list: Vec<Statement>,
}

impl Round {
    async fn run(s: &common::TestServer, counter: &StatementCounter) -> Round {
        let existing = s.create(json!({"name": "existing"})).await;
        let existing = existing["id"].as_str().unwrap().to_string();
        let get = measured(counter, async {
            let r = s
                .get(&format!("/v2/images/{existing}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "get");
        })
        .await;

        let mut id = String::new();
        let create = measured(counter, async {
            let body = json!({"name": "cycle", "disk_format": "raw",
                "container_format": "bare", "k": "v"});
            let r = s.post_json("/v2/images", body).send().await.unwrap();
            assert_eq!(r.status(), 201, "create");
            let image: Value = r.json().await.unwrap();
            id = image["id"].as_str().unwrap().to_string();
        })
        .await;
        let path = format!("/v2/images/{id}");
        let get_new = measured(counter, async {
            assert_eq!(s.get(&path).send().await.unwrap().status(), 200, "get");
        })
        .await;
        let patch = measured(counter, async {
            let change = json!([{"op": "replace", "path": "/k", "value": "w"}]);
            let r = s.patch(&path, change).send().await.unwrap();
            assert_eq!(r.status(), 200, "patch");
        })
        .await;
        let delete = measured(counter, async {
            assert_eq!(
                s.delete(&path).send().await.unwrap().status(),
                204,
                "delete"
            );
        })
        .await;

        let target = s.create(json!({"name": "upload"})).await;
        let target = target["id"].as_str().unwrap().to_string();
        let upload = measured(counter, async {
            let r = s.upload(&target, vec![7u8; 4096]).send().await.unwrap();
            assert_eq!(r.status(), 204, "upload");
        })
        .await;
        assert_eq!(s.image(&target).await["status"], "active");

        let list = measured(counter, async {
            let r = s.get("/v2/images?limit=25").send().await.unwrap();
            assert_eq!(r.status(), 200, "list");
            let page: Value = r.json().await.unwrap();
            let images = page["images"].as_array().unwrap();
            let uploaded = images.iter().find(|i| i["id"] == target.as_str()).unwrap();
            assert_eq!(
                uploaded["status"], "active",
                "the page has its images whole"
            );
        })
        .await;

        Round {
            get,
            create,
            get_new,
            patch,
            delete,
            upload,
            list,
        }
    }

    fn cycle_len(&self) -> usize {
        self.create.len() + self.get_new.len() + self.patch.len() + self.delete.len()
    }
}

/// The statements sent while `op` ran.
async fn measured(counter: &StatementCounter, op: impl Future<Output = ()>) -> Vec<Statement> {
    let mark = counter.mark();
    op.await;
    counter.since(mark)
}

fn print_round(label: &str, r: &Round) {
    println!("==== {label}");
    print_statements(&format!("get (target {GET_TARGET})"), &r.get);
    println!(
        "-- create+get+patch+delete: {} (target {CYCLE_TARGET})",
        r.cycle_len()
    );
    print_statements("create", &r.create);
    print_statements("get", &r.get_new);
    print_statements("patch", &r.patch);
    print_statements("delete", &r.delete);
    print_statements(&format!("upload (target {UPLOAD_TARGET})"), &r.upload);
    print_statements(&format!("list (target {LIST_TARGET})"), &r.list);
}

fn print_statements(label: &str, ran: &[Statement]) {
    println!("-- {label}: {} statements", ran.len());
    for s in ran {
        println!("   {s}");
    }
}
