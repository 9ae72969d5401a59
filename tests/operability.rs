//! What an operator deploying the server relies on, checked on the real binary:
//! `/healthcheck` (and its disable file), `/metrics` (who may read it, and that
//! it moves per route and per layer), one plain access line per request, and
//! spans reaching a real OTLP/HTTP receiver as a tree with a child per layer.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{PATIENCE, ServerProcess, free_port};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// A value of one sample line of an OpenMetrics text, `None` when absent.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn healthcheck_answers_without_auth_and_obeys_its_disable_file() {
    let dir = tempfile::tempdir().unwrap();
    let disable = dir.path().join("disabled");
    let config = format!(
        "[DEFAULT]\ndata_dir = {:?}\n[auth]\nmode = \"trusted-headers\"\n[healthcheck]\ndisable_by_file_path = {:?}\ndetailed = true\n",
        dir.path().join("data"),
        disable,
    );
    let server = ServerProcess::start(&dir.path().join("glance.toml"), &config).await;
    // No credentials at all: the check is in front of authentication.
    let resp = server.get("/healthcheck").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "OK");
    let head = server
        .client
        .head(format!("{}/healthcheck", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 204, "oslo answers a healthy HEAD with 204");
    // Glance mounts the check at a prefix, as an app: any method, any path below.
    for (method, path) in [
        (reqwest::Method::POST, "/healthcheck"),
        (reqwest::Method::DELETE, "/healthcheck"),
        (reqwest::Method::GET, "/healthcheck/anything"),
    ] {
        let resp = server
            .client
            .request(method.clone(), format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method} {path}");
        assert_eq!(resp.text().await.unwrap(), "OK", "{method} {path}");
    }
    // Not a prefix of a longer name: that is the API's (its versions document).
    let other = server.get("/healthcheckx").send().await.unwrap();
    assert_eq!(other.status(), 300);

    std::fs::write(&disable, b"").unwrap();
    let resp = server.get("/healthcheck").send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.text().await.unwrap(), "DISABLED BY FILE");
    std::fs::remove_file(&disable).unwrap();
    assert_eq!(
        server.get("/healthcheck").send().await.unwrap().status(),
        200
    );

    // The detailed form is for admins: others get oslo's short JSON.
    let short: serde_json::Value = server
        .get("/healthcheck")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        short,
        serde_json::json!({"detailed": false, "reasons": ["OK"]})
    );
    let detailed: serde_json::Value = server
        .get("/healthcheck")
        .header("accept", "application/json")
        .header("x-identity-status", "Confirmed")
        .header("x-project-id", "p1")
        .header("x-roles", "admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detailed["detailed"], true, "{detailed}");
    let classes: Vec<&str> = detailed["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["class"].as_str().unwrap())
        .collect();
    assert!(classes.contains(&"DatabaseHealthcheck"), "{detailed}");
    assert!(classes.contains(&"StoreHealthcheck"), "{detailed}");
    assert!(
        detailed["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["reason"] == "OK"),
        "{detailed}"
    );
}

#[tokio::test]
async fn metrics_are_for_admins_and_move_per_route_and_per_layer() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let config = format!(
        "[DEFAULT]\ndata_dir = {:?}\nimage_size_cap = 1000\n[auth]\nmode = \"trusted-headers\"\n[telemetry]\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n",
        dir.path().join("data"),
    );
    let server = ServerProcess::start(&dir.path().join("glance.toml"), &config).await;
    let as_role = |req: reqwest::RequestBuilder, role: &str| {
        req.header("x-identity-status", "Confirmed")
            .header("x-project-id", "p1")
            .header("x-user-id", "u1")
            // Roles as Keystone would expand them: member implies reader.
            .header("x-roles", format!("{role},reader"))
    };
    // Nobody, then a member: Glance's 401 and 403.
    assert_eq!(server.get("/metrics").send().await.unwrap().status(), 401);
    assert_eq!(
        as_role(server.get("/metrics"), "member")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let scrape = || async {
        let resp = as_role(server.get("/metrics"), "admin")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        resp.text().await.unwrap()
    };
    let before = scrape().await;
    let list = r#"http_server_request_duration_seconds_count{method="GET",route="/v2/images",status="200"}"#;
    let core_list = r#"glance_layer_call_duration_seconds_count{layer="core",operation="get_images",outcome="ok"}"#;
    let policy_list = r#"glance_layer_call_duration_seconds_count{layer="policy",operation="get_images",outcome="ok"}"#;
    let n = |text: &str, key: &str| sample(text, key).unwrap_or(0.0);

    for _ in 0..3 {
        let resp = as_role(server.get("/v2/images"), "member")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // A refusal by policy (members may not publicize), and one by a limit.
    let create = as_role(
        server.client.post(format!("{}/v2/images", server.url)),
        "member",
    )
    .json(&serde_json::json!({"name": "x", "visibility": "public"}))
    .send()
    .await
    .unwrap();
    assert_eq!(create.status(), 403);
    let create = as_role(
        server.client.post(format!("{}/v2/images", server.url)),
        "member",
    )
    .json(&serde_json::json!({"name": "x", "disk_format": "raw", "container_format": "bare"}))
    .send()
    .await
    .unwrap();
    assert_eq!(create.status(), 201);
    let id = create.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let upload = as_role(server.upload(&id, vec![7u8; 600]), "member")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 204);
    let down = as_role(server.get(&format!("/v2/images/{id}/file")), "member")
        .send()
        .await
        .unwrap();
    assert_eq!(down.bytes().await.unwrap().len(), 600);
    let too_big = as_role(
        server.client.post(format!("{}/v2/images", server.url)),
        "member",
    )
    .json(&serde_json::json!({"name": "y", "disk_format": "raw", "container_format": "bare"}))
    .send()
    .await
    .unwrap();
    let big_id = too_big.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = as_role(server.upload(&big_id, vec![7u8; 5000]), "member")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 413);

    // A made-up method is counted, under one label whatever its name.
    for method in ["FOO", "BAR"] {
        let odd = server
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/v2/images", server.url),
            )
            .send()
            .await
            .unwrap();
        assert!(odd.status().is_client_error(), "{method}: {}", odd.status());
    }

    let after = scrape().await;
    assert!(
        after.lines().any(|l| l.starts_with(
            r#"http_server_request_duration_seconds_count{method="_OTHER",route="/v2/images""#
        )),
        "{after}"
    );
    assert!(!after.contains("FOO") && !after.contains("BAR"));
    assert_eq!(n(&after, list) - n(&before, list), 3.0, "{after}");
    assert_eq!(n(&after, core_list) - n(&before, core_list), 3.0);
    assert_eq!(n(&after, policy_list) - n(&before, policy_list), 3.0);
    assert_eq!(
        sample(
            &after,
            r#"glance_policy_denials_total{rule="publicize_image"}"#
        ),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            r#"glance_quota_refusals_total{resource="image_size_cap"}"#
        ),
        Some(1.0),
        "{after}"
    );
    let file = "/v2/images/{image_id}/file";
    assert_eq!(
        sample(
            &after,
            &format!(r#"http_server_request_body_bytes_total{{method="PUT",route="{file}"}}"#)
        ),
        // The refused upload was cut at the cap, so between 600 and 5600.
        sample(
            &after,
            &format!(r#"http_server_request_body_bytes_total{{method="PUT",route="{file}"}}"#)
        )
        .filter(|b| (600.0..=5600.0).contains(b)),
    );
    assert_eq!(
        sample(
            &after,
            &format!(r#"http_server_response_body_bytes_total{{method="GET",route="{file}"}}"#)
        ),
        Some(600.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            r#"glance_store_bytes_total{store="file",direction="written"}"#
        ),
        Some(600.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            &format!(r#"http_server_active_requests{{method="GET",route="{file}"}}"#)
        ),
        Some(0.0),
        "a finished download is no longer in flight"
    );
    assert!(n(&after, "glance_db_pool_connections") >= 1.0, "{after}");
    // Every statement took a connection from the pool, and sqlx reported the wait.
    let waits = "glance_db_pool_acquire_duration_seconds_count";
    assert!(n(&after, waits) > n(&before, waits), "{after}");
    assert!(after.ends_with("# EOF\n"));

    // The address of its own answers without credentials.
    let own = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert!(own.text().await.unwrap().contains(list));
}

#[tokio::test]
async fn one_plain_access_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[DEFAULT]\ndata_dir = {:?}\n", dir.path().join("data"));
    let server = ServerProcess::start(&dir.path().join("glance.toml"), &config).await;
    let resp = server
        .get("/v2/images?limit=3")
        .header("x-openstack-request-id", "req-access-line-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body_len = resp.bytes().await.unwrap().len();
    // The line is written once the body is out; give the process a moment.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let line = loop {
        let log = server.log();
        if let Some(l) = log.lines().find(|l| l.contains("req-access-line-1")) {
            break l.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no access line:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = server.log();
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a log file:\n{log}"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("req-access-line-1"))
            .count(),
        1,
        "{log}"
    );
    for part in [
        "INFO",
        "glance::access",
        "method=GET",
        "path=/v2/images",
        "status=200",
        &format!("bytes={body_len}"),
        "duration_ms=",
        "project=admin",
        "complete=true",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
}

/// An OTLP/HTTP receiver in this process: every span it is sent.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let received = spans.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let received = received.clone();
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let received = received.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let export = ExportTraceServiceRequest::decode(body).unwrap();
                        let mut all = received.lock().unwrap();
                        for rs in export.resource_spans {
                            for ss in rs.scope_spans {
                                all.extend(ss.spans);
                            }
                        }
                        Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::new(),
                        )))
                    }
                });
            tokio::spawn(
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                    .into_owned(),
            );
        }
    });
    (endpoint, spans)
}

