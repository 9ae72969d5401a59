//! Detected format versus declared `disk_format`, as Glance decides after an upload
//! of a `bare` container (`glance/location.py`, `ImageProxy.set_data`).
//!
//! 1. Exactly `{iso, gpt}` matched → iso (bootable ISOs carry a GPT). Any other
//!    multiple match → "Multiple formats detected: …".
//! 2. detected == `disk_format` → that format's virtual size. Detected `raw` and a
//!    `disk_format` that is not inspectable (ami, ari, aki, ploop…) → accepted
//!    without a virtual size. `disk_format == raw` with other content → accepted
//!    with a warning, virtual size = the byte count. Otherwise "Image disk_format %s
//!    does not match stream data %s".
//! 3. The safety checks: an incomplete match → "Incomplete file cannot be safety
//!    checked"; failed checks → "Image failed safety checks", except a GPT whose
//!    failed checks are all listed in `gpt_safety_checks_nonfatal`.
//!
//! Format errors (1, 2 and incompleteness) refuse the image only when
//! `require_image_format_match` is set (the default); otherwise the image is
//! accepted without a virtual size, and, as in Glance, a format mismatch then skips
//! the safety checks. `vmdk_allowed_types` is not part of this decision: Glance
//! applies it only before converting ([`check_vmdk_type`]).

use super::{Detected, DiskFormat, InspectError, Verdict};

/// Glance's `[image_format]` options that bear on the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatPolicy {
    /// Refuse images whose content does not match `disk_format` (default true).
    pub require_image_format_match: bool,
    /// GPT safety checks (by name, e.g. `mbr`) that only warn (default empty).
    pub gpt_safety_checks_nonfatal: Vec<String>,
    /// Accepted VMDK `createType`s (default monolithicSparse, streamOptimized).
    pub vmdk_allowed_types: Vec<String>,
}

impl Default for FormatPolicy {
    fn default() -> Self {
        FormatPolicy {
            require_image_format_match: true,
            gpt_safety_checks_nonfatal: Vec::new(),
            vmdk_allowed_types: vec!["streamOptimized".into(), "monolithicSparse".into()],
        }
    }
}

/// An accepted upload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Accepted {
    /// The `virtual_size` to record; `None` leaves it unset.
    pub virtual_size: Option<u64>,
    /// What Glance would log as a warning, if anything.
    pub warning: Option<String>,
}

/// Decides a verdict against the declared `disk_format`; `Err` carries the message
/// the API returns (Glance's `InvalidImageData`).
pub fn check_format(
    verdict: &Verdict,
    disk_format: &str,
    policy: &FormatPolicy,
) -> Result<Accepted, String> {
    let format_error = |message: String| {
        if policy.require_image_format_match {
            Err(message)
        } else {
            Ok(Accepted {
                virtual_size: None,
                warning: Some(format!(
                    "Image format {disk_format} did not match; unable to calculate virtual size"
                )),
            })
        }
    };

    let formats: Vec<DiskFormat> = verdict.matches.iter().map(|d| d.format).collect();
    let chosen = if formats.len() == 2
        && formats.contains(&DiskFormat::Iso)
        && formats.contains(&DiskFormat::Gpt)
    {
        verdict.matches.iter().find(|d| d.format == DiskFormat::Iso)
    } else {
        match verdict.format() {
            Ok(d) => Some(d),
            Err(e) => return format_error(e.to_string()),
        }
    };
    let Some(detected) = chosen else {
        return format_error("Content does not match any allowed format".into());
    };
    let name = detected.format.name();

    let mut accepted = Accepted::default();
    if name == disk_format {
        accepted.virtual_size = Some(detected.virtual_size);
    } else if detected.format == DiskFormat::Raw && DiskFormat::from_name(disk_format).is_none() {
        // Not an inspectable type (ami, aki, ari, ploop…): let it through.
    } else if disk_format == "raw" {
        accepted.warning = Some(format!(
            "Image claims 'raw' disk_format but is actually '{name}'"
        ));
        accepted.virtual_size = Some(verdict.actual_size);
    } else {
        return format_error(format!(
            "Image disk_format {disk_format} does not match stream data {name}"
        ));
    }

    match detected.safety_check() {
        Ok(()) => {}
        Err(e @ InspectError::Incomplete(_)) => return format_error(e.to_string()),
        Err(InspectError::SafetyCheckFailed(format, failures)) => {
            let fatal = failures.iter().any(|f| {
                !policy
                    .gpt_safety_checks_nonfatal
                    .iter()
                    .any(|n| n == f.check)
            });
            if format != DiskFormat::Gpt || fatal {
                return Err("Image failed safety checks".into());
            }
            accepted.warning = Some(format!(
                "Non-fatal {}",
                InspectError::SafetyCheckFailed(format, failures)
            ));
        }
        Err(e) => return format_error(e.to_string()),
    }

    accepted.virtual_size = accepted.virtual_size.filter(|&size| size != 0);
    Ok(accepted)
}

/// `vmdk_allowed_types`, which Glance applies only before converting an image
/// (the `image_conversion` import plugin), not on upload: a VMDK whose
/// `createType` is not listed is refused. Other formats pass.
pub fn check_vmdk_type(detected: &Detected, policy: &FormatPolicy) -> Result<(), String> {
    if detected.format != DiskFormat::Vmdk {
        return Ok(());
    }
    if policy.vmdk_allowed_types.is_empty() {
        return Err("Image is a VMDK, but no VMDK createType is specified".into());
    }
    let kind = detected.vmdk_create_type.as_deref().unwrap_or("");
    if policy
        .vmdk_allowed_types
        .iter()
        .any(|t| t.eq_ignore_ascii_case(kind))
    {
        Ok(())
    } else {
        Err("Invalid VMDK create-type specified".into())
    }
}
