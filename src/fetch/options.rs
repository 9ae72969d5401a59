//! `[import_filtering_opts]`: Glance's six filter lists with Glance's defaults,
//! and the knobs of our fetcher (timeouts, redirects, proxy).

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::config::option_doc::options;

options! {
/// What `web-download` may fetch, and how.
///
/// The six lists keep Glance's names, defaults and rules: when an allow list and
/// its deny list are both set, only the allow list counts; hosts match the
/// normalized host string; ports are checked only when the URI names one. Each
/// list takes a TOML array or, as glance-api.conf writes them, a comma-separated
/// string.
///
/// Beyond Glance, a host whose addresses are internal (loopback, link-local,
/// private, CGNAT, multicast, reserved...) is refused unless `allowed_hosts`
/// names it: by name, by address, or by a network in CIDR form
/// (`127.0.0.0/8`), which matches the address literals inside it. An IP or
/// CIDR entry of `disallowed_hosts` also refuses the names that resolve into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportFilteringOptions {
    /// URI schemes web-download may fetch.
    #[serde(deserialize_with = "list_or_csv")]
    pub allowed_schemes: Vec<String>,
    /// URI schemes web-download may not fetch (unused when `allowed_schemes` is set).
    #[serde(deserialize_with = "list_or_csv")]
    pub disallowed_schemes: Vec<String>,
    /// Hosts web-download may fetch from: names, addresses or CIDR networks. Set, it is the
    /// complete list.
    #[serde(deserialize_with = "list_or_csv")]
    pub allowed_hosts: Vec<String>,
    /// Hosts web-download may not fetch from (unused when `allowed_hosts` is set); an IP or
    /// CIDR entry also refuses the names resolving into it.
    #[serde(deserialize_with = "list_or_csv")]
    pub disallowed_hosts: Vec<String>,
    /// Ports web-download may fetch from, when the URI names one.
    #[serde(deserialize_with = "list_or_csv")]
    pub allowed_ports: Vec<u16>,
    /// Ports web-download may not fetch from (unused when `allowed_ports` is set).
    #[serde(deserialize_with = "list_or_csv")]
    pub disallowed_ports: Vec<u16>,
    /// Seconds to resolve a host and open a connection to it.
    pub connect_timeout: u64,
    /// Seconds the server may go without sending a byte (before the response
    /// headers or between two chunks of the body).
    pub read_timeout: u64,
    /// Redirects followed for one download; each target is checked again.
    pub max_redirects: usize,
    /// A proxy for every download (`http://host:port`). Proxy settings of the
    /// environment (`HTTP_PROXY`...) are never used. Through a proxy the address
    /// checks still apply to what this server resolves, but the proxy resolves
    /// and connects on its own.
    pub proxy: Option<String>,
}
}

impl Default for ImportFilteringOptions {
    fn default() -> Self {
        ImportFilteringOptions {
            allowed_schemes: vec!["http".into(), "https".into()],
            disallowed_schemes: Vec::new(),
            allowed_hosts: Vec::new(),
            disallowed_hosts: Vec::new(),
            allowed_ports: vec![80, 443],
            disallowed_ports: Vec::new(),
            connect_timeout: 10,
            read_timeout: 60,
            max_redirects: 5,
            proxy: None,
        }
    }
}

/// Deserializes a list from either a sequence (`["a", "b"]`, `[80, 443]`) or a
/// comma-separated string (`"a, b"`, `"80,443"`), as oslo.config's `ListOpt`
/// reads glance-api.conf. Items are trimmed, empty items dropped, and each is
/// parsed with `FromStr` (a number in a sequence is parsed from its digits), so
/// `#[serde(deserialize_with = "list_or_csv")]` works for `Vec<String>` and
/// `Vec<u16>` alike. A lone scalar (an environment variable `80`) is a list of one.
pub(crate) fn list_or_csv<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    deserializer.deserialize_any(ListVisitor(PhantomData))
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T> Visitor<'de> for ListVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list or a comma-separated string")
    }

    /// oslo's list forms: `a, b`, and for options declared with `bounds`
    /// (Glance's `enabled_import_methods`) `[a, b]`, items possibly quoted
    /// (`['glance-direct', 'web-download']`).
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        let v = v
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(v);
        v.split(',')
            .map(|item| {
                let item = item.trim();
                ['\'', '"']
                    .iter()
                    .find_map(|q| item.strip_prefix(*q)?.strip_suffix(*q))
                    .unwrap_or(item)
            })
            .filter(|item| !item.is_empty())
            .map(parse_item)
            .collect()
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        parse_item(&v.to_string()).map(|item| vec![item])
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        parse_item(&v.to_string()).map(|item| vec![item])
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Item(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}

fn parse_item<T, E>(s: &str) -> Result<T, E>
where
    T: FromStr,
    T::Err: fmt::Display,
    E: de::Error,
{
    s.trim()
        .parse()
        .map_err(|e| E::custom(format_args!("invalid list item {s:?}: {e}")))
}

/// One item of a sequence: a string or a number, parsed with `FromStr`.
struct Item<T>(T);

impl<'de, T> Deserialize<'de> for Item<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor<T>(PhantomData<T>);

        impl<T> Visitor<'_> for ItemVisitor<T>
        where
            T: FromStr,
            T::Err: fmt::Display,
        {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
                parse_item(v)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
                parse_item(&v.to_string())
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
                parse_item(&v.to_string())
            }
        }

        deserializer
            .deserialize_any(ItemVisitor(PhantomData))
            .map(Item)
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "super::list_or_csv")]
        items: Vec<String>,
    }

    fn items(json: &str) -> Vec<String> {
        serde_json::from_str::<Holder>(json).unwrap().items
    }

    #[test]
    fn takes_oslo_lists_with_and_without_bounds() {
        let want = ["glance-direct", "web-download"];
        assert_eq!(items(r#"{"items": "glance-direct, web-download"}"#), want);
        assert_eq!(items(r#"{"items": "[glance-direct,web-download]"}"#), want);
        assert_eq!(
            items(r#"{"items": "['glance-direct', \"web-download\"]"}"#),
            want
        );
        assert_eq!(
            items(r#"{"items": ["glance-direct", "web-download"]}"#),
            want
        );
        assert!(items(r#"{"items": "[]"}"#).is_empty());
    }
}
