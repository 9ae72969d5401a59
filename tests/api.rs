//! The Images API over real HTTP: statuses, headers and bodies as Glance gives them.

mod common;

use md5::Digest;
use serde_json::{Value, json};

#[tokio::test]
async fn versions_and_prefixes() {
    let s = common::start().await;
    let root = s.get("/").send().await.unwrap();
    assert_eq!(root.status(), 300);
    let doc: Value = root.json().await.unwrap();
    let versions = doc["versions"].as_array().unwrap();
    assert!(
        versions
            .iter()
            .any(|v| v["id"] == "v2.17" && v["status"] == "CURRENT")
    );
    // The image cache's versions only when it is on, as Glance lists them.
    assert!(
        versions.iter().any(|v| v["id"] == "v2.12"),
        "image tasks are built"
    );
    for unbuilt in ["v2.14", "v2.16", "v2.18"] {
        assert!(
            versions.iter().all(|v| v["id"] != unbuilt),
            "{unbuilt} listed"
        );
        let prefixed = s.get(&format!("/{unbuilt}/images")).send().await.unwrap();
        assert_eq!(prefixed.status(), 300, "{unbuilt} routed");
    }
    assert!(
        versions[0]["links"][0]["href"]
            .as_str()
            .unwrap()
            .ends_with("/v2/")
    );
    assert_eq!(s.get("/versions").send().await.unwrap().status(), 200);
    assert_eq!(s.get("/v1/images").send().await.unwrap().status(), 300);
    assert_eq!(s.get("/v2.99/images").send().await.unwrap().status(), 300);
    assert_eq!(s.get("/v2.5/images").send().await.unwrap().status(), 200);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let v2 = client.get(format!("{}/v2", s.url)).send().await.unwrap();
    assert_eq!(v2.status(), 302);
    assert!(v2.headers()["location"].to_str().unwrap().ends_with("/v2/"));
    assert_eq!(s.get("/v2/").send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn create_show_update_list_delete() {
    let s = common::start().await;
    let resp = s
        .post_json("/v2/images", json!({"name": "one", "disk_format": "qcow2", "container_format": "bare", "foo": "bar", "tags": ["a", "b"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id_header = resp.headers()["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(id_header.starts_with("req-"));
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let img: Value = resp.json().await.unwrap();
    let id = img["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("{}/v2/images/{id}", s.url));
    assert_eq!(img["status"], "queued");
    assert_eq!(img["visibility"], "shared");
    assert_eq!(img["foo"], "bar");
    assert_eq!(img["size"], Value::Null);
    assert_eq!(img["self"], format!("/v2/images/{id}"));
    assert_eq!(img["file"], format!("/v2/images/{id}/file"));
    assert_eq!(img["schema"], "/v2/schemas/image");
    let created = img["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
    for key in [
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "virtual_size",
        "min_ram",
        "min_disk",
        "owner",
        "os_hidden",
        "protected",
    ] {
        assert!(img.get(key).is_some(), "{key} missing");
    }

    let patched = s
        .patch(
            &format!("/v2/images/{id}"),
            json!([
                {"op": "replace", "path": "/name", "value": "two"},
                {"op": "add", "path": "/k", "value": "v"},
                {"op": "remove", "path": "/foo"},
            ]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let p: Value = patched.json().await.unwrap();
    assert_eq!(p["name"], "two");
    assert_eq!(p["k"], "v");
    assert!(p.get("foo").is_none());
    assert_eq!(s.image(&id).await["k"], "v");

    let list: Value = s
        .get("/v2/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["first"], "/v2/images");
    assert_eq!(list["schema"], "/v2/schemas/images");
    assert!(
        list["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id.as_str())
    );

    let del = s.delete(&format!("/v2/images/{id}")).send().await.unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(
        s.get(&format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        s.delete(&format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // A deleted image's id is never reused.
    let again = s
        .post_json("/v2/images", json!({"id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
}

#[tokio::test]
async fn error_statuses_and_formats() {
    let s = common::start().await;
    let missing = "00000000-0000-0000-0000-000000000000";
    let r = s
        .get(&format!("/v2/images/{missing}"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "404 Not Found");
    assert_eq!(body["title"], "Not Found");
    assert_eq!(
        body["message"],
        format!("No image found with ID {missing}<br /><br />\n\n\n")
    );
    let html = s
        .get(&format!("/v2/images/{missing}"))
        .header("accept", "*/*")
        .send()
        .await
        .unwrap();
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.text().await.unwrap().starts_with("<html>"));
    assert_eq!(
        s.get("/v2/images/x".repeat(20).as_str())
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // 405 with Allow
    let r = s.delete("/v2/images").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");
    // unknown routes
    assert_eq!(s.get("/v2/nope").send().await.unwrap().status(), 404);
    // create errors
    for (body, status) in [
        (json!({"status": "active"}), 403),
        (json!({"locations": []}), 403),
        (json!({"os_glance_x": "y"}), 403),
        (json!({"id": "not-a-uuid"}), 400),
        (json!({"visibility": "bogus"}), 400),
        (json!({"foo": 5}), 400),
        (json!({"min_ram": -1}), 400),
        (json!({"disk_format": "bogus"}), 400),
        (json!({"tags": "notalist"}), 400),
    ] {
        let r = s
            .post_json("/v2/images", body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
    }
    for raw in ["{", "", "\"str\""] {
        let r = s
            .client
            .post(format!("{}/v2/images", s.url))
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{raw:?}");
    }
    // a body where none is expected
    let img = s.create(json!({})).await;
    let id = img["id"].as_str().unwrap();
    let r = s
        .client
        .get(format!("{}/v2/images/{id}", s.url))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // PATCH media type
    let r = s
        .client
        .patch(format!("{}/v2/images/{id}", s.url))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(
        r.headers()["accept-patch"]
            .to_str()
            .unwrap()
            .contains("openstack-images-v2.1-json-patch")
    );
    // PATCH semantics
    for (doc, status) in [
        (
            json!([{"op": "replace", "path": "/nonexist", "value": "x"}]),
            409,
        ),
        (json!([{"op": "remove", "path": "/nonexist"}]), 409),
        (json!([{"op": "remove", "path": "/name"}]), 403),
        (
            json!([{"op": "replace", "path": "/status", "value": "active"}]),
            403,
        ),
        (json!([{"op": "test", "path": "/name", "value": "x"}]), 400),
        (
            json!([{"op": "replace", "path": "/a/b", "value": "x"}]),
            400,
        ),
        (json!({}), 400),
    ] {
        let r = s
            .patch(&format!("/v2/images/{id}"), doc.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{doc}");
    }
    let draft4 = s
        .client
        .patch(format!("{}/v2/images/{id}", s.url))
        .header(
            "content-type",
            "application/openstack-images-v2.0-json-patch",
        )
        .body(r#"[{"replace":"/name","value":"old-style"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(draft4.status(), 200);
    // list parameter errors
    for q in [
        "limit=-1",
        "limit=abc",
        "sort_key=bogus",
        "sort_dir=sideways",
        "changes-since=2020-01-01",
        "marker=00000000-0000-0000-0000-000000000000",
        "name=xx:cap",
    ] {
        assert_eq!(
            s.get(&format!("/v2/images?{q}"))
                .send()
                .await
                .unwrap()
                .status(),
            400,
            "{q}"
        );
    }
    // an over-long request id is refused, a short one honoured
    let r = s
        .get("/v2/images")
        .header("x-openstack-request-id", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-openstack-request-id"], "req-abc");
    let r = s
        .get("/v2/images")
        .header("x-openstack-request-id", "a".repeat(70))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
}

#[tokio::test]
async fn upload_download_ranges_and_checksums() {
    let s = common::start().await;
    let img = s.create(json!({})).await;
    let id = img["id"].as_str().unwrap().to_string();
    // no data yet
    let r = s
        .get(&format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = s.upload(&id, data.clone()).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let meta = s.image(&id).await;
    assert_eq!(meta["status"], "active");
    assert_eq!(meta["size"], data.len());
    assert_eq!(meta["virtual_size"], data.len());
    let md5 = hex::encode(md5::Md5::digest(&data));
    assert_eq!(meta["checksum"], md5.as_str());
    assert_eq!(meta["os_hash_algo"], "sha512");
    assert_eq!(
        meta["os_hash_value"],
        hex::encode(sha2::Sha512::digest(&data)).as_str()
    );
    assert_eq!(meta["stores"], "file");
    // a second upload conflicts
    assert_eq!(s.upload(&id, vec![1u8]).send().await.unwrap().status(), 409);

    let full = s
        .get(&format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-md5"], md5.as_str());
    assert_eq!(full.headers()["content-type"], "application/octet-stream");
    assert_eq!(full.bytes().await.unwrap().as_ref(), &data[..]);

    for (range, start, end) in [
        ("bytes=0-9", 0, 10),
        ("bytes=-5", data.len() - 5, data.len()),
        ("bytes=2999990-", 2_999_990, data.len()),
    ] {
        let r = s
            .get(&format!("/v2/images/{id}/file"))
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(r.headers()["content-md5"], md5.as_str());
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {start}-{}/{}", end - 1, data.len()).as_str()
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[start..end]);
    }
    let r = s
        .get(&format!("/v2/images/{id}/file"))
        .header("range", "bytes=99999999-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = s
        .get(&format!("/v2/images/{id}/file"))
        .header("range", "bytes=0-1,5-6")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .get(&format!("/v2/images/{id}/file"))
        .header("range", "garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
}

#[tokio::test]
async fn upload_errors_leave_the_image_queued_and_no_data() {
    let s = common::start().await;
    // formats unset
    let bare = s
        .post_json("/v2/images", json!({"name": "x"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let r = s
        .upload(bare["id"].as_str().unwrap(), vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // wrong content type
    let img = s.create(json!({})).await;
    let id = img["id"].as_str().unwrap();
    let r = s
        .client
        .put(format!("{}/v2/images/{id}/file", s.url))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // announced size differs from the data
    for announced in ["5", "20"] {
        let r = s
            .upload(id, vec![1u8; 10])
            .header("x-openstack-image-size", announced)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{announced}");
        let meta = s.image(id).await;
        assert_eq!(meta["status"], "queued");
        assert_eq!(meta["size"], Value::Null);
    }
    assert!(s.stored_files().is_empty(), "{:?}", s.stored_files());
    // a 0-byte upload is legal
    let r = s.upload(id, Vec::<u8>::new()).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let meta = s.image(id).await;
    assert_eq!(meta["status"], "active");
    assert_eq!(meta["size"], 0);
    assert_eq!(meta["virtual_size"], Value::Null);
    assert_eq!(meta["checksum"], "d41d8cd98f00b204e9800998ecf8427e");
}

#[tokio::test]
async fn chunked_uploads_stream() {
    let s = common::start().await;
    let img = s.create(json!({})).await;
    let id = img["id"].as_str().unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|i| Ok(vec![i as u8; 1 << 20])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = s.upload(id, body).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.image(id).await["size"], 8 << 20);
}

#[tokio::test]
async fn pagination_sorting_and_filters() {
    let s = common::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let img = s.create(json!({"name": format!("img{i}"), "tag_me": if i % 2 == 0 { "even" } else { "odd" }})).await;
        ids.push(img["id"].as_str().unwrap().to_string());
    }
    let page: Value = s
        .get("/v2/images?limit=2&sort=name:asc")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<_> = page["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names, [json!("img0"), json!("img1")]);
    assert_eq!(page["first"], "/v2/images?limit=2&sort=name%3Aasc");
    let next = page["next"].as_str().unwrap().to_string();
    assert!(next.starts_with("/v2/images?limit=2&sort=name%3Aasc&marker="));
    let mut seen: Vec<String> = names
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    let mut link = Some(next);
    while let Some(l) = link {
        let p: Value = s.get(&l).send().await.unwrap().json().await.unwrap();
        seen.extend(
            p["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_string()),
        );
        link = p["next"].as_str().map(str::to_string);
    }
    assert_eq!(seen, ["img0", "img1", "img2", "img3", "img4"]);
    // default order is newest first
    let all: Value = s
        .get("/v2/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["images"][0]["id"], ids[4].as_str());
    assert!(all.get("next").is_none());
    // filters
    let even: Value = s
        .get("/v2/images?tag_me=even")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(even["images"].as_array().unwrap().len(), 3);
    let named: Value = s
        .get("/v2/images?name=in:img1,img3")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(named["images"].as_array().unwrap().len(), 2);
    let queued: Value = s
        .get("/v2/images?status=queued&disk_format=raw")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queued["images"].as_array().unwrap().len(), 5);
    let none: Value = s
        .get("/v2/images?size_min=1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(none["images"].as_array().unwrap().is_empty());
    // hidden images only with os_hidden=true
    s.patch(
        &format!("/v2/images/{}", ids[0]),
        json!([{"op": "replace", "path": "/os_hidden", "value": true}]),
    )
    .send()
    .await
    .unwrap();
    let visible: Value = s
        .get("/v2/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(visible["images"].as_array().unwrap().len(), 4);
    let hidden: Value = s
        .get("/v2/images?os_hidden=True")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hidden["images"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn tags_members_and_actions() {
    let s = common::start().await;
    let img = s.create(json!({})).await;
    let id = img["id"].as_str().unwrap();
    assert_eq!(
        s.client
            .put(format!("{}/v2/images/{id}/tags/blue", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        s.client
            .put(format!("{}/v2/images/{id}/tags/blue", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(s.image(id).await["tags"], json!(["blue"]));
    let tagged: Value = s
        .get("/v2/images?tag=blue")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tagged["images"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.delete(&format!("/v2/images/{id}/tags/blue"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        s.delete(&format!("/v2/images/{id}/tags/blue"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let m = s
        .post_json(
            &format!("/v2/images/{id}/members"),
            json!({"member": "proj2"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    let member: Value = m.json().await.unwrap();
    assert_eq!(member["status"], "pending");
    assert_eq!(member["schema"], "/v2/schemas/member");
    assert_eq!(
        s.post_json(
            &format!("/v2/images/{id}/members"),
            json!({"member": "proj2"})
        )
        .send()
        .await
        .unwrap()
        .status(),
        409
    );
    assert_eq!(
        s.post_json(&format!("/v2/images/{id}/members"), json!({}))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let list: Value = s
        .get(&format!("/v2/images/{id}/members"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["members"].as_array().unwrap().len(), 1);
    let put = s
        .client
        .put(format!("{}/v2/images/{id}/members/proj2", s.url))
        .json(&json!({"status": "accepted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let bogus = s
        .client
        .put(format!("{}/v2/images/{id}/members/proj2", s.url))
        .json(&json!({"status": "bogus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), 400);
    assert_eq!(
        s.get(&format!("/v2/images/{id}/members/proj2"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["status"],
        "accepted"
    );
    assert_eq!(
        s.delete(&format!("/v2/images/{id}/members/proj2"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        s.get(&format!("/v2/images/{id}/members/proj2"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let private = s.create(json!({"visibility": "private"})).await;
    let pid = private["id"].as_str().unwrap();
    assert_eq!(
        s.post_json(&format!("/v2/images/{pid}/members"), json!({"member": "p"}))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        s.get(&format!("/v2/images/{pid}/members"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    let action = |name: &str| {
        s.client
            .post(format!("{}/v2/images/{id}/actions/{name}", s.url))
            .send()
    };
    assert_eq!(
        action("deactivate").await.unwrap().status(),
        403,
        "queued images cannot be deactivated"
    );
    s.upload(id, vec![9u8; 100]).send().await.unwrap();
    assert_eq!(action("deactivate").await.unwrap().status(), 204);
    assert_eq!(action("deactivate").await.unwrap().status(), 204);
    assert_eq!(s.image(id).await["status"], "deactivated");
    assert_eq!(action("reactivate").await.unwrap().status(), 204);
    assert_eq!(s.image(id).await["status"], "active");

    let protected = s.create(json!({"protected": true})).await;
    let prid = protected["id"].as_str().unwrap();
    assert_eq!(
        s.delete(&format!("/v2/images/{prid}"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

#[tokio::test]
async fn schemas_are_served() {
    let s = common::start().await;
    for name in [
        "image",
        "images",
        "member",
        "members",
        "task",
        "tasks",
        "metadefs/namespace",
        "metadefs/tags",
    ] {
        let r = s.get(&format!("/v2/schemas/{name}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["name"], name.rsplit('/').next().unwrap());
    }
    let image: Value = s
        .get("/v2/schemas/image")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(image["additionalProperties"]["type"], "string");
}

#[tokio::test]
async fn notifications_are_written_as_json_lines() {
    let s = common::start().await;
    let img = s.create(json!({})).await;
    let id = img["id"].as_str().unwrap();
    s.upload(id, vec![1u8; 10]).send().await.unwrap();
    s.delete(&format!("/v2/images/{id}")).send().await.unwrap();
    let path = s.dir.path().join("notifications.jsonl");
    let mut events = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        events = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>();
        if events.len() >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "image.create",
            "image.prepare",
            "image.upload",
            "image.activate",
            "image.update",
            "image.delete"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["publisher_id"] == "image.localhost" && e["priority"] == "INFO")
    );
    assert_eq!(
        events[2]["payload"]["checksum"],
        hex::encode(md5::Md5::digest([1u8; 10])).as_str()
    );
    assert_eq!(events[5]["payload"]["deleted"], true);
}

#[tokio::test]
async fn discovery_endpoints() {
    let s = common::start_with(|c| c.quota.image_count_total = Some(10), |b| b).await;
    let img = s.create(json!({})).await;
    s.upload(img["id"].as_str().unwrap(), vec![0u8; 2 << 20])
        .send()
        .await
        .unwrap();
    let import: Value = s
        .get("/v2/info/import")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(import["import-methods"]["type"], "array");
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
        json!({"stores": [{"id": "file", "default": "true"}]})
    );
    let detail: Value = s
        .get("/v2/info/stores/detail")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["stores"][0]["type"], "file");
    assert!(detail["stores"][0]["properties"]["data_dir"].is_string());
    let usage: Value = s
        .get("/v2/info/usage")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        usage["usage"]["image_count_total"],
        json!({"limit": 10, "usage": 1})
    );
    assert_eq!(
        usage["usage"]["image_size_total"],
        json!({"limit": -1, "usage": 2})
    );
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let s = common::start().await;
    let doc: Value = s
        .get("/v2/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/v2/images/{image_id}/file"]["put"].is_object());
}

#[tokio::test]
async fn escaped_path_segments_are_decoded_to_the_end() {
    let s = common::start().await;
    let id = s.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .client
        .put(format!("{}/v2/images/{id}/tags/two%20words%20", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.image(&id).await["tags"], json!(["two words "]));
}

#[tokio::test]
async fn property_names_and_tags_differing_in_case_are_distinct() {
    let s = common::start().await;
    let image = s
        .create(json!({"os_distro": "lower", "tags": ["Ubuntu"]}))
        .await;
    let id = image["id"].as_str().unwrap();
    let path = format!("/v2/images/{id}");
    let patched = s
        .patch(
            &path,
            json!([{"op": "add", "path": "/OS_DISTRO", "value": "upper"}]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200, "{}", patched.text().await.unwrap());
    let tagged = s
        .client
        .put(format!("{}{path}/tags/ubuntu", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), 204);
    let read = s.image(id).await;
    assert_eq!(read["os_distro"], "lower");
    assert_eq!(read["OS_DISTRO"], "upper");
    let mut tags: Vec<&str> = read["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["Ubuntu", "ubuntu"]);
}
