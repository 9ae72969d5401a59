//! QEMU's qcow2 and QED.
//!
//! qcow2 (header at 0, big-endian): magic `QFI\xfb`, version (u32 at 4), backing
//! file offset (u64 at 8), virtual size (u64 at 24), incompatible features (u64 at
//! 0x48, version 3). A backing file or an external data file makes `qemu-img` open
//! another file named by the image: both are refused, as is any incompatible
//! feature bit from 4 upwards and any version other than 2 or 3.
//!
//! QED (magic `QED\0`) is recognised only to be refused.

use super::region::{be_u32, be_u64};
use super::{Captured, Detected, DiskFormat};

const HEADER_LEN: usize = 512;
const QCOW2_MAGIC: &[u8] = b"QFI\xfb";
const QED_MAGIC: &[u8] = b"QED\x00";
const BACKING_FILE_OFFSET: usize = 0x08;
const SIZE: usize = 24;
const INCOMPATIBLE_FEATURES: usize = 0x48;
/// Incompatible feature bit 2: the guest data lives in an external file.
const DATA_FILE_BIT: u64 = 1 << 2;
/// Bits 0..=3 (dirty, corrupt, external data file, compression type) are known.
const KNOWN_FEATURES: u64 = (1 << 4) - 1;

/// The incomplete match for a stream that starts with `magic` but is shorter than
/// the header; `None` when it does not start with it.
fn truncated(c: &Captured, format: DiskFormat, magic: &[u8]) -> Option<Detected> {
    if !c.head().starts_with(magic) {
        return None;
    }
    let mut d = Detected::new(format);
    d.complete = false;
    Some(d)
}

pub(crate) fn probe_qcow2(c: &Captured) -> Option<Detected> {
    let Some(h) = c.prefix(HEADER_LEN) else {
        return truncated(c, DiskFormat::Qcow2, QCOW2_MAGIC);
    };
    if !h.starts_with(QCOW2_MAGIC) {
        return None;
    }
    let mut d = Detected::new(DiskFormat::Qcow2);
    // The header is complete, so these reads are in range.
    let version = be_u32(h, 4).unwrap_or(0);
    d.virtual_size = be_u64(h, SIZE).unwrap_or(0);
    let features = be_u64(h, INCOMPATIBLE_FEATURES).unwrap_or(u64::MAX);
    if be_u64(h, BACKING_FILE_OFFSET) != Some(0) {
        d.fail("backing_file", "Image has a backing file");
    }
    if features & DATA_FILE_BIT != 0 {
        d.fail("data_file", "Image has data_file set");
    }
    match version {
        2 => {}
        3 if features & !KNOWN_FEATURES == 0 => {}
        3 => d.fail("unknown_features", "Unknown QCOW2 features found"),
        _ => d.fail("unknown_features", "Unsupported qcow2 version"),
    }
    Some(d)
}

pub(crate) fn probe_qed(c: &Captured) -> Option<Detected> {
    let Some(h) = c.prefix(HEADER_LEN) else {
        return truncated(c, DiskFormat::Qed, QED_MAGIC);
    };
    if !h.starts_with(QED_MAGIC) {
        return None;
    }
    let mut d = Detected::new(DiskFormat::Qed);
    // oslo gives QED no virtual size of its own: the byte count stands in.
    d.virtual_size = c.total;
    d.fail("banned", "This file format is not allowed");
    Some(d)
}
