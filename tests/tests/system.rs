//! The whole system on loopback with in-memory stores: lars-dns, lars-reporter, lars-agent and
//! the client API, as a user runs them. (The same scenarios against the route file and MariaDB
//! use the same harness.)

use std::net::SocketAddr;
use std::time::Duration;

use lars_core::wire::native::Outcome;
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::{Client, ClientConfig, ClientError};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::memory::{MemoryRoutes, MemoryStats};
use lars_tests::eventually;

struct System {
    routes: MemoryRoutes,
    stats: MemoryStats,
    dns: Dns,
    reporter: Reporter,
    agent: AgentDaemon,
    client: Client,
}

fn loopback() -> ServerConfig {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 2;
    config
}

fn start() -> System {
    let routes = MemoryRoutes::new();
    let stats = MemoryStats::new();
    let mut dns_config = DnsConfig::new(loopback());
    dns_config.poll_interval = Duration::from_millis(50);
    let dns = Dns::start(dns_config, Box::new(routes.clone())).unwrap();
    let store = stats.clone();
    let reporter =
        Reporter::start(ReporterConfig::new(loopback()), move |_| Box::new(store.clone())).unwrap();
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter.local_addr()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    System { routes, stats, dns, reporter, agent, client }
}

fn host(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

#[test]
fn a_route_reaches_callers_and_their_reports_reach_the_store() {
    let system = start();
    system.routes.set_route((1001, 1), &[host(1), host(2)]);
    eventually("lars-dns loaded the route", || system.dns.snapshot().hosts((1001, 1)).len() == 2);
    assert!(
        matches!(system.client.get_host(1001, 1, None), Err(ClientError::NoRoute)),
        "first call: still pulling"
    );
    let route = system.client.reg_init(1001, 1, 20).unwrap();
    assert_eq!(route.hosts.len(), 2);
    let mut calls = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let picked = system.client.get_host(1001, 1, None).unwrap();
        *calls.entry(picked).or_insert(0u32) += 1;
        system.client.report(1001, 1, picked, Outcome::Ok, Duration::from_micros(300)).unwrap();
    }
    assert_eq!(calls.values().copied().collect::<Vec<_>>(), [50, 50]);
    eventually("the reporter stored both hosts' counts", || {
        let rows = system.stats.rows();
        rows.len() == 2 && rows.iter().map(|r| r.succ).sum::<u32>() == 100
    });
    assert_eq!(system.reporter.stats().rows_dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn a_route_change_is_pushed_and_a_removed_host_is_no_longer_handed_out() {
    let system = start();
    system.routes.set_route((7, 7), &[host(1), host(2)]);
    eventually("loaded", || !system.dns.snapshot().hosts((7, 7)).is_empty());
    system.client.reg_init(7, 7, 20).unwrap();
    system.routes.set_route((7, 7), &[host(2), host(3)]);
    eventually("the push reached the agent", || {
        system.client.get_route(7, 7).is_ok_and(|r| r.hosts.iter().map(|h| h.addr).eq([host(2), host(3)]))
    });
    for _ in 0..50 {
        assert_ne!(system.client.get_host(7, 7, None).unwrap(), host(1));
    }
    eventually("the agent counted the answer and the push", || system.agent.stats().routes_received >= 2);
}

#[test]
fn every_daemon_reports_its_counters() {
    let system = start();
    system.routes.set_route((2, 2), &[host(1)]);
    eventually("loaded", || !system.dns.snapshot().hosts((2, 2)).is_empty());
    system.client.reg_init(2, 2, 20).unwrap();
    let get =
        |counters: &[(String, u64)], name: &str| counters.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    let agent = system.client.agent_stats().unwrap();
    assert!(get(&agent, "api_requests").unwrap() >= 1);
    assert_eq!(get(&agent, "routes"), Some(1));
    let dns = lars_std::client::daemon_stats(system.dns.local_addr(), Duration::from_secs(2)).unwrap();
    assert_eq!(get(&dns, "routes"), Some(1));
    assert!(get(&dns, "requests").unwrap() >= 1);
    assert!(get(&dns, "open").unwrap() >= 1, "the server's counters are included");
    let reporter =
        lars_std::client::daemon_stats(system.reporter.local_addr(), Duration::from_secs(2)).unwrap();
    assert!(get(&reporter, "rows_dropped").is_some());
    assert!(get(&reporter, "pool_small_in_use").is_some(), "and the pool's");
}
