//! The fetcher against real sockets: tiny HTTP servers on 127.0.0.1, which the
//! default options must refuse and an explicit `allowed_hosts` lets through.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use glance_layers::import::WebSource;
use glance_layers::{ImageData, ImageError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::resolve::HostResolver;
use super::{ImportFilteringOptions, WebFetcher};

// === test servers ===

/// What a test server does with a request.
enum Reply {
    /// These bytes, then close.
    Raw(Vec<u8>),
    /// A 200 with no length and chunks forever.
    Endless,
    /// These bytes (headers and maybe some body), then silence.
    Stall(Vec<u8>),
}

fn ok(body: &[u8]) -> Reply {
    let mut raw = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    Reply::Raw(raw)
}

fn redirect(status: u16, location: &str) -> Reply {
    Reply::Raw(
        format!(
            "HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
    )
}

/// A server on 127.0.0.1 answering each request with `reply(head)`.
struct Server {
    addr: SocketAddr,
    /// The request heads received, in order.
    heads: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(reply: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let reply = Arc::new(reply);
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (reply, seen) = (reply.clone(), seen.clone());
                tokio::spawn(async move {
                    let _ = answer(conn, &*reply, &seen).await;
                });
            }
        });
        Server { addr, heads }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> usize {
        self.heads.lock().unwrap().len()
    }
}

async fn answer(
    mut conn: TcpStream,
    reply: &(dyn Fn(&str) -> Reply + Send + Sync),
    seen: &Mutex<Vec<String>>,
) -> io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    seen.lock().unwrap().push(head.clone());
    match reply(&head) {
        Reply::Raw(raw) => conn.write_all(&raw).await,
        Reply::Endless => {
            conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await?;
            let chunk = vec![b'x'; 16 << 10];
            loop {
                conn.write_all(&chunk).await?;
            }
        }
        Reply::Stall(raw) => {
            conn.write_all(&raw).await?;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    }
}

// === helpers ===

fn fetcher(opts: ImportFilteringOptions) -> WebFetcher {
    WebFetcher::new(&opts).unwrap()
}

/// Options that let the test servers on these ports through.
fn loopback_allowed(ports: &[u16]) -> ImportFilteringOptions {
    ImportFilteringOptions {
        allowed_hosts: vec!["127.0.0.1".into()],
        allowed_ports: ports.to_vec(),
        ..Default::default()
    }
}

/// Answers from a table, counting the questions.
#[derive(Default)]
struct StubResolver {
    names: HashMap<String, Vec<IpAddr>>,
    lookups: AtomicUsize,
}

impl StubResolver {
    fn with(names: &[(&str, &[&str])]) -> Arc<StubResolver> {
        let names = names
            .iter()
            .map(|(n, ips)| {
                (
                    n.to_string(),
                    ips.iter().map(|ip| ip.parse().unwrap()).collect(),
                )
            })
            .collect();
        Arc::new(StubResolver {
            names,
            lookups: AtomicUsize::new(0),
        })
    }
}

#[async_trait::async_trait]
impl HostResolver for StubResolver {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.names
            .get(host)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name"))
    }
}

async fn read_all(data: ImageData) -> Result<Vec<u8>, ImageError> {
    let mut stream = data.stream;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes = chunk?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn open_err(fetcher: &WebFetcher, uri: &str) -> ImageError {
    match fetcher.open(uri, &[], 1 << 20).await {
        Ok(_) => panic!("{uri} was opened"),
        Err(e) => e,
    }
}

// === refused by default ===

/// One test per target `check` must refuse with the default options.
macro_rules! refused_by_default {
    ($($name:ident: $uri:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let fetcher = fetcher(ImportFilteringOptions::default());
            let err = fetcher.check($uri).await.expect_err($uri);
            assert!(err.starts_with($uri), "{err}");
        }
    )*};
}

