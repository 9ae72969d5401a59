//! Starts the real server on an ephemeral port over a temporary data directory.
#![allow(dead_code)]

pub mod postgres;
pub mod process;
pub mod s3;
pub mod services;
pub mod web;

use std::time::Duration;

use glance_api::app::AppBuilder;
use glance_api::config::Config;
use glance_api::server::{self, ServerOptions};
use glance_testkit::database::ScratchDatabase;
use glance_testkit::http::Api;
use tokio::sync::oneshot;

/// A server in this process; its requests (`get`, `upload`, `create`, `url`,
/// `client`...) are [`Api`]'s.
pub struct TestServer {
    pub api: Api,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    database: Option<ScratchDatabase>,
    pub config: Config,
}

impl std::ops::Deref for TestServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        // After the stop: the database goes once nothing should be using it.
        drop(self.database.take());
    }
}

/// The database server the suites run against: `GLANCE_TEST_DATABASE_URL` names an
/// account that may create databases (`postgres://postgres@127.0.0.1:5432/postgres`,
/// `mysql://root@127.0.0.1:3306/mysql`); unset means a SQLite file per test. Each
/// test server gets a database of its own, dropped afterwards.
pub fn database_server() -> Option<String> {
    std::env::var("GLANCE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

pub async fn start() -> TestServer {
    start_with(|_| {}, |b| b).await
}

pub async fn start_with(
    configure: impl FnOnce(&mut Config),
    customize: impl FnOnce(AppBuilder) -> AppBuilder,
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.default.data_dir = dir.path().to_path_buf();
    let database = match database_server() {
        Some(admin) => {
            let db = ScratchDatabase::create(&admin, "glance_t").await;
            config.database.connection = Some(db.url().to_string());
            Some(db)
        }
        None => None,
    };
    configure(&mut config);
    let mut server = serve(customize(AppBuilder::new(config))).await;
    server.dir = dir;
    server.database = database;
    server
}

/// A server on the database at `connection`, which the caller keeps (and drops)
/// for as long as the server runs, whatever `GLANCE_TEST_DATABASE_URL` says.
pub async fn start_on(connection: String, configure: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.default.data_dir = dir.path().to_path_buf();
    config.database.connection = Some(connection);
    configure(&mut config);
    let mut server = serve(AppBuilder::new(config)).await;
    server.dir = dir;
    server
}

/// Two API nodes over the same database and stores, as two hosts of one service.
pub async fn start_pair(configure: impl FnOnce(&mut Config)) -> (TestServer, TestServer) {
    let first = start_with(configure, |b| b).await;
    let mut config = first.config.clone();
    // A node of its own over the same data: its uploads are its own leases.
    config.default.node_id = Some("second-node".into());
    let second = serve(AppBuilder::new(config)).await;
    (first, second)
}

async fn serve(builder: AppBuilder) -> TestServer {
    let app = builder.build().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    // Connection limits and timeouts as the test's config sets them.
    let options = ServerOptions {
        drain_timeout: Duration::from_secs(2),
        ..ServerOptions::from_config(&app.config.default)
    };
    tokio::spawn(server::run(listener, app.http, options, async {
        let _ = rx.await;
    }));
    TestServer {
        api: Api::new(url),
        dir: tempfile::tempdir().unwrap(),
        stop: Some(tx),
        database: None,
        config: app.config,
    }
}

impl TestServer {
    pub fn images_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("images")
    }

    /// Files in the store directory, temporary ones included.
    pub fn stored_files(&self) -> Vec<String> {
        std::fs::read_dir(self.images_dir())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}
