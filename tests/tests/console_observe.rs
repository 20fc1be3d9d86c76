//! The console's observing pages in headless Chromium, against MariaDB, a running lars-dns,
//! lars-reporter (keeping call history and decisions) and lars-agent: calls that fail on one
//! host make the agent's balancer overload it; the route's history chart has the calls, the
//! decision log lists the overload with the reason's numbers as the core reported them, and
//! the problems page lists the overloaded host and the route with no healthy host. A viewer
//! sees the same pages and nothing that changes anything. Screenshots go to
//! `target/console-screenshots/` (20–24). Also: the pages on the route file, which keeps no
//! history, and the MySQL history queries against the memory store's answers.

use std::net::SocketAddr;
use std::time::Duration;

use lars_core::wire::native::Outcome;
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::{Client, ClientConfig, ClientError};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::console::MysqlConsole;
use lars_std::store::history::mysql::MysqlHistory;
use lars_std::store::history::{
    DecisionFilter, DecisionRow, HistoryRow, HistoryStore, MemoryHistory, ProblemRules,
};
use lars_std::store::mysql::{MysqlRoutes, MysqlStats};
use lars_std::time::Clock;
use lars_tests::console::{ADMIN_PASSWORD, VIEWER_PASSWORD, get, http_sign_in, post, shots, sign_in, within};
use lars_tests::webdriver::Browser;
use lars_tests::{Scratch, TestDb};
use lars_web::ConsoleConfig;
use lars_web::auth::{Role, add_user};

