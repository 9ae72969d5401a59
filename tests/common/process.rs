//! The real `glance-api` binary as a child process, started from a TOML file with
//! `--config` as an operator starts it, so a test can `kill -9` it at any moment
//! and start it again on the same configuration, data directory and port.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use glance_testkit::database::ScratchDatabase;
use glance_testkit::http::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest wait for anything the tests expect to happen (a start-up, a
/// recovery sweep): a bound against hangs, not a performance figure.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub use glance_testkit::http::free_port;

/// Writes one line to the real stderr: libtest swallows `eprintln!` of passing tests.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A test that cannot run here: outside CI it says so in one visible line and
/// returns; in CI (`CI` set) a missing prerequisite is a failure.
pub fn skip(test: &str, why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    if ci {
        panic!("{test}: {why} (CI must provide it)");
    }
    say(&format!("SKIPPED {test}: {why}"));
}

/// The server as a child process; its requests (`get`, `upload`, `url`,
/// `client`...) are [`Api`]'s, but for [`create`](Self::create) and
/// [`image`](Self::image), which are its own.
pub struct ServerProcess {
    pub api: Api,
    pub addr: String,
    config_file: PathBuf,
    log_file: PathBuf,
    child: Option<Child>,
    database: Option<ScratchDatabase>,
    /// Extra environment variables of the process.
    env: Vec<(String, String)>,
}

impl ServerProcess {
    /// Writes `config` (TOML, without `bind`) to `file` and starts the server on a
    /// free port, waiting until it answers.
    pub async fn start(file: &Path, config: &str) -> ServerProcess {
        Self::start_with_env(file, config, &[]).await
    }

    /// [`start`](Self::start), with these environment variables set too.
    pub async fn start_with_env(file: &Path, config: &str, env: &[(&str, &str)]) -> ServerProcess {
        std::fs::write(file, config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut server = ServerProcess {
            api: Api::new(format!("http://{addr}")),
            addr,
            config_file: file.to_path_buf(),
            log_file: file.with_extension("log"),
            child: None,
            database: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.start_again().await;
        server
    }

    /// The `[database] connection` line for a test: a database of its own on the
    /// server `GLANCE_TEST_DATABASE_URL` names, or nothing (SQLite in `data_dir`).
    /// The database is dropped with `owner`.
    pub async fn database_line() -> (String, Option<OwnDatabase>) {
        match super::database_server() {
            Some(admin) => {
                let db = ScratchDatabase::create(&admin, "glance_t").await;
                let line = format!("connection = \"{}\"\n", db.url());
                (line, Some(OwnDatabase(db)))
            }
            None => (String::new(), None),
        }
    }

    /// Drops `db` after this server has stopped.
    pub fn owns(&mut self, db: Option<OwnDatabase>) {
        self.database = db.map(|d| d.0);
    }

    /// Starts the binary again with the same configuration and port, and waits
    /// until it answers.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_glance-api"))
            .arg("--config")
            .arg(&self.config_file)
            .args(["--bind", &self.addr, "serve"])
            .env("RUST_LOG", "info")
            .env_remove("GLANCE_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Waits until `/versions` answers; fails with the server's log if it exits.
    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                self.child = None;
                panic!("the server exited ({status}) at start-up:\n{}", self.log());
            }
            let answer = self
                .client
                .get(format!("{}/versions", self.url))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not answer within {PATIENCE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `SIGTERM`, as systemd stops a service, and waits for the exit: in-flight
    /// requests finish and exporters flush.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// `kill -9`: no shutdown code runs, as in a crash or an OOM kill.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` is SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's log so far (every life of it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Creates a raw/bare image and returns its id.
    pub async fn create(&self) -> String {
        let resp = self
            .client
            .post(format!("{}/v2/images", self.url))
            .json(&serde_json::json!({"name": "fault", "disk_format": "raw", "container_format": "bare"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "create");
        let body: serde_json::Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    pub async fn image(&self, id: &str) -> serde_json::Value {
        let resp = self.get(&format!("/v2/images/{id}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET image {id}");
        resp.json().await.unwrap()
    }

    /// Starts a `PUT /v2/images/{id}/file` of `total` bytes over a raw connection,
    /// so the test decides how many bytes the server gets before something fails.
    pub async fn begin_upload(&self, id: &str, total: u64) -> RawUpload {
        RawUpload::begin(&self.addr, id, total).await
    }
}

impl std::ops::Deref for ServerProcess {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
        drop(self.database.take());
    }
}

/// A database created for one test (see [`ServerProcess::database_line`]).
pub struct OwnDatabase(ScratchDatabase);

/// The bytes uploads send: a fixed 1 MiB block, repeated.
pub fn block() -> &'static [u8] {
    static BLOCK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BLOCK.get_or_init(|| (0..1u32 << 20).map(|i| (i * 31 % 251) as u8).collect())
}

/// The data of an upload of `len` bytes.
pub fn data(len: u64) -> Vec<u8> {
    block().iter().copied().cycle().take(len as usize).collect()
}

/// MD5 (Glance's `checksum`) of the first `len` bytes of [`block`] repeated.
pub fn md5_of(len: u64) -> String {
    use md5::Digest;
    let mut h = md5::Md5::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(block().len() as u64);
        h.update(&block()[..n as usize]);
        left -= n;
    }
    hex::encode(h.finalize())
}

/// How an upload ended, seen from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The server answered with this status and body.
    Status(u16, String),
    /// The connection closed without a complete status line.
    Closed,
}

/// A `PUT .../file` with `Content-Length`, sent by the test piece by piece. The
/// response is read from the start, alongside the sending, so an early answer
/// (413, 503) is seen even when the server then closes the connection.
pub struct RawUpload {
    writer: Option<tokio::net::tcp::OwnedWriteHalf>,
    reader: tokio::task::JoinHandle<Answer>,
    pub sent: u64,
    pub total: u64,
}

impl RawUpload {
    async fn begin(addr: &str, id: &str, total: u64) -> RawUpload {
        let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut read, mut write) = sock.into_split();
        let head = format!(
            "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
        );
        write.write_all(head.as_bytes()).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = read.read_to_end(&mut buf).await;
            let text = String::from_utf8_lossy(&buf).into_owned();
            let status = text
                .strip_prefix("HTTP/1.1 ")
                .and_then(|r| r.get(..3))
                .and_then(|s| s.parse().ok());
            match status {
                Some(s) => {
                    let body = text
                        .split_once("\r\n\r\n")
                        .map(|(_, b)| b.to_string())
                        .unwrap_or_default();
                    Answer::Status(s, body)
                }
                None => Answer::Closed,
            }
        });
        RawUpload {
            writer: Some(write),
            reader,
            sent: 0,
            total,
        }
    }

    /// Sends the next `n` bytes (at most what is left); false once the server no
    /// longer takes them.
    pub async fn send(&mut self, n: u64) -> bool {
        let Some(w) = self.writer.as_mut() else {
            return false;
        };
        let mut left = n.min(self.total - self.sent);
        while left > 0 {
            let start = (self.sent % block().len() as u64) as usize;
            let len = (block().len() - start).min(left as usize);
            if w.write_all(&block()[start..start + len]).await.is_err() {
                self.writer = None;
                return false;
            }
            self.sent += len as u64;
            left -= len as u64;
        }
        true
    }

    /// Sends what is left (stopping if the server stops taking it) and returns
    /// the server's answer.
    pub async fn finish(mut self) -> Answer {
        let rest = self.total - self.sent;
        self.send(rest).await;
        self.answer().await
    }

    /// The server's answer, without sending more.
    pub async fn answer(mut self) -> Answer {
        match tokio::time::timeout(PATIENCE * 3, &mut self.reader).await {
            Ok(answer) => answer.unwrap(),
            Err(_) => panic!("no answer to the upload within {:?}", PATIENCE * 3),
        }
    }
}

/// Polls `check` until it returns `Some`, up to [`PATIENCE`]; `what` names the
/// awaited state in the failure, with `last`'s description of what was seen.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("waited {PATIENCE:?} for {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
