//! Capturing byte regions of a stream by offset.
//!
//! A [`Region`] wants `len` bytes starting at `offset`; it is shown every chunk with
//! the chunk's position in the stream and keeps only the bytes that fall inside it.
//! A [`Tail`] keeps the last `len` bytes of the stream. Neither ever holds more than
//! its length, whatever the chunk sizes, and all position arithmetic is checked: a
//! region whose end does not fit in a `u64` simply never completes.

/// `len` bytes of the stream starting at `offset`.
#[derive(Debug, Clone)]
pub(crate) struct Region {
    offset: u64,
    len: usize,
    data: Vec<u8>,
}

impl Region {
    pub(crate) fn new(offset: u64, len: usize) -> Self {
        Region {
            offset,
            len,
            data: Vec::new(),
        }
    }

    /// Offers the chunk that starts at stream position `chunk_start`.
    ///
    /// Bytes are appended only when they continue the region exactly, so a chunk
    /// that starts after a gap in the region (a region planned too late) leaves it
    /// incomplete rather than filled with the wrong bytes.
    pub(crate) fn feed(&mut self, chunk_start: u64, chunk: &[u8]) {
        if self.complete() {
            return;
        }
        let Some(want) = u64::try_from(self.data.len())
            .ok()
            .and_then(|have| self.offset.checked_add(have))
        else {
            return;
        };
        let Some(skip) = want.checked_sub(chunk_start) else {
            return;
        };
        let Ok(skip) = usize::try_from(skip) else {
            return;
        };
        let Some(rest) = chunk.get(skip..) else {
            return;
        };
        let take = rest.len().min(self.len - self.data.len());
        self.data.extend_from_slice(&rest[..take]);
    }

    /// Copies the region out of an already captured region that covers it, if any.
    pub(crate) fn prefill_from(&mut self, source: &Region) {
        if !self.data.is_empty() {
            return;
        }
        let Some(start) = self.offset.checked_sub(source.offset) else {
            return;
        };
        let Ok(start) = usize::try_from(start) else {
            return;
        };
        if start >= source.data.len() {
            return;
        }
        let end = start.saturating_add(self.len).min(source.data.len());
        self.data.extend_from_slice(&source.data[start..end]);
    }

    /// True once all `len` bytes are in.
    pub(crate) fn complete(&self) -> bool {
        self.data.len() == self.len
    }

    /// The bytes captured so far (all of them once [`Region::complete`]).
    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }

    /// The region's start in the stream.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes held.
    pub(crate) fn held(&self) -> usize {
        self.data.len()
    }
}

/// The last `len` bytes of the stream.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    len: usize,
    data: Vec<u8>,
}

impl Tail {
    pub(crate) fn new(len: usize) -> Self {
        Tail {
            len,
            data: Vec::new(),
        }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        let keep = &chunk[chunk.len().saturating_sub(self.len)..];
        self.data.extend_from_slice(keep);
        // Let the buffer grow to twice its length before trimming, so that many
        // small chunks do not each move the whole buffer.
        if self.data.len() >= self.len.saturating_mul(2).max(1) {
            let excess = self.data.len() - self.len;
            self.data.drain(..excess);
        }
    }

    /// Bytes held: up to twice `len` between trims.
    pub(crate) fn held(&self) -> usize {
        self.data.len()
    }

    /// The last `len` bytes, or `None` when the stream was shorter than that.
    pub(crate) fn get(&self) -> Option<&[u8]> {
        let start = self.data.len().checked_sub(self.len)?;
        Some(&self.data[start..])
    }
}

/// Big- and little-endian readers over a captured slice; `None` when out of range.
pub(crate) fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
pub(crate) fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
pub(crate) fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}
pub(crate) fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
pub(crate) fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}
