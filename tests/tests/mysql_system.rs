//! The whole system against the real MariaDB (a fresh database per test): routes changed with
//! plain SQL the way the original web console does it, statistics rows, and a dns restart.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use mysql::prelude::Queryable;

use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::Outcome;
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::mysql::{MysqlRoutes, MysqlStats};
use lars_tests::{TestDb, eventually};

fn loopback() -> ServerConfig {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 2;
    config
}

fn dns_on(db: &TestDb, addr: SocketAddr) -> Dns {
    let mut config = DnsConfig::new(ServerConfig { addr, ..loopback() });
    config.poll_interval = Duration::from_millis(100);
    Dns::start(config, Box::new(MysqlRoutes::new(db.opts.clone()))).unwrap()
}

struct System {
    db: TestDb,
    dns: Dns,
    reporter: Reporter,
    agent: AgentDaemon,
    client: Client,
}

impl System {
    fn clientagents(&self) -> Vec<SocketAddr> {
        self.agent.api_addrs().to_vec()
    }
}

fn start() -> System {
    start_with(|_| {})
}

fn start_with(tune: impl FnOnce(&mut AgentDaemonConfig)) -> System {
    let db = TestDb::create();
    let dns = dns_on(&db, "127.0.0.1:0".parse().unwrap());
    let opts = db.opts.clone();
    let reporter =
        Reporter::start(ReporterConfig::new(loopback()), move |_| Box::new(MysqlStats::new(opts.clone())))
            .unwrap();
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter.local_addr()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    tune(&mut config);
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    System { db, dns, reporter, agent, client }
}

const A: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

#[test]
fn a_route_added_with_sql_is_read_from_the_change_log_and_pushed_to_get_route() {
    let system = start();
    assert!(system.client.get_route(9, 1).is_err(), "no such route yet: the agent subscribes to it");
    system.db.console_add(9, 1, A, 8000);
    eventually("the route reaches the client", || {
        system.client.get_route(9, 1).is_ok_and(|r| r.hosts.len() == 1)
    });
    // Through the change log, not the periodic reload (10 s): the start's full load is the only one.
    let stats = system.dns.stats();
    assert_eq!(stats.loads.load(Ordering::Relaxed) - stats.change_reads.load(Ordering::Relaxed), 1);
    system.db.console_add(9, 1, B, 8000);
    eventually("the second host arrives", || system.client.get_route(9, 1).is_ok_and(|r| r.hosts.len() == 2));
    let remaining: u64 = system.db.count("SELECT COUNT(*) FROM RouteChange");
    assert_eq!(remaining, 2, "lars-dns reads the change log and leaves it for other replicas");
    let stats = system.dns.stats();
    let (loads, change_reads) =
        (stats.loads.load(Ordering::Relaxed), stats.change_reads.load(Ordering::Relaxed));
    assert!(change_reads >= 2, "each change read from the change log: {change_reads} of {loads}");
    assert_eq!(loads - change_reads, 1, "one full load, at start: changes read only their routes");
}

#[test]
fn a_deleted_host_stops_being_handed_out() {
    let system = start();
    system.db.console_add(5, 5, A, 7000);
    system.db.console_add(5, 5, B, 7000);
    eventually("loaded", || system.dns.snapshot().hosts((5, 5)).len() == 2);
    system.client.reg_init(5, 5, 20).unwrap();
    system.db.console_delete(5, 5, A, 7000);
    eventually("the deletion is pushed", || system.client.get_route(5, 5).is_ok_and(|r| r.hosts.len() == 1));
    for _ in 0..30 {
        assert_eq!(system.client.get_host(5, 5, None).unwrap(), SocketAddr::from((B, 7000)));
    }
}

