//! Shared-secret authentication of agents and daemons to each other (`auth` layer, sans-IO).
//!
//! A link opens with three native frames, each side bringing a fresh random nonce:
//!
//! ```text
//! agent (client)                               lars-dns / lars-reporter (server)
//!   AuthHello { version, role, node, max_body, nonce_c }  ──►
//!                        ◄──  AuthChallenge { version, role, node, max_body, nonce_s, proof_s }
//!   checks proof_s, then
//!   AuthProof { proof_c }                                 ──►  checks proof_c
//! ```
//!
//! A proof is HMAC-SHA256 under the secret of one fixed-size transcript (layout in
//! `docs/PROTOCOL.md`): a label with the protocol version, the direction (`S` for the server's
//! proof, `C` for the client's), the client's role and node, the server's role and node, and
//! both nonces. Because the server proves first, over the client's fresh nonce, a client
//! trusts nothing from a peer that does not hold the secret: a program that took the dns port
//! while lars-dns was down cannot serve routes. Because both nonces are in both proofs, a
//! recorded handshake is worth nothing on a new link (replay), and because the direction and
//! both roles are in them, a proof cannot be sent back to its maker (reflection) or carried from
//! a reporter link to a dns link. Proofs are compared in constant time.
//!
//! What it does not do: encrypt, or bind the proofs to the TCP connection. Traffic can be read
//! on the wire, and a machine in the middle of a link can relay a handshake between two honest
//! peers (see `docs/SECURITY.md`). Every holder of the secret can claim any `node`: the
//! identity a server learns is the one claimed in an authenticated handshake.
//!
//! The nonces come from the driver (a CSPRNG: `getrandom` on Linux); nothing here reads
//! randomness. [`Initiator`] is the client's side, [`Responder`] the server's, with
//! [`Responder::admits`] deciding which frames a connection may send before and after.

mod sha256;

use crate::wire::MsgId;
use crate::wire::native::{
    AuthChallenge, AuthHello, AuthProof, NONCE_LEN, PROOF_LEN, PROTOCOL_VERSION, Role,
};

/// The shortest secret taken, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// A shared secret. Its bytes never appear in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The HMAC key: the secret itself, or its SHA-256 when it is longer than a block.
    key: [u8; sha256::BLOCK_LEN],
    len: u8,
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a secret was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretError {
    /// Shorter than [`MIN_SECRET_LEN`] bytes.
    TooShort(usize),
}

impl core::fmt::Display for SecretError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SecretError::TooShort(len) => {
                write!(f, "the secret has {len} bytes; at least {MIN_SECRET_LEN} are needed")
            }
        }
    }
}

impl core::error::Error for SecretError {}

impl Secret {
    /// A secret from its bytes (at least [`MIN_SECRET_LEN`]; any length above that).
    pub fn new(bytes: &[u8]) -> Result<Secret, SecretError> {
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort(bytes.len()));
        }
        let mut key = [0u8; sha256::BLOCK_LEN];
        if bytes.len() > sha256::BLOCK_LEN {
            let mut hash = sha256::Sha256::new();
            hash.update(bytes);
            key[..sha256::DIGEST_LEN].copy_from_slice(&hash.finish());
            return Ok(Secret { key, len: sha256::DIGEST_LEN as u8 });
        }
        key[..bytes.len()].copy_from_slice(bytes);
        Ok(Secret { key, len: bytes.len() as u8 })
    }

    fn key(&self) -> &[u8] {
        &self.key[..usize::from(self.len)]
    }
}

/// Why a handshake failed, or a frame was refused on an authenticating connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// A handshake frame that does not decode.
    Malformed(crate::wire::Error),
    /// The peer's proof is wrong: it does not hold the secret (or holds another one).
    BadProof,
    /// The peer is not the kind expected (a reporter answering on the dns link, say).
    WrongRole,
    /// A handshake frame came out of order (a second hello, a proof before the challenge...).
    OutOfOrder,
    /// The peer sent something else before the link was authenticated.
    Unauthenticated(MsgId),
    /// A Lars-codec frame, which cannot be authenticated, where a secret is required.
    LarsRefused(MsgId),
    /// The peer wants to authenticate but this side has no secret.
    NoSecret,
    /// The peer did not finish the handshake in time.
    TimedOut,
}

impl core::fmt::Display for AuthError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AuthError::Malformed(e) => write!(f, "malformed handshake frame: {e}"),
            AuthError::BadProof => f.write_str("wrong proof: the peer does not hold this secret"),
            AuthError::WrongRole => f.write_str("the peer is not the kind of daemon expected"),
            AuthError::OutOfOrder => f.write_str("handshake frames out of order"),
            AuthError::Unauthenticated(id) => write!(f, "sent {id:?} before authenticating"),
            AuthError::LarsRefused(id) => {
                write!(f, "sent {id:?} in the Lars codec, which cannot authenticate")
            }
            AuthError::NoSecret => f.write_str("asked to authenticate, but no secret is configured here"),
            AuthError::TimedOut => f.write_str("did not finish authenticating in time"),
        }
    }
}

impl core::error::Error for AuthError {}

/// Which side a proof speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Server,
    Client,
}

/// What a link's proofs are bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transcript {
    version: u16,
    client_role: Role,
    client_node: u32,
    client_nonce: [u8; NONCE_LEN],
    server_role: Role,
    server_node: u32,
    server_nonce: [u8; NONCE_LEN],
}

/// The label that opens every transcript; its last byte is the version of this handshake.
const LABEL: &[u8; 12] = b"lars-auth-v1";

/// Bytes of a transcript: label, version, direction, two roles, two nodes and two nonces.
pub const TRANSCRIPT_LEN: usize = LABEL.len() + 2 + 1 + 2 * (1 + 4 + NONCE_LEN);

