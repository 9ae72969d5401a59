//! Glance's quotas over HTTP: racing uploads cannot together pass a limit, and
//! what is refused leaves nothing behind.

mod common;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

const MIB: usize = 1 << 20;

/// A chunked body of `chunks` × 64 KiB that pauses between chunks, so that
/// uploads running at once interleave on the server.
fn slow_body(chunks: usize) -> reqwest::Body {
    let stream = futures_util::stream::iter(0..chunks).then(|_| async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok::<_, std::io::Error>(Bytes::from(vec![0x5a; 64 << 10]))
    });
    reqwest::Body::wrap_stream(stream)
}

fn image_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("images"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn parallel_uploads_never_take_a_project_past_image_size_total() {
    // 4 MiB for the project; 8 uploads of 1.5 MiB each race for it.
    let s = common::start_with(|c| c.quota.image_size_total = Some(4), |b| b).await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(
            s.create(json!({})).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let uploads = ids.iter().map(|id| s.upload(id, slow_body(24)).send());
    // A refused upload is answered before its body is all sent, and the
    // connection then closed: a client may see that as a broken pipe (0 here).
    let statuses: Vec<u16> = futures_util::future::join_all(uploads)
        .await
        .into_iter()
        .map(|r| r.map(|r| r.status().as_u16()).unwrap_or(0))
        .collect();
    let accepted = statuses.iter().filter(|s| **s == 204).count();
    assert!(
        statuses.iter().all(|s| [204, 413, 0].contains(s)),
        "{statuses:?}"
    );
    assert!((1..=2).contains(&accepted), "{statuses:?}");

    let mut stored = 0;
    for id in &ids {
        let img = s.image(id).await;
        match img["status"].as_str().unwrap() {
            "active" => stored += img["size"].as_u64().unwrap() as usize,
            // A refused upload puts the image back, with no size and no data.
            "queued" => assert_eq!(img["size"], Value::Null),
            other => panic!("image left {other}"),
        }
    }
    assert_eq!(stored, accepted * 3 * MIB / 2);
    assert!(stored <= 4 * MIB, "stored {stored} bytes");
    let usage: Value = s
        .get("/v2/info/usage")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage["usage"]["image_size_total"]["limit"], 4);
    assert!(
        usage["usage"]["image_size_total"]["usage"]
            .as_u64()
            .unwrap()
            <= 4
    );
    assert_eq!(usage["usage"]["image_count_uploading"]["usage"], 0);
    assert_eq!(
        image_files(s.dir.path()),
        accepted,
        "orphan data in the store"
    );
}

#[tokio::test]
async fn a_known_size_over_the_legacy_storage_quota_is_refused_up_front() {
    let s = common::start_with(|c| c.default.user_storage_quota = "1MB".into(), |b| b).await;
    let id = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = s
        .upload(&id, vec![1u8; MIB + 1])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("will exceed the limit. 1048576 bytes remaining"),
        "{body}"
    );
    assert_eq!(
        s.upload(&id, vec![1u8; MIB]).send().await.unwrap().status(),
        204
    );
    // Without unified limits Glance reports no usage at all.
    let usage: Value = s
        .get("/v2/info/usage")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage, json!({"usage": {}}));
}

#[tokio::test]
async fn image_count_total_holds_under_parallel_creates() {
    let s = common::start_with(|c| c.quota.image_count_total = Some(3), |b| b).await;
    let creates = (0..10).map(|_| s.post_json("/v2/images", json!({"name": "c"})).send());
    let created = futures_util::future::join_all(creates)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().status() == 201)
        .count();
    assert_eq!(created, 3);
    let list: Value = s
        .get("/v2/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["images"].as_array().unwrap().len(), 3);
}
