//! A real S3 server (s3s-fs) inside the test process, on an ephemeral port; it
//! checks SigV4 signatures. Objects are files under `root/<bucket>/<key>`.
//!
//! [`S3Server`] can be stopped (listener and every open connection dropped, as a
//! crashed S3 endpoint looks to its clients) and started again on the same
//! directory and port, for the fault tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const ACCESS_KEY: &str = "AKTEST";
pub const SECRET_KEY: &str = "SKTEST";

pub async fn start(root: &Path, bucket: &str) -> SocketAddr {
    let server = S3Server::start(root, bucket).await;
    let addr = server.addr;
    // Callers of this form keep the server for the whole test process.
    std::mem::forget(server);
    addr
}

/// An s3s-fs server that can be stopped and restarted.
pub struct S3Server {
    pub addr: SocketAddr,
    root: PathBuf,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl S3Server {
    pub async fn start(root: &Path, bucket: &str) -> S3Server {
        std::fs::create_dir_all(root.join(bucket)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = S3Server {
            addr,
            root: root.to_path_buf(),
            accept: None,
        };
        server.accept = Some(serve(listener, &server.root));
        server
    }

    /// Drops the listener and every connection: clients see resets, then refusals.
    pub async fn stop(&mut self) {
        if let Some(task) = self.accept.take() {
            task.abort();
            // Aborting drops the task's JoinSet, which aborts the connections.
            let _ = task.await;
        }
    }

    /// Serves the same directory on the same port again.
    pub async fn restart(&mut self) {
        self.stop().await;
        // tokio sets SO_REUSEADDR, so the port is free again at once.
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.accept = Some(serve(listener, &self.root));
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(task) = self.accept.take() {
            task.abort();
        }
    }
}

fn serve(listener: tokio::net::TcpListener, root: &Path) -> tokio::task::JoinHandle<()> {
    let mut builder = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).unwrap());
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            // Reap finished connections so the set does not grow.
            while connections.try_join_next().is_some() {}
            let svc = service.clone();
            connections.spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                .await;
            });
        }
    })
}

/// Multipart uploads s3s-fs holds open under `root`: its `.upload-<id>.json`
/// records and `.upload_id-<id>.part-<n>` parts (it does not implement
/// ListMultipartUploads, so the directory is the only view).
pub fn open_multipart_files(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".upload-") || n.starts_with(".upload_id-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Parts s3s-fs has received for open multipart uploads.
pub fn stored_parts(root: &Path) -> usize {
    open_multipart_files(root)
        .iter()
        .filter(|n| n.starts_with(".upload_id-"))
        .count()
}

pub fn options(addr: SocketAddr, bucket: &str) -> glance_api::store::S3Options {
    glance_api::store::S3Options {
        host: format!("http://{addr}"),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        bucket: bucket.into(),
        region: "us-east-1".into(),
        chunk_size: 5 << 20,
        concurrency: 4,
    }
}
