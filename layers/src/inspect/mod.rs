//! Streaming, fail-closed disk image format inspection.
//!
//! Glance refuses disk images that would make `qemu-img` on a compute or volume host
//! read files it should not (CVE-2024-32498: qcow2 backing and data files, VMDK
//! extents naming other files) and records their `virtual_size`. It does so with
//! oslo.utils' format inspectors, all run in parallel over the upload stream. This
//! module follows the same rules, format by format:
//!
//! | format | captured | safety checks |
//! |---|---|---|
//! | qcow2 | header, 512 B | `backing_file`, `data_file`, `unknown_features` |
//! | qed | header, 512 B | `banned`: always refused |
//! | vmdk | sparse header + descriptor (≤ 1 MiB) + last 1536 B | `descriptor`, `footer` (streamOptimized) |
//! | vhd | footer copy at 0, 512 B | none |
//! | vhdx | region table, metadata table, virtual-disk-size item | none |
//! | vdi | header, 512 B | none |
//! | iso | system area 32 KiB + volume descriptor 2 KiB | none |
//! | gpt | MBR, 512 B | `mbr` |
//! | luks | header, 592 B | `version` (LUKSv1 only) |
//! | raw | nothing | none; `virtual_size` = the byte count |
//!
//! # Use
//!
//! ```
//! use glance_layers::inspect::{DiskFormat, Inspector};
//!
//! let mut inspector = Inspector::new();
//! for chunk in [&b"hello "[..], &b"world"[..]] {
//!     inspector.feed(chunk);
//! }
//! let verdict = inspector.finish();
//! let found = verdict.format().unwrap();
//! assert_eq!(found.format, DiskFormat::Raw);
//! assert_eq!(found.virtual_size, 11);
//! assert!(found.safety_check().is_ok());
//! ```
//!
//! [`check_format`] then decides, as Glance does after an upload, whether the
//! detected format is acceptable for the image's declared `disk_format`.
//!
//! # Bounds
//!
//! The inspector never holds the image: it keeps the first [`HEAD_LEN`] bytes, the
//! last [`TAIL_LEN`] bytes and, for VHDX only, two regions a header points at, each
//! capped; [`MAX_CAPTURE`] bounds the total. Offsets read from headers are checked;
//! hostile input yields a verdict (often a failed safety check), never a panic.
//!
//! # Where this is stricter than oslo.utils
//!
//! oslo drops an inspector that hits a parse error and then calls the image `raw`.
//! Here, a stream whose magic number matched a format but whose structure is broken
//! or cut short still matches that format, with an incomplete or failed verdict, so
//! it cannot slip through as `raw`. Chunk boundaries never change a verdict.

mod decide;
mod gpt;
mod iso;
mod luks;
mod microsoft;
mod qcow;
mod region;
mod stream;
mod vdi;
mod vmdk;

#[cfg(test)]
mod tests;

use std::fmt;

pub use decide::{Accepted, FormatPolicy, check_format, check_vmdk_type};
use region::{Region, Tail};
pub use stream::{FormatCheck, inspecting};

/// How many leading bytes are kept: the VMDK descriptor (at 512, up to 1 MiB − 1)
/// is the largest region at a fixed place; every other fixed region lies inside it.
pub const HEAD_LEN: usize = vmdk::DESC_OFFSET + vmdk::DESC_MAX_SIZE;
/// How many trailing bytes are kept: the streamOptimized VMDK footer and markers.
pub const TAIL_LEN: usize = vmdk::FOOTER_LEN;
/// An upper bound on everything the inspector holds at once (the tail's buffer
/// may grow to twice its length between trims).
pub const MAX_CAPTURE: usize = HEAD_LEN + 2 * TAIL_LEN + microsoft::VHDX_CAPTURE;

/// A disk format the inspector recognises (Glance's `disk_format` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskFormat {
    Raw,
    Qcow2,
    Vhd,
    Vhdx,
    Vmdk,
    Vdi,
    Qed,
    Iso,
    Gpt,
    Luks,
}

