//! lars-agent started from a `.conf` file, as an operator starts it: the balancing policy of
//! `[loadbalance]` and of a `[route:MODID:CMDID]` section, and a bad value refused with the
//! file, line and key.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::store::memory::MemoryRoutes;

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts lars-agent on `conf` and returns it with its API address, read from its log.
fn start(conf: &std::path::Path) -> (Agent, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lars-agent"))
        .args(["--config", conf.to_str().unwrap(), "--api", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("lars-agent said where it serves").unwrap();
        if let Some((_, addr)) = line.split_once("lars-agent: serving on UDP ") {
            break addr.trim().parse().unwrap();
        }
    };
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (Agent(child), addr)
}

#[test]
fn policies_from_the_conf_file_reach_the_routes() {
    let routes = MemoryRoutes::new();
    let hosts = [("10.7.0.1:80".parse().unwrap(), 3), ("10.7.0.2:80".parse().unwrap(), 1)];
    routes.set_weighted_route((61, 1), &hosts);
    routes.set_weighted_route((62, 1), &hosts);
    let dns = Dns::start(DnsConfig::new(ServerConfig::new("127.0.0.1:0".parse().unwrap())), Box::new(routes))
        .unwrap();
    let dir = std::env::temp_dir().join(format!("lars-agent-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("lars_lb_agent.conf");
    let text = format!(
        "[dnsserver]\nip = 127.0.0.1\nport = {}\n[reporter]\nip = 127.0.0.1\nport = 9\n\
         [loadbalance]\npolicy = weighted\n[route:62:1]\npolicy = maglev\n",
        dns.local_addr().port()
    );
    std::fs::write(&conf, text).unwrap();
    let (_agent, api) = start(&conf);
    let client = Client::new(ClientConfig { agent: vec![api], ..ClientConfig::default() });
    client.reg_init(61, 1, 100).unwrap();
    client.reg_init(62, 1, 100).unwrap();
    let weighted: Vec<SocketAddr> = (0..8).map(|_| client.get_host(61, 1, None).unwrap()).collect();
    let heavy = weighted.iter().filter(|h| **h == hosts[0].0).count();
    assert_eq!(heavy, 6, "weights 3:1 over two cycles: {weighted:?}");
    let keyed: Vec<SocketAddr> = (0..8).map(|_| client.get_host(62, 1, Some(99)).unwrap()).collect();
    assert!(keyed.windows(2).all(|w| w[0] == w[1]), "maglev keeps the key on one host: {keyed:?}");

    // The adaptive wait off: `--check-config` says where that came from, and an agent so
    // configured serves without ever trying a spin.
    let quiet = dir.join("quiet.conf");
    let text =
        format!("[dnsserver]\nip = 127.0.0.1\nport = {}\n[agent]\nspin = off\n", dns.local_addr().port());
    std::fs::write(&quiet, text).unwrap();
    let checked = Command::new(env!("CARGO_BIN_EXE_lars-agent"))
        .args(["--config", quiet.to_str().unwrap(), "--check-config"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&checked.stdout);
    assert!(
        shown.lines().any(|line| line.starts_with("spin = off") && line.ends_with("quiet.conf:5")),
        "{shown}"
    );
    let (_quiet_agent, quiet_api) = start(&quiet);
    let client = Client::new(ClientConfig { agent: vec![quiet_api], ..ClientConfig::default() });
    client.reg_init(61, 1, 100).unwrap();
    for _ in 0..500 {
        client.get_host(61, 1, None).unwrap();
    }
    let counters = client.agent_stats().unwrap();
    // With the wait on, 500 calls back to back either spin, try to, or find the cores
    // crowded (`spin_crowded_samples`): each counts.
    let spin: u64 =
        counters.iter().filter(|(name, _)| name.starts_with("spin_")).map(|(_, value)| value).sum();
    assert_eq!(spin, 0, "{counters:?}");

    std::fs::write(&conf, "[loadbalance]\npolicy = fastest\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lars-agent"))
        .args(["--config", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a configuration error stops it");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lars_lb_agent.conf:2: key `loadbalance.policy`: `fastest` is not lars, round_robin, weighted, p2c or maglev"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
