//! The console's service list at 100,000 routes (DESIGN §12: rendered in under 100 ms), on
//! MariaDB at `LARS_MYSQL_URL` through lars-web's HTTP server: the first page, a search, the
//! routes without a healthy host and a deep page, each back to back and after 600 ms idle (when
//! the call counts are stale and refreshed in the background), plus the first request, which
//! reads every route, and the list built and rendered in process without HTTP or MariaDB.
//! Figures go to stdout and to `LARS_BENCH_OUT` (JSON).
// Measuring wall time is the point here.
#![allow(clippy::disallowed_methods)]

mod timing;
use timing::median;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use lars_std::store::console::MysqlConsole;
use lars_tests::console::{console_sign_in, first_cookie};
use lars_tests::webdriver::http;
use lars_tests::{Scratch, TestDb};
use lars_web::ConsoleConfig;
use lars_web::auth::{Role, add_user};

const ROUTES: u32 = 100_000;
const HOSTS_PER_ROUTE: u32 = 2;
const RUNS: usize = 15;

fn fill(db: &TestDb) {
    let mut conn = db.conn();
    let mut values = Vec::new();
    for route in 0..ROUTES {
        for host in 0..HOSTS_PER_ROUTE {
            let (modid, cmdid) = (1000 + route / 100, route % 100);
            values.push(format!("({modid}, {cmdid}, {}, {})", 0x0a00_0000 + route, 8000 + host));
        }
        if values.len() >= 10_000 {
            conn.query_drop(format!(
                "INSERT INTO RouteData (modid, cmdid, serverip, serverport) VALUES {}",
                values.join(",")
            ))
            .unwrap();
            values.clear();
        }
    }
    let modules: Vec<String> =
        (0..ROUTES / 100).map(|m| format!("({}, 'service {m} of the fleet')", 1000 + m)).collect();
    conn.query_drop(format!("INSERT INTO ModIDConfig (modid, content) VALUES {}", modules.join(",")))
        .unwrap();
    // Call status for a tenth of the routes, a few of them overloaded.
    let mut status = Vec::new();
    for route in (0..ROUTES).step_by(10) {
        let (modid, cmdid) = (1000 + route / 100, route % 100);
        let overload = if route % 1000 == 0 { "1" } else { "0" };
        status.push(format!(
            "({modid}, {cmdid}, {}, 8000, 1, 100, 3, 1764547200, '{overload}')",
            0x0a00_0000 + route
        ));
        if status.len() >= 5_000 {
            conn.query_drop(format!(
                "INSERT INTO ServerCallStatus (modid, cmdid, ip, port, caller, succ_cnt, err_cnt, ts, overload) VALUES {}",
                status.join(",")
            ))
            .unwrap();
            status.clear();
        }
    }
}

fn sign_in(addr: SocketAddr) -> String {
    let answer = console_sign_in(addr, "bench", "bench password").unwrap();
    assert_eq!(answer.status, 303, "signed in: {}", answer.body);
    first_cookie(&answer)
}

fn get_ms(addr: SocketAddr, cookie: &str, path: &str) -> f64 {
    let start = Instant::now();
    let answer = http(addr, "GET", path, &[("Cookie", cookie)], b"").unwrap();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    ms
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let db = TestDb::create();
    let start = Instant::now();
    fill(&db);
    println!("filled {ROUTES} routes × {HOSTS_PER_ROUTE} hosts in {:.1} s", start.elapsed().as_secs_f64());
    let state = Scratch::new("web-bench");
    add_user(&state.0, "bench", Role::Viewer, "bench password").unwrap();
    let mut config = ConsoleConfig::new(&state.0);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let console = lars_web::start(&config, Box::new(MysqlConsole::new(db.opts.clone()))).unwrap();
    let addr = console.addr();
    let cookie = sign_in(addr);

    let first_ms = get_ms(addr, &cookie, "/services");
    println!("first request (reads every route, description and status row): {first_ms:.1} ms");
    let pages = [
        ("first page", "/services"),
        ("search", "/services?q=service+512+fleet"),
        ("no healthy host", "/services?unhealthy=1"),
        ("page 1000", "/services?page=1000"),
    ];
    let mut json = format!("{{\"routes\": {ROUTES}, \"first_request_ms\": {first_ms:.2}");
    println!(
        "{:<18} {:>12} {:>22}   (median of {RUNS}; target < 100 ms)",
        "service list", "cached ms", "status re-read ms"
    );
    for (name, path) in pages {
        let cached = median((0..RUNS).map(|_| get_ms(addr, &cookie, path)).collect());
        let reread = median(
            (0..5)
                .map(|_| {
                    std::thread::sleep(Duration::from_millis(600));
                    get_ms(addr, &cookie, path)
                })
                .collect(),
        );
        println!(
            "{name:<18} {cached:>12.2} {reread:>22.2}   ({:.1}× / {:.1}× under the target)",
            100.0 / cached,
            100.0 / reread
        );
        let key = name.replace(' ', "_");
        json.push_str(&format!(", \"{key}_ms\": {cached:.2}, \"{key}_after_idle_ms\": {reread:.2}"));
    }
    // The same list rendered in process, without HTTP or MariaDB: the CPU part alone.
    let overview = lars_std::store::console::Overview {
        routes: (0..ROUTES)
            .map(|route| {
                let key = ((1000 + route / 100) as i32, (route % 100) as i32);
                let hosts = (0..HOSTS_PER_ROUTE)
                    .map(|host| lars_std::store::console::HostEntry {
                        addr: SocketAddr::from((
                            [10, 0, (route >> 8) as u8, route as u8],
                            8000 + host as u16,
                        )),
                        weight: 1,
                        in_rotation: true,
                    })
                    .collect();
                (key, hosts)
            })
            .collect(),
        modules: (0..ROUTES / 100).map(|m| (1000 + m, format!("service {m} of the fleet"))).collect(),
        ..Default::default()
    };
    let start = Instant::now();
    let list = lars_web::model::ServiceList::build(&overview, &Default::default());
    let build_ms = start.elapsed().as_secs_f64() * 1000.0;
    let render = |query: lars_web::model::ServiceQuery| {
        median(
            (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    let html = lars_web::pages::services::render(&list, &query);
                    assert!(html.contains("<table"));
                    start.elapsed().as_secs_f64() * 1000.0
                })
                .collect(),
        )
    };
    let first = render(Default::default());
    let search =
        render(lars_web::model::ServiceQuery { search: "service 512 fleet".into(), ..Default::default() });
    println!(
        "in process: building the list {build_ms:.1} ms (once per route version), rendering the first page {first:.2} ms, a search {search:.2} ms"
    );
    json.push_str(&format!(
        ", \"in_process_build_ms\": {build_ms:.2}, \"in_process_first_page_ms\": {first:.3}, \"in_process_search_ms\": {search:.3}"
    ));
    json.push_str("}\n");
    let rows: u64 = db.count("SELECT COUNT(*) FROM RouteData");
    assert_eq!(rows, u64::from(ROUTES * HOSTS_PER_ROUTE));
    if let Some(path) = std::env::var_os("LARS_BENCH_OUT") {
        std::fs::write(&path, json).unwrap();
        println!("wrote {}", std::path::Path::new(&path).display());
    }
}
