//! Several stores at once (file and S3), and two API nodes sharing one database and
//! one S3 bucket behaving as one service.

mod common;

use std::collections::BTreeMap;

use common::s3;
use glance_api::config::{BackendSection, Config};
use serde_json::{Value, json};

fn with_s3(c: &mut Config, addr: std::net::SocketAddr, default: &str) {
    c.default.enabled_backends = Some("fast:file,cheap:s3".into());
    c.glance_store.default_backend = default.into();
    let s3 = BackendSection {
        s3_store_host: Some(format!("http://{addr}")),
        s3_store_access_key: Some(s3::ACCESS_KEY.into()),
        s3_store_secret_key: Some(s3::SECRET_KEY.into()),
        s3_store_bucket: Some("glance".into()),
        s3_store_large_object_chunk_size: 5,
        store_description: Some("cheap and deep".into()),
        ..BackendSection::default()
    };
    c.backends = BTreeMap::from([("cheap".to_string(), s3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_go_to_the_store_asked_for() {
    let s3dir = tempfile::tempdir().unwrap();
    let addr = s3::start(s3dir.path(), "glance").await;
    let s = common::start_with(|c| with_s3(c, addr, "fast"), |b| b).await;

    let r = s
        .post_json(
            "/v2/images",
            json!({"name": "a", "disk_format": "raw", "container_format": "bare"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["openstack-image-store-ids"], "cheap,fast");
    let a: Value = r.json().await.unwrap();
    let a = a["id"].as_str().unwrap().to_string();
    let b = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    assert_eq!(
        s.upload(&a, vec![1u8; 1000]).send().await.unwrap().status(),
        204
    );
    let data: Vec<u8> = (0..(7 << 20)).map(|i| (i % 251) as u8).collect();
    let r = s
        .upload(&b, data.clone())
        .header("x-image-meta-store", "cheap")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.image(&a).await["stores"], "fast");
    assert_eq!(s.image(&b).await["stores"], "cheap");
    assert!(
        s3dir.path().join("glance").join(&b).exists(),
        "object in the bucket"
    );
    let got = s
        .get(&format!("/v2/images/{b}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got.as_ref() == &data[..]);
    let part = s
        .get(&format!("/v2/images/{b}/file"))
        .header("range", "bytes=5-9")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &data[5..10]);

    // an unknown store: 400, and the image is still waiting for data
    let r = s
        .upload(&c, vec![1u8; 10])
        .header("x-image-meta-store", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(s.image(&c).await["status"], "queued");

    let stores: Value = s
        .get("/v2/info/stores")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stores,
        json!({"stores": [{"id": "cheap", "description": "cheap and deep"}, {"id": "fast", "default": "true"}]})
    );
    // deleting removes the object from the bucket
    assert_eq!(
        s.delete(&format!("/v2/images/{b}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(!s3dir.path().join("glance").join(&b).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_and_one_bucket_act_as_one() {
    let s3dir = tempfile::tempdir().unwrap();
    let addr = s3::start(s3dir.path(), "glance").await;
    let (a, b) = common::start_pair(|c| with_s3(c, addr, "cheap")).await;
    let img = a.create(json!({"name": "shared"})).await;
    let id = img["id"].as_str().unwrap();
    let data: Vec<u8> = (0..(6 << 20) + 5).map(|i| (i * 7 % 256) as u8).collect();
    assert_eq!(
        a.upload(id, data.clone()).send().await.unwrap().status(),
        204
    );
    // the other node sees it, serves its data and lists it
    assert_eq!(b.image(id).await["status"], "active");
    let got = b
        .get(&format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got.as_ref() == &data[..]);
    let list: Value = b
        .get("/v2/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id)
    );
    // a second upload through the other node conflicts
    assert_eq!(
        b.upload(id, vec![0u8; 3]).send().await.unwrap().status(),
        409
    );
    // delete through the other node: gone on both, and from the bucket
    assert_eq!(
        b.delete(&format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        a.get(&format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert!(!s3dir.path().join("glance").join(id).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_from_a_store() {
    let s3dir = tempfile::tempdir().unwrap();
    let addr = s3::start(s3dir.path(), "glance").await;
    let s = common::start_with(|c| with_s3(c, addr, "fast"), |b| b).await;
    let id = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let del = |store: &str| s.delete(&format!("/v2/stores/{store}/{id}")).send();
    assert_eq!(del("fast").await.unwrap().status(), 409, "not active yet");
    s.upload(&id, vec![1u8; 10]).send().await.unwrap();
    assert_eq!(del("cheap").await.unwrap().status(), 404, "no data there");
    assert_eq!(del("nope").await.unwrap().status(), 409, "unknown store");
    assert_eq!(
        del("fast").await.unwrap().status(),
        403,
        "the only copy stays"
    );
    assert_eq!(s.image(&id).await["status"], "active");
}
