//! Hostile peers against real daemons on loopback: floods of route requests, half-sent headers
//! and bodies, trickling peers, idle sockets holding every `maxConn` slot, connection churn and
//! malformed frames. Each case checks the daemon's own counters (subscriptions held against
//! their caps, refusals, timeouts, bad frames) and that a good client is served meanwhile.
//! Every limit here is small so that each case takes well under a second of work.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lars_core::wire::{Encode, Message, MsgId, frame, lars};
use lars_std::dns::{Dns, DnsConfig, SubscriptionCaps};
use lars_std::reactor::ServerConfig;
use lars_std::store::memory::MemoryRoutes;
use lars_tests::{FrameClient, eventually, frame_bytes};

fn counter(addr: SocketAddr, name: &str) -> u64 {
    let counters = lars_std::client::daemon_stats(addr, Duration::from_secs(5)).unwrap();
    counters.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no counter {name}")).1
}

fn route_request(modid: i32, cmdid: i32) -> Vec<u8> {
    let body = lars::GetRouteRequest { modid, cmdid };
    let mut out = vec![0u8; frame::HEADER_LEN + body.buffer_len()];
    frame::encode(MsgId::GetRouteRequest, &body, &mut out).unwrap();
    out
}

/// A lars-dns serving routes `(1..=routes, 1)`, one host each, with `tune` applied.
fn dns(routes: i32, tune: impl FnOnce(&mut DnsConfig)) -> (Dns, MemoryRoutes) {
    let store = MemoryRoutes::new();
    for modid in 1..=routes {
        store.set_route((modid, 1), &[SocketAddr::from(([10, 0, 0, 1], 80))]);
    }
    let mut server = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    server.threads = 2;
    let mut config = DnsConfig::new(server);
    config.poll_interval = Duration::from_millis(20);
    tune(&mut config);
    (Dns::start(config, Box::new(store.clone())).unwrap(), store)
}

/// Asks for `(modid, 1)` on a fresh connection and checks that it has `hosts` hosts.
fn good_client_is_served(addr: SocketAddr, modid: i32, hosts: usize) {
    let mut client = FrameClient::connect(addr).unwrap();
    client.write(&route_request(modid, 1)).unwrap();
    expect_route(&mut client, modid, hosts);
}

fn expect_route(client: &mut FrameClient, modid: i32, hosts: usize) {
    let (msgid, body) = client.read_frame().unwrap();
    let Ok(Message::GetRouteResponse(route)) = Message::parse(MsgId::from_u32(msgid).unwrap(), &body) else {
        panic!("not a route response: msgid {msgid}")
    };
    assert_eq!((route.modid, route.hosts.len()), (modid, hosts));
}

/// A connection that sends `requests` pipelined while a thread reads the answers (so that
/// backpressure never stalls the writer); returns the answers read once they all came.
fn flood(addr: SocketAddr, requests: impl Iterator<Item = (i32, i32)>) -> (TcpStream, u64) {
    let stream = TcpStream::connect(addr).unwrap();
    let mut reader = stream.try_clone().unwrap();
    reader.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let answers = {
        let (sent, done) = (Arc::clone(&sent), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut answers = 0u64;
            let mut header = [0u8; 8];
            let mut body = vec![0u8; 65536];
            while !(done.load(Ordering::Acquire) && answers == sent.load(Ordering::Acquire)) {
                reader.read_exact(&mut header).unwrap();
                let len = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
                reader.read_exact(&mut body[..len]).unwrap();
                answers += 1;
            }
            answers
        })
    };
    let mut writer = std::io::BufWriter::with_capacity(64 * 1024, stream.try_clone().unwrap());
    for (modid, cmdid) in requests {
        writer.write_all(&route_request(modid, cmdid)).unwrap();
        sent.fetch_add(1, Ordering::Release);
    }
    writer.flush().unwrap();
    done.store(true, Ordering::Release);
    (stream, answers.join().unwrap())
}

