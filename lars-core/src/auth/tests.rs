//! The handshake's tests: both sides together, each way it must fail, the gate, and the
//! vector `docs/PROTOCOL.md` documents.

use super::*;
use crate::wire::native::Role;

const MAX: u32 = 65527;
const AGENT: u32 = 0x0a00_0001;

fn secret(text: &[u8]) -> Secret {
    Secret::new(text).unwrap()
}

fn key() -> Secret {
    secret(b"0123456789abcdef0123456789abcdef")
}

const CLIENT_NONCE: [u8; NONCE_LEN] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const SERVER_NONCE: [u8; NONCE_LEN] = [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31];

/// Runs a handshake between a client holding `client` and a server holding `server`.
fn handshake(client: &Secret, server: &Secret) -> (Result<AuthProof, AuthError>, Responder, AuthChallenge) {
    let initiator = Initiator::new(Role::Agent, AGENT, MAX, CLIENT_NONCE, Role::Dns);
    let mut responder = Responder::new();
    let challenge =
        responder.handle_hello(Some(server), &initiator.hello(), Role::Dns, 0, MAX, SERVER_NONCE).unwrap();
    (initiator.handle_challenge(client, &challenge), responder, challenge)
}

#[test]
fn both_sides_holding_the_secret_authenticate_each_other() {
    let (proof, mut responder, _) = handshake(&key(), &key());
    let proof = proof.expect("the server's proof checks out");
    assert_eq!(responder.identity(), None, "not before the client's proof");
    assert_eq!(responder.handle_proof(Some(&key()), &proof), Ok(AGENT));
    assert_eq!(responder.identity(), Some(AGENT));
    assert_eq!(responder.handle_proof(Some(&key()), &proof), Err(AuthError::OutOfOrder), "once only");
}

#[test]
fn a_server_without_the_secret_is_not_trusted() {
    let (proof, _, _) = handshake(&key(), &secret(b"another secret of some length"));
    assert_eq!(proof, Err(AuthError::BadProof));
}

#[test]
fn a_client_without_the_secret_is_refused() {
    let other = secret(b"another secret of some length");
    let (_, mut responder, challenge) = handshake(&key(), &key());
    // The client holds another secret: its proof is made with it.
    let forged = Initiator::new(Role::Agent, AGENT, MAX, CLIENT_NONCE, Role::Dns);
    let wrong_server_side = forged.handle_challenge(&other, &challenge);
    assert_eq!(wrong_server_side, Err(AuthError::BadProof), "it cannot even check the server");
    assert_eq!(
        responder.handle_proof(Some(&key()), &AuthProof { proof: [0; PROOF_LEN] }),
        Err(AuthError::BadProof)
    );
    assert_eq!(responder.identity(), None);
}

#[test]
fn the_servers_proof_sent_back_is_refused() {
    // Reflection: a client that echoes the server's own proof.
    let (_, mut responder, challenge) = handshake(&key(), &key());
    assert_eq!(
        responder.handle_proof(Some(&key()), &AuthProof { proof: challenge.proof }),
        Err(AuthError::BadProof)
    );
}

#[test]
fn a_recorded_handshake_is_worth_nothing_on_a_new_link() {
    let (proof, _, _) = handshake(&key(), &key());
    let recorded = proof.unwrap();
    // The next link: the server picks another nonce, so the recorded proof does not fit it.
    let mut next = Responder::new();
    let hello = Initiator::new(Role::Agent, AGENT, MAX, CLIENT_NONCE, Role::Dns).hello();
    let mut nonce = SERVER_NONCE;
    nonce[0] ^= 1;
    next.handle_hello(Some(&key()), &hello, Role::Dns, 0, MAX, nonce).unwrap();
    assert_eq!(next.handle_proof(Some(&key()), &recorded), Err(AuthError::BadProof));
    // And a recorded challenge does not fit a client's new nonce.
    let (_, _, challenge) = handshake(&key(), &key());
    let mut client_nonce = CLIENT_NONCE;
    client_nonce[15] ^= 0x80;
    let client = Initiator::new(Role::Agent, AGENT, MAX, client_nonce, Role::Dns);
    assert_eq!(client.handle_challenge(&key(), &challenge), Err(AuthError::BadProof));
}

#[test]
fn a_proof_is_bound_to_roles_and_identity() {
    let (_, _, challenge) = handshake(&key(), &key());
    let expecting_reporter = Initiator::new(Role::Agent, AGENT, MAX, CLIENT_NONCE, Role::Reporter);
    assert_eq!(expecting_reporter.handle_challenge(&key(), &challenge), Err(AuthError::WrongRole));
    // A relay that relabels a reporter's challenge as a dns's: the proof no longer fits.
    let initiator = Initiator::new(Role::Agent, AGENT, MAX, CLIENT_NONCE, Role::Dns);
    let mut reporter = Responder::new();
    let mut relabelled = reporter
        .handle_hello(Some(&key()), &initiator.hello(), Role::Reporter, 0, MAX, SERVER_NONCE)
        .unwrap();
    relabelled.role = Role::Dns;
    assert_eq!(initiator.handle_challenge(&key(), &relabelled), Err(AuthError::BadProof));
    // Another node claimed with the same nonces: another proof.
    let other_node = Initiator::new(Role::Agent, AGENT + 1, MAX, CLIENT_NONCE, Role::Dns);
    assert_eq!(other_node.handle_challenge(&key(), &challenge), Err(AuthError::BadProof));
}

