//! The whole system on loopback with in-memory stores: lars-dns, lars-reporter, lars-agent and
//! the client API, as a user runs them. (The same scenarios against the route file and MariaDB
//! use the same harness.)

use std::net::SocketAddr;
use std::time::Duration;

use lars_core::wire::{Frame, MsgId, frame};
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::Outcome;
use lars_std::client::{Client, ClientConfig, ClientError};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::memory::{MemoryRoutes, MemoryStats};
use lars_std::time::from_std;
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
    start_with(|_| {})
}

fn start_with(tune: impl FnOnce(&mut AgentDaemonConfig)) -> System {
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
    tune(&mut config);
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    System { routes, stats, dns, reporter, agent, client }
}

fn host(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

#[test]
fn a_route_reaches_callers_and_their_reports_reach_the_store() {
    // One flush carrying all 100 results, so the stored window holds them all.
    let system = start_with(|config| {
        config.agent.report_interval = lars_core::time::Duration::from_secs(3600);
        config.agent.report_after = 100;
    });
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
    for pool in ["in_use", "in_magazines", "high_water", "failed", "blocks", "block_size"] {
        for class in ["small", "large"] {
            let name = format!("pool_{class}_{pool}");
            assert!(get(&agent, &name).is_some() && get(&dns, &name).is_some(), "{name}");
        }
    }
    assert!(get(&dns, "pool_small_high_water").unwrap() >= 1, "the dns has served");
}

#[test]
fn the_agent_fails_over_to_a_live_dns_replica() {
    let routes = MemoryRoutes::new();
    routes.set_route((3, 3), &[host(1)]);
    let dns = Dns::start(DnsConfig::new(loopback()), Box::new(routes.clone())).unwrap();
    // The first replica listed is down: nothing listens on that port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut config =
        AgentDaemonConfig::new(vec![dead, dns.local_addr()], vec!["127.0.0.1:9".parse().unwrap()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    eventually("routes come from the live replica", || client.get_route(3, 3).is_ok());
    assert_eq!(client.get_host(3, 3, None).unwrap(), host(1));
}

/// A store that can be switched off, like a database that goes away.
#[derive(Clone)]
struct Flaky {
    routes: MemoryRoutes,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl lars_std::store::RouteStore for Flaky {
    fn version(&mut self) -> Result<u64, lars_std::store::StoreError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(lars_std::store::StoreError::Unavailable("switched off".into()));
        }
        self.routes.version()
    }

    fn load(&mut self) -> Result<lars_std::store::RouteTable, lars_std::store::StoreError> {
        self.version()?;
        self.routes.load()
    }

    fn describe(&self) -> String {
        "flaky".into()
    }
}

#[test]
fn dns_keeps_serving_through_a_store_outage_and_catches_up() {
    use lars_std::store::RouteStore;
    let store = Flaky { routes: MemoryRoutes::new(), down: Default::default() };
    store.routes.set_route((4, 4), &[host(1)]);
    let mut config = DnsConfig::new(loopback());
    config.poll_interval = Duration::from_millis(20);
    config.retry_max = Duration::from_millis(100);
    let dns = Dns::start(config, Box::new(store.clone())).unwrap();
    store.down.store(true, std::sync::atomic::Ordering::Relaxed);
    store.routes.set_route((4, 4), &[host(2)]);
    eventually("the outage is noticed", || {
        dns.stats().load_errors.load(std::sync::atomic::Ordering::Relaxed) > 0
    });
    assert_eq!(dns.snapshot().hosts((4, 4))[0].addr, host(1), "the last snapshot keeps serving");
    store.down.store(false, std::sync::atomic::Ordering::Relaxed);
    eventually("caught up after the outage", || {
        dns.snapshot().hosts((4, 4)).first().map(|h| h.addr) == Some(host(2))
    });
    assert!(store.describe() == "flaky");
}

#[test]
fn the_client_is_safe_from_many_threads() {
    let system = std::sync::Arc::new(start());
    system.routes.set_route((5, 1), &[host(1), host(2), host(3)]);
    eventually("loaded", || system.dns.snapshot().hosts((5, 1)).len() == 3);
    system.client.reg_init(5, 1, 20).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let system = std::sync::Arc::clone(&system);
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let picked = system.client.get_host(5, 1, None).unwrap();
                    assert!([host(1), host(2), host(3)].contains(&picked));
                    system.client.report(5, 1, picked, Outcome::Ok, Duration::from_micros(50)).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // Stored rows hold the latest window per host (the original's replace semantics), so count
    // at the agent: every report arrived.
    eventually("the agent counted all 1600 reports", || system.agent.stats().reports == 1600);
}

/// A client config for `system`'s agent whose leases refresh every `ttl`.
fn leasing(system: &System, ttl: Duration) -> ClientConfig {
    let mut config = ClientConfig { agent: system.agent.api_addrs().to_vec(), ..ClientConfig::default() };
    config.lease.ttl = from_std(ttl);
    config.lease.flush_interval = from_std(Duration::from_millis(20));
    config
}

#[test]
fn a_lease_picks_locally_follows_route_changes_and_its_counts_reach_the_store() {
    let system = start_with(|config| {
        config.agent.report_interval = lars_core::time::Duration::from_secs(3600);
        config.agent.report_after = 1000;
    });
    system.routes.set_route((8, 1), &[host(1), host(2)]);
    eventually("loaded", || system.dns.snapshot().hosts((8, 1)).len() == 2);
    let client = Client::new(leasing(&system, Duration::from_millis(50)));
    let mut lease = client.lease(8, 1).unwrap();
    let api_before = system.agent.stats().api_requests;
    let mut calls = std::collections::BTreeMap::new();
    for _ in 0..1000 {
        let picked = lease.get_host(None).unwrap();
        *calls.entry(picked).or_insert(0u32) += 1;
        lease.report(picked, Outcome::Ok, Duration::from_micros(80));
    }
    assert_eq!(calls.values().copied().collect::<Vec<_>>(), [500, 500], "the Lars policy alternates");
    lease.flush().unwrap();
    eventually("the agent took the summary", || system.agent.stats().leased_calls == 1000);
    let datagrams = system.agent.stats().api_requests - api_before;
    assert!(datagrams < 20, "1000 calls cost the agent {datagrams} datagrams");
    eventually("the reporter stored the leased counts", || {
        let rows = system.stats.rows();
        rows.len() == 2 && rows.iter().all(|r| r.succ == 500 && r.err == 0)
    });

    system.routes.set_route((8, 1), &[host(2), host(3)]);
    eventually("the lease took the change", || {
        let _ = lease.get_host(None);
        lease.hosts().iter().map(|h| h.addr).eq([host(2), host(3)])
    });
    for _ in 0..50 {
        assert_ne!(lease.get_host(None).unwrap(), host(1));
    }
    system.routes.set_route((8, 1), &[]);
    eventually("a deleted route empties the lease", || {
        matches!(lease.get_host(None), Err(ClientError::NoRoute))
    });
}

#[test]
fn a_lease_keeps_serving_while_the_agent_is_gone() {
    let system = start();
    system.routes.set_route((8, 2), &[host(1)]);
    eventually("loaded", || !system.dns.snapshot().hosts((8, 2)).is_empty());
    // A call that waited for the agent would wait for the client's timeout, an hour: the calls
    // below return only because none of them waits.
    let client = Client::new(ClientConfig {
        timeout: Duration::from_secs(3600),
        ..leasing(&system, Duration::from_millis(10))
    });
    let mut lease = client.lease(8, 2).unwrap();
    let System { agent, .. } = system;
    let api = agent.api_addrs().to_vec();
    agent.shutdown();
    // The agent's ports, now held by an agent that never answers.
    let silent: Vec<std::net::UdpSocket> = api
        .iter()
        .map(|addr| {
            let socket = std::net::UdpSocket::bind(addr).expect("take over the gone agent's port");
            socket.set_nonblocking(true).unwrap();
            socket
        })
        .collect();
    let mut refreshes = 0;
    let mut buf = [0u8; 2048];
    eventually("the lease asks the silent agent for the route, past its ttl", || {
        assert_eq!(lease.get_host(None).unwrap(), host(1));
        lease.report(host(1), Outcome::Ok, Duration::from_micros(10));
        for socket in &silent {
            while let Ok(len) = socket.recv(&mut buf) {
                let asks_for_route = Frame::parse_prefix(&buf[..len], frame::MAX_BODY)
                    .is_ok_and(|parsed| parsed.is_some_and(|(f, _)| f.msgid == MsgId::NativeGetRouteRequest));
                refreshes += usize::from(asks_for_route);
            }
        }
        refreshes > 0
    });
    // Unanswered, the refresh changes nothing: the lease goes on serving what it has.
    for _ in 0..1000 {
        assert_eq!(lease.get_host(None).unwrap(), host(1));
        lease.report(host(1), Outcome::Ok, Duration::from_micros(10));
    }
}

#[test]
fn a_lease_of_an_unknown_route_is_a_clear_error() {
    let system = start();
    // Until the agent has heard from lars-dns it may not answer at all; the lease is asked once
    // it says the route does not exist, so that its answer, not the machine's load, is tested.
    eventually("the agent knows the route does not exist", || {
        matches!(system.client.get_route(404, 1), Err(ClientError::NoRoute))
    });
    let client = Client::new(ClientConfig {
        timeout: Duration::from_millis(500),
        retries: 0,
        ..leasing(&system, Duration::from_secs(1))
    });
    let lease = client.lease(404, 1).map(|_| ());
    assert!(matches!(lease, Err(ClientError::NoRoute)), "{lease:?}");
}

#[test]
fn a_summary_of_many_hosts_reaches_the_agent_in_several_datagrams() {
    let system = start();
    system.routes.set_route((8, 3), &[host(1)]);
    eventually("loaded", || !system.dns.snapshot().hosts((8, 3)).is_empty());
    let mut config = leasing(&system, Duration::from_secs(60));
    config.lease.flush_interval = from_std(Duration::from_secs(60));
    let mut lease = Client::new(config).lease(8, 3).unwrap();
    // 200 hosts the route never had: more entries than one summary datagram carries.
    for port in 0..200 {
        lease.report(SocketAddr::from(([10, 9, 0, 1], 1000 + port)), Outcome::Fail, Duration::ZERO);
    }
    lease.flush().unwrap();
    eventually("every call reached the agent", || {
        let stats = system.agent.stats();
        (stats.leased_calls, stats.stats_dropped_calls) == (200, 0)
    });
}

#[test]
fn a_lease_keeps_its_hosts_while_a_restarted_agent_fetches_the_route_again() {
    let system = start();
    system.routes.set_route((8, 4), &[host(1), host(2)]);
    eventually("loaded", || system.dns.snapshot().hosts((8, 4)).len() == 2);
    let mut lease = Client::new(leasing(&system, Duration::from_millis(20))).lease(8, 4).unwrap();
    let System { agent, dns, reporter, .. } = system;
    let api = agent.api_addrs().to_vec();
    agent.shutdown();
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter.local_addr()]);
    config.api = api;
    // The new agent's first answers are "no such route" while it pulls the route from lars-dns.
    let agent = AgentDaemon::start(config).unwrap();
    let clock = lars_std::time::Clock::new();
    while clock.now().as_millis() < 300 {
        let picked = lease.get_host(None).expect("the lease never loses its hosts");
        assert!([host(1), host(2)].contains(&picked));
    }
    eventually("the lease refreshed from the new agent", || agent.stats().routes_received >= 1);
    assert_eq!(lease.hosts().len(), 2);
}
