//! `image_conversion`: converts staged data to `[image_conversion]
//! output_format` with `qemu-img`, after checking it as Glance does
//! (`glance/async_/flows/plugins/image_conversion.py`):
//!
//! 1. The format inspector reads the whole file: exactly one format (a bootable
//!    ISO's GPT aside), its safety checks passed (GPT failures listed in
//!    `gpt_safety_checks_nonfatal` only warn). GPT counts as raw. An ISO
//!    claimed as `iso` is kept as it is; an ISO claimed as anything else, or
//!    any detected format other than the claimed `disk_format`, is refused.
//! 2. `qemu-img info -f <disk_format>` under limits (see [`super::qemu`]) must
//!    agree on the format and show no backing file, no `data-file`, and for
//!    VMDK a `create-type` in `vmdk_allowed_types`.
//! 3. Raw output longer than `image_size_cap` (its virtual size) is refused
//!    before it is written (ours: a small qcow2 can claim a huge disk, and
//!    the cap holds for what is imported as it does for uploads).
//!    Data already in the output format stays. Otherwise `qemu-img convert`
//!    writes the import's temporary file, which the inspector must find in the
//!    output format before it replaces the staged data; the image's
//!    `disk_format` becomes the output format and its `container_format`
//!    `bare`. Size and checksums follow from the new data when it is written.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use glance_layers::ImageError;
use glance_layers::import::{ImageChanges, ImportPlugin, PluginInput, PluginOutcome};
use glance_layers::inspect::{DiskFormat, FormatPolicy, InspectError, Inspector, Verdict};

use super::qemu::{self, QemuError};
use super::{Scratch, io_failure, refused};
use crate::config::OutputFormat;
use crate::store::FileStore;

pub struct ImageConversion {
    staging: Arc<FileStore>,
    output: OutputFormat,
    policy: FormatPolicy,
    /// `image_size_cap`.
    size_cap: u64,
}

impl ImageConversion {
    pub fn new(
        staging: Arc<FileStore>,
        output: OutputFormat,
        policy: FormatPolicy,
        size_cap: u64,
    ) -> Self {
        ImageConversion {
            staging,
            output,
            policy,
            size_cap,
        }
    }
}

#[async_trait]
impl ImportPlugin for ImageConversion {
    fn name(&self) -> &'static str {
        "image_conversion"
    }

    async fn run(&self, input: &PluginInput<'_>) -> Result<PluginOutcome, ImageError> {
        let image = input.image;
        let src = self.staging.local_path(input.staged)?;
        // Imports only start with a disk_format set.
        let claimed = image.disk_format.as_deref().unwrap_or_default();
        let target = self.output.name();

        let detected = inspected(&inspect_file(&src).await?, &self.policy)?;
        if detected == "iso" {
            if claimed == "iso" {
                tracing::debug!(image = %image.id, "an iso image is not converted");
                return Ok(PluginOutcome::default());
            }
            tracing::warn!(image = %image.id, claimed, "image claimed as another format is an ISO");
            return Err(refused("Image has disallowed configuration"));
        }
        if detected != claimed {
            tracing::warn!(image = %image.id, claimed, detected, "image failed format inspection");
            return Err(refused("Image format mismatch"));
        }

        let info = qemu::info(&src, claimed).await.map_err(qemu_error)?;
        check_info(&info, claimed, &self.policy)?;
        if self.output == OutputFormat::Raw {
            raw_fits(&info, self.size_cap)?;
        }
        if claimed == target {
            tracing::debug!(image = %image.id, "already in the output format; not converted");
            return Ok(PluginOutcome::default());
        }

        let scratch = Scratch::new(&self.staging, input)?;
        qemu::convert(&src, claimed, scratch.path(), target)
            .await
            .map_err(qemu_error)?;
        let produced = inspected(&inspect_file(scratch.path()).await?, &self.policy)?;
        if produced != target {
            // A format hidden inside another would come out as itself.
            tracing::warn!(image = %image.id, produced, target, "image detected as another format after conversion");
            return Err(refused("Converted image in unexpected format"));
        }
        scratch.replace(&src).await?;
        tracing::info!(image = %image.id, from = claimed, to = target, "converted imported image");
        Ok(PluginOutcome {
            changes: ImageChanges {
                disk_format: Some(target.to_string()),
                container_format: Some("bare".into()),
                ..Default::default()
            },
            replaced_data: true,
        })
    }
}