refused_by_default! {
    refuses_loopback_dotted: "http://127.0.0.1/";
    refuses_loopback_other_than_one: "http://127.8.9.10/";
    refuses_loopback_short_form: "http://127.1/";
    refuses_loopback_decimal: "http://2130706433/";
    refuses_loopback_hex: "http://0x7f000001/";
    refuses_loopback_hex_dotted: "http://0x7f.1/";
    refuses_loopback_octal: "http://017700000001/";
    refuses_loopback_leading_zeros: "http://127.000.000.001/";
    refuses_localhost: "http://localhost/";
    refuses_ipv6_loopback: "http://[::1]/";
    refuses_ipv4_mapped_loopback: "http://[::ffff:127.0.0.1]/";
    refuses_ipv4_mapped_metadata: "http://[::ffff:a9fe:a9fe]/";
    refuses_nat64_loopback: "http://[64:ff9b::7f00:1]/";
    refuses_6to4_private: "http://[2002:a00:1::1]/";
    refuses_metadata_address: "http://169.254.169.254/latest/meta-data/";
    refuses_private_10: "http://10.0.0.1/";
    refuses_private_172: "http://172.16.0.1/";
    refuses_private_192: "http://192.168.1.1/";
    refuses_cgnat: "http://100.64.0.1/";
    refuses_unspecified: "http://0.0.0.0/";
    refuses_ipv6_unspecified: "http://[::]/";
    refuses_multicast: "http://224.0.0.1/";
    refuses_reserved: "http://240.0.0.1/";
    refuses_broadcast: "http://255.255.255.255/";
    refuses_ula: "http://[fd00::1]/";
    refuses_ipv6_link_local: "http://[fe80::1]/";
    refuses_ipv6_multicast: "http://[ff02::1]/";
    refuses_documentation: "http://192.0.2.1/";
    refuses_file_scheme: "file:///etc/passwd";
    refuses_ftp_scheme: "ftp://8.8.8.8/image.img";
    refuses_gopher_scheme: "gopher://8.8.8.8/";
    refuses_unlisted_port: "http://8.8.8.8:8080/";
    refuses_port_zero: "http://8.8.8.8:0/";
    refuses_backslash_confusion: "http://8.8.8.8\\@127.0.0.1/";
    refuses_two_ports: "http://8.8.8.8:80:81/";
    refuses_empty_host: "http:///path";
    refuses_no_scheme: "//8.8.8.8/";
    refuses_unresolvable_name: "http://no-such-host.invalid/";
}