impl DiskFormat {
    /// Every inspectable format, in oslo.utils' order (`ALL_FORMATS`).
    pub const ALL: [DiskFormat; 10] = [
        DiskFormat::Raw,
        DiskFormat::Qcow2,
        DiskFormat::Vhd,
        DiskFormat::Vhdx,
        DiskFormat::Vmdk,
        DiskFormat::Vdi,
        DiskFormat::Qed,
        DiskFormat::Iso,
        DiskFormat::Gpt,
        DiskFormat::Luks,
    ];

    /// The `disk_format` name.
    pub fn name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vhd => "vhd",
            DiskFormat::Vhdx => "vhdx",
            DiskFormat::Vmdk => "vmdk",
            DiskFormat::Vdi => "vdi",
            DiskFormat::Qed => "qed",
            DiskFormat::Iso => "iso",
            DiskFormat::Gpt => "gpt",
            DiskFormat::Luks => "luks",
        }
    }

    /// The format with that `disk_format` name, if it is inspectable.
    pub fn from_name(name: &str) -> Option<DiskFormat> {
        DiskFormat::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One failed safety check: oslo's check name and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyFailure {
    pub check: &'static str,
    pub message: String,
}

impl SafetyFailure {
    pub(crate) fn new(check: &'static str, message: impl Into<String>) -> Self {
        SafetyFailure {
            check,
            message: message.into(),
        }
    }
}

/// Why a verdict cannot be used (oslo's `ImageFormatError` / `SafetyCheckFailed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// More than one format matched, e.g. a qcow2 header in an ISO's system area.
    #[error("Multiple formats detected: {}", names(.0))]
    MultipleFormats(Vec<DiskFormat>),
    /// The format matched but the data it needs was cut short or unreadable.
    #[error("Incomplete file cannot be safety checked")]
    Incomplete(DiskFormat),
    /// One or more safety checks failed.
    #[error("Safety checks failed: {}", .1.iter().map(|f| f.check).collect::<Vec<_>>().join(","))]
    SafetyCheckFailed(DiskFormat, Vec<SafetyFailure>),
}

fn names(formats: &[DiskFormat]) -> String {
    formats
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// What one format's inspector concluded about the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub format: DiskFormat,
    /// False when the stream ended (or a header pointed) before everything this
    /// format needs was captured; such a match fails [`Detected::safety_check`].
    pub complete: bool,
    /// The guest-visible size in bytes; 0 when unknown.
    pub virtual_size: u64,
    /// The failed safety checks, in oslo's order; empty when safe.
    pub failures: Vec<SafetyFailure>,
    /// For VMDK, the descriptor's `createType` in lower case.
    pub vmdk_create_type: Option<String>,
}

impl Detected {
    pub(crate) fn new(format: DiskFormat) -> Self {
        Detected {
            format,
            complete: true,
            virtual_size: 0,
            failures: Vec::new(),
            vmdk_create_type: None,
        }
    }

    pub(crate) fn fail(&mut self, check: &'static str, message: impl Into<String>) {
        self.failures.push(SafetyFailure::new(check, message));
    }

    /// oslo's `safety_check()`: fails when incomplete or when any check failed.
    pub fn safety_check(&self) -> Result<(), InspectError> {
        if !self.complete {
            return Err(InspectError::Incomplete(self.format));
        }
        if !self.failures.is_empty() {
            return Err(InspectError::SafetyCheckFailed(
                self.format,
                self.failures.clone(),
            ));
        }
        Ok(())
    }
}

/// The outcome of inspecting a whole stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Every non-raw format that matched, in [`DiskFormat::ALL`] order; a single
    /// `raw` entry when none did.
    pub matches: Vec<Detected>,
    /// The number of bytes fed.
    pub actual_size: u64,
}

impl Verdict {
    /// The one detected format (oslo's `InspectWrapper.format`).
    pub fn format(&self) -> Result<&Detected, InspectError> {
        match self.matches.as_slice() {
            [one] => Ok(one),
            many => Err(InspectError::MultipleFormats(
                many.iter().map(|d| d.format).collect(),
            )),
        }
    }

