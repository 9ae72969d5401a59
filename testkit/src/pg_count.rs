//! Counts the SQL statements clients send to PostgreSQL, as the server's
//! `log_statement = all` would log them: a TCP proxy in front of the real server
//! that reads the client's side of the wire protocol. Every simple-query message
//! (`Q`: `BEGIN`, `COMMIT`, a whole script) counts once, and so does every
//! extended-protocol `Execute` (`E`); preparing (`Parse`), binding and syncing do
//! not. The counter sits outside the code it measures, so a change to how the
//! server talks to its database cannot hide statements from it.
//!
//! Each statement is kept with its text (for `E`, the SQL that was parsed for the
//! portal's prepared statement), so a failing count can show what ran.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Startup-phase request codes (in place of a protocol version).
const SSL_REQUEST: i32 = 80877103;
const GSSENC_REQUEST: i32 = 80877104;
const CANCEL_REQUEST: i32 = 80877102;

/// How a statement reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `Query` message: its text runs as sent.
    Simple,
    /// An `Execute` of a portal bound to a prepared statement.
    Extended,
}

/// One statement the server was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The proxied connection it came on, numbered from 1 in order of arrival.
    pub connection: u64,
    pub kind: Kind,
    pub sql: String,
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Simple => "Q",
            Kind::Extended => "E",
        };
        // One line per statement however the SQL is laid out.
        let sql = self.sql.split_whitespace().collect::<Vec<_>>().join(" ");
        write!(f, "[conn {}] {kind} {sql}", self.connection)
    }
}

/// A position in the log, from [`StatementCounter::mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(usize);

type Log = Arc<Mutex<Vec<Statement>>>;

/// The proxy: listens on a free local port and forwards every connection to
/// the upstream server. Stops accepting when dropped.
pub struct StatementCounter {
    addr: SocketAddr,
    log: Log,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for StatementCounter {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl StatementCounter {
    /// Starts a proxy to the PostgreSQL server at `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> io::Result<StatementCounter> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log = Log::default();
        let upstream = upstream.to_string();
        let accept = tokio::spawn({
            let log = log.clone();
            async move {
                let mut next = 0;
                while let Ok((client, _)) = listener.accept().await {
                    next += 1;
                    let (log, upstream) = (log.clone(), upstream.clone());
                    tokio::spawn(async move {
                        // A connection the client or server cut ends here; the
                        // other side sees the cut as it would without us.
                        let _ = relay(client, &upstream, next, log).await;
                    });
                }
            }
        });
        Ok(StatementCounter { addr, log, accept })
    }

    /// Starts a proxy to the server `url` (`postgres://user@host:port/db`) names.
    pub async fn in_front_of(url: &str) -> io::Result<StatementCounter> {
        let (_, hostport, _) = split_url(url)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, url.to_string()))?;
        let upstream = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:5432")
        };
        StatementCounter::start(&upstream).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` (`postgres://user@host:port/db?...`) with its host and port replaced
    /// by the proxy's. The proxy declines TLS itself (it must read the stream), so
    /// the URL must not require it.
    pub fn route(&self, url: &str) -> String {
        let (head, _, tail) = split_url(url).expect("a postgres:// URL");
        format!("{head}{}{tail}", self.addr)
    }

    /// Statements counted since the proxy started (or the last [`reset`](Self::reset)).
    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Forgets every statement counted so far.
    pub fn reset(&self) {
        self.log.lock().unwrap().clear();
    }

    /// The current position, to ask later what ran after it.
    pub fn mark(&self) -> Mark {
        Mark(self.count())
    }

    /// The statements sent since `mark` (none if a reset came in between).
    pub fn since(&self, mark: Mark) -> Vec<Statement> {
        let log = self.log.lock().unwrap();
        log.get(mark.0..).map(<[_]>::to_vec).unwrap_or_default()
    }
}

/// `scheme://[userinfo@]` / `host[:port]` / `[/db][?query]`.
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let after_scheme = url.find("://")? + 3;
    let rest = &url[after_scheme..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host_start = rest[..authority_end].rfind('@').map_or(0, |i| i + 1);
    Some((
        &url[..after_scheme + host_start],
        &rest[host_start..authority_end],
        &rest[authority_end..],
    ))
}

