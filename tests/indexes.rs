//! The list queries are served by indexes. For each request of the list bench
//! (`glance_testkit::seed`: the default list, each common filter and sort, later
//! pages, a member's view), the statement `Repo::list` runs is built by
//! `Repo::list_select`, the database explains it, and the plan must read `images`
//! (and `image_tags`, for a tag) through the index meant for it: never a full scan
//! nor a sort of every row.
//!
//! SQLite always, on a file seeded with a few thousand images and no statistics
//! (the server never runs ANALYZE, so its plans are those). PostgreSQL and
//! MariaDB too, at their standard local addresses unless `GLANCE_TEST_POSTGRES_URL`
//! or `GLANCE_TEST_MYSQL_URL` say otherwise (see `tests/common/services.rs`),
//! seeded with 20,000 images and ANALYZEd so the planner sees realistic numbers.
//!
//! To see a check fail, drop an index first:
//! `GLANCE_TEST_DROP_INDEX=ix_images_owner_created cargo test --test indexes`.

mod common;

use common::services::{self, Service};
use glance_api::db::Repo;
use glance_testkit::database::ScratchDatabase;
use glance_testkit::seed;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryTrait, Statement};

const SQLITE_ROWS: u64 = 3_000;
const SERVER_ROWS: u64 = 20_000;

/// How one table is read in a plan.
#[derive(Debug, Clone, PartialEq)]
struct Access {
    table: String,
    /// `None`: the whole table, row by row.
    index: Option<String>,
    /// The constraints the index is searched with, as the plan prints them.
    on: String,
}

#[derive(Debug, Default)]
struct Plan {
    reads: Vec<Access>,
    /// Every row is sorted (not a prefix-sorted or index-ordered read).
    full_sort: bool,
    text: String,
}

impl Plan {
    fn indexes_on(&self, table: &str) -> Vec<Option<&str>> {
        self.reads
            .iter()
            .filter(|a| a.table == table)
            .map(|a| a.index.as_deref())
            .collect()
    }
}

/// What a good plan for a request looks like.
struct Expect {
    /// `images` is read through one of these.
    images: &'static [&'static str],
    /// Each of these tables is read through one of its indexes listed.
    also: &'static [(&'static str, &'static [&'static str])],
    /// The first sort key is searched as a range (a marker page).
    range_on: Option<&'static str>,
}

const fn on(images: &'static [&'static str]) -> Expect {
    Expect {
        images,
        also: &[],
        range_on: None,
    }
}

fn expect(case: &str, backend: DbBackend) -> Expect {
    let mysql = backend == DbBackend::MySql;
    match case {
        "default" | "size_min=10GiB" => on(&["ix_images_deleted_created"]),
        // One image in five is public: reading the newest first and skipping
        // the others (about 125 rows for a page of 25) is as good as the
        // visibility index, and MariaDB's sampled statistics (ANALYZE reads 20
        // random pages) make it pick either from one run to the next.
        "visibility=public" => on(&["ix_images_visibility_created", "ix_images_deleted_created"]),
        // Nine images in ten are active: reading the newest first and skipping
        // the others is as good as the status index.
        "status=active" => on(&["ix_images_status_created", "ix_images_deleted_created"]),
        "owner" | "owner (small)" => on(&["ix_images_owner_created"]),
        "name" => on(&["ix_images_name_created"]),
        // MariaDB cannot index the expression: there a name sort sorts.
        "sort=name:asc" if !mysql => on(&["ix_images_sort_name_asc"]),
        "sort=name:desc" if !mysql => on(&["ix_images_sort_name_desc"]),
        "sort=name:asc" | "sort=name:desc" => on(&["ix_images_deleted_created"]),
        "tag" | "tag (rare)" => match backend {
            // The newest images first, each looked up in the tag's image ids
            // (read once from the value index).
            DbBackend::Sqlite => Expect {
                images: &["ix_images_deleted_created"],
                also: &[("image_tags", &["ix_image_tags_value"])],
                range_on: None,
            },
            // With statistics: a common tag is checked per image (primary key),
            // a rare one read from the value index first.
            DbBackend::Postgres if case == "tag" => Expect {
                images: &["ix_images_deleted_created"],
                also: &[("image_tags", &["image_tags_pkey", "ix_image_tags_value"])],
                range_on: None,
            },
            DbBackend::Postgres => Expect {
                images: &["images_pkey"],
                also: &[("image_tags", &["ix_image_tags_value"])],
                range_on: None,
            },
            _ => Expect {
                images: &["PRIMARY"],
                also: &[("image_tags", &["ix_image_tags_value"])],
                range_on: None,
            },
        },
        "marker 50%" | "marker 90%" => Expect {
            images: &["ix_images_deleted_created"],
            also: &[],
            range_on: (!mysql).then_some("created_at"),
        },
        "member:default" => Expect {
            images: &["ix_images_deleted_created"],
            also: &[(
                "image_members",
                &[
                    "sqlite_autoindex_image_members_1",
                    "image_members_pkey",
                    "ix_image_members_member_status",
                    "PRIMARY",
                ],
            )],
            range_on: None,
        },
        other => panic!("no expectation for the case {other:?}"),
    }
}