impl Transcript {
    fn bytes(&self, direction: Direction) -> [u8; TRANSCRIPT_LEN] {
        let mut out = [0u8; TRANSCRIPT_LEN];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(LABEL);
        put(&self.version.to_le_bytes());
        put(&[match direction {
            Direction::Server => b'S',
            Direction::Client => b'C',
        }]);
        put(&[self.client_role as u8]);
        put(&self.client_node.to_le_bytes());
        put(&self.client_nonce);
        put(&[self.server_role as u8]);
        put(&self.server_node.to_le_bytes());
        put(&self.server_nonce);
        out
    }

    fn proof(&self, secret: &Secret, direction: Direction) -> [u8; PROOF_LEN] {
        sha256::hmac(secret.key(), &[&self.bytes(direction)])
    }
}

/// The client's side of a handshake: an agent greeting lars-dns or lars-reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Initiator {
    hello: AuthHello,
    expected: Role,
}

impl Initiator {
    /// Starts a handshake as `role`/`node` with a fresh `nonce`, towards a server that must be
    /// `expected`. Send [`Initiator::hello`].
    pub fn new(role: Role, node: u32, max_body: u32, nonce: [u8; NONCE_LEN], expected: Role) -> Initiator {
        let hello = AuthHello { version: PROTOCOL_VERSION, role, node, max_body, nonce };
        Initiator { hello, expected }
    }

    /// The frame that opens the handshake.
    pub fn hello(&self) -> AuthHello {
        self.hello
    }

    /// Checks the server's challenge. On success the server is authenticated, and the
    /// returned proof must be sent before anything else.
    pub fn handle_challenge(
        &self,
        secret: &Secret,
        challenge: &AuthChallenge,
    ) -> Result<AuthProof, AuthError> {
        if challenge.role != self.expected {
            return Err(AuthError::WrongRole);
        }
        let transcript = Transcript {
            version: self.hello.version.min(challenge.version),
            client_role: self.hello.role,
            client_node: self.hello.node,
            client_nonce: self.hello.nonce,
            server_role: challenge.role,
            server_node: challenge.node,
            server_nonce: challenge.nonce,
        };
        if !sha256::equal(&transcript.proof(secret, Direction::Server), &challenge.proof) {
            return Err(AuthError::BadProof);
        }
        Ok(AuthProof { proof: transcript.proof(secret, Direction::Client) })
    }
}

/// How a server treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A secret is configured: native requests need an authenticated link.
    pub required: bool,
    /// Lars-codec frames (the original C++ parts, which cannot authenticate) are served even
    /// so. Without a secret they always are.
    pub allow_lars: bool,
}

/// Where a server's connection is in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Open,
    Challenged(Transcript),
    Authenticated { node: u32 },
}

/// The server's side of one connection's handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Responder {
    stage: Stage,
}

impl Default for Responder {
    fn default() -> Self {
        Responder::new()
    }
}

impl Responder {
    /// A connection that has not authenticated.
    pub const fn new() -> Responder {
        Responder { stage: Stage::Open }
    }

    /// The identity the peer proved, once it has.
    pub fn identity(&self) -> Option<u32> {
        match self.stage {
            Stage::Authenticated { node } => Some(node),
            _ => None,
        }
    }

    /// Whether the connection may send a frame with `msgid` (other than the handshake's own,
    /// which go to [`Responder::handle_hello`] and [`Responder::handle_proof`]). Counters and
    /// keep-alives are always served; a plain `Hello` is refused where a secret is required,
    /// so that a peer without one learns it at once.
    pub fn admits(&self, policy: Policy, msgid: MsgId) -> Result<(), AuthError> {
        if !policy.required || self.identity().is_some() {
            return Ok(());
        }
        match msgid {
            MsgId::StatsRequest | MsgId::Heartbeat => Ok(()),
            id if id.is_lars() && policy.allow_lars => Ok(()),
            id if id.is_lars() => Err(AuthError::LarsRefused(id)),
            id => Err(AuthError::Unauthenticated(id)),
        }
    }

    /// The client's hello: answers with this server's challenge, made with a fresh `nonce`.
    pub fn handle_hello(
        &mut self,
        secret: Option<&Secret>,
        hello: &AuthHello,
        role: Role,
        node: u32,
        max_body: u32,
        nonce: [u8; NONCE_LEN],
    ) -> Result<AuthChallenge, AuthError> {
        let secret = secret.ok_or(AuthError::NoSecret)?;
        if self.stage != Stage::Open {
            return Err(AuthError::OutOfOrder);
        }
        let transcript = Transcript {
            version: hello.version.min(PROTOCOL_VERSION),
            client_role: hello.role,
            client_node: hello.node,
            client_nonce: hello.nonce,
            server_role: role,
            server_node: node,
            server_nonce: nonce,
        };
        self.stage = Stage::Challenged(transcript);
        let proof = transcript.proof(secret, Direction::Server);
        Ok(AuthChallenge { version: PROTOCOL_VERSION, role, node, max_body, nonce, proof })
    }

    /// The client's proof: on success the connection is authenticated as the node its hello
    /// claimed, which is returned.
    pub fn handle_proof(&mut self, secret: Option<&Secret>, proof: &AuthProof) -> Result<u32, AuthError> {
        let secret = secret.ok_or(AuthError::NoSecret)?;
        let Stage::Challenged(transcript) = self.stage else { return Err(AuthError::OutOfOrder) };
        if !sha256::equal(&transcript.proof(secret, Direction::Client), &proof.proof) {
            return Err(AuthError::BadProof);
        }
        self.stage = Stage::Authenticated { node: transcript.client_node };
        Ok(transcript.client_node)
    }
}

#[cfg(test)]
mod tests;
