//! Interoperable image import against the real server: staging, the four
//! checks Glance makes before an import starts, glance-direct and copy-image to
//! one and several stores, two nodes sharing staging, what a failed or
//! deleted import leaves behind (nothing), and the import plugins.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use glance_api::config::{BackendSection, Config};
use md5::{Digest, Md5};
use serde_json::{Value, json};

/// Polls the image until its import is over (its lock released) and `done`
/// holds; the image as it was then. Imports run in the background, and a test
/// must not end (and drop its database) while one still writes. No timing is
/// asserted: the cap only ends a hung test.
async fn wait_for(
    api: &glance_testkit::http::Api,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..600 {
        let image = api.image(id).await;
        if image.get("os_glance_import_task").is_none() && done(&image) {
            return image;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("image {id} never got there: {}", api.image(id).await);
}

fn stage(api: &glance_testkit::http::Api, id: &str, data: Vec<u8>) -> reqwest::RequestBuilder {
    api.client
        .put(format!("{}/v2/images/{id}/stage", api.url))
        .header("content-type", "application/octet-stream")
        .header("accept", "application/json")
        .body(data)
}

fn import(api: &glance_testkit::http::Api, id: &str, body: Value) -> reqwest::RequestBuilder {
    api.post_json(&format!("/v2/images/{id}/import"), body)
        .header("accept", "application/json")
}

/// The explanation of an error page (asked for as JSON).
async fn message(resp: reqwest::Response) -> String {
    let body: Value = resp.json().await.unwrap();
    let text = body["message"].as_str().unwrap_or_default();
    text.trim_end_matches("<br /><br />\n\n\n").to_string()
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

#[tokio::test]
async fn glance_direct_stages_then_imports_to_active() {
    let s = common::start().await;
    let r = s
        .post_json(
            "/v2/images",
            json!({"name": "d", "disk_format": "raw", "container_format": "bare"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["openstack-image-import-methods"],
        "glance-direct,web-download,copy-image"
    );
    // Stores are named only with `enabled_backends`, as Glance names them.
    assert!(r.headers().get("openstack-image-store-ids").is_none());
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = data(3 << 20);

    let r = stage(&s, &id, bytes.clone()).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let staged = s.image(&id).await;
    assert_eq!(staged["status"], "uploading");
    assert_eq!(staged["size"], bytes.len());
    assert!(staged["checksum"].is_null(), "staging does not hash");
    // Where the data waits is the service's business.
    assert!(
        staged
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("os_glance_stage")),
        "{staged}"
    );
    let staging = s.dir.path().join("staging");
    assert_eq!(files_in(&staging), vec![id.clone()]);

    let r = import(&s, &id, json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.text().await.unwrap(), "");

    let done = wait_for(&s, &id, |i| {
        i["status"] != "importing" && i["status"] != "uploading"
    })
    .await;
    assert_eq!(done["status"], "active", "{done}");
    assert_eq!(done["checksum"], md5_hex(&bytes));
    assert_eq!(done["os_hash_algo"], "sha512");
    assert_eq!(done["size"], bytes.len());
    assert_eq!(done["virtual_size"], bytes.len());
    assert_eq!(done["os_glance_importing_to_stores"], "");
    assert_eq!(done["os_glance_failed_import"], "");
    assert!(
        done.get("os_glance_import_task").is_none(),
        "the lock is released: {done}"
    );
    let got = s
        .get(&format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), bytes.as_slice());
    assert!(
        files_in(&staging).is_empty(),
        "staged data is removed: {:?}",
        files_in(&staging)
    );

    // The task, as `GET /v2/images/{id}/tasks` shows it.
    let tasks: Value = s
        .get(&format!("/v2/images/{id}/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tasks = tasks["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let task = &tasks[0];
    assert_eq!(task["type"], "api_image_import");
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["image_id"], id.as_str());
    assert_eq!(task["result"], json!({"image_id": id}));
    assert_eq!(
        task["input"]["import_req"]["method"]["name"],
        "glance-direct"
    );
    assert_eq!(task["input"]["backend"], json!([null]));
    assert!(task["expires_at"].is_string(), "{task}");

    // What was published, in order: the task's steps (never its input) and the
    // image's, naming the store.
    let log = s.dir.path().join("notifications.jsonl");
    let mut events: Vec<Value> = Vec::new();
    for _ in 0..200 {
        events = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if events.iter().any(|e| e["event_type"] == "task.success") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .filter(|k| {
            k.starts_with("task.")
                || matches!(*k, "image.prepare" | "image.upload" | "image.activate")
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "task.create",
            "task.run",
            "task.processing",
            "image.prepare",
            "image.upload",
            "image.activate",
            "task.success"
        ],
        "{events:?}"
    );
    for e in &events {
        if e["event_type"]
            .as_str()
            .is_some_and(|k| k.starts_with("task."))
        {
            assert!(e["payload"].get("input").is_none(), "{e}");
            assert_eq!(e["payload"]["id"], task["id"]);
        }
        if e["event_type"] == "image.prepare" {
            assert_eq!(e["payload"]["status"], "importing", "{e}");
            assert_eq!(
                e["payload"]["os_glance_importing_to_stores"],
                json!(["file"])
            );
        }
        if e["event_type"] == "image.upload" {
            assert_eq!(e["payload"]["backend"], "file");
        }
        if e["event_type"] == "task.success" {
            assert_eq!(e["payload"]["result"], json!({"image_id": id}));
            assert!(e["payload"]["expires_at"].is_string(), "{e}");
        }
        // Where the staged data was is never published.
        assert!(!e.to_string().contains("os_glance_stage_uri"), "{e}");
    }
}

#[tokio::test]
async fn glance_checks_come_before_anything_starts() {
    let s = common::start().await;
    let id = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // glance-direct needs staged data; copy-image an active image.
    let r = import(&s, &id, json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        message(r).await,
        "Image needs to be staged before 'glance-direct' method can be used"
    );
    let r = import(&s, &id, json!({"method": {"name": "copy-image"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        message(r).await,
        "Only images with status active can be targeted for copying"
    );
    let r = import(&s, &id, json!({"method": {"name": "glance-download", "glance_region": "r", "glance_image_id": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        message(r).await,
        "Unknown import method name 'glance-download'."
    );
    let r = import(
        &s,
        &id,
        json!({"method": {"name": "glance-direct"}, "all_stores_must_succeed": false}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400, "only with several stores");

    // No formats: staging is allowed, the import is not.
    let bare = s
        .post_json("/v2/images", json!({"name": "no formats"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        stage(&s, &bare, data(10)).send().await.unwrap().status(),
        204
    );
    let r = import(&s, &bare, json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        message(r).await,
        "'container_format' needs to be set before import"
    );
    assert_eq!(s.image(&bare).await["status"], "uploading");

    // Staging twice, or in the wrong media type.
    let r = stage(&s, &bare, data(10)).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let r = s
        .client
        .put(format!("{}/v2/images/{id}/stage", s.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = stage(&s, &id, data(10))
        .header("x-openstack-image-size", "ten")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        message(r).await,
        "Invalid or missing image size in request headers."
    );
    assert_eq!(s.image(&id).await["status"], "queued");

    // An active image takes only copy-image.
    let active = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.upload(&active, data(5)).send().await.unwrap().status(),
        204
    );
    let r = import(&s, &active, json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        message(r).await,
        "Image with status active cannot be target for import"
    );
}

#[tokio::test]
async fn info_import_lists_the_enabled_methods_and_stage_needs_glance_direct() {
    // glance-download is accepted in the configuration but not offered.
    let s = common::start_with(
        |c| c.default.enabled_import_methods = vec!["copy-image".into(), "glance-download".into()],
        |b| b,
    )
    .await;
    let info: Value = s
        .get("/v2/info/import")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info,
        json!({"import-methods": {"description": "Import methods available.", "type": "array", "value": ["copy-image"]}})
    );
    let id = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = stage(&s, &id, data(10)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        message(r).await,
        "'glance-direct' method is not available at this site."
    );
    let r = import(&s, &id, json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        message(r).await,
        "Unknown import method name 'glance-direct'."
    );

    let off = common::start_with(|c| c.default.enabled_import_methods.clear(), |b| b).await;
    let r = off
        .post_json("/v2/images", json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("openstack-image-import-methods").is_none());
}

#[tokio::test]
async fn deleting_a_staged_image_removes_its_staged_data() {
    let s = common::start().await;
    let id = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        stage(&s, &id, data(1000)).send().await.unwrap().status(),
        204
    );
    let staging = s.dir.path().join("staging");
    assert_eq!(files_in(&staging), vec![id.clone()]);
    assert_eq!(
        s.delete(&format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(files_in(&staging).is_empty());
}

/// Two file stores, `fast` the default.
fn two_stores(c: &mut Config) {
    c.default.enabled_backends = Some("fast:file,slow:file".into());
    c.glance_store.default_backend = "fast".into();
    let dir = c.default.data_dir.clone();
    c.backends = BTreeMap::from([
        (
            "fast".to_string(),
            BackendSection {
                filesystem_store_datadir: Some(dir.join("fast")),
                ..BackendSection::default()
            },
        ),
        (
            "slow".to_string(),
            BackendSection {
                filesystem_store_datadir: Some(dir.join("slow")),
                ..BackendSection::default()
            },
        ),
        (
            "os_glance_staging_store".to_string(),
            BackendSection {
                filesystem_store_datadir: Some(dir.join("staged-here")),
                ..BackendSection::default()
            },
        ),
    ]);
}

#[tokio::test]
async fn glance_direct_to_every_store_and_copy_image_between_stores() {
    let s = common::start_with(two_stores, |b| b).await;
    let staging = s.dir.path().join("staged-here");
    let bytes = data(2 << 20);

    // One import into both stores.
    let id = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        stage(&s, &id, bytes.clone()).send().await.unwrap().status(),
        204
    );
    assert_eq!(files_in(&staging), vec![id.clone()]);
    let r = import(
        &s,
        &id,
        json!({"method": {"name": "glance-direct"}, "all_stores": true}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let done = wait_for(&s, &id, |i| {
        i["status"] == "active" || i["status"] == "queued"
    })
    .await;
    assert_eq!(done["status"], "active", "{done}");
    assert_eq!(done["stores"], "fast,slow");
    assert_eq!(done["checksum"], md5_hex(&bytes));
    assert!(files_in(&staging).is_empty());

    // An upload to one store, copied to the other by an admin.
    let one = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.upload(&one, bytes.clone()).send().await.unwrap().status(),
        204
    );
    assert_eq!(s.image(&one).await["stores"], "fast");
    let r = import(
        &s,
        &one,
        json!({"method": {"name": "copy-image"}, "stores": ["fast"]}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(message(r).await, "Image is already present at store 'fast'");
    let r = import(
        &s,
        &one,
        json!({"method": {"name": "copy-image"}, "stores": ["nowhere"]}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
    let r = import(
        &s,
        &one,
        json!({"method": {"name": "copy-image"}, "stores": ["slow"]}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let copied = wait_for(&s, &one, |i| {
        i["os_glance_importing_to_stores"] == "" && i.get("os_glance_import_task").is_none()
    })
    .await;
    assert_eq!(copied["status"], "active");
    assert_eq!(copied["stores"], "fast,slow");
    assert_eq!(copied["os_glance_failed_import"], "");
    assert!(files_in(&s.dir.path().join("slow")).contains(&one));
    // Nothing left to copy: accepted, and nothing happens.
    let r = import(
        &s,
        &one,
        json!({"method": {"name": "copy-image"}, "all_stores": true}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    // The copy is what was uploaded: drop the first store's and read it back.
    let r = s
        .delete(&format!("/v2/stores/fast/{one}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let got = s
        .get(&format!("/v2/images/{one}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn an_import_lands_on_another_node_than_the_stage() {
    // Two nodes over one database and one data directory (the shared file
    // system staging needs between nodes).
    let (a, b) = common::start_pair(|_| {}).await;
    let id = a.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = data(1 << 20);
    assert_eq!(
        stage(&a, &id, bytes.clone()).send().await.unwrap().status(),
        204
    );
    let r = import(&b, &id, json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let done = wait_for(&a, &id, |i| {
        i["status"] == "active" || i["status"] == "queued"
    })
    .await;
    assert_eq!(done["status"], "active", "{done}");
    assert_eq!(done["checksum"], md5_hex(&bytes));
}

/// Downloads from loopback allowed, as Glance's reference run allows them.
fn allow_loopback(port: u16) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.import_filtering_opts.allowed_hosts = vec!["127.0.0.1".into()];
        c.import_filtering_opts.allowed_ports = vec![port];
        c.import_filtering_opts.read_timeout = 1;
        // A small cap, so that the endless body is cut soon.
        c.default.image_size_cap = 8 << 20;
    }
}

#[tokio::test]
async fn web_download_from_an_allowed_host_reaches_active() {
    let bytes = data(3 << 20);
    let port = common::web::serve(bytes.clone()).await;
    let s = common::start_with(allow_loopback(port), |b| b).await;
    let id = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let uri = format!("http://127.0.0.1:{port}/image");
    let r = import(
        &s,
        &id,
        json!({"method": {"name": "web-download", "uri": uri}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let done = wait_for(&s, &id, |i| {
        i["status"] == "active" || i["status"] == "queued"
    })
    .await;
    assert_eq!(done["status"], "active", "{done}");
    assert_eq!(done["checksum"], md5_hex(&bytes));
    assert!(files_in(&s.dir.path().join("staging")).is_empty());
    // A second import of an active image is refused.
    let r = import(
        &s,
        &id,
        json!({"method": {"name": "web-download", "uri": uri}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
}

#[tokio::test]
async fn web_download_refuses_the_clouds_insides_by_default() {
    let port = common::web::serve(data(10)).await;
    let s = common::start().await;
    let id = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for uri in [
        format!("http://127.0.0.1:{port}/image"),
        "http://127.0.0.1/".into(),
        "http://localhost/".into(),
        "http://2130706433/".into(),
        "http://127.1/".into(),
        "http://[::1]/".into(),
        "http://[::ffff:127.0.0.1]/".into(),
        "http://169.254.169.254/latest/meta-data".into(),
        "http://10.0.0.1/".into(),
        "http://172.16.0.1/".into(),
        "http://192.168.0.1/".into(),
        "http://100.64.0.1/".into(),
        "http://0.0.0.0/".into(),
        "http://[fd00::1]/".into(),
        "file:///etc/passwd".into(),
        "ftp://example.com/x".into(),
    ] {
        let r = import(
            &s,
            &id,
            json!({"method": {"name": "web-download", "uri": uri}}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 400, "{uri}");
        assert_eq!(
            message(r).await,
            format!("URI for web-download does not pass filtering: {uri}")
        );
    }
    let image = s.image(&id).await;
    assert_eq!(image["status"], "queued");
    assert!(image.get("os_glance_import_task").is_none());
}

#[tokio::test]
async fn what_only_shows_at_fetch_time_fails_the_task_and_requeues_the_image() {
    let port = common::web::serve(data(10)).await;
    let s = common::start_with(allow_loopback(port), |b| b).await;
    let staging = s.dir.path().join("staging");
    for path in ["/to-metadata", "/endless", "/stall", "/missing"] {
        let id = s.create(json!({})).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let uri = format!("http://127.0.0.1:{port}{path}");
        let r = import(
            &s,
            &id,
            json!({"method": {"name": "web-download", "uri": uri}}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 202, "{path}");
        let done = wait_for(&s, &id, |i| {
            i["status"] == "queued" && i.get("os_glance_import_task").is_none()
        })
        .await;
        for field in ["size", "checksum", "os_hash_value"] {
            assert!(done[field].is_null(), "{path}: {field} of {done}");
        }
        assert!(
            files_in(&staging).is_empty(),
            "{path}: {:?}",
            files_in(&staging)
        );
        assert!(files_in(&s.images_dir()).is_empty(), "{path}");
    }
}

#[tokio::test]
async fn a_legacy_import_task_creates_and_fills_an_image() {
    let bytes = data(1 << 20);
    let port = common::web::serve(bytes.clone()).await;
    let s = common::start_with(allow_loopback(port), |b| b).await;
    let task = |uri: String| {
        s.post_json(
            "/v2/tasks",
            json!({"type": "import", "input": {
                "import_from": uri,
                "import_from_format": "raw",
                "image_properties": {"name": "legacy", "disk_format": "raw", "container_format": "bare"},
            }}),
        )
        .header("accept", "application/json")
    };
    let r = task("http://169.254.169.254/latest".into())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        message(r).await,
        "URI for legacy import task does not pass filtering: http://169.254.169.254/latest"
    );

    let r = task(format!("http://127.0.0.1:{port}/image"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let task_id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["status"], "pending");
    let mut done = Value::Null;
    for _ in 0..600 {
        done = s
            .get(&format!("/v2/tasks/{task_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done["status"] == "success" || done["status"] == "failure" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done["status"], "success", "{done}");
    let image_id = done["result"]["image_id"].as_str().unwrap();
    let image = s.image(image_id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["name"], "legacy");
    assert_eq!(image["checksum"], md5_hex(&bytes));
}

// === import plugins ===

const QEMU_IMG: &str = "/usr/bin/qemu-img";

/// `qemu-img`, or `None` (after one visible line) when it is missing outside CI.
fn qemu_img() -> Option<&'static str> {
    if std::path::Path::new(QEMU_IMG).exists() {
        return Some(QEMU_IMG);
    }
    let ci = std::env::var("CI").unwrap_or_default().to_ascii_lowercase();
    if !ci.is_empty() && !["0", "false", "no", "off"].contains(&ci.as_str()) {
        panic!("{QEMU_IMG} is required when CI is set");
    }
    println!("SKIPPED: {QEMU_IMG} not found");
    None
}

fn qemu(qemu: &str, args: &[&str]) {
    let out = std::process::Command::new(qemu)
        .args(args)
        .output()
        .expect("run qemu-img");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn plugins(names: &[&str]) -> impl FnOnce(&mut Config) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    move |c: &mut Config| c.image_import_opts.image_import_plugins = names
}

async fn import_task_message(api: &glance_testkit::http::Api, id: &str) -> String {
    let tasks: Value = api
        .get(&format!("/v2/images/{id}/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tasks["tasks"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn download(api: &glance_testkit::http::Api, id: &str) -> Vec<u8> {
    let r = api
        .get(&format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

async fn web_download(api: &glance_testkit::http::Api, id: &str, port: u16) {
    let uri = format!("http://127.0.0.1:{port}/image");
    let r = import(
        api,
        id,
        json!({"method": {"name": "web-download", "uri": uri}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn image_conversion_turns_a_downloaded_qcow2_into_raw() {
    let Some(qemu_img) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Data in some clusters and holes between, so the qcow2 is sparse.
    let mut raw = vec![0u8; 6 << 20];
    raw[..1 << 20].copy_from_slice(&data(1 << 20));
    raw[(4 << 20)..(4 << 20) + 4096].fill(0xa5);
    let raw_path = dir.path().join("disk.raw");
    std::fs::write(&raw_path, &raw).unwrap();
    let qcow = dir.path().join("disk.qcow2");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    qemu(
        qemu_img,
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            &path(&raw_path),
            &path(&qcow),
        ],
    );
    let expected_path = dir.path().join("expected.raw");
    qemu(
        qemu_img,
        &[
            "convert",
            "-f",
            "qcow2",
            "-O",
            "raw",
            &path(&qcow),
            &path(&expected_path),
        ],
    );
    let expected = std::fs::read(&expected_path).unwrap();
    let qcow_bytes = std::fs::read(&qcow).unwrap();
    assert_ne!(qcow_bytes.len(), expected.len());

    let port = common::web::serve(qcow_bytes).await;
    let s = common::start_with(
        |c| {
            allow_loopback(port)(c);
            plugins(&["image_conversion"])(c);
        },
        |b| b,
    )
    .await;
    let id = s.create(json!({"disk_format": "qcow2"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    web_download(&s, &id, port).await;
    let done = wait_for(&s, &id, |i| {
        i["status"] == "active" || i["status"] == "queued"
    })
    .await;
    assert_eq!(done["status"], "active", "{done}");
    assert_eq!(done["disk_format"], "raw");
    assert_eq!(done["container_format"], "bare");
    assert_eq!(done["size"], expected.len());
    // The stores were written as raw: a raw image's virtual size is its size.
    assert_eq!(done["virtual_size"], expected.len());
    assert_eq!(done["checksum"], md5_hex(&expected));
    assert_eq!(download(&s, &id).await, expected);
    assert!(files_in(&s.dir.path().join("staging")).is_empty());
}

#[tokio::test]
async fn image_conversion_refuses_a_backing_file_and_a_claimed_format_that_is_not() {
    let Some(qemu_img) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.raw");
    std::fs::write(&base, data(1 << 20)).unwrap();
    let child = dir.path().join("child.qcow2");
    qemu(
        qemu_img,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            base.to_str().unwrap(),
            "-F",
            "raw",
            child.to_str().unwrap(),
        ],
    );
    let backed = std::fs::read(&child).unwrap();
    let staging = |s: &common::TestServer| s.dir.path().join("staging");

    let port = common::web::serve(backed).await;
    let s = common::start_with(
        |c| {
            allow_loopback(port)(c);
            plugins(&["image_conversion"])(c);
        },
        |b| b,
    )
    .await;
    let id = s.create(json!({"disk_format": "qcow2"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    web_download(&s, &id, port).await;
    let done = wait_for(&s, &id, |i| i["status"] == "queued").await;
    assert_eq!(done["disk_format"], "qcow2");
    assert!(
        done["size"].is_null() && done["checksum"].is_null(),
        "{done}"
    );
    assert_eq!(
        import_task_message(&s, &id).await,
        "Image has disallowed configuration"
    );
    assert!(
        files_in(&staging(&s)).is_empty(),
        "{:?}",
        files_in(&staging(&s))
    );
    assert!(files_in(&s.images_dir()).is_empty());

    // Raw data claimed as qcow2, staged with glance-direct.
    let id = s.create(json!({"disk_format": "qcow2"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        stage(&s, &id, data(4096)).send().await.unwrap().status(),
        204
    );
    let r = import(&s, &id, json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let done = wait_for(&s, &id, |i| i["status"] == "queued").await;
    assert_eq!(done["disk_format"], "qcow2");
    assert_eq!(import_task_message(&s, &id).await, "Image format mismatch");
    assert!(files_in(&staging(&s)).is_empty());
    assert!(files_in(&s.images_dir()).is_empty());
}

#[tokio::test]
async fn image_decompression_unpacks_gzip_and_a_one_member_zip() {
    use std::io::Write;
    let original = data(3 << 20);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&original).unwrap();
    let gz = gz.finish().unwrap();
    let mut zipped = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zipped
        .start_file("disk.img", zip::write::SimpleFileOptions::default())
        .unwrap();
    zipped.write_all(&original).unwrap();
    let zipped = zipped.finish().unwrap().into_inner();
    let mut two = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for name in ["a", "b"] {
        two.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        two.write_all(b"x").unwrap();
    }
    let two = two.finish().unwrap().into_inner();

    let s = common::start_with(plugins(&["image_decompression"]), |b| b).await;
    for (what, packed) in [("gzip", gz), ("zip", zipped)] {
        let id = s.create(json!({})).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(stage(&s, &id, packed).send().await.unwrap().status(), 204);
        let r = import(&s, &id, json!({"method": {"name": "glance-direct"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let done = wait_for(&s, &id, |i| {
            i["status"] == "active" || i["status"] == "queued"
        })
        .await;
        assert_eq!(done["status"], "active", "{what}: {done}");
        assert_eq!(done["size"], original.len(), "{what}");
        assert_eq!(done["checksum"], md5_hex(&original), "{what}");
        assert_eq!(download(&s, &id).await, original, "{what}");
    }
    let id = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(stage(&s, &id, two).send().await.unwrap().status(), 204);
    let r = import(&s, &id, json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for(&s, &id, |i| i["status"] == "queued").await;
    assert_eq!(
        import_task_message(&s, &id).await,
        "Archive contains more than one file."
    );
    assert!(files_in(&s.dir.path().join("staging")).is_empty());
}

#[tokio::test]
async fn inject_image_metadata_unless_the_importer_has_an_ignored_role() {
    // Without Keystone every caller has admin, member and reader.
    for (ignored, injected) in [(vec!["observer"], true), (vec!["admin"], false)] {
        let ignored: Vec<String> = ignored.into_iter().map(String::from).collect();
        let s = common::start_with(
            |c| {
                plugins(&["no_op", "inject_image_metadata"])(c);
                c.inject_metadata_properties.inject = BTreeMap::from([
                    ("hw_vif_model".to_string(), "virtio".to_string()),
                    ("os_glance_made_up".to_string(), "x".to_string()),
                ]);
                c.inject_metadata_properties.ignore_user_roles = ignored.clone();
            },
            |b| b,
        )
        .await;
        let id = s.create(json!({})).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            stage(&s, &id, data(1000)).send().await.unwrap().status(),
            204
        );
        let r = import(&s, &id, json!({"method": {"name": "glance-direct"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let done = wait_for(&s, &id, |i| {
            i["status"] == "active" || i["status"] == "queued"
        })
        .await;
        assert_eq!(done["status"], "active", "{done}");
        if injected {
            assert_eq!(done["hw_vif_model"], "virtio", "{ignored:?}: {done}");
        } else {
            assert!(done.get("hw_vif_model").is_none(), "{ignored:?}: {done}");
        }
        // Glance's reserved namespace is never injected into.
        assert!(done.get("os_glance_made_up").is_none(), "{done}");
    }
}

#[tokio::test]
async fn an_unknown_import_plugin_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.default.data_dir = dir.path().to_path_buf();
    config.database.connection = Some(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("g.sqlite").display()
    ));
    config.image_import_opts.image_import_plugins =
        vec!["no_op".into(), "image_compression".into()];
    match glance_api::app::AppBuilder::new(config).build().await {
        Err(e) => assert!(e.to_string().contains("\"image_compression\""), "{e}"),
        Ok(_) => panic!("started with an unknown import plugin"),
    }
}
