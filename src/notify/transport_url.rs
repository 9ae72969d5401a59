//! oslo.messaging's `transport_url` for RabbitMQ:
//! `rabbit://[user[:pass]@]host[:port][,[user[:pass]@]host[:port]...]/[vhost][?query]`.
//!
//! As `oslo_messaging.TransportURL.parse` reads it: the hosts are comma
//! separated, each with its own optional credentials (percent-encoded); a host
//! without them connects with the broker's defaults (`guest`/`guest`), as kombu
//! does. The virtual host is the percent-decoded path; an empty one is `/`.
//! Of the query, `ssl` (`1`/`true`/`yes`/`on`, as newer oslo accepts) turns TLS
//! on; other keys are oslo's and kombu's tuning, accepted and ignored.

use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use percent_encoding::percent_decode_str;

/// oslo's port when a host names none (also with TLS, as oslo's).
pub const DEFAULT_PORT: u16 = 5672;

/// How long one host gets to accept a connection before the next is tried.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// One broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerHost {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// A parsed `transport_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportUrl {
    /// In the order given: the order failover tries them in.
    pub hosts: Vec<BrokerHost>,
    pub virtual_host: String,
    /// `?ssl=...`; `None` when the URL does not say (the config then decides).
    pub ssl: Option<bool>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransportUrlError {
    #[error("transport_url {0:?} is not rabbit://... (only RabbitMQ is supported)")]
    Scheme(String),
    #[error("transport_url names no host")]
    NoHost,
    #[error("transport_url host {0:?}: the port is not a number from 1 to 65535")]
    Port(String),
    #[error("transport_url: {0} is not valid percent-encoded UTF-8")]
    Encoding(&'static str),
    #[error("transport_url: ssl={0:?} is not a boolean")]
    Ssl(String),
}

impl TransportUrl {
    pub fn parse(url: &str) -> Result<Self, TransportUrlError> {
        let rest = url
            .strip_prefix("rabbit://")
            .or_else(|| url.strip_prefix("kombu+rabbit://"))
            .ok_or_else(|| TransportUrlError::Scheme(redact(url)))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (hosts, vhost) = rest.split_once('/').unwrap_or((rest, ""));
        let hosts = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(parse_host)
            .collect::<Result<Vec<_>, _>>()?;
        if hosts.is_empty() {
            return Err(TransportUrlError::NoHost);
        }
        let virtual_host = match decode(vhost, "the virtual host")? {
            v if v.is_empty() => "/".to_string(),
            v => v,
        };
        let mut ssl = None;
        for (key, value) in query
            .map(|q| form_urlencoded::parse(q.as_bytes()).collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if key == "ssl" {
                ssl = Some(parse_bool(&value).ok_or_else(|| TransportUrlError::Ssl(value.into()))?);
            }
        }
        Ok(TransportUrl {
            hosts,
            virtual_host,
            ssl,
        })
    }

    /// The AMQP URI of host `i`, over TLS (`amqps`) or not.
    pub fn amqp_uri(&self, i: usize, tls: bool) -> AMQPUri {
        let h = &self.hosts[i % self.hosts.len()];
        let defaults = AMQPUri::default();
        AMQPUri {
            scheme: if tls {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: h
                        .username
                        .clone()
                        .unwrap_or(defaults.authority.userinfo.username.clone()),
                    password: h
                        .password
                        .clone()
                        .unwrap_or(defaults.authority.userinfo.password),
                },
                host: h.host.clone(),
                port: h.port,
            },
            vhost: self.virtual_host.clone(),
            query: AMQPQueryString {
                // A host that does not answer must not hold up the next one.
                connection_timeout: Some(CONNECT_TIMEOUT_MS),
                ..AMQPQueryString::default()
            },
        }
    }
}

/// `[user[:pass]@]host[:port]`, with `[v6]` hosts.
fn parse_host(part: &str) -> Result<BrokerHost, TransportUrlError> {
    let (creds, hostport) = match part.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, part),
    };
    let (username, password) = match creds {
        None => (None, None),
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (
                Some(decode(u, "a user name")?),
                Some(decode(p, "a password")?),
            ),
            None => (Some(decode(c, "a user name")?), None),
        },
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| TransportUrlError::Port(hostport.into()))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(TransportUrlError::Port(hostport.into())),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(TransportUrlError::NoHost);
    }
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| TransportUrlError::Port(hostport.into()))?,
    };
    Ok(BrokerHost {
        host: host.to_string(),
        port,
        username,
        password,
    })
}

