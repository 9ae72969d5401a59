//! Requests into domain values: the create body, the list query string, `Range`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use glance_layers::patch::{self, Attribute, KeyKind};
use glance_layers::request::{
    CompareOp, Filter, FilterField, FilterValue, ListQuery, MemberStatusFilter, SortDir, SortKey,
    VisibilityFilter,
};
use glance_layers::{ByteRange, ImageError, NewImage};
use serde_json::Value;

fn bad(msg: impl Into<String>) -> ImageError {
    ImageError::Invalid(msg.into())
}

/// Whether `s` has the shape Glance's schema requires of an image id.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Parses a JSON request body; Glance's messages for what is not an object or array.
pub fn json_body(bytes: &[u8]) -> Result<Value, ImageError> {
    if bytes.is_empty() {
        return Err(bad("Body expected in request."));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|_| bad("Malformed JSON in request body."))?;
    match value {
        Value::Object(_) | Value::Array(_) => Ok(value),
        _ => Err(bad("Unexpected body type. Expected list/dict.")),
    }
}

/// `POST /v2/images`: checks each key as Glance's deserializer and schema do.
pub fn new_image(body: &Value) -> Result<NewImage, ImageError> {
    let obj = body
        .as_object()
        .ok_or_else(|| bad("Unexpected body type. Expected list/dict."))?;
    let mut new = NewImage::default();
    let mut properties = BTreeMap::new();
    for (key, value) in obj {
        // Glance drops these two on create rather than refusing them.
        if key == "os_hash_algo" || key == "os_hash_value" {
            continue;
        }
        if key == "id" {
            match value.as_str() {
                Some(id) if is_uuid(id) => new.id = Some(id.to_string()),
                _ => {
                    return Err(bad(format!(
                        "Provided object does not match schema 'image': {value} does not match the image id pattern"
                    )));
                }
            }
            continue;
        }
        match patch::check_writable(key)? {
            KeyKind::Locations => {
                return Err(ImageError::Forbidden(format!(
                    "Attribute '{key}' is reserved."
                )));
            }
            KeyKind::Extra if key.chars().count() > 255 => {
                return Err(bad(
                    "Custom property should not be greater than 255 characters.",
                ));
            }
            _ => {}
        }
        match patch::parse_attribute(key, value)? {
            Attribute::Name(v) => new.name = v,
            Attribute::Visibility(v) => new.visibility = Some(v),
            Attribute::Protected(v) => new.protected = Some(v),
            Attribute::OsHidden(v) => new.os_hidden = Some(v),
            Attribute::MinDisk(v) => new.min_disk = Some(v),
            Attribute::MinRam(v) => new.min_ram = Some(v),
            Attribute::ContainerFormat(v) => new.container_format = v,
            Attribute::DiskFormat(v) => new.disk_format = v,
            Attribute::Owner(v) => new.owner = v,
            Attribute::Tags(v) => new.tags = v,
            Attribute::Extra(k, v) => {
                properties.insert(k, v);
            }
        }
    }
    new.properties = properties;
    Ok(new)
}

/// Limits of list pages (`limit_param_default`, `api_limit_max`).
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub default: u64,
    pub max: u64,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, ImageError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").map(|t| t.and_utc())
        })
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| bad(format!("Unable to parse datetime '{s}'.")))
}