async fn read_i32<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<i32> {
    let mut b = [0; 4];
    r.read_exact(&mut b).await?;
    Ok(i32::from_be_bytes(b))
}

/// A message body of `len` bytes (the length field counts itself).
async fn read_body<R: AsyncRead + Unpin>(r: &mut R, len: i32) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_sub(4))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad message length"))?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok(body)
}

/// The NUL-terminated string at the start of `b`, and what follows it.
fn cstr(b: &[u8]) -> (String, &[u8]) {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let rest = b.get(end + 1..).unwrap_or_default();
    (String::from_utf8_lossy(&b[..end]).into_owned(), rest)
}

async fn relay(client: TcpStream, upstream: &str, connection: u64, log: Log) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    let server = TcpStream::connect(upstream).await?;
    let _ = server.set_nodelay(true);
    let (client_read, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let mut from_client = BufReader::new(client_read);

    // The startup phase: untyped messages (length, then a code or protocol
    // version). Encryption requests are answered here, with a no, so the rest
    // of the stream comes in plain text for us to read.
    loop {
        let len = read_i32(&mut from_client).await?;
        let body = read_body(&mut from_client, len).await?;
        let code = body
            .get(..4)
            .map_or(0, |c| i32::from_be_bytes(c.try_into().unwrap()));
        match code {
            SSL_REQUEST | GSSENC_REQUEST => to_client.write_all(b"N").await?,
            CANCEL_REQUEST => {
                // A cancel runs no statement: pass it on and stop reading.
                to_server.write_all(&len.to_be_bytes()).await?;
                to_server.write_all(&body).await?;
                return Ok(());
            }
            _ => {
                to_server.write_all(&len.to_be_bytes()).await?;
                to_server.write_all(&body).await?;
                break;
            }
        }
    }

    // The server's side is passed on as it comes.
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    });

    // Typed messages: 1 byte of type, then a length that counts itself.
    // Prepared statements by name, and portals by name to their statement's SQL;
    // "" is the unnamed one of each.
    let mut prepared: HashMap<String, String> = HashMap::new();
    let mut portals: HashMap<String, String> = HashMap::new();
    let result = async {
        loop {
            let mut tag = [0u8; 1];
            if from_client.read_exact(&mut tag).await.is_err() {
                return Ok(());
            }
            let len = read_i32(&mut from_client).await?;
            let body = read_body(&mut from_client, len).await?;
            let recorded = match tag[0] {
                b'Q' => Some((Kind::Simple, cstr(&body).0)),
                b'P' => {
                    let (name, rest) = cstr(&body);
                    prepared.insert(name, cstr(rest).0);
                    None
                }
                b'B' => {
                    let (portal, rest) = cstr(&body);
                    let statement = cstr(rest).0;
                    let sql = prepared
                        .get(&statement)
                        .cloned()
                        .unwrap_or_else(|| format!("<statement {statement:?} never parsed>"));
                    portals.insert(portal, sql);
                    None
                }
                b'E' => {
                    let portal = cstr(&body).0;
                    let sql = portals
                        .get(&portal)
                        .cloned()
                        .unwrap_or_else(|| format!("<portal {portal:?} never bound>"));
                    Some((Kind::Extended, sql))
                }
                b'C' => {
                    // Close: 'S' a statement or 'P' a portal.
                    let (name, _) = cstr(body.get(1..).unwrap_or_default());
                    match body.first() {
                        Some(b'S') => prepared.remove(&name),
                        Some(b'P') => portals.remove(&name),
                        _ => None,
                    };
                    None
                }
                _ => None,
            };
            if let Some((kind, sql)) = recorded {
                // Logged before it is passed on: by the time the client has its
                // answer, the statement is in the log.
                log.lock().unwrap().push(Statement {
                    connection,
                    kind,
                    sql,
                });
            }
            to_server.write_all(&header(tag[0], len)).await?;
            to_server.write_all(&body).await?;
        }
    }
    .await;
    let _ = to_server.shutdown().await;
    let _ = back.await;
    result
}

/// A typed message's header: its type byte and length.
fn header(tag: u8, len: i32) -> [u8; 5] {
    let l = len.to_be_bytes();
    [tag, l[0], l[1], l[2], l[3]]
}