fn decode(s: &str, what: &'static str) -> Result<String, TransportUrlError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| TransportUrlError::Encoding(what))
}

/// oslo.config's boolean spellings.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The URL with its credentials hidden, for messages that reach logs.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if rest.contains('@') => {
            let after = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://***@{after}")
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str, port: u16, user: Option<&str>, pass: Option<&str>) -> BrokerHost {
        BrokerHost {
            host: h.into(),
            port,
            username: user.map(Into::into),
            password: pass.map(Into::into),
        }
    }

    #[test]
    fn one_host_with_the_default_vhost() {
        let t = TransportUrl::parse("rabbit://guest:guest@127.0.0.1:5672/").unwrap();
        assert_eq!(
            t.hosts,
            [host("127.0.0.1", 5672, Some("guest"), Some("guest"))]
        );
        assert_eq!(t.virtual_host, "/");
        assert_eq!(t.ssl, None);
        let uri = t.amqp_uri(0, false);
        assert_eq!(uri.scheme, AMQPScheme::AMQP);
        assert_eq!(uri.vhost, "/");
        assert_eq!(uri.authority.port, 5672);
        assert_eq!(uri.query.connection_timeout, Some(CONNECT_TIMEOUT_MS));
    }

    #[test]
    fn several_hosts_each_with_their_own_credentials() {
        let t = TransportUrl::parse("rabbit://a:pa@h1:5672,b:pb@h2:5673,h3/openstack").unwrap();
        assert_eq!(
            t.hosts,
            [
                host("h1", 5672, Some("a"), Some("pa")),
                host("h2", 5673, Some("b"), Some("pb")),
                host("h3", DEFAULT_PORT, None, None),
            ]
        );
        assert_eq!(t.virtual_host, "openstack");
        let second = t.amqp_uri(1, false);
        assert_eq!(second.authority.host, "h2");
        assert_eq!(second.authority.userinfo.username, "b");
        assert_eq!(second.authority.userinfo.password, "pb");
        // A host without credentials uses the broker's defaults.
        let third = t.amqp_uri(2, false);
        assert_eq!(third.authority.userinfo.username, "guest");
        assert_eq!(third.authority.userinfo.password, "guest");
        // Round robin wraps around.
        assert_eq!(t.amqp_uri(3, false).authority.host, "h1");
    }

    #[test]
    fn credentials_and_vhost_are_percent_decoded() {
        let t =
            TransportUrl::parse("rabbit://us%40er:p%3Aw%2Fd%40@[::1]:5671/%2Fnova%20vh").unwrap();
        assert_eq!(t.hosts, [host("::1", 5671, Some("us@er"), Some("p:w/d@"))]);
        assert_eq!(t.virtual_host, "/nova vh");
        // A password may hold ':' once encoded; the first ':' splits.
        let t = TransportUrl::parse("rabbit://u:a:b@h").unwrap();
        assert_eq!(t.hosts[0].password.as_deref(), Some("a:b"));
    }

    #[test]
    fn the_ssl_query_turns_tls_on() {
        let t = TransportUrl::parse("rabbit://u:p@h:5671/?ssl=1&heartbeat=30").unwrap();
        assert_eq!(t.ssl, Some(true));
        assert_eq!(t.amqp_uri(0, true).scheme, AMQPScheme::AMQPS);
        assert_eq!(
            TransportUrl::parse("rabbit://h/?ssl=false").unwrap().ssl,
            Some(false)
        );
        assert!(matches!(
            TransportUrl::parse("rabbit://h/?ssl=maybe"),
            Err(TransportUrlError::Ssl(_))
        ));
    }

    #[test]
    fn bad_urls_are_refused_without_showing_credentials() {
        let e = TransportUrl::parse("kafka://user:secret@h").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert_eq!(
            TransportUrl::parse("rabbit:///vh"),
            Err(TransportUrlError::NoHost)
        );
        assert!(matches!(
            TransportUrl::parse("rabbit://h:notaport/"),
            Err(TransportUrlError::Port(_))
        ));
        assert!(matches!(
            TransportUrl::parse("rabbit://h:0/"),
            Err(TransportUrlError::Port(_))
        ));
        assert!(matches!(
            TransportUrl::parse("rabbit://u:%ff@h/"),
            Err(TransportUrlError::Encoding(_))
        ));
    }
}
