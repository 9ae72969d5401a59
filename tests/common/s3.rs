//! A real S3 server (s3s-fs) inside the test process, on an ephemeral port; it
//! checks SigV4 signatures. Objects are files under `root/<bucket>/<key>`.

use std::net::SocketAddr;
use std::path::Path;

pub const ACCESS_KEY: &str = "AKTEST";
pub const SECRET_KEY: &str = "SKTEST";

pub async fn start(root: &Path, bucket: &str) -> SocketAddr {
    std::fs::create_dir_all(root.join(bucket)).unwrap();
    let mut builder = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).unwrap());
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let svc = service.clone();
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                .await;
            });
        }
    });
    addr
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
