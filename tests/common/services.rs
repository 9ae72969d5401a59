//! The local services some suites talk to (RabbitMQ, PostgreSQL, MariaDB): a URL
//! from the environment, else the service's standard local address. A service
//! that does not answer there skips the test with one visible line on a
//! developer's machine, and fails it under CI (`CI` set), where it must be up.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    RabbitMq,
    Postgres,
    MariaDb,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::RabbitMq => "RabbitMQ",
            Service::Postgres => "PostgreSQL",
            Service::MariaDb => "MariaDB",
        }
    }

    /// The variable that names the service, and the address used without it.
    fn setting(self) -> (&'static str, &'static str) {
        match self {
            Service::RabbitMq => (
                "GLANCE_TEST_TRANSPORT_URL",
                "rabbit://guest:guest@127.0.0.1:5672/",
            ),
            Service::Postgres => (
                "GLANCE_TEST_POSTGRES_URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            Service::MariaDb => ("GLANCE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/mysql"),
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Service::RabbitMq => 5672,
            Service::Postgres => 5432,
            Service::MariaDb => 3306,
        }
    }

    /// Whether `url` is an address of this service (by its scheme).
    fn owns(self, url: &str) -> bool {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        match self {
            Service::RabbitMq => matches!(scheme, "rabbit" | "amqp"),
            Service::Postgres => matches!(scheme, "postgres" | "postgresql"),
            Service::MariaDb => matches!(scheme, "mysql" | "mariadb"),
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn in_ci() -> bool {
    env("CI").is_some()
}

/// The service's URL: its own variable; for the databases, else
/// `GLANCE_TEST_DATABASE_URL` when it names that kind; else the standard local
/// address. `None` (after one line on stderr) when nothing answers there and `CI`
/// is unset; a panic when `CI` is set.
pub fn url(service: Service) -> Option<String> {
    let (var, default) = service.setting();
    let url = env(var)
        .or_else(|| env("GLANCE_TEST_DATABASE_URL").filter(|u| service.owns(u)))
        .unwrap_or_else(|| default.to_string());
    if answers(&url, service.default_port()) {
        return Some(url);
    }
    let why = format!(
        "{} does not answer at {} (set {var} or start it)",
        service.name(),
        redact(&url)
    );
    if in_ci() {
        panic!("CI is set and {why}");
    }
    skip(&why);
    None
}

/// Says on one line that the running test skips, and why. Straight to the
/// process's stderr: libtest captures `eprintln!` of passing tests, and a skip
/// nobody sees reads as a pass.
pub fn skip(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Whether something accepts TCP connections at the URL's host and port.
fn answers(url: &str, default_port: u16) -> bool {
    let Some((host, port)) = host_port(url, default_port) else {
        return false;
    };
    let Ok(addrs) = (host.as_str(), port).to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok())
}

/// `scheme://[user[:password]@]host[:port][/...]` → host and port.
fn host_port(url: &str, default_port: u16) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.strip_prefix('[') {
        // [::1]:5432
        Some(v6) => {
            let (h, p) = v6.split_once(']')?;
            (h, p.strip_prefix(':'))
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    Some((host.to_string(), port))
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}