#[test]
fn the_reporters_rows_appear_with_the_right_counts() {
    // One flush carrying all 60 results: rows hold one window each (replace semantics).
    let system = start_with(|config| {
        config.agent.report_interval = lars_core::time::Duration::from_secs(3600);
        config.agent.report_after = 60;
    });
    system.db.console_add(3, 4, A, 9000);
    system.db.console_add(3, 4, B, 9000);
    eventually("loaded", || system.dns.snapshot().hosts((3, 4)).len() == 2);
    system.client.reg_init(3, 4, 20).unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..60 {
        let host = system.client.get_host(3, 4, None).unwrap();
        let ok = !(host.ip() == std::net::IpAddr::V4(B) && i % 3 == 0);
        let entry = expected.entry(host).or_insert((0u32, 0u32));
        if ok {
            entry.0 += 1
        } else {
            entry.1 += 1
        }
        system
            .client
            .report(3, 4, host, if ok { Outcome::Ok } else { Outcome::Fail }, Duration::from_micros(500))
            .unwrap();
    }
    eventually("rows in ServerCallStatus", || {
        let rows: Vec<(u32, u32, u32, u32)> = system
            .db
            .conn()
            .query("SELECT ip, port, succ_cnt, err_cnt FROM ServerCallStatus WHERE modid = 3 AND cmdid = 4")
            .unwrap();
        rows.len() == 2
            && rows.iter().all(|&(ip, port, succ, err)| {
                expected.get(&SocketAddr::from((Ipv4Addr::from_bits(ip), port as u16))) == Some(&(succ, err))
            })
    });
    assert_eq!(system.reporter.stats().rows_dropped.load(Ordering::Relaxed), 0);
}

