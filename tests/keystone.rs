//! The `keystone` auth mode and unified limits against a real Keystone.
//!
//! `scripts/keystone.sh start` installs and runs one and prints `KEYSTONE_URL`
//! and friends; these tests run it when `KEYSTONE_URL` is unset. If that fails
//! they say so (one line each) and pass locally, and fail under CI. Keystone's
//! database is the machine's MariaDB (see the script). Fixture users (password
//! `secret`): alice (member) and rita (reader) in project glance-a; bob (member)
//! and boss (admin) in glance-b; the service user glance in project service.

mod common;

use std::time::Duration;

use common::TestServer;
use glance_api::config::AuthMode;
use glance_testkit::http::free_port;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Keystone {
    url: String,
    admin_password: String,
    image_endpoint_id: Option<String>,
    http: reqwest::Client,
}

/// `KEYSTONE_*` from the environment, else from `scripts/keystone.sh start`
/// (run once per test binary; it installs Keystone the first time).
fn keystone_env() -> &'static Option<std::collections::HashMap<String, String>> {
    static ENV: std::sync::OnceLock<Option<std::collections::HashMap<String, String>>> =
        std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let from_env: std::collections::HashMap<String, String> = std::env::vars()
            .filter(|(k, v)| k.starts_with("KEYSTONE_") && !v.is_empty())
            .collect();
        if from_env.contains_key("KEYSTONE_URL") {
            return Some(from_env);
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/keystone.sh");
        eprintln!("KEYSTONE_URL is unset: running {script} start");
        let out = std::process::Command::new("bash")
            .args([script, "start"])
            .stderr(std::process::Stdio::inherit())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let vars = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches(['\'', '"']).to_string()))
            .collect();
        Some(vars)
    })
}

fn keystone() -> Option<Keystone> {
    match keystone_env() {
        Some(env) => Some(Keystone {
            url: env["KEYSTONE_URL"].clone(),
            admin_password: env
                .get("KEYSTONE_ADMIN_PASSWORD")
                .cloned()
                .unwrap_or_else(|| "admin-secret".into()),
            image_endpoint_id: env.get("KEYSTONE_IMAGE_ENDPOINT_ID").cloned(),
            http: reqwest::Client::new(),
        }),
        None if common::services::in_ci() => {
            panic!("CI needs a Keystone, and scripts/keystone.sh start failed")
        }
        None => {
            common::services::skip("no Keystone (scripts/keystone.sh start failed)");
            None
        }
    }
}

impl Keystone {
    async fn token_scoped(&self, user: &str, password: &str, scope: Value) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": "Default"}, "password": password}}},
            "scope": scope,
        }});
        let resp = self
            .http
            .post(format!("{}/v3/auth/tokens", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "token for {user}");
        resp.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_string()
    }

    async fn token(&self, user: &str, project: &str) -> String {
        self.token_scoped(
            user,
            "secret",
            json!({"project": {"name": project, "domain": {"name": "Default"}}}),
        )
        .await
    }

    async fn system_admin(&self) -> String {
        self.token_scoped(
            "admin",
            &self.admin_password,
            json!({"system": {"all": true}}),
        )
        .await
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/v3{path}", self.url))
            .header("x-auth-token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn project_id(&self, name: &str) -> String {
        let admin = self.system_admin().await;
        let v = self
            .call(Method::GET, &format!("/projects?name={name}"), &admin, None)
            .await;
        v["projects"][0]["id"].as_str().unwrap().to_string()
    }
}

async fn server(
    k: &Keystone,
    configure: impl FnOnce(&mut glance_api::config::Config),
) -> TestServer {
    let url = k.url.clone();
    common::start_with(
        move |c| {
            c.auth.mode = AuthMode::Keystone;
            let a = &mut c.keystone_authtoken;
            a.auth_url = Some(url.clone());
            a.www_authenticate_uri = Some(url);
            a.username = Some("glance".into());
            a.password = Some("secret".into());
            a.project_name = Some("service".into());
            configure(c);
        },
        |b| b,
    )
    .await
}

