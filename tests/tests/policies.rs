//! Every balancing policy through a real agent (lars-dns on a memory store, the agent daemon,
//! the client): what each one hands out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use lars_core::lb::PolicyKind;
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::Outcome;
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::store::memory::MemoryRoutes;

const A: &str = "10.6.0.1:80";
const B: &str = "10.6.0.2:80";

fn picks(
    policy: PolicyKind,
    count: usize,
    key: impl Fn(usize) -> Option<u64>,
) -> BTreeMap<SocketAddr, usize> {
    let routes = MemoryRoutes::new();
    // Weights: A 3, B 1 (only the weighted policy reads them).
    routes.set_weighted_route((51, 1), &[(A.parse().unwrap(), 3), (B.parse().unwrap(), 1)]);
    let dns = Dns::start(DnsConfig::new(ServerConfig::new("127.0.0.1:0".parse().unwrap())), Box::new(routes))
        .unwrap();
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec!["127.0.0.1:9".parse().unwrap()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap()];
    config.agent.default_policy = policy;
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    client.reg_init(51, 1, 100).unwrap();
    let mut seen = BTreeMap::new();
    for i in 0..count {
        let host = client.get_host(51, 1, key(i)).unwrap();
        // A is slow, B fast: only P2C looks.
        let latency = if host == A.parse().unwrap() { 50_000 } else { 500 };
        client.report(51, 1, host, Outcome::Ok, Duration::from_micros(latency)).unwrap();
        *seen.entry(host).or_insert(0) += 1;
    }
    seen
}

fn count(seen: &BTreeMap<SocketAddr, usize>, host: &str) -> usize {
    seen.get(&host.parse().unwrap()).copied().unwrap_or(0)
}

#[test]
fn lars_and_round_robin_alternate() {
    for policy in [PolicyKind::Lars, PolicyKind::RoundRobin] {
        let seen = picks(policy, 40, |_| None);
        assert_eq!((count(&seen, A), count(&seen, B)), (20, 20), "{policy:?}");
    }
}

#[test]
fn weighted_follows_the_weights() {
    let seen = picks(PolicyKind::Weighted, 40, |_| None);
    assert_eq!((count(&seen, A), count(&seen, B)), (30, 10));
}

#[test]
fn p2c_prefers_the_faster_host() {
    let seen = picks(PolicyKind::P2c, 200, |_| None);
    assert!(count(&seen, B) > 3 * count(&seen, A), "{seen:?}");
}

#[test]
fn maglev_keeps_a_key_on_one_host() {
    let seen = picks(PolicyKind::Maglev, 30, |_| Some(42));
    assert_eq!(seen.len(), 1, "one key, one host: {seen:?}");
    let spread = picks(PolicyKind::Maglev, 64, |i| Some(i as u64 * 7919));
    assert_eq!(spread.len(), 2, "many keys reach both hosts: {spread:?}");
}
