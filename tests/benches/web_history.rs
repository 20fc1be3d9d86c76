//! The console's observing pages at a realistic size, on MariaDB at `LARS_MYSQL_URL` through
//! lars-web's HTTP server: a route of 100 hosts with a day of per-minute call history (144,000
//! `CallHistory` rows), its history page over each range, one host's page, the problems page
//! and a page of the decision log among 10,000 decisions; plus the route's page rendered in
//! process from the store's buckets, without HTTP or MariaDB. Figures go to stdout and to
//! `LARS_BENCH_OUT` (JSON).
// Measuring wall time is the point here.
#![allow(clippy::disallowed_methods)]

mod timing;
use timing::median;

use std::net::SocketAddr;
use std::time::Instant;

use mysql::prelude::Queryable;

use lars_std::store::console::MysqlConsole;
use lars_std::store::history::mysql::MysqlHistory;
use lars_std::store::history::{
    DecisionRow, HistoryRow, HistoryStore, ProblemRules, into_buckets, route_sums,
};
use lars_tests::console::{get, http_sign_in};
use lars_tests::{Scratch, TestDb};
use lars_web::ConsoleConfig;
use lars_web::auth::{Role, add_user};
use lars_web::model::history::{Range, RouteHistory};
use lars_web::pages::history::{Subject, render};

const HOSTS: u16 = 100;
const MINUTES: u64 = 24 * 60;
const DECISIONS: u64 = 10_000;
const RUNS: usize = 9;
const ROUTE: (i32, i32) = (4242, 1);

fn host(i: u16) -> SocketAddr {
    SocketAddr::from(([10, 42, (i >> 8) as u8, i as u8], 9000))
}

