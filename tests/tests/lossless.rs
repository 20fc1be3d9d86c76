//! Nothing accepted is lost: the agent holds its statistics while lars-reporter is unreachable
//! and sends them on a stop; lars-reporter stores every row it accepted before it stops (on
//! MariaDB); and with MariaDB hung, lars-dns and lars-reporter still stop, lars-reporter saying
//! what it could not store (on a private `mariadbd` that the test starts, hangs and kills by
//! its pid).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::time::Duration;

use mysql::prelude::Queryable;

use lars_core::agent::AgentConfig;
use lars_core::lb::PolicyKind;
use lars_core::wire::native::{CallStats, HostStats, Outcome};
use lars_core::wire::{List, MsgId, frame};
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::file::RouteFile;
use lars_std::store::memory::MemoryStats;
use lars_std::store::mysql::{MysqlRoutes, MysqlStats};
use lars_tests::mariadb::PrivateMariadb;
use lars_tests::{FrameClient, Scratch, TestDb, eventually, eventually_within};

fn loopback(addr: SocketAddr) -> ServerConfig {
    let mut config = ServerConfig::new(addr);
    config.threads = 2;
    config
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A loopback address nothing listens on (yet).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap()
}

fn dns_on_file(scratch: &Scratch, text: &str) -> Dns {
    let routes = scratch.0.join("routes.conf");
    std::fs::write(&routes, text).unwrap();
    let mut config = DnsConfig::new(loopback(any_port()));
    config.poll_interval = Duration::from_millis(50);
    Dns::start(config, Box::new(RouteFile::new(&routes))).unwrap()
}

/// An agent on `dns` and `reporter` with round robin, whose statistics are the period's
/// calls (the Lars policy would report its window, which does not show what was lost).
fn agent(dns: &Dns, reporter: SocketAddr, report_interval: Duration) -> (AgentDaemon, Client) {
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter]);
    config.api = vec![any_port(); 3];
    config.agent = AgentConfig {
        default_policy: PolicyKind::RoundRobin,
        report_interval: lars_core::time::Duration::from_millis(report_interval.as_millis() as u64),
        report_after: 0,
        ..AgentConfig::default()
    };
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    (agent, client)
}

fn report_calls(client: &Client, ok: u32, failed: u32) {
    eventually("the agent has the route", || client.get_host(7, 1, None).is_ok());
    for i in 0..ok + failed {
        let host = client.get_host(7, 1, None).unwrap();
        let outcome = if i < ok { Outcome::Ok } else { Outcome::Fail };
        client.report(7, 1, host, outcome, Duration::from_micros(100)).unwrap();
    }
}

fn totals(stats: &MemoryStats) -> (u64, u64) {
    let rows = stats.rows();
    (rows.iter().map(|r| u64::from(r.succ)).sum(), rows.iter().map(|r| u64::from(r.err)).sum())
}

#[test]
fn the_agent_holds_statistics_while_the_reporter_is_down_and_sends_them_when_it_is_back() {
    let scratch = Scratch::new("lossless-outage");
    let dns = dns_on_file(&scratch, "7 1 10.7.0.1:80\n7 1 10.7.0.2:80\n");
    let reporter_addr = free_addr();
    let (agent, client) = agent(&dns, reporter_addr, Duration::from_millis(200));
    report_calls(&client, 300, 30);
    eventually("the agent took every report", || agent.stats().reports == 330);
    // Counted from here: flushes held before the reports were in held none of them.
    let held = agent.stats().stats_flushes_held;
    eventually("several flushes holding the reports go by with lars-reporter unreachable", || {
        agent.stats().stats_flushes_held >= held + 3
    });
    assert_eq!(agent.stats().stats_dropped_calls, 0, "nothing is dropped during the outage");

    let stats = MemoryStats::new();
    let store = stats.clone();
    let reporter =
        Reporter::start(ReporterConfig::new(loopback(reporter_addr)), move |_| Box::new(store.clone()))
            .expect("lars-reporter comes up on the agent's address");
    eventually_within(Duration::from_secs(15), "the outage's calls reach lars-reporter", || {
        totals(&stats) == (300, 30)
    });
    assert_eq!(agent.stats().stats_dropped_calls, 0);
    agent.shutdown();
    reporter.shutdown();
}

#[test]
fn a_stopping_agent_sends_what_it_holds() {
    let scratch = Scratch::new("lossless-agent-stop");
    let dns = dns_on_file(&scratch, "7 1 10.7.0.1:80\n");
    let stats = MemoryStats::new();
    let store = stats.clone();
    let reporter =
        Reporter::start(ReporterConfig::new(loopback(any_port())), move |_| Box::new(store.clone())).unwrap();
    // No flush would come for an hour: only the stop sends them.
    let (agent, client) = agent(&dns, reporter.local_addr(), Duration::from_secs(3600));
    report_calls(&client, 50, 5);
    eventually("the agent took every report", || agent.stats().reports == 55);
    agent.shutdown();
    eventually("the stop's flush reaches lars-reporter", || totals(&stats) == (50, 5));
    reporter.shutdown();
}

