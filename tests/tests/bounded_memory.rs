//! lars-dns's memory under a flood, read from `/proc/self/status`, and the process limits a
//! server raises for its `maxConn`. Own process: both are the process's, not one server's.
//!
//! One connection asks for 500,000 routes that do not exist, then for every one of 10,000 that
//! do. Before subscriptions were bounded, lars-dns remembered each of them for the life of the
//! connection (about 170 bytes each: 3,000,000 requests took it from 2.8 MB to 512 MB); now it
//! holds the newest 256 unknown ones until the routes that exist take their place, 4,096 in
//! all (its cap), counts the rest as refused, and gives them back on close.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lars_core::wire::{Encode, MsgId, frame, lars};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::store::memory::MemoryRoutes;
use lars_tests::eventually;

fn counter(addr: SocketAddr, name: &str) -> u64 {
    let counters = lars_std::client::daemon_stats(addr, Duration::from_secs(5)).unwrap();
    counters.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no counter {name}")).1
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Sends a `GetRouteRequest` for each key on one connection, reading the answers on a second
/// thread; returns the connection once every answer came.
fn flood(addr: SocketAddr, keys: impl Iterator<Item = i32> + Send + 'static, count: u64) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    let mut reader = stream.try_clone().unwrap();
    reader.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut writer = std::io::BufWriter::with_capacity(64 * 1024, writer);
        let mut out = [0u8; 32];
        for modid in keys {
            let body = lars::GetRouteRequest { modid, cmdid: 1 };
            let len = frame::encode(
                MsgId::GetRouteRequest,
                &body,
                &mut out[..frame::HEADER_LEN + body.buffer_len()],
            )
            .unwrap();
            writer.write_all(&out[..len]).unwrap();
        }
        writer.flush().unwrap();
    });
    let mut header = [0u8; 8];
    let mut body = vec![0u8; 65536];
    for _ in 0..count {
        reader.read_exact(&mut header).unwrap();
        let len = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
        reader.read_exact(&mut body[..len]).unwrap();
    }
    sender.join().unwrap();
    stream
}

#[test]
fn a_flood_from_one_connection_leaves_lars_dns_memory_bounded() {
    let store = MemoryRoutes::new();
    for modid in 1..=10_000 {
        store.set_route((modid, 1), &[SocketAddr::from(([10, 0, 0, 1], 80))]);
    }
    let mut server = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    server.threads = 2;
    let dns = Dns::start(DnsConfig::new(server), Box::new(store)).unwrap();
    let addr = dns.local_addr();
    let before = rss();
    let unknown = 500_000;
    let flooder = flood(addr, (0..unknown).map(|i| 1_000_000 + i).chain(1..=10_000), unknown as u64 + 10_000);
    let after = rss();
    assert_eq!(counter(addr, "subscriptions"), 4096, "the connection's cap");
    assert_eq!(counter(addr, "subscriptions_refused"), 10_000 - 4096);
    let grown = after.saturating_sub(before);
    println!(
        "lars-dns RSS {} MB before the flood, {} MB after ({grown} bytes more)",
        before >> 20,
        after >> 20
    );
    assert!(grown < 32 << 20, "{unknown} requests grew the process by {grown} bytes");
    drop(flooder);
    eventually("the subscriptions go back", || counter(addr, "subscriptions") == 0);
    dns.shutdown();
}

#[test]
fn a_soft_fd_limit_too_low_for_max_conn_is_raised() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(hard >= 4096, "this test needs a hard RLIMIT_NOFILE of at least 4096, not {hard}");
    setrlimit(Resource::Nofile, Rlimit { current: Some(512), maximum: limit.maximum }).unwrap();
    let mut server = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    server.threads = 2;
    server.max_conns = 2000;
    let dns = Dns::start(DnsConfig::new(server), Box::new(MemoryRoutes::new())).unwrap();
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(soft >= 2000 + 2 * 4 + 64, "the soft limit was raised for maxConn: {soft}");
    dns.shutdown();
}
