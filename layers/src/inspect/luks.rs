//! LUKS: a 592-byte big-endian header, magic `LUKS\xba\xbe`, version u16 at 6,
//! payload offset (sectors) u32 at 104. Only LUKSv1 is accepted. Without a
//! passphrase (Glance supplies none) the inner image is not inspected.

use super::region::{be_u16, be_u32};
use super::{Captured, Detected, DiskFormat};

const HEADER_LEN: usize = 592;
const MAGIC: &[u8] = b"LUKS\xba\xbe";
const PAYLOAD_OFFSET: usize = 6 + 2 + 32 + 32 + 32;
const SECTOR: u64 = 512;

pub(crate) fn probe(c: &Captured) -> Option<Detected> {
    if !c.head().starts_with(MAGIC) {
        return None;
    }
    let mut d = Detected::new(DiskFormat::Luks);
    let Some(h) = c.prefix(HEADER_LEN) else {
        d.complete = false;
        return Some(d);
    };
    let version = be_u16(h, 6).unwrap_or(0);
    if version != 1 {
        d.fail(
            "version",
            format!("LUKS version {version} is not supported"),
        );
    }
    let payload = u64::from(be_u32(h, PAYLOAD_OFFSET).unwrap_or(0)).saturating_mul(SECTOR);
    d.virtual_size = c.total.saturating_sub(payload);
    Some(d)
}