/// Feeds the whole file to the format inspector (it keeps only bounded parts).
async fn inspect_file(path: &Path) -> Result<Verdict, ImageError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?;
        let mut inspector = Inspector::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(inspector.finish());
            }
            inspector.feed(&buf[..n]);
        }
    })
    .await
    .map_err(ImageError::internal)?
    .map_err(|e| io_failure("could not read the staged data", e))
}

/// Glance's `_inspect_path`: the one format detected, safe, named as Glance
/// names it for conversion (GPT is raw).
fn inspected(verdict: &Verdict, policy: &FormatPolicy) -> Result<&'static str, ImageError> {
    let names = verdict.format_names();
    let found = if names.len() == 2 && names.contains(&"iso") && names.contains(&"gpt") {
        // A bootable ISO carries a GPT: it is the ISO.
        verdict.matches.iter().find(|d| d.format == DiskFormat::Iso)
    } else {
        verdict.format().ok()
    };
    let Some(found) = found else {
        tracing::warn!(formats = ?names, "image failed format inspection");
        return Err(refused("Image format detection failed"));
    };
    match found.safety_check() {
        Ok(()) => {}
        Err(InspectError::SafetyCheckFailed(DiskFormat::Gpt, failures))
            if failures.iter().all(|f| {
                policy
                    .gpt_safety_checks_nonfatal
                    .iter()
                    .any(|n| n == f.check)
            }) =>
        {
            tracing::warn!(?failures, "non-fatal GPT safety check failures");
        }
        Err(e) => {
            tracing::warn!(format = %found.format, error = %e, "image failed safety checks");
            return Err(refused("Image has disallowed configuration"));
        }
    }
    Ok(match found.format {
        DiskFormat::Gpt => "raw",
        other => other.name(),
    })
}