#[test]
fn a_flood_of_route_requests_holds_only_capped_subscriptions_to_routes_that_exist() {
    let caps = SubscriptionCaps { per_conn: 20, total: 30 };
    let (dns, store) = dns(50, |config| config.subscriptions = caps);
    let addr = dns.local_addr();
    // 100,000 requests for routes that do not exist: answered, and the connection holds only
    // its newest ones, to its cap.
    let (flooder, answers) = flood(addr, (0..100_000).map(|i| (1_000 + i, 7)));
    assert_eq!(answers, 100_000);
    assert_eq!(counter(addr, "subscriptions"), 20, "unknown routes are held to the cap");
    assert_eq!(counter(addr, "subscriptions_refused"), 0, "the oldest unknown ones went instead");
    // Every route that exists, from the same connection: the unknown ones give way, its cap
    // holds, the rest are refused.
    let mut flooder = FrameClient { stream: flooder };
    for modid in 1..=50 {
        flooder.write(&route_request(modid, 1)).unwrap();
        expect_route(&mut flooder, modid, 1);
    }
    assert_eq!(counter(addr, "subscriptions"), 20);
    assert_eq!(counter(addr, "subscriptions_refused"), 30);
    // A second connection meets the total cap.
    let mut second = FrameClient::connect(addr).unwrap();
    for modid in 1..=20 {
        second.write(&route_request(modid, 1)).unwrap();
        expect_route(&mut second, modid, 1);
    }
    assert_eq!(counter(addr, "subscriptions"), 30);
    assert_eq!(counter(addr, "subscriptions_refused"), 40);
    good_client_is_served(addr, 50, 1);
    // Pushes go to the subscriptions held: route 1 changes, both connections hear of it.
    store.set_route((1, 1), &[SocketAddr::from(([10, 0, 0, 1], 80)), SocketAddr::from(([10, 0, 0, 2], 80))]);
    expect_route(&mut flooder, 1, 2);
    expect_route(&mut second, 1, 2);
    // A route that goes and comes back is pushed both times (an agent may remember it as
    // missing meanwhile).
    store.set_route((2, 1), &[]);
    expect_route(&mut flooder, 2, 0);
    expect_route(&mut second, 2, 0);
    store.set_route((2, 1), &[SocketAddr::from(([10, 0, 0, 3], 80))]);
    expect_route(&mut flooder, 2, 1);
    expect_route(&mut second, 2, 1);
    drop(flooder);
    eventually("a close gives its subscriptions back", || counter(addr, "subscriptions") == 10);
    drop(second);
    eventually("every subscription back", || counter(addr, "subscriptions") == 0);
}

#[test]
fn half_sent_headers_and_bodies_time_out_and_others_carry_on() {
    let (dns, _store) = dns(1, |config| {
        config.server.header_timeout = lars_core::time::Duration::from_millis(300);
        config.server.body_timeout = lars_core::time::Duration::from_millis(300);
    });
    let addr = dns.local_addr();
    let request = route_request(1, 1);
    let mut headers: Vec<FrameClient> = (0..50).map(|_| FrameClient::connect(addr).unwrap()).collect();
    for client in &mut headers {
        client.write(&request[..4]).unwrap();
    }
    // A body of 20,000 bytes, of which 100 are sent.
    let big = frame_bytes(MsgId::GetRouteRequest.as_u32(), &[0u8; 20_000]);
    let mut bodies: Vec<FrameClient> = (0..50).map(|_| FrameClient::connect(addr).unwrap()).collect();
    for client in &mut bodies {
        client.write(&big[..108]).unwrap();
    }
    // A peer that trickles its body a byte at a time gets no more time than one that stops.
    let trickler = std::thread::spawn(move || {
        let mut client = FrameClient::connect(addr).unwrap();
        client.write(&big[..8]).unwrap();
        for byte in &big[8..] {
            std::thread::sleep(Duration::from_millis(20));
            if client.stream.write_all(std::slice::from_ref(byte)).is_err() {
                return true;
            }
        }
        false
    });
    good_client_is_served(addr, 1, 1);
    eventually("the half-sent headers time out", || counter(addr, "header_timeouts") == 50);
    eventually("the half-sent bodies time out", || counter(addr, "body_timeouts") >= 51);
    assert!(trickler.join().unwrap(), "the trickling peer is cut off");
    for client in headers.iter_mut().chain(&mut bodies) {
        assert!(client.is_closed_by_server());
    }
    assert_eq!(counter(addr, "body_timeouts"), 51);
    assert_eq!(counter(addr, "idle_timeouts"), 0, "no idle timeout unless configured");
    good_client_is_served(addr, 1, 1);
    assert_eq!(counter(addr, "pool_large_held_by_partial_frames"), 0);
}

