//! Glance's `validate_import_uri` and `normalize_hostname`
//! (`glance/common/utils.py`), and the check of the addresses a host resolves
//! to, which Glance lacks.
//!
//! The URI is split the way Python's `urlparse` splits it, so the host lists
//! see the host as the client wrote it: the URL parser behind the HTTP client
//! would turn `127.1` or `2130706433` into `127.0.0.1` before any rule saw them.
//! A URI that the two parsers read differently (another host, another port) is
//! refused, so the host checked is the host connected to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use reqwest::Url;

use super::address::internal_kind;
use super::options::ImportFilteringOptions;

/// Why a URI may not be fetched, in words fit for a task's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(pub(crate) String);

/// A URI that passed Glance's filter, before its host is resolved.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URI as the HTTP client reads it.
    pub(crate) url: Url,
    /// `normalize_hostname`'s answer: a canonical IP literal or the lower-case name.
    pub(crate) host: String,
    /// The address when the host is an IP literal.
    pub(crate) literal: Option<IpAddr>,
}

/// One entry of `allowed_hosts` or `disallowed_hosts`.
#[derive(Debug, Clone)]
enum HostEntry {
    /// Matches the normalized host string, as in Glance.
    Name(String),
    /// An address (a one-address network) or a CIDR: matches the literals in
    /// it, and for the deny list also the addresses names resolve to.
    Net(IpNet),
}

impl HostEntry {
    fn parse(entry: &str) -> HostEntry {
        let entry = entry.trim();
        if let Ok(net) = entry.parse::<IpNet>() {
            return HostEntry::Net(net);
        }
        match entry
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => HostEntry::Net(IpNet::from(ip)),
            Err(_) => HostEntry::Name(entry.to_ascii_lowercase()),
        }
    }

    fn matches_host(&self, host: &str, literal: Option<IpAddr>) -> bool {
        match self {
            HostEntry::Name(name) => name == host,
            HostEntry::Net(net) => literal.is_some_and(|ip| net.contains(&ip)),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        matches!(self, HostEntry::Net(net) if net.contains(&ip))
    }
}

/// `[import_filtering_opts]`, prepared for checking. As in Glance, a deny list
/// is ignored when its allow list is set.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    allowed_schemes: Vec<String>,
    disallowed_schemes: Vec<String>,
    allowed_hosts: Vec<HostEntry>,
    disallowed_hosts: Vec<HostEntry>,
    allowed_ports: Vec<u16>,
    disallowed_ports: Vec<u16>,
}

impl Filter {
    pub(crate) fn new(opts: &ImportFilteringOptions) -> Filter {
        let lower = |list: &[String]| -> Vec<String> {
            list.iter().map(|s| s.trim().to_ascii_lowercase()).collect()
        };
        let hosts = |list: &[String]| -> Vec<HostEntry> {
            list.iter().map(|s| HostEntry::parse(s)).collect()
        };
        Filter {
            allowed_schemes: lower(&opts.allowed_schemes),
            disallowed_schemes: only_if_no_allow(
                opts.allowed_schemes.is_empty(),
                lower(&opts.disallowed_schemes),
            ),
            allowed_hosts: hosts(&opts.allowed_hosts),
            disallowed_hosts: only_if_no_allow(
                opts.allowed_hosts.is_empty(),
                hosts(&opts.disallowed_hosts),
            ),
            allowed_ports: opts.allowed_ports.clone(),
            disallowed_ports: only_if_no_allow(
                opts.allowed_ports.is_empty(),
                opts.disallowed_ports.clone(),
            ),
        }
    }

    /// Glance's `validate_import_uri`, but for the resolution that
    /// `normalize_hostname` asks for: that is `check_addresses`.
    pub(crate) fn check_uri(&self, uri: &str) -> Result<Target, Refused> {
        if uri
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return Err(refused(
                "the URI holds whitespace, control characters or a backslash",
            ));
        }
        let (scheme, rest) = split_scheme(uri).ok_or_else(|| refused("the URI has no scheme"))?;
        if (!self.allowed_schemes.is_empty() && !self.allowed_schemes.contains(&scheme))
            || self.disallowed_schemes.contains(&scheme)
        {
            return Err(refused(format!("scheme {scheme:?} is not allowed")));
        }
        if scheme != "http" && scheme != "https" {
            return Err(refused(format!(
                "scheme {scheme:?} cannot be fetched (only http and https)"
            )));
        }
        let authority = rest
            .strip_prefix("//")
            .map(|r| r.split(['/', '?', '#']).next().unwrap_or(""))
            .ok_or_else(|| refused("the URI has no host"))?;
        let (raw_host, bracketed, port) = split_authority(authority)?;
        let (host, literal) = normalize_host(&raw_host, bracketed)?;

        if (!self.allowed_hosts.is_empty()
            && !self
                .allowed_hosts
                .iter()
                .any(|e| e.matches_host(&host, literal)))
            || self
                .disallowed_hosts
                .iter()
                .any(|e| e.matches_host(&host, literal))
        {
            return Err(refused(format!("host {host:?} is not allowed")));
        }
        if let Some(port) = port
            && ((!self.allowed_ports.is_empty() && !self.allowed_ports.contains(&port))
                || self.disallowed_ports.contains(&port))
        {
            return Err(refused(format!("port {port} is not allowed")));
        }

