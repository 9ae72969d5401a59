//! Images made by `qemu-img` at test time, fed in chunks of several sizes, plus
//! hand-made hostile inputs.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

const QEMU_IMG: &str = "/usr/bin/qemu-img";
const CHUNKS: [usize; 4] = [7, 4096, 1 << 20, usize::MAX];

/// `qemu-img`, or `None` (after one visible line) when it is missing outside CI.
fn qemu_img() -> Option<&'static str> {
    if Path::new(QEMU_IMG).exists() {
        return Some(QEMU_IMG);
    }
    let ci = std::env::var("CI").unwrap_or_default().to_ascii_lowercase();
    if !ci.is_empty() && !["0", "false", "no", "off"].contains(&ci.as_str()) {
        panic!("{QEMU_IMG} is required when CI is set");
    }
    println!("SKIPPED: {QEMU_IMG} not found");
    None
}

fn create(qemu: &str, dir: &Path, name: &str, format: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new(qemu)
        .args(["create", "-q", "-f", format])
        .args(args)
        .arg(&path)
        .arg("64M")
        .output()
        .expect("run qemu-img");
    assert!(
        out.status.success(),
        "qemu-img: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn qemu_virtual_size(qemu: &str, path: &Path) -> u64 {
    let out = Command::new(qemu)
        .args(["info", "--output=json"])
        .arg(path)
        .output()
        .expect("run qemu-img info");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    info["virtual-size"].as_u64().unwrap()
}

fn inspect_in(data: &[u8], chunk: usize) -> Verdict {
    let mut inspector = Inspector::new();
    for piece in data.chunks(chunk.clamp(1, data.len().max(1))) {
        inspector.feed(piece);
    }
    assert!(inspector.captured.head.data().len() <= HEAD_LEN);
    assert!(inspector.bytes_held() <= MAX_CAPTURE);
    inspector.finish()
}

/// Inspects `data` in every chunk size and checks they all agree.
fn inspect(data: &[u8]) -> Verdict {
    let first = inspect_in(data, CHUNKS[0]);
    for chunk in &CHUNKS[1..] {
        assert_eq!(inspect_in(data, *chunk), first, "chunk size {chunk}");
    }
    settled_refusals_are_final(data);
    first
}

/// `data` followed by zeros, or by garbage, past the head: whatever
/// `settled_refusal` says mid-stream is what the whole stream's verdict says, for
/// every declared format and both values of `require_image_format_match`.
fn settled_refusals_are_final(data: &[u8]) {
    let policies = [
        FormatPolicy::default(),
        FormatPolicy {
            require_image_format_match: false,
            ..FormatPolicy::default()
        },
    ];
    let declared: Vec<&str> = DiskFormat::ALL
        .iter()
        .map(|f| f.name())
        .chain(["ami", "ploop"])
        .collect();
    let tails = [vec![0u8; HEAD_LEN + 4096], garbage(HEAD_LEN + 4096, 7)];
    for tail in tails {
        let mut stream = data.to_vec();
        stream.extend_from_slice(&tail);
        let mut inspector = Inspector::new();
        let mut settled = Vec::new();
        for piece in stream.chunks(65536) {
            inspector.feed(piece);
            for policy in &policies {
                for format in &declared {
                    if let Some(refusal) = inspector.settled_refusal(format, policy) {
                        settled.push((policy.clone(), *format, refusal));
                    }
                }
            }
        }
        let verdict = inspector.finish();
        for (policy, format, refusal) in settled {
            assert_eq!(
                check_format(&verdict, format, &policy),
                Err(refusal),
                "declared {format}, {policy:?}"
            );
        }
    }
}

fn single(verdict: &Verdict) -> &Detected {
    verdict.format().expect("one format")
}

fn decide(verdict: &Verdict, disk_format: &str) -> Result<Accepted, String> {
    check_format(verdict, disk_format, &FormatPolicy::default())
}

/// Every prefix of the first KiB and a few larger cuts: no panic, and a match is
/// either complete or refused for its declared format.
fn truncations_do_not_panic(data: &[u8], format: DiskFormat) {
    let cuts = (0..1024.min(data.len()))
        .chain([4096, 65536, 200_000, 300_000, 1 << 20])
        .filter(|&n| n < data.len());
    for n in cuts {
        let verdict = inspect_in(&data[..n], 4096);
        if let Ok(d) = verdict.format()
            && d.format == format
            && !d.complete
        {
            assert!(decide(&verdict, format.name()).is_err());
            assert!(decide(&verdict, "raw").is_err());
        }
    }
}

/// Every byte of the first 600 and of `more` set to 0xFF in turn: no panic, and a
/// changed verdict for a safe image is still a verdict.
fn mutations_do_not_panic(data: &[u8], more: std::ops::Range<usize>) {
    let mut image = data.to_vec();
    for at in (0..600).chain(more).filter(|&at| at < data.len()) {
        let old = image[at];
        image[at] = 0xFF;
        let verdict = inspect_in(&image, 1 << 20);
        let _ = decide(&verdict, "raw");
        image[at] = old;
    }
}

#[test]
fn inspect_qcow2_safe_has_qemu_virtual_size() {
    let Some(qemu) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = create(qemu, dir.path(), "a.qcow2", "qcow2", &[]);
    let data = std::fs::read(&path).unwrap();
    let verdict = inspect(&data);
    let d = single(&verdict);
    assert_eq!(d.format, DiskFormat::Qcow2);
    assert_eq!(d.virtual_size, qemu_virtual_size(qemu, &path));
    assert_eq!(d.safety_check(), Ok(()));
    let ok = decide(&verdict, "qcow2").unwrap();
    assert_eq!(ok.virtual_size, Some(64 << 20));
    // Declared raw: accepted with a warning and the byte count, as Glance does.
    let raw = decide(&verdict, "raw").unwrap();
    assert_eq!(raw.virtual_size, Some(data.len() as u64));
    assert!(raw.warning.is_some());
    assert_eq!(
        decide(&verdict, "vmdk").unwrap_err(),
        "Image disk_format vmdk does not match stream data qcow2"
    );
    truncations_do_not_panic(&data, DiskFormat::Qcow2);
    mutations_do_not_panic(&data, 0..0);
}

#[test]
fn inspect_qcow2_with_backing_file_is_unsafe() {
    let Some(qemu) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let base = create(qemu, dir.path(), "base.qcow2", "qcow2", &[]);
    let base = base.to_str().unwrap();
    let path = create(
        qemu,
        dir.path(),
        "top.qcow2",
        "qcow2",
        &["-b", base, "-F", "qcow2"],
    );
    let verdict = inspect(&std::fs::read(&path).unwrap());
    let d = single(&verdict);
    assert_eq!(d.format, DiskFormat::Qcow2);
    assert_eq!(
        d.failures,
        vec![SafetyFailure::new(
            "backing_file",
            "Image has a backing file"
        )]
    );
    assert_eq!(
        d.safety_check().unwrap_err().to_string(),
        "Safety checks failed: backing_file"
    );
    for declared in ["qcow2", "raw"] {
        assert_eq!(
            decide(&verdict, declared).unwrap_err(),
            "Image failed safety checks"
        );
    }
}

#[test]
fn inspect_qcow2_with_data_file_is_unsafe() {
    let Some(qemu) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data_file = dir.path().join("guest.raw");
    let option = format!("data_file={}", data_file.display());
    let path = create(qemu, dir.path(), "ext.qcow2", "qcow2", &["-o", &option]);
    let verdict = inspect(&std::fs::read(&path).unwrap());
    let d = single(&verdict);
    assert_eq!(d.format, DiskFormat::Qcow2);
    assert!(
        d.failures
            .iter()
            .any(|f| f.check == "data_file" && f.message == "Image has data_file set")
    );
    assert_eq!(
        decide(&verdict, "qcow2").unwrap_err(),
        "Image failed safety checks"
    );
}

fn vmdk(subformat: &str) -> Option<(Verdict, u64, Vec<u8>)> {
    let qemu = qemu_img()?;
    let dir = tempfile::tempdir().unwrap();
    let option = format!("subformat={subformat}");
    let path = create(qemu, dir.path(), "disk.vmdk", "vmdk", &["-o", &option]);
    let data = std::fs::read(&path).unwrap();
    Some((inspect(&data), qemu_virtual_size(qemu, &path), data))
}

#[test]
fn inspect_vmdk_sparse_and_stream_optimized_are_safe() {
    for (subformat, kind) in [
        ("monolithicSparse", "monolithicsparse"),
        ("streamOptimized", "streamoptimized"),
    ] {
        let Some((verdict, size, data)) = vmdk(subformat) else {
            return;
        };
        let d = single(&verdict);
        assert_eq!(d.format, DiskFormat::Vmdk, "{subformat}");
        assert_eq!(d.vmdk_create_type.as_deref(), Some(kind));
        assert_eq!(d.safety_check(), Ok(()), "{subformat}");
        assert_eq!(d.virtual_size, size);
        assert_eq!(decide(&verdict, "vmdk").unwrap().virtual_size, Some(size));
        let only_sparse = FormatPolicy {
            vmdk_allowed_types: vec!["monolithicSparse".into()],
            ..FormatPolicy::default()
        };
        // Uploads do not look at vmdk_allowed_types (Glance's conversion does).
        assert!(check_format(&verdict, "vmdk", &only_sparse).is_ok());
        let allowed = check_vmdk_type(d, &only_sparse);
        assert_eq!(
            allowed.is_ok(),
            subformat == "monolithicSparse",
            "{allowed:?}"
        );
        let none = FormatPolicy {
            vmdk_allowed_types: Vec::new(),
            ..FormatPolicy::default()
        };
        assert_eq!(
            check_vmdk_type(d, &none),
            Err("Image is a VMDK, but no VMDK createType is specified".into())
        );
        truncations_do_not_panic(&data, DiskFormat::Vmdk);
        mutations_do_not_panic(&data, 600..1200);
    }
}

#[test]
fn inspect_vmdk_monolithic_flat_descriptor_is_unsafe() {
    let Some((verdict, _, _)) = vmdk("monolithicFlat") else {
        return;
    };
    let d = single(&verdict);
    assert_eq!(d.format, DiskFormat::Vmdk);
    assert_eq!(d.vmdk_create_type.as_deref(), Some("monolithicflat"));
    assert_eq!(
        d.failures,
        vec![SafetyFailure::new("descriptor", "Unsupported subformat")]
    );
    assert_eq!(
        decide(&verdict, "vmdk").unwrap_err(),
        "Image failed safety checks"
    );
}

#[test]
fn inspect_vmdk_descriptor_naming_a_path_is_unsafe() {
    let text = "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicSparse\"\n\
                RW 131072 SPARSE \"/etc/shadow\"\nddb.adapterType = \"ide\"\n";
    let verdict = inspect(text.as_bytes());
    let d = single(&verdict);
    assert_eq!(d.format, DiskFormat::Vmdk);
    assert_eq!(d.failures[0].message, "Invalid extent filenames found");
    let no_extent = "createType=\"streamOptimized\"\nversion=1\n";
    let d = inspect(no_extent.as_bytes()).matches.remove(0);
    assert_eq!(d.failures[0].message, "No extents found");
    let junk = "createType=\"streamOptimized\"\nhello world\n";
    let d = inspect(junk.as_bytes()).matches.remove(0);
    assert_eq!(d.failures[0].message, "Invalid VMDK descriptor data");
}

#[test]
fn inspect_vhd_vhdx_vdi_have_qemu_virtual_size() {
    let Some(qemu) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (qemu_format, format) in [
        ("vpc", DiskFormat::Vhd),
        ("vhdx", DiskFormat::Vhdx),
        ("vdi", DiskFormat::Vdi),
    ] {
        let path = create(qemu, dir.path(), qemu_format, qemu_format, &[]);
        let data = std::fs::read(&path).unwrap();
        let verdict = inspect(&data);
        let d = single(&verdict);
        assert_eq!(d.format, format);
        assert!(d.complete, "{format}");
        assert_eq!(d.virtual_size, qemu_virtual_size(qemu, &path), "{format}");
        assert_eq!(d.safety_check(), Ok(()));
        assert!(decide(&verdict, format.name()).is_ok());
        truncations_do_not_panic(&data, format);
        // The VHDX region table and metadata table are read from where they point.
        mutations_do_not_panic(&data, 192 * 1024..192 * 1024 + 80);
        mutations_do_not_panic(&data, (3 << 20)..(3 << 20) + 80);
    }
}

#[test]
fn inspect_qed_is_always_refused() {
    let Some(qemu) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = create(qemu, dir.path(), "a.qed", "qed", &[]);
    let verdict = inspect(&std::fs::read(&path).unwrap());
    let d = single(&verdict);
    assert_eq!(d.format, DiskFormat::Qed);
    assert_eq!(
        d.failures,
        vec![SafetyFailure::new(
            "banned",
            "This file format is not allowed"
        )]
    );
    assert_eq!(
        decide(&verdict, "qed").unwrap_err(),
        "Image failed safety checks"
    );
    assert_eq!(
        decide(&verdict, "raw").unwrap_err(),
        "Image failed safety checks"
    );
}

#[test]
fn inspect_raw_zeros() {
    let data = vec![0u8; 3 << 20];
    let verdict = inspect(&data);
    let d = single(&verdict);
    assert_eq!(d.format, DiskFormat::Raw);
    assert_eq!(d.virtual_size, 3 << 20);
    assert_eq!(decide(&verdict, "raw").unwrap().virtual_size, Some(3 << 20));
    // Uninspectable formats take raw content without a virtual size.
    assert_eq!(decide(&verdict, "ami").unwrap(), Accepted::default());
    assert_eq!(
        decide(&verdict, "qcow2").unwrap_err(),
        "Image disk_format qcow2 does not match stream data raw"
    );
    let lenient = FormatPolicy {
        require_image_format_match: false,
        ..FormatPolicy::default()
    };
    assert_eq!(
        check_format(&verdict, "qcow2", &lenient)
            .unwrap()
            .virtual_size,
        None
    );
    assert!(inspect(&[]).format().unwrap().format == DiskFormat::Raw);
}

/// A deterministic byte generator for garbage.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u8
        })
        .collect()
}

