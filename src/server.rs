//! Serving: accept connections, hand each to hyper with the service, close those
//! left idle, and shut down gracefully (stop accepting, let in-flight requests
//! finish, up to a deadline).
//!
//! What hyper does by itself, and what is added here (see `tests/protocol.rs`):
//! - HTTP/1 headers slower than `header_read_timeout`: hyper closes the
//!   connection; it restarts that timer whenever an HTTP/1.1 connection goes
//!   idle, which also closes idle keep-alive connections.
//! - A header section over hyper's read buffer: hyper's bare 431. Below that,
//!   `max_header_size` and `max_header_line` are ours ([`guard`]), in Glance's
//!   error format; HTTP/2 advertises `max_header_size` and h2 answers 431 itself.
//! - `Content-Length` with `Transfer-Encoding`: hyper serves it by the latter and
//!   closes; we refuse it with a 400 ([`framing`], [`guard`]).
//! - A connection with no request in flight for `client_socket_timeout` (or that
//!   sends no request within `header_read_timeout` of connecting): hyper has no
//!   such timer (HTTP/2, protocol detection); we close it ([`activity`]).
//! - A request body idle for `client_socket_timeout`: in the API, which reads it.

mod activity;
mod framing;
mod guard;
#[cfg(unix)]
pub mod systemd;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::HttpService;
use crate::config::DefaultSection;
use activity::Activity;
use framing::{Followed, Framing};
use guard::{ConnectionState, Guard, HeaderLimits};

/// hyper's default read buffer for HTTP/1 (`8192 + 4096 * 100`): heads longer
/// than the buffer are refused by hyper (431) before any service sees them.
const HYPER_READ_BUFFER: usize = 8192 + 4096 * 100;

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Time a client has to send its request headers (and its first request).
    pub header_read_timeout: Duration,
    /// Time in-flight requests get once shutdown starts.
    pub drain_timeout: Duration,
    /// A connection with no request in flight this long is closed; `None` never.
    pub idle_timeout: Option<Duration>,
    /// Largest request header section in bytes; 0 is hyper's buffer only.
    pub max_header_size: usize,
    /// Longest request header line in bytes; 0 is no limit.
    pub max_header_line: usize,
}

impl ServerOptions {
    pub fn from_config(d: &DefaultSection) -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(d.header_read_timeout),
            drain_timeout: Duration::from_secs(30),
            idle_timeout: (d.client_socket_timeout > 0)
                .then(|| Duration::from_secs(d.client_socket_timeout)),
            max_header_size: d.max_header_size,
            max_header_line: d.max_header_line,
        }
    }

    /// hyper's HTTP/1 read buffer: room for the largest head we answer ourselves.
    fn read_buffer(&self) -> usize {
        HYPER_READ_BUFFER.max(self.max_header_size.max(self.max_header_line) * 2)
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions::from_config(&DefaultSection::default())
    }
}

/// Serves `service` on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    service: HttpService,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let read_buffer = options.read_buffer();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(read_buffer);
    builder.http2().timer(TokioTimer::new());
    if options.max_header_size > 0 {
        builder
            .http2()
            .max_header_list_size(u32::try_from(options.max_header_size).unwrap_or(u32::MAX));
    }
    let limits = HeaderLimits {
        section: options.max_header_size,
        line: options.max_header_line,
    };
    // Each connection holds a receiver until it ends; shutdown waits for them all.
    let (stop, _) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, don't die.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = ConnectionState::new();
                let io = Followed::new(stream, Framing::new(read_buffer, state.conflicts.clone()));
                let guard = Guard::new(service.clone(), state.clone(), limits);
                let conn = builder
                    .serve_connection(TokioIo::new(io), TowerToHyperService::new(guard))
                    .into_owned();
                let idle = (Some(options.header_read_timeout), options.idle_timeout);
                tokio::spawn(drive(conn, state.activity.clone(), idle, stop.subscribe(), peer));
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    let _ = stop.send(());
    tokio::select! {
        _ = stop.closed() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(options.drain_timeout) => tracing::warn!("drain timeout; closing remaining connections"),
    }
}

type Connection = auto::Connection<
    'static,
    TokioIo<Followed<tokio::net::TcpStream>>,
    TowerToHyperService<Guard>,
    TokioExecutor,
>;

/// Runs one connection until it ends. Idle too long, or the server stopping,
/// shuts it down gracefully (in-flight requests finish; HTTP/2 says GOAWAY); a
/// connection that then stays idle as long again (an HTTP/2 client that does not
/// answer) is dropped.
async fn drive(
    conn: Connection,
    activity: Arc<Activity>,
    (first, later): (Option<Duration>, Option<Duration>),
    mut stop: watch::Receiver<()>,
    peer: std::net::SocketAddr,
) {
    tokio::pin!(conn);
    let idle = activity.idle(first, later);
    tokio::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = &mut idle => {
                if closing {
                    tracing::debug!(%peer, "dropping an idle connection that did not close");
                    return;
                }
                tracing::debug!(%peer, "closing an idle connection");
                closing = true;
                conn.as_mut().graceful_shutdown();
                idle.set(activity.idle(first, later));
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
