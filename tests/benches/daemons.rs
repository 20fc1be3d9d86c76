//! Daemon benchmarks on MariaDB, against DESIGN's targets: lars-dns loading 1,000,000 route rows
//! (under 5 s), lars-dns pushing a change to 1,000 subscribed agents (within 100 ms of noticing
//! it), and lars-reporter storing host results (at least 100,000 per second, batched).
//!
//! Each part runs in a fresh database on the server at `LARS_MYSQL_URL`. Figures go to stdout
//! and to `LARS_BENCH_OUT` (JSON).
//!
//! Call history: 10,000 hosts reporting every 10 s for 6 minutes of report time, replayed as
//! fast as lars-reporter takes them (`StatusReport` frames carry their own time). The history
//! writes one row per host per minute however often hosts report: 10,000 / 60 ≈ 167 rows/s in
//! real time; the figure is the rate the replay wrote them at, against that need.
// Measuring wall time is the point here.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use lars_core::wire::native::{self, CallStats, HostReport, HostStats, StatusReport};
use lars_core::wire::{Decode, List, MsgId, frame};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::mysql::{MysqlRoutes, MysqlStats};
use lars_tests::{FrameClient, TestDb};

const ROUTE_ROWS: u64 = 1_000_000;
const HOSTS_PER_ROUTE: u64 = 10;
const AGENTS: usize = 1000;
const REPORTERS: usize = 4;
const RESULTS_PER_REPORTER: usize = 125_000;
/// Entries per `CallStats` frame, as an agent sends them.
const ENTRIES_PER_FRAME: usize = 64;

fn loopback() -> ServerConfig {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 2;
    // 1,000 agents and some room; the default pool backs 3,072.
    config.max_conns = 2048;
    config
}

/// Waits (up to `limit`) for `done`, returning how long it took from `start`.
fn wait_for(start: Instant, limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    while !done() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

fn native_frame(msgid: MsgId, body: &impl lars_core::wire::Encode) -> Vec<u8> {
    let mut out = vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize];
    let len = frame::encode(msgid, body, &mut out).unwrap();
    out.truncate(len);
    out
}

/// Loads `ROUTE_ROWS` rows, then times lars-dns from start to a full snapshot; then subscribes
/// `AGENTS` connections to one route, changes it the way the web console does, and times the
/// pushes. Returns (load seconds, commit → last push ms, first → last push ms).
fn dns(db: &TestDb) -> (f64, f64, f64) {
    let mut conn = db.conn();
    conn.query_drop(format!(
        "INSERT INTO RouteData (modid, cmdid, serverip, serverport) \
         SELECT 1 + seq DIV {HOSTS_PER_ROUTE}, 1, 167772160 + seq, 80 FROM seq_0_to_{}",
        ROUTE_ROWS - 1
    ))
    .expect("MariaDB's sequence engine (seq_0_to_N) fills RouteData");
    let mut config = DnsConfig::new(loopback());
    config.poll_interval = Duration::from_millis(10);
    config.reload_interval = Duration::from_secs(3600);
    let start = Instant::now();
    let dns = Dns::start(config, Box::new(MysqlRoutes::new(db.opts.clone()))).unwrap();
    let load = wait_for(start, Duration::from_secs(120), "the snapshot", || {
        dns.stats().hosts.load(Ordering::Relaxed) == ROUTE_ROWS
    });

    let request =
        native_frame(MsgId::NativeGetRouteRequest, &native::GetRouteRequest { seq: 1, modid: 1, cmdid: 1 });
    let mut agents: Vec<FrameClient> = (0..AGENTS)
        .map(|_| {
            let mut agent = FrameClient::connect(dns.local_addr()).unwrap();
            agent.write(&request).unwrap();
            agent
        })
        .collect();
    for agent in &mut agents {
        let (msgid, body) = agent.read_frame().unwrap();
        assert_eq!(msgid, MsgId::NativeRouteResponse.as_u32());
        assert_eq!(native::RouteResponse::parse(&body).unwrap().hosts.len() as u64, HOSTS_PER_ROUTE);
    }
    conn.query_drop(
        "INSERT INTO RouteData (modid, cmdid, serverip, serverport) VALUES (1, 1, 167772160, 81)",
    )
    .unwrap();
    conn.query_drop("UPDATE RouteVersion SET version = version + 1 WHERE id = 1").unwrap();
    conn.query_drop("INSERT INTO RouteChange (modid, cmdid, version) SELECT 1, 1, version FROM RouteVersion")
        .unwrap();
    let committed = Instant::now();
    let mut first = None;
    for agent in &mut agents {
        let (_, body) = agent.read_frame().unwrap();
        first.get_or_insert_with(|| committed.elapsed());
        assert_eq!(native::RouteResponse::parse(&body).unwrap().hosts.len() as u64, HOSTS_PER_ROUTE + 1);
    }
    let last = committed.elapsed();
    let first = first.unwrap_or_default();
    dns.shutdown();
    (load.as_secs_f64(), last.as_secs_f64() * 1e3, (last - first).as_secs_f64() * 1e3)
}

