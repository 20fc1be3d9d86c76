//! Access control through the real daemons: allowlists at accept, the shared-secret
//! handshake between agents and lars-dns / lars-reporter (both ways), statistics tied to the
//! proven identity, and the agent's API on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use lars_core::access::Cidr;
use lars_core::auth::{Initiator, Secret};
use lars_core::wire::native::{self, AuthChallenge, AuthProof, HostReport, HostStats, Role, StatusReport};
use lars_core::wire::{Decode, Encode, List, MsgId, RetCode};
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::auth::AuthConfig;
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::memory::{MemoryRoutes, MemoryStats};
use lars_tests::{FrameClient, eventually, frame_bytes};

const SECRET: &[u8] = b"a test secret of 32 bytes, okay!";

fn secret() -> Secret {
    Secret::new(SECRET).unwrap()
}

fn server(allow: &[&str]) -> ServerConfig {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 2;
    if !allow.is_empty() {
        config.allow = allow.iter().map(|c| Cidr::parse(c).unwrap()).collect();
    }
    config
}

fn routes() -> MemoryRoutes {
    let routes = MemoryRoutes::new();
    routes.set_route((7, 1), &["10.7.0.1:80".parse().unwrap(), "10.7.0.2:80".parse().unwrap()]);
    routes
}

fn dns(allow: &[&str], auth: AuthConfig) -> Dns {
    let mut config = DnsConfig::new(server(allow));
    config.poll_interval = Duration::from_millis(50);
    config.auth = auth;
    Dns::start(config, Box::new(routes())).unwrap()
}

fn reporter(allow: &[&str], auth: AuthConfig, stats: &MemoryStats) -> Reporter {
    let mut config = ReporterConfig::new(server(allow));
    config.auth = auth;
    let store = stats.clone();
    Reporter::start(config, move |_| Box::new(store.clone())).unwrap()
}

fn with_secret() -> AuthConfig {
    AuthConfig { secret: Some(secret()), allow_lars: false }
}

/// A TCP connection from `source` (a loopback address other than 127.0.0.1 is a remote host
/// as far as an allowlist can tell).
fn connect_from(source: &str, to: SocketAddr) -> FrameClient {
    let socket =
        rustix::net::socket(rustix::net::AddressFamily::INET, rustix::net::SocketType::STREAM, None).unwrap();
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    rustix::net::bind(&socket, &source).unwrap();
    rustix::net::connect(&socket, &to).unwrap();
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    FrameClient { stream }
}

fn route_request() -> Vec<u8> {
    let mut body = [0u8; 16];
    let len = native::GetRouteRequest { seq: 1, modid: 7, cmdid: 1 }.emit(&mut body).unwrap();
    frame_bytes(MsgId::NativeGetRouteRequest.as_u32(), &body[..len])
}

#[test]
fn an_allowlist_closes_other_sources_at_accept_and_counts_them() {
    let dns = dns(&["127.0.0.1/32"], AuthConfig::default());
    let mut stranger = connect_from("127.0.0.2", dns.local_addr());
    // The write may or may not land before the close; the answer never comes.
    let _ = stranger.write(&route_request());
    assert!(stranger.is_closed_by_server(), "a source outside the list is closed");
    eventually("the refusal is counted", || dns.server_stats().denied.load(Ordering::Relaxed) == 1);
    assert_eq!(dns.stats().requests.load(Ordering::Relaxed), 0, "nothing it sent was served");

    let mut allowed = connect_from("127.0.0.1", dns.local_addr());
    allowed.write(&route_request()).unwrap();
    let (msgid, body) = allowed.read_frame().unwrap();
    assert_eq!(msgid, MsgId::NativeRouteResponse.as_u32());
    assert_eq!(native::RouteResponse::parse(&body).unwrap().hosts.len(), 2);

    // lars-reporter takes the same list.
    let stats = MemoryStats::new();
    let reporter = reporter(&["127.0.0.1/32"], AuthConfig::default(), &stats);
    let mut stranger = connect_from("127.0.0.2", reporter.local_addr());
    assert!(stranger.is_closed_by_server());
    eventually("the reporter counts it", || {
        reporter.server_stats().unwrap().denied.load(Ordering::Relaxed) == 1
    });
}