#[test]
fn idle_sockets_are_closed_so_new_agents_get_in() {
    let (dns, _store) = dns(1, |config| {
        config.server.max_conns = 21;
        config.server.idle_timeout = Some(lars_core::time::Duration::from_millis(800));
    });
    let addr = dns.local_addr();
    // Read in process: a connection to ask for them would need a slot.
    let stats = dns.server_stats();
    // A busy agent asks every 50 ms: it is never idle for long, and stays.
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = Arc::clone(&stop);
        let mut client = FrameClient::connect(addr).unwrap();
        std::thread::spawn(move || {
            let mut asked = 0;
            while !stop.load(Ordering::Acquire) {
                client.write(&route_request(1, 1)).unwrap();
                expect_route(&mut client, 1, 1);
                asked += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            asked
        })
    };
    eventually("the busy agent is in", || stats.open.load(Ordering::Relaxed) == 1);
    let idle: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    eventually("the idle sockets hold every other slot", || stats.open.load(Ordering::Relaxed) == 21);
    eventually("the idle sockets are closed", || stats.idle_timeouts.load(Ordering::Relaxed) == 20);
    for _ in 0..20 {
        good_client_is_served(addr, 1, 1);
    }
    stop.store(true, Ordering::Release);
    assert!(busy.join().unwrap() > 0);
    assert_eq!(stats.idle_timeouts.load(Ordering::Relaxed), 20, "the busy agent was not idle");
    drop(idle);
}

#[test]
fn a_max_conn_the_pool_cannot_back_is_refused() {
    let mut server = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    server.max_conns = 8400;
    let error = Dns::start(DnsConfig::new(server), Box::new(MemoryRoutes::new())).err().expect("refused");
    let message = error.to_string();
    assert!(message.starts_with("maxConn 8400 is more than the buffer pool can back"), "{message}");
    assert!(message.contains("raise [pool] smallBlocks to at least 22400"), "{message}");
}

#[test]
fn churn_floods_and_malformed_frames_leave_good_clients_served() {
    let (dns, _store) = dns(1, |_| {});
    let addr = dns.local_addr();
    for _ in 0..300 {
        let mut client = FrameClient::connect(addr).unwrap();
        client.write(&route_request(1, 1)[..6]).unwrap();
    }
    let bad: [Vec<u8>; 3] = [
        frame_bytes(0x7777, b""),                                 // unknown msgid
        [1u32.to_le_bytes(), 70_000u32.to_le_bytes()].concat(),   // over the limit
        frame_bytes(MsgId::GetRouteRequest.as_u32(), &[0xff; 3]), // a body that does not decode
    ];
    for frame in bad.iter().cycle().take(30) {
        let mut client = FrameClient::connect(addr).unwrap();
        client.write(frame).unwrap();
        assert!(client.is_closed_by_server());
    }
    // A flood of heartbeats on one connection is answered in order, and others carry on.
    let mut flooder = FrameClient::connect(addr).unwrap();
    // Valid ones: a heartbeat whose body does not decode closes its connection (and counts).
    let heartbeat = lars_core::wire::native::Heartbeat { seq: 7 };
    let mut body = [0u8; 16];
    let len = heartbeat.emit(&mut body).unwrap();
    let heartbeats: Vec<u8> =
        (0..2000).flat_map(|_| frame_bytes(MsgId::Heartbeat.as_u32(), &body[..len])).collect();
    flooder.write(&heartbeats).unwrap();
    good_client_is_served(addr, 1, 1);
    for _ in 0..2000 {
        assert_eq!(flooder.read_frame().unwrap().0, MsgId::Heartbeat.as_u32());
    }
    assert_eq!(counter(addr, "bad_frames") + counter(addr, "bad_requests"), 30);
    eventually("the churned connections are gone", || counter(addr, "open") <= 2);
}

#[test]
fn random_get_host_keys_through_an_agent_leave_lars_dns_holding_nothing() {
    use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
    use lars_std::client::{Client, ClientConfig, ClientError};
    let (dns, _store) = dns(1, |_| {});
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec!["127.0.0.1:9".parse().unwrap()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    // The agent pulls each key from lars-dns, which answers that the route does not exist.
    for modid in 0..2000 {
        assert!(matches!(client.get_host(50_000 + modid, 3, None), Err(ClientError::NoRoute)));
    }
    eventually("lars-dns answers every pull", || dns.stats().requests.load(Ordering::Relaxed) >= 2000);
    let unknown = lars_std::dns::UNKNOWN_PER_CONN as u64;
    assert_eq!(counter(dns.local_addr(), "subscriptions"), unknown, "the newest unknown ones only");
    // The agent's own route is held (and pushed) as before.
    eventually("the real route reaches the agent", || client.get_host(1, 1, None).is_ok());
    assert_eq!(counter(dns.local_addr(), "subscriptions"), unknown + 1);
}
