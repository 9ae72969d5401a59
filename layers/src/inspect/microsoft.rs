//! Microsoft's VHD and VHDX.
//!
//! VHD: a dynamic VHD starts with a copy of its footer, cookie `conectix`, current
//! size u64 BE at 40. VHDX: file identifier `vhdxfile` at 0; the region table at
//! 192 KiB (signature `regi`, entry count < 2048, 32-byte entries of GUID, offset,
//! length) locates the metadata region; its table (signature `metadata`, entry count
//! < 2048) locates the virtual-disk-size item, a u64 LE. The VHDX regions are planned
//! while the stream passes, since their offsets come from the file. Neither format
//! has a safety check; an unreadable VHDX is an incomplete match.

use super::region::{Region, be_u64, le_u16, le_u32, le_u64};
use super::{Captured, Detected, DiskFormat};

const VHD_HEADER_LEN: usize = 512;
const VHD_MAGIC: &[u8] = b"conectix";
const VHDX_MAGIC: &[u8] = b"vhdxfile";
const REGION_TABLE_OFFSET: usize = 192 * 1024;
const REGION_TABLE_LEN: usize = 64 * 1024;
const REGION_SIGNATURE: u32 = 0x6967_6572; // "regi"
const MAX_ENTRIES: usize = 2048;
/// The metadata table is captured up to qemu's maximum of 2048 entries.
const METADATA_TABLE_LEN: usize = 32 * MAX_ENTRIES;
/// The virtual disk size item is a u64.
const VDS_LEN: usize = 8;
/// Everything the VHDX inspector captures beyond the head.
pub(crate) const VHDX_CAPTURE: usize = METADATA_TABLE_LEN + VDS_LEN;
/// GUID 8B7CA206-4790-4B9A-B8FE-575F050F886E, in its on-disk byte order.
const METADATA_REGION: [u8; 16] = [
    0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e,
];
/// GUID 2FA54224-CD1B-4876-B211-5DBED83BF4B8, in its on-disk byte order.
const VIRTUAL_DISK_SIZE: [u8; 16] = [
    0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8,
];

pub(crate) fn probe_vhd(c: &Captured) -> Option<Detected> {
    if !c.head().starts_with(VHD_MAGIC) {
        return None;
    }
    let mut d = Detected::new(DiskFormat::Vhd);
    match c.prefix(VHD_HEADER_LEN) {
        Some(h) => d.virtual_size = be_u64(h, 40).unwrap_or(0),
        None => d.complete = false,
    }
    Some(d)
}

/// The VHDX regions found while streaming, and why they could not be, if so.
#[derive(Debug, Default)]
pub(crate) struct VhdxCapture {
    metadata: Option<Region>,
    vds: Option<Region>,
    /// The structure was unreadable; no further capture is planned.
    broken: bool,
}

impl VhdxCapture {
    /// Bytes held.
    pub(crate) fn held(&self) -> usize {
        self.metadata.as_ref().map_or(0, Region::held) + self.vds.as_ref().map_or(0, Region::held)
    }

    /// Called with every chunk after the head has been offered it.
    pub(crate) fn feed(&mut self, head: &Region, start: u64, chunk: &[u8]) {
        if self.broken || !head.data().starts_with(VHDX_MAGIC) {
            return;
        }
        if let Some(r) = &mut self.metadata {
            r.feed(start, chunk);
        }
        if let Some(r) = &mut self.vds {
            r.feed(start, chunk);
        }
        if self.metadata.is_none() {
            let Some(table) = head
                .data()
                .get(REGION_TABLE_OFFSET..REGION_TABLE_OFFSET + REGION_TABLE_LEN)
            else {
                return;
            };
            match find_metadata_region(table) {
                Some(offset) => {
                    let mut r = Region::new(offset, METADATA_TABLE_LEN);
                    r.prefill_from(head);
                    r.feed(start, chunk);
                    self.metadata = Some(r);
                }
                None => {
                    self.broken = true;
                    return;
                }
            }
        }
        if self.vds.is_none() {
            let Some(meta) = self.metadata.as_ref().filter(|m| m.complete()) else {
                return;
            };
            match find_vds(meta.data()).and_then(|at| meta.offset().checked_add(at)) {
                Some(offset) => {
                    let mut r = Region::new(offset, VDS_LEN);
                    r.prefill_from(head);
                    r.prefill_from(meta);
                    r.feed(start, chunk);
                    self.vds = Some(r);
                }
                None => self.broken = true,
            }
        }
    }

    fn virtual_size(&self) -> Option<u64> {
        let vds = self.vds.as_ref().filter(|r| r.complete())?;
        le_u64(vds.data(), 0)
    }
}

/// The metadata region's file offset, from the region table.
fn find_metadata_region(table: &[u8]) -> Option<u64> {
    if le_u32(table, 0)? != REGION_SIGNATURE {
        return None;
    }
    let count = usize::try_from(le_u32(table, 8)?).ok()?;
    if count >= MAX_ENTRIES {
        return None;
    }
    (0..count).find_map(|i| {
        let entry = table.get(16 + i * 32..16 + i * 32 + 32)?;
        (entry[..16] == METADATA_REGION)
            .then(|| le_u64(entry, 16))
            .flatten()
    })
}

/// The virtual-disk-size item's offset within the metadata region.
fn find_vds(meta: &[u8]) -> Option<u64> {
    if meta.get(..8)? != b"metadata" {
        return None;
    }
    let count = usize::from(le_u16(meta, 10)?);
    if count >= MAX_ENTRIES {
        return None;
    }
    (0..count).find_map(|i| {
        let entry = meta.get(32 + i * 32..32 + i * 32 + 32)?;
        if entry[..16] != VIRTUAL_DISK_SIZE {
            return None;
        }
        let length = le_u32(entry, 20)?;
        (usize::try_from(length).ok()? >= VDS_LEN).then(|| le_u32(entry, 16).map(u64::from))?
    })
}

pub(crate) fn probe_vhdx(c: &Captured) -> Option<Detected> {
    if !c.head().starts_with(VHDX_MAGIC) {
        return None;
    }
    let mut d = Detected::new(DiskFormat::Vhdx);
    match c.vhdx.virtual_size() {
        Some(size) => d.virtual_size = size,
        None => d.complete = false,
    }
    Some(d)
}
