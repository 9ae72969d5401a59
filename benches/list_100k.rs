//! `GET /v2/images` queries over a catalogue of 100,000 images: the repository's
//! `list` (the page's query plus the three that load its properties, tags and
//! locations) as the API calls it, for Glance's default list, each common filter
//! and sort, a later page, and the default list as a project member sees it.
//!
//! SQLite always (a file in a temporary directory, opened by `db::connect` as the
//! server opens it: WAL, a pool, migrations applied). With
//! `GLANCE_BENCH_DATABASE_URL` naming an account that may create databases
//! (`postgres://postgres@127.0.0.1:5432/postgres`, `mysql://root@…/mysql`) the same
//! runs on that server too, in a database of its own, `ANALYZE`d after seeding.
//!
//! `cargo bench --bench list_100k` seeds 100,000 images and, after criterion's
//! figures, prints p50/p99 per query from 300 timed calls. Run as a test
//! (`cargo test --bench list_100k`) it seeds 5,000 and calls each query once.
//! `GLANCE_BENCH_ROWS` overrides either count.
//!
//! Measured 2026-11-24 on the 2-core CI machine, release build, p99 of 300 calls
//! (ms, 100,000 images; SQLite without statistics / PostgreSQL 15 ANALYZEd):
//! default 1.8 / 2.2, visibility=public 1.7 / 1.8, status=active 2.1 / 2.0,
//! owner 2.0 / 2.1, owner of 8 images 0.8 / 1.7, name 0.9 / 1.1, tag on 1.8 % of
//! images 6.3 / 5.1, tag on 9 images 25.5 / 1.6, sort=name:asc 1.8 / 2.4,
//! sort=name:desc 1.7 / 1.8, size_min 1.6 / 1.6, marker half-way 1.6 / 2.4,
//! marker 90 % down 1.7 / 2.8, a member's default list 1.6 / 3.1. The rare tag
//! on SQLite walks the whole created_at index (no statistics tell it the tag is
//! rare); with ANALYZE it takes 1.2 ms, and the common tag 16.9.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use glance_api::db::Repo;
use glance_testkit::database::ScratchDatabase;
use glance_testkit::seed;
use sea_orm::ConnectionTrait;

const FULL_ROWS: u64 = 100_000;
const SHORT_ROWS: u64 = 5_000;
const TIMED_CALLS: usize = 300;

/// A database to bench on; a server's is dropped with it.
struct Target {
    label: &'static str,
    url: String,
    _database: Option<ScratchDatabase>,
}

async fn server_target(admin: &str) -> Target {
    let database = ScratchDatabase::create(admin, "glance_bench").await;
    Target {
        label: if database.is_postgres() {
            "postgres"
        } else {
            "mysql"
        },
        url: database.url().to_string(),
        _database: Some(database),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn list(c: &mut Criterion) {
    let full = std::env::args().any(|a| a == "--bench");
    let rows: u64 = std::env::var("GLANCE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { FULL_ROWS } else { SHORT_ROWS });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut targets = vec![Target {
        label: "sqlite",
        url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("glance.sqlite").display()
        ),
        _database: None,
    }];
    if let Some(admin) = std::env::var("GLANCE_BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        targets.push(rt.block_on(server_target(&admin)));
    }

    for target in targets {
        let started = Instant::now();
        let db = rt.block_on(async {
            let db = glance_api::db::connect(&target.url).await.unwrap();
            seed::seed(&db, rows).await.unwrap();
            // What autovacuum (or an operator) does on a server; SQLite has no
            // statistics unless someone runs ANALYZE, and the server never does.
            let analyze = match target.label {
                "postgres" => Some("ANALYZE"),
                "mysql" => Some(
                    "ANALYZE TABLE images, image_properties, image_tags, image_members, image_locations",
                ),
                _ => None,
            };
            if let Some(sql) = analyze {
                db.execute_unprepared(sql).await.unwrap();
            }
            db
        });
        eprintln!(
            "{}: seeded {rows} images in {:.1} s",
            target.label,
            started.elapsed().as_secs_f64()
        );
        let repo = Repo::new(db);
        let cases = seed::cases(rows);
        let queries: Vec<_> = cases.iter().map(|c| (c, c.list_query())).collect();

        let mut group = c.benchmark_group(format!("list_{rows}/{}", target.label));
        group
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for (case, q) in &queries {
            group.bench_function(case.name, |b| {
                b.iter(|| black_box(rt.block_on(repo.list(q, case.scope())).unwrap()))
            });
        }
        group.finish();

        if full {
            println!(
                "\n{} images on {}, {TIMED_CALLS} calls each after 20 to warm up:",
                rows, target.label
            );
            println!(
                "{:<20} {:>6} {:>9} {:>9} {:>9}",
                "query", "rows", "p50 ms", "p99 ms", "max ms"
            );
            for (case, q) in &queries {
                let scope = case.scope();
                let mut page = 0;
                for _ in 0..20 {
                    page = rt.block_on(repo.list(q, scope)).unwrap().len();
                }
                let mut times: Vec<Duration> = (0..TIMED_CALLS)
                    .map(|_| {
                        let t = Instant::now();
                        black_box(rt.block_on(repo.list(q, scope)).unwrap());
                        t.elapsed()
                    })
                    .collect();
                times.sort();
                println!(
                    "{:<20} {:>6} {:>9.2} {:>9.2} {:>9.2}",
                    case.name,
                    page,
                    ms(percentile(&times, 0.50)),
                    ms(percentile(&times, 0.99)),
                    ms(*times.last().unwrap()),
                );
            }
        }
        rt.block_on(async {
            let _ = repo.connection().clone().close().await;
        });
        drop(target);
    }
}

criterion_group!(benches, list);
criterion_main!(benches);
