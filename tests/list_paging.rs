//! Marker pages add up to the whole list: for each sort (NULL names and sizes
//! included), following `next` markers page after page returns every image once,
//! in the order of one unpaged query. It guards the range the list query adds on
//! the first sort key (`k1 <= marker AND (...)`), which lets an index start at the
//! marker. SQLite, PostgreSQL and MariaDB (at their standard local addresses
//! unless `GLANCE_TEST_POSTGRES_URL` or `GLANCE_TEST_MYSQL_URL` say otherwise).

mod common;

use common::services::{self, Service};
use glance_api::db::Repo;
use glance_layers::ListQuery;
use glance_testkit::database::ScratchDatabase;
use glance_testkit::seed;

const ROWS: u64 = 1_500;
const PAGE: u64 = 97;

async fn ids(repo: &Repo, case: &seed::Case, q: &ListQuery) -> Vec<String> {
    let page = repo.list(q, case.scope()).await.unwrap();
    page.into_iter().map(|i| i.id).collect()
}

async fn pages_add_up(url: &str) {
    let db = glance_api::db::connect(url).await.unwrap();
    seed::seed(&db, ROWS).await.unwrap();
    let repo = Repo::new(db);
    let sorts = [
        "",
        "&sort=name:asc",
        "&sort=name:desc",
        "&sort_key=name&sort_dir=asc",
        "&sort=size:asc",
        "&sort=size:desc,name:asc",
        "&sort=status:asc,created_at:asc",
        "&tag=gpu",
        "&owner=OWNER&sort=name:asc",
    ];
    for sort in sorts {
        for member_of in [None, Some(seed::project(7))] {
            let case = seed::Case {
                name: "paging",
                query: format!("limit={PAGE}{}", sort.replace("OWNER", &seed::project(3))),
                member_of,
            };
            let mut all = case.list_query();
            all.limit = 100_000;
            let whole = ids(&repo, &case, &all).await;
            assert!(!whole.is_empty(), "{}: nothing listed", case.query);
            let mut paged = Vec::new();
            let mut q = case.list_query();
            loop {
                let page = ids(&repo, &case, &q).await;
                paged.extend(page.iter().cloned());
                if (page.len() as u64) < PAGE {
                    break;
                }
                q.marker = page.last().cloned();
            }
            assert_eq!(
                paged, whole,
                "{} as {:?}: pages differ from the whole list",
                case.query, case.member_of
            );
        }
    }
}

#[tokio::test]
async fn sqlite_marker_pages_add_up() {
    let dir = tempfile::tempdir().unwrap();
    pages_add_up(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("glance.sqlite").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_marker_pages_add_up() {
    if let Some(admin) = services::url(Service::Postgres) {
        server_marker_pages_add_up(admin).await;
    }
}

#[tokio::test]
async fn mariadb_marker_pages_add_up() {
    if let Some(admin) = services::url(Service::MariaDb) {
        server_marker_pages_add_up(admin).await;
    }
}

/// `admin`: an account of a database server that may create databases.
async fn server_marker_pages_add_up(admin: String) {
    let database = ScratchDatabase::create(&admin, "glance_pg").await;
    pages_add_up(database.url()).await;
}
