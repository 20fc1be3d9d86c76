//! What the agent knows of one upstream link (to lars-dns or lars-reporter): whether it is up,
//! and which body codec the peer at its other end speaks.
//!
//! With [`CodecChoice::Auto`] each new link starts by greeting the peer with a native `Hello`.
//! A lars daemon answers it in kind, so the link speaks native. An original Lars daemon logs
//! "msgid 256 is not register!" and stays silent, so once `probe_timeout` passes the link speaks
//! Lars. A peer that hangs up before answering is taken for one that refuses what it does not
//! know: the next link speaks Lars without asking, and the one after that asks again, so a
//! link that merely broke during the greeting costs one link in the older codec, not all of
//! them. Nothing is sent on a link (no pull, no statistics) until its codec is known.
//!
//! With a secret (feature `auth`), a link instead opens with the handshake of
//! [`crate::auth`]: the agent sends an `AuthHello` with the fresh nonce its driver gave it, and
//! the link is up, native, only once the peer's challenge proved the secret. Nothing the peer
//! sends before that is taken, no Lars fallback exists (a peer that stays silent would
//! otherwise downgrade the link to an unauthenticated one), and a handshake that fails or
//! does not finish within `probe_timeout` closes the link, which the driver reconnects.

#[cfg(feature = "auth")]
use crate::auth::{AuthError, Initiator, Secret};
use crate::time::{Duration, Instant};
#[cfg(feature = "auth")]
use crate::wire::native::{AuthChallenge, NONCE_LEN, PROOF_LEN, Role};
use crate::wire::{Codec, CodecChoice};

/// Where a link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Down,
    /// Greeting the peer; if nothing comes back by `deadline`, it speaks Lars.
    Probing {
        deadline: Instant,
        hello_sent: bool,
    },
    /// Proving the secret; the peer's challenge must come by `deadline`. `None` when the
    /// driver gave no nonce: nothing is sent and the link closes at the deadline.
    #[cfg(feature = "auth")]
    Authenticating {
        deadline: Instant,
        initiator: Option<Initiator>,
        hello_sent: bool,
    },
    Up(Codec),
}

/// One link's state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkState {
    choice: CodecChoice,
    phase: Phase,
    /// The last link hung up while being greeted.
    hung_up_probing: bool,
    /// The nonce for the next handshake, from the driver.
    #[cfg(feature = "auth")]
    nonce: Option<[u8; NONCE_LEN]>,
    /// The agent's proof, to send before anything else.
    #[cfg(feature = "auth")]
    proof_due: Option<[u8; PROOF_LEN]>,
    /// The handshake failed or timed out: the driver must close the link.
    #[cfg(feature = "auth")]
    close_due: bool,
}

impl LinkState {
    pub(crate) const fn new(choice: CodecChoice) -> Self {
        LinkState {
            choice,
            phase: Phase::Down,
            hung_up_probing: false,
            #[cfg(feature = "auth")]
            nonce: None,
            #[cfg(feature = "auth")]
            proof_due: None,
            #[cfg(feature = "auth")]
            close_due: false,
        }
    }

    /// Keeps `nonce` for the next handshake (each is used once).
    #[cfg(feature = "auth")]
    pub(crate) fn set_nonce(&mut self, nonce: [u8; NONCE_LEN]) {
        self.nonce = Some(nonce);
    }

    /// The link came up and must prove the secret: as `role`/`node`, to a peer that must be
    /// `expected`.
    #[cfg(feature = "auth")]
    pub(crate) fn up_authenticating(
        &mut self,
        now: Instant,
        timeout: Duration,
        role: Role,
        node: u32,
        expected: Role,
    ) {
        let initiator = self
            .nonce
            .take()
            .map(|nonce| Initiator::new(role, node, crate::wire::frame::MAX_BODY, nonce, expected));
        self.hung_up_probing = false;
        self.proof_due = None;
        self.close_due = false;
        self.phase = Phase::Authenticating { deadline: now + timeout, initiator, hello_sent: false };
    }

    /// Whether the link is proving the secret.
    #[cfg(feature = "auth")]
    pub(crate) fn is_authenticating(&self) -> bool {
        matches!(self.phase, Phase::Authenticating { .. })
    }

    /// The `AuthHello` to send, if it is due.
    #[cfg(feature = "auth")]
    pub(crate) fn auth_hello_due(&self) -> Option<crate::wire::native::AuthHello> {
        match self.phase {
            Phase::Authenticating { initiator: Some(initiator), hello_sent: false, .. } => {
                Some(initiator.hello())
            }
            _ => None,
        }
    }

