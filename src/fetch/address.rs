//! Which addresses are the cloud's own: the ranges a download must not reach
//! unless the operator names them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not a public unicast one, or `None` when it is.
///
/// IPv6 addresses that carry an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo)
/// are judged by the IPv4 address they carry.
pub(crate) fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let kind = match (a, b, c) {
        (0, _, _) => "unspecified",
        (10, _, _) => "private",
        (100, 64..=127, _) => "shared (CGNAT)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private",
        (192, 0, 0) => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "reserved",
        (192, 168, _) => "private",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    };
    Some(kind)
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // IPv4-mapped ::ffff:0:0/96 and NAT64 64:ff9b::/96 reach the IPv4 address.
    if s[..6] == [0, 0, 0, 0, 0, 0xffff] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_kind(embedded(s[6], s[7]));
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    match s[0] {
        0xfe80..=0xfebf => return Some("link-local"),
        0xfec0..=0xfeff => return Some("site-local"),
        0xfc00..=0xfdff => return Some("private"),
        0xff00..=0xffff => return Some("multicast"),
        // Global unicast is 2000::/3; the rest (IPv4-compatible, discard-only,
        // local-use NAT64...) is not for the Internet.
        0x0000..=0x1fff | 0x4000..=0xfbff => return Some("reserved"),
        _ => {}
    }
    match (s[0], s[1]) {
        // 6to4 2002:V4ADDR::/48.
        (0x2002, _) => v4_kind(embedded(s[1], s[2])),
        // Teredo 2001:0:SERVER:FLAGS:PORT:~CLIENT.
        (0x2001, 0) => v4_kind(embedded(s[2], s[3])).or(v4_kind(embedded(!s[6], !s[7]))),
        (0x2001, 0x0db8) => Some("documentation"),
        (0x3fff, 0x0000..=0x0fff) => Some("documentation"),
        (0x2001, 0x0002) if s[2] == 0 => Some("benchmarking"),
        _ => None,
    }
}
