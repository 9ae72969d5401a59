//! VirtualBox VDI: a 512-byte header, signature `0xBEDA107F` (u32 LE at 0x40),
//! virtual size u64 LE at 0x170. No safety checks.

use super::region::{le_u32, le_u64};
use super::{Captured, Detected, DiskFormat};

const HEADER_LEN: usize = 512;
const SIGNATURE: u32 = 0xBEDA_107F;

pub(crate) fn probe(c: &Captured) -> Option<Detected> {
    let Some(h) = c.prefix(HEADER_LEN) else {
        // Signature present but the header cut short: fail closed.
        if le_u32(c.head(), 0x40) == Some(SIGNATURE) {
            let mut d = Detected::new(DiskFormat::Vdi);
            d.complete = false;
            return Some(d);
        }
        return None;
    };
    if le_u32(h, 0x40) != Some(SIGNATURE) {
        return None;
    }
    let mut d = Detected::new(DiskFormat::Vdi);
    d.virtual_size = le_u64(h, 0x170).unwrap_or(0);
    Some(d)
}
