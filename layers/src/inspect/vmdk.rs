//! VMware VMDK: the hosted sparse header, its embedded text descriptor and, for
//! streamOptimized images whose grain directory is at the end, the footer.
//!
//! Sparse header (little-endian, 64 bytes used): magic `KDMV`, version (1–3) at 4,
//! capacity in sectors at 12, descriptor offset and size in sectors at 28 and 36,
//! grain directory offset at 56 (`u64::MAX`: "at the end", a footer follows).
//! A stream that is only a text descriptor (monolithicFlat and friends) is also
//! recognised, by its `createType`.
//!
//! The `descriptor` check accepts only monolithicSparse and streamOptimized, and only
//! descriptors made of comments, `ddb…` lines, `key=value` lines and extent lines
//! (`RW`/`RDONLY`/`NOACCESS`) that contain no `/`, with at least one extent: an
//! extent naming another file is how a VMDK makes `qemu-img` read it.

use super::region::{le_u32, le_u64};
use super::{Captured, Detected, DiskFormat};

pub(crate) const DESC_OFFSET: usize = 0x200;
pub(crate) const DESC_MAX_SIZE: usize = (1 << 20) - 1;
/// Footer marker, footer (a copy of the header) and end-of-stream marker.
pub(crate) const FOOTER_LEN: usize = 1536;
const MIN_SPARSE_HEADER: usize = 64;
const HEADER_LEN: usize = 512;
const GD_AT_END: u64 = u64::MAX;
const MARKER_EOS: u32 = 0;
const MARKER_FOOTER: u32 = 3;
const SECTOR: u64 = 512;
const ALLOWED: [&str; 2] = ["monolithicsparse", "streamoptimized"];

/// The fields of a sparse header the checks compare.
#[derive(Debug, PartialEq, Eq)]
struct Sparse {
    magic: [u8; 4],
    version: u32,
    capacity: u64,
    desc_sec: u64,
    desc_num: u64,
    gd_offset: u64,
}

fn parse_sparse(b: &[u8]) -> Option<Sparse> {
    Some(Sparse {
        magic: b.get(..4)?.try_into().ok()?,
        version: le_u32(b, 4)?,
        capacity: le_u64(b, 12)?,
        desc_sec: le_u64(b, 28)?,
        desc_num: le_u64(b, 36)?,
        gd_offset: le_u64(b, 56)?,
    })
}

/// Python's `isprintable() or isspace()` for ASCII.
fn is_text(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| {
        (0x20..0x7f).contains(&b) || (0x09..=0x0d).contains(&b) || (0x1c..=0x1f).contains(&b)
    })
}

/// The descriptor text up to its NUL padding, lower-cased; `None` if not ASCII.
fn descriptor_text(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = &raw[..end];
    text.is_ascii()
        .then(|| String::from_utf8_lossy(text).to_ascii_lowercase())
}

/// The `createType="…"` value (lower case), if present and shorter than 64.
fn create_type(text: &str) -> Option<String> {
    const KEY: &str = "createtype=\"";
    let start = text.find(KEY)? + KEY.len();
    let len = text[start..].find('"')?;
    (len < 64).then(|| text[start..start + len].to_string())
}

