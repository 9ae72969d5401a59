//! `show_image_direct_url`: the image's best location as `direct_url`, for
//! everyone who may see the image, only when the operator turns it on.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use glance_api::config::{AuthMode, BackendSection, Config};
use glance_testkit::http::as_project;
use serde_json::{Value, json};

async fn id_of(s: &common::TestServer, extra: Value) -> String {
    s.create(extra).await["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn off_by_default() {
    let s = common::start().await;
    let id = id_of(&s, json!({})).await;
    assert_eq!(
        s.upload(&id, vec![7u8; 100]).send().await.unwrap().status(),
        204
    );
    let image = s.image(&id).await;
    assert_eq!(image["status"], "active");
    assert!(image.get("direct_url").is_none(), "{image}");
}

#[tokio::test]
async fn on_it_is_the_location_of_the_data_for_anyone_who_sees_the_image() {
    let s = common::start_with(
        |c| {
            c.default.show_image_direct_url = true;
            c.auth.mode = AuthMode::TrustedHeaders;
        },
        |b| b,
    )
    .await;
    let create = as_project(
        s.post_json(
            "/v2/images",
            json!({"disk_format": "raw", "container_format": "bare", "visibility": "public"}),
        ),
        "owner",
        "admin",
    );
    let created: Value = create.send().await.unwrap().json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    // No data yet, so no location to show.
    assert!(created.get("direct_url").is_none(), "{created}");
    let show = |project: &'static str| {
        let rb = as_project(s.get(&format!("/v2/images/{id}")), project, "member,reader");
        async move { rb.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert!(show("owner").await.get("direct_url").is_none());

    let upload = as_project(s.upload(&id, vec![7u8; 100]), "owner", "member,reader");
    assert_eq!(upload.send().await.unwrap().status(), 204);
    let want = format!("file://{}", s.images_dir().join(&id).display());
    assert_eq!(show("owner").await["direct_url"], want.as_str());
    // Glance puts no policy on it: another project's member sees it too.
    assert_eq!(show("stranger").await["direct_url"], want.as_str());
    // And lists carry it.
    let list: Value = as_project(s.get("/v2/images"), "stranger", "member,reader")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["images"][0]["direct_url"], want.as_str());
}

/// Two file stores, `light` the default and `heavy` weighing more.
fn weighted_stores(c: &mut Config) {
    c.default.show_image_direct_url = true;
    c.default.enabled_backends = Some("light:file,heavy:file".into());
    c.glance_store.default_backend = "light".into();
    let dir = c.default.data_dir.clone();
    let store = |name: &str, weight: i64| BackendSection {
        filesystem_store_datadir: Some(dir.join(name)),
        weight,
        ..BackendSection::default()
    };
    c.backends = BTreeMap::from([
        ("light".to_string(), store("light", 10)),
        ("heavy".to_string(), store("heavy", 100)),
        (
            "os_glance_staging_store".to_string(),
            store("staged-here", 0),
        ),
    ]);
}

#[tokio::test]
async fn with_several_stores_the_heaviest_stores_location_wins() {
    let s = common::start_with(weighted_stores, |b| b).await;
    let id = id_of(&s, json!({})).await;
    assert_eq!(
        s.upload(&id, vec![7u8; 100]).send().await.unwrap().status(),
        204
    );
    let light = format!("file://{}", s.dir.path().join("light").join(&id).display());
    assert_eq!(s.image(&id).await["direct_url"], light.as_str());

    // Copied to the heavier store, which comes second among the locations.
    let r = s
        .post_json(
            &format!("/v2/images/{id}/import"),
            json!({"method": {"name": "copy-image"}, "stores": ["heavy"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut image = s.image(&id).await;
    for _ in 0..600 {
        if image["stores"] == "light,heavy" && image.get("os_glance_import_task").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        image = s.image(&id).await;
    }
    assert_eq!(image["stores"], "light,heavy", "{image}");
    let heavy = format!("file://{}", s.dir.path().join("heavy").join(&id).display());
    assert_eq!(image["direct_url"], heavy.as_str());
}
