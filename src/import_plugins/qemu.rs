//! Running `qemu-img` on staged data, as Glance's `image_conversion` does.
//!
//! `qemu-img info` parses untrusted headers, so it runs under `prlimit` with
//! Glance's limits (`glance/async_/utils.py`, `QEMU_IMG_PROC_LIMITS`, set after
//! bug 1449062, where crafted images made it eat memory and CPU): 1 GiB of
//! address space and 2 s of CPU. `qemu-img convert` runs without limits, as in
//! Glance: it legitimately takes long on big images, and only runs once `info`
//! and the format inspector passed the file.
//!
//! Both are killed if the import is dropped (the server shuts down).

use std::path::Path;
use std::process::Stdio;

/// Address space for `qemu-img info`, bytes.
const INFO_ADDRESS_SPACE: u64 = 1 << 30;
/// CPU time for `qemu-img info`, seconds.
const INFO_CPU_SECONDS: u64 = 2;

/// Why `qemu-img` gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The tool is missing or could not start (an operator's problem).
    #[error("{tool} could not be run: {source}")]
    Spawn {
        tool: &'static str,
        source: std::io::Error,
    },
    /// `qemu-img` failed on the data: its own words, as Glance reports them.
    #[error("{0}")]
    Failed(String),
    /// `qemu-img info` printed something that is not its JSON.
    #[error("qemu-img info printed no JSON: {0}")]
    Output(#[from] serde_json::Error),
}

/// `qemu-img info -f <format> --output=json <path>` under the limits.
pub async fn info(path: &Path, format: &str) -> Result<serde_json::Value, QemuError> {
    let mut cmd = tokio::process::Command::new("prlimit");
    cmd.arg(format!("--as={INFO_ADDRESS_SPACE}"))
        .arg(format!("--cpu={INFO_CPU_SECONDS}"))
        .arg("--")
        .args(["qemu-img", "info", "-f", format, "--output=json"])
        .arg(path);
    let stdout = run(cmd, "prlimit").await?;
    Ok(serde_json::from_slice(&stdout)?)
}

/// `qemu-img convert -f <from> -O <to> <src> <dest>`.
pub async fn convert(src: &Path, from: &str, dest: &Path, to: &str) -> Result<(), QemuError> {
    let mut cmd = tokio::process::Command::new("qemu-img");
    cmd.args(["convert", "-f", from, "-O", to])
        .arg(src)
        .arg(dest);
    run(cmd, "qemu-img").await.map(drop)
}

/// Runs `cmd`; its stdout when it succeeded without a word on stderr (Glance
/// treats anything on stderr as a failure).
async fn run(mut cmd: tokio::process::Command, tool: &'static str) -> Result<Vec<u8>, QemuError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .map_err(|source| QemuError::Spawn { tool, source })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !stderr.is_empty() {
        return Err(QemuError::Failed(stderr));
    }
    if !out.status.success() {
        // Killed by a limit (SIGXCPU, SIGKILL) says nothing on stderr.
        return Err(QemuError::Failed(format!(
            "qemu-img ended with {}",
            out.status
        )));
    }
    Ok(out.stdout)
}
