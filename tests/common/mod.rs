//! Starts the real server on an ephemeral port over a temporary data directory.
#![allow(dead_code)]

pub mod postgres;
pub mod process;
pub mod s3;
pub mod services;

use std::time::Duration;

use glance_api::app::AppBuilder;
use glance_api::config::Config;
use glance_api::server::{self, ServerOptions};
use glance_testkit::database::ScratchDatabase;
use tokio::sync::oneshot;

pub struct TestServer {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    database: Option<ScratchDatabase>,
    pub config: Config,
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
        url,
        dir: tempfile::tempdir().unwrap(),
        client: reqwest::Client::new(),
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

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.url))
    }

    pub fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.url)).json(&body)
    }

    pub fn patch(&self, path: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.client
            .patch(format!("{}{path}", self.url))
            .header(
                "content-type",
                "application/openstack-images-v2.1-json-patch",
            )
            .body(body.to_string())
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(format!("{}{path}", self.url))
    }

    pub fn upload(&self, id: &str, data: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        self.client
            .put(format!("{}/v2/images/{id}/file", self.url))
            .header("content-type", "application/octet-stream")
            .body(data)
    }

    /// Creates a raw/bare image and returns its JSON.
    pub async fn create(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut body =
            serde_json::json!({"name": "t", "disk_format": "raw", "container_format": "bare"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let resp = self.post_json("/v2/images", body).send().await.unwrap();
        assert_eq!(resp.status(), 201, "create");
        resp.json().await.unwrap()
    }

    pub async fn image(&self, id: &str) -> serde_json::Value {
        self.get(&format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}