/// `REPORTERS` agents each send `RESULTS_PER_REPORTER` host results in `CallStats` frames,
/// holding back while lars-reporter's queue is half full (so that the figure is the rate rows
/// reach MariaDB, not the rate the queue drops them); times lars-reporter until every one is
/// stored. Returns (results stored per second, results dropped at the queue).
fn reporter(db: &TestDb) -> (f64, u64) {
    let opts = db.opts.clone();
    let config = ReporterConfig::new(loopback());
    let backlog_limit = (config.queue_capacity / 2) as u64;
    let reporter = Reporter::start(config, move |_| Box::new(MysqlStats::new(opts.clone()))).unwrap();
    let addr: SocketAddr = reporter.local_addr();
    let stats = reporter.stats();
    // Sent but not yet stored (or dropped): in flight, in the queue or being written.
    let sent = std::sync::atomic::AtomicU64::new(0);
    let backlog = || {
        sent.load(Ordering::Relaxed)
            - stats.rows_stored.load(Ordering::Relaxed)
            - stats.rows_dropped.load(Ordering::Relaxed)
    };
    let start = Instant::now();
    std::thread::scope(|scope| {
        for agent in 0..REPORTERS {
            let (backlog, sent) = (&backlog, &sent);
            scope.spawn(move || {
                let mut link = FrameClient::connect(addr).unwrap();
                let entries: Vec<HostStats> = (0..RESULTS_PER_REPORTER)
                    .map(|i| {
                        let host = SocketAddr::from(([10, agent as u8, (i >> 8) as u8, i as u8], 80));
                        let mut stats = HostStats::empty(1 + (i / 4096) as i32, 1, host);
                        stats.succ = 1;
                        stats
                    })
                    .collect();
                for chunk in entries.chunks(ENTRIES_PER_FRAME) {
                    while backlog() > backlog_limit {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let body = CallStats {
                        caller: agent as u32,
                        ts: 1_764_000_000,
                        entries: List::from_slice(chunk),
                    };
                    sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    link.write(&native_frame(MsgId::NativeCallStats, &body)).unwrap();
                }
            });
        }
    });
    let total = (REPORTERS * RESULTS_PER_REPORTER) as u64;
    let took = wait_for(start, Duration::from_secs(300), "the rows", || {
        stats.rows_stored.load(Ordering::Relaxed) + stats.rows_dropped.load(Ordering::Relaxed) == total
    });
    let stored = stats.rows_stored.load(Ordering::Relaxed);
    let dropped = stats.rows_dropped.load(Ordering::Relaxed);
    reporter.shutdown();
    (stored as f64 / took.as_secs_f64(), dropped)
}

const HISTORY_HOSTS: usize = 10_000;
const HISTORY_MINUTES: u64 = 6;
const REPORTS_PER_MINUTE: u64 = 6;

/// Replays `HISTORY_MINUTES` of reports from `HISTORY_HOSTS` hosts through lars-reporter with
/// its history on MariaDB; returns (history rows written per second during the replay, rows
/// in `CallHistory` at the end).
fn history(db: &TestDb) -> (f64, u64) {
    let opts = db.opts.clone();
    let reporter = Reporter::start_with_history(
        ReporterConfig::new(loopback()),
        move |_| Box::new(MysqlStats::new(opts.clone())),
        Some(Box::new(lars_std::store::history::mysql::MysqlHistory::new(db.opts.clone()))),
    )
    .unwrap();
    let stats = reporter.stats();
    let history = reporter.history_stats().unwrap();
    let mut link = FrameClient::connect(reporter.local_addr()).unwrap();
    // An hour ahead of the wall clock, so that the reports' own clock closes their minutes.
    let start_ts = (lars_std::time::Clock::unix_secs() + 3600) / 60 * 60;
    let start = Instant::now();
    let mut sent = 0u64;
    for round in 0..HISTORY_MINUTES * REPORTS_PER_MINUTE {
        let ts = start_ts + round * (60 / REPORTS_PER_MINUTE);
        let entries: Vec<HostReport> = (0..HISTORY_HOSTS)
            .map(|i| {
                let host = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 80));
                let mut stats = HostStats::empty(1 + (i / 100) as i32, 1, host);
                (stats.succ, stats.err) = (95, 5);
                HostReport { stats, window_succ: 95, window_err: 5 }
            })
            .collect();
        for chunk in entries.chunks(ENTRIES_PER_FRAME) {
            // Held back while lars-reporter's queue is half full, as in `reporter`.
            while sent
                - stats.rows_stored.load(Ordering::Relaxed)
                - stats.rows_dropped.load(Ordering::Relaxed)
                > 50_000
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            let body = StatusReport { caller: 1, ts: ts as u32, entries: List::from_slice(chunk) };
            link.write(&native_frame(MsgId::StatusReport, &body)).unwrap();
            sent += chunk.len() as u64;
        }
    }
    // Every minute but the last is over by the replay's clock.
    let closed = (HISTORY_MINUTES - 1) * HISTORY_HOSTS as u64;
    let took = wait_for(start, Duration::from_secs(300), "the history rows", || {
        history.rows_written.load(Ordering::Relaxed) >= closed
    });
    let written = history.rows_written.load(Ordering::Relaxed);
    // The last minute is written at shutdown, once every report is in.
    wait_for(start, Duration::from_secs(300), "every report", || {
        stats.rows_received.load(Ordering::Relaxed) == sent
    });
    drop(link);
    reporter.shutdown();
    let rows: u64 = db.count("SELECT COUNT(*) FROM CallHistory");
    (written as f64 / took.as_secs_f64(), rows)
}

