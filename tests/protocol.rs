//! The HTTP layer under abuse: framing conflicts, oversized headers, idle bodies
//! and connections, slow headers, bodies where none is read, and large JSON.
//! Raw TCP where a client library would not send what is tested. Timeouts are
//! configured short; the bounds below only keep a broken server from hanging
//! the suite.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use glance_api::config::Config;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest any single wait may take before the test fails instead of hanging.
const BOUND: Duration = Duration::from_secs(60);

/// A test server and the address its raw-socket tests connect to.
struct Node {
    base: common::TestServer,
    addr: SocketAddr,
}

async fn node(configure: impl FnOnce(&mut Config)) -> Node {
    let base = common::start_with(configure, |b| b).await;
    let addr = base.url.trim_start_matches("http://").parse().unwrap();
    Node { base, addr }
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn connect(&self) -> Sock {
        BufReader::new(TcpStream::connect(self.addr).await.unwrap())
    }
}

/// A raw connection; buffered, so bytes of a pipelined response are kept.
type Sock = BufReader<TcpStream>;

/// One HTTP/1 response: status, lower-cased head, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Reads one response (no body, or a `Content-Length` one) off `sock`.
async fn answer(sock: &mut Sock) -> Answer {
    tokio::time::timeout(BOUND, async {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = sock.read_line(&mut line).await.unwrap();
            assert!(n > 0, "connection closed before a whole response: {head:?}");
            head.push_str(&line.to_ascii_lowercase());
            if line == "\r\n" {
                break;
            }
        }
        let status = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; length];
        sock.read_exact(&mut body).await.unwrap();
        Answer {
            status,
            head,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    })
    .await
    .expect("no response")
}

