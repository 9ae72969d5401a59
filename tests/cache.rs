//! The image cache and the cache API over HTTP: downloads fill the cache and are
//! then served from it (proved by removing the store's file), ranged reads and
//! cut downloads never touch it, deletes evict, pruning keeps the LRU bound,
//! the prefetcher fills queued images, and the API answers as Glance's does.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use glance_api::config::{AuthMode, Config};
use glance_testkit::http::as_project;
use serde_json::{Value, json};

/// Bytes that differ from image to image and along the image.
fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn cache_dir(c: &Config) -> PathBuf {
    c.default.data_dir.join("image-cache")
}

fn with_cache(c: &mut Config) {
    c.default.image_cache_dir = Some(cache_dir(c));
}

async fn start_cached() -> common::TestServer {
    common::start_with(with_cache, |b| b).await
}

async fn upload(s: &common::TestServer, bytes: Vec<u8>) -> String {
    let id = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = s.upload(&id, bytes).send().await.unwrap();
    assert_eq!(resp.status(), 204, "upload");
    id
}

async fn download(s: &common::TestServer, id: &str) -> reqwest::Response {
    s.get(&format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap()
}

async fn cache_state(s: &common::TestServer) -> Value {
    let resp = s.get("/v2/cache").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn cached_ids(state: &Value) -> Vec<String> {
    let mut ids: Vec<String> = state["cached_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["image_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The cache entry of `id`, once the fill that is under way lands (a fill
/// ends after the response that fed it). Gives up after a generous while.
async fn wait_cached(s: &common::TestServer, id: &str) -> Value {
    for _ in 0..400 {
        let state = cache_state(s).await;
        if let Some(entry) = state["cached_images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["image_id"] == id)
        {
            return entry.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} never reached the cache");
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn the_second_download_comes_from_the_cache() {
    let s = start_cached().await;
    let bytes = data(1, 3 << 20);
    let id = upload(&s, bytes.clone()).await;
    let first = download(&s, &id).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.bytes().await.unwrap(), bytes);
    let entry = wait_cached(&s, &id).await;
    assert_eq!(entry["size"], bytes.len());
    assert_eq!(entry["hits"], 0);
    assert_eq!(entry["checksum"], s.image(&id).await["checksum"]);
    assert!(entry["last_accessed"].as_f64().unwrap() > 1.7e9, "{entry}");

    // Without the store's copy, only the cache can answer.
    std::fs::remove_file(s.images_dir().join(&id)).unwrap();
    let second = download(&s, &id).await;
    assert_eq!(second.status(), 200);
    assert_eq!(
        second.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert_eq!(second.bytes().await.unwrap(), bytes);
    assert_eq!(wait_cached(&s, &id).await["hits"], 1);
}

#[tokio::test]
async fn a_ranged_read_neither_fills_nor_reads_the_cache() {
    let s = start_cached().await;
    let bytes = data(2, 1 << 20);
    let id = upload(&s, bytes.clone()).await;
    let ranged = s
        .get(&format!("/v2/images/{id}/file"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap(), bytes[10..20]);
    let dir = cache_dir(&s.config);
    assert!(cached_ids(&cache_state(&s).await).is_empty());
    assert!(files(&dir).is_empty() && files(&dir.join("incomplete")).is_empty());

    // Cached now; a range still goes to the store, which no longer has it.
    assert_eq!(download(&s, &id).await.bytes().await.unwrap(), bytes);
    wait_cached(&s, &id).await;
    std::fs::remove_file(s.images_dir().join(&id)).unwrap();
    let ranged = s
        .get(&format!("/v2/images/{id}/file"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_ne!(ranged.status(), 206);
    assert_eq!(wait_cached(&s, &id).await["hits"], 0);
}

#[tokio::test]
async fn deleting_an_image_evicts_it() {
    let s = start_cached().await;
    let id = upload(&s, data(3, 1 << 16)).await;
    download(&s, &id).await.bytes().await.unwrap();
    wait_cached(&s, &id).await;
    assert_eq!(files(&cache_dir(&s.config)), [id.as_str()]);
    let resp = s.delete(&format!("/v2/images/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert!(cached_ids(&cache_state(&s).await).is_empty());
    assert!(files(&cache_dir(&s.config)).is_empty());
}

#[tokio::test]
async fn pruning_keeps_the_size_bound_evicting_the_least_recently_used() {
    const SIZE: usize = 100 << 10;
    let s = common::start_with(
        |c| {
            with_cache(c);
            // Room for two images and a half.
            c.default.image_cache_max_size = (SIZE * 5 / 2) as u64;
        },
        |b| b,
    )
    .await;
    let a = upload(&s, data(4, SIZE)).await;
    let b = upload(&s, data(5, SIZE)).await;
    let c = upload(&s, data(6, SIZE)).await;
    for id in [&a, &b] {
        download(&s, id).await.bytes().await.unwrap();
        wait_cached(&s, id).await;
    }
    // A hit makes `a` the most recently used.
    download(&s, &a).await.bytes().await.unwrap();
    assert_eq!(wait_cached(&s, &a).await["hits"], 1);
    // `c` makes room for itself by evicting `b`.
    download(&s, &c).await.bytes().await.unwrap();
    wait_cached(&s, &c).await;
    let mut want = vec![a.clone(), c.clone()];
    want.sort();
    assert_eq!(cached_ids(&cache_state(&s).await), want);
    assert_eq!(files(&cache_dir(&s.config)), want);
    // Within the bound, a prune has nothing to do.
    let resp = s
        .client
        .post(format!("{}/v2/cache/prune", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"total_files_pruned": 0, "total_bytes_pruned": 0})
    );
}

#[tokio::test]
async fn a_queued_image_is_prefetched() {
    let s = start_cached().await;
    let bytes = data(7, 1 << 20);
    let id = upload(&s, bytes.clone()).await;
    let resp = s
        .client
        .put(format!("{}/v2/cache/{id}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(wait_cached(&s, &id).await["size"], bytes.len());
    assert_eq!(cache_state(&s).await["queued_images"], json!([]));
    // Served from the cache from now on.
    std::fs::remove_file(s.images_dir().join(&id)).unwrap();
    assert_eq!(download(&s, &id).await.bytes().await.unwrap(), bytes);

    // Only an active image that exists may be queued.
    let queued = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = s
        .client
        .put(format!("{}/v2/cache/{queued}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Only images with status active can be targeted for queueing")
    );
    let missing = "d9b0b0a6-5e3c-4c8f-9f6e-3f0e5f1f0a11";
    let resp = s
        .client
        .put(format!("{}/v2/cache/{missing}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains(&format!("Image {missing} not found."))
    );
}

/// A queued image whose data cannot be read stays queued (the prefetch fails).
async fn queue_unreadable(s: &common::TestServer) -> String {
    let id = upload(s, data(8, 1 << 10)).await;
    std::fs::remove_file(s.images_dir().join(&id)).unwrap();
    let resp = s
        .client
        .put(format!("{}/v2/cache/{id}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    id
}

async fn clear(s: &common::TestServer, target: Option<&str>) -> reqwest::Response {
    // webob answers errors in plain text to a client that asks for neither
    // HTML nor JSON.
    let mut rb = s.delete("/v2/cache").header("accept", "text/plain");
    if let Some(t) = target {
        rb = rb.header("x-image-cache-clear-target", t);
    }
    rb.send().await.unwrap()
}

#[tokio::test]
async fn clearing_takes_the_cache_the_queue_or_both() {
    let s = start_cached().await;
    let fill = async || {
        let id = upload(&s, data(9, 1 << 12)).await;
        download(&s, &id).await.bytes().await.unwrap();
        wait_cached(&s, &id).await;
        id
    };
    let cached = fill().await;
    let queued = queue_unreadable(&s).await;
    let state = cache_state(&s).await;
    assert_eq!(cached_ids(&state), [cached.as_str()]);
    assert_eq!(state["queued_images"], json!([queued.clone()]));

    let resp = clear(&s, Some("bogus")).await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(resp.text().await.unwrap().contains(
        "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string."
    ));
    assert_eq!(
        cache_state(&s).await,
        state,
        "a refused clear changes nothing"
    );

    assert_eq!(clear(&s, Some("QUEUE")).await.status(), 204);
    let state = cache_state(&s).await;
    assert_eq!(cached_ids(&state), [cached.as_str()]);
    assert_eq!(state["queued_images"], json!([]));

    assert_eq!(clear(&s, Some("cache")).await.status(), 204);
    assert!(cached_ids(&cache_state(&s).await).is_empty());
    assert!(files(&cache_dir(&s.config)).is_empty());

    // No header (or an empty one): both.
    fill().await;
    queue_unreadable(&s).await;
    assert_eq!(clear(&s, None).await.status(), 204);
    let state = cache_state(&s).await;
    assert!(cached_ids(&state).is_empty());
    assert_eq!(state["queued_images"], json!([]));

    // One entry: deleted, then a 404 as neither it nor its image exists.
    let id = fill().await;
    let path = format!("/v2/cache/{id}");
    assert_eq!(s.delete(&path).send().await.unwrap().status(), 204);
    assert!(cached_ids(&cache_state(&s).await).is_empty());
    assert_eq!(
        s.delete(&format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(s.delete(&path).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn only_admins_use_the_cache_api_and_only_where_there_is_a_cache() {
    let trusted = |c: &mut Config| c.auth.mode = AuthMode::TrustedHeaders;
    let on = common::start_with(
        |c| {
            trusted(c);
            with_cache(c);
        },
        |b| b,
    )
    .await;
    let off = common::start_with(trusted, |b| b).await;
    let member = |rb| as_project(rb, "p1", "member,reader");
    let admin = |rb| as_project(rb, "p1", "admin,member,reader");
    let routes = |s: &common::TestServer| {
        let u = &s.url;
        let id = "d9b0b0a6-5e3c-4c8f-9f6e-3f0e5f1f0a11";
        vec![
            s.client.get(format!("{u}/v2/cache")),
            s.client.delete(format!("{u}/v2/cache")),
            s.client.delete(format!("{u}/v2/cache/{id}")),
            s.client.get(format!("{u}/v2/cache/nodes/{id}")),
            s.client.post(format!("{u}/v2/cache/clean")),
            s.client.post(format!("{u}/v2/cache/prune")),
        ]
    };
    for s in [&on, &off] {
        for rb in routes(s) {
            let resp = member(rb).send().await.unwrap();
            assert_eq!(resp.status(), 403, "{}", resp.url());
        }
    }
    for rb in routes(&off) {
        let resp = admin(rb).send().await.unwrap();
        let url = resp.url().clone();
        assert_eq!(resp.status(), 404, "{url}");
        assert!(
            resp.text()
                .await
                .unwrap()
                .contains("Caching via API is not supported at this site."),
            "{url}"
        );
    }
    let resp = admin(on.get("/v2/cache")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"cached_images": [], "queued_images": []})
    );
}

#[tokio::test]
async fn the_nodes_of_an_image_are_the_urls_of_the_nodes_caching_it() {
    let s = common::start_with(
        |c| {
            with_cache(c);
            c.default.worker_self_reference_url = Some("http://node-a:9292".into());
        },
        |b| b,
    )
    .await;
    let id = upload(&s, data(10, 1 << 12)).await;
    let nodes = |id: String| {
        let s = &s;
        async move {
            let resp = s
                .get(&format!("/v2/cache/nodes/{id}"))
                .send()
                .await
                .unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    assert_eq!(nodes(id.clone()).await, (200, json!([])));
    download(&s, &id).await.bytes().await.unwrap();
    wait_cached(&s, &id).await;
    assert_eq!(
        nodes(id.clone()).await,
        (200, json!(["http://node-a:9292"]))
    );
    assert_eq!(nodes("no-such-image".into()).await.0, 404);
}

async fn version_ids(s: &common::TestServer) -> Vec<(String, String)> {
    let doc: Value = s
        .get("/versions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_string(),
                v["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_versions_document_lists_the_cache_versions_only_with_a_cache() {
    let off = version_ids(&common::start().await).await;
    let on = version_ids(&start_cached().await).await;
    assert!(off.contains(&("v2.17".to_string(), "CURRENT".to_string())));
    assert_eq!(on[0], ("v2.18".to_string(), "CURRENT".to_string()));
    for v in ["v2.14", "v2.16", "v2.18"] {
        assert!(on.iter().any(|(id, _)| id == v), "{v}");
        assert!(!off.iter().any(|(id, _)| id == v), "{v}");
    }
    assert_eq!(on.len(), off.len() + 3);
}

#[tokio::test]
async fn a_cut_download_leaves_no_cache_entry() {
    let s = start_cached().await;
    // Far more than the socket buffers hold, so the client's leaving cuts it.
    let bytes = data(11, 48 << 20);
    let id = upload(&s, bytes).await;
    let mut resp = download(&s, &id).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.chunk().await.unwrap().is_some());
    drop(resp);
    // The fill gives up: its file goes, and nothing lands.
    let incomplete = cache_dir(&s.config).join("incomplete");
    for _ in 0..400 {
        if files(&incomplete).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(files(&incomplete).is_empty());
    assert!(cached_ids(&cache_state(&s).await).is_empty());
    assert!(files(&cache_dir(&s.config)).is_empty());
    // And it is not served: without the store's copy the download fails.
    std::fs::remove_file(s.images_dir().join(&id)).unwrap();
    assert_ne!(download(&s, &id).await.status(), 200);
}

#[tokio::test]
async fn a_restart_drops_interrupted_fills_and_strays_and_clean_drops_stalled_ones() {
    let s = common::start_with(
        |c| {
            with_cache(c);
            c.default.worker_self_reference_url = Some("http://node-a:9292".into());
        },
        |b| b,
    )
    .await;
    let dir = cache_dir(&s.config);
    let kept = upload(&s, data(12, 1 << 12)).await;
    download(&s, &kept).await.bytes().await.unwrap();
    wait_cached(&s, &kept).await;
    // What a kill -9 mid-fill leaves: never served, the store answers.
    let interrupted_bytes = data(13, 1 << 12);
    let interrupted = upload(&s, interrupted_bytes.clone()).await;
    std::fs::write(dir.join("incomplete").join(&interrupted), b"half").unwrap();
    assert_eq!(
        download(&s, &interrupted).await.bytes().await.unwrap(),
        interrupted_bytes
    );
    // A file with no entry (a crash between the rename and the record).
    let stray = upload(&s, data(14, 1 << 12)).await;
    std::fs::write(dir.join(&stray), data(14, 1 << 12)).unwrap();

    // The same node starting again over the same directory and database.
    let config = s.config.clone();
    let again = common::start_on(config.database_url(), move |c| {
        *c = config;
        c.default.node_id = Some("second-node".into());
    })
    .await;
    assert!(files(&dir.join("incomplete")).is_empty());
    assert_eq!(files(&dir), [kept.as_str()]);
    assert_eq!(cached_ids(&cache_state(&again).await), [kept.as_str()]);

    // Clean: invalid files, and fills untouched for longer than the stall time.
    let stalled = dir.join("incomplete").join("stalled");
    let fresh = dir.join("incomplete").join("fresh");
    for f in [&stalled, &fresh] {
        std::fs::write(f, b"x").unwrap();
    }
    std::fs::File::options()
        .write(true)
        .open(&stalled)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 86400))
        .unwrap();
    std::fs::write(dir.join("invalid").join("bad"), b"x").unwrap();
    let resp = again
        .client
        .post(format!("{}/v2/cache/clean", again.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(files(&dir.join("incomplete")), ["fresh"]);
    assert!(files(&dir.join("invalid")).is_empty());
}

#[tokio::test]
async fn kill_9_mid_fill_leaves_a_file_never_served_and_removed_at_restart() {
    use common::process::ServerProcess;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("image-cache");
    let (database, db) = ServerProcess::database_line().await;
    let config = format!(
        "[DEFAULT]\ndata_dir = \"{}\"\nimage_cache_dir = \"{}\"\n[database]\n{database}",
        dir.path().display(),
        cache.display()
    );
    let mut s = ServerProcess::start(&dir.path().join("glance.toml"), &config).await;
    s.owns(db);
    let id = s.create().await;
    // Far more than the socket buffers hold: the fill stays under way while
    // the client below reads nothing more.
    let bytes = data(15, 48 << 20);
    assert_eq!(
        s.upload(&id, bytes.clone()).send().await.unwrap().status(),
        204
    );
    let mut stalled = s
        .get(&format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    assert!(stalled.chunk().await.unwrap().is_some());
    let partial = cache.join("incomplete").join(&id);
    for _ in 0..400 {
        if std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0));
    // Meanwhile another download gets the whole image from the store.
    let whole = s
        .get(&format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.bytes().await.unwrap(), bytes);

    s.kill9();
    drop(stalled);
    assert!(partial.exists(), "the crash leaves the partial file");
    s.start_again().await;
    assert!(files(&cache.join("incomplete")).is_empty());
    assert!(files(&cache).is_empty());
    let state: Value = s
        .get("/v2/cache")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["cached_images"], json!([]));
    let again = s
        .get(&format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.bytes().await.unwrap(), bytes);
}
