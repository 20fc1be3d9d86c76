//! The gateway node on the host, over a TAP device in a network namespace this test creates,
//! against a real lars-dns and lars-reporter; a client on the Linux side gets hosts and reports
//! results through the node.
//!
//! The test re-runs itself inside the namespace (`ip netns exec`), so that the TAP device, the
//! daemons and the client all live there, and removes the namespace afterwards.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lars_core::agent::AgentConfig;
use lars_core::wire::native::Outcome;
use lars_embedded::{Ipv4Setup, Node, NodeConfig, NodeStorage};
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::memory::{MemoryRoutes, MemoryStats};
use lars_std::time::Clock;
use lars_tests::eventually;
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};

const INNER: &str = "LARS_TAP_INNER";
const HOST_SIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 100);
const NODE: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).status().is_ok_and(|s| s.success())
}

/// Deletes the namespace (and the TAP device in it) however the test ends.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.0]);
    }
}

#[test]
fn the_node_serves_over_tap_against_real_daemons() {
    if std::env::var_os(INNER).is_some() {
        return inside_the_namespace();
    }
    let ns = Namespace(format!("lars-tap-{}", std::process::id()));
    // Not a skip: a test that cannot run has not passed.
    assert!(
        ip(&["netns", "add", &ns.0]),
        "this test needs a network namespace and a TAP device: run it as root (or with CAP_NET_ADMIN) \
         on a machine that allows `ip netns add`"
    );
    let exec = |args: &[&str]| ip(&[&["netns", "exec", ns.0.as_str()][..], args].concat());
    assert!(exec(&["ip", "link", "set", "lo", "up"]));
    assert!(exec(&["ip", "tuntap", "add", "name", "tap0", "mode", "tap"]), "create tap0");
    assert!(exec(&["ip", "link", "set", "tap0", "up"]));
    assert!(exec(&["ip", "addr", "add", "192.168.69.100/24", "dev", "tap0"]));
    let me = std::env::current_exe().unwrap();
    let inner = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(me)
        .args(["--exact", "the_node_serves_over_tap_against_real_daemons", "--nocapture"])
        .env(INNER, "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&inner.stdout), String::from_utf8_lossy(&inner.stderr));
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(inner.status.success(), "the run inside the namespace failed");
    // A filter that matches nothing also succeeds: the run must have been this test's.
    assert!(stdout.contains("test result: ok. 1 passed"), "the run inside the namespace ran no test");
}

fn inside_the_namespace() {
    let routes = MemoryRoutes::new();
    routes.set_route((1, 1), &[SocketAddr::from(([10, 9, 0, 1], 80)), SocketAddr::from(([10, 9, 0, 2], 80))]);
    let mut server = ServerConfig::new(SocketAddr::from((HOST_SIDE, 0)));
    server.threads = 1;
    // The node is not on loopback: the daemons take the TAP network explicitly.
    server.allow = vec![lars_core::access::Cidr::parse("192.168.69.0/24").unwrap()];
    let dns = Dns::start(DnsConfig::new(server.clone()), Box::new(routes)).unwrap();
    let stats = MemoryStats::new();
    let store = stats.clone();
    let reporter = Reporter::start(ReporterConfig::new(server), move |_| Box::new(store.clone())).unwrap();
    let (dns_addr, reporter_addr) = (dns.local_addr(), reporter.local_addr());
    let v4 = |addr: SocketAddr| match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => unreachable!("the daemons listen on IPv4"),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::clone(&stop);
    let node_thread = std::thread::spawn(move || {
        let device = TunTapInterface::new("tap0", Medium::Ethernet).expect("open tap0");
        let fd = device.as_raw_fd();
        let storage: &'static mut NodeStorage<'static> = Box::leak(Box::new(NodeStorage::new()));
        let clock = Clock::new();
        let config = NodeConfig {
            hardware_addr: EthernetAddress([0x02, 0, 0, 0, 0, 1]).into(),
            ipv4: Ipv4Setup::Static { address: Ipv4Cidr::new(NODE, 24), gateway: None },
            dns: v4(dns_addr),
            reporter: v4(reporter_addr),
            api_port: 8888,
            agent: AgentConfig {
                report_interval: lars_core::time::Duration::from_millis(200),
                ..AgentConfig::default()
            },
        };
        let mut node: Node<'_, _, 8, 8> =
            Node::new(device, config, storage, clock.now(), u64::from(std::process::id()));
        while !running.load(Ordering::Relaxed) {
            let wait = node.poll(clock.now()).min(lars_core::time::Duration::from_millis(20));
            smoltcp::phy::wait(fd, Some(smoltcp::time::Duration::from_micros(wait.as_micros()))).ok();
        }
        node.agent().stats().get_host
    });

    let client = Client::new(ClientConfig {
        agent: vec![SocketAddr::V4(SocketAddrV4::new(NODE, 8888))],
        timeout: Duration::from_millis(300),
        retries: 3,
        ..ClientConfig::default()
    });
    let route = client.reg_init(1, 1, 100).expect("the node pulled the route from lars-dns");
    assert_eq!(route.hosts.len(), 2);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let host = client.get_host(1, 1, None).unwrap();
        seen.insert(host);
        client.report(1, 1, host, Outcome::Ok, Duration::from_micros(400)).unwrap();
    }
    assert_eq!(seen.len(), 2, "both hosts handed out");
    eventually("the node's statistics reached lars-reporter", || stats.rows().len() == 2);
    stop.store(true, Ordering::Relaxed);
    assert!(node_thread.join().unwrap() >= 20);
}