#[test]
fn the_default_allowlist_is_loopback() {
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    assert_eq!(config.allow, Cidr::LOOPBACK.to_vec());
    // 127.0.0.2 is loopback: taken by default.
    let dns = dns(&[], AuthConfig::default());
    let mut neighbour = connect_from("127.0.0.2", dns.local_addr());
    neighbour.write(&route_request()).unwrap();
    assert_eq!(neighbour.read_frame().unwrap().0, MsgId::NativeRouteResponse.as_u32());
    assert_eq!(dns.server_stats().denied.load(Ordering::Relaxed), 0);
}

/// Proves `secret` to the daemon at `addr` as agent `node`; returns the connection, or the
/// reason the daemon's challenge was refused.
fn authenticate(addr: SocketAddr, secret: &Secret, node: u32, expected: Role) -> Result<FrameClient, String> {
    let mut client = FrameClient::connect(addr).unwrap();
    let initiator = Initiator::new(Role::Agent, node, 65527, lars_std::auth::nonce().unwrap(), expected);
    let mut body = [0u8; 64];
    let len = initiator.hello().emit(&mut body).unwrap();
    client.write(&frame_bytes(MsgId::AuthHello.as_u32(), &body[..len])).unwrap();
    let (msgid, body) = client.read_frame().map_err(|e| e.to_string())?;
    assert_eq!(msgid, MsgId::AuthChallenge.as_u32());
    let challenge = AuthChallenge::parse(&body).unwrap();
    let proof = initiator.handle_challenge(secret, &challenge).map_err(|e| e.to_string())?;
    let mut body = [0u8; 64];
    let len = proof.emit(&mut body).unwrap();
    client.write(&frame_bytes(MsgId::AuthProof.as_u32(), &body[..len])).unwrap();
    Ok(client)
}

#[test]
fn with_a_secret_only_agents_that_prove_it_are_served() {
    let dns = dns(&[], with_secret());
    // Unauthenticated, native or Lars: closed, counted, nothing served.
    let mut plain = FrameClient::connect(dns.local_addr()).unwrap();
    plain.write(&route_request()).unwrap();
    assert!(plain.is_closed_by_server());
    let mut lars = FrameClient::connect(dns.local_addr()).unwrap();
    lars.write(&frame_bytes(MsgId::GetRouteRequest.as_u32(), &[0x08, 0x07, 0x10, 0x01])).unwrap();
    assert!(lars.is_closed_by_server());
    eventually("both refusals are counted", || dns.stats().auth.refused.load(Ordering::Relaxed) == 2);
    assert_eq!(dns.stats().requests.load(Ordering::Relaxed), 0);

    // A wrong proof is refused as well.
    let mut forger = FrameClient::connect(dns.local_addr()).unwrap();
    let initiator = Initiator::new(Role::Agent, 1, 65527, [9; 16], Role::Dns);
    let mut body = [0u8; 64];
    let len = initiator.hello().emit(&mut body).unwrap();
    forger.write(&frame_bytes(MsgId::AuthHello.as_u32(), &body[..len])).unwrap();
    forger.read_frame().unwrap();
    let len = AuthProof { proof: [0; 32] }.emit(&mut body).unwrap();
    forger.write(&frame_bytes(MsgId::AuthProof.as_u32(), &body[..len])).unwrap();
    forger.write(&route_request()).unwrap();
    assert!(forger.is_closed_by_server(), "a wrong proof closes the connection");
    eventually("and is counted", || dns.stats().auth.refused.load(Ordering::Relaxed) == 3);

    // Proven: served.
    let mut agent = authenticate(dns.local_addr(), &secret(), 0x0a00_0001, Role::Dns).unwrap();
    agent.write(&route_request()).unwrap();
    let (msgid, body) = agent.read_frame().unwrap();
    assert_eq!(msgid, MsgId::NativeRouteResponse.as_u32());
    assert_eq!(native::RouteResponse::parse(&body).unwrap().code, RetCode::Succ);
    assert_eq!(dns.stats().auth.authenticated.load(Ordering::Relaxed), 1);

    // Lars-codec peers, explicitly allowed, are served without authenticating.
    let mixed = self::dns(&[], AuthConfig { secret: Some(secret()), allow_lars: true });
    let mut original = FrameClient::connect(mixed.local_addr()).unwrap();
    original.write(&frame_bytes(MsgId::GetRouteRequest.as_u32(), &[0x08, 0x07, 0x10, 0x01])).unwrap();
    assert_eq!(original.read_frame().unwrap().0, MsgId::GetRouteResponse.as_u32());
}

