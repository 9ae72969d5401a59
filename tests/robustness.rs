//! Hostile and failing paths: cut connections, quotas, panics, races, other
//! projects, and memory use that must not grow with the image.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use glance_layers::{ImageError, ImageRequest, ImageResponse, Next, Operation, from_fn};
use glance_testkit::http::as_project;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_cut_connection_mid_upload_leaves_the_image_queued_and_no_file() {
    let s = common::start().await;
    let img = s.create(json!({})).await;
    let id = img["id"].as_str().unwrap().to_string();
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        8 << 20
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&vec![7u8; 3 << 20]).await.unwrap();
    // Let the server start writing, then vanish.
    let dir = s.images_dir();
    eventually("the upload to start", || s_files(&dir) > 0).await;
    drop(sock);
    let client = s.client.clone();
    let url = format!("{}/v2/images/{id}", s.url);
    for _ in 0..200 {
        let meta: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        if meta["status"] == "queued" && s.stored_files().is_empty() {
            assert_eq!(meta["size"], Value::Null);
            // and the image can be uploaded again
            assert_eq!(
                s.upload(&id, vec![1u8; 4]).send().await.unwrap().status(),
                204
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "image not back to queued with no data: files {:?}",
        s.stored_files()
    );
}

fn s_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn the_size_cap_cuts_uploads_with_413_and_removes_the_data() {
    let s = common::start_with(|c| c.default.image_size_cap = 1 << 20, |b| b).await;
    let img = s.create(json!({})).await;
    let id = img["id"].as_str().unwrap();
    // announced too large: refused before reading
    let r = s.upload(id, vec![0u8; (1 << 20) + 1]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    // not announced (chunked): cut in the stream
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![1u8; 512 << 10])).collect();
    let r = s
        .upload(
            id,
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let meta = s.image(id).await;
    assert_eq!(meta["status"], "queued");
    eventually("temporary files to go", || s.stored_files().is_empty()).await;
    assert_eq!(
        s.upload(id, vec![0u8; 1 << 20])
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
}

#[tokio::test]
async fn project_quotas_count_images_and_bytes() {
    let s = common::start_with(
        |c| {
            c.quota.image_count_total = Some(2);
            c.quota.image_size_total = Some(1);
        },
        |b| b,
    )
    .await;
    let a = s.create(json!({})).await;
    s.create(json!({})).await;
    let third = s
        .post_json("/v2/images", json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 413);
    let id = a["id"].as_str().unwrap();
    assert_eq!(
        s.upload(id, vec![0u8; (1 << 20) + 10])
            .send()
            .await
            .unwrap()
            .status(),
        413
    );
    assert_eq!(
        s.upload(id, vec![0u8; 1 << 19])
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
}

#[tokio::test]
async fn racing_uploads_to_one_image_have_one_winner() {
    let s = common::start().await;
    let img = s.create(json!({})).await;
    let id = img["id"].as_str().unwrap();
    let (a, b) = tokio::join!(
        s.upload(id, vec![1u8; 4 << 20]).send(),
        s.upload(id, vec![2u8; 4 << 20]).send()
    );
    let mut codes = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    codes.sort();
    assert_eq!(codes, [204, 409]);
    assert_eq!(s.image(id).await["status"], "active");
    eventually("one stored file", || s.stored_files().len() == 1).await;
}

#[tokio::test]
async fn a_panicking_layer_gives_500_and_the_server_lives() {
    async fn explode(req: ImageRequest, next: Next) -> Result<ImageResponse, ImageError> {
        if let Operation::Create(new) = &req.op
            && new.name.as_deref() == Some("boom")
        {
            panic!("boom");
        }
        next.run(req).await
    }
    let s = common::start_with(|_| {}, |b| b.layer(from_fn(explode))).await;
    let r = s
        .post_json("/v2/images", json!({"name": "boom"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.headers().contains_key("x-openstack-request-id"));
    assert_eq!(
        s.post_json("/v2/images", json!({"name": "fine"}))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
}

#[tokio::test]
async fn trusted_headers_isolate_projects() {
    use glance_api::config::AuthMode;
    let s = common::start_with(|c| c.auth.mode = AuthMode::TrustedHeaders, |b| b).await;
    assert_eq!(s.get("/v2/images").send().await.unwrap().status(), 401);
    let member = "member,reader";
    let created: Value = as_project(
        s.post_json(
            "/v2/images",
            json!({"name": "mine", "disk_format": "raw", "container_format": "bare"}),
        ),
        "p1",
        member,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(created["owner"], "p1");
    let id = created["id"].as_str().unwrap();
    let path = format!("/v2/images/{id}");
    // another project cannot see it: 404, not 403
    assert_eq!(
        as_project(s.get(&path), "p2", member)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        as_project(s.delete(&path), "p2", member)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let list: Value = as_project(s.get("/v2/images"), "p2", member)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["images"].as_array().unwrap().is_empty());
    // a reader of the owning project sees it but may not change it
    assert_eq!(
        as_project(s.get(&path), "p1", "reader")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        as_project(s.delete(&path), "p1", "reader")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    // non-admins cannot publicize
    let r = as_project(
        s.patch(
            &path,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        ),
        "p1",
        member,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    // sharing: a pending member can read by id but does not list it until it accepts
    let add = as_project(
        s.post_json(&format!("{path}/members"), json!({"member": "p2"})),
        "p1",
        member,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(add.status(), 200);
    assert_eq!(
        as_project(s.get(&path), "p2", member)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let list: Value = as_project(s.get("/v2/images"), "p2", member)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["images"].as_array().unwrap().is_empty());
    let pending: Value = as_project(s.get("/v2/images?member_status=pending"), "p2", member)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending["images"].as_array().unwrap().len(), 1);
    // the owner cannot accept for the member; the member can
    let by_owner = as_project(
        s.client
            .put(format!("{}{path}/members/p2", s.url))
            .json(&json!({"status": "accepted"})),
        "p1",
        member,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(by_owner.status(), 403);
    let by_member = as_project(
        s.client
            .put(format!("{}{path}/members/p2", s.url))
            .json(&json!({"status": "accepted"})),
        "p2",
        member,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(by_member.status(), 200);
    let list: Value = as_project(s.get("/v2/images"), "p2", member)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["images"].as_array().unwrap().len(), 1);
    // an admin of any project sees everything
    assert_eq!(
        as_project(s.get(&path), "p9", "admin")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// The real binary, started as an operator would, keeps its peak memory nearly
/// unchanged through a 64 MiB upload and download: data streams, never buffers.
#[test]
fn memory_stays_flat_through_a_64_mib_upload() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_glance-api"))
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--bind",
            &format!("127.0.0.1:{port}"),
            "serve",
        ])
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        let request = |raw: &[u8], body: &mut dyn FnMut(&mut std::net::TcpStream)| -> String {
            let mut sock = loop {
                match std::net::TcpStream::connect(("127.0.0.1", port)) {
                    Ok(s) => break s,
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            sock.write_all(raw).unwrap();
            body(&mut sock);
            let mut out = Vec::new();
            sock.read_to_end(&mut out).unwrap();
            String::from_utf8_lossy(&out).into_owned()
        };
        let create = br#"{"name":"big","disk_format":"raw","container_format":"bare"}"#;
        let head = format!(
            "POST /v2/images HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            create.len()
        );
        let resp = request(head.as_bytes(), &mut |s| s.write_all(create).unwrap());
        let json = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
        let id = serde_json::from_str::<Value>(json).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let before = vm_hwm_kib(child.id());
        let size = 64usize << 20;
        let head = format!(
            "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
        );
        let resp = request(head.as_bytes(), &mut |s| {
            let chunk = vec![42u8; 1 << 20];
            for _ in 0..64 {
                s.write_all(&chunk).unwrap();
            }
        });
        assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
        let head =
            format!("GET /v2/images/{id}/file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.write_all(head.as_bytes()).unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = sock.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert!(total > size, "downloaded {total} bytes");
        let after = vm_hwm_kib(child.id());
        let growth_mib = (after.saturating_sub(before)) / 1024;
        eprintln!("VmHWM before {before} KiB, after {after} KiB, growth {growth_mib} MiB");
        assert!(
            growth_mib < 24,
            "peak RSS grew by {growth_mib} MiB for a 64 MiB image"
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[tokio::test]
async fn store_details_are_for_admins() {
    use glance_api::config::AuthMode;
    let s = common::start_with(|c| c.auth.mode = AuthMode::TrustedHeaders, |b| b).await;
    let member = as_project(s.get("/v2/info/stores/detail"), "p1", "member,reader")
        .send()
        .await
        .unwrap();
    assert_eq!(member.status(), 403);
    let admin = as_project(s.get("/v2/info/stores/detail"), "p1", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    assert_eq!(
        as_project(s.get("/v2/info/stores"), "p1", "reader")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn property_protections_from_the_rules_file() {
    use glance_api::config::AuthMode;
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        rules.path(),
        "[^x_billing_.*]\ncreate = admin\nread = admin,member\nupdate = admin\ndelete = admin\n\n[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n",
    )
    .unwrap();
    let path = rules.path().to_path_buf();
    let s = common::start_with(
        move |c| {
            c.auth.mode = AuthMode::TrustedHeaders;
            c.default.property_protection_file = Some(path);
        },
        |b| b,
    )
    .await;
    let body = json!({"name": "p", "x_billing_code": "1"});
    assert_eq!(
        as_project(
            s.post_json("/v2/images", body.clone()),
            "p1",
            "member,reader"
        )
        .send()
        .await
        .unwrap()
        .status(),
        403
    );
    let img: Value = as_project(s.post_json("/v2/images", body), "p1", "admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = format!("/v2/images/{}", img["id"].as_str().unwrap());
    let seen: Value = as_project(s.get(&path), "p1", "reader")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        seen.get("x_billing_code").is_none(),
        "readers do not see it"
    );
    let seen: Value = as_project(s.get(&path), "p1", "member,reader")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["x_billing_code"], "1");
    let change = json!([{"op": "replace", "path": "/x_billing_code", "value": "2"}]);
    assert_eq!(
        as_project(s.patch(&path, change), "p1", "member,reader")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

#[tokio::test]
async fn a_broken_rules_file_stops_start_up_with_its_line() {
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), "[ok]\ncreate = @\n[(broken]\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = glance_api::config::Config::default();
    config.default.data_dir = dir.path().to_path_buf();
    config.default.property_protection_file = Some(rules.path().to_path_buf());
    let err = glance_api::app::AppBuilder::new(config)
        .build()
        .await
        .err()
        .expect("start-up must fail");
    assert!(err.to_string().contains("line 3"), "{err}");
}

#[tokio::test]
async fn a_policy_file_overrides_the_defaults_and_reloads() {
    use glance_api::config::AuthMode;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "# image creation is for admins only\n\"add_image\": \"role:admin\"\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = glance_api::config::Config::default();
    config.default.data_dir = dir.path().to_path_buf();
    config.auth.mode = AuthMode::TrustedHeaders;
    config.oslo_policy.policy_file = Some(file.path().to_path_buf());
    let app = glance_api::app::AppBuilder::new(config)
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(glance_api::server::run(
        listener,
        app.http.clone(),
        Default::default(),
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let create = |roles: &'static str| {
        as_project(
            client
                .post(format!("{url}/v2/images"))
                .json(&json!({"name": "x"})),
            "p1",
            roles,
        )
        .send()
    };
    assert_eq!(create("member,reader").await.unwrap().status(), 403);
    assert_eq!(create("admin").await.unwrap().status(), 201);
    // a broken edit is refused and the rules in force stay
    std::fs::write(file.path(), "\"add_image\": \"role:admin or\"\n").unwrap();
    assert!(app.reload_policy().is_err());
    assert_eq!(create("member,reader").await.unwrap().status(), 403);
    // an emptied file brings the defaults back
    std::fs::write(file.path(), "").unwrap();
    app.reload_policy().unwrap();
    assert_eq!(create("member,reader").await.unwrap().status(), 201);
}

#[tokio::test]
async fn a_broken_policy_file_stops_start_up_with_its_line() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "\"get_image\": \"\"\n\"add_image\": \"(role:admin\"\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = glance_api::config::Config::default();
    config.default.data_dir = dir.path().to_path_buf();
    config.oslo_policy.policy_file = Some(file.path().to_path_buf());
    let err = glance_api::app::AppBuilder::new(config)
        .build()
        .await
        .err()
        .expect("start-up must fail");
    assert!(err.to_string().contains("line 2"), "{err}");
}