pub(crate) fn probe(c: &Captured) -> Option<Detected> {
    let head = c.head();
    let header = &head[..head.len().min(HEADER_LEN)];
    if !header.starts_with(b"KDMV") {
        // A bare text descriptor: a VMDK if it names its createType.
        if header.len() < 4 || !is_text(header) {
            return None;
        }
        let text = descriptor_text(&head[..head.len().min(DESC_MAX_SIZE)])?;
        let kind = create_type(&text)?;
        let mut d = Detected::new(DiskFormat::Vmdk);
        check_descriptor(&mut d, &text, &kind);
        d.vmdk_create_type = Some(kind);
        return Some(d);
    }

    let mut d = Detected::new(DiskFormat::Vmdk);
    let Some(sparse) = head.get(..MIN_SPARSE_HEADER).and_then(parse_sparse) else {
        d.complete = false;
        return Some(d);
    };
    if !(1..=3).contains(&sparse.version) {
        d.fail(
            "descriptor",
            format!("Unsupported format version {}", sparse.version),
        );
        return Some(d);
    }
    if sparse.desc_sec.checked_mul(SECTOR) != Some(DESC_OFFSET as u64) {
        d.fail("descriptor", "Wrong descriptor location");
        return Some(d);
    }
    let desc_len = sparse
        .desc_num
        .checked_mul(SECTOR)
        .map_or(DESC_MAX_SIZE, |n| {
            usize::try_from(n).unwrap_or(usize::MAX).min(DESC_MAX_SIZE)
        });
    let Some(raw) = head.get(DESC_OFFSET..DESC_OFFSET + desc_len) else {
        d.complete = false;
        return Some(d);
    };
    match descriptor_text(raw) {
        Some(text) => {
            let kind = create_type(&text).unwrap_or_else(|| "formatnotfound".into());
            check_descriptor(&mut d, &text, &kind);
            if ALLOWED.contains(&kind.as_str()) {
                d.virtual_size = sparse.capacity.saturating_mul(SECTOR);
            }
            d.vmdk_create_type = Some(kind);
        }
        None => d.fail("descriptor", "No descriptor found"),
    }
    if sparse.gd_offset == GD_AT_END {
        if !c.at_end {
            d.complete = false;
            return Some(d);
        }
        match c.tail.get() {
            Some(footer) => check_footer(&mut d, &sparse, footer),
            None => d.complete = false,
        }
    }
    Some(d)
}

fn check_descriptor(d: &mut Detected, text: &str, kind: &str) {
    if text.is_empty() {
        d.fail("descriptor", "No descriptor found");
        return;
    }
    if !ALLOWED.contains(&kind) {
        d.fail("descriptor", "Unsupported subformat");
        return;
    }
    let mut extents = Vec::new();
    for line in text.split('\n').map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with("ddb") {
            continue;
        }
        if line
            .split_once('=')
            .is_some_and(|(key, _)| !key.contains(' '))
        {
            continue;
        }
        let access = line.split(' ').next().unwrap_or("");
        if ["rw", "rdonly", "noaccess"].contains(&access) {
            extents.push(line);
            continue;
        }
        d.fail("descriptor", "Invalid VMDK descriptor data");
        return;
    }
    if extents.iter().any(|line| line.contains('/')) {
        d.fail("descriptor", "Invalid extent filenames found");
    } else if extents.is_empty() {
        d.fail("descriptor", "No extents found");
    }
}

/// The marker at the start of a 512-byte sector: value, size, type, zero padding.
fn marker(b: &[u8]) -> Option<(u64, u32, u32, bool)> {
    let pad = b.get(16..512)?;
    Some((
        le_u64(b, 0)?,
        le_u32(b, 8)?,
        le_u32(b, 12)?,
        pad.iter().all(|&x| x == 0),
    ))
}

fn check_footer(d: &mut Detected, header: &Sparse, tail: &[u8]) {
    let footer = tail
        .get(512..512 + MIN_SPARSE_HEADER)
        .and_then(parse_sparse);
    let Some(footer) = footer else {
        d.fail("footer", "Footer marker is invalid");
        return;
    };
    let message = if header.magic != footer.magic {
        Some("Header and footer signature do not match")
    } else if header.version != footer.version {
        Some("Header and footer versions do not match")
    } else if header.desc_sec != footer.desc_sec || header.desc_num != footer.desc_num {
        Some("Footer specifies a different descriptor than header")
    } else if footer.gd_offset == GD_AT_END {
        Some("Footer indicates another footer")
    } else {
        match (marker(tail), tail.get(1024..).and_then(marker)) {
            (Some((_, 0, MARKER_FOOTER, true)), Some((0, 0, MARKER_EOS, true))) => None,
            (Some((_, 0, MARKER_FOOTER, true)), _) => Some("End-of-stream marker is invalid"),
            _ => Some("Footer marker is invalid"),
        }
    };
    if let Some(message) = message {
        d.fail("footer", message);
    }
}
