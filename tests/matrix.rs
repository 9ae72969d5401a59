//! For each visibility × caller × operation, the status Glance gives: 404 where
//! the caller may not know the image exists, 403 where they may see it but not act.

mod common;

use glance_api::config::AuthMode;
use glance_testkit::http::as_project;
use serde_json::{Value, json};

/// (name, project, roles)
const OWNER: (&str, &str, &str) = ("owner", "p1", "member,reader");
const READER: (&str, &str, &str) = ("reader of the owner's project", "p1", "reader");
const PENDING: (&str, &str, &str) = ("pending member", "p3", "member,reader");
const ACCEPTED: (&str, &str, &str) = ("accepted member", "p4", "member,reader");
const OTHER: (&str, &str, &str) = ("other project", "p2", "member,reader");
const ADMIN: (&str, &str, &str) = ("admin", "p9", "admin,member,reader");
const CALLERS: [(&str, &str, &str); 6] = [OWNER, READER, PENDING, ACCEPTED, OTHER, ADMIN];
const VISIBILITIES: [&str; 4] = ["public", "community", "shared", "private"];

fn who(rb: reqwest::RequestBuilder, caller: (&str, &str, &str)) -> reqwest::RequestBuilder {
    as_project(rb, caller.1, caller.2)
}

/// An active image of p1 with p3 as a pending and p4 as an accepted member, then
/// given `visibility` (members of a non-shared image are kept but ignored).
async fn image(s: &common::TestServer, visibility: &str) -> String {
    let body = json!({"name": "m", "disk_format": "raw", "container_format": "bare"});
    let img: Value = who(s.post_json("/v2/images", body), OWNER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = img["id"].as_str().unwrap().to_string();
    assert_eq!(
        who(s.upload(&id, vec![1u8; 16]), OWNER)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    for m in ["p3", "p4"] {
        let r = who(
            s.post_json(&format!("/v2/images/{id}/members"), json!({"member": m})),
            OWNER,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
    }
    let accept = s
        .client
        .put(format!("{}/v2/images/{id}/members/p4", s.url))
        .json(&json!({"status": "accepted"}));
    assert_eq!(who(accept, ACCEPTED).send().await.unwrap().status(), 200);
    if visibility != "shared" {
        // Publicizing takes an admin.
        let by = if visibility == "public" { ADMIN } else { OWNER };
        let patch = s.patch(
            &format!("/v2/images/{id}"),
            json!([{"op": "replace", "path": "/visibility", "value": visibility}]),
        );
        assert_eq!(
            who(patch, by).send().await.unwrap().status(),
            200,
            "{visibility}"
        );
    }
    id
}

/// Whether `caller` may know the image exists.
fn sees(visibility: &str, caller: (&str, &str, &str)) -> bool {
    match caller.0 {
        "owner" | "reader of the owner's project" | "admin" => true,
        "pending member" | "accepted member" => visibility != "private",
        _ => matches!(visibility, "public" | "community"),
    }
}

#[tokio::test]
async fn visibility_caller_operation_matrix() {
    let s = common::start_with(|c| c.auth.mode = AuthMode::TrustedHeaders, |b| b).await;
    let mut failures = Vec::new();
    for visibility in VISIBILITIES {
        let id = image(&s, visibility).await;
        for caller in CALLERS {
            let visible = sees(visibility, caller);
            let hidden_or = |code: u16| if visible { code } else { 404 };
            let can_write = matches!(caller.0, "owner" | "admin");
            let is_reader = caller.0 == "reader of the owner's project";
            let expected = [
                ("get", hidden_or(200)),
                ("download", hidden_or(if is_reader { 403 } else { 200 })),
                ("patch", hidden_or(if can_write { 200 } else { 403 })),
                ("tag", hidden_or(if can_write { 204 } else { 403 })),
                ("deactivate", hidden_or(if can_write { 204 } else { 403 })),
                ("delete", if can_write { 0 } else { hidden_or(403) }),
            ];
            for (op, want) in expected {
                let path = format!("/v2/images/{id}");
                let rb = match op {
                    "get" => s.get(&path),
                    "download" => s.get(&format!("{path}/file")),
                    "patch" => s.patch(&path, json!([{"op": "add", "path": "/k", "value": "v"}])),
                    "tag" => s.client.put(format!("{}{path}/tags/t", s.url)),
                    "deactivate" => s.client.post(format!("{}{path}/actions/deactivate", s.url)),
                    // Deletes that should succeed are checked on images of their own below.
                    _ if want == 0 => continue,
                    _ => s.delete(&path),
                };
                let got = who(rb, caller).send().await.unwrap().status().as_u16();
                if got != want {
                    failures.push(format!(
                        "{visibility} × {} × {op}: got {got}, want {want}",
                        caller.0
                    ));
                }
                if op == "deactivate" && got == 204 {
                    let re = s.client.post(format!("{}{path}/actions/reactivate", s.url));
                    assert_eq!(who(re, ADMIN).send().await.unwrap().status(), 204);
                }
            }
            // Listing: the default list shows public images, the caller's own, and
            // shared ones it accepted; community only to its owner.
            let list: Value = who(s.get("/v2/images?limit=1000"), caller)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let listed = list["images"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["id"] == id.as_str());
            let want_listed = match caller.0 {
                "owner" | "reader of the owner's project" => true,
                "admin" => visibility != "community",
                "accepted member" => matches!(visibility, "public" | "shared"),
                _ => visibility == "public",
            };
            if listed != want_listed {
                failures.push(format!(
                    "{visibility} × {} × list: listed {listed}, want {want_listed}",
                    caller.0
                ));
            }
        }
        for deleter in [OWNER, ADMIN] {
            let fresh = image(&s, visibility).await;
            let got = who(s.delete(&format!("/v2/images/{fresh}")), deleter)
                .send()
                .await
                .unwrap()
                .status();
            if got != 204 {
                failures.push(format!(
                    "{visibility} × {} × delete: got {got}, want 204",
                    deleter.0
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