fn rows(now: u64) -> Vec<HistoryRow> {
    let first = now / 60 * 60 - MINUTES * 60;
    (0..MINUTES)
        .flat_map(|m| {
            (0..HOSTS).map(move |i| HistoryRow {
                modid: ROUTE.0,
                cmdid: ROUTE.1,
                host: host(i),
                minute: first + m * 60,
                succ: 600 + u64::from(i),
                err: if i == 7 { 300 } else { 3 },
                overload: if i == 7 { 200 } else { 0 },
                overloaded: i == 7,
            })
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let db = TestDb::create();
    let now = lars_std::time::Clock::unix_secs();
    let all = rows(now);
    let start = Instant::now();
    let mut history = MysqlHistory::new(db.opts.clone());
    for chunk in all.chunks(10_000) {
        history.add_history(chunk).unwrap();
    }
    let decisions: Vec<DecisionRow> = (0..DECISIONS)
        .map(|i| DecisionRow {
            at_ms: (now - MINUTES * 60) * 1000 + i * 8_000,
            modid: ROUTE.0,
            cmdid: ROUTE.1,
            host: host((i % u64::from(HOSTS)) as u16),
            caller: 7,
            change: if i % 2 == 0 { "overloaded" } else { "forgiven" }.into(),
            reason: "15 consecutive failures (limit 15)".into(),
        })
        .collect();
    history.add_decisions(&decisions).unwrap();
    {
        let mut conn = db.conn();
        let values: Vec<String> = (0..HOSTS)
            .map(|i| {
                format!(
                    "({}, {}, {}, 9000)",
                    ROUTE.0,
                    ROUTE.1,
                    u32::from_be_bytes([10, 42, (i >> 8) as u8, i as u8])
                )
            })
            .collect();
        conn.query_drop(format!(
            "INSERT INTO RouteData (modid, cmdid, serverip, serverport) VALUES {}",
            values.join(",")
        ))
        .unwrap();
    }
    println!(
        "filled {} CallHistory rows ({HOSTS} hosts × {MINUTES} minutes) and {DECISIONS} decisions in {:.1} s",
        all.len(),
        start.elapsed().as_secs_f64()
    );

    let state = Scratch::new("web-history-bench");
    add_user(&state.0, "bench", Role::Viewer, "bench password").unwrap();
    let mut config = ConsoleConfig::new(&state.0);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let console = lars_web::start(&config, Box::new(MysqlConsole::new(db.opts.clone()))).unwrap();
    let addr = console.addr();
    let (cookie, _) = http_sign_in(addr, "bench", "bench password");
    let time = |path: &str| {
        median(
            (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    let answer = get(addr, &cookie, path);
                    let ms = start.elapsed().as_secs_f64() * 1000.0;
                    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
                    assert!(answer.body.contains("<svg") || !path.starts_with("/history"), "{path}");
                    ms
                })
                .collect(),
        )
    };
    let base = format!("/history?modid={}&cmdid={}", ROUTE.0, ROUTE.1);
    let mut json = format!("{{\"hosts\": {HOSTS}, \"minutes\": {MINUTES}, \"history_rows\": {}", all.len());
    println!("{:<44} {:>10}   (median of {RUNS}, through HTTP and MariaDB)", "page", "ms");
    let mut pages: Vec<(String, String)> = Range::ALL
        .iter()
        .map(|r| (format!("route history, {}", r.label()), format!("{base}&range={}", r.param())))
        .collect();
    pages.push(("one host's history, last day".into(), format!("{base}&host=10.42.0.7%3A9000&range=1d")));
    pages.push(("problems (every route)".into(), "/problems".into()));
    pages.push((
        "decision log of the route, page 1".into(),
        format!("/decisions?modid={}&cmdid={}", ROUTE.0, ROUTE.1),
    ));
    pages.push((
        "decision log of the route, page 100".into(),
        format!("/decisions?modid={}&cmdid={}&page=99", ROUTE.0, ROUTE.1),
    ));
    for (name, path) in &pages {
        let ms = time(path);
        println!("{name:<44} {ms:>10.1}");
        let key: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        json.push_str(&format!(", \"{key}_ms\": {ms:.2}"));
    }
    let size = get(addr, &cookie, &format!("{base}&range=1d")).body.len();
    println!("the day's page is {} KiB of HTML with 101 inline SVG charts", size / 1024);

    // The store's part alone: the day's buckets summed by MariaDB, and every route's problems
    // (the problems page above is served from its 5 s cache; this is what refreshing it costs).
    let range = Range::Day;
    let (from, to) = range.window(now);
    let sql_ms = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let route = history.route_buckets(ROUTE, (from, to), range.bucket()).unwrap();
                let rows = history.history_buckets(ROUTE, None, (from, to), range.bucket(), 50_001).unwrap();
                assert!(rows.len() >= 9_500 && route.len() >= 95);
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    );
    let problems_ms = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let found = history.recent_problems(now, ProblemRules::default(), 200).unwrap();
                assert!(!found.is_empty(), "host 7 is overloaded throughout");
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    );
    println!(
        "store alone: the day's buckets summed by MariaDB {sql_ms:.1} ms; every route's problems {problems_ms:.1} ms"
    );
    json.push_str(&format!(
        ", \"store_day_buckets_ms\": {sql_ms:.2}, \"store_recent_problems_ms\": {problems_ms:.2}"
    ));

    // In process: the day's buckets summed and rendered, the part of the page that is ours.
    let day: Vec<HistoryRow> = all.iter().filter(|r| r.minute >= from && r.minute < to).copied().collect();
    let buckets = into_buckets(&day, range.bucket(), usize::MAX);
    let route = route_sums(&buckets);
    let addrs: Vec<SocketAddr> = (0..HOSTS).map(host).collect();
    let render_ms = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let history = RouteHistory::build(&route, &buckets, range, from);
                let html = render(Subject { key: ROUTE, host: None }, range, &history, &addrs, None);
                assert!(html.contains("<svg"));
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    );
    let sum_ms = median(
        (0..3)
            .map(|_| {
                let start = Instant::now();
                assert_eq!(into_buckets(&day, range.bucket(), usize::MAX).len(), buckets.len());
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    );
    println!(
        "in process: {} buckets built and rendered in {render_ms:.2} ms; summing the day's {} minute rows in memory {sum_ms:.1} ms",
        buckets.len(),
        day.len()
    );
    json.push_str(&format!(", \"in_process_day_render_ms\": {render_ms:.3}, \"in_process_day_sum_ms\": {sum_ms:.2}, \"day_page_bytes\": {size}}}\n"));
    if let Some(path) = std::env::var_os("LARS_BENCH_OUT") {
        std::fs::write(&path, json).unwrap();
        println!("wrote {}", std::path::Path::new(&path).display());
    }
}
