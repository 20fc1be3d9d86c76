//! The ABI's argument checks and error reporting, called as C would call them. The calls
//! against real daemons are in `tests/c/client_test.c`, run by `cargo xtask test`.

use std::ffi::CString;
use std::net::UdpSocket;
use std::ptr;

use super::*;

fn last_error() -> String {
    raw::returned_string(lars_last_error())
}

fn host(text: &str, port: u16) -> LarsHost {
    LarsHost::new(SocketAddr::new(text.parse().unwrap(), port), 0)
}

#[test]
fn hosts_round_trip_through_their_text() {
    for (ip, port) in
        [("10.0.0.1", 80), ("2001:db8::1", 8080), ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 1)]
    {
        let host = host(ip, port);
        assert_eq!(host.addr().ok(), Some(SocketAddr::new(ip.parse().unwrap(), port)));
    }
}

#[test]
fn bad_arguments_are_named_in_the_message() {
    let mut client = ptr::null_mut();
    let agents = CString::new("127.0.0.1:8888,nonsense").unwrap();
    assert_eq!(lars_client_new(agents.as_ptr(), 0, 0, &mut client), LARS_EINVALID);
    assert!(last_error().contains("`nonsense` is not IP:PORT"), "{}", last_error());
    assert!(client.is_null());

    assert_eq!(lars_client_new(ptr::null(), 0, 0, ptr::null_mut()), LARS_EINVALID);
    assert_eq!(last_error(), "out is NULL");

    let mut out = LarsHost::new(SocketAddr::from(([0, 0, 0, 0], 0)), 0);
    assert_eq!(lars_get_host(ptr::null(), 1, 1, &mut out), LARS_EINVALID);
    assert_eq!(last_error(), "client is NULL");

    assert_eq!(lars_client_new(ptr::null(), 0, 0, &mut client), LARS_OK);
    let good = host("127.0.0.1", 9);
    assert_eq!(lars_report(client, 1, 1, &good, 7, 0), LARS_EINVALID);
    assert!(last_error().contains("outcome 7 is none of"), "{}", last_error());
    let mut bad = good;
    bad.ip[0] = b'x' as c_char;
    assert_eq!(lars_report(client, 1, 1, &bad, LARS_OUTCOME_OK, 0), LARS_EINVALID);
    assert!(last_error().contains("is not an IP address"), "{}", last_error());
    bad.ip = [b'1' as c_char; LARS_IP_LEN];
    assert_eq!(lars_report(client, 1, 1, &bad, LARS_OUTCOME_OK, 0), LARS_EINVALID);
    assert_eq!(last_error(), "host ip is not NUL-terminated");
    lars_client_free(client);
    lars_client_free(ptr::null_mut());
}

#[test]
fn a_silent_agent_is_a_timeout_for_calls_and_leases() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agents = CString::new(silent.local_addr().unwrap().to_string()).unwrap();
    let mut client = ptr::null_mut();
    assert_eq!(lars_client_new(agents.as_ptr(), 20, 1, &mut client), LARS_OK);
    let mut out = host("0.0.0.0", 0);
    assert_eq!(lars_get_host(client, 1, 1, &mut out), LARS_ETIMEOUT);
    assert_eq!(last_error(), "no answer from the agent");
    let mut lease = ptr::null_mut();
    assert_eq!(lars_lease_new(client, 1, 1, &mut lease), LARS_ETIMEOUT);
    assert!(lease.is_null());
    lars_client_free(client);
}

#[test]
fn status_names_cover_every_code() {
    for code in LARS_OK..=LARS_EINTERNAL {
        let name = raw::returned_string(lars_status_name(code));
        assert!(name.starts_with("LARS_") && name != "LARS_E?", "code {code}: {name}");
    }
    assert_eq!(raw::returned_string(lars_status_name(99)), "LARS_E?");
}

#[test]
fn each_client_error_keeps_its_code_and_new_ones_take_the_nearest() {
    use lars_std::client::{Refusal, Violation};
    let code = |e: ClientError| Error::from(e).code;
    assert_eq!(code(ClientError::Overloaded), LARS_EOVERLOADED);
    assert_eq!(code(ClientError::NoRoute), LARS_ENOROUTE);
    assert_eq!(code(ClientError::Refused { reason: Refusal::TableFull }), LARS_EAGENT);
    assert_eq!(code(ClientError::Refused { reason: Refusal::Unstated }), LARS_EAGENT);
    assert_eq!(code(ClientError::NeedsNative("hash key")), LARS_EAGENT);
    assert_eq!(code(ClientError::Timeout), LARS_ETIMEOUT);
    assert_eq!(code(ClientError::Malformed(lars_core::wire::Error::Truncated)), LARS_EMALFORMED);
    assert_eq!(code(ClientError::ProtocolViolation(Violation::SuccessWithoutHost)), LARS_EMALFORMED);
    assert_eq!(code(ClientError::Io(std::io::ErrorKind::Other.into())), LARS_EIO);
    assert_eq!(code(ClientError::Unencodable(lars_core::wire::Error::BufferTooSmall)), LARS_EINTERNAL);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    assert_eq!(code(ClientError::DaemonTimeout { addr }), LARS_ETIMEOUT);
    let cause = lars_core::wire::Error::Truncated;
    assert_eq!(code(ClientError::DaemonMalformed { addr, cause }), LARS_EMALFORMED);
}

#[test]
fn a_message_carries_the_cause_of_its_error() {
    let io = ClientError::Io(std::io::Error::other("the cable is out"));
    assert_eq!(Error::from(io).message, "socket error: the cable is out");
}

#[test]
fn a_panic_is_a_status_not_an_abort() {
    assert_eq!(call(|| panic!("boom")), LARS_EINTERNAL);
    assert_eq!(last_error(), "internal error (please report): boom");
}