fn loopback() -> ServerConfig {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 2;
    config
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Sends `calls` get_host + report pairs on a route, failing every call to a host in `failing`.
fn drive(client: &Client, route: (i32, i32), failing: &[SocketAddr], calls: usize) -> usize {
    client.reg_init(route.0, route.1, 20).unwrap();
    let mut reported = 0;
    for _ in 0..calls {
        match client.get_host(route.0, route.1, None) {
            Ok(host) => {
                let outcome = if failing.contains(&host) { Outcome::Fail } else { Outcome::Ok };
                client.report(route.0, route.1, host, outcome, Duration::from_micros(300)).unwrap();
                reported += 1;
            }
            Err(ClientError::Overloaded) => {}
            Err(e) => panic!("get_host: {}", lars_std::client::with_causes(&e)),
        }
    }
    reported
}

/// The number in the attribute `name` of the first element `css` selects.
fn number(browser: &mut Browser, css: &str, name: &str) -> u64 {
    let script =
        format!("var e = document.querySelector(\"{css}\"); return e ? e.getAttribute('{name}') : null;");
    browser.run(&script).as_str().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {css} [{name}]"))
}

#[test]
fn history_decisions_and_problems_of_an_overloaded_host_in_a_browser() {
    let db = TestDb::create();
    db.console_add(77, 1, "10.9.0.1".parse().unwrap(), 8001);
    db.console_add(77, 1, "10.9.0.2".parse().unwrap(), 8002);
    db.console_add(78, 1, "10.9.0.3".parse().unwrap(), 8003);
    let mut dns_config = DnsConfig::new(loopback());
    dns_config.poll_interval = Duration::from_millis(100);
    let dns = Dns::start(dns_config, Box::new(MysqlRoutes::new(db.opts.clone()))).unwrap();
    let opts = db.opts.clone();
    let reporter = Reporter::start_with_history(
        ReporterConfig::new(loopback()),
        move |_| Box::new(MysqlStats::new(opts.clone())),
        Some(Box::new(MysqlHistory::new(db.opts.clone()))),
    )
    .unwrap();
    let mut agent_config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter.local_addr()]);
    agent_config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    agent_config.agent.report_interval = lars_core::time::Duration::from_millis(100);
    agent_config.agent.caller = u32::from(std::net::Ipv4Addr::new(192, 168, 1, 7));
    let agent = AgentDaemon::start(agent_config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    within(10, "the agent serves both routes", || {
        client.get_route(77, 1).is_ok_and(|r| r.hosts.len() == 2)
            && client.get_route(78, 1).is_ok_and(|r| r.hosts.len() == 1)
    });

    // 10.9.0.2:8002 fails every call (77 1 keeps 10.9.0.1:8001); 78 1's only host fails too.
    let failing = [addr("10.9.0.2:8002"), addr("10.9.0.3:8003")];
    let reported = drive(&client, (77, 1), &failing, 400);
    drive(&client, (78, 1), &failing, 100);
    let mut history = MysqlHistory::new(db.opts.clone());
    let overloads = |history: &mut MysqlHistory, host| {
        let filter = DecisionFilter { route: None, host: None, ..DecisionFilter::default() };
        history
            .decisions(filter)
            .unwrap()
            .into_iter()
            .filter(|d| d.host == host && d.change == "overloaded")
            .collect::<Vec<DecisionRow>>()
    };
    within(15, "lars-reporter stores both overloads in HostDecision", || {
        !overloads(&mut history, failing[0]).is_empty() && !overloads(&mut history, failing[1]).is_empty()
    });
    within(15, "lars-reporter stores the overloaded hosts in ServerCallStatus", || {
        db.count("SELECT COUNT(DISTINCT port) FROM ServerCallStatus WHERE overload = '1'") == 2
    });
    // History is written a minute at a time once the minute is over; lars-reporter writes the
    // minute under way when it stops, which it does here once the agent's last period is in
    // (rather than wait up to a minute).
    within(15, "lars-reporter received the agent's periods of both routes", || {
        reporter.stats().rows_received.load(std::sync::atomic::Ordering::Relaxed) >= 3
    });
    let decision = overloads(&mut history, failing[0]).remove(0);
    assert!(decision.reason.chars().any(|c| c.is_ascii_digit()), "a reason in numbers: {}", decision.reason);
    agent.shutdown();
    reporter.shutdown();
    let now = Clock::unix_secs();
    let stored: u64 =
        history.history((77, 1), None, now - 3600, now + 60).unwrap().iter().map(|r| r.succ + r.err).sum();
    assert_eq!(stored, reported as u64, "every reported call of 77 1 is in CallHistory");
    // "Overloaded for long" takes ten complete minutes: those of 78 1's host are written here
    // as lars-reporter would have, the ten before this one and this one too, so that the
    // problems page, read a while later, still finds ten complete minutes if the minute has
    // rolled over since (a minute more than the rule looks at, never fewer).
    let minute = now / 60 * 60;
    let long: Vec<HistoryRow> = (0..=10)
        .map(|ago| HistoryRow {
            modid: 78,
            cmdid: 1,
            host: failing[1],
            minute: minute - ago * 60,
            succ: 0,
            err: 10,
            overload: 10,
            overloaded: true,
        })
        .collect();
    history.add_history(&long).unwrap();

    let state = Scratch::new("console-observe");
    add_user(&state.0, "ann", Role::Admin, ADMIN_PASSWORD).unwrap();
    add_user(&state.0, "vic", Role::Viewer, VIEWER_PASSWORD).unwrap();
    let mut config = ConsoleConfig::new(&state.0);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let console = lars_web::start(&config, Box::new(MysqlConsole::new(db.opts.clone()))).unwrap();
    let base = format!("http://{}", console.addr());
    let mut browser = Browser::start();
    let shots = shots();
    sign_in(&mut browser, &base, "ann", ADMIN_PASSWORD);

    // The service list marks both routes; the route page links to the history.
    assert_eq!(browser.count("a[data-problem]"), 2, "{}", browser.text());
    browser.go(&format!("{base}/route?modid=77&cmdid=1"));
    browser.submit("a[href^='/history?modid=77&cmdid=1']");
    assert_eq!(browser.title(), "History of route 77 1 · lars");
    let charted = number(&mut browser, "#history-chart svg", "data-calls");
    assert_eq!(charted, reported as u64, "the route's chart has every call of the run");
    assert!(
        browser.count("#history-chart svg rect.ok") >= 1
            && browser.count("#history-chart svg rect.overload")
                + browser.count("#history-chart svg rect.failed")
                >= 1
    );
    assert_eq!(browser.count("table.history-hosts svg"), 2, "a small chart per host");
    assert_eq!(
        browser.count("table.history-hosts tr.bad[data-host='10.9.0.2:8002']"),
        1,
        "the overloaded host stands out"
    );
    browser.screenshot(&shots.join("20-history.png"));
    // The week, in two-hour columns, has the same calls.
    browser.submit("a[href$='range=7d']");
    assert_eq!(number(&mut browser, "#history-chart svg", "data-calls"), reported as u64);
    assert!(browser.text().contains("calls per 2 h"));
    // One host's page.
    browser.go(&format!("{base}/history?modid=77&cmdid=1&host=10.9.0.2%3A8002"));
    assert_eq!(browser.title(), "History of host 10.9.0.2:8002 of route 77 1 · lars");
    assert!(number(&mut browser, "#history-chart svg", "data-calls") > 0);
    assert!(browser.count("#history-chart svg rect.held") >= 1, "the minute it was held overloaded");
    browser.screenshot(&shots.join("21-host-history.png"));

    // The decision log, from the route page: the overload with the reason as stored.
    browser.go(&format!("{base}/route?modid=77&cmdid=1"));
    browser.submit("a[href='/decisions?modid=77&cmdid=1']");
    assert_eq!(browser.title(), "Decision log of route 77 1 · lars");
    let text = browser.text();
    assert!(text.contains("10.9.0.2:8002") && text.contains("idle → overloaded"), "{text}");
    assert!(text.contains(&decision.reason), "the reason exactly as the core reported it: {text}");
    assert!(text.contains("192.168.1.7"), "the agent that decided");
    assert_eq!(
        browser.count("table.decisions tr[data-change=overloaded]"),
        overloads(&mut history, failing[0]).len()
    );
    browser.screenshot(&shots.join("22-decisions.png"));
    // The host row's link: that host's decisions only.
    browser.go(&format!("{base}/route?modid=77&cmdid=1"));
    browser.submit("tr[data-host='10.9.0.2:8002'] a[href^='/decisions']");
    assert!(browser.title().starts_with("Decision log of host 10.9.0.2:8002"));
    assert!(browser.count("table.decisions tbody tr") >= 1);

    // The problems page, from the navigation.
    browser.submit("header a[href='/problems']");
    assert_eq!(browser.title(), "Problems · lars");
    assert_eq!(browser.count("#no-healthy-host + p + table tr[data-route='78 1']"), 1, "{}", browser.text());
    assert_eq!(browser.count("table.problems-hosts tr[data-host='10.9.0.2:8002']"), 1);
    assert_eq!(browser.count("table.problems-hosts tr[data-host='10.9.0.3:8003']"), 1);
    let text = browser.text();
    assert!(text.contains("host 10.9.0.3:8003 (decisions) overloaded for long"), "{text}");
    assert!(text.contains("overloaded in 10 of the last 10 minutes"), "{text}");
    assert!(
        text.contains("LarsAgentLinkDown") && text.contains("lars_dns_store_up"),
        "where to look for the rest"
    );
    browser.screenshot(&shots.join("23-problems.png"));

    // A viewer sees the same pages, with no form but signing out.
    browser.submit("header form button");
    sign_in(&mut browser, &base, "vic", VIEWER_PASSWORD);
    for path in ["/history?modid=77&cmdid=1&range=6h", "/decisions", "/problems"] {
        browser.go(&format!("{base}{path}"));
        assert!(browser.count("table") >= 1, "{path}: {}", browser.text());
        assert_eq!(browser.count("form[method=post]"), 1, "{path}: only the sign-out form");
    }
    assert!(browser.text().contains("10.9.0.3:8003"));
    browser.go(&format!("{base}/decisions"));
    assert!(browser.text().contains("77 1") && browser.text().contains("78 1"), "every route's decisions");
    browser.screenshot(&shots.join("24-viewer-decisions.png"));
    drop(browser);

    // Over plain HTTP: these pages take no form, and bad input is a message, not a failure.
    let (cookie, csrf) = http_sign_in(console.addr(), "ann", ADMIN_PASSWORD);
    for path in ["/history", "/decisions", "/problems"] {
        assert_eq!(post(console.addr(), &cookie, path, &format!("csrf={csrf}")).status, 405, "{path}");
    }
    let bad = get(console.addr(), &cookie, "/history?modid=77&cmdid=1&host=%3Cscript%3E");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("&lt;script&gt;") && !bad.body.contains("<script>"), "escaped: {}", bad.body);
    assert_eq!(
        get(console.addr(), &cookie, "/decisions?host=10.9.0.2:8002").status,
        400,
        "a host needs its route"
    );
    let empty = get(console.addr(), &cookie, "/history?modid=5&cmdid=5");
    assert_eq!(empty.status, 200);
    assert!(empty.body.contains("No calls recorded for route 5 5 in the last hour."));
    drop(console);
    drop(dns);
}