    /// The detected format names, e.g. `["iso", "gpt"]`.
    pub fn format_names(&self) -> Vec<&'static str> {
        self.matches.iter().map(|d| d.format.name()).collect()
    }
}

/// What has been captured from the stream so far; read by the format probes.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) head: Region,
    pub(crate) tail: Tail,
    pub(crate) total: u64,
    pub(crate) vhdx: microsoft::VhdxCapture,
    /// False while the stream may go on: checks of the stream's end (the VMDK
    /// footer) then count as not done yet, not as failed.
    pub(crate) at_end: bool,
}

impl Captured {
    /// The captured head: the first `min(HEAD_LEN, total)` bytes.
    pub(crate) fn head(&self) -> &[u8] {
        self.head.data()
    }

    /// The first `len` bytes, or `None` when the stream was shorter.
    pub(crate) fn prefix(&self, len: usize) -> Option<&[u8]> {
        self.head.data().get(..len)
    }
}

/// A streaming inspector: [`feed`](Inspector::feed) it the stream in order, in
/// chunks of any size, then [`finish`](Inspector::finish) it.
#[derive(Debug)]
pub struct Inspector {
    captured: Captured,
}

impl Default for Inspector {
    fn default() -> Self {
        Inspector::new()
    }
}

impl Inspector {
    pub fn new() -> Self {
        Inspector {
            captured: Captured {
                head: Region::new(0, HEAD_LEN),
                tail: Tail::new(TAIL_LEN),
                total: 0,
                vhdx: microsoft::VhdxCapture::default(),
                at_end: false,
            },
        }
    }

    /// Presents the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        let c = &mut self.captured;
        let start = c.total;
        c.total = c
            .total
            .saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        c.head.feed(start, chunk);
        c.tail.feed(chunk);
        c.vhdx.feed(&c.head, start, chunk);
    }

    /// The number of bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.captured.total
    }

    /// The number of bytes of the stream held now; never more than [`MAX_CAPTURE`].
    pub fn bytes_held(&self) -> usize {
        let c = &self.captured;
        c.head.held() + c.tail.held() + c.vhdx.held()
    }

    /// Ends the stream and runs every format's inspector over what was captured.
    pub fn finish(mut self) -> Verdict {
        self.captured.at_end = true;
        self.verdict()
    }

    /// The refusal that no further data can change, if the data seen so far
    /// already settles one; `None` means "not yet known", not "accepted".
    ///
    /// Every format is recognised by bytes within the first [`HEAD_LEN`], so once
    /// those are in, the set of matching formats is fixed; and the safety checks
    /// of a match that is complete read only fixed regions. A match still waiting
    /// for data (a VHDX table further on, a VMDK footer) defers the decision to
    /// the end of the stream.
    pub fn settled_refusal(&self, disk_format: &str, policy: &FormatPolicy) -> Option<String> {
        if self.captured.total < HEAD_LEN as u64 {
            return None;
        }
        let verdict = self.verdict();
        if verdict.matches.iter().any(|d| !d.complete) {
            return None;
        }
        check_format(&verdict, disk_format, policy).err()
    }

    fn verdict(&self) -> Verdict {
        let c = &self.captured;
        let probes: [fn(&Captured) -> Option<Detected>; 9] = [
            qcow::probe_qcow2,
            microsoft::probe_vhd,
            microsoft::probe_vhdx,
            vmdk::probe,
            vdi::probe,
            qcow::probe_qed,
            iso::probe,
            gpt::probe,
            luks::probe,
        ];
        let mut matches: Vec<Detected> = probes.iter().filter_map(|p| p(c)).collect();
        if matches.is_empty() {
            let mut raw = Detected::new(DiskFormat::Raw);
            raw.virtual_size = c.total;
            matches.push(raw);
        }
        Verdict {
            matches,
            actual_size: c.total,
        }
    }
}

/// Inspects a whole in-memory image (a convenience over [`Inspector`]).
pub fn inspect_bytes(data: &[u8]) -> Verdict {
    let mut inspector = Inspector::new();
    inspector.feed(data);
    inspector.finish()
}