/// Whether the server closes `sock` (EOF or reset) before `BOUND`, reading and
/// discarding whatever it sends first.
async fn closed_by_server(sock: &mut Sock) -> bool {
    tokio::time::timeout(BOUND, async {
        let mut chunk = [0u8; 4096];
        loop {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

async fn image_count(n: &Node) -> usize {
    let list: Value = n
        .base
        .get("/v2/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["images"].as_array().unwrap().len()
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_a_400_and_closes() {
    let n = node(|_| {}).await;
    let create = r#"{"name": "smuggled"}"#;
    let chunked = format!("{:x}\r\n{create}\r\n0\r\n\r\n", create.len());
    for (first, second) in [
        ("Content-Length: 4", "Transfer-Encoding: chunked"),
        ("Transfer-Encoding: chunked", "Content-Length: 4"),
    ] {
        // Second on a kept-alive connection: its position is what is refused.
        let mut sock = n.connect().await;
        sock.write_all(get("/v2/images").as_bytes()).await.unwrap();
        let req = format!(
            "POST /v2/images HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{first}\r\n{second}\r\n\r\n{chunked}"
        );
        sock.write_all(req.as_bytes()).await.unwrap();
        assert_eq!(answer(&mut sock).await.status, 200);
        let refused = answer(&mut sock).await;
        assert_eq!(refused.status, 400, "{refused:?}");
        assert!(
            refused
                .body
                .contains("Content-Length and Transfer-Encoding")
        );
        assert!(refused.head.contains("connection: close"));
        assert!(closed_by_server(&mut sock).await);
    }
    assert_eq!(
        image_count(&n).await,
        0,
        "the refused create was not served"
    );

    // A chunked upload whose data holds such a request is served, and so is the
    // request after it on the same connection.
    let id = n.base.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let data = format!(
        "POST /v2/images HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"
    );
    let mut sock = n.connect().await;
    let put = format!(
        "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{data}\r\n0\r\n\r\n",
        data.len()
    );
    sock.write_all(put.as_bytes()).await.unwrap();
    sock.write_all(get(&format!("/v2/images/{id}")).as_bytes())
        .await
        .unwrap();
    assert_eq!(answer(&mut sock).await.status, 204);
    let after = answer(&mut sock).await;
    assert_eq!(after.status, 200);
    assert!(
        after.body.contains(r#""status": "active""#),
        "{}",
        after.body
    );
    assert!(after.body.contains(&format!(r#""size": {}"#, data.len())));
}

#[tokio::test]
async fn oversized_headers_are_a_431() {
    let n = node(|c| {
        c.default.max_header_size = 16 << 10;
        c.default.max_header_line = 4 << 10;
    })
    .await;
    let with = |headers: &str| format!("GET /v2/images HTTP/1.1\r\nHost: x\r\n{headers}\r\n");

    // Within both limits: served.
    let mut sock = n.connect().await;
    let fine = format!("X-A: {}\r\nX-B: {}\r\n", "a".repeat(4000), "b".repeat(4000));
    sock.write_all(with(&fine).as_bytes()).await.unwrap();
    assert_eq!(answer(&mut sock).await.status, 200);

    // One line over max_header_line; many lines over max_header_size; a head
    // over hyper's own buffer (hyper's 431, which has no body).
    let long_line = format!("X-A: {}\r\n", "a".repeat(5000));
    let many_lines: String = (0..8)
        .map(|i| format!("X-{i}: {}\r\n", "v".repeat(3000)))
        .collect();
    let huge: String = (0..200)
        .map(|i| format!("X-{i}: {}\r\n", "v".repeat(3000)))
        .collect();
    for (headers, says) in [
        (long_line, Some("max_header_line")),
        (many_lines, Some("max_header_size")),
        (huge, None),
    ] {
        let mut sock = n.connect().await;
        // hyper may answer before reading all of a huge head; that is fine.
        let _ = sock.write_all(with(&headers).as_bytes()).await;
        let a = answer(&mut sock).await;
        assert_eq!(a.status, 431, "{a:?}");
        if let Some(says) = says {
            assert!(a.body.contains(says), "{a:?}");
            assert!(a.head.contains("connection: close"));
        }
        assert!(closed_by_server(&mut sock).await);
    }

    // HTTP/2: the same limits, answered on the stream.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let ok = h2.get(n.url("/v2/images")).send().await.unwrap();
    assert_eq!(ok.version(), reqwest::Version::HTTP_2);
    assert_eq!(ok.status(), 200);
    let long = h2
        .get(n.url("/v2/images"))
        .header("x-a", "a".repeat(5000))
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 431);
    assert!(long.text().await.unwrap().contains("max_header_line"));
    let mut many = h2.get(n.url("/v2/images"));
    for i in 0..8 {
        many = many.header(format!("x-{i}"), "v".repeat(3000));
    }
    // Over the advertised SETTINGS_MAX_HEADER_LIST_SIZE: h2 answers itself.
    assert_eq!(many.send().await.unwrap().status(), 431);
}

#[tokio::test]
async fn an_idle_upload_body_ends_the_request_and_frees_its_reservation() {
    let n = node(|c| {
        c.default.client_socket_timeout = 1;
        c.quota.image_count_uploading = Some(1);
    })
    .await;
    let id = n.base.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut sock = n.connect().await;
    let head = format!(
        "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&[7u8; 1000]).await.unwrap();
    // Then nothing: the server gives up on the body.
    let a = answer(&mut sock).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.body.contains("No request body data"), "{a:?}");
    assert!(closed_by_server(&mut sock).await);

    let image = n.base.image(&id).await;
    assert_eq!(image["status"], "queued");
    assert_eq!(image["size"], Value::Null);
    assert_eq!(n.base.stored_files(), Vec::<String>::new());
    // The upload slot is free again: another image's upload is allowed, and this
    // one can be uploaded.
    let other = n.base.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let up = n.base.upload(&other, vec![1u8; 10]).send().await.unwrap();
    assert_eq!(up.status(), 204);
    let up = n.base.upload(&id, vec![1u8; 10]).send().await.unwrap();
    assert_eq!(up.status(), 204);
    assert_eq!(n.base.image(&id).await["status"], "active");

    // A JSON body left idle ends the same way, and creates nothing.
    let before = image_count(&n).await;
    let mut sock = n.connect().await;
    sock.write_all(
        b"POST /v2/images HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\": ",
    )
    .await
    .unwrap();
    assert_eq!(answer(&mut sock).await.status, 400);
    assert_eq!(image_count(&n).await, before);
}

#[tokio::test]
async fn a_10_mib_property_value_round_trips() {
    let n = node(|_| {}).await;
    let big = "x".repeat(10 << 20);
    let resp = n
        .base
        .post_json(
            "/v2/images",
            json!({"name": "big", "disk_format": "raw", "container_format": "bare", "big": big}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let image = n.base.image(&id).await;
    assert!(image["big"] == big.as_str(), "the value came back changed");

    // Replaced by another as large, through a patch.
    let other = "y".repeat(10 << 20);
    let patched = n
        .base
        .patch(
            &format!("/v2/images/{id}"),
            json!([{"op": "replace", "path": "/big", "value": other}]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    assert!(n.base.image(&id).await["big"] == other.as_str());

    // The largest body accepted is stored too (on MySQL/MariaDB it must fit
    // the server's default 16 MiB max_allowed_packet).
    let limit = n.base.config.default.max_json_body;
    let largest = "w".repeat(limit - 200);
    let resp = n
        .base
        .post_json("/v2/images", json!({"name": "largest", "big": largest}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(n.base.image(&id).await["big"] == largest.as_str());

    // Over max_json_body is still refused.
    let over = "z".repeat(limit);
    let resp = n
        .base
        .post_json("/v2/images", json!({"name": "over", "big": over}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn a_body_is_ignored_where_glance_ignores_it_and_refused_where_glance_refuses_it() {
    let n = node(|_| {}).await;
    let id = n.base.create(json!({"name": "one"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = &n.base.client;
    for path in ["/v2/images", "/v2/info/usage"] {
        let plain = c.get(n.url(path)).send().await.unwrap();
        let status = plain.status();
        let expected: Value = plain.json().await.unwrap();
        for body in [&b"{\"limit\": 1}"[..], b"not json", &[0xffu8; 300]] {
            let resp = c.get(n.url(path)).body(body.to_vec()).send().await.unwrap();
            assert_eq!(resp.status(), status, "{path}");
            assert_eq!(resp.json::<Value>().await.unwrap(), expected, "{path}");
        }
    }
    // Glance sets `body_reject` on showing an image.
    let resp = c
        .get(n.url(&format!("/v2/images/{id}")))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("A body is not expected")
    );
}

#[tokio::test]
async fn idle_connections_are_closed() {
    // Idle after a request, with hyper's header timer far away: ours closes it.
    let n = node(|c| {
        c.default.client_socket_timeout = 1;
        c.default.header_read_timeout = 600;
    })
    .await;
    let mut sock = n.connect().await;
    sock.write_all(get("/versions").as_bytes()).await.unwrap();
    assert_eq!(answer(&mut sock).await.status, 200);
    assert!(closed_by_server(&mut sock).await);

    // HTTP/2 likewise: one request, then a GOAWAY and the close.
    let mut sock = n.connect().await;
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS
    // HEADERS, stream 1, END_STREAM | END_HEADERS: GET http "/" authority "x",
    // from HPACK's static table.
    let block = [0x82, 0x86, 0x84, 0x41, 0x01, b'x'];
    out.extend_from_slice(&[0, 0, block.len() as u8, 1, 5, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    sock.write_all(&out).await.unwrap();
    let frames = tokio::time::timeout(BOUND, async {
        let mut all = Vec::new();
        let _ = sock.read_to_end(&mut all).await;
        all
    })
    .await
    .expect("the HTTP/2 connection stayed open");
    let mut types = Vec::new();
    let mut rest = &frames[..];
    while rest.len() >= 9 {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        types.push((
            rest[3],
            u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]),
        ));
        rest = &rest[(9 + len).min(rest.len())..];
    }
    assert!(types.contains(&(1, 1)), "no response headers: {types:?}");
    assert!(types.iter().any(|t| t.0 == 7), "no GOAWAY: {types:?}");

    // Idle between requests with only hyper's header timer: hyper closes it.
    let n = node(|c| {
        c.default.client_socket_timeout = 0;
        c.default.header_read_timeout = 1;
    })
    .await;
    let mut sock = n.connect().await;
    sock.write_all(get("/versions").as_bytes()).await.unwrap();
    assert_eq!(answer(&mut sock).await.status, 200);
    assert!(closed_by_server(&mut sock).await);

    // Connections that never send a byte (before hyper knows the protocol), a
    // hundred at once: all closed, and the server still answers.
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(n.connect().await);
    }
    for sock in &mut idle {
        assert!(closed_by_server(sock).await);
    }
    let resp = n.base.client.get(n.url("/versions")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn headers_sent_slower_than_header_read_timeout_end_the_connection() {
    let n = node(|c| c.default.header_read_timeout = 1).await;
    let sock = n.connect().await.into_inner();
    let (mut rd, mut wr) = sock.into_split();
    // One header line every 100 ms, for as long as the server listens.
    let writer = tokio::spawn(async move {
        wr.write_all(b"GET /v2/images HTTP/1.1\r\nHost: x\r\n")
            .await?;
        for i in 0..600 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            wr.write_all(format!("X-{i}: slow\r\n").as_bytes()).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let got = tokio::time::timeout(BOUND, async {
        let mut all = Vec::new();
        let _ = rd.read_to_end(&mut all).await;
        all
    })
    .await
    .expect("the connection stayed open");
    assert!(
        !got.starts_with(b"HTTP/1.1 200"),
        "the slow request was served"
    );
    writer.abort();
}
