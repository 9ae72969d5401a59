//! ISO 9660 and UDF: the first 16 sectors of 2 KiB are a system area free for any
//! use (boot code, a partition table, or a disguised disk image); the volume
//! descriptor follows at 32 KiB with `CD001`, `NSR02` or `NSR03` at byte 1. The
//! virtual size of a primary volume descriptor (type 1) is the volume space size
//! (u32 LE at 80) times the logical block size (u16 LE at 128). There is no safety
//! check of its own: another format's header in the system area makes that format
//! match as well, and the verdict is then "Multiple formats detected".

use super::region::{le_u16, le_u32};
use super::{Captured, Detected, DiskFormat};

const DESCRIPTOR_OFFSET: usize = 32 * 1024;
const DESCRIPTOR_LEN: usize = 2 * 1024;
const SIGNATURES: [&[u8]; 3] = [b"CD001", b"NSR02", b"NSR03"];

pub(crate) fn probe(c: &Captured) -> Option<Detected> {
    let all = c.prefix(DESCRIPTOR_OFFSET + DESCRIPTOR_LEN)?;
    let desc = &all[DESCRIPTOR_OFFSET..];
    if !SIGNATURES.contains(&&desc[1..6]) {
        return None;
    }
    let mut d = Detected::new(DiskFormat::Iso);
    if desc[0] == 1 {
        let block = u64::from(le_u16(desc, 128).unwrap_or(0));
        let blocks = u64::from(le_u32(desc, 80).unwrap_or(0));
        d.virtual_size = blocks.saturating_mul(block);
    }
    Some(d)
}
