//! Routes stay right when lars-dns, its store or its replicas have a bad day: the real daemons
//! on loopback, with the route file and MySQL stores.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::store::RouteStore;
use lars_std::store::file::RouteFile;
use lars_std::store::mysql::MysqlRoutes;
use lars_tests::eventually;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lars-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dns_at(addr: SocketAddr, store: Box<dyn RouteStore>) -> Dns {
    let mut server = ServerConfig::new(addr);
    server.threads = 1;
    let mut config = DnsConfig::new(server);
    config.poll_interval = Duration::from_millis(50);
    config.retry_max = Duration::from_millis(200);
    Dns::start(config, store).unwrap()
}

fn file_store(path: &Path) -> Box<dyn RouteStore> {
    Box::new(RouteFile::new(path))
}

fn agent_of(dns: SocketAddr) -> (AgentDaemon, Client) {
    let mut config = AgentDaemonConfig::new(vec![dns], vec!["127.0.0.1:9".parse().unwrap()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap()];
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    (agent, client)
}

/// lars-dns restarted on a store it cannot read (here a route file that is gone; MySQL down is
/// the same to the loader) used to answer every re-pull with "no such route", and the agents
/// deleted their routes. It now answers "not ready", and agents keep serving.
#[test]
fn a_restarted_dns_that_cannot_read_its_store_does_not_wipe_the_agents() {
    let scratch = Scratch::new("unready");
    let routes = scratch.0.join("routes.conf");
    std::fs::write(&routes, "31 1 10.4.0.1:80\n31 1 10.4.0.2:80\n").unwrap();
    let dns = dns_at("127.0.0.1:0".parse().unwrap(), file_store(&routes));
    let addr = dns.local_addr();
    let (agent, client) = agent_of(addr);
    assert_eq!(client.reg_init(31, 1, 100).unwrap().hosts.len(), 2);

    dns.shutdown();
    let gone = scratch.0.join("missing.conf");
    let dns = dns_at(addr, file_store(&gone));
    eventually("the agent asked the restarted dns", || {
        dns.stats().unready_answers.load(Ordering::Relaxed) > 0
    });
    eventually("the agent heard it is not ready", || agent.stats().dns_unready_answers > 0);
    for _ in 0..500 {
        assert!(client.get_host(31, 1, None).is_ok(), "still served from the agent's copy");
    }
    assert_eq!(client.get_route(31, 1).unwrap().hosts.len(), 2);

    // The store comes back: the agent is pushed its routes (pulled again, in fact) and the
    // dns is ready.
    std::fs::write(&gone, "31 1 10.4.0.3:80\n").unwrap();
    eventually("loaded", || dns.stats().ready.load(Ordering::Relaxed) == 1);
    eventually("the agent has the store's routes", || {
        client.get_route(31, 1).is_ok_and(|r| r.hosts.len() == 1)
    });
}

/// The same with MySQL down when lars-dns starts: nothing is served as "no such route".
#[test]
fn a_dns_started_while_mysql_is_unreachable_answers_not_ready() {
    let dead: mysql::Opts = mysql::OptsBuilder::new().ip_or_hostname(Some("127.0.0.1")).tcp_port(9).into();
    let dns = dns_at("127.0.0.1:0".parse().unwrap(), Box::new(MysqlRoutes::new(dead)));
    let (agent, client) = agent_of(dns.local_addr());
    assert!(client.get_host(32, 1, None).is_err());
    eventually("the agent heard it is not ready", || agent.stats().dns_unready_answers > 0);
    assert_eq!(dns.stats().ready.load(Ordering::Relaxed), 0);
}