#[tokio::test]
async fn public_literals_pass_with_defaults() {
    let fetcher = fetcher(ImportFilteringOptions::default());
    for uri in [
        "http://8.8.8.8/image.img",
        "https://8.8.8.8:443/image.img",
        "http://8.8.8.8:80/",
        "HTTP://8.8.8.8/",
        "http://user:secret@8.8.8.8/",
        "http://[2001:4860:4860::8888]/",
    ] {
        fetcher
            .check(uri)
            .await
            .unwrap_or_else(|e| panic!("{uri}: {e}"));
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused() {
    let resolver = StubResolver::with(&[("images.test", &["127.0.0.1"])]);
    let fetcher = fetcher(ImportFilteringOptions::default()).with_resolver(resolver);
    let err = fetcher.check("http://images.test/a.img").await.unwrap_err();
    assert!(err.contains("loopback"), "{err}");
}

#[tokio::test]
async fn one_internal_address_refuses_the_name() {
    let resolver = StubResolver::with(&[("mixed.test", &["8.8.8.8", "10.1.2.3"])]);
    let fetcher = fetcher(ImportFilteringOptions::default()).with_resolver(resolver);
    let err = fetcher.check("http://mixed.test/").await.unwrap_err();
    assert!(err.contains("private"), "{err}");
    let err = open_err(&fetcher, "http://mixed.test/").await;
    assert!(matches!(err, ImageError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn a_name_resolving_to_public_addresses_passes() {
    let resolver = StubResolver::with(&[("public.test", &["8.8.8.8", "2001:4860:4860::8888"])]);
    let fetcher = fetcher(ImportFilteringOptions::default()).with_resolver(resolver);
    fetcher.check("https://public.test/a.img").await.unwrap();
}

// === Glance's option semantics ===

#[tokio::test]
async fn disallowed_hosts_match_the_normalized_host() {
    let fetcher = fetcher(ImportFilteringOptions {
        disallowed_hosts: vec!["8.8.8.8".into(), "::ffff:808:404".into()],
        ..Default::default()
    });
    assert!(fetcher.check("http://8.8.8.8/").await.is_err());
    assert!(fetcher.check("http://[::ffff:8.8.4.4]/").await.is_err());
    fetcher.check("http://8.8.4.4/").await.unwrap();
}

#[tokio::test]
async fn disallowed_networks_also_refuse_names_resolving_into_them() {
    let resolver = StubResolver::with(&[("dns.test", &["8.8.8.8"]), ("other.test", &["1.1.1.1"])]);
    let fetcher = fetcher(ImportFilteringOptions {
        disallowed_hosts: vec!["8.8.0.0/16".into()],
        ..Default::default()
    })
    .with_resolver(resolver);
    assert!(fetcher.check("http://8.8.4.4/").await.is_err());
    let err = fetcher.check("http://dns.test/").await.unwrap_err();
    assert!(err.contains("disallowed_hosts"), "{err}");
    fetcher.check("http://other.test/").await.unwrap();
}

#[tokio::test]
async fn allowed_hosts_is_the_only_list_when_both_are_set() {
    let fetcher = fetcher(ImportFilteringOptions {
        allowed_hosts: vec!["8.8.8.8".into()],
        disallowed_hosts: vec!["8.8.8.8".into()],
        ..Default::default()
    });
    fetcher.check("http://8.8.8.8/").await.unwrap();
    assert!(fetcher.check("http://1.1.1.1/").await.is_err());
}

#[tokio::test]
async fn allowed_ports_apply_only_to_a_named_port() {
    let fetcher = fetcher(ImportFilteringOptions {
        allowed_ports: vec![8080],
        ..Default::default()
    });
    fetcher.check("http://8.8.8.8:8080/").await.unwrap();
    fetcher.check("http://8.8.8.8/").await.unwrap();
    assert!(fetcher.check("http://8.8.8.8:80/").await.is_err());
}

#[tokio::test]
async fn disallowed_ports_count_only_without_allowed_ports() {
    let fetcher = fetcher(ImportFilteringOptions {
        allowed_ports: vec![],
        disallowed_ports: vec![8080],
        ..Default::default()
    });
    assert!(fetcher.check("http://8.8.8.8:8080/").await.is_err());
    fetcher.check("http://8.8.8.8:9090/").await.unwrap();

    let both = self::fetcher(ImportFilteringOptions {
        allowed_ports: vec![8080],
        disallowed_ports: vec![8080],
        ..Default::default()
    });
    both.check("http://8.8.8.8:8080/").await.unwrap();
}

#[tokio::test]
async fn scheme_lists_as_glance() {
    let fetcher = fetcher(ImportFilteringOptions {
        allowed_schemes: vec![],
        disallowed_schemes: vec!["http".into()],
        ..Default::default()
    });
    assert!(fetcher.check("http://8.8.8.8/").await.is_err());
    fetcher.check("https://8.8.8.8/").await.unwrap();

    let https_only = self::fetcher(ImportFilteringOptions {
        allowed_schemes: vec!["https".into()],
        ..Default::default()
    });
    assert!(https_only.check("http://8.8.8.8/").await.is_err());
    https_only.check("https://8.8.8.8/").await.unwrap();
}

#[tokio::test]
async fn allowed_hosts_entries_match_python_spellings_and_networks() {
    let fetcher = fetcher(ImportFilteringOptions {
        allowed_hosts: vec!["::ffff:7f00:1".into(), "10.0.0.0/8".into()],
        ..Default::default()
    });
    fetcher.check("http://[::ffff:127.0.0.1]/").await.unwrap();
    fetcher.check("http://10.20.30.40/").await.unwrap();
    assert!(fetcher.check("http://127.0.0.1/").await.is_err());
    assert!(fetcher.check("http://8.8.8.8/").await.is_err());
}

#[tokio::test]
async fn allowed_hosts_do_not_admit_short_forms_of_an_allowed_address() {
    let fetcher = fetcher(ImportFilteringOptions {
        allowed_hosts: vec!["127.0.0.1".into()],
        ..Default::default()
    });
    fetcher.check("http://127.0.0.1/").await.unwrap();
    for uri in ["http://127.1/", "http://2130706433/", "http://0x7f000001/"] {
        assert!(fetcher.check(uri).await.is_err(), "{uri}");
    }
}

// === downloads ===

#[tokio::test]
async fn allowed_loopback_download_returns_the_bytes() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let expected = body.clone();
    let server = Server::start(move |_| ok(&body)).await;
    let fetcher = fetcher(loopback_allowed(&[server.port()]));

    fetcher.check(&server.url("/a.img")).await.unwrap();
    let data = fetcher
        .open(&server.url("/a.img"), &[("x-auth-token", "t0k")], 1 << 20)
        .await
        .unwrap();
    assert_eq!(data.expected_size, Some(expected.len() as u64));
    assert_eq!(read_all(data).await.unwrap(), expected);
    let head = server.heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.starts_with("get /a.img http/1.1"), "{head}");
    assert!(head.contains("x-auth-token: t0k"), "{head}");
}

#[tokio::test]
async fn a_checked_name_is_resolved_once_and_connected_to_as_checked() {
    let server = Server::start(|_| ok(b"pinned")).await;
    let resolver = StubResolver::with(&[("mirror.test", &["127.0.0.1"])]);
    let mut opts = loopback_allowed(&[server.port()]);
    opts.allowed_hosts = vec!["mirror.test".into()];
    let fetcher = fetcher(opts).with_resolver(resolver.clone());

    let uri = format!("http://mirror.test:{}/a.img", server.port());
    let data = fetcher.open(&uri, &[], 1 << 20).await.unwrap();
    assert_eq!(read_all(data).await.unwrap(), b"pinned");
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1);
    let head = server.heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        head.contains(&format!("host: mirror.test:{}", server.port())),
        "{head}"
    );
}

#[tokio::test]
async fn redirect_to_the_metadata_address_is_refused() {
    let server = Server::start(|_| redirect(302, "http://169.254.169.254/latest/meta-data/")).await;
    let fetcher = fetcher(loopback_allowed(&[server.port()]));
    let err = open_err(&fetcher, &server.url("/a.img")).await;
    assert!(
        matches!(&err, ImageError::Invalid(m) if m.contains("169.254.169.254")),
        "{err:?}"
    );
}

#[tokio::test]
async fn redirect_to_a_private_address_is_refused() {
    let server = Server::start(|_| redirect(301, "http://10.0.0.1/a.img")).await;
    let fetcher = fetcher(loopback_allowed(&[server.port(), 80]));
    let err = open_err(&fetcher, &server.url("/")).await;
    assert!(
        matches!(&err, ImageError::Invalid(m) if m.contains("10.0.0.1")),
        "{err:?}"
    );
}

/// With `allowed_hosts` empty only the address deny stands between a public
/// URI's redirect and the cloud's inside. A public first hop cannot be served
/// offline, so it goes through a configured proxy, which answers the redirect.
#[tokio::test]
async fn redirect_from_a_public_host_to_internal_addresses_is_refused() {
    for (location, kind) in [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/", "private"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://2130706433/", "canonical"),
    ] {
        let proxy = Server::start(move |_| redirect(302, location)).await;
        let fetcher = fetcher(ImportFilteringOptions {
            proxy: Some(proxy.url("")),
            ..Default::default()
        });
        let err = open_err(&fetcher, "http://8.8.8.8/a.img").await;
        assert!(
            matches!(&err, ImageError::Invalid(m) if m.contains(kind)),
            "{err:?}"
        );
        assert_eq!(proxy.requests(), 1);
    }
}