#[test]
fn the_gate_lets_through_what_the_policy_says() {
    let open = Policy { required: false, allow_lars: false };
    let strict = Policy { required: true, allow_lars: false };
    let mixed = Policy { required: true, allow_lars: true };
    let fresh = Responder::new();
    for id in [MsgId::NativeGetRouteRequest, MsgId::GetRouteRequest, MsgId::StatusReport, MsgId::Hello] {
        assert_eq!(fresh.admits(open, id), Ok(()), "{id:?} without a secret");
    }
    assert_eq!(
        fresh.admits(strict, MsgId::NativeGetRouteRequest),
        Err(AuthError::Unauthenticated(MsgId::NativeGetRouteRequest))
    );
    assert_eq!(fresh.admits(strict, MsgId::Hello), Err(AuthError::Unauthenticated(MsgId::Hello)));
    assert_eq!(
        fresh.admits(strict, MsgId::GetRouteRequest),
        Err(AuthError::LarsRefused(MsgId::GetRouteRequest))
    );
    assert_eq!(fresh.admits(mixed, MsgId::ReportStatusRequest), Ok(()));
    assert_eq!(
        fresh.admits(mixed, MsgId::StatusReport),
        Err(AuthError::Unauthenticated(MsgId::StatusReport))
    );
    assert_eq!(fresh.admits(strict, MsgId::StatsRequest), Ok(()));
    assert_eq!(fresh.admits(strict, MsgId::Heartbeat), Ok(()));
    let (proof, mut done, _) = handshake(&key(), &key());
    done.handle_proof(Some(&key()), &proof.unwrap()).unwrap();
    assert_eq!(done.admits(strict, MsgId::NativeGetRouteRequest), Ok(()));
}

#[test]
fn a_server_without_a_secret_says_so() {
    let hello = Initiator::new(Role::Agent, AGENT, MAX, CLIENT_NONCE, Role::Dns).hello();
    assert_eq!(
        Responder::new().handle_hello(None, &hello, Role::Dns, 0, MAX, SERVER_NONCE),
        Err(AuthError::NoSecret)
    );
}

#[test]
fn a_second_hello_is_out_of_order() {
    let hello = Initiator::new(Role::Agent, AGENT, MAX, CLIENT_NONCE, Role::Dns).hello();
    let mut responder = Responder::new();
    responder.handle_hello(Some(&key()), &hello, Role::Dns, 0, MAX, SERVER_NONCE).unwrap();
    assert_eq!(
        responder.handle_hello(Some(&key()), &hello, Role::Dns, 0, MAX, SERVER_NONCE),
        Err(AuthError::OutOfOrder)
    );
}

#[test]
fn short_secrets_are_refused_and_long_ones_hashed() {
    assert_eq!(Secret::new(b"fifteen bytes!!"), Err(SecretError::TooShort(15)));
    let long = [7u8; 100];
    let hashed = Secret::new(&long).unwrap();
    assert_eq!(hashed.key().len(), 32);
    assert_eq!(std::format!("{hashed:?}"), "Secret(..)", "never printed");
}

fn hex(bytes: &[u8]) -> std::string::String {
    bytes.iter().map(|b| std::format!("{b:02x}")).collect::<std::vec::Vec<_>>().join(" ")
}

/// The vector in `docs/PROTOCOL.md` §4 (the tidy tests check the document against the code
/// too): secret `0123456789abcdef0123456789abcdef`, an agent 10.0.0.1 with nonce 00..0f, lars-dns
/// (node 0) with nonce 10..1f.
#[test]
fn the_documented_vector() {
    let transcript = Transcript {
        version: 1,
        client_role: Role::Agent,
        client_node: AGENT,
        client_nonce: CLIENT_NONCE,
        server_role: Role::Dns,
        server_node: 0,
        server_nonce: SERVER_NONCE,
    };
    assert_eq!(
        hex(&transcript.bytes(Direction::Server)),
        "6c 61 72 73 2d 61 75 74 68 2d 76 31 01 00 53 00 01 00 00 0a 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f \
         02 00 00 00 00 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f"
    );
    let (proof, _, challenge) = handshake(&key(), &key());
    assert_eq!(hex(&challenge.proof), SERVER_PROOF);
    assert_eq!(hex(&proof.unwrap().proof), CLIENT_PROOF);
}

/// Computed with Python's `hmac` module over the transcript above, not with this code.
const SERVER_PROOF: &str =
    "90 d3 04 6e 69 70 4b ef ed 41 79 07 cc a2 e8 a8 c4 ad 66 0d cc 7e 43 fe 81 fb 3e 42 65 2e 49 2a";
const CLIENT_PROOF: &str =
    "51 c2 70 21 dc a3 bc bb 96 3d de cc fc 39 a3 d9 70 5a 4c eb 68 44 ca d8 96 ce 27 76 45 03 4c 09";
