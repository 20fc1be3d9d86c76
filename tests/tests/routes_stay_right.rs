//! Routes stay right when lars-dns, its store or its replicas have a bad day: the real daemons
//! on loopback, with the route file and MySQL stores.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::store::RouteStore;
use lars_std::store::file::{RouteFile, SETTLE};
use lars_std::store::mysql::MysqlRoutes;
use lars_tests::{Scratch, eventually};

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

fn dns_with(addr: SocketAddr, store: Box<dyn RouteStore>, reload: Duration, shrink_limit: f64) -> Dns {
    let mut server = ServerConfig::new(addr);
    server.threads = 1;
    let mut config = DnsConfig::new(server);
    config.shrink_limit = shrink_limit;
    config.poll_interval = Duration::from_millis(20);
    config.reload_interval = reload;
    config.retry_max = Duration::from_millis(100);
    Dns::start(config, store).unwrap()
}

fn route_lines(routes: std::ops::Range<i32>) -> String {
    routes.map(|modid| format!("{modid} 1 10.4.1.{}:80\n", modid % 250)).collect()
}

/// A load that removes most routes at once (a truncated file, a wiped table) is held, logged
/// and counted, and agents keep their routes, through other changes in between; a full load
/// at least the reload interval later that still says so confirms it.
#[test]
fn a_load_that_removes_most_routes_is_held_until_a_later_load_confirms_it() {
    let scratch = Scratch::new("shrink");
    let path = scratch.0.join("routes.conf");
    std::fs::write(&path, route_lines(100..120)).unwrap();
    let interval = Duration::from_secs(2);
    let dns = dns_with("127.0.0.1:0".parse().unwrap(), file_store(&path), interval, 0.5);
    let (_agent, client) = agent_of(dns.local_addr());
    assert!(client.reg_init(101, 1, 100).is_ok());
    let rewrite = |routes: std::ops::Range<i32>| {
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, route_lines(routes)).unwrap();
        std::fs::rename(&temp, &path).unwrap();
    };
    let clock = lars_std::time::Clock::new();
    rewrite(100..102);
    eventually("held", || dns.stats().held_loads.load(Ordering::Relaxed) == 1);
    let held_at = clock.now();
    // Another change while held (a third route): still too much gone, still held.
    rewrite(100..103);
    eventually("held again", || dns.stats().held_loads.load(Ordering::Relaxed) == 2);
    // Whatever the machine's load, nothing is confirmed before the interval has passed.
    if clock.now().saturating_since(held_at) < lars_std::time::from_std(interval) {
        assert_eq!(dns.snapshot().routes.len(), 20, "still serving the last routes");
    }
    eventually("confirmed by a full load after the interval", || dns.snapshot().routes.len() == 3);
    assert!(clock.now().saturating_since(held_at) >= lars_std::time::from_std(interval));
}

/// A route file rewritten in place (truncated, then written in two parts) is never read half
/// written: callers never see a route vanish.
#[test]
fn a_route_file_rewritten_in_place_is_never_read_half_written() {
    use std::io::Write;
    let scratch = Scratch::new("in-place");
    let path = scratch.0.join("routes.conf");
    let text = route_lines(200..240);
    std::fs::write(&path, &text).unwrap();
    // The shrink protection off: this is about reading the file.
    let dns = dns_with("127.0.0.1:0".parse().unwrap(), file_store(&path), Duration::from_millis(200), 1.0);
    let (agent, client) = agent_of(dns.local_addr());
    for modid in 200..240 {
        assert!(client.reg_init(modid, 1, 100).is_ok());
    }
    let (first, second) = text.split_at(text.len() / 3);
    let served = |modid: i32| client.get_host(modid, 1, None);
    // A file still for SETTLE is taken as whole: a writer that stalls that long between its
    // two writes (a loaded machine can stall this thread) has truly left a half file, which
    // lars-dns may read. Such a rewrite proves nothing; it is not counted, and the next one
    // waits until the whole file is served again.
    let clock = lars_std::time::Clock::new();
    let (mut counted, mut stalled) = (0, 0);
    while counted < 30 {
        assert!(stalled < 30, "30 rewrites stalled past {SETTLE:?}: the machine is too loaded to tell");
        let mut file = std::fs::File::create(&path).unwrap();
        let started = clock.now();
        file.write_all(first.as_bytes()).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(25));
        file.write_all(second.as_bytes()).unwrap();
        drop(file);
        if clock.now().saturating_since(started) >= lars_std::time::from_std(SETTLE / 2) {
            stalled += 1;
            lars_tests::eventually_within(SETTLE, "the whole file served again", || {
                (200..240).all(|modid| served(modid).is_ok())
            });
            continue;
        }
        counted += 1;
        for modid in 200..240 {
            if let Err(e) = served(modid) {
                panic!("route {modid} vanished: {}", lars_std::client::with_causes(&e));
            }
        }
    }
    assert_eq!(dns.snapshot().routes.len(), 40);
    assert_eq!(agent.stats().route_table_full, 0);
}