#[test]
fn inspect_garbage_after_qcow2_magic_is_qcow2_and_unsafe() {
    let mut data = garbage(100_000, 1);
    data[..4].copy_from_slice(b"QFI\xfb");
    let verdict = inspect(&data);
    let d = single(&verdict);
    // As oslo: the magic makes it qcow2; the garbage fails its checks.
    assert_eq!(d.format, DiskFormat::Qcow2);
    assert!(
        d.failures
            .iter()
            .any(|f| f.message == "Unsupported qcow2 version")
    );
    assert_eq!(
        decide(&verdict, "raw").unwrap_err(),
        "Image failed safety checks"
    );
    // Cut short of the header, it is an incomplete qcow2, never raw.
    let short = inspect(&data[..100]);
    assert_eq!(single(&short).format, DiskFormat::Qcow2);
    assert!(!single(&short).complete);
    assert_eq!(
        decide(&short, "raw").unwrap_err(),
        "Incomplete file cannot be safety checked"
    );
}

#[test]
fn inspect_hostile_headers_do_not_panic() {
    let magics: [&[u8]; 8] = [
        b"QFI\xfb",
        b"QED\0",
        b"conectix",
        b"vhdxfile",
        b"KDMV",
        b"LUKS\xba\xbe",
        b"createType=\"streamOptimized\"",
        b"",
    ];
    for (i, magic) in magics.iter().enumerate() {
        for len in [0, 3, 64, 511, 512, 600, 40_000, 300_000] {
            let mut data = garbage(len.max(magic.len()), i as u64 + 7);
            data[..magic.len()].copy_from_slice(magic);
            let verdict = inspect_in(&data, 4096);
            let _ = verdict.format();
            let _ = decide(&verdict, "raw");
        }
    }
    // A VHDX whose region table points past the end of u64.
    let mut data = vec![0u8; 300_000];
    data[..8].copy_from_slice(b"vhdxfile");
    let t = 192 * 1024;
    data[t..t + 4].copy_from_slice(&0x6967_6572u32.to_le_bytes());
    data[t + 8..t + 12].copy_from_slice(&1u32.to_le_bytes());
    data[t + 16..t + 32].copy_from_slice(&microsoft_metadata_guid());
    data[t + 32..t + 40].copy_from_slice(&u64::MAX.to_le_bytes());
    let verdict = inspect(&data);
    assert!(!single(&verdict).complete);
}

