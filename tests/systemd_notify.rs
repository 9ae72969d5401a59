//! `serve` under systemd (`Type=notify`): the real binary says `READY=1` on
//! `$NOTIFY_SOCKET` once it listens, and `STOPPING=1` when SIGTERM stops it.
#![cfg(unix)]

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

fn next_state(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a state before the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn serve_reports_ready_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_glance-api"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--bind", "127.0.0.1:0", "serve"])
        .env("NOTIFY_SOCKET", &path)
        .env_remove("GLANCE_CONFIG")
        .env_remove("GLANCE__DATABASE__CONNECTION")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = next_state(&socket);
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let stopping = next_state(&socket);
    let status = child.wait().unwrap();
    assert_eq!(ready, "READY=1");
    assert_eq!(stopping, "STOPPING=1");
    assert!(status.success(), "{status}");
}
