//! Format inspection in the data path, against the real server: images made by
//! `qemu-img` at test time, uploaded with the right and the wrong `disk_format`.
//! Refused data answers Glance's 415 and leaves the image `queued` with nothing
//! in the store; accepted data gets `qemu-img info`'s virtual size.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const QEMU_IMG: &str = "/usr/bin/qemu-img";

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

fn qemu(args: &[&str]) {
    let out = Command::new(QEMU_IMG)
        .args(args)
        .output()
        .expect("run qemu-img");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `qemu-img create -f format [args] dir/name size`, read back.
fn create(dir: &Path, name: &str, format: &str, args: &[&str], size: &str) -> Vec<u8> {
    let path = dir.join(name);
    let path_s = path.to_str().unwrap();
    let mut all = vec!["create", "-q", "-f", format];
    all.extend_from_slice(args);
    all.extend_from_slice(&[path_s, size]);
    qemu(&all);
    std::fs::read(&path).unwrap()
}

/// A qcow2 of `size` whose backing file is a raw file next to it.
fn with_backing_file(dir: &Path, size: &str) -> Vec<u8> {
    let base = dir.join("base.raw");
    std::fs::write(&base, [0u8; 512]).unwrap();
    create(
        dir,
        "backed.qcow2",
        "qcow2",
        &["-b", base.to_str().unwrap(), "-F", "raw"],
        size,
    )
}

/// What `qemu-img info` says the virtual size of `data` in `format` is.
fn qemu_virtual_size(dir: &Path, data: &[u8], format: &str) -> u64 {
    let path: PathBuf = dir.join(format!("probe.{format}"));
    std::fs::write(&path, data).unwrap();
    let out = Command::new(QEMU_IMG)
        .args(["info", "--output=json", "-f", format])
        .arg(&path)
        .output()
        .expect("run qemu-img info");
    assert!(out.status.success());
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    info["virtual-size"].as_u64().unwrap()
}

/// A monolithicSparse VMDK whose descriptor names `/etc/passwd` as its extent.
fn vmdk_naming(dir: &Path, target: &str) -> Vec<u8> {
    let mut data = create(dir, "leak.vmdk", "vmdk", &[], "16M");
    let old = b"\"leak.vmdk\"";
    let new = format!("\"{target}\"");
    let at = data
        .windows(old.len())
        .position(|w| w == old)
        .expect("extent line");
    // The descriptor is NUL-padded text in a fixed area: the longer name takes
    // the place of padding, so nothing after the descriptor moves.
    let grow = new.len() - old.len();
    data.splice(at..at + old.len(), new.bytes());
    let pad = at + data[at..].iter().position(|&b| b == 0).unwrap();
    data.drain(pad..pad + grow);
    data
}

/// An ISO 9660 image of `blocks` 2 KiB blocks whose primary volume descriptor
/// says so (no ISO-making tool is needed).
fn iso(blocks: u32) -> Vec<u8> {
    let mut data = vec![0u8; blocks as usize * 2048];
    let pvd = &mut data[32 * 1024..];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[80..84].copy_from_slice(&blocks.to_le_bytes());
    pvd[84..88].copy_from_slice(&blocks.to_be_bytes());
    pvd[128..130].copy_from_slice(&2048u16.to_le_bytes());
    pvd[130..132].copy_from_slice(&2048u16.to_be_bytes());
    data
}

/// Uploads `data` to a new `disk_format`/bare image: the status and JSON body of
/// the upload, and the image afterwards.
async fn upload(
    s: &glance_testkit::http::Api,
    disk_format: &str,
    data: Vec<u8>,
) -> (u16, Value, Value) {
    let image = s.create(json!({"disk_format": disk_format})).await;
    let id = image["id"].as_str().unwrap();
    let r = s
        .upload(id, data)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, s.image(id).await)
}

fn refusal(detail: &str) -> String {
    format!(
        "The request media type application/octet-stream is not supported by this server.\n<br /><br />\n{detail}"
    )
}