/// Splits Glance's `in:a,"b, c",d` list syntax.
fn split_in(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in list.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// `op:value` on a text attribute: a bare value, `eq:`, or `in:`.
fn text_filter(field: FilterField, raw: &str) -> Result<Filter, ImageError> {
    let (op, rest) = match raw.split_once(':') {
        Some(("in", rest)) => (CompareOp::In, rest),
        Some(("eq", rest)) => (CompareOp::Eq, rest),
        Some((other, _)) => {
            return Err(bad(format!(
                "Unable to filter by unknown operator '{other}'."
            )));
        }
        None => (CompareOp::Eq, raw),
    };
    let values = match op {
        CompareOp::In => split_in(rest).into_iter().map(FilterValue::Text).collect(),
        _ => vec![FilterValue::Text(rest.to_string())],
    };
    Ok(Filter { field, op, values })
}

/// `op:value` on a timestamp or size: `gt`, `gte`, `eq`, `neq`, `lt`, `lte`.
fn ordered_filter(
    field: FilterField,
    raw: &str,
    parse: impl Fn(&str) -> Result<FilterValue, ImageError>,
) -> Result<Filter, ImageError> {
    let ops = [
        ("gte", CompareOp::Gte),
        ("gt", CompareOp::Gt),
        ("lte", CompareOp::Lte),
        ("lt", CompareOp::Lt),
        ("neq", CompareOp::Neq),
        ("eq", CompareOp::Eq),
    ];
    let (op, rest) = match raw.split_once(':') {
        Some((name, rest)) if ops.iter().any(|(n, _)| *n == name) => (
            ops.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, o)| *o)
                .unwrap_or(CompareOp::Eq),
            rest,
        ),
        // A bare timestamp has colons of its own.
        _ => (CompareOp::Eq, raw),
    };
    Ok(Filter {
        field,
        op,
        values: vec![parse(rest)?],
    })
}

fn bool_param(name: &str, v: &str) -> Result<bool, ImageError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(format!(
            "Invalid value '{v}' for parameter '{name}': Expected 'true' or 'false'"
        ))),
    }
}

fn int_param(name: &str, v: &str) -> Result<i64, ImageError> {
    v.parse().map_err(|_| {
        bad(format!(
            "Invalid value '{v}' for parameter '{name}': must be an integer"
        ))
    })
}

/// `GET /v2/images?...` as Glance's deserializer reads it.
pub fn list_query(pairs: &[(String, String)], limits: PageLimits) -> Result<ListQuery, ImageError> {
    let mut q = ListQuery {
        limit: limits.default,
        ..ListQuery::default()
    };
    let mut sort_keys = Vec::new();
    let mut sort_dirs = Vec::new();
    let mut new_sort: Option<&str> = None;
    for (key, v) in pairs {
        match key.as_str() {
            "limit" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| bad("limit param must be an integer"))?;
                if n < 0 {
                    return Err(bad("limit param must be positive"));
                }
                q.limit = (n as u64).min(limits.max);
            }
            "marker" => q.marker = Some(v.clone()),
            "sort_key" => {
                for k in v.split(',') {
                    sort_keys.push(SortKey::parse(k.trim()).ok_or_else(|| bad(format!("Invalid sort key: {k}. It must be one of the following: name, status, container_format, disk_format, size, id, created_at, updated_at.")))?);
                }
            }
            "sort_dir" => sort_dirs.push(match v.as_str() {
                "asc" => SortDir::Asc,
                "desc" => SortDir::Desc,
                other => return Err(bad(format!("Invalid sort direction: {other}"))),
            }),
            "sort" => new_sort = Some(v.as_str()),
            "changes-since" => {
                return Err(bad(
                    "The 'changes-since' filter is no longer available on v2.",
                ));
            }
            "visibility" => {
                q.visibility = Some(match v.as_str() {
                    "all" => VisibilityFilter::All,
                    other => VisibilityFilter::Only(
                        other
                            .parse()
                            .map_err(|_| bad(format!("Invalid visibility value: {other}")))?,
                    ),
                })
            }
            "member_status" => {
                q.member_status = match v.as_str() {
                    "all" => MemberStatusFilter::All,
                    other => MemberStatusFilter::Only(
                        other
                            .parse()
                            .map_err(|_| bad(format!("Invalid status value: {other}")))?,
                    ),
                }
            }
            "tag" => q.tags.push(v.clone()),
            // openstacksdk sends `True`; Glance takes any case here (not for `protected`).
            "os_hidden" => q.os_hidden = bool_param("os_hidden", &v.to_ascii_lowercase())?,
            "protected" => q.filters.push(Filter {
                field: FilterField::Protected,
                op: CompareOp::Eq,
                values: vec![FilterValue::Bool(bool_param("protected", v)?)],
            }),
            "size_min" => q.filters.push(Filter {
                field: FilterField::Size,
                op: CompareOp::Gte,
                values: vec![FilterValue::Int(int_param("size_min", v)?)],
            }),
            "size_max" => q.filters.push(Filter {
                field: FilterField::Size,
                op: CompareOp::Lte,
                values: vec![FilterValue::Int(int_param("size_max", v)?)],
            }),
            "size" => q.filters.push(ordered_filter(FilterField::Size, v, |s| {
                int_param("size", s).map(FilterValue::Int)
            })?),
            "created_at" => q
                .filters
                .push(ordered_filter(FilterField::CreatedAt, v, |s| {
                    parse_time(s).map(FilterValue::Time)
                })?),
            "updated_at" => q
                .filters
                .push(ordered_filter(FilterField::UpdatedAt, v, |s| {
                    parse_time(s).map(FilterValue::Time)
                })?),
            "id" => q.filters.push(text_filter(FilterField::Id, v)?),
            "name" => q.filters.push(text_filter(FilterField::Name, v)?),
            "status" => q.filters.push(text_filter(FilterField::Status, v)?),
            "container_format" => q
                .filters
                .push(text_filter(FilterField::ContainerFormat, v)?),
            "disk_format" => q.filters.push(text_filter(FilterField::DiskFormat, v)?),
            "owner" => q.filters.push(text_filter(FilterField::Owner, v)?),
            "checksum" => q.filters.push(Filter {
                field: FilterField::Checksum,
                op: CompareOp::Eq,
                values: vec![FilterValue::Text(v.clone())],
            }),
            "os_hash_value" => q.filters.push(Filter {
                field: FilterField::OsHashValue,
                op: CompareOp::Eq,
                values: vec![FilterValue::Text(v.clone())],
            }),
            other => q.properties.push((other.to_string(), v.clone())),
        }
    }
    q.sort = sort_order(sort_keys, sort_dirs, new_sort)?;
    Ok(q)
}

