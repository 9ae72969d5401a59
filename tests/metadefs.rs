//! The metadata definitions API (`/v2/metadefs/...`) against the real server:
//! every resource's create, read, update and delete; who sees and changes
//! which namespace; paging; resource-type prefixes; tag append and replace;
//! rename notifications; protected namespaces. On SQLite by default, on the
//! database server `GLANCE_TEST_DATABASE_URL` names otherwise.

mod common;

use glance_testkit::http::as_project;
use reqwest::StatusCode;
use serde_json::{Value, json};

const NS: &str = "/v2/metadefs/namespaces";

async fn send(rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = rb
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The explanation in a webob JSON error, without the breaks webob's template adds.
fn message(err: &Value) -> Option<&str> {
    err["message"]
        .as_str()
        .map(|m| m.trim_end_matches("<br /><br />\n\n\n"))
}

fn put(s: &common::TestServer, path: &str, body: Value) -> reqwest::RequestBuilder {
    s.client.put(format!("{}{path}", s.url)).json(&body)
}

#[tokio::test]
async fn a_namespace_and_everything_in_it() {
    let s = common::start().await;
    let resp = s
        .post_json(
            NS,
            json!({
                "namespace": "Test::Compute",
                "display_name": "Compute",
                "description": "for tests",
                "visibility": "public",
                "resource_type_associations": [
                    {"name": "OS::Nova::Flavor", "prefix": "hw:"},
                    {"name": "OS::Glance::Image", "prefix": "hw_"}
                ],
                "properties": {"cpu_cores": {"title": "Cores", "type": "integer", "minimum": 1}},
                "objects": [{"name": "CPU", "required": ["threads"],
                             "properties": {"threads": {"title": "Threads", "type": "integer"}}}],
                "tags": [{"name": "fast"}]
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/v2/metadefs/namespaces/Test::Compute")
    );
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["self"], "/v2/metadefs/namespaces/Test::Compute");
    assert_eq!(created["schema"], "/v2/schemas/metadefs/namespace");
    assert_eq!(created["owner"], "admin");
    assert_eq!(created["protected"], false);
    let at = created["created_at"].as_str().unwrap();
    assert!(at.ends_with('Z') && at.len() == 20, "isotime: {at}");

    let path = format!("{NS}/Test::Compute");
    let (status, shown) = send(s.get(&path)).await;
    assert_eq!(status, 200);
    assert_eq!(shown["properties"]["cpu_cores"]["type"], "integer");
    assert_eq!(shown["objects"][0]["name"], "CPU");
    assert_eq!(shown["tags"], json!([{"name": "fast"}]));
    assert_eq!(
        shown["resource_type_associations"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Prefixed for the flavor's view, and the object's required names too.
    let (_, flavor) = send(s.get(&format!("{path}?resource_type=OS::Nova::Flavor"))).await;
    assert!(flavor["properties"]["hw:cpu_cores"].is_object(), "{flavor}");
    assert_eq!(flavor["objects"][0]["required"], json!(["hw:threads"]));
    let (status, prop) = send(s.get(&format!(
        "{path}/properties/hw_cpu_cores?resource_type=OS::Glance::Image"
    )))
    .await;
    assert_eq!(
        (status, prop["name"].as_str()),
        (StatusCode::OK, Some("cpu_cores"))
    );

    // Properties.
    let (status, p) = send(s.post_json(
        &format!("{path}/properties"),
        json!({"name": "cpu_model", "title": "Model", "type": "string", "enum": ["a", "b"]}),
    ))
    .await;
    assert_eq!(
        (status, p["name"].as_str()),
        (StatusCode::CREATED, Some("cpu_model"))
    );
    let (status, _) = send(s.post_json(
        &format!("{path}/properties"),
        json!({"name": "cpu_model", "title": "Model", "type": "string"}),
    ))
    .await;
    assert_eq!(status, 409);
    let (status, p) = send(put(
        &s,
        &format!("{path}/properties/cpu_model"),
        json!({"name": "cpu_arch", "title": "Arch", "type": "string"}),
    ))
    .await;
    assert_eq!(
        (status, p["title"].as_str()),
        (StatusCode::OK, Some("Arch"))
    );
    let (_, list) = send(s.get(&format!("{path}/properties"))).await;
    let names: Vec<&String> = list["properties"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["cpu_arch", "cpu_cores"]);
    let (status, _) = send(s.delete(&format!("{path}/properties/cpu_arch"))).await;
    assert_eq!(status, 204);
    let (status, err) = send(s.get(&format!("{path}/properties/cpu_arch"))).await;
    assert_eq!(status, 404);
    assert_eq!(
        message(&err).unwrap(),
        "The metadata definition property with name=cpu_arch was not found in namespace=Test::Compute."
    );

    // Objects.
    let (status, o) = send(s.post_json(
        &format!("{path}/objects"),
        json!({"name": "Memory", "description": "RAM",
               "properties": {"size": {"title": "Size", "type": "integer"}}}),
    ))
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        o["self"],
        "/v2/metadefs/namespaces/Test::Compute/objects/Memory"
    );
    let (status, o) = send(put(
        &s,
        &format!("{path}/objects/Memory"),
        json!({"name": "Memory", "description": "more RAM"}),
    ))
    .await;
    assert_eq!(
        (status, o["description"].as_str()),
        (StatusCode::OK, Some("more RAM"))
    );
    let (_, objs) = send(s.get(&format!("{path}/objects"))).await;
    assert_eq!(objs["objects"].as_array().unwrap().len(), 2);
    assert_eq!(
        send(s.delete(&format!("{path}/objects/Memory"))).await.0,
        204
    );
    assert_eq!(send(s.get(&format!("{path}/objects/Memory"))).await.0, 404);

    // Resource type associations.
    let (status, a) = send(s.post_json(
        &format!("{path}/resource_types"),
        json!({"name": "OS::Cinder::Volume", "prefix": "hw_", "properties_target": "image"}),
    ))
    .await;
    assert_eq!(
        (status, a["properties_target"].as_str()),
        (StatusCode::CREATED, Some("image"))
    );
    let (_, rts) = send(s.get(&format!("{path}/resource_types"))).await;
    assert_eq!(
        rts["resource_type_associations"].as_array().unwrap().len(),
        3
    );
    let (_, all) = send(s.get("/v2/metadefs/resource_types")).await;
    let all: Vec<&str> = all["resource_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(all.contains(&"OS::Cinder::Volume"), "{all:?}");
    assert_eq!(
        send(s.delete(&format!("{path}/resource_types/OS::Cinder::Volume")))
            .await
            .0,
        204
    );
    assert_eq!(
        send(s.delete(&format!("{path}/resource_types/OS::Cinder::Volume")))
            .await
            .0,
        404
    );

    // The namespace itself: a rename, then the bulk deletes and the delete.
    let (status, renamed) = send(put(
        &s,
        &path,
        json!({"namespace": "Test::Compute2", "visibility": "public", "description": "renamed"}),
    ))
    .await;
    assert_eq!(
        (status, renamed["namespace"].as_str()),
        (StatusCode::OK, Some("Test::Compute2"))
    );
    let path = format!("{NS}/Test::Compute2");
    for what in ["properties", "objects", "tags"] {
        assert_eq!(
            send(s.delete(&format!("{path}/{what}"))).await.0,
            204,
            "{what}"
        );
    }
    let (_, emptied) = send(s.get(&path)).await;
    assert!(
        emptied.get("properties").is_none() && emptied.get("tags").is_none(),
        "{emptied}"
    );
    assert_eq!(send(s.delete(&path)).await.0, 204);
    let (status, err) = send(s.get(&path)).await;
    assert_eq!(status, 404);
    assert_eq!(
        message(&err),
        Some("Metadata definition namespace=Test::Compute2 was not found.")
    );
}

#[tokio::test]
async fn tags_are_replaced_unless_appended() {
    let s = common::start().await;
    assert_eq!(
        send(s.post_json(NS, json!({"namespace": "Test::Tags"})))
            .await
            .0,
        201
    );
    let tags = format!("{NS}/Test::Tags/tags");
    let names = |v: &Value| -> Vec<String> {
        v["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, made) =
        send(s.post_json(&tags, json!({"tags": [{"name": "a"}, {"name": "b"}]}))).await;
    assert_eq!(
        (status, names(&made)),
        (StatusCode::CREATED, vec!["a".into(), "b".into()])
    );
    send(s.post_json(&tags, json!({"tags": [{"name": "c"}]}))).await;
    assert_eq!(names(&send(s.get(&tags)).await.1), ["c"]);
    let (status, _) = send(
        s.post_json(&tags, json!({"tags": [{"name": "d"}]}))
            .header("x-openstack-append", "True"),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(names(&send(s.get(&tags)).await.1), ["c", "d"]);
    // One tag: create, duplicate, rename, delete.
    assert_eq!(
        send(s.client.post(format!("{}{tags}/e", s.url))).await.0,
        201
    );
    assert_eq!(
        send(s.client.post(format!("{}{tags}/e", s.url))).await.0,
        409
    );
    let (status, t) = send(put(&s, &format!("{tags}/e"), json!({"name": "f"}))).await;
    assert_eq!((status, t["name"].as_str()), (StatusCode::OK, Some("f")));
    assert_eq!(send(s.get(&format!("{tags}/e"))).await.0, 404);
    assert_eq!(send(s.delete(&format!("{tags}/f"))).await.0, 204);
    // A duplicate in a bulk create changes nothing.
    let (status, _) =
        send(s.post_json(&tags, json!({"tags": [{"name": "x"}, {"name": "x"}]}))).await;
    assert_eq!(status, 409);
    assert_eq!(names(&send(s.get(&tags)).await.1), ["c", "d"]);
}

#[tokio::test]
async fn private_namespaces_are_hidden_and_writes_are_for_admins() {
    use glance_api::config::AuthMode;
    let s = common::start_with(|c| c.auth.mode = AuthMode::TrustedHeaders, |b| b).await;
    let admin = |rb| as_project(rb, "p1", "admin,member,reader");
    let member = |rb, p| as_project(rb, p, "member,reader");
    let (status, ns) = send(admin(
        s.post_json(NS, json!({"namespace": "Test::Private", "owner": "p1"})),
    ))
    .await;
    assert_eq!(
        (status, ns["visibility"].as_str()),
        (StatusCode::CREATED, Some("private"))
    );
    send(admin(s.post_json(
        NS,
        json!({"namespace": "Test::Public", "visibility": "public"}),
    )))
    .await;
    let private = format!("{NS}/Test::Private");
    // The owner's project reads it; another project does not know it exists.
    assert_eq!(send(member(s.get(&private), "p1")).await.0, 200);
    let (status, err) = send(member(s.get(&private), "p2")).await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(
        send(member(s.get(&format!("{private}/tags")), "p2"))
            .await
            .0,
        404
    );
    assert_eq!(send(member(s.delete(&private), "p2")).await.0, 404);
    let (_, listed) = send(member(s.get(NS), "p2")).await;
    let seen: Vec<&str> = listed["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["namespace"].as_str().unwrap())
        .collect();
    assert!(
        seen.contains(&"Test::Public") && !seen.contains(&"Test::Private"),
        "{seen:?}"
    );
    // Writes are the admin's, even on what the caller may read.
    let (status, err) = send(member(
        s.post_json(NS, json!({"namespace": "Test::Mine"})),
        "p1",
    ))
    .await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(
        send(member(
            s.post_json(&format!("{private}/tags/x"), json!({})),
            "p1"
        ))
        .await
        .0,
        // A body where none is expected is refused first; without one, 403.
        400
    );
    let (status, _) = send(member(
        s.client.post(format!("{}{private}/tags/x", s.url)),
        "p1",
    ))
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        send(member(s.delete(&format!("{NS}/Test::Public")), "p2"))
            .await
            .0,
        403
    );
    assert_eq!(send(admin(s.delete(&private))).await.0, 204);
}

#[tokio::test]
async fn namespaces_page_by_marker() {
    let s = common::start().await;
    for i in 0..5 {
        let body = json!({
            "namespace": format!("Test::Page{i}"),
            "resource_type_associations": [{"name": "Test::Paged"}],
        });
        assert_eq!(send(s.post_json(NS, body)).await.0, 201);
    }
    let mut seen = Vec::new();
    let mut next = Some(format!(
        "{NS}?resource_types=Test::Paged&sort_key=namespace&sort_dir=asc&limit=2"
    ));
    while let Some(url) = next.take() {
        let (status, page) = send(s.get(&url)).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["schema"], "/v2/schemas/metadefs/namespaces");
        assert!(page["first"].as_str().unwrap().starts_with(NS));
        for n in page["namespaces"].as_array().unwrap() {
            seen.push(n["namespace"].as_str().unwrap().to_string());
            assert_eq!(n["resource_type_associations"][0]["name"], "Test::Paged");
        }
        next = page["next"].as_str().map(str::to_string);
        assert!(seen.len() <= 5);
    }
    let want: Vec<String> = (0..5).map(|i| format!("Test::Page{i}")).collect();
    assert_eq!(seen, want);
    let (status, err) = send(s.get(&format!("{NS}?sort_dir=sideways"))).await;
    assert_eq!(
        (status, message(&err)),
        (
            StatusCode::BAD_REQUEST,
            Some("Invalid sort direction: sideways")
        )
    );
    assert_eq!(send(s.get(&format!("{NS}?visibility=shared"))).await.0, 400);
    assert_eq!(send(s.get(&format!("{NS}?limit=x"))).await.0, 400);
}

#[tokio::test]
async fn bad_input_is_a_400_and_duplicates_a_409() {
    let s = common::start().await;
    let long = "n".repeat(81);
    for body in [
        json!({"display_name": "no name"}),
        json!({"namespace": long}),
        json!({"namespace": "Test::Bad", "visibility": "shared"}),
        json!({"namespace": "Test::Bad", "protected": "yes"}),
        json!({"namespace": "Test::Bad", "properties": {"p": {"type": "string"}}}),
        json!(["not", "an", "object"]),
    ] {
        let (status, err) = send(s.post_json(NS, body.clone())).await;
        assert_eq!(status, 400, "{body}: {err}");
    }
    let (status, err) = send(s.post_json(NS, json!({"namespace": "Test::Bad", "self": "x"}))).await;
    assert_eq!(
        (status, message(&err)),
        (
            StatusCode::FORBIDDEN,
            Some("Attribute 'self' is read-only.")
        )
    );
    assert_eq!(
        send(s.post_json(NS, json!({"namespace": "Test::Dup"})))
            .await
            .0,
        201
    );
    let (status, err) = send(s.post_json(NS, json!({"namespace": "Test::Dup"}))).await;
    assert_eq!(status, 409);
    assert_eq!(
        message(&err),
        Some("The metadata definition namespace=Test::Dup already exists.")
    );
    let resp = s
        .client
        .patch(format!("{}{NS}/Test::Dup", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, PUT, DELETE");
}

#[tokio::test]
async fn protected_namespaces_refuse_deletes() {
    let s = common::start().await;
    let body = json!({"namespace": "Test::Kept", "protected": true, "tags": [{"name": "t"}]});
    assert_eq!(send(s.post_json(NS, body)).await.0, 201);
    let path = format!("{NS}/Test::Kept");
    let (status, err) = send(s.delete(&path)).await;
    assert_eq!(status, 403);
    assert_eq!(
        message(&err),
        Some("Metadata definition namespace Test::Kept is protected and cannot be deleted.")
    );
    assert_eq!(send(s.delete(&format!("{path}/tags"))).await.0, 403);
    assert_eq!(send(s.get(&format!("{path}/tags/t"))).await.0, 200);
    // Unprotected, it goes.
    let (status, _) = send(put(
        &s,
        &path,
        json!({"namespace": "Test::Kept", "protected": false}),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(send(s.delete(&path)).await.0, 204);
}

#[tokio::test]
async fn renames_are_announced_with_the_old_name() {
    let s = common::start().await;
    send(s.post_json(
        NS,
        json!({"namespace": "Test::Old", "tags": [{"name": "t1"}]}),
    ))
    .await;
    send(put(
        &s,
        &format!("{NS}/Test::Old"),
        json!({"namespace": "Test::New"}),
    ))
    .await;
    send(put(
        &s,
        &format!("{NS}/Test::New/tags/t1"),
        json!({"name": "t2"}),
    ))
    .await;
    send(s.delete(&format!("{NS}/Test::New"))).await;
    let path = s.dir.path().join("notifications.jsonl");
    let mut events: Vec<Value> = Vec::new();
    for _ in 0..100 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        events = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if events.len() >= 5 {
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
            "metadef_namespace.create",
            "metadef_tag.create",
            "metadef_namespace.update",
            "metadef_tag.update",
            "metadef_namespace.delete"
        ]
    );
    assert_eq!(events[2]["payload"]["namespace"], "Test::New");
    assert_eq!(events[2]["payload"]["namespace_old"], "Test::Old");
    assert_eq!(events[3]["payload"]["name"], "t2");
    assert_eq!(events[3]["payload"]["name_old"], "t1");
    assert_eq!(events[4]["payload"]["deleted"], true);
}

#[tokio::test]
async fn a_fresh_server_lists_the_common_resource_types() {
    let s = common::start().await;
    let (status, body) = send(s.get("/v2/metadefs/resource_types")).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["resource_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for t in [
        "OS::Cinder::Volume",
        "OS::Glance::Image",
        "OS::Nova::Aggregate",
        "OS::Nova::Flavor",
        "OS::Nova::Server",
    ] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }
    let (_, flavor) = send(s.get(&format!(
        "{NS}/GlanceApi::Compute::CPU?resource_type=OS::Nova::Flavor"
    )))
    .await;
    assert!(
        flavor["properties"]["hw:cpu_policy"].is_object(),
        "{flavor}"
    );
    // The catalogue is protected, as Glance's seeded namespaces are.
    assert_eq!(
        send(s.delete(&format!("{NS}/GlanceApi::Compute::CPU")))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn load_metadefs_loads_a_directory_once() {
    use glance_api::metadef_catalogue::{Existing, load_dir_with_config};
    let s = common::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        json!({
            "namespace": "Test::Loaded",
            "description": "from a file",
            "visibility": "public",
            "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "t_"}],
            "properties": {"p": {"title": "P", "type": "string"}},
            "objects": [{"name": "O", "properties": {"q": {"title": "Q", "type": "integer"}}}],
            "tags": [{"name": "loaded"}]
        })
        .to_string(),
    )
    .unwrap();
    // Not a catalogue file: left alone.
    std::fs::write(dir.path().join("README"), "not json").unwrap();
    let report = load_dir_with_config(&s.config, dir.path(), Existing::Skip)
        .await
        .unwrap();
    assert_eq!(report.loaded, ["Test::Loaded"]);
    let (status, ns) = send(s.get(&format!("{NS}/Test::Loaded"))).await;
    assert_eq!(status, 200);
    assert_eq!(ns["owner"], "admin");
    assert_eq!(ns["tags"], json!([{"name": "loaded"}]));
    assert_eq!(ns["objects"][0]["properties"]["q"]["type"], "integer");
    let again = load_dir_with_config(&s.config, dir.path(), Existing::Skip)
        .await
        .unwrap();
    assert_eq!((again.loaded.len(), again.skipped.len()), (0, 1));
    let replaced = load_dir_with_config(&s.config, dir.path(), Existing::Replace)
        .await
        .unwrap();
    assert_eq!(replaced.replaced, ["Test::Loaded"]);
    // A broken file stops the load before anything is written.
    std::fs::write(dir.path().join("b.json"), r#"{"display_name": "no name"}"#).unwrap();
    assert!(
        load_dir_with_config(&s.config, dir.path(), Existing::Replace)
            .await
            .is_err()
    );
}