fn main() {
    let (load_s, push_ms, spread_ms) = dns(&TestDb::create());
    let (results_per_s, dropped) = reporter(&TestDb::create());
    let (history_rows_per_s, history_rows) = history(&TestDb::create());
    let history_needed = HISTORY_HOSTS as f64 / 60.0;
    println!("{:<58} {:>12} {:>10}", "daemons on MariaDB", "figure", "target");
    println!("{:<58} {:>10.2} s {:>8} s", "lars-dns: load 1,000,000 route rows", load_s, "< 5");
    println!(
        "{:<58} {:>9.1} ms {:>7} ms",
        "lars-dns: change committed -> pushed to 1,000 agents", push_ms, "< 100"
    );
    println!("{:<58} {:>9.1} ms", "  of which first push -> last push", spread_ms);
    println!("{:<58} {:>9.0} /s {:>7} /s", "lars-reporter: host results stored", results_per_s, ">= 100k");
    println!("{:<58} {:>12}", "  results dropped at the queue", dropped);
    println!(
        "{:<58} {:>9.0} /s {:>7.0} /s",
        "lars-reporter: call history rows written (10,000 hosts)", history_rows_per_s, history_needed
    );
    println!(
        "{:<58} {:>9.1} x",
        "  capacity over the real-time need (1 row/host/minute)",
        history_rows_per_s / history_needed
    );
    println!(
        "{:<58} {:>12}",
        format!("  CallHistory rows after {HISTORY_MINUTES} minutes of reports"),
        history_rows
    );
    println!(
        "(lars-dns polls the store's version every 10 ms here, so noticing takes up to 10 ms of the push figure)"
    );
    if let Some(path) = std::env::var_os("LARS_BENCH_OUT") {
        let json = format!(
            "{{\"dns_load_1m_rows_s\": {load_s:.3}, \"dns_push_1000_agents_ms\": {push_ms:.2}, \
             \"dns_push_spread_ms\": {spread_ms:.2}, \"reporter_results_per_s\": {results_per_s:.0}, \
             \"reporter_dropped\": {dropped}, \"history_rows_per_s\": {history_rows_per_s:.0}, \
             \"history_rows_needed_per_s\": {history_needed:.1}, \"history_rows\": {history_rows}}}\n"
        );
        std::fs::write(&path, json).unwrap();
        println!("wrote {}", std::path::Path::new(&path).display());
    }
}