fn agent(dns: SocketAddr, reporter: SocketAddr, secret: Option<Secret>, caller: u32) -> AgentDaemon {
    let mut config = AgentDaemonConfig::new(vec![dns], vec![reporter]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    config.agent.secret = secret;
    config.agent.caller = caller;
    config.agent.report_interval = lars_core::time::Duration::from_millis(100);
    AgentDaemon::start(config).unwrap()
}

fn client(agent: &AgentDaemon) -> Client {
    Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() })
}

#[test]
fn agents_and_daemons_with_the_secret_work_together() {
    let dns = dns(&[], with_secret());
    let stats = MemoryStats::new();
    let reporter = reporter(&[], with_secret(), &stats);
    let agent = agent(dns.local_addr(), reporter.local_addr(), Some(secret()), 0x0a00_0009);
    let client = client(&agent);
    eventually("the route arrives over the authenticated link", || {
        client.get_route(7, 1).is_ok_and(|r| r.hosts.len() == 2)
    });
    let host = client.get_host(7, 1, None).unwrap();
    client.report(7, 1, host, native::Outcome::Ok, Duration::from_micros(50)).unwrap();
    eventually("the report is stored under the agent", || {
        stats.rows().iter().any(|r| r.caller == 0x0a00_0009 && r.host == host)
    });
    assert_eq!(dns.stats().auth.refused.load(Ordering::Relaxed), 0);
    assert_eq!(reporter.stats().auth.authenticated.load(Ordering::Relaxed), 1);
    assert_eq!(agent.stats().auth_failures, 0);
}

#[test]
fn an_agent_with_another_secret_gets_no_routes() {
    let dns = dns(&[], with_secret());
    let stats = MemoryStats::new();
    let reporter = reporter(&[], with_secret(), &stats);
    let wrong = Secret::new(b"not the secret the daemons hold").unwrap();
    let agent = agent(dns.local_addr(), reporter.local_addr(), Some(wrong), 1);
    let client = client(&agent);
    eventually("the agent refused both daemons' proofs", || agent.stats().auth_failures >= 2);
    assert!(client.get_route(7, 1).map_or(true, |r| r.hosts.is_empty()), "no hosts from an unproven dns");
    assert_eq!(dns.stats().requests.load(Ordering::Relaxed), 0);
    // And an agent without a secret is refused by the daemons.
    let plain = self::agent(dns.local_addr(), reporter.local_addr(), None, 2);
    let _ = self::client(&plain).get_route(7, 1);
    eventually("the dns refused it", || dns.stats().auth.refused.load(Ordering::Relaxed) >= 1);
    assert_eq!(dns.stats().requests.load(Ordering::Relaxed), 0);
}

#[test]
fn a_program_on_the_dns_port_cannot_serve_routes_to_an_agent_with_a_secret() {
    // It answers the greeting with a made-up challenge and pushes a route at once.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let stats = MemoryStats::new();
    let reporter = reporter(&[], with_secret(), &stats);
    let agent = agent(fake_addr, reporter.local_addr(), Some(secret()), 3);
    let client = client(&agent);
    let _ = client.get_route(7, 1); // the agent now wants the route
    let (mut conn, _) = fake.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut header = [0u8; 8];
    conn.read_exact(&mut header).unwrap();
    assert_eq!(u32::from_le_bytes(header[..4].try_into().unwrap()), MsgId::AuthHello.as_u32());
    let bogus = [native::WeightedHost { addr: "10.66.6.6:80".parse().unwrap(), weight: 1 }];
    let push = native::RouteResponse {
        seq: 0,
        modid: 7,
        cmdid: 1,
        code: RetCode::Succ,
        version: 1,
        hosts: List::from_slice(&bogus),
    };
    let mut body = [0u8; 128];
    let len = push.emit(&mut body).unwrap();
    conn.write_all(&frame_bytes(MsgId::NativeRouteResponse.as_u32(), &body[..len])).unwrap();
    let challenge = AuthChallenge {
        version: 1,
        role: Role::Dns,
        node: 0,
        max_body: 65527,
        nonce: [1; 16],
        proof: [2; 32],
    };
    let len = challenge.emit(&mut body).unwrap();
    let _ = conn.write_all(&frame_bytes(MsgId::AuthChallenge.as_u32(), &body[..len]));
    // The agent hangs up on it.
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    eventually("the agent counts the refusal", || agent.stats().auth_failures >= 1);
    let route = client.get_route(7, 1);
    assert!(
        route.as_ref().map_or(true, |r| r.hosts.is_empty()),
        "the fake's hosts were not taken: {route:?}"
    );
}