#[tokio::test]
async fn unsafe_or_mismatched_images_are_refused_and_leave_nothing() {
    let Some(_) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data_file = d.join("data.raw");
    let data_file_opt = format!("data_file={}", data_file.to_str().unwrap());
    let qcow2 = create(d, "plain.qcow2", "qcow2", &[], "16M");
    let vmdk = create(d, "plain.vmdk", "vmdk", &[], "16M");
    let mut fake_raw = b"QFI\xfb".to_vec();
    fake_raw.extend((0..8192u32).map(|i| (i * 7 + 3) as u8));
    let safety = "Image failed safety checks";
    let cases: Vec<(&str, Vec<u8>, &str, String)> = vec![
        (
            "qcow2 with a backing file",
            with_backing_file(d, "16M"),
            "qcow2",
            safety.into(),
        ),
        (
            "qcow2 with a data file",
            create(d, "df.qcow2", "qcow2", &["-o", &data_file_opt], "16M"),
            "qcow2",
            safety.into(),
        ),
        (
            "vmdk naming /etc/passwd",
            vmdk_naming(d, "/etc/passwd"),
            "vmdk",
            safety.into(),
        ),
        // `qed` is no disk_format Glance offers: a QED comes claimed as
        // something else, and is refused either way.
        (
            "qed claimed raw",
            create(d, "x.qed", "qed", &[], "16M"),
            "raw",
            safety.into(),
        ),
        (
            "qed claimed qcow2",
            create(d, "y.qed", "qed", &[], "16M"),
            "qcow2",
            "Image disk_format qcow2 does not match stream data qed".into(),
        ),
        (
            "qcow2 with a backing file claimed raw",
            with_backing_file(d, "16M"),
            "raw",
            safety.into(),
        ),
        (
            "raw data starting with qcow2's magic",
            fake_raw,
            "raw",
            safety.into(),
        ),
        (
            "qcow2 claimed vmdk",
            qcow2.clone(),
            "vmdk",
            "Image disk_format vmdk does not match stream data qcow2".into(),
        ),
        (
            "vmdk claimed qcow2",
            vmdk.clone(),
            "qcow2",
            "Image disk_format qcow2 does not match stream data vmdk".into(),
        ),
        (
            "iso claimed qcow2",
            iso(40),
            "qcow2",
            "Image disk_format qcow2 does not match stream data iso".into(),
        ),
        (
            "qcow2 claimed ami",
            qcow2.clone(),
            "ami",
            "Image disk_format ami does not match stream data qcow2".into(),
        ),
        (
            "raw data claimed qcow2",
            vec![5u8; 100_000],
            "qcow2",
            "Image disk_format qcow2 does not match stream data raw".into(),
        ),
    ];
    let s = common::start().await;
    for (what, data, disk_format, detail) in cases {
        let (status, body, image) = upload(&s, disk_format, data).await;
        assert_eq!(status, 415, "{what}: {body}");
        assert_eq!(body["message"], refusal(&detail), "{what}");
        assert_eq!(image["status"], "queued", "{what}");
        assert_eq!(image["size"], Value::Null, "{what}");
        assert_eq!(image["virtual_size"], Value::Null, "{what}");
        assert_eq!(s.stored_files(), Vec::<String>::new(), "{what}");
    }
}

#[tokio::test]
async fn images_that_match_their_format_get_qemus_virtual_size() {
    let Some(_) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("qcow2", create(d, "a.qcow2", "qcow2", &[], "20M")),
        (
            "qcow2",
            create(d, "v2.qcow2", "qcow2", &["-o", "compat=0.10"], "3G"),
        ),
        ("vmdk", create(d, "a.vmdk", "vmdk", &[], "24M")),
        (
            "vmdk",
            create(
                d,
                "so.vmdk",
                "vmdk",
                &["-o", "subformat=streamOptimized"],
                "8M",
            ),
        ),
        (
            "vhd",
            create(d, "a.vhd", "vpc", &["-o", "subformat=dynamic"], "10M"),
        ),
        ("vhdx", create(d, "a.vhdx", "vhdx", &[], "12M")),
        ("vdi", create(d, "a.vdi", "vdi", &[], "14M")),
        ("raw", vec![9u8; 70_144]),
    ];
    let s = common::start().await;
    for (disk_format, data) in cases {
        let qemu_format = if disk_format == "vhd" {
            "vpc"
        } else {
            disk_format
        };
        let expected = qemu_virtual_size(d, &data, qemu_format);
        let (status, body, image) = upload(&s, disk_format, data.clone()).await;
        assert_eq!(status, 204, "{disk_format}: {body}");
        assert_eq!(image["status"], "active");
        assert_eq!(image["size"], data.len());
        assert_eq!(image["virtual_size"], expected, "{disk_format}");
    }
    // An ISO's size is its volume's (qemu-img calls it raw: the file's size).
    let data = iso(40);
    let expected = qemu_virtual_size(d, &data, "raw");
    let (status, _, image) = upload(&s, "iso", data).await;
    assert_eq!(status, 204);
    assert_eq!(image["virtual_size"], expected);
    // A safe qcow2 claimed raw is taken as raw, as Glance does: its byte count.
    let data = create(d, "r.qcow2", "qcow2", &[], "16M");
    let (status, _, image) = upload(&s, "raw", data.clone()).await;
    assert_eq!(status, 204);
    assert_eq!(image["virtual_size"], data.len());
    // Formats Glance cannot inspect take anything that is not a known format,
    // without a virtual size.
    let (status, _, image) = upload(&s, "ami", vec![3u8; 5000]).await;
    assert_eq!(status, 204);
    assert_eq!(image["virtual_size"], Value::Null);
}