/// One request with a token (or none); the status and the JSON body, if any.
async fn call(
    s: &TestServer,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = s.client.request(method, format!("{}{path}", s.url));
    if let Some(t) = token {
        req = req.header("x-auth-token", t);
    }
    if let Some(b) = body {
        let patch = b.is_array();
        req = req.body(b.to_string()).header(
            "content-type",
            if patch {
                "application/openstack-images-v2.1-json-patch"
            } else {
                "application/json"
            },
        );
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let v = resp.json().await.unwrap_or(Value::Null);
    (status, v)
}

async fn status(
    s: &TestServer,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> StatusCode {
    call(s, token, method, path, body).await.0
}

async fn upload(s: &TestServer, token: &str, id: &str, data: &'static [u8]) -> StatusCode {
    s.client
        .put(format!("{}/v2/images/{id}/file", s.url))
        .header("x-auth-token", token)
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .unwrap()
        .status()
}

async fn download(s: &TestServer, token: &str, id: &str) -> StatusCode {
    s.client
        .get(format!("{}/v2/images/{id}/file", s.url))
        .header("x-auth-token", token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn callers_are_who_keystone_says_they_are() {
    let Some(k) = keystone() else { return };
    let s = server(&k, |_| {}).await;

    // No token, or one Keystone never issued: keystonemiddleware's 401.
    // Over 8 KiB, within max_header_line (a longer header line is a 431).
    let huge = "x".repeat(12_000);
    for token in [None, Some("not-a-token"), Some(""), Some(huge.as_str())] {
        let mut req = s.client.get(format!("{}/v2/images", s.url));
        if let Some(t) = token {
            req = req.header("x-auth-token", t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.headers()["www-authenticate"],
            format!("Keystone uri=\"{}\"", k.url).as_str()
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], 401);
    }
    // Forged identity headers are not an identity.
    let forged = s
        .client
        .get(format!("{}/v2/images", s.url))
        .header("x-identity-status", "Confirmed")
        .header("x-roles", "admin")
        .header("x-project-id", "p")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    // Schemas and discovery sit behind the token too, as in Glance.
    assert_eq!(
        status(&s, None, Method::GET, "/v2/schemas/image", None).await,
        401
    );

    let alice = k.token("alice", "glance-a").await;
    let rita = k.token("rita", "glance-a").await;
    let bob = k.token("bob", "glance-b").await;
    let boss = k.token("boss", "glance-b").await;
    let project_a = k.project_id("glance-a").await;
    let project_b = k.project_id("glance-b").await;

    assert_eq!(
        status(&s, Some(&rita), Method::GET, "/v2/schemas/image", None).await,
        200
    );
    assert_eq!(
        status(&s, Some(&rita), Method::GET, "/v2/info/import", None).await,
        200
    );

    // A member creates and fills an image; it belongs to the token's project.
    let new = json!({"name": "kimg", "disk_format": "raw", "container_format": "bare"});
    let (st, img) = call(
        &s,
        Some(&alice),
        Method::POST,
        "/v2/images",
        Some(new.clone()),
    )
    .await;
    assert_eq!(st, 201);
    assert_eq!(img["owner"], project_a.as_str());
    let id = img["id"].as_str().unwrap().to_string();
    let path = format!("/v2/images/{id}");
    assert_eq!(upload(&s, &alice, &id, b"0123456789").await, 204);

    // A reader of the same project may look but not touch.
    assert_eq!(
        status(
            &s,
            Some(&rita),
            Method::POST,
            "/v2/images",
            Some(new.clone())
        )
        .await,
        403
    );
    assert_eq!(status(&s, Some(&rita), Method::GET, &path, None).await, 200);
    let (st, list) = call(&s, Some(&rita), Method::GET, "/v2/images", None).await;
    assert_eq!(st, 200);
    assert_eq!(list["images"].as_array().unwrap().len(), 1);
    assert_eq!(download(&s, &rita, &id).await, 403);
    let rename = json!([{"op": "replace", "path": "/name", "value": "r"}]);
    assert_eq!(
        status(&s, Some(&rita), Method::PATCH, &path, Some(rename.clone())).await,
        403
    );
    assert_eq!(
        status(
            &s,
            Some(&rita),
            Method::PUT,
            &format!("{path}/tags/t"),
            None
        )
        .await,
        403
    );
    assert_eq!(
        status(
            &s,
            Some(&rita),
            Method::POST,
            &format!("{path}/actions/deactivate"),
            None
        )
        .await,
        403
    );
    assert_eq!(
        status(&s, Some(&rita), Method::DELETE, &path, None).await,
        403
    );

    // Another project's member cannot see it at all.
    assert_eq!(status(&s, Some(&bob), Method::GET, &path, None).await, 404);
    let (_, bobs) = call(&s, Some(&bob), Method::GET, "/v2/images", None).await;
    assert!(bobs["images"].as_array().unwrap().is_empty());

    // The owner's member edits, tags and shares; publicizing needs an admin.
    assert_eq!(
        status(&s, Some(&alice), Method::PATCH, &path, Some(rename)).await,
        200
    );
    assert_eq!(
        status(
            &s,
            Some(&alice),
            Method::PUT,
            &format!("{path}/tags/t"),
            None
        )
        .await,
        204
    );
    let public = json!([{"op": "replace", "path": "/visibility", "value": "public"}]);
    assert_eq!(
        status(&s, Some(&alice), Method::PATCH, &path, Some(public.clone())).await,
        403
    );
    let shared = json!([{"op": "replace", "path": "/visibility", "value": "shared"}]);
    assert_eq!(
        status(&s, Some(&alice), Method::PATCH, &path, Some(shared)).await,
        200
    );
    let members = format!("{path}/members");
    let (st, m) = call(
        &s,
        Some(&alice),
        Method::POST,
        &members,
        Some(json!({"member": project_b})),
    )
    .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(
        status(&s, Some(&rita), Method::GET, &members, None).await,
        200
    );

    // The consumer project accepts, then sees and downloads it.
    let mine = format!("{members}/{project_b}");
    assert_eq!(status(&s, Some(&bob), Method::GET, &path, None).await, 200);
    let (st, _) = call(
        &s,
        Some(&bob),
        Method::PUT,
        &mine,
        Some(json!({"status": "accepted"})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(download(&s, &bob, &id).await, 200);
    assert_eq!(
        status(&s, Some(&bob), Method::DELETE, &path, None).await,
        403
    );
    // The owner may not answer for the consumer.
    assert_eq!(
        status(
            &s,
            Some(&alice),
            Method::PUT,
            &mine,
            Some(json!({"status": "rejected"}))
        )
        .await,
        403
    );

    // The owner deactivates; only then the consumer's download is refused.
    assert_eq!(
        status(
            &s,
            Some(&alice),
            Method::POST,
            &format!("{path}/actions/deactivate"),
            None
        )
        .await,
        204
    );
    assert_eq!(download(&s, &bob, &id).await, 403);
    assert_eq!(
        status(
            &s,
            Some(&alice),
            Method::POST,
            &format!("{path}/actions/reactivate"),
            None
        )
        .await,
        204
    );

    // An admin of any project may do what the owner may not.
    assert_eq!(
        status(&s, Some(&boss), Method::PATCH, &path, Some(public)).await,
        200
    );
    assert_eq!(
        status(
            &s,
            Some(&boss),
            Method::DELETE,
            &format!("{members}/{project_b}"),
            None
        )
        .await,
        204
    );
    assert_eq!(
        status(&s, Some(&boss), Method::GET, "/v2/info/stores/detail", None).await,
        200
    );
    assert_eq!(
        status(
            &s,
            Some(&alice),
            Method::GET,
            "/v2/info/stores/detail",
            None
        )
        .await,
        403
    );

    // Every Glance rule is project scoped: a system token is refused.
    let system = k.system_admin().await;
    assert_eq!(
        status(&s, Some(&system), Method::GET, "/v2/images", None).await,
        403
    );

    assert_eq!(
        status(&s, Some(&alice), Method::DELETE, &path, None).await,
        204
    );
    assert_eq!(
        status(&s, Some(&alice), Method::GET, &path, None).await,
        404
    );

    // `/metrics` is for admins: it shows what Keystone was asked and how often
    // the token cache answered instead.
    assert_eq!(
        status(&s, Some(&alice), Method::GET, "/metrics", None).await,
        403
    );
    let text = s
        .client
        .get(format!("{}/metrics", s.url))
        .header("x-auth-token", &boss)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |key: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        value(r#"glance_keystone_token_validations_seconds_count{outcome="valid"}"#) >= 2.0,
        "{text}"
    );
    assert!(
        value(r#"glance_keystone_token_validations_seconds_count{outcome="invalid"}"#) >= 1.0,
        "{text}"
    );
    assert!(
        value(r#"glance_keystone_token_cache_lookups_total{result="hit"}"#) >= 5.0,
        "{text}"
    );
}

#[tokio::test]
async fn a_revoked_token_stops_working_when_its_cache_entry_lapses() {
    let Some(k) = keystone() else { return };
    let s = server(&k, |c| c.keystone_authtoken.token_cache_time = 3).await;
    let alice = k.token("alice", "glance-a").await;
    assert_eq!(
        status(&s, Some(&alice), Method::GET, "/v2/images", None).await,
        200
    );

    // Revoke it in Keystone (a user may revoke their own token).
    let resp = k
        .http
        .delete(format!("{}/v3/auth/tokens", k.url))
        .header("x-auth-token", &alice)
        .header("x-subject-token", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // Keystone itself no longer accepts it; the cache still does, for a while.
    let mut lapsed = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if status(&s, Some(&alice), Method::GET, "/v2/images", None).await == 401 {
            lapsed = true;
            break;
        }
    }
    assert!(
        lapsed,
        "a revoked token still worked 10 s later (cache time 3 s)"
    );
    // A fresh token works: the refusal was about that token, not the user.
    let again = k.token("alice", "glance-a").await;
    assert_eq!(
        status(&s, Some(&again), Method::GET, "/v2/images", None).await,
        200
    );
}

#[tokio::test]
async fn service_tokens_must_be_valid_too() {
    let Some(k) = keystone() else { return };
    let s = server(&k, |_| {}).await;
    let alice = k.token("alice", "glance-a").await;
    let service = k.token("glance", "service").await;
    let images = |svc: String| {
        s.client
            .get(format!("{}/v2/images", s.url))
            .header("x-auth-token", &alice)
            .header("x-service-token", svc)
            .send()
    };
    assert_eq!(images(service).await.unwrap().status(), 200);
    assert_eq!(images("bogus".into()).await.unwrap().status(), 401);
}

/// Runs a second Keystone of the same deployment on a port of its own, so the
/// test can stop and start it without disturbing the others.
struct OwnKeystone {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnKeystone {
    async fn start(port: u16) -> OwnKeystone {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/keystone-serve.sh");
        let child = std::process::Command::new("bash")
            .arg(script)
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("scripts/keystone-serve.sh");
        let mut k = OwnKeystone {
            port,
            child: Some(child),
        };
        k.wait_up().await;
        k
    }

    async fn wait_up(&mut self) {
        let url = format!("http://127.0.0.1:{}/v3", self.port);
        for _ in 0..240 {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "the test's own Keystone did not start on port {}",
            self.port
        );
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = tokio::task::spawn_blocking(move || terminate(&mut child)).await;
        }
        for _ in 0..120 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("Keystone on port {} did not stop", self.port);
    }
}

impl Drop for OwnKeystone {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            terminate(child);
        }
    }
}

/// TERM (which lets gunicorn take its workers down with it), then reap.
fn terminate(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

#[tokio::test]
async fn keystone_down_means_503_and_coming_back_means_service() {
    let Some(k) = keystone() else { return };
    let port = free_port();
    let mut own = OwnKeystone::start(port).await;
    let own_url = format!("http://127.0.0.1:{port}");
    let s = server(&k, |c| {
        let a = &mut c.keystone_authtoken;
        a.auth_url = Some(own_url.clone());
        // Every request asks Keystone, so the outage shows at once.
        a.token_cache_time = 0;
        a.http_connect_timeout = 2;
    })
    .await;
    let alice = k.token("alice", "glance-a").await;
    assert_eq!(
        status(&s, Some(&alice), Method::GET, "/v2/images", None).await,
        200
    );

    own.stop().await;
    let (st, _) = call(&s, Some(&alice), Method::GET, "/v2/images", None).await;
    assert_eq!(
        st, 503,
        "Keystone down must be a 503, never a pass or a 500"
    );
    let (st, _) = call(
        &s,
        Some(&alice),
        Method::POST,
        "/v2/images",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(st, 503);
    // Not even a missing token gets further than a 401.
    assert_eq!(status(&s, None, Method::GET, "/v2/images", None).await, 401);

    let mut own = OwnKeystone::start(port).await;
    assert_eq!(
        status(&s, Some(&alice), Method::GET, "/v2/images", None).await,
        200
    );
    own.stop().await;
}

#[tokio::test]
async fn an_operator_policy_file_applies_to_keystone_roles() {
    let Some(k) = keystone() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, "\"add_image\": \"role:admin\"\n").unwrap();
    let s = server(&k, |c| c.oslo_policy.policy_file = Some(file.clone())).await;
    let alice = k.token("alice", "glance-a").await;
    let boss = k.token("boss", "glance-b").await;
    let new = json!({"name": "p"});
    assert_eq!(
        status(
            &s,
            Some(&alice),
            Method::POST,
            "/v2/images",
            Some(new.clone())
        )
        .await,
        403
    );
    assert_eq!(
        status(&s, Some(&boss), Method::POST, "/v2/images", Some(new)).await,
        201
    );
}

#[tokio::test]
async fn unified_limits_come_from_keystone() {
    let Some(k) = keystone() else { return };
    let endpoint = k
        .image_endpoint_id
        .clone()
        .expect("KEYSTONE_IMAGE_ENDPOINT_ID (printed by scripts/keystone.sh start)");
    // glance-b may own 2 images, whatever the registered default says.
    let admin = k.system_admin().await;
    let project_b = k.project_id("glance-b").await;
    let ep = k
        .call(Method::GET, &format!("/endpoints/{endpoint}"), &admin, None)
        .await;
    let service_id = ep["endpoint"]["service_id"].as_str().unwrap().to_string();
    let existing = k
        .call(
            Method::GET,
            &format!("/limits?service_id={service_id}&project_id={project_b}&resource_name=image_count_total"),
            &admin,
            None,
        )
        .await;
    match existing["limits"][0]["id"].as_str() {
        Some(id) => {
            k.call(
                Method::PATCH,
                &format!("/limits/{id}"),
                &admin,
                Some(json!({"limit": {"resource_limit": 2}})),
            )
            .await;
        }
        None => {
            let mut limit = json!({"service_id": service_id, "project_id": project_b,
                "resource_name": "image_count_total", "resource_limit": 2});
            if let Some(region) = ep["endpoint"]["region_id"].as_str() {
                limit["region_id"] = region.into();
            }
            k.call(
                Method::POST,
                "/limits",
                &admin,
                Some(json!({"limits": [limit]})),
            )
            .await;
        }
    }

    let s = server(&k, |c| {
        c.default.use_keystone_limits = true;
        c.oslo_limit.endpoint_id = Some(endpoint.clone());
    })
    .await;
    let bob = k.token("bob", "glance-b").await;
    let alice = k.token("alice", "glance-a").await;
    let new = json!({"name": "q"});
    for _ in 0..2 {
        assert_eq!(
            status(
                &s,
                Some(&bob),
                Method::POST,
                "/v2/images",
                Some(new.clone())
            )
            .await,
            201
        );
    }
    let (st, _) = call(
        &s,
        Some(&bob),
        Method::POST,
        "/v2/images",
        Some(new.clone()),
    )
    .await;
    assert_eq!(st, 413);
    let (st, usage) = call(&s, Some(&bob), Method::GET, "/v2/info/usage", None).await;
    assert_eq!(st, 200);
    assert_eq!(
        usage["usage"]["image_count_total"],
        json!({"limit": 2, "usage": 2})
    );
    // glance-a has no limit of its own: the registered default (100) applies.
    let (_, usage) = call(&s, Some(&alice), Method::GET, "/v2/info/usage", None).await;
    assert_eq!(usage["usage"]["image_count_total"]["limit"], 100);
    assert_eq!(usage["usage"]["image_size_total"]["limit"], 1000);
    assert_eq!(
        status(&s, Some(&alice), Method::POST, "/v2/images", Some(new)).await,
        201
    );
}