fn agent_with_cache(dns: SocketAddr, cache: &Path, max_age: Duration) -> (AgentDaemon, Client) {
    let mut config = AgentDaemonConfig::new(vec![dns], vec!["127.0.0.1:9".parse().unwrap()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap()];
    config.route_cache = Some(cache.to_path_buf());
    config.route_cache_max_age = max_age;
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    (agent, client)
}

/// An agent restarted while lars-dns is unreachable serves the routes it saved; a copy older
/// than the configured age is not used.
#[test]
fn an_agent_restarted_while_dns_is_down_serves_its_saved_routes() {
    let scratch = Scratch::new("cache");
    let routes = scratch.0.join("routes.conf");
    std::fs::write(&routes, "71 1 10.4.2.1:80\n71 1 10.4.2.2:80\n").unwrap();
    let cache = scratch.0.join("agent.cache");
    let dns = dns_at("127.0.0.1:0".parse().unwrap(), file_store(&routes));
    let (agent, client) = agent_with_cache(dns.local_addr(), &cache, Duration::from_secs(3600));
    assert_eq!(client.reg_init(71, 1, 100).unwrap().hosts.len(), 2);
    eventually("the routes are saved", || {
        std::fs::read_to_string(&cache)
            .is_ok_and(|text| text.lines().filter(|l| l.starts_with("71 1 ")).count() == 2)
    });
    agent.shutdown();
    dns.shutdown();

    // Nothing listens at the dns address now.
    let dead: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (agent, client) = agent_with_cache(dead, &cache, Duration::from_secs(3600));
    for _ in 0..100 {
        assert!(client.get_host(71, 1, None).is_ok(), "served from the saved copy");
    }
    assert_eq!(client.get_route(71, 1).unwrap().hosts.len(), 2);
    agent.shutdown();

    // The same copy, saved (its header says) ten seconds earlier, and an agent that accepts
    // none older than a second.
    let text = std::fs::read_to_string(&cache).unwrap();
    let (header, rest) = text.split_once('\n').expect("a header line");
    let (prefix, saved) = header.rsplit_once(' ').expect("`... unix time N`");
    let saved: u64 = saved.parse().expect("the save time");
    std::fs::write(&cache, format!("{prefix} {}\n{rest}", saved - 10)).unwrap();
    let (_agent, client) = agent_with_cache(dead, &cache, Duration::from_secs(1));
    assert!(client.get_host(71, 1, None).is_err(), "a copy too old is ignored");
}

/// Three lars-dns replicas on one database, with agents failing over between them while routes
/// change. Each replica follows `RouteChange` with its own cursor (they used to delete the rows
/// they applied, so the others missed them until their full reload): every change reaches every
/// agent through the change log, although the full reload is an hour away.
#[test]
fn three_replicas_on_one_database_each_follow_every_change() {
    use lars_tests::TestDb;
    use std::net::Ipv4Addr;

    let db = TestDb::create();
    let replica = |addr: SocketAddr| {
        dns_with(addr, Box::new(MysqlRoutes::new(db.opts.clone())), Duration::from_secs(3600), 0.5)
    };
    let mut replicas: Vec<Dns> = (0..3).map(|_| replica("127.0.0.1:0".parse().unwrap())).collect();
    let addrs: Vec<SocketAddr> = replicas.iter().map(Dns::local_addr).collect();
    // Agent i asks replica i first and fails over to the next ones.
    let agents: Vec<(AgentDaemon, Client)> = (0..3)
        .map(|i| {
            let order = (0..3).map(|k| addrs[(i + k) % 3]).collect();
            let mut config = AgentDaemonConfig::new(order, vec!["127.0.0.1:9".parse().unwrap()]);
            config.api = vec!["127.0.0.1:0".parse().unwrap()];
            let agent = AgentDaemon::start(config).unwrap();
            let client =
                Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
            (agent, client)
        })
        .collect();
    let host = |n: u8| Ipv4Addr::new(10, 5, 0, n);
    let hosts_of = |client: &Client, modid: i32| -> Vec<SocketAddr> {
        client.get_route(modid, 1).map(|r| r.hosts.iter().map(|h| h.addr).collect()).unwrap_or_default()
    };
    let every_agent_sees = |what: &str, modid: i32, want: &[SocketAddr]| {
        for (i, (_, client)) in agents.iter().enumerate() {
            eventually(&format!("agent {i}: {what}"), || {
                let mut got = hosts_of(client, modid);
                got.sort();
                got == want
            });
        }
    };
    let addr = |n: u8| SocketAddr::from((host(n), 80));

    for modid in 50..53u32 {
        db.console_add(modid, 1, host(1), 80);
    }
    for (_, client) in &agents {
        for modid in 50..53 {
            let _ = client.reg_init(modid, 1, 100);
        }
    }
    for modid in 50..53 {
        every_agent_sees("route added", modid, &[addr(1)]);
    }
    db.console_add(50, 1, host(2), 80);
    every_agent_sees("a host added", 50, &[addr(1), addr(2)]);

    // Replica 0 goes away: agent 0 fails over to replica 1, and changes keep coming.
    replicas.remove(0).shutdown();
    db.console_delete(50, 1, host(1), 80);
    db.console_add(51, 1, host(3), 80);
    every_agent_sees("a host deleted", 50, &[addr(2)]);
    every_agent_sees("another host added", 51, &[addr(1), addr(3)]);

    // It comes back at its address (a full load at start), and follows the log from there.
    replicas.insert(0, replica(addrs[0]));
    eventually("the replica has loaded", || replicas[0].stats().ready.load(Ordering::Relaxed) == 1);
    db.console_delete(52, 1, host(1), 80);
    every_agent_sees("a route emptied", 52, &[]);

    for (i, dns) in replicas.iter().enumerate() {
        let stats = dns.stats();
        // The agents may have heard of the last change from the other replicas first.
        eventually(&format!("replica {i} read the change log"), || {
            stats.change_reads.load(Ordering::Relaxed) >= 1
        });
        let (loads, change_reads) =
            (stats.loads.load(Ordering::Relaxed), stats.change_reads.load(Ordering::Relaxed));
        assert_eq!(loads - change_reads, 1, "replica {i}: one full load at start, the rest from the log");
    }
    let rows: u64 = db.count("SELECT COUNT(*) FROM RouteChange");
    assert_eq!(rows, 7, "no replica consumes the log");
}

/// `RouteChange` rows go once they are older than the retention (by when the replica read
/// them: their `version` is whatever the writer put there), and not before every change was
/// applied.
#[test]
fn change_log_rows_are_pruned_once_older_than_the_retention() {
    use lars_tests::TestDb;
    use std::net::Ipv4Addr;

    let db = TestDb::create();
    // Short enough to see rows pruned, long enough that half of it (the longest a replica may
    // go without a read before it loads everything) is far above the loader's 20 ms polls.
    let retention = Duration::from_secs(4);
    let store = MysqlRoutes::new(db.opts.clone()).with_change_retention(retention);
    let dns = dns_with("127.0.0.1:0".parse().unwrap(), Box::new(store), Duration::from_secs(3600), 0.5);
    let (_agent, client) = agent_of(dns.local_addr());
    for n in 1..=3 {
        db.console_add(53, 1, Ipv4Addr::new(10, 5, 1, n), 80);
    }
    let _ = client.reg_init(53, 1, 100);
    eventually("every change applied", || client.get_route(53, 1).is_ok_and(|r| r.hosts.len() == 3));
    let rows = || -> u64 { db.count("SELECT COUNT(*) FROM RouteChange") };
    lars_tests::eventually_within(retention, "rows older than the retention are pruned", || rows() == 0);
    // A store quiet for longer than half the retention: the replica saw the version it read
    // at every poll, so the next change still comes from the log, not from a full load.
    std::thread::sleep(retention / 2 + Duration::from_millis(500));
    db.console_add(53, 1, Ipv4Addr::new(10, 5, 1, 4), 80);
    eventually("the change after the quiet spell applied", || {
        client.get_route(53, 1).is_ok_and(|r| r.hosts.len() == 4)
    });
    assert_eq!(
        dns.stats().loads.load(Ordering::Relaxed),
        1 + dns.stats().change_reads.load(Ordering::Relaxed),
        "one full load; every change through the log"
    );
}