fn status_report(caller: u32, host: &str, succ: u32) -> Vec<u8> {
    let stats = HostStats::empty(7, 1, host.parse().unwrap());
    let entries = [HostReport { stats, window_succ: succ, window_err: 0 }];
    let report = StatusReport { caller, ts: 1_764_000_000, entries: List::from_slice(&entries) };
    let mut body = vec![0u8; report.buffer_len()];
    let len = report.emit(&mut body).unwrap();
    frame_bytes(MsgId::StatusReport.as_u32(), &body[..len])
}

#[test]
fn a_forged_caller_cannot_overwrite_another_agents_row() {
    let stats = MemoryStats::new();
    let reporter = reporter(&[], with_secret(), &stats);
    let (victim, attacker) = (0x0a00_0001, 0x0a00_0066);
    let mut honest = authenticate(reporter.local_addr(), &secret(), victim, Role::Reporter).unwrap();
    honest.write(&status_report(victim, "10.7.0.1:80", 100)).unwrap();
    eventually("the victim's row is stored", || {
        stats.rows().iter().any(|r| r.caller == victim && r.succ == 100)
    });

    // Without the secret, a forged frame is refused outright.
    let mut stranger = FrameClient::connect(reporter.local_addr()).unwrap();
    stranger.write(&status_report(victim, "10.7.0.1:80", 0)).unwrap();
    assert!(stranger.is_closed_by_server());
    // An agent that holds the secret but claims the victim's caller in its frames: its rows are
    // stored under the identity it proved, and the victim's row stays.
    let mut other = authenticate(reporter.local_addr(), &secret(), attacker, Role::Reporter).unwrap();
    other.write(&status_report(victim, "10.7.0.1:80", 0)).unwrap();
    eventually("the rewrite is counted", || reporter.stats().callers_rewritten.load(Ordering::Relaxed) == 1);
    eventually("stored under the prover", || stats.rows().iter().any(|r| r.caller == attacker));
    // The same in the Lars codec on the authenticated connection: `caller` 10.0.0.1 (field 3),
    // one result for 10.7.0.1:80 with succ 0.
    let mut lars_body = vec![0x08, 0x07, 0x10, 0x01, 0x18, 0x81, 0x80, 0x80, 0x50];
    lars_body.extend_from_slice(&[0x22, 0x07, 0x08, 0x81, 0x80, 0x9c, 0x50, 0x10, 0x50]);
    other.write(&frame_bytes(MsgId::ReportStatusRequest.as_u32(), &lars_body)).unwrap();
    eventually("the Lars frame is rewritten too", || {
        reporter.stats().callers_rewritten.load(Ordering::Relaxed) == 2
    });
    let victims: Vec<u32> = stats.rows().iter().filter(|r| r.caller == victim).map(|r| r.succ).collect();
    assert_eq!(victims, [100], "the victim's row is untouched");
    assert_eq!(reporter.stats().auth.refused.load(Ordering::Relaxed), 1);
}

#[test]
fn the_agents_api_is_on_loopback_by_default_and_elsewhere_is_warned_about() {
    let config = AgentDaemonConfig::new(Vec::new(), Vec::new());
    assert_eq!(config.api.len(), 3);
    assert!(config.api.iter().all(|a| a.ip().is_loopback()), "{:?}", config.api);
    for loopback in ["127.0.0.1:8888", "[::1]:8888", "127.0.0.5:1"] {
        assert_eq!(lars_std::agent::exposure_warning(loopback.parse().unwrap()), None, "{loopback}");
    }
    for exposed in ["0.0.0.0:8888", "10.1.2.3:8888", "[::]:8888"] {
        let warning = lars_std::agent::exposure_warning(exposed.parse().unwrap()).expect(exposed);
        assert!(warning.contains("not on loopback") && warning.contains("reflector"), "{warning}");
    }
}