fn microsoft_metadata_guid() -> [u8; 16] {
    [
        0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88,
        0x6e,
    ]
}

/// A 34 KiB ISO: an optional header in the system area and a primary descriptor.
fn iso(system_area: &[u8]) -> Vec<u8> {
    let mut data = vec![0u8; 40 * 1024];
    data[..system_area.len()].copy_from_slice(system_area);
    let d = 32 * 1024;
    data[d] = 1;
    data[d + 1..d + 6].copy_from_slice(b"CD001");
    data[d + 80..d + 84].copy_from_slice(&20u32.to_le_bytes());
    data[d + 128..d + 130].copy_from_slice(&2048u16.to_le_bytes());
    data
}

fn protective_mbr() -> Vec<u8> {
    let mut mbr = vec![0u8; 512];
    mbr[446 + 2] = 0x02; // start CHS 0/2/0
    mbr[446 + 4] = 0xEE;
    mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    mbr
}

#[test]
fn inspect_iso_and_what_hides_in_its_system_area() {
    let verdict = inspect(&iso(&[]));
    let d = single(&verdict);
    assert_eq!((d.format, d.virtual_size), (DiskFormat::Iso, 20 * 2048));
    assert_eq!(
        decide(&verdict, "iso").unwrap().virtual_size,
        Some(20 * 2048)
    );

    // A qcow2 header in the system area: two formats, refused.
    let mut qcow2 = vec![0u8; 512];
    qcow2[..4].copy_from_slice(b"QFI\xfb");
    qcow2[4..8].copy_from_slice(&3u32.to_be_bytes());
    let verdict = inspect(&iso(&qcow2));
    assert_eq!(verdict.format_names(), ["qcow2", "iso"]);
    assert_eq!(
        verdict.format().unwrap_err().to_string(),
        "Multiple formats detected: qcow2,iso"
    );
    assert_eq!(
        decide(&verdict, "iso").unwrap_err(),
        "Multiple formats detected: qcow2,iso"
    );

    // A GPT in front of an ISO (bootable as a disk): Glance takes it as an ISO.
    let verdict = inspect(&iso(&protective_mbr()));
    assert_eq!(verdict.format_names(), ["iso", "gpt"]);
    assert_eq!(
        decide(&verdict, "iso").unwrap().virtual_size,
        Some(20 * 2048)
    );
}

