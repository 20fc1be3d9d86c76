//! Call history and the decision log end to end on MariaDB: an agent's balancer overloads a
//! failing host; the decisions reach lars-reporter and `HostDecision`, `lars events` prints
//! them; the calls become per-minute rows in `CallHistory`, which the console's queries
//! (`store::history`) read back, with the problems they show; pruning removes what is old.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use lars_core::wire::native::Outcome;
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::history::mysql::MysqlHistory;
use lars_std::store::history::{DecisionFilter, HistoryStore, Problem, ProblemRules, problems};
use lars_std::store::memory::MemoryRoutes;
use lars_std::store::mysql::MysqlStats;
use lars_tests::{TestDb, eventually};

fn loopback() -> ServerConfig {
    ServerConfig::new("127.0.0.1:0".parse().unwrap())
}

fn host(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// Runs the `lars` CLI with `args`.
fn lars(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lars")).args(args).output().unwrap()
}

/// The lines a `lars` run that succeeded printed.
fn printed(out: &std::process::Output) -> Vec<String> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn decisions_and_history_reach_mysql_and_lars_events_prints_them() {
    let db = TestDb::create();
    let routes = MemoryRoutes::new();
    let mut dns_config = DnsConfig::new(loopback());
    dns_config.poll_interval = Duration::from_millis(50);
    let dns = Dns::start(dns_config, Box::new(routes.clone())).unwrap();
    let opts = db.opts.clone();
    let mut history = MysqlHistory::new(db.opts.clone());
    assert!(history.tables_exist().unwrap(), "db-init made the tables");
    let reporter = Reporter::start_with_history(
        ReporterConfig::new(loopback()),
        move |_| Box::new(MysqlStats::new(opts.clone())),
        Some(Box::new(MysqlHistory::new(db.opts.clone()))),
    )
    .unwrap();
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter.local_addr()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    config.agent.report_interval = lars_core::time::Duration::from_millis(100);
    config.agent.caller = u32::from(std::net::Ipv4Addr::new(192, 168, 1, 7));
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });

    routes.set_route((1001, 1), &[host(1), host(2)]);
    eventually("lars-dns loaded the route", || dns.snapshot().hosts((1001, 1)).len() == 2);
    client.reg_init(1001, 1, 20).unwrap();
    for _ in 0..20 {
        client.report(1001, 1, host(1), Outcome::Fail, Duration::from_micros(900)).unwrap();
    }
    for _ in 0..30 {
        client.report(1001, 1, host(2), Outcome::Ok, Duration::from_micros(300)).unwrap();
    }
    // Probed once, and failing still.
    client.report(1001, 1, host(1), Outcome::Fail, Duration::from_micros(900)).unwrap();

    eventually("the decisions are in HostDecision", || {
        history.decisions(DecisionFilter::default()).is_ok_and(|rows| rows.len() == 2)
    });
    let rows =
        history.decisions(DecisionFilter { route: Some((1001, 1)), ..DecisionFilter::default() }).unwrap();
    let described: Vec<String> =
        rows.iter().map(|d| format!("{} {} {}", d.host, d.change, d.reason)).collect();
    assert_eq!(
        described,
        [
            "10.0.0.1:1 overloaded 15 consecutive failures (limit 15)",
            "10.0.0.1:1 probed probe failed after 0 s overloaded",
        ]
    );
    assert_eq!(
        std::net::Ipv4Addr::from_bits(rows[0].caller),
        std::net::Ipv4Addr::new(192, 168, 1, 7),
        "who decided"
    );
    let host2 = DecisionFilter { host: Some(host(2)), ..DecisionFilter::default() };
    assert!(history.decisions(host2).unwrap().is_empty());

    let url = format!(
        "mysql://{}@{}:{}/{}",
        db.opts.get_user().unwrap_or("root"),
        db.opts.get_ip_or_hostname(),
        db.opts.get_tcp_port(),
        db.name
    );
    let lines = printed(&lars(&["events", "--mysql", &url, "--modid", "1001", "--cmdid", "1"]));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("1001/1  10.0.0.1:1")
            && lines[0].contains("overloaded       15 consecutive failures (limit 15)"),
        "{lines:?}"
    );
    assert!(lines[1].contains("probed"), "{lines:?}");
    let out = lars(&["events", "--mysql", &url, "--modid", "1"]);
    assert_eq!(out.status.code(), Some(64), "a usage error");
    // The same decisions from the agent's own log, over its API.
    let api: Vec<String> = agent.api_addrs().iter().map(ToString::to_string).collect();
    let lines = printed(&lars(&["events", "--modid", "1001", "--agent", &api.join(",")]));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("s ago  1001/1  10.0.0.1:1")
            && lines[0].ends_with("15 consecutive failures (limit 15)"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("probed") && lines[1].ends_with("probe failed after 0 s overloaded"),
        "{lines:?}"
    );
    let lines = printed(&lars(&["events", "--modid", "1002", "--agent", &api.join(",")]));
    assert_eq!(lines, ["no decisions in the agent's log"]);

    // Stopping lars-reporter writes the minute under way.
    eventually("the agent's statistics reached lars-reporter", || {
        reporter.stats().rows_received.load(std::sync::atomic::Ordering::Relaxed) >= 2
    });
    agent.shutdown();
    reporter.shutdown();
    let now = lars_std::time::Clock::unix_secs();
    let rows = history.history((1001, 1), None, now - 3600, now + 60).unwrap();
    let totals = |port| {
        rows.iter()
            .filter(|r| r.host == host(port))
            .fold((0, 0, false), |(s, e, o), r| (s + r.succ, e + r.err, o || r.overloaded))
    };
    assert_eq!(totals(1), (0, 21, true), "{rows:?}");
    assert_eq!(totals(2), (30, 0, false), "{rows:?}");
    assert_eq!(
        history.history((1001, 1), Some(host(2)), now - 3600, now + 60).unwrap().len(),
        rows.len() / 2
    );
    // A minute later, those minutes are complete: the console's problems page shows the
    // failing route (the threshold for calls lowered to the test's 51).
    let rules = ProblemRules { min_calls: 10, ..ProblemRules::default() };
    let found = problems(&mut history, &[(1001, 1)], now + 120, rules).unwrap();
    assert!(
        found.iter().any(|p| matches!(p, Problem::HighErrorRate { route: (1001, 1), calls: 51, .. })),
        "{found:?}"
    );
    // Pruning by age.
    assert!(history.prune(now + 3600, (now + 3600) * 1000).unwrap() >= 3);
    assert!(history.history((1001, 1), None, 0, u64::MAX).unwrap().is_empty());
    assert!(history.decisions(DecisionFilter::default()).unwrap().is_empty());
}