#[test]
fn on_the_route_file_the_pages_say_that_history_needs_mysql() {
    let scratch = Scratch::new("console-observe-file");
    let routes = scratch.0.join("routes.conf");
    std::fs::write(&routes, "6 1 10.0.6.1:80\n").unwrap();
    let state = scratch.0.join("state");
    add_user(&state, "ann", Role::Admin, ADMIN_PASSWORD).unwrap();
    let mut config = ConsoleConfig::new(&state);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let store = lars_std::store::console::FileConsole::new(&routes, None);
    let console = lars_web::start(&config, Box::new(store)).unwrap();
    let (cookie, _) = http_sign_in(console.addr(), "ann", ADMIN_PASSWORD);
    // The route file is read once it has settled after being written.
    within(10, "the route file is read", || {
        get(console.addr(), &cookie, "/route?modid=6&cmdid=1").status == 200
    });
    for path in ["/history?modid=6&cmdid=1", "/decisions?modid=6&cmdid=1", "/problems"] {
        let page = get(console.addr(), &cookie, path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(page.body.contains("the route file, which keeps no call history"), "{path}: {}", page.body);
        assert!(page.body.contains("need MySQL"), "{path}");
    }
}

#[test]
fn on_an_original_database_the_pages_name_db_init() {
    let db = TestDb::create_original();
    db.console_add(5, 1, "10.0.5.1".parse().unwrap(), 80);
    let state = Scratch::new("console-observe-original");
    add_user(&state.0, "ann", Role::Admin, ADMIN_PASSWORD).unwrap();
    let mut config = ConsoleConfig::new(&state.0);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let console = lars_web::start(&config, Box::new(MysqlConsole::new(db.opts.clone()))).unwrap();
    let (cookie, _) = http_sign_in(console.addr(), "ann", ADMIN_PASSWORD);
    for path in ["/history?modid=5&cmdid=1", "/decisions", "/problems"] {
        let page = get(console.addr(), &cookie, path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(page.body.contains("run `lars db-init` on it"), "{path}: {}", page.body);
    }
}

/// The MySQL store's grouped queries answer what the memory store (the reference) does.
#[test]
fn mysql_history_queries_answer_as_the_memory_store_does() {
    let db = TestDb::create();
    let mut mysql = MysqlHistory::new(db.opts.clone());
    let mut memory = MemoryHistory::new();
    let now = 1_764_547_200 + 12 * 60 + 30;
    let base = now / 60 * 60 - 12 * 60;
    let mut rows = Vec::new();
    for minute in 0..12u64 {
        for (cmdid, port, succ, err, overloaded) in [
            (1, 80, 10, 90, true),
            (1, 81, 100, 0, minute == 11),
            (1, 10, 5, 1, false),
            (2, 90, 0, 100, true),
            (3, 90, 99, 1, false),
        ] {
            rows.push(HistoryRow {
                modid: 1001,
                cmdid,
                host: SocketAddr::from(([10, 0, 0, 2], port)),
                minute: base + minute * 60,
                succ,
                err,
                overload: err / 3,
                overloaded,
            });
        }
    }
    rows.push(HistoryRow { host: addr("[2001:db8::1]:80"), ..rows[0] });
    // 10.0.0.10 sorts before 10.0.0.2 as text, after it as an address: both stores cut in the
    // text's order.
    let beside: Vec<HistoryRow> = rows
        .iter()
        .filter(|r| r.cmdid == 1 && r.host == addr("10.0.0.2:80"))
        .map(|r| HistoryRow { host: addr("10.0.0.10:80"), ..*r })
        .collect();
    rows.extend(beside);
    rows.push(HistoryRow { host: addr("[2001:db8::a]:80"), ..rows[0] });
    rows.push(HistoryRow { host: addr("[2001:db8::]:80"), ..rows[0] });
    mysql.add_history(&rows).unwrap();
    memory.add_history(&rows).unwrap();
    for bucket in [60, 300, 900, 7200] {
        let range = (base + 60, base + 11 * 60);
        for host in [None, Some(SocketAddr::from(([10, 0, 0, 2], 80)))] {
            assert_eq!(
                mysql.history_buckets((1001, 1), host, range, bucket, 1000).unwrap(),
                memory.history_buckets((1001, 1), host, range, bucket, 1000).unwrap(),
                "bucket {bucket}, host {host:?}"
            );
        }
        assert_eq!(
            mysql.route_buckets((1001, 1), range, bucket).unwrap(),
            memory.route_buckets((1001, 1), range, bucket).unwrap(),
            "the route's buckets of {bucket} s"
        );
    }
    // Cut at every length: the same rows, whole hosts first (the newest columns kept).
    let range = (base, base + 720);
    let whole = memory.history_buckets((1001, 1), None, range, 60, usize::MAX).unwrap().len();
    for limit in 1..=whole + 1 {
        let cut = mysql.history_buckets((1001, 1), None, range, 60, limit).unwrap();
        assert_eq!(cut, memory.history_buckets((1001, 1), None, range, 60, limit).unwrap(), "limit {limit}");
        assert_eq!(cut.len(), limit.min(whole), "the limit");
    }
    let first = mysql.history_buckets((1001, 1), None, (base, base + 720), 60, 12).unwrap();
    assert_eq!(first[0].host, addr("10.0.0.10:80"), "text order: {first:?}");
    assert_eq!(first[11].minute, base + 11 * 60, "a whole host, its newest minute included");
    for rules in [
        ProblemRules::default(),
        ProblemRules { min_calls: 10_000, overloaded_minutes: 3, ..ProblemRules::default() },
        ProblemRules { overloaded_minutes: 0, ..ProblemRules::default() },
    ] {
        let found = mysql.recent_problems(now, rules, 100).unwrap();
        assert_eq!(found, memory.recent_problems(now, rules, 100).unwrap(), "{rules:?}");
        assert!(!found.is_empty());
    }
    assert_eq!(
        mysql.recent_problems(now, ProblemRules::default(), 1).unwrap(),
        memory.recent_problems(now, ProblemRules::default(), 1).unwrap()
    );
    // Decisions, a page at a time from the newest.
    let decisions: Vec<DecisionRow> = (0..7)
        .map(|i| DecisionRow {
            at_ms: 1_000 + i,
            modid: 1001,
            cmdid: 1 + (i % 2) as i32,
            host: SocketAddr::from(([10, 0, 0, 2], 80)),
            caller: 7,
            change: "overloaded".into(),
            reason: format!("{i} consecutive failures (limit 15)"),
        })
        .collect();
    mysql.add_decisions(&decisions).unwrap();
    memory.add_decisions(&decisions).unwrap();
    for route in [None, Some((1001, 1))] {
        for offset in [0, 2, 3, 10] {
            let filter = DecisionFilter { route, limit: 2, offset, ..DecisionFilter::default() };
            assert_eq!(mysql.decisions(filter).unwrap(), memory.decisions(filter).unwrap(), "{filter:?}");
        }
    }
    let count: u64 = db.count("SELECT COUNT(*) FROM CallHistory");
    assert_eq!(count, rows.len() as u64);
}