#[test]
fn inspect_gpt_mbr_checks() {
    let mut data = protective_mbr();
    data.resize(1 << 20, 0);
    let verdict = inspect(&data);
    let d = single(&verdict);
    assert_eq!(d.format, DiskFormat::Gpt);
    assert_eq!(d.safety_check(), Ok(()));
    assert_eq!(d.virtual_size, 1 << 20);

    data[446] = 0x7F;
    let verdict = inspect(&data);
    assert_eq!(
        single(&verdict).failures[0].message,
        "MBR PTE 0 has invalid boot flag"
    );
    assert_eq!(
        decide(&verdict, "gpt").unwrap_err(),
        "Image failed safety checks"
    );
    let nonfatal = FormatPolicy {
        gpt_safety_checks_nonfatal: vec!["mbr".into()],
        ..FormatPolicy::default()
    };
    assert!(
        check_format(&verdict, "gpt", &nonfatal)
            .unwrap()
            .warning
            .is_some()
    );

    data[446] = 0;
    data[446 + 16 + 4] = 0x83; // a second partition beside the protective one
    let d = inspect(&data).matches.remove(0);
    assert_eq!(
        d.failures[0].message,
        "GPT MBR defines invalid extra partitions"
    );

    let mut empty = vec![0u8; 512];
    empty[510] = 0x55;
    empty[511] = 0xAA;
    let d = inspect(&empty).matches.remove(0);
    assert_eq!(d.failures[0].message, "GPT MBR has no partitions defined");
    // A FAT boot sector is not a GPT.
    empty[0x10] = 2;
    empty[0x15] = 0xF8;
    assert_eq!(single(&inspect(&empty)).format, DiskFormat::Raw);
}

