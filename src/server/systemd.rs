//! systemd's readiness protocol (`sd_notify(3)`) for `Type=notify` units: a
//! datagram such as `READY=1` to the unix socket named by `$NOTIFY_SOCKET`.
//!
//! A dozen lines of std rather than a crate: the protocol is one `sendto`, and
//! the only subtlety is that a name starting with `@` is in Linux's abstract
//! namespace (a leading NUL byte), which std's `SocketAddr` builds for us.

use std::io;
use std::os::unix::net::UnixDatagram;

/// The variable systemd sets for services that should report their state.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells systemd the service is ready (the listener is bound).
pub fn notify_ready() {
    report("READY=1");
}

/// Tells systemd the service is shutting down (draining its connections).
pub fn notify_stopping() {
    report("STOPPING=1");
}

/// Sends `state` and logs a failure: a service manager that cannot be told is
/// no reason to stop serving (systemd then times the unit out itself).
fn report(state: &str) {
    match notify(std::env::var_os(NOTIFY_SOCKET).as_deref(), state) {
        Ok(true) => tracing::debug!(state, "told the service manager"),
        Ok(false) => {}
        Err(e) => tracing::warn!(state, error = %e, "could not notify the service manager"),
    }
}

/// Sends `state` to the socket at `socket`; `Ok(false)` when there is none (not
/// run by systemd, or not as `Type=notify`).
pub fn notify(socket: Option<&std::ffi::OsStr>, state: &str) -> io::Result<bool> {
    let Some(socket) = socket.filter(|s| !s.is_empty()) else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(socket);
    match bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        #[cfg(not(target_os = "linux"))]
        Some(_) => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "abstract socket names exist only on Linux",
            ));
        }
        None => {
            sock.send_to(state.as_bytes(), socket)?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_the_socket_named_by_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        assert!(notify(Some(path.as_os_str()), "READY=1").unwrap());
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("glance-api-test-{}", uuid::Uuid::new_v4().simple());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let socket = format!("@{name}");
        assert!(notify(Some(socket.as_ref()), "STOPPING=1").unwrap());
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn without_a_socket_nothing_is_sent() {
        assert!(!notify(None, "READY=1").unwrap());
        assert!(!notify(Some("".as_ref()), "READY=1").unwrap());
    }
}