/// The sort of a list request, with `created_at` and `id` appended as tie-breakers.
fn sort_order(
    keys: Vec<SortKey>,
    dirs: Vec<SortDir>,
    new: Option<&str>,
) -> Result<Vec<(SortKey, SortDir)>, ImageError> {
    let mut sort: Vec<(SortKey, SortDir)> = match new {
        Some(_) if !keys.is_empty() || !dirs.is_empty() => {
            return Err(bad("Old and new sorting syntax cannot be combined"));
        }
        Some(spec) => spec
            .split(',')
            .map(|item| {
                let (k, d) = item.split_once(':').unwrap_or((item, "desc"));
                let key = SortKey::parse(k.trim()).ok_or_else(|| bad(format!("Invalid sort key: {k}. It must be one of the following: name, status, container_format, disk_format, size, id, created_at, updated_at.")))?;
                let dir = match d.trim() {
                    "asc" => SortDir::Asc,
                    "desc" => SortDir::Desc,
                    other => return Err(bad(format!("Invalid sort direction: {other}"))),
                };
                Ok((key, dir))
            })
            .collect::<Result<_, _>>()?,
        None => {
            if dirs.len() > 1 && dirs.len() != keys.len() {
                return Err(bad("Number of sort dirs does not match the number of sort keys"));
            }
            let default_dir = dirs.first().copied().unwrap_or(SortDir::Desc);
            keys.iter()
                .enumerate()
                .map(|(i, k)| (*k, dirs.get(i).copied().unwrap_or(default_dir)))
                .collect()
        }
    };
    for tie in [SortKey::CreatedAt, SortKey::Id] {
        if !sort.iter().any(|(k, _)| *k == tie) {
            sort.push((tie, SortDir::Desc));
        }
    }
    Ok(sort)
}

