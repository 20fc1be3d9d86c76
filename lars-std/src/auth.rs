//! Access control on the std side: nonces from the kernel, the secret file, and the gate each
//! lars-dns and lars-reporter worker runs every connection's frames through.
//!
//! The decisions are `lars_core::auth`'s (the handshake, the proofs, which frames a connection
//! may send) and `lars_core::access`'s (which sources may connect, checked at accept by the
//! reactor). This module only feeds them: it reads the secret, draws nonces with `getrandom`,
//! keeps one [`Responder`] per connection, counts, and logs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use lars_core::auth::{AuthError, Policy, Responder, Secret};
use lars_core::wire::native::{self, NONCE_LEN, Role};
use lars_core::wire::{Decode, Frame, MsgId};

use crate::reactor::{ConnId, Control, Sender};

/// Fresh random bytes for a handshake, from the kernel's CSPRNG (getrandom(2), which blocks
/// until the kernel's pool is initialised). A failure is never papered over with weaker bytes:
/// the handshake is refused instead.
pub fn nonce() -> std::io::Result<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    let mut filled = 0;
    while filled < NONCE_LEN {
        match rustix::rand::getrandom(&mut nonce[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(nonce)
}

/// Reads a secret from `path`: a regular file readable by its owner only (no group or other
/// permission bits), whose content, without trailing whitespace, is the secret (at least 16
/// bytes; `head -c 32 /dev/urandom | base64 > FILE` makes one).
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("secret file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("secret file {shown}: not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "secret file {shown}: readable by others (mode {mode:03o}); `chmod 600 {shown}` and keep it owned by the daemon's user"
        ));
    }
    if meta.size() > 4096 {
        return Err(format!("secret file {shown}: over 4096 bytes; a secret is one line"));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("secret file {shown}: {e}"))?;
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    Secret::new(&bytes[..end]).map_err(|e| format!("secret file {shown}: {e}"))
}

/// How a daemon treats its connections: its secret, if any, and whether Lars-codec peers
/// (which cannot authenticate) are still served when it has one.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// The shared secret (`--secret-file`, `[auth] secret_file`).
    pub secret: Option<Secret>,
    /// Serve Lars-codec frames even with a secret (`--allow-lars`, `[auth] allow_lars`).
    pub allow_lars: bool,
}

impl AuthConfig {
    fn policy(&self) -> Policy {
        Policy { required: self.secret.is_some(), allow_lars: self.allow_lars }
    }
}

/// Handshake counters of a daemon, shared by its workers.
#[derive(Debug, Default)]
pub struct AuthStats {
    /// Connections that proved the secret.
    pub authenticated: AtomicU64,
    /// Connections closed for a failed handshake or a frame sent before authenticating.
    pub refused: AtomicU64,
}

impl AuthStats {
    /// The counters, named, for a `StatsResponse`.
    pub fn counters(&self) -> [(&'static str, u64); 2] {
        [
            ("auth_ok", self.authenticated.load(Ordering::Relaxed)),
            ("auth_refused", self.refused.load(Ordering::Relaxed)),
        ]
    }
}

/// What the gate made of a frame.
pub(crate) enum Screened {
    /// A frame the service handles as usual; `Some` is the identity the connection proved.
    Pass(Option<u32>),
    /// The gate handled it (a handshake frame) or refused it: return this.
    Done(Control),
}

/// One worker's connections, as the handshake sees them.
pub(crate) struct Gate {
    config: std::sync::Arc<AuthConfig>,
    stats: std::sync::Arc<AuthStats>,
    role: Role,
    conns: HashMap<ConnId, (Responder, SocketAddr)>,
}

impl Gate {
    pub(crate) fn new(
        config: std::sync::Arc<AuthConfig>,
        stats: std::sync::Arc<AuthStats>,
        role: Role,
    ) -> Gate {
        Gate { config, stats, role, conns: HashMap::new() }
    }

    pub(crate) fn connected(&mut self, conn: ConnId, peer: SocketAddr) {
        self.conns.insert(conn, (Responder::new(), peer));
    }

    pub(crate) fn closed(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }

    /// Runs `frame` through the handshake: answers and checks its frames, and refuses (closes,
    /// counts, logs) what the connection may not send yet.
    pub(crate) fn screen(&mut self, conn: ConnId, frame: &Frame<'_>, reply: &mut Sender<'_>) -> Screened {
        let policy = self.config.policy();
        // Every connection is registered when it opens; one that somehow is not starts from
        // nothing proved rather than passing unchecked.
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let (responder, peer) = self.conns.entry(conn).or_insert((Responder::new(), unknown));
        let peer = *peer;
        let secret = self.config.secret.as_ref();
        let result = match frame.msgid {
            MsgId::AuthHello => {
                native::AuthHello::parse(frame.body).map_err(AuthError::Malformed).and_then(|hello| {
                    let Ok(nonce) = nonce() else {
                        log::error!("getrandom failed; closing {peer} unauthenticated");
                        return Ok(Control::Close);
                    };
                    let ours = native::Hello::of_daemon(self.role);
                    let challenge =
                        responder.handle_hello(secret, &hello, ours.role, ours.node, ours.max_body, nonce)?;
                    let sent = reply.send(MsgId::AuthChallenge, &challenge).is_ok();
                    Ok(if sent { Control::Continue } else { Control::Close })
                })
            }
            MsgId::AuthProof => native::AuthProof::parse(frame.body)
                .map_err(AuthError::Malformed)
                .and_then(|proof| responder.handle_proof(secret, &proof))
                .map(|node| {
                    self.stats.authenticated.fetch_add(1, Ordering::Relaxed);
                    let ip = std::net::Ipv4Addr::from_bits(node);
                    log::info!("{peer} authenticated as agent {ip}");
                    Control::Continue
                }),
            msgid => match responder.admits(policy, msgid) {
                Ok(()) => return Screened::Pass(responder.identity()),
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(control) => Screened::Done(control),
            Err(error) => {
                let refused = self.stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
                // Every refusal is counted; the log says the first ones and then every
                // power of two, so that a flood of them cannot flood the log.
                if refused.is_power_of_two() {
                    log::warn!("refused {peer}: {error} ({refused} refused so far)");
                }
                Screened::Done(Control::Close)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_file_must_be_private_and_long_enough() {
        let dir = std::env::temp_dir().join(format!("lars-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_secret_file(&path).unwrap_err();
        assert!(error.contains("readable by others (mode 644)"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = read_secret_file(&path).unwrap();
        assert_eq!(
            secret,
            Secret::new(b"0123456789abcdef0123456789abcdef").unwrap(),
            "the newline is not part of it"
        );
        std::fs::write(&path, "short\n").unwrap();
        assert!(read_secret_file(&path).unwrap_err().contains("at least 16"));
        assert!(read_secret_file(&dir).unwrap_err().contains("not a regular file"));
        assert!(read_secret_file(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }
}