async fn explain(db: &DatabaseConnection, mut stmt: Statement) -> Plan {
    let backend = stmt.db_backend;
    stmt.sql = match backend {
        DbBackend::Sqlite => format!("EXPLAIN QUERY PLAN {}", stmt.sql),
        DbBackend::Postgres => format!("EXPLAIN (FORMAT JSON) {}", stmt.sql),
        _ => format!("EXPLAIN {}", stmt.sql),
    };
    let rows = db.query_all_raw(stmt).await.unwrap();
    let mut plan = Plan::default();
    match backend {
        DbBackend::Sqlite => {
            for r in rows {
                let line: String = r.try_get("", "detail").unwrap();
                plan.text.push_str(&format!("{line}\n"));
                if line == "USE TEMP B-TREE FOR ORDER BY" {
                    plan.full_sort = true;
                }
                // SCAN t | SEARCH t [USING [COVERING] INDEX i (a=? AND b<?)]
                let Some(rest) = line
                    .strip_prefix("SEARCH ")
                    .or_else(|| line.strip_prefix("SCAN "))
                else {
                    continue;
                };
                let (table, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                let index = rest
                    .split_once("INDEX ")
                    .map(|(_, i)| i.split(' ').next().unwrap_or("").to_string());
                let index = index.or_else(|| {
                    rest.contains("PRIMARY KEY")
                        .then(|| "INTEGER PRIMARY KEY".into())
                });
                plan.reads.push(Access {
                    table: table.to_string(),
                    index,
                    on: rest.split_once('(').map_or("", |(_, c)| c).to_string(),
                });
            }
        }
        DbBackend::Postgres => {
            let doc: serde_json::Value = rows[0].try_get("", "QUERY PLAN").unwrap();
            plan.text = serde_json::to_string_pretty(&doc).unwrap();
            walk_pg(&doc[0]["Plan"], None, &mut plan);
        }
        _ => {
            for r in rows {
                let table: Option<String> = r.try_get("", "table").unwrap();
                let kind: Option<String> = r.try_get("", "type").unwrap();
                let key: Option<String> = r.try_get("", "key").unwrap();
                let extra: Option<String> = r.try_get("", "Extra").unwrap();
                plan.text
                    .push_str(&format!("{table:?} {kind:?} {key:?} {extra:?}\n"));
                if let Some(table) = table {
                    plan.reads.push(Access {
                        table,
                        index: key.filter(|_| kind.as_deref() != Some("ALL")),
                        on: String::new(),
                    });
                }
            }
        }
    }
    plan
}

/// Collects the scans of a PostgreSQL plan (JSON format). A bitmap index scan
/// is charged to the heap scan above it.
fn walk_pg(node: &serde_json::Value, heap: Option<&str>, plan: &mut Plan) {
    let kind = node["Node Type"].as_str().unwrap_or("");
    let relation = node["Relation Name"].as_str();
    match kind {
        "Seq Scan" => plan.reads.push(Access {
            table: relation.unwrap_or("").into(),
            index: None,
            on: String::new(),
        }),
        "Index Scan" | "Index Only Scan" | "Bitmap Index Scan" => plan.reads.push(Access {
            table: relation.or(heap).unwrap_or("").into(),
            index: node["Index Name"].as_str().map(str::to_string),
            on: node["Index Cond"].as_str().unwrap_or("").into(),
        }),
        // Sorting more than a page's worth of candidates.
        "Sort" if node["Plans"][0]["Plan Rows"].as_f64().unwrap_or(0.0) > 1000.0 => {
            plan.full_sort = true;
        }
        _ => {}
    }
    let heap = if kind == "Bitmap Heap Scan" {
        relation
    } else {
        heap
    };
    for child in node["Plans"].as_array().into_iter().flatten() {
        walk_pg(child, heap, plan);
    }
}

/// Drops the indexes `GLANCE_TEST_DROP_INDEX` names, to see the checks fail.
async fn drop_requested(db: &DatabaseConnection) {
    let Ok(names) = std::env::var("GLANCE_TEST_DROP_INDEX") else {
        return;
    };
    for name in names.split(',').filter(|n| !n.is_empty()) {
        let table = ["image_tags", "image_members", "image_properties"]
            .into_iter()
            .find(|t| name.starts_with(&format!("ix_{t}_")))
            .unwrap_or("images");
        let sql = match db.get_database_backend() {
            DbBackend::MySql => format!("DROP INDEX {name} ON {table}"),
            _ => format!("DROP INDEX {name}"),
        };
        db.execute_unprepared(&sql).await.unwrap();
    }
}

/// Explains every case and returns what is wrong with each plan.
async fn check(db: &DatabaseConnection, rows: u64) -> Vec<String> {
    let backend = db.get_database_backend();
    let repo = Repo::new(db.clone());
    let mut problems = Vec::new();
    for case in seed::cases(rows) {
        let q = case.list_query();
        let select = repo.list_select(&q, case.scope()).await.unwrap();
        let plan = explain(db, select.build(backend)).await;
        let want = expect(case.name, backend);
        let mut wrong = Vec::new();
        for (table, allowed) in std::iter::once(&("images", want.images)).chain(want.also) {
            let used = plan.indexes_on(table);
            if used.is_empty() {
                wrong.push(format!("{table} is not read"));
            }
            for index in used {
                match index {
                    None => wrong.push(format!("{table} is scanned whole")),
                    Some(i) if !allowed.contains(&i) => {
                        wrong.push(format!("{table} is read through {i}, not {allowed:?}"))
                    }
                    Some(_) => {}
                }
            }
        }
        if plan.full_sort {
            wrong.push("every row is sorted".into());
        }
        if let Some(col) = want.range_on {
            let ranged = plan.reads.iter().any(|a| {
                a.table == "images"
                    && (a.on.contains(&format!("{col}<")) || a.on.contains(&format!("{col} <")))
            });
            if !ranged {
                wrong.push(format!("the index is not searched from the marker's {col}"));
            }
        }
        println!("== {} ({})\n{}", case.name, case.query, plan.text);
        if !wrong.is_empty() {
            problems.push(format!(
                "{}: {}\n{}",
                case.name,
                wrong.join("; "),
                plan.text
            ));
        }
    }
    problems
}

#[tokio::test]
async fn sqlite_list_queries_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("glance.sqlite").display()
    );
    let db = glance_api::db::connect(&url).await.unwrap();
    seed::seed(&db, SQLITE_ROWS).await.unwrap();
    drop_requested(&db).await;
    db.close().await.unwrap();
    // Fresh connections: a SQLite connection keeps the schema it read, and
    // `EXPLAIN` does not look for changes made by the others since.
    let db = glance_api::db::connect(&url).await.unwrap();
    let problems = check(&db, SQLITE_ROWS).await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn postgres_list_queries_use_indexes() {
    if let Some(admin) = services::url(Service::Postgres) {
        server_list_queries_use_indexes(&admin).await;
    }
}

#[tokio::test]
async fn mariadb_list_queries_use_indexes() {
    if let Some(admin) = services::url(Service::MariaDb) {
        server_list_queries_use_indexes(&admin).await;
    }
}

/// `admin`: an account of a database server that may create databases.
async fn server_list_queries_use_indexes(admin: &str) {
    let database = ScratchDatabase::create(admin, "glance_ix").await;
    let db = glance_api::db::connect(database.url()).await.unwrap();
    seed::seed(&db, SERVER_ROWS).await.unwrap();
    let analyze = match db.get_database_backend() {
        DbBackend::Postgres => "ANALYZE",
        _ => "ANALYZE TABLE images, image_tags, image_members",
    };
    db.execute_unprepared(analyze).await.unwrap();
    drop_requested(&db).await;
    let problems = check(&db, SERVER_ROWS).await;
    let _ = db.close().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