/// `CallStats` frames, `per_frame` rows each, every row a key of its own from `first`.
fn stats_frames(first: usize, rows: usize, per_frame: usize) -> Vec<Vec<u8>> {
    let entries: Vec<HostStats> = (first..first + rows)
        .map(|i| {
            let host = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 80));
            let mut row = HostStats::empty(1, 1, host);
            row.succ = 1;
            row
        })
        .collect();
    entries
        .chunks(per_frame)
        .map(|chunk| {
            let body = CallStats { caller: 1, ts: 1_764_000_000, entries: List::from_slice(chunk) };
            let mut out = vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize];
            let len = frame::encode(MsgId::NativeCallStats, &body, &mut out).unwrap();
            out.truncate(len);
            out
        })
        .collect()
}

fn send_all(addr: SocketAddr, frames: &[Vec<u8>]) {
    let mut link = FrameClient::connect(addr).unwrap();
    for frame in frames {
        link.write(frame).unwrap();
    }
}

fn status_rows(opts: &mysql::Opts) -> u64 {
    let mut conn = mysql::Conn::new(opts.clone()).unwrap();
    conn.query_first("SELECT COUNT(*) FROM ServerCallStatus").unwrap().unwrap_or(0)
}

#[test]
fn a_stop_stores_every_row_accepted_into_mysql() {
    let db = TestDb::create();
    let opts = db.opts.clone();
    let reporter = Reporter::start(ReporterConfig::new(loopback(any_port())), move |_| {
        Box::new(MysqlStats::new(opts.clone()))
    })
    .unwrap();
    const ROWS: usize = 90_000;
    let addr = reporter.local_addr();
    std::thread::scope(|scope| {
        for part in 0..3 {
            scope.spawn(move || send_all(addr, &stats_frames(part * ROWS / 3, ROWS / 3, 64)));
        }
    });
    let stats = reporter.stats();
    eventually_within(Duration::from_secs(55), "lars-reporter accepted every row", || {
        stats.rows_received.load(Ordering::Acquire) == ROWS as u64
    });
    // Stopped at once, with rows still queued.
    let unstored = reporter.shutdown();
    assert_eq!(unstored, 0);
    assert_eq!(status_rows(&db.opts), ROWS as u64, "every row accepted is in ServerCallStatus");
}

#[test]
fn with_mariadb_hung_lars_dns_and_lars_reporter_still_stop_and_say_what_was_not_stored() {
    let server = PrivateMariadb::start("lossless-hung-mariadb");
    let url =
        server.url("lars_hung", "read_timeout_ms=1000&write_timeout_ms=1000&tcp_connect_timeout_ms=1000");
    let opts = lars_std::store::mysql::opts(&url).unwrap();
    lars_std::store::mysql::init_schema(&opts).unwrap();
    let mut conn = mysql::Conn::new(opts.clone()).unwrap();
    conn.query_drop(
        "INSERT INTO RouteData (modid, cmdid, serverip, serverport) VALUES (7, 1, 167772161, 80)",
    )
    .unwrap();
    let mut dns_config = DnsConfig::new(loopback(any_port()));
    dns_config.poll_interval = Duration::from_millis(20);
    let dns = Dns::start(dns_config, Box::new(MysqlRoutes::new(opts.clone()))).unwrap();
    eventually("lars-dns loaded its routes", || !dns.snapshot().hosts((7, 1)).is_empty());
    let store_opts = opts.clone();
    let reporter = Reporter::start(ReporterConfig::new(loopback(any_port())), move |_| {
        Box::new(MysqlStats::new(store_opts.clone()))
    })
    .unwrap();
    send_all(reporter.local_addr(), &stats_frames(0, 100, 50));
    let stats = std::sync::Arc::clone(reporter.stats());
    eventually("the first rows are stored", || stats.rows_stored.load(Ordering::Acquire) == 100);

    server.hang();
    send_all(reporter.local_addr(), &stats_frames(100, 500, 50));
    eventually("the rows sent to a hung store are accepted", || {
        stats.rows_received.load(Ordering::Acquire) == 600
    });
    let (done, stopped) = std::sync::mpsc::channel();
    let reporter_done = done.clone();
    std::thread::spawn(move || {
        let _ = reporter_done.send(("lars-reporter", reporter.shutdown()));
    });
    std::thread::spawn(move || {
        dns.shutdown();
        let _ = done.send(("lars-dns", 0));
    });
    let mut unstored = None;
    for _ in 0..2 {
        let (who, count) = stopped.recv_timeout(Duration::from_secs(30)).expect(
            "lars-dns and lars-reporter stop with MariaDB hung (still running after 30 s: they hang on it)",
        );
        if who == "lars-reporter" {
            unstored = Some(count);
        }
    }
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Acquire);
    assert_eq!(
        unstored,
        Some(500),
        "lars-reporter says it could not store the 500 rows that came after the hang \
         (received {}, stored {}, dropped {}, store errors {}, batches {})",
        load(&stats.rows_received),
        load(&stats.rows_stored),
        load(&stats.rows_dropped),
        load(&stats.store_errors),
        load(&stats.batches),
    );
    drop(server);
}