#[test]
fn killing_dns_leaves_theagent_serving_and_a_restart_resumes_pushes() {
    let db = TestDb::create();
    db.console_add(8, 8, A, 1000);
    let dns = dns_on(&db, "127.0.0.1:0".parse().unwrap());
    let dns_addr = dns.local_addr();
    let mut config = AgentDaemonConfig::new(vec![dns_addr], vec!["127.0.0.1:9".parse().unwrap()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    client.reg_init(8, 8, 20).unwrap();
    dns.shutdown();
    for _ in 0..20 {
        assert_eq!(
            client.get_host(8, 8, None).unwrap(),
            SocketAddr::from((A, 1000)),
            "cached hosts keep serving"
        );
    }
    db.console_add(8, 8, B, 1000);
    let restarted = (0..100)
        .find_map(|_| {
            let mut config = DnsConfig::new(ServerConfig { addr: dns_addr, ..loopback() });
            config.poll_interval = Duration::from_millis(100);
            let started = Dns::start(config, Box::new(MysqlRoutes::new(db.opts.clone())));
            if started.is_err() {
                std::thread::sleep(Duration::from_millis(50));
            }
            started.ok()
        })
        .expect("lars-dns restarts on its port");
    eventually("the agent reconnects and re-pulls", || {
        client.get_route(8, 8).is_ok_and(|r| r.hosts.len() == 2)
    });
    db.console_delete(8, 8, A, 1000);
    eventually("pushes flow again", || client.get_route(8, 8).is_ok_and(|r| r.hosts.len() == 1));
    drop(restarted);
}

#[test]
fn a_leased_routes_counts_reach_server_call_status_and_it_follows_console_changes() {
    let system = start_with(|config| {
        config.agent.report_interval = lars_core::time::Duration::from_secs(3600);
        config.agent.report_after = 300;
    });
    system.db.console_add(6, 1, A, 9100);
    system.db.console_add(6, 1, B, 9100);
    eventually("loaded", || system.dns.snapshot().hosts((6, 1)).len() == 2);
    let mut config = ClientConfig { agent: system.clientagents(), ..ClientConfig::default() };
    config.lease.ttl = lars_core::time::Duration::from_millis(50);
    let client = Client::new(config);
    let mut lease = client.lease(6, 1).unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..300 {
        let host = lease.get_host(None).unwrap();
        // One failure in ten on B: too few for the Lars policy to overload it.
        let ok = !(host.ip() == std::net::IpAddr::V4(B) && i % 10 == 1);
        let entry = expected.entry(host).or_insert((0u32, 0u32));
        if ok {
            entry.0 += 1
        } else {
            entry.1 += 1
        }
        lease.report(host, if ok { Outcome::Ok } else { Outcome::Fail }, Duration::from_micros(700));
    }
    lease.flush().unwrap();
    eventually("rows in ServerCallStatus", || {
        let rows: Vec<(u32, u32, u32, u32)> = system
            .db
            .conn()
            .query("SELECT ip, port, succ_cnt, err_cnt FROM ServerCallStatus WHERE modid = 6 AND cmdid = 1")
            .unwrap();
        rows.len() == 2
            && rows.iter().all(|&(ip, port, succ, err)| {
                expected.get(&SocketAddr::from((Ipv4Addr::from_bits(ip), port as u16))) == Some(&(succ, err))
            })
    });
    system.db.console_delete(6, 1, A, 9100);
    eventually("the deletion reaches the lease", || {
        let _ = lease.get_host(None);
        lease.hosts().len() == 1
    });
    for _ in 0..30 {
        assert_eq!(lease.get_host(None).unwrap(), SocketAddr::from((B, 9100)));
    }
}

#[test]
fn a_route_emptied_by_the_console_is_gone_and_a_bump_without_a_change_log_reloads_everything() {
    let system = start();
    system.db.console_add(4, 2, A, 7100);
    eventually("loaded", || system.dns.snapshot().hosts((4, 2)).len() == 1);
    system.client.reg_init(4, 2, 20).unwrap();
    system.db.console_delete(4, 2, A, 7100);
    eventually("the empty route is pushed", || {
        matches!(system.client.get_route(4, 2), Err(lars_std::client::ClientError::NoRoute))
    });
    assert!(system.dns.snapshot().routes.is_empty());
    // A tool that bumps RouteVersion but writes no RouteChange row (the original's seed
    // scripts do): lars-dns cannot tell what changed, so it reads everything.
    let mut conn = system.db.conn();
    conn.exec_drop(
        "INSERT INTO RouteData (modid, cmdid, serverip, serverport) VALUES (?, ?, ?, ?)",
        (4u32, 3u32, B.to_bits(), 7200u32),
    )
    .unwrap();
    conn.query_drop("UPDATE RouteVersion SET version = version + 1 WHERE id = 1").unwrap();
    let loads = system.dns.stats().loads.load(Ordering::Relaxed);
    let change_reads = system.dns.stats().change_reads.load(Ordering::Relaxed);
    eventually("the route arrives by a full load", || system.dns.snapshot().hosts((4, 3)).len() == 1);
    assert!(system.dns.stats().loads.load(Ordering::Relaxed) > loads);
    assert_eq!(system.dns.stats().change_reads.load(Ordering::Relaxed), change_reads);
}

#[test]
fn dns_started_before_its_database_exists_loads_every_route_once_it_does() {
    let db = TestDb::create();
    let late = format!("{}_late", db.name);
    let opts: mysql::Opts = mysql::OptsBuilder::from_opts(db.opts.clone()).db_name(Some(late.clone())).into();
    let mut config = DnsConfig::new(loopback());
    config.poll_interval = Duration::from_millis(20);
    config.retry_max = Duration::from_millis(100);
    let dns = Dns::start(config, Box::new(MysqlRoutes::new(opts.clone()))).unwrap();
    lars_std::store::mysql::init_schema(&opts).unwrap();
    let mut conn = mysql::Conn::new(opts).unwrap();
    for (modid, port) in [(1u32, 8001u32), (2, 8002)] {
        conn.exec_drop(
            "INSERT INTO RouteData (modid, cmdid, serverip, serverport) VALUES (?, 1, ?, ?)",
            (modid, A.to_bits(), port),
        )
        .unwrap();
    }
    // The change log names one route; the snapshot is empty, so patching it would lose the
    // other one.
    lars_tests::console_bump(&mut conn, 2, 1);
    eventually("every route loaded", || {
        let snapshot = dns.snapshot();
        snapshot.hosts((1, 1)).len() == 1 && snapshot.hosts((2, 1)).len() == 1
    });
    conn.query_drop(format!("DROP DATABASE {late}")).unwrap();
}

#[test]
fn the_packaged_schema_script_makes_the_schema_the_daemons_use() {
    let db = TestDb::create_from_script(&lars_std::store::mysql::schema_sql());
    db.console_add(1001, 1, Ipv4Addr::new(10, 0, 0, 1), 80);
    let mut conn = db.conn();
    let weights: Vec<u32> = conn.query("SELECT weight FROM RouteData").unwrap();
    assert_eq!(weights, [1], "the weight extension is there");
    let dns = dns_on(&db, "127.0.0.1:0".parse().unwrap());
    eventually("lars-dns loads the route", || dns.snapshot().routes.len() == 1);
    // Running `db-init` over it changes nothing and fails on nothing.
    lars_std::store::mysql::init_schema(&db.opts).unwrap();
}

/// Every table, column and index of a database, with types, defaults and the rows of
/// `RouteVersion`, one line each, for comparing two databases.
fn shape(db: &TestDb) -> Vec<String> {
    let mut conn = db.conn();
    let mut lines: Vec<String> = conn
        .exec(
            "SELECT CONCAT_WS(' ', 'table', TABLE_NAME, ENGINE, TABLE_COLLATION)
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?
             UNION ALL
             SELECT CONCAT_WS(' ', 'column', TABLE_NAME, ORDINAL_POSITION, COLUMN_NAME, COLUMN_TYPE,
                              IS_NULLABLE, COALESCE(COLUMN_DEFAULT, '(none)'), EXTRA)
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?
             UNION ALL
             SELECT CONCAT_WS(' ', 'index', TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE)
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?",
            (&db.name, &db.name, &db.name),
        )
        .unwrap();
    let versions: Vec<(u32, u32)> = conn.query("SELECT id, version FROM RouteVersion").unwrap();
    lines.extend(versions.iter().map(|(id, version)| format!("RouteVersion row {id} {version}")));
    lines.sort();
    lines
}

#[test]
fn the_packaged_schema_is_what_db_init_makes_and_every_daemon_starts_on_it() {
    use lars_std::store::console::{ConsoleStore, MysqlConsole};
    use lars_std::store::history::mysql::MysqlHistory;
    use std::io::{Read, Write};

    let script = TestDb::create_from_script(&lars_std::store::mysql::schema_sql());
    let db_init = TestDb::create();
    let made = shape(&script);
    assert_eq!(made, shape(&db_init), "schema.sql and db-init make the same schema");
    for table in lars_tests::schema::SCHEMA_TABLES {
        assert!(made.iter().any(|line| line.starts_with(&format!("table {table} "))), "{table}: {made:#?}");
    }
    // lars-reporter keeps its history there, and the console can use every feature.
    let mut history = MysqlHistory::new(script.opts.clone());
    assert!(history.tables_exist().unwrap(), "CallHistory and HostDecision are there");
    let opts = script.opts.clone();
    let reporter = Reporter::start_with_history(
        ReporterConfig::new(loopback()),
        move |_| Box::new(MysqlStats::new(opts.clone())),
        Some(Box::new(history)),
    )
    .unwrap();
    let mut console = MysqlConsole::new(script.opts.clone());
    let capabilities = console.capabilities().unwrap();
    assert!(capabilities.weights && capabilities.rotation && capabilities.audit, "{capabilities:?}");
    let state = lars_tests::Scratch::new("packaged-schema-web");
    let mut config = lars_web::ConsoleConfig::new(&state.0);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let web = lars_web::start(&config, Box::new(console)).unwrap();
    let mut conn = std::net::TcpStream::connect(web.addr()).unwrap();
    conn.write_all(b"GET /login HTTP/1.1\r\nHost: lars\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let dns = dns_on(&script, "127.0.0.1:0".parse().unwrap());
    eventually("lars-dns loads the (empty) store", || dns.stats().ready.load(Ordering::Relaxed) == 1);
    drop((web, reporter, dns));
}