        let url = Url::parse(uri).map_err(|_| refused("the URI is not a valid URL"))?;
        let url_host = url.host_str().unwrap_or_default();
        let same_host = match literal {
            Some(ip) => {
                url_host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    == Ok(ip)
            }
            None => url_host == host,
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        if !same_host
            || url.scheme() != scheme
            || url.port_or_known_default() != Some(port.unwrap_or(default_port))
        {
            return Err(refused("the URI's host or port is ambiguous"));
        }
        Ok(Target { url, host, literal })
    }

    /// The addresses of `target` (its literal, or what its name resolved to):
    /// every one must be public, or covered by `allowed_hosts`, and none in a
    /// network of `disallowed_hosts`. One bad address refuses the host.
    pub(crate) fn check_addresses(&self, target: &Target, addrs: &[IpAddr]) -> Result<(), Refused> {
        let host = &target.host;
        if addrs.is_empty() {
            return Err(refused(format!("host {host:?} does not resolve")));
        }
        let host_allowed = self
            .allowed_hosts
            .iter()
            .any(|e| e.matches_host(host, target.literal));
        for &ip in addrs {
            if self.disallowed_hosts.iter().any(|e| e.contains(ip)) {
                return Err(refused(format!(
                    "host {host:?} has an address in disallowed_hosts"
                )));
            }
            if host_allowed || self.allowed_hosts.iter().any(|e| e.contains(ip)) {
                continue;
            }
            if let Some(kind) = internal_kind(ip) {
                let a = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                return Err(match target.literal {
                    Some(_) => refused(format!("{host} is {a} {kind} address")),
                    None => refused(format!("host {host:?} has {a} {kind} address")),
                });
            }
        }
        Ok(())
    }
}

/// A deny list, or nothing when its allow list is set.
fn only_if_no_allow<T>(allow_empty: bool, deny: Vec<T>) -> Vec<T> {
    if allow_empty { deny } else { Vec::new() }
}

fn refused(reason: impl Into<String>) -> Refused {
    Refused(reason.into())
}

/// `scheme:rest`, the scheme lower-cased, as `urlparse` splits it.
pub(crate) fn split_scheme(uri: &str) -> Option<(String, &str)> {
    let (scheme, rest) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| (scheme.to_ascii_lowercase(), rest))
}

/// `urlparse(..).hostname` and `.port`: the host lower-cased, whether it was in
/// brackets, and the port if the URI names one.
fn split_authority(authority: &str) -> Result<(String, bool, Option<u16>), Refused> {
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, bracketed, port) = match hostport.strip_prefix('[') {
        Some(inner) => {
            let (host, after) = inner
                .split_once(']')
                .ok_or_else(|| refused("the URI's host is not a valid IPv6 literal"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| refused("the URI's port is not valid"))?,
                ),
            };
            (host, true, port)
        }
        None => match hostport.split_once(':') {
            Some((host, port)) => (host, false, Some(port)),
            None => (hostport, false, None),
        },
    };
    let port = match port {
        None | Some("") => None,
        Some(digits) => Some(
            digits
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| digits.parse::<u16>().ok())
                .flatten()
                .filter(|&p| p != 0)
                .ok_or_else(|| refused("the URI's port is not valid"))?,
        ),
    };
    Ok((host.to_lowercase(), bracketed, port))
}

/// `normalize_hostname`, for the host string: canonical IP literals in their
/// canonical spelling, names as they are; all-digit and digits-and-dots hosts
/// that are not canonical IPv4 are refused (`2130706433`, `127.1`). Names that
/// do not resolve are refused by `check_addresses`.
fn normalize_host(host: &str, bracketed: bool) -> Result<(String, Option<IpAddr>), Refused> {
    if host.is_empty() {
        return Err(refused("the URI has no host"));
    }
    if bracketed {
        return match host.parse::<Ipv6Addr>() {
            Ok(ip) => Ok((python_ipv6(ip), Some(IpAddr::V6(ip)))),
            Err(_) => Err(refused("the URI's host is not a valid IPv6 literal")),
        };
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok((ip.to_string(), Some(IpAddr::V4(ip))));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(refused(format!(
            "host {host:?} is neither a name nor a canonical IP address"
        )));
    }
    Ok((host.to_string(), None))
}

/// The spelling of Python's `str(ipaddress.IPv6Address(..))`, which the host
/// lists compare against: RFC 5952, but IPv4-mapped addresses in hex
/// (`::ffff:7f00:1`, where Rust writes `::ffff:127.0.0.1`).
fn python_ipv6(ip: Ipv6Addr) -> String {
    match ip.to_ipv4_mapped() {
        Some(_) => {
            let s = ip.segments();
            format!("::ffff:{:x}:{:x}", s[6], s[7])
        }
        None => ip.to_string(),
    }
}