#[test]
fn inspect_luks_version() {
    let mut data = vec![0u8; 4096];
    data[..6].copy_from_slice(b"LUKS\xba\xbe");
    data[6..8].copy_from_slice(&1u16.to_be_bytes());
    data[104..108].copy_from_slice(&4u32.to_be_bytes());
    let verdict = inspect(&data);
    let d = single(&verdict);
    assert_eq!(
        (d.format, d.virtual_size),
        (DiskFormat::Luks, 4096 - 4 * 512)
    );
    assert_eq!(d.safety_check(), Ok(()));
    data[6..8].copy_from_slice(&2u16.to_be_bytes());
    let d = inspect(&data).matches.remove(0);
    assert_eq!(d.failures[0].message, "LUKS version 2 is not supported");
}

#[test]
fn inspect_memory_is_bounded() {
    let mut inspector = Inspector::new();
    let chunk = vec![0xA5u8; 1 << 20];
    for _ in 0..8 {
        inspector.feed(&chunk);
    }
    assert!(inspector.bytes_held() <= MAX_CAPTURE);
    assert_eq!(inspector.bytes_seen(), 8 << 20);
}

/// qemu-img writes the grain directory in place; build the footer variant from its
/// output: header says "at the end", then footer marker, footer, end-of-stream.
#[test]
fn inspect_vmdk_stream_optimized_footer() {
    let Some((_, size, mut data)) = vmdk("streamOptimized") else {
        return;
    };
    let mut footer = data[..512].to_vec();
    data[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut marker = vec![0u8; 512];
    marker[0..8].copy_from_slice(&1u64.to_le_bytes());
    marker[12..16].copy_from_slice(&3u32.to_le_bytes());
    let with_footer = |footer: &[u8], marker: &[u8]| {
        let mut image = data.clone();
        image.extend_from_slice(marker);
        image.extend_from_slice(footer);
        image.extend_from_slice(&[0u8; 512]);
        image
    };
    let verdict = inspect(&with_footer(&footer, &marker));
    let d = single(&verdict);
    assert_eq!(d.safety_check(), Ok(()));
    assert_eq!(d.virtual_size, size);

    let mut bad_marker = marker.clone();
    bad_marker[12] = 2;
    let d = inspect(&with_footer(&footer, &bad_marker))
        .matches
        .remove(0);
    assert_eq!(
        d.failures,
        vec![SafetyFailure::new("footer", "Footer marker is invalid")]
    );

    footer[36] ^= 1; // a different descriptor size
    let d = inspect(&with_footer(&footer, &marker)).matches.remove(0);
    assert_eq!(
        d.failures[0].message,
        "Footer specifies a different descriptor than header"
    );
    footer[36] ^= 1;
    footer[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
    let d = inspect(&with_footer(&footer, &marker)).matches.remove(0);
    assert_eq!(d.failures[0].message, "Footer indicates another footer");
    // Without its end, the stream's tail is not a footer.
    let d = inspect(&data).matches.remove(0);
    assert_eq!(d.failures[0].check, "footer");
}