/// A single `Range: bytes=...`, read as Glance (webob) reads it: `bytes` in any
/// case, spaces allowed around `=` and `-`, anything after the range ignored.
/// Several ranges are refused, as Glance does.
pub fn range(header: &str) -> Result<ByteRange, ImageError> {
    let unsatisfiable = || ImageError::RangeNotSatisfiable { size: 0 };
    if header.contains(',') {
        return Err(bad(
            "Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.",
        ));
    }
    let header = header.trim_start();
    let rest = header
        .get(..5)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes"))
        .map(|_| &header[5..])
        .ok_or_else(unsatisfiable)?;
    let rest = after_separator(rest, '=').ok_or_else(unsatisfiable)?;
    let (first, rest) = leading_number(rest);
    let rest = after_separator(rest, '-').ok_or_else(unsatisfiable)?;
    let (last, _) = leading_number(rest);
    match (first, last) {
        (None, Some(n)) => Ok(ByteRange::Suffix(n)),
        (Some(first), None) => Ok(ByteRange::From(first)),
        (Some(first), Some(last)) if last >= first => Ok(ByteRange::Bounded { first, last }),
        // `bytes=-` (a 500 in Glance), or the last byte before the first.
        _ => Err(unsatisfiable()),
    }
}

/// What follows `sep` and the spaces around it, if `s` starts with them.
fn after_separator(s: &str, sep: char) -> Option<&str> {
    s.trim_start_matches(' ')
        .strip_prefix(sep)
        .map(|r| r.trim_start_matches(' '))
}

/// The ASCII digits `s` starts with, as a number, and what follows them. A number
/// past `u64::MAX` is past the end of any image, so it saturates.
fn leading_number(s: &str) -> (Option<u64>, &str) {
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, rest) = s.split_at(end);
    let value = (!digits.is_empty()).then(|| {
        digits.bytes().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        })
    });
    (value, rest)
}