    /// The proof to send, if it is due; taken once sent with [`LinkState::proof_sent`].
    #[cfg(feature = "auth")]
    pub(crate) fn proof_due(&self) -> Option<[u8; PROOF_LEN]> {
        self.proof_due
    }

    #[cfg(feature = "auth")]
    pub(crate) fn proof_sent(&mut self) {
        self.proof_due = None;
    }

    /// The peer's challenge: on success the link is up, native, and the agent's proof is due.
    /// On failure the link must be closed.
    #[cfg(feature = "auth")]
    pub(crate) fn heard_challenge(
        &mut self,
        secret: &Secret,
        challenge: &AuthChallenge,
    ) -> Result<(), AuthError> {
        let Phase::Authenticating { initiator: Some(initiator), hello_sent: true, .. } = self.phase else {
            return Err(AuthError::OutOfOrder);
        };
        let proof = initiator.handle_challenge(secret, challenge)?;
        self.proof_due = Some(proof.proof);
        self.phase = Phase::Up(Codec::Native);
        Ok(())
    }

    /// Whether the driver must close the link (a failed handshake), once.
    #[cfg(feature = "auth")]
    pub(crate) fn take_close(&mut self) -> bool {
        core::mem::take(&mut self.close_due)
    }

    /// The handshake failed: nothing more is sent or taken until the driver has closed the
    /// link (and says so with [`LinkState::down`]).
    #[cfg(feature = "auth")]
    pub(crate) fn fail(&mut self) {
        self.close_due = true;
        self.phase = Phase::Down;
    }

    /// The link came up. Returns the codec when it is known at once (fixed by configuration,
    /// or Lars after a link that hung up on the greeting); `None` while the peer is greeted.
    pub(crate) fn up(&mut self, now: Instant, probe_timeout: Duration) -> Option<Codec> {
        let codec = match self.choice {
            CodecChoice::Fixed(codec) => Some(codec),
            CodecChoice::Auto if self.hung_up_probing => Some(Codec::Lars),
            CodecChoice::Auto => None,
        };
        self.hung_up_probing = false;
        self.phase = match codec {
            Some(codec) => Phase::Up(codec),
            None => Phase::Probing { deadline: now + probe_timeout, hello_sent: false },
        };
        codec
    }

    /// The link went down.
    pub(crate) fn down(&mut self) {
        self.hung_up_probing = matches!(self.phase, Phase::Probing { hello_sent: true, .. });
        self.phase = Phase::Down;
        // Closed already (the driver closes a link whose frame was refused): nothing to ask.
        #[cfg(feature = "auth")]
        {
            self.close_due = false;
        }
    }

    /// Whether the link is connected (greeting or not).
    #[cfg(test)]
    pub(crate) fn is_connected(&self) -> bool {
        self.phase != Phase::Down
    }

    /// The codec to send in, once the link is up and it is known.
    pub(crate) fn codec(&self) -> Option<Codec> {
        match self.phase {
            Phase::Up(codec) => Some(codec),
            _ => None,
        }
    }

    /// Whether the greeting is still to be sent.
    pub(crate) fn hello_due(&self) -> bool {
        matches!(self.phase, Phase::Probing { hello_sent: false, .. })
    }

    pub(crate) fn hello_sent(&mut self) {
        match &mut self.phase {
            Phase::Probing { hello_sent, .. } => *hello_sent = true,
            #[cfg(feature = "auth")]
            Phase::Authenticating { hello_sent, .. } => *hello_sent = true,
            _ => {}
        }
    }

    /// The peer sent a native `Hello`. Returns the codec if this decided it.
    pub(crate) fn heard_hello(&mut self) -> Option<Codec> {
        let Phase::Probing { .. } = self.phase else { return None };
        self.phase = Phase::Up(Codec::Native);
        Some(Codec::Native)
    }

    /// Time passed. Returns the codec if the greeting went unanswered. A handshake that did
    /// not finish in time leaves the link to be closed ([`LinkState::take_close`]).
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Codec> {
        #[cfg(feature = "auth")]
        if let Phase::Authenticating { deadline, .. } = self.phase {
            if now >= deadline {
                self.fail();
            }
            return None;
        }
        let Phase::Probing { deadline, .. } = self.phase else { return None };
        if now < deadline {
            return None;
        }
        self.phase = Phase::Up(Codec::Lars);
        Some(Codec::Lars)
    }

