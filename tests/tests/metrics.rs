//! Prometheus metrics from the running daemons: each page passes `promtool check metrics`, holds
//! the series the alert rules use, and a real Prometheus server (Debian's `prometheus`) scrapes
//! all three daemons and the console and answers queries for them. A missing `prometheus` or `promtool` fails
//! these tests (`cargo xtask setup` installs them).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lars_core::wire::native::Outcome;
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::memory::{MemoryRoutes, MemoryStats};
use lars_tests::process::http_get;
use lars_tests::{Scratch, eventually, eventually_every};

struct System {
    routes: MemoryRoutes,
    dns: Dns,
    reporter: Reporter,
    agent: AgentDaemon,
    client: Client,
    web: lars_web::Running,
    /// The console's route file and state.
    _web_files: Scratch,
}

fn loopback() -> ServerConfig {
    ServerConfig::new("127.0.0.1:0".parse().unwrap())
}

fn metrics_port() -> Option<SocketAddr> {
    Some("127.0.0.1:0".parse().unwrap())
}

fn start() -> System {
    let routes = MemoryRoutes::new();
    let mut dns_config = DnsConfig::new(loopback());
    dns_config.poll_interval = Duration::from_millis(50);
    dns_config.metrics = metrics_port();
    let dns = Dns::start(dns_config, Box::new(routes.clone())).unwrap();
    let stats = MemoryStats::new();
    let mut reporter_config = ReporterConfig::new(loopback());
    reporter_config.metrics = metrics_port();
    let reporter = Reporter::start(reporter_config, move |_| Box::new(stats.clone())).unwrap();
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter.local_addr()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    config.metrics = metrics_port();
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    // One folder per system: the tests run side by side in one process.
    static SYSTEMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SYSTEMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let web_files = Scratch::new(&format!("metrics-web-{n}"));
    let route_file = web_files.0.join("routes.conf");
    std::fs::write(&route_file, "1001 1 10.0.0.1:1\n").unwrap();
    let mut web_config = lars_web::ConsoleConfig::new(web_files.0.join("state"));
    web_config.listen = "127.0.0.1:0".parse().unwrap();
    web_config.metrics = metrics_port();
    let store = lars_std::store::console::open(None, Some(&route_file), None).unwrap();
    let web = lars_web::start(&web_config, store).unwrap();
    System { routes, dns, reporter, agent, client, web, _web_files: web_files }
}

