//! Locations: the http store that reads `http(s)://` locations, the legacy
//! `PATCH` of `/locations` behind `show_multiple_locations`, and the v2.17
//! location API. The web server is a loopback one, which the operator must allow
//! (`[import_filtering_opts]`), as for web-download.

mod common;

use glance_api::config::Config;
use serde_json::{Value, json};

fn allow_web(c: &mut Config, port: u16) {
    c.import_filtering_opts.allowed_hosts = vec!["127.0.0.1".into()];
    c.import_filtering_opts.allowed_ports = vec![port];
}

async fn queued(s: &common::TestServer) -> String {
    let created = s
        .create(json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    assert_eq!(created["status"], "queued");
    created["id"].as_str().unwrap().to_string()
}

async fn patch(s: &common::TestServer, id: &str, ops: Value) -> (u16, String) {
    let r = s
        .patch(&format!("/v2/images/{id}"), ops)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn without_show_multiple_locations_locations_are_hidden_and_fixed() {
    let s = common::start().await;
    let id = queued(&s).await;
    assert!(s.image(&id).await.get("locations").is_none());
    let (status, body) = patch(
        &s,
        &id,
        json!([{"op": "add", "path": "/locations/-", "value": {"url": "http://127.0.0.1/x", "metadata": {}}}]),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("not allowed to add locations if locations are invisible."),
        "{body}"
    );
}

/// Tempest's `check_set_location`, `check_set_multiple_locations` and
/// `test_delete_locations`, against a web server holding the data.
#[tokio::test]
async fn legacy_patch_adds_an_http_location_and_the_image_serves_it() {
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let port = common::web::serve(data.clone()).await;
    let s = common::start_with(
        |c| {
            allow_web(c, port);
            c.default.show_multiple_locations = true;
            c.default.show_image_direct_url = true;
        },
        |b| b,
    )
    .await;
    let id = queued(&s).await;
    assert_eq!(s.image(&id).await["locations"], json!([]));
    let url = format!("http://127.0.0.1:{port}/image");

    let (status, body) = patch(
        &s,
        &id,
        json!([{"op": "add", "path": "/locations/-", "value": {"url": url, "metadata": {"foo": "bar"}}}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let image = s.image(&id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["size"], 50_000);
    assert_eq!(
        image["locations"],
        json!([{"url": url, "metadata": {"foo": "bar"}}])
    );
    assert_eq!(image["direct_url"], url.as_str());
    assert_eq!(image["os_hash_algo"], Value::Null);

    // The data comes from the web server, whole.
    let got = s
        .get(&format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), &data[..]);

    // A second location goes last; the same one again is a duplicate.
    let second = format!("{url}#new");
    let (status, body) = patch(
        &s,
        &id,
        json!([{"op": "add", "path": "/locations/-", "value": {"url": second, "metadata": {"speed": "88mph"}}}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let image = s.image(&id).await;
    assert_eq!(image["locations"][1]["url"], second.as_str());
    assert_eq!(image["direct_url"], url.as_str());
    let (status, body) = patch(
        &s,
        &id,
        json!([{"op": "add", "path": "/locations/-", "value": {"url": second, "metadata": {"speed": "88mph"}}}]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(&format!("The location {second} already exists")),
        "{body}"
    );

    // Removing the first leaves the second; the last one cannot go.
    let (status, body) = patch(&s, &id, json!([{"op": "remove", "path": "/locations/0"}])).await;
    assert_eq!(status, 200, "{body}");
    let image = s.image(&id).await;
    assert_eq!(image["locations"].as_array().unwrap().len(), 1);
    assert_eq!(image["locations"][0]["url"], second.as_str());
    assert_eq!(image["direct_url"], second.as_str());
    let (status, body) = patch(&s, &id, json!([{"op": "remove", "path": "/locations/0"}])).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("Cannot remove last location in the image."),
        "{body}"
    );

    // Deleting the image leaves the web server's data alone.
    let r = s.delete(&format!("/v2/images/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn legacy_patch_refuses_what_glance_refuses() {
    let port = common::web::serve(vec![1u8; 1000]).await;
    let s = common::start_with(
        |c| {
            allow_web(c, port);
            c.default.show_multiple_locations = true;
            c.default.image_location_quota = 2;
        },
        |b| b,
    )
    .await;
    let id = queued(&s).await;
    let add = |url: String| json!([{"op": "add", "path": "/locations/-", "value": {"url": url, "metadata": {}}}]);
    // No store owns it, it is local, it has no data, or it is an internal address.
    for url in [
        "ftp://example.com/x".to_string(),
        format!("file://{}", s.dir.path().display()),
        format!("http://127.0.0.1:{port}/missing"),
        "http://169.254.169.254/latest/meta-data".to_string(),
    ] {
        let (status, body) = patch(&s, &id, add(url.clone())).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body.contains("Invalid location"), "{url}: {body}");
    }
    assert_eq!(s.image(&id).await["status"], "queued");
    // Removing from a queued image is a conflict; a bad position is refused.
    let (status, _) = patch(&s, &id, json!([{"op": "remove", "path": "/locations/0"}])).await;
    assert_eq!(status, 409);
    let (status, body) = patch(
        &s,
        &id,
        json!([{"op": "add", "path": "/locations/x", "value": {"url": "http://a/", "metadata": {}}}]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Emptying the list is forbidden.
    let (status, body) = patch(
        &s,
        &id,
        json!([{"op": "replace", "path": "/locations", "value": []}]),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // validation_data must use the configured algorithm.
    let url = format!("http://127.0.0.1:{port}/image");
    let (status, body) = patch(
        &s,
        &id,
        json!([{"op": "add", "path": "/locations/-", "value": {"url": url, "metadata": {},
            "validation_data": {"os_hash_algo": "sha256", "os_hash_value": "ab".repeat(32)}}}]),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("os_hash_algo must be sha512, not sha256"),
        "{body}"
    );
    // With the right values the image takes them as it becomes active.
    let md5 = "ab".repeat(16);
    let sha = "cd".repeat(64);
    let (status, body) = patch(
        &s,
        &id,
        json!([{"op": "add", "path": "/locations/-", "value": {"url": url, "metadata": {},
            "validation_data": {"checksum": md5, "os_hash_algo": "sha512", "os_hash_value": sha}}}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let image = s.image(&id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["checksum"], md5.as_str());
    assert_eq!(image["os_hash_value"], sha.as_str());

    // The quota counts the locations an image would have.
    let (status, _) = patch(&s, &id, add(format!("{url}#2"))).await;
    assert_eq!(status, 200);
    let (status, body) = patch(&s, &id, add(format!("{url}#3"))).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("Attempted: 3, Maximum: 2"), "{body}");
}

#[tokio::test]
async fn the_http_store_is_read_only_and_listed_so() {
    let s = common::start_with(
        |c| {
            c.default.enabled_backends = Some("fast:file, web:http".into());
            c.glance_store.default_backend = "fast".into();
        },
        |b| b,
    )
    .await;
    let stores: Value = s
        .get("/v2/info/stores")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let web = stores["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["id"] == "web")
        .cloned()
        .unwrap();
    assert_eq!(web["read-only"], "true", "{stores}");
    // Uploads cannot go there.
    let id = queued(&s).await;
    let r = s
        .upload(&id, vec![1u8; 10])
        .header("x-image-meta-store", "web")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(s.image(&id).await["status"], "queued");
}

/// A server whose callers say who they are, with an http store for a loopback
/// web server serving `data`.
async fn location_api_server(
    data: Vec<u8>,
    configure: impl FnOnce(&mut Config),
) -> (common::TestServer, String) {
    let port = common::web::serve(data).await;
    let s = common::start_with(
        |c| {
            allow_web(c, port);
            c.auth.mode = glance_api::config::AuthMode::TrustedHeaders;
            configure(c);
        },
        |b| b,
    )
    .await;
    (s, format!("http://127.0.0.1:{port}/image"))
}

async fn created_by_member(s: &common::TestServer) -> String {
    let r = glance_testkit::http::as_project(
        s.post_json(
            "/v2/images",
            json!({"disk_format": "raw", "container_format": "bare"}),
        ),
        "p1",
        "member,reader",
    );
    let created: Value = r.send().await.unwrap().json().await.unwrap();
    created["id"].as_str().unwrap().to_string()
}

async fn add_location(s: &common::TestServer, id: &str, body: Value, roles: &str) -> (u16, String) {
    let r = glance_testkit::http::as_project(
        s.post_json(&format!("/v2/images/{id}/locations"), body),
        "p1",
        roles,
    );
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The image's one task once it is over, and the image then.
async fn settled(s: &common::TestServer, id: &str) -> (Value, Value) {
    let task = common::process::eventually("the location task to end", || async {
        let r = glance_testkit::http::as_project(
            s.get(&format!("/v2/images/{id}/tasks")),
            "p1",
            "member,reader",
        );
        let tasks: Value = r.send().await.unwrap().json().await.unwrap();
        let task = tasks["tasks"][0].clone();
        match task["status"].as_str() {
            Some("success" | "failure") => Ok(task),
            _ => Err(tasks.to_string()),
        }
    })
    .await;
    let r =
        glance_testkit::http::as_project(s.get(&format!("/v2/images/{id}")), "p1", "member,reader");
    (task, r.send().await.unwrap().json().await.unwrap())
}

/// Tempest's `_add_location_and_verify` with `do_secure_hash` on.
#[tokio::test]
async fn the_location_api_checks_hashes_and_activates_the_image() {
    use sha2::Digest;
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let md5 = hex::encode(md5::Md5::digest(&data));
    let sha256 = hex::encode(sha2::Sha256::digest(&data));
    let sha512 = hex::encode(sha2::Sha512::digest(&data));
    let (s, url) = location_api_server(data, |_| {}).await;
    let id = created_by_member(&s).await;

    for (validation, why) in [
        (
            json!({"os_hash_algo": "sha512", "os_hash_value": "dbc9e0f80d131e64b94913a7b40bb5"}),
            "wrong size",
        ),
        (json!({"os_hash_value": sha512}), "no algorithm"),
        (
            json!({"os_hash_algo": "sha123", "os_hash_value": sha512}),
            "unknown algorithm",
        ),
        (
            json!({"os_hash_algo": "sha512", "os_hash_value": sha256}),
            "size of another algorithm",
        ),
    ] {
        let (status, body) = add_location(
            &s,
            &id,
            json!({"url": url, "validation_data": validation}),
            "member,reader",
        )
        .await;
        assert_eq!(status, 400, "{why}: {body}");
    }
    // A location no http store serves is the service role's only.
    let (status, body) =
        add_location(&s, &id, json!({"url": "s3://bucket/x"}), "member,reader").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("http store must be enabled to use location API by normal user."),
        "{body}"
    );

    let (status, body) = add_location(
        &s,
        &id,
        json!({"url": url, "validation_data": {"os_hash_algo": "sha256", "os_hash_value": sha256}}),
        "member,reader",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (task, image) = settled(&s, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["type"], "location_import");
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["os_hash_algo"], "sha256");
    assert_eq!(image["os_hash_value"], sha256.as_str());
    assert_eq!(image["checksum"], md5.as_str());
    assert_eq!(image["size"], 70_000);
    // A second location on an active image is a conflict.
    let (status, _) = add_location(&s, &id, json!({"url": url}), "member,reader").await;
    assert_eq!(status, 409);
    // Only a service (or an admin) reads the locations.
    let r = glance_testkit::http::as_project(
        s.get(&format!("/v2/images/{id}/locations")),
        "p1",
        "member,reader",
    );
    assert_eq!(r.send().await.unwrap().status(), 403);
    let r = glance_testkit::http::as_project(
        s.get(&format!("/v2/images/{id}/locations")),
        "p1",
        "reader,service",
    );
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let locations: Value = r.json().await.unwrap();
    assert_eq!(locations, json!([{"url": url, "metadata": {}}]));

    // A hash that does not match fails the task and leaves the image queued.
    let id = created_by_member(&s).await;
    let (status, _) = add_location(
        &s,
        &id,
        json!({"url": url, "validation_data": {"os_hash_algo": "sha512", "os_hash_value": "beefdead".repeat(16)}}),
        "member,reader",
    )
    .await;
    assert_eq!(status, 202);
    let (task, image) = settled(&s, &id).await;
    assert_eq!(task["status"], "failure", "{task}");
    assert!(
        task["message"]
            .as_str()
            .unwrap()
            .contains("not matched with actual os_hash_value"),
        "{task}"
    );
    assert_eq!(image["status"], "queued", "{image}");
    assert_eq!(image["checksum"], Value::Null);
    assert_eq!(image["os_hash_value"], Value::Null);

    // Without validation data the hash is the configured algorithm's.
    let id = created_by_member(&s).await;
    let (status, _) = add_location(&s, &id, json!({"url": url}), "member,reader").await;
    assert_eq!(status, 202);
    let (task, image) = settled(&s, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(image["status"], "active");
    assert_eq!(image["os_hash_algo"], "sha512");
    assert_eq!(image["os_hash_value"], sha512.as_str());
    assert_eq!(image["checksum"], md5.as_str());
    // And the data is served from the web server.
    let r = glance_testkit::http::as_project(
        s.get(&format!("/v2/images/{id}/file")),
        "p1",
        "member,reader",
    );
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 70_000);
}

/// Tempest's `_add_location_and_verify` with `do_secure_hash` off: values are
/// taken as given, and no checksum is known.
#[tokio::test]
async fn without_secure_hash_the_given_values_are_kept() {
    let (s, url) = location_api_server(vec![5u8; 4096], |c| c.default.do_secure_hash = false).await;
    let id = created_by_member(&s).await;
    let value = "ab".repeat(32);
    let (status, body) = add_location(
        &s,
        &id,
        json!({"url": url, "validation_data": {"os_hash_algo": "sha256", "os_hash_value": value}}),
        "member,reader",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (task, image) = settled(&s, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(image["status"], "active");
    assert_eq!(image["os_hash_value"], value.as_str());
    assert_eq!(image["checksum"], Value::Null);
    assert_eq!(image["size"], 4096);

    let id = created_by_member(&s).await;
    let (status, _) = add_location(&s, &id, json!({"url": url}), "member,reader").await;
    assert_eq!(status, 202);
    let (task, image) = settled(&s, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(image["status"], "active");
    assert_eq!(image["os_hash_value"], Value::Null);
    assert_eq!(image["size"], 4096);
}