#[tokio::test]
async fn redirect_to_a_port_not_allowed_is_refused_before_connecting() {
    let other = Server::start(|_| ok(b"secret")).await;
    let target = other.url("/");
    let server = Server::start(move |_| redirect(307, &target)).await;
    let fetcher = fetcher(loopback_allowed(&[server.port()]));
    let err = open_err(&fetcher, &server.url("/")).await;
    assert!(
        matches!(&err, ImageError::Invalid(m) if m.contains("port")),
        "{err:?}"
    );
    assert_eq!(other.requests(), 0);
}

#[tokio::test]
async fn redirects_are_followed_and_headers_stay_with_their_origin() {
    let other = Server::start(|_| ok(b"moved here")).await;
    let target = other.url("/final.img");
    let server = Server::start(move |head| match head.starts_with("GET /start") {
        true => redirect(302, "/second"),
        false => redirect(308, &target),
    })
    .await;
    let fetcher = fetcher(loopback_allowed(&[server.port(), other.port()]));
    let data = fetcher
        .open(&server.url("/start"), &[("x-auth-token", "t0k")], 1 << 20)
        .await
        .unwrap();
    assert_eq!(read_all(data).await.unwrap(), b"moved here");
    let heads = server.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2);
    assert!(heads[1].starts_with("GET /second "), "{}", heads[1]);
    assert!(
        heads
            .iter()
            .all(|h| h.to_ascii_lowercase().contains("x-auth-token"))
    );
    let moved = other.heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(!moved.contains("x-auth-token"), "{moved}");
}

