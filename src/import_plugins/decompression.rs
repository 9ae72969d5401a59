//! `image_decompression`: staged data that is a gzip stream, or a zip archive
//! of exactly one member, is replaced by what it holds
//! (`glance/async_/flows/plugins/image_decompression.py`). The kind is told by
//! the magic number, in Glance's order: zip (`PK\3\4` at 0), LHA (`-lh` at 2),
//! gzip (`\x1f\x8b\x08` at 0). An image whose `container_format` is
//! `compressed` is meant to stay compressed and is left alone.
//!
//! Ours on top: the data is streamed through the decoder to the import's
//! temporary file and never held whole, and what comes out may not pass
//! `image_size_cap` (a small archive can hold a huge file). LHA is not built
//! (Glance needs the optional `lhafile` module for it): LHA data fails the
//! import with Glance's message for that case.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use glance_layers::ImageError;
use glance_layers::import::{ImportPlugin, PluginInput, PluginOutcome};

use super::{Scratch, io_failure, refused};
use crate::store::FileStore;

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// At offset 2.
const LHA_MAGIC: &[u8] = b"-lh";
const GZIP_MAGIC: &[u8] = b"\x1f\x8b\x08";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packed {
    Zip,
    Lha,
    Gzip,
}

/// What the first bytes say the data is packed with, if anything.
fn packed_by(head: &[u8]) -> Option<Packed> {
    if head.starts_with(ZIP_MAGIC) {
        Some(Packed::Zip)
    } else if head.get(2..).is_some_and(|h| h.starts_with(LHA_MAGIC)) {
        Some(Packed::Lha)
    } else if head.starts_with(GZIP_MAGIC) {
        Some(Packed::Gzip)
    } else {
        None
    }
}

pub struct ImageDecompression {
    staging: Arc<FileStore>,
    size_cap: u64,
}

impl ImageDecompression {
    pub fn new(staging: Arc<FileStore>, size_cap: u64) -> Self {
        ImageDecompression { staging, size_cap }
    }
}

#[async_trait]
impl ImportPlugin for ImageDecompression {
    fn name(&self) -> &'static str {
        "image_decompression"
    }

    async fn run(&self, input: &PluginInput<'_>) -> Result<PluginOutcome, ImageError> {
        if input.image.container_format.as_deref() == Some("compressed") {
            return Ok(PluginOutcome::default());
        }
        let src = self.staging.local_path(input.staged)?;
        let scratch = Scratch::new(&self.staging, input)?;
        let (from, to, cap) = (src.clone(), scratch.path().to_path_buf(), self.size_cap);
        let unpacked = tokio::task::spawn_blocking(move || unpack(&from, &to, cap))
            .await
            .map_err(ImageError::internal)??;
        let Some((kind, size)) = unpacked else {
            return Ok(PluginOutcome::default());
        };
        scratch.replace(&src).await?;
        tracing::info!(image = %input.image.id, ?kind, size, "decompressed imported image");
        Ok(PluginOutcome {
            replaced_data: true,
            ..Default::default()
        })
    }
}

/// Writes what `src` holds to `dest`: the kind and the size written, or `None`
/// when `src` is not packed.
fn unpack(src: &Path, dest: &Path, cap: u64) -> Result<Option<(Packed, u64)>, ImageError> {
    let read_failed = |e| io_failure("could not read the staged data", e);
    let mut file = std::fs::File::open(src).map_err(read_failed)?;
    let mut head = Vec::with_capacity(5);
    (&mut file)
        .take(5)
        .read_to_end(&mut head)
        .map_err(read_failed)?;
    let Some(kind) = packed_by(&head) else {
        return Ok(None);
    };
    let file = std::fs::File::open(src).map_err(read_failed)?;
    let size = match kind {
        Packed::Lha => return Err(refused("No lhafile available.")),
        Packed::Gzip => {
            // Several members are one stream, as Python's gzip reads them.
            let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
            copy_capped(&mut decoder, dest, cap)?
        }
        Packed::Zip => {
            let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
                .map_err(|e| refused(format!("Error decompressing image: {e}")))?;
            if archive.len() != 1 {
                return Err(refused("Archive contains more than one file."));
            }
            let mut member = archive
                .by_index(0)
                .map_err(|e| refused(format!("Error decompressing image: {e}")))?;
            if !member.is_file() {
                return Err(refused("The archive's one member is not a file."));
            }
            copy_capped(&mut member, dest, cap)?
        }
    };
    Ok(Some((kind, size)))
}

