//! Name resolution: done once per request by the fetcher itself, so that the
//! addresses checked are the addresses connected to. The HTTP client gets them
//! as fixed answers and a resolver that answers nothing else.

use std::io;
use std::net::IpAddr;

/// Turns a host name into addresses.
#[async_trait::async_trait]
pub(crate) trait HostResolver: Send + Sync + 'static {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// The system's resolver (`getaddrinfo`). As Glance does, the name gets a
/// trailing dot, so a numeric spelling (`0x7f.1`) is looked up in the DNS
/// rather than parsed as an address, and search domains do not apply.
pub(crate) struct SystemResolver;

#[async_trait::async_trait]
impl HostResolver for SystemResolver {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        let name = match host.ends_with('.') {
            true => host.to_string(),
            false => format!("{host}."),
        };
        let addrs = tokio::net::lookup_host((name.as_str(), 0)).await?;
        let mut unique = Vec::new();
        for addr in addrs {
            if !unique.contains(&addr.ip()) {
                unique.push(addr.ip());
            }
        }
        Ok(unique)
    }
}

/// The HTTP client's resolver: every name it would look up on its own is an
/// error, since the names it may reach come with their checked addresses.
pub(crate) struct NoResolver;

impl reqwest::dns::Resolve for NoResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let message = format!("{} was not checked before connecting", name.as_str());
        Box::pin(async move { Err(io::Error::other(message).into()) })
    }
}