#[tokio::test]
async fn a_redirect_loop_stops_at_the_cap() {
    let server = Server::start(|_| redirect(302, "/again")).await;
    let mut opts = loopback_allowed(&[server.port()]);
    opts.max_redirects = 3;
    let fetcher = fetcher(opts);
    let err = open_err(&fetcher, &server.url("/")).await;
    assert!(
        matches!(&err, ImageError::Invalid(m) if m.contains("more than 3")),
        "{err:?}"
    );
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn an_endless_body_is_cut_at_max_bytes() {
    let server = Server::start(|_| Reply::Endless).await;
    let fetcher = fetcher(loopback_allowed(&[server.port()]));
    let data = fetcher.open(&server.url("/"), &[], 100_000).await.unwrap();
    assert_eq!(data.expected_size, None);
    let mut stream = data.stream;
    let mut received = 0usize;
    let err = loop {
        match stream.next().await.expect("the stream ends with an error") {
            Ok(chunk) => received += chunk.len(),
            Err(e) => break e,
        }
    };
    assert!(received <= 100_000);
    assert!(
        matches!(&err, ImageError::Invalid(m) if m.contains("100000")),
        "{err:?}"
    );
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn a_stalled_body_ends_in_an_error() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst bytes".to_vec();
    let server = Server::start(move |_| Reply::Stall(head.clone())).await;
    let mut opts = loopback_allowed(&[server.port()]);
    opts.read_timeout = 1;
    let fetcher = fetcher(opts);
    let data = fetcher.open(&server.url("/"), &[], 1 << 20).await.unwrap();
    let err = read_all(data).await.unwrap_err();
    assert!(matches!(err, ImageError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_server_silent_after_connect_is_an_error() {
    let server = Server::start(|_| Reply::Stall(Vec::new())).await;
    let mut opts = loopback_allowed(&[server.port()]);
    opts.connect_timeout = 1;
    opts.read_timeout = 1;
    let fetcher = fetcher(opts);
    let err = open_err(&fetcher, &server.url("/")).await;
    assert!(matches!(err, ImageError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn an_announced_size_over_the_limit_fails_before_reading() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n".to_vec();
    let server = Server::start(move |_| Reply::Stall(head.clone())).await;
    let fetcher = fetcher(loopback_allowed(&[server.port()]));
    let err = fetcher.open(&server.url("/"), &[], 1000).await.unwrap_err();
    assert!(
        matches!(&err, ImageError::Invalid(m) if m.contains("5000000")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_error_status_is_named() {
    let server = Server::start(|head| match head.starts_with("GET /gone") {
        true => Reply::Raw(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()),
        false => Reply::Raw(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n".to_vec()),
    })
    .await;
    let fetcher = fetcher(loopback_allowed(&[server.port()]));
    let err = open_err(&fetcher, &server.url("/gone")).await;
    assert!(
        matches!(&err, ImageError::Invalid(m) if m.contains("404")),
        "{err:?}"
    );
    let err = open_err(&fetcher, &server.url("/busy")).await;
    assert!(
        matches!(&err, ImageError::Unavailable { message, .. } if message.contains("503")),
        "{err:?}"
    );
}

#[tokio::test]
async fn refusals_from_open_are_invalid_and_hide_passwords() {
    let fetcher = fetcher(ImportFilteringOptions::default());
    let err = open_err(&fetcher, "http://user:hunter2@127.0.0.1/a.img").await;
    match err {
        ImageError::Invalid(m) => {
            assert!(m.contains("127.0.0.1") && m.contains("loopback"), "{m}");
            assert!(!m.contains("hunter2"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_configured_proxy_gets_the_request() {
    let proxy = Server::start(|_| ok(b"via proxy")).await;
    let fetcher = fetcher(ImportFilteringOptions {
        proxy: Some(proxy.url("")),
        ..Default::default()
    });
    let data = fetcher
        .open("http://8.8.8.8/a.img", &[], 1 << 20)
        .await
        .unwrap();
    assert_eq!(read_all(data).await.unwrap(), b"via proxy");
    let head = proxy.heads.lock().unwrap()[0].clone();
    assert!(head.starts_with("GET http://8.8.8.8/a.img "), "{head}");
}

#[test]
fn a_bad_proxy_or_a_zero_timeout_is_a_configuration_error() {
    let bad_proxy = ImportFilteringOptions {
        proxy: Some("::not a url::".into()),
        ..Default::default()
    };
    assert!(WebFetcher::new(&bad_proxy).unwrap_err().contains("proxy"));
    let zero = ImportFilteringOptions {
        read_timeout: 0,
        ..Default::default()
    };
    assert!(WebFetcher::new(&zero).is_err());
}

// === options ===

#[derive(Debug, serde::Deserialize)]
struct Conf {
    import_filtering_opts: ImportFilteringOptions,
}

fn from_toml(toml: &str) -> Result<ImportFilteringOptions, String> {
    use figment::providers::{Format, Toml};
    figment::Figment::new()
        .merge(Toml::string(toml))
        .extract::<Conf>()
        .map(|c| c.import_filtering_opts)
        .map_err(|e| e.to_string())
}

#[test]
fn options_default_to_glance() {
    let opts = from_toml("[import_filtering_opts]").unwrap();
    assert_eq!(opts, ImportFilteringOptions::default());
    assert_eq!(opts.allowed_schemes, ["http", "https"]);
    assert_eq!(opts.allowed_ports, [80, 443]);
    assert!(opts.allowed_hosts.is_empty() && opts.disallowed_hosts.is_empty());
    assert_eq!(
        (opts.connect_timeout, opts.read_timeout, opts.max_redirects),
        (10, 60, 5)
    );
    assert_eq!(opts.proxy, None);
}

#[test]
fn options_take_toml_arrays() {
    let opts = from_toml(
        r#"[import_filtering_opts]
        allowed_schemes = ["https"]
        allowed_hosts = ["images.example.com", "127.0.0.1"]
        allowed_ports = [443, 8443]
        disallowed_ports = []"#,
    )
    .unwrap();
    assert_eq!(opts.allowed_schemes, ["https"]);
    assert_eq!(opts.allowed_hosts, ["images.example.com", "127.0.0.1"]);
    assert_eq!(opts.allowed_ports, [443, 8443]);
    assert!(opts.disallowed_ports.is_empty());
}

#[test]
fn options_take_comma_separated_strings() {
    let opts = from_toml(
        r#"[import_filtering_opts]
        allowed_schemes = "http, https"
        disallowed_hosts = "10.0.0.1,  bad.example.com ,"
        allowed_ports = "80,443, 8080"
        disallowed_ports = """#,
    )
    .unwrap();
    assert_eq!(opts.allowed_schemes, ["http", "https"]);
    assert_eq!(opts.disallowed_hosts, ["10.0.0.1", "bad.example.com"]);
    assert_eq!(opts.allowed_ports, [80, 443, 8080]);
    assert!(opts.disallowed_ports.is_empty());

    let json: ImportFilteringOptions = serde_json::from_value(
        serde_json::json!({"allowed_ports": "8080", "disallowed_ports": 81}),
    )
    .unwrap();
    assert_eq!(
        (json.allowed_ports, json.disallowed_ports),
        (vec![8080], vec![81])
    );
}

#[test]
fn options_refuse_bad_ports_and_unknown_keys() {
    assert!(from_toml("[import_filtering_opts]\nallowed_ports = \"80,http\"").is_err());
    assert!(from_toml("[import_filtering_opts]\nallowed_ports = [70000]").is_err());
    assert!(from_toml("[import_filtering_opts]\nallowed_port = [80]").is_err());
}

#[test]
fn options_round_trip_through_serialize() {
    let opts = ImportFilteringOptions {
        allowed_hosts: vec!["a.example".into()],
        proxy: Some("http://proxy:3128".into()),
        ..Default::default()
    };
    let json = serde_json::to_value(&opts).unwrap();
    assert_eq!(
        serde_json::from_value::<ImportFilteringOptions>(json).unwrap(),
        opts
    );
}