// Several threads: the receiver must answer while the test waits for the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_as_a_tree_with_a_child_per_layer() {
    let (endpoint, spans) = otlp_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[DEFAULT]\ndata_dir = {:?}\n[telemetry]\notlp_endpoint = \"{endpoint}\"\n",
        dir.path().join("data"),
    );
    let mut server = ServerProcess::start_with_env(
        &dir.path().join("glance.toml"),
        &config,
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let id = server.create().await;
    let (upload_trace, get_trace) = (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "5bf92f3577b34da6a3ce929d0e0e4737",
    );
    let parent = "00f067aa0ba902b7";
    let resp = server
        .upload(&id, vec![1u8; 4096])
        .header("traceparent", format!("00-{upload_trace}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = server
        .get(&format!("/v2/images/{id}"))
        .header("traceparent", format!("00-{get_trace}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Stopping flushes the exporter.
    server.terminate();

    let spans = spans.lock().unwrap().clone();
    assert!(
        !spans.is_empty(),
        "the receiver got no span:\n{}",
        server.log()
    );
    let upload = Trace::of(&spans, upload_trace);
    // The request joins the client's trace, under the client's span.
    assert_eq!(upload.parent_of("request"), parent, "{:?}", upload.names());
    // Each layer is a child of the one around it, in the stack's order.
    let chain = [
        "request", "auth", "notifier", "policy", "quota", "import", "location",
    ];
    for pair in chain.windows(2) {
        assert_eq!(upload.parent_of(pair[1]), pair[0], "{:?}", upload.names());
    }
    // The store's write is the location layer's child.
    assert_eq!(
        upload.parent_of("store put"),
        "location",
        "{:?}",
        upload.names()
    );
    // A read goes down to the core, which reads the database.
    let get = Trace::of(&spans, get_trace);
    assert_eq!(get.parent_of("core"), "location", "{:?}", get.names());
    let statement = get
        .spans
        .iter()
        .find(|s| ["query_one", "query_all"].contains(&s.name.as_str()))
        .unwrap_or_else(|| panic!("no statement span: {:?}", get.names()));
    let mut above = get.parent_of(&statement.name);
    while !chain.contains(&above.as_str()) && above != "core" {
        above = get.parent_of(&above);
    }
    assert!(
        ["core", "policy"].contains(&above.as_str()),
        "a statement under {above}: {:?}",
        get.names()
    );
}

/// The spans of one trace.
struct Trace<'a> {
    spans: Vec<&'a Span>,
}

impl<'a> Trace<'a> {
    fn of(all: &'a [Span], trace_id: &str) -> Self {
        Trace {
            spans: all
                .iter()
                .filter(|s| hex(&s.trace_id) == trace_id)
                .collect(),
        }
    }

    fn names(&self) -> Vec<&str> {
        self.spans.iter().map(|s| s.name.as_str()).collect()
    }

    /// The name of the parent of the first span named `name` (its id in hex
    /// when the parent is not in the trace, as the client's is not).
    fn parent_of(&self, name: &str) -> String {
        let span = self
            .spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name:?} in the trace: {:?}", self.names()));
        self.spans
            .iter()
            .find(|p| p.span_id == span.parent_span_id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| hex(&span.parent_span_id))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
