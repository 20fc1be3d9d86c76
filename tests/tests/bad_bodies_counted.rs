//! Bodies that do not decode, sent to the real daemons: lars-dns and lars-reporter close the
//! connection and count a malformed `StatsRequest`, `Hello` or `Heartbeat` (instead of
//! answering it, or closing without a count), and echo a heartbeat as the five bytes it
//! decodes to, not as whatever body came; lars-agent counts the datagrams its API sockets drop
//! for bad framing and the `StatsRequest`s that do not decode, and shows both in `lars stats`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::Duration;

use lars_core::wire::native::{self, Role};
use lars_core::wire::{Encode, MsgId};
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::memory::{MemoryRoutes, MemoryStats};
use lars_tests::{FrameClient, eventually, frame_bytes};

fn loopback() -> ServerConfig {
    ServerConfig::new("127.0.0.1:0".parse().unwrap())
}

fn start_dns() -> Dns {
    Dns::start(DnsConfig::new(loopback()), Box::new(MemoryRoutes::new())).unwrap()
}

fn start_reporter() -> Reporter {
    let store = MemoryStats::new();
    Reporter::start(ReporterConfig::new(loopback()), move |_| Box::new(store.clone())).unwrap()
}

/// Bodies each of which a daemon must refuse: a truncated varint, a trailing byte, and (for
/// a heartbeat) the 60 KB that used to be echoed back whole.
fn bad_bodies(msgid: MsgId) -> Vec<Vec<u8>> {
    let good: Vec<u8> = match msgid {
        MsgId::Hello => encode(&native::Hello { version: 1, role: Role::Agent, node: 7, max_body: 65527 }),
        MsgId::Heartbeat => encode(&native::Heartbeat { seq: 300 }),
        _ => encode(&native::StatsRequest { seq: 300 }),
    };
    let mut trailing = good.clone();
    trailing.push(0);
    vec![vec![0x80], trailing, vec![0x11; 60_000]]
}

fn encode(body: &impl Encode) -> Vec<u8> {
    let mut out = vec![0; body.buffer_len()];
    body.emit(&mut out).unwrap();
    out
}

/// Sends each bad body on a connection of its own: every one closes its connection, gets no
/// answer and is counted in `bad_requests`, and the daemon keeps serving.
fn refused_and_counted(addr: SocketAddr, bad_requests: impl Fn() -> u64) {
    let mut sent = 0;
    for msgid in [MsgId::StatsRequest, MsgId::Hello, MsgId::Heartbeat] {
        for body in bad_bodies(msgid) {
            let mut client = FrameClient::connect(addr).unwrap();
            client.write(&frame_bytes(msgid.as_u32(), &body)).unwrap();
            assert!(
                client.is_closed_by_server(),
                "{msgid:?} with a {}-byte bad body was answered",
                body.len()
            );
            sent += 1;
            eventually(&format!("{msgid:?} counted"), || bad_requests() == sent);
        }
    }
    // Good ones are still answered; a heartbeat comes back as the five bytes it is.
    let mut client = FrameClient::connect(addr).unwrap();
    let heartbeat = encode(&native::Heartbeat { seq: 0x0fff_ffff });
    client.write(&frame_bytes(MsgId::Heartbeat.as_u32(), &heartbeat)).unwrap();
    assert_eq!(client.read_frame().unwrap(), (MsgId::Heartbeat.as_u32(), heartbeat));
    let hello = encode(&native::Hello { version: 1, role: Role::Agent, node: 7, max_body: 65527 });
    client.write(&frame_bytes(MsgId::Hello.as_u32(), &hello)).unwrap();
    assert_eq!(client.read_frame().unwrap().0, MsgId::Hello.as_u32());
    let stats = lars_std::client::daemon_stats(addr, Duration::from_secs(5)).unwrap();
    let counted = stats.iter().find(|(name, _)| name == "bad_requests").map(|(_, v)| *v);
    assert_eq!(counted, Some(sent), "`lars stats` shows them");
}

#[test]
fn lars_dns_closes_and_counts_bodies_that_do_not_decode() {
    let dns = start_dns();
    refused_and_counted(dns.local_addr(), || dns.stats().bad_requests.load(Ordering::Relaxed));
}

#[test]
fn lars_reporter_closes_and_counts_bodies_that_do_not_decode() {
    let reporter = start_reporter();
    refused_and_counted(reporter.local_addr(), || reporter.stats().bad_requests.load(Ordering::Relaxed));
}

#[test]
fn lars_agent_counts_datagrams_dropped_for_framing_and_bad_stats_requests() {
    let dns = start_dns();
    let reporter = start_reporter();
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter.local_addr()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap()];
    let agent = AgentDaemon::start(config).unwrap();
    let api = agent.api_addrs()[0];
    let client = Client::new(ClientConfig {
        agent: vec![api],
        timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    });
    let counter = |name: &str| {
        let stats = client.agent_stats().unwrap();
        stats.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    };
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let errors = agent.stats().api_errors;
    // A header that says 9 body bytes over 2, a datagram shorter than a header, an unknown msgid.
    let mut wrong_length = frame_bytes(MsgId::GetHostRequest.as_u32(), &[0x08, 0x01]);
    wrong_length[4] = 9;
    for datagram in [wrong_length, vec![4, 0, 0], frame_bytes(0x7777, &[])] {
        socket.send_to(&datagram, api).unwrap();
    }
    eventually("three framing drops in `lars stats`", || counter("udp_bad_framing") == Some(3));
    assert_eq!(agent.stats().api_errors, errors, "they never reached the agent");

    socket.send_to(&frame_bytes(MsgId::StatsRequest.as_u32(), &[0x80]), api).unwrap();
    eventually("the bad StatsRequest counted", || agent.stats().api_errors == errors + 1);
    let mut reply = [0u8; 64];
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!(socket.recv_from(&mut reply).is_err(), "no datagram is ever answered here");
}