/// Python's `urllib.parse.quote_plus`, for Glance's `first`/`next` links.
pub fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    fn limits() -> PageLimits {
        PageLimits {
            default: 25,
            max: 1000,
        }
    }

    #[test]
    fn list_parameters_and_their_errors() {
        let q = list_query(
            &pairs("limit=5000&name=in:a,\"b, c\"&size_min=3&foo=bar&tag=x&tag=y"),
            limits(),
        )
        .unwrap();
        assert_eq!(q.limit, 1000);
        assert_eq!(q.filters[0].values.len(), 2);
        assert_eq!(q.properties, vec![("foo".into(), "bar".into())]);
        assert_eq!(q.tags, vec!["x", "y"]);
        assert_eq!(
            q.sort,
            vec![
                (SortKey::CreatedAt, SortDir::Desc),
                (SortKey::Id, SortDir::Desc)
            ]
        );
        for bad_query in [
            "limit=-1",
            "limit=abc",
            "sort_key=bogus",
            "sort_dir=up",
            "sort_key=name&sort=name:asc",
            "changes-since=2020-01-01",
            "size_min=x",
            "visibility=bogus",
            "name=xx:cap",
            "protected=True",
            "os_hidden=yes",
        ] {
            assert!(
                list_query(&pairs(bad_query), limits()).is_err(),
                "{bad_query}"
            );
        }
        let s = list_query(&pairs("sort=name:asc,size"), limits())
            .unwrap()
            .sort;
        assert_eq!(
            s[..2],
            [
                (SortKey::Name, SortDir::Asc),
                (SortKey::Size, SortDir::Desc)
            ]
        );
        let t = list_query(&pairs("created_at=gt:2000-01-01T00:00:00Z"), limits()).unwrap();
        assert_eq!(t.filters[0].op, CompareOp::Gt);
    }

    #[test]
    fn ranges() {
        assert_eq!(
            range("bytes=0-9").unwrap(),
            ByteRange::Bounded { first: 0, last: 9 }
        );
        assert_eq!(range("bytes=-5").unwrap(), ByteRange::Suffix(5));
        assert_eq!(range("bytes=10-").unwrap(), ByteRange::From(10));
        assert!(matches!(
            range("bytes=0-1,5-6"),
            Err(ImageError::Invalid(_))
        ));
        assert!(matches!(
            range("garbage"),
            Err(ImageError::RangeNotSatisfiable { .. })
        ));
        assert!(matches!(
            range("bytes=9-2"),
            Err(ImageError::RangeNotSatisfiable { .. })
        ));
    }

    #[test]
    fn ranges_read_as_webob_reads_them() {
        let ok = |h: &str| range(h).unwrap();
        assert_eq!(ok("BYTES=1-2"), ByteRange::Bounded { first: 1, last: 2 });
        assert_eq!(
            ok("bytes = 1 - 2 "),
            ByteRange::Bounded { first: 1, last: 2 }
        );
        // What follows the range is not looked at.
        assert_eq!(ok("bytes=3-+4"), ByteRange::From(3));
        assert_eq!(ok("bytes=1-2xyz"), ByteRange::Bounded { first: 1, last: 2 });
        // Numbers past u64 are past any image's end.
        assert_eq!(
            ok("bytes=0-99999999999999999999"),
            ByteRange::Bounded {
                first: 0,
                last: u64::MAX
            }
        );
        assert_eq!(
            ok("bytes=-99999999999999999999"),
            ByteRange::Suffix(u64::MAX)
        );
        for refused in [
            "bytes=+3-4",
            "bytes=0x1-2",
            "bytes=-",
            "bytes",
            "bytes=",
            "bytés=1-2",
            "bytes 1-2",
        ] {
            assert!(
                matches!(range(refused), Err(ImageError::RangeNotSatisfiable { .. })),
                "{refused}"
            );
        }
        assert!(matches!(range("items=1-2,3"), Err(ImageError::Invalid(_))));
    }

    #[test]
    fn a_range_to_the_last_possible_byte_resolves() {
        // It overflowed `last + 1` once: a panic, so a 500, in a debug build.
        let r = range("bytes=0-18446744073709551615").unwrap();
        assert_eq!(r.resolve(10), Ok(0..10));
        assert_eq!(
            range("bytes=18446744073709551615-")
                .unwrap()
                .resolve(10)
                .ok(),
            None
        );
    }

    #[test]
    fn create_bodies() {
        let v = json_body(br#"{"name":"n","foo":"bar","tags":["a"],"min_ram":5}"#).unwrap();
        let n = new_image(&v).unwrap();
        assert_eq!(n.name.as_deref(), Some("n"));
        assert_eq!(n.properties["foo"], "bar");
        let err = |b: &str| new_image(&json_body(b.as_bytes()).unwrap()).unwrap_err();
        assert!(matches!(
            err(r#"{"status":"active"}"#),
            ImageError::Forbidden(_)
        ));
        assert!(matches!(err(r#"{"id":"nope"}"#), ImageError::Invalid(_)));
        assert!(matches!(
            err(r#"{"os_glance_x":"y"}"#),
            ImageError::Forbidden(_)
        ));
        assert!(matches!(
            err(r#"{"locations":[]}"#),
            ImageError::Forbidden(_)
        ));
        assert!(matches!(err(r#"{"foo":5}"#), ImageError::Invalid(_)));
        assert!(matches!(json_body(b"{"), Err(ImageError::Invalid(_))));
        assert!(matches!(json_body(b""), Err(ImageError::Invalid(_))));
        assert!(matches!(json_body(b"\"s\""), Err(ImageError::Invalid(_))));
        assert!(is_uuid("f7b76706-05e1-4f3a-abbe-b3d226264d33"));
        assert!(!is_uuid("f7b76706-05e1-4f3a-abbe-b3d226264d3"));
    }

    #[test]
    fn quote_plus_matches_python() {
        assert_eq!(quote_plus("in:a, b"), "in%3Aa%2C+b");
    }
}