    /// When [`LinkState::handle_timeout`] must run next.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Probing { deadline, .. } => Some(deadline),
            #[cfg(feature = "auth")]
            Phase::Authenticating { deadline, .. } => Some(deadline),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: Duration = Duration::from_secs(1);

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn a_fixed_codec_is_known_as_the_link_comes_up() {
        let mut link = LinkState::new(CodecChoice::Fixed(Codec::Lars));
        assert_eq!(link.codec(), None);
        assert_eq!(link.up(at(0), PROBE), Some(Codec::Lars));
        assert!(!link.hello_due());
        assert_eq!(link.deadline(), None);
    }

    #[test]
    fn an_answered_greeting_means_native() {
        let mut link = LinkState::new(CodecChoice::Auto);
        assert_eq!(link.up(at(0), PROBE), None);
        assert!(link.hello_due() && link.is_connected() && link.codec().is_none());
        link.hello_sent();
        assert!(!link.hello_due());
        assert_eq!(link.handle_timeout(at(999)), None);
        assert_eq!(link.heard_hello(), Some(Codec::Native));
        assert_eq!(link.codec(), Some(Codec::Native));
        // A later Hello (a keep-alive answer) changes nothing.
        assert_eq!(link.heard_hello(), None);
    }

    #[test]
    fn silence_past_the_deadline_means_lars() {
        let mut link = LinkState::new(CodecChoice::Auto);
        link.up(at(0), PROBE);
        link.hello_sent();
        assert_eq!(link.deadline(), Some(at(1000)));
        assert_eq!(link.handle_timeout(at(1000)), Some(Codec::Lars));
        assert_eq!(link.codec(), Some(Codec::Lars));
        assert_eq!(link.deadline(), None);
    }

    #[test]
    fn a_hang_up_during_the_greeting_makes_the_next_link_lars_and_the_one_after_ask_again() {
        let mut link = LinkState::new(CodecChoice::Auto);
        link.up(at(0), PROBE);
        link.hello_sent();
        link.down();
        assert!(!link.is_connected());
        assert_eq!(link.up(at(10), PROBE), Some(Codec::Lars));
        link.down();
        assert_eq!(link.up(at(20), PROBE), None, "greets again");
    }

    #[cfg(feature = "auth")]
    mod auth {
        use super::*;
        use crate::auth::{Responder, Secret};

        fn secret() -> Secret {
            Secret::new(b"sixteen or more bytes").unwrap()
        }

        #[test]
        fn a_proven_challenge_brings_the_link_up_native_with_the_proof_due() {
            let mut link = LinkState::new(CodecChoice::Fixed(Codec::Lars));
            link.set_nonce([3; NONCE_LEN]);
            link.up_authenticating(at(0), PROBE, Role::Agent, 7, Role::Dns);
            assert!(
                link.is_connected() && link.codec().is_none(),
                "no codec, fixed or not, before the proof"
            );
            let hello = link.auth_hello_due().expect("the hello is due");
            link.hello_sent();
            assert!(link.auth_hello_due().is_none());
            let mut server = Responder::new();
            let challenge =
                server.handle_hello(Some(&secret()), &hello, Role::Dns, 0, 100, [4; NONCE_LEN]).unwrap();
            assert_eq!(link.heard_challenge(&secret(), &challenge), Ok(()));
            assert_eq!(link.codec(), Some(Codec::Native));
            let proof = link.proof_due().expect("the proof is due");
            let proof = crate::wire::native::AuthProof { proof };
            assert_eq!(server.handle_proof(Some(&secret()), &proof), Ok(7));
            link.proof_sent();
            assert!(link.proof_due().is_none());
            assert_eq!(link.heard_challenge(&secret(), &challenge), Err(AuthError::OutOfOrder), "once");
        }

        #[test]
        fn no_answer_in_time_closes_the_link_and_never_falls_back_to_lars() {
            let mut link = LinkState::new(CodecChoice::Auto);
            link.set_nonce([3; NONCE_LEN]);
            link.up_authenticating(at(0), PROBE, Role::Agent, 7, Role::Dns);
            link.hello_sent();
            assert_eq!(link.handle_timeout(at(1000)), None, "no Lars fallback");
            assert!(link.take_close() && !link.take_close(), "closed once");
            link.fail();
            link.down();
            assert!(!link.take_close(), "a link the driver closed itself is not closed again");
            assert_eq!(link.codec(), None);
            link.down();
            link.up_authenticating(at(2000), PROBE, Role::Agent, 7, Role::Dns);
            assert!(link.auth_hello_due().is_none(), "a nonce is used once: the driver gives a new one");
        }
    }

    #[test]
    fn a_link_that_drops_before_greeting_asks_again() {
        let mut link = LinkState::new(CodecChoice::Auto);
        link.up(at(0), PROBE);
        link.down();
        assert_eq!(link.up(at(10), PROBE), None);
    }
}