#[tokio::test]
async fn only_bare_containers_are_inspected_and_the_match_can_be_relaxed() {
    let Some(_) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let qcow2 = create(d, "a.qcow2", "qcow2", &[], "16M");
    let s = common::start_with(|c| c.image_format.require_image_format_match = false, |b| b).await;
    // A mismatch is let through without a virtual size...
    let (status, _, image) = upload(&s, "vmdk", qcow2.clone()).await;
    assert_eq!(status, 204);
    assert_eq!(image["status"], "active");
    assert_eq!(image["virtual_size"], Value::Null);
    // ...but a failed safety check never is.
    let unsafe_qcow2 = with_backing_file(d, "16M");
    let (status, _, image) = upload(&s, "qcow2", unsafe_qcow2.clone()).await;
    assert_eq!(status, 415);
    assert_eq!(image["status"], "queued");

    // An `ova` container is not a disk image: not inspected, as in Glance.
    let image = s
        .create(json!({"disk_format": "qcow2", "container_format": "ova"}))
        .await;
    let id = image["id"].as_str().unwrap();
    let r = s.upload(id, unsafe_qcow2).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.image(id).await["virtual_size"], Value::Null);
}

#[tokio::test]
async fn a_large_refused_upload_stops_early_and_still_gets_its_415() {
    let Some(_) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut data = with_backing_file(d, "1G");
    // Far more than the head that settles the refusal: the server stops writing
    // there, and the client, still sending, must nonetheless read the answer.
    data.resize(48 << 20, 0xAB);
    let s = common::start().await;
    let (status, body, image) = upload(&s, "qcow2", data).await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["message"], refusal("Image failed safety checks"));
    assert_eq!(image["status"], "queued");
    assert_eq!(s.stored_files(), Vec::<String>::new());
}

/// An import is inspected as it is written to the store: refused data fails the
/// task with the refusal, and the image goes back to `queued` with nothing
/// stored and nothing staged.
#[tokio::test]
async fn an_unsafe_image_fails_its_import() {
    let Some(_) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let unsafe_qcow2 = with_backing_file(d, "16M");
    let s = common::start().await;
    let image = s.create(json!({"disk_format": "qcow2"})).await;
    let id = image["id"].as_str().unwrap();
    let r = s
        .client
        .put(format!("{}/v2/images/{id}/stage", s.url))
        .header("content-type", "application/octet-stream")
        .body(unsafe_qcow2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = s
        .post_json(
            &format!("/v2/images/{id}/import"),
            json!({"method": {"name": "glance-direct"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // No timing is asserted: the cap only ends a hung test.
    let mut image = Value::Null;
    for _ in 0..600 {
        image = s.image(id).await;
        if image.get("os_glance_import_task").is_none() && image["status"] == "queued" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(image["status"], "queued", "{image}");
    assert_eq!(image["virtual_size"], Value::Null);
    assert_eq!(s.stored_files(), Vec::<String>::new());
    let staged: Vec<_> = std::fs::read_dir(s.dir.path().join("staging"))
        .map(|d| d.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    assert!(staged.is_empty(), "{staged:?}");
    let tasks: Value = s
        .get(&format!("/v2/images/{id}/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tasks["tasks"][0]["status"], "failure", "{tasks}");
    assert_eq!(tasks["tasks"][0]["message"], "Image failed safety checks");
}