/// Streams `from` into a new file at `dest`, refusing output past `cap` bytes
/// (0: no cap). Read errors are the packed data's; write errors the disk's.
fn copy_capped(from: &mut dyn Read, dest: &Path, cap: u64) -> Result<u64, ImageError> {
    let write_failed = |e| io_failure("could not write the decompressed data", e);
    let mut out = std::fs::File::create(dest).map_err(write_failed)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(refused(format!("Error decompressing image: {e}"))),
        };
        total += n as u64;
        if cap > 0 && total > cap {
            return Err(ImageError::quota_exceeded(
                "image_size_cap",
                "Image exceeds the storage quota: The provided image is too large.",
            ));
        }
        out.write_all(&buf[..n]).map_err(write_failed)?;
    }
    out.sync_all().map_err(write_failed)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in members {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    type Unpacked = Result<Option<(Packed, u64)>, ImageError>;

    /// Unpacks `packed` from a staged file: the outcome and what was written.
    fn run(packed: &[u8], cap: u64) -> (Unpacked, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("staged");
        std::fs::write(&src, packed).unwrap();
        let dest = dir.path().join(".scratch.tmp");
        let r = unpack(&src, &dest, cap);
        (r, std::fs::read(&dest).unwrap_or_default())
    }

    #[test]
    fn gzip_and_one_member_zip_come_out_whole() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (r, out) = run(&gzip(&data), 0);
        assert_eq!(r.unwrap(), Some((Packed::Gzip, data.len() as u64)));
        assert_eq!(out, data);
        // Two gzip members read as one stream.
        let mut two = gzip(&data[..1000]);
        two.extend(gzip(&data[1000..]));
        let (r, out) = run(&two, 0);
        assert!(r.unwrap().is_some());
        assert_eq!(out, data);
        let (r, out) = run(&zip_of(&[("disk.img", &data)]), 0);
        assert_eq!(r.unwrap(), Some((Packed::Zip, data.len() as u64)));
        assert_eq!(out, data);
    }

    #[test]
    fn what_glance_refuses_and_what_it_leaves() {
        let refusal = |r: Unpacked| match r {
            Err(ImageError::InvalidImageData(m)) => m,
            other => panic!("{other:?}"),
        };
        let (r, _) = run(&zip_of(&[("a", b"1"), ("b", b"2")]), 0);
        assert_eq!(refusal(r), "Archive contains more than one file.");
        let (r, _) = run(b"\0\0-lh5-rest", 0);
        assert_eq!(refusal(r), "No lhafile available.");
        let mut cut = gzip(&[9u8; 100_000]);
        cut.truncate(cut.len() / 2);
        let (r, _) = run(&cut, 0);
        assert!(refusal(r).starts_with("Error decompressing image"));
        // Not packed: nothing written, nothing refused.
        let (r, out) = run(b"QFI\xfb plain data", 0);
        assert_eq!(r.unwrap(), None);
        assert!(out.is_empty());
    }

    #[test]
    fn output_stops_at_the_size_cap() {
        let (r, _) = run(&gzip(&vec![0u8; 3 << 20]), 2 << 20);
        assert!(
            matches!(r, Err(ImageError::QuotaExceeded { ref resource, .. }) if resource == "image_size_cap"),
            "{r:?}"
        );
    }
}