fn host(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// A route of two hosts, one of which failed 20 calls in a row (the Lars policy overloads it
/// after 15).
fn with_an_overloaded_host() -> System {
    let system = start();
    system.routes.set_route((1001, 1), &[host(1), host(2)]);
    eventually("lars-dns loaded the route", || system.dns.snapshot().hosts((1001, 1)).len() == 2);
    system.client.reg_init(1001, 1, 20).unwrap();
    for _ in 0..20 {
        system.client.report(1001, 1, host(1), Outcome::Fail, Duration::from_micros(900)).unwrap();
    }
    for _ in 0..5 {
        system.client.report(1001, 1, host(2), Outcome::Ok, Duration::from_micros(300)).unwrap();
    }
    system
}

fn page(addr: Option<SocketAddr>) -> String {
    let (status, body) = http_get(addr.expect("metrics are on"), "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    body
}

/// `promtool check metrics` on `page`: the format checked by Prometheus's own linter.
fn promtool_accepts(page: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: run `cargo xtask setup` (Debian package prometheus)");
    child.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{page}");
}

#[test]
fn every_page_has_its_series_and_passes_promtool() {
    let system = with_an_overloaded_host();
    eventually("the agent's view shows the overloaded host", || {
        page(system.agent.metrics_addr())
            .contains(r#"lars_agent_route_hosts{modid="1001",cmdid="1",state="overloaded"} 1"#)
    });
    let agent = page(system.agent.metrics_addr());
    for series in [
        r#"lars_agent_route_hosts{modid="1001",cmdid="1",state="idle"} 1"#,
        r#"lars_agent_host_overloaded{modid="1001",cmdid="1",host="10.0.0.1:1"} 1"#,
        r#"lars_agent_link_up{link="dns"} 1"#,
        "lars_agent_reports_total 25",
        "lars_agent_routes 1",
        "# TYPE lars_agent_stats_dropped_calls_total counter",
        r#"lars_agent_pool_blocks_in_use{class="small"}"#,
    ] {
        assert!(agent.contains(series), "{series} is missing from\n{agent}");
    }
    promtool_accepts(&agent);
    eventually("lars-reporter stored the agent's statistics", || {
        page(system.reporter.metrics_addr()).contains("lars_reporter_rows_written_total 2")
    });
    let reporter = page(system.reporter.metrics_addr());
    for series in
        ["lars_reporter_queue_depth 0", "lars_reporter_store_up 1", "lars_reporter_connections_open 1"]
    {
        assert!(reporter.contains(series), "{series} is missing from\n{reporter}");
    }
    promtool_accepts(&reporter);
    // A change pushed to the subscribed agent shows in the push latency.
    system.routes.set_route((1001, 1), &[host(1), host(2), host(3)]);
    eventually("lars-dns pushed the change", || {
        page(system.dns.metrics_addr()).contains("lars_dns_push_latency_seconds_count 1")
    });
    let dns = page(system.dns.metrics_addr());
    for series in [
        "lars_dns_routes 1",
        "lars_dns_hosts 3",
        "lars_dns_subscriptions 1",
        "lars_dns_store_up 1",
        "lars_dns_pushes_total 1",
    ] {
        assert!(dns.contains(series), "{series} is missing from\n{dns}");
    }
    promtool_accepts(&dns);
    assert_eq!(http_get(system.dns.metrics_addr().unwrap(), "/").0, "HTTP/1.1 404 Not Found");
    // The console counts its answers by status class.
    assert_eq!(http_get(system.web.addr(), "/login").0, "HTTP/1.1 200 OK");
    assert_eq!(http_get(system.web.addr(), "/services").0, "HTTP/1.1 303 See Other");
    let web = page(system.web.metrics_addr());
    for series in [
        r#"lars_web_requests_total{class="2xx"} 1"#,
        r#"lars_web_requests_total{class="3xx"} 1"#,
        r#"lars_web_logins_total{result="failed"} 0"#,
        "lars_web_csrf_refusals_total 0",
        r#"lars_web_errors_total{kind="store"} 0"#,
    ] {
        assert!(web.contains(series), "{series} is missing from\n{web}");
    }
    promtool_accepts(&web);
}

/// A free loopback port for a program that takes a port, not a listener.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_scrapes_every_daemon() {
    let system = with_an_overloaded_host();
    let scratch = Scratch::new("prometheus");
    let targets: Vec<String> = [
        system.dns.metrics_addr(),
        system.reporter.metrics_addr(),
        system.agent.metrics_addr(),
        system.web.metrics_addr(),
    ]
    .iter()
    .map(|addr| format!("'{}'", addr.unwrap()))
    .collect();
    let config = scratch.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: lars\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .unwrap();
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(scratch.0.join("prometheus.log")).unwrap();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", scratch.0.join("data").display()))
            .arg(format!("--web.listen-address={web}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus is missing: run `cargo xtask setup` (Debian package prometheus)"),
    );
    let query = |expr: &str| {
        let encoded: String = expr
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        match TcpStream::connect(web) {
            Ok(_) => http_get(web, &format!("/api/v1/query?query={encoded}")).1,
            Err(_) => String::new(),
        }
    };
    for (expr, expect) in [
        ("up{job=\"lars\"} == 1", 4),
        ("lars_agent_route_hosts{state=\"overloaded\"} == 1", 1),
        ("lars_agent_host_overloaded", 1),
        ("lars_agent_link_up == 1", 2),
        ("lars_dns_routes == 1", 1),
        ("lars_reporter_rows_written_total >= 2", 1),
        ("lars_web_requests_total", 4),
    ] {
        // Prometheus takes a while to start, then scrapes every second; each test is a query.
        let what = format!("Prometheus answers {expr} with {expect} series");
        eventually_every(Duration::from_millis(200), Duration::from_secs(55), &what, || {
            let answer = query(expr);
            answer.contains(r#""status":"success""#) && answer.matches(r#""metric":"#).count() == expect
        });
    }
    let log = std::fs::read_to_string(scratch.0.join("prometheus.log")).unwrap_or_default();
    assert!(!log.contains("level=error"), "Prometheus logged errors:\n{log}");
}
