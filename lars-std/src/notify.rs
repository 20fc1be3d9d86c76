//! systemd's readiness protocol (`sd_notify`): a daemon started by a `Type=notify` unit tells
//! the service manager when it serves and when it stops.
//!
//! The manager passes a Unix datagram socket in `NOTIFY_SOCKET`: a path, or an abstract name
//! written with a leading `@`. Each notification is one datagram of `KEY=VALUE` lines. Without
//! the variable (not started by systemd) nothing is sent; a failure to send is returned for the
//! caller to log, never fatal, because the daemon serves either way.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (such as `READY=1\nSTATUS=...`) to `$NOTIFY_SOCKET`. `Ok(false)` when there
/// is no such socket to tell.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(name) = std::env::var_os("NOTIFY_SOCKET") else { return Ok(false) };
    send(&name, state)?;
    Ok(true)
}

/// Sends `state` to the socket `name` (a path, or `@` and an abstract name).
fn send(name: &std::ffi::OsStr, state: &str) -> io::Result<()> {
    let addr = socket_addr(name)?;
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// The daemon serves: its sockets accept connections. `status` is shown by `systemctl status`.
pub fn ready(status: &str) -> io::Result<bool> {
    notify(&format!("READY=1\nMAINPID={}\nSTATUS={status}", std::process::id()))
}

/// The daemon is stopping.
pub fn stopping() -> io::Result<bool> {
    notify("STOPPING=1\nSTATUS=stopping")
}

/// The daemon is reading its configuration again; [`ready`] follows once it has.
pub fn reloading() -> io::Result<bool> {
    notify("RELOADING=1\nSTATUS=reloading the configuration")
}

fn socket_addr(name: &std::ffi::OsStr) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    match name.as_bytes().split_first() {
        Some((b'@', abstract_name)) => SocketAddr::from_abstract_name(abstract_name),
        Some((b'/', _)) => SocketAddr::from_pathname(name),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "NOTIFY_SOCKET is neither a path nor an @name")),
    }
}

#[cfg(test)]
mod tests {
    use std::os::linux::net::SocketAddrExt;

    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = std::env::temp_dir().join(format!("lars-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let by_path = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = by_path.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("lars-notify-test-{}", std::process::id());
        let by_name =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = by_name.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");

        assert!(send(std::ffi::OsStr::new("relative"), "READY=1").is_err(), "neither a path nor an @name");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