/// What Glance demands of `qemu-img info`'s answer before converting.
fn check_info(
    info: &serde_json::Value,
    claimed: &str,
    policy: &FormatPolicy,
) -> Result<(), ImageError> {
    let format = info.get("format").and_then(|f| f.as_str());
    if format != Some(claimed) {
        tracing::warn!(
            claimed,
            reported = format.unwrap_or("unknown"),
            "qemu-img disagrees about the format"
        );
        return Err(refused("Image metadata disagrees about format"));
    }
    if info.get("backing-filename").is_some() {
        return Err(refused("QCOW images with backing files are not allowed"));
    }
    let data = info.pointer("/format-specific/data");
    if data
        .and_then(|d| d.get("data-file"))
        .is_some_and(|f| !f.is_null())
    {
        return Err(refused("QCOW images with data-file set are not allowed"));
    }
    if claimed == "vmdk" {
        let Some(kind) = data
            .and_then(|d| d.get("create-type"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
        else {
            return Err(refused("Unable to determine VMDK create-type"));
        };
        if policy.vmdk_allowed_types.is_empty() {
            return Err(refused(
                "Image is a VMDK, but no VMDK createType is specified",
            ));
        }
        if !policy.vmdk_allowed_types.iter().any(|t| t == kind) {
            tracing::warn!(create_type = kind, allowed = ?policy.vmdk_allowed_types, "refusing a VMDK of this create-type");
            return Err(refused("Invalid VMDK create-type specified"));
        }
    }
    Ok(())
}

/// Ours on top of Glance: raw output is as long as the virtual size, so a
/// small qcow2 claiming a huge disk is refused before it is written out.
fn raw_fits(info: &serde_json::Value, cap: u64) -> Result<(), ImageError> {
    let virtual_size = info
        .get("virtual-size")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if cap > 0 && virtual_size > cap {
        return Err(ImageError::quota_exceeded(
            "image_size_cap",
            "Image exceeds the storage quota: The provided image is too large.",
        ));
    }
    Ok(())
}

fn qemu_error(e: QemuError) -> ImageError {
    match e {
        QemuError::Spawn { .. } => {
            tracing::error!(error = %e, "image conversion cannot run");
            ImageError::unavailable(
                "Import failed: image conversion is not available.",
                Some(Arc::new(e) as glance_layers::ErrorSource),
            )
        }
        QemuError::Failed(message) => refused(message),
        e @ QemuError::Output(_) => ImageError::internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(r: Result<(), ImageError>) -> String {
        match r {
            Err(ImageError::InvalidImageData(m)) => m,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn qemu_img_info_answers_glance_refuses() {
        let p = FormatPolicy::default();
        let plain = json!({"format": "qcow2", "virtual-size": 1048576,
            "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}}});
        assert!(check_info(&plain, "qcow2", &p).is_ok());
        assert_eq!(
            message(check_info(&plain, "raw", &p)),
            "Image metadata disagrees about format"
        );
        let backed = json!({"format": "qcow2", "backing-filename": "/etc/passwd"});
        assert_eq!(
            message(check_info(&backed, "qcow2", &p)),
            "QCOW images with backing files are not allowed"
        );
        let data_file = json!({"format": "qcow2",
            "format-specific": {"data": {"data-file": "/dev/sda"}}});
        assert_eq!(
            message(check_info(&data_file, "qcow2", &p)),
            "QCOW images with data-file set are not allowed"
        );
        let null_data_file = json!({"format": "qcow2",
            "format-specific": {"data": {"data-file": null}}});
        assert!(check_info(&null_data_file, "qcow2", &p).is_ok());
    }

    #[test]
    fn raw_output_longer_than_the_size_cap_is_refused_before_it_is_written() {
        let info = json!({"format": "qcow2", "virtual-size": 2u64 << 30});
        assert!(raw_fits(&info, 2 << 30).is_ok());
        assert!(raw_fits(&info, 0).is_ok());
        assert!(matches!(
            raw_fits(&info, 1 << 30),
            Err(ImageError::QuotaExceeded { ref resource, .. }) if resource == "image_size_cap"
        ));
    }

    #[test]
    fn vmdk_create_types_follow_vmdk_allowed_types() {
        let vmdk = |kind: &str| json!({"format": "vmdk", "format-specific": {"data": {"create-type": kind}}});
        let p = FormatPolicy::default();
        assert!(check_info(&vmdk("monolithicSparse"), "vmdk", &p).is_ok());
        assert!(check_info(&vmdk("streamOptimized"), "vmdk", &p).is_ok());
        assert_eq!(
            message(check_info(&vmdk("monolithicFlat"), "vmdk", &p)),
            "Invalid VMDK create-type specified"
        );
        assert_eq!(
            message(check_info(&json!({"format": "vmdk"}), "vmdk", &p)),
            "Unable to determine VMDK create-type"
        );
        let none = FormatPolicy {
            vmdk_allowed_types: Vec::new(),
            ..FormatPolicy::default()
        };
        assert_eq!(
            message(check_info(&vmdk("monolithicSparse"), "vmdk", &none)),
            "Image is a VMDK, but no VMDK createType is specified"
        );
    }

    #[test]
    fn inspection_names_gpt_raw_and_refuses_what_is_unsafe() {
        let p = FormatPolicy::default();
        let raw = glance_layers::inspect::inspect_bytes(&[7u8; 4096]);
        assert_eq!(inspected(&raw, &p).unwrap(), "raw");
        // A qcow2 header naming a backing file fails its safety check.
        let mut qcow = vec![0u8; 4096];
        qcow[..4].copy_from_slice(b"QFI\xfb");
        qcow[4..8].copy_from_slice(&3u32.to_be_bytes());
        qcow[8..16].copy_from_slice(&512u64.to_be_bytes()); // backing_file_offset
        qcow[16..20].copy_from_slice(&4u32.to_be_bytes()); // backing_file_size
        qcow[20..24].copy_from_slice(&16u32.to_be_bytes()); // cluster_bits
        qcow[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        qcow[100..104].copy_from_slice(&104u32.to_be_bytes()); // header_length
        let verdict = glance_layers::inspect::inspect_bytes(&qcow);
        assert_eq!(verdict.format_names(), ["qcow2"]);
        match inspected(&verdict, &p) {
            Err(ImageError::InvalidImageData(m)) => {
                assert_eq!(m, "Image has disallowed configuration")
            }
            other => panic!("{other:?}"),
        }
    }
}
