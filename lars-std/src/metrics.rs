//! Prometheus metrics for every daemon: a scrape page built from the daemon's counters with
//! `lars_core::metrics`, served by a minimal HTTP responder on its own thread.
//!
//! A daemon turns it on with `--metrics [IP:]PORT` (`[metrics] listen`; off by default, and an
//! address without an IP is on loopback). The responder answers `GET /metrics` (and nothing
//! else: other paths get 404, other methods 405) on a std `TcpListener`, one connection at a
//! time, each bounded in size ([`MAX_REQUEST`]) and in time ([`REQUEST_TIMEOUT`] for the whole
//! request), then closed: a scraper that sends garbage, never finishes its request or opens
//! connections in a loop costs that thread a bounded wait and nothing else. The daemon's own
//! threads only keep their counters; the page is built when a scrape asks for it.
//!
//! The one call a new daemon needs is [`MetricsServer::start_if`] with its `--metrics` address
//! and a function that returns its page (lars-web: `MetricsServer::start_if(config.metrics,
//! move || stats.page())`); [`Scrape`] builds that page.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use lars_core::metrics::{Encoder, Label};
pub use lars_core::metrics::{Kind, Value};

use crate::config::{ConfigError, Ini};

/// The largest request head read; a longer one is answered 431 and closed.
pub const MAX_REQUEST: usize = 8 * 1024;
/// The time a connection has to send its whole request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How a counter from a daemon's `counters()` list is exported.
#[derive(Debug, Clone, Copy)]
pub struct Desc {
    /// The counter's name in `lars stats`.
    pub key: &'static str,
    /// The family's name after the daemon's prefix (`lars_dns_` + `store_loads_total`); empty
    /// when it is the key's (see [`Desc::family_name`]).
    pub family: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
    /// A label that tells this counter from the family's others (`kind="bad_frame"`).
    pub label: Option<(&'static str, &'static str)>,
}

const fn desc(key: &'static str, family: &'static str, kind: Kind, help: &'static str) -> Desc {
    Desc { key, family, kind, help, label: None }
}

/// A counter whose family is named after its key, as Prometheus names counters
/// (`pushes` → `pushes_total`).
const fn counter(key: &'static str, help: &'static str) -> Desc {
    desc(key, "", Kind::Counter, help)
}

/// A gauge whose family is its key.
const fn gauge(key: &'static str, help: &'static str) -> Desc {
    desc(key, "", Kind::Gauge, help)
}

impl Desc {
    /// The family's name after the daemon's prefix: [`Desc::family`] when it has one, else
    /// the key (`_total` added for a counter).
    pub fn family_name(&self) -> std::borrow::Cow<'static, str> {
        match (self.family, self.kind) {
            ("", Kind::Counter) => format!("{}_total", self.key).into(),
            ("", _) => self.key.into(),
            (family, _) => family.into(),
        }
    }
}

const fn error(key: &'static str, kind: &'static str) -> Desc {
    Desc {
        key,
        family: "errors_total",
        kind: Kind::Counter,
        help: "Things refused or failed, by kind.",
        label: Some(("kind", kind)),
    }
}

/// The TCP server's counters (`ServerStats::counters`), the same in lars-dns and lars-reporter.
pub const SERVER: &[Desc] = &[
    desc("open", "connections_open", Kind::Gauge, "Connections open now."),
    desc("accepted", "connections_accepted_total", Kind::Counter, "Connections accepted."),
    desc("closed", "connections_closed_total", Kind::Counter, "Connections closed."),
    error("refused", "conn_refused"),
    error("accept_errors", "accept"),
    error("bad_frames", "bad_frame"),
    error("output_full", "output_full"),
    error("tasks_refused", "task_refused"),
    Desc {
        key: "frames_in",
        family: "frames_total",
        kind: Kind::Counter,
        help: "Frames received and sent.",
        label: Some(("direction", "in")),
    },
    Desc {
        key: "frames_out",
        family: "frames_total",
        kind: Kind::Counter,
        help: "Frames received and sent.",
        label: Some(("direction", "out")),
    },
];

/// lars-dns's counters (`DnsStats::counters`).
pub const DNS: &[Desc] = &[
    desc(
        "loads",
        "store_loads_total",
        Kind::Counter,
        "Route tables installed (full loads and change-log reads).",
    ),
    desc(
        "change_reads",
        "store_change_reads_total",
        Kind::Counter,
        "Tables read from the store's change log.",
    ),
    error("load_errors", "store"),
    error("push_failures", "push_failed"),
    error("oversize_routes", "oversize_route"),
    error("bad_requests", "bad_request"),
    gauge("routes", "Routes served."),
    gauge("hosts", "Host entries served."),
    desc("requests", "route_requests_total", Kind::Counter, "Route requests answered."),
    counter("pushes", "Route pushes sent to subscribed agents."),
    counter("unready_answers", "Route requests before the store was loaded."),
    gauge("ready", "1 once a full load of the store succeeded."),
    gauge("store_up", "1 while the last access to the store succeeded."),
    counter("held_loads", "Loads held by the shrink protection."),
    gauge("subscriptions", "Routes agents are subscribed to, over all connections."),
];

/// lars-reporter's counters (`ReporterStats::counters`).
pub const REPORTER: &[Desc] = &[
    desc("frames", "stats_frames_total", Kind::Counter, "Statistics frames received."),
    counter("rows_received", "Statistics rows received."),
    desc("rows_stored", "rows_written_total", Kind::Counter, "Statistics rows written to the store."),
    counter("rows_dropped", "Statistics rows dropped (queue full, or store down at shutdown)."),
    counter("batches", "Batches written."),
    desc("queued", "queue_depth", Kind::Gauge, "Rows waiting for a writer."),
    gauge("store_up", "1 while no writer is failing to reach the store."),
    error("store_errors", "store"),
    error("bad_requests", "bad_request"),
    error("history_store_errors", "history_store"),
    counter("decisions_received", "Host state changes agents sent."),
    counter("history_rows_written", "Call history rows (host-minutes) written."),
    counter("history_rows_dropped", "Call history rows dropped (queue or held rows full)."),
    gauge("history_rows_pending", "Call history rows held until their minute is over."),
    counter("decisions_stored", "Decisions written to the store."),
    counter("decisions_dropped", "Decisions dropped (queue full, or store down)."),
    counter("history_pruned", "History and decision rows pruned by age."),
];

/// The agent's counters (`AgentStats::counters` and what the daemon adds).
pub const AGENT: &[Desc] = &[
    counter("api_requests", "API datagrams handled."),
    error("api_errors", "api"),
    error("route_table_full", "route_table_full"),
    error("dns_errors", "dns_frame"),
    error("pull_timeouts", "pull_timeout"),
    error("ipv6_not_representable", "ipv6_not_representable"),
    counter("get_host", "get_host requests."),
    counter("reports", "Call results reported."),
    counter("reports_failed", "Call results that were failures or overloads."),
    counter("reports_unknown_route", "Reports for routes the agent does not hold."),
    counter("leased_calls", "Calls summarised by clients that lease routes."),
    counter("route_over_capacity", "Route updates larger than a route holds."),
    counter("dns_unready_answers", "Answers from a lars-dns that had not loaded its store."),
    desc("pulls_sent", "pulls_total", Kind::Counter, "Route pulls sent to lars-dns."),
    counter("routes_received", "Route answers and pushes applied."),
    counter("stats_frames", "Statistics frames sent to lars-reporter."),
    counter("stats_entries", "Host statistics entries sent."),
    counter("stats_flushes_held", "Statistics flushes held while lars-reporter was unreachable."),
    counter(
        "stats_dropped_calls",
        "Calls whose statistics were dropped (they could not be kept for lars-reporter).",
    ),
    counter("events_dropped", "Events the driver did not drain in time."),
    counter("decisions", "Host state changes the balancers made."),
    counter("decisions_dropped", "Decisions dropped before they were sent."),
    gauge("routes", "Routes held."),
    gauge("routes_stale", "Routes served past update_timeout."),
    gauge("dns_ready", "0 while lars-dns says it has not loaded its store."),
];

/// The buffer pool's counters per class (small, then large), in the order
/// `daemon::pool_counters` gives their values.
pub(crate) const POOL_KEYS: [[&str; 6]; 2] = [
    [
        "pool_small_block_size",
        "pool_small_blocks",
        "pool_small_in_use",
        "pool_small_in_magazines",
        "pool_small_high_water",
        "pool_small_failed",
    ],
    [
        "pool_large_block_size",
        "pool_large_blocks",
        "pool_large_in_use",
        "pool_large_in_magazines",
        "pool_large_high_water",
        "pool_large_failed",
    ],
];

const fn labelled(
    key: &'static str,
    family: &'static str,
    help: &'static str,
    label: (&'static str, &'static str),
) -> Desc {
    Desc { key, family, kind: Kind::Counter, help, label: Some(label) }
}

/// lars-web's counters (`lars_web::stats::WebStats::counters`; the console is its own crate).
pub const WEB: &[Desc] = &[
    labelled("requests_2xx", "requests_total", "Requests answered, by status class.", ("class", "2xx")),
    labelled("requests_3xx", "requests_total", "Requests answered, by status class.", ("class", "3xx")),
    labelled("requests_4xx", "requests_total", "Requests answered, by status class.", ("class", "4xx")),
    labelled("requests_5xx", "requests_total", "Requests answered, by status class.", ("class", "5xx")),
    labelled("logins_ok", "logins_total", "Sign-ins, by result.", ("result", "ok")),
    labelled("logins_failed", "logins_total", "Sign-ins, by result.", ("result", "failed")),
    labelled("logins_limited", "logins_total", "Sign-ins, by result.", ("result", "limited")),
    desc(
        "csrf_refused",
        "csrf_refusals_total",
        Kind::Counter,
        "Posts refused for a missing or wrong CSRF or sign-in form token.",
    ),
    counter(
        "sessions_refused",
        "Requests whose session cookie was expired, forged or of a user no longer known.",
    ),
    counter("changes_written", "Changes written to the store (host edits, deletions, descriptions)."),
    // Answers 503: the store could not be reached.
    error("store_errors", "store"),
];

/// The buffer pool's counters (`daemon::pool_counters`), per class.
pub const POOL: &[Desc] = &pool_descs();

const fn pool_descs() -> [Desc; 12] {
    const FAMILIES: [(&str, &str, Kind, &str); 6] = [
        ("block_size", "pool_block_bytes", Kind::Gauge, "Size of a block of the class."),
        ("blocks", "pool_blocks", Kind::Gauge, "Blocks of the class."),
        ("in_use", "pool_blocks_in_use", Kind::Gauge, "Blocks in buffers now."),
        ("in_magazines", "pool_blocks_in_magazines", Kind::Gauge, "Blocks cached in the threads' magazines."),
        ("high_water", "pool_blocks_high_water", Kind::Gauge, "The most blocks ever out at once."),
        ("failed", "pool_alloc_failed_total", Kind::Counter, "Allocations refused (backpressure)."),
    ];
    let mut out = [gauge("", ""); 12];
    let mut class = 0;
    while class < 2 {
        let mut i = 0;
        while i < 6 {
            let (_, family, kind, help) = FAMILIES[i];
            out[class * 6 + i] = Desc {
                key: POOL_KEYS[class][i],
                family,
                kind,
                help,
                label: Some(("class", if class == 0 { "small" } else { "large" })),
            };
            i += 1;
        }
        class += 1;
    }
    out
}

/// One sample on its way to the page.
#[derive(Debug, Clone)]
struct Sample {
    family: String,
    kind: Kind,
    help: &'static str,
    /// Added to the family's name on the sample line (`_sum`, `_count`), or empty.
    suffix: &'static str,
    labels: Vec<(&'static str, String)>,
    value: Value,
}

/// A scrape page being built. Samples may come in any order; [`Scrape::render`] writes each
/// family's together, families in the order they first came.
#[derive(Debug, Clone)]
pub struct Scrape {
    prefix: &'static str,
    samples: Vec<Sample>,
}

impl Scrape {
    /// A page whose families are all named `{prefix}_...` (`lars_dns`).
    pub fn new(prefix: &'static str) -> Scrape {
        Scrape { prefix, samples: Vec::new() }
    }

    /// Adds a sample of family `{prefix}_{family}`.
    pub fn add(
        &mut self,
        family: &str,
        kind: Kind,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
        value: impl Into<Value>,
    ) {
        self.add_sample(family, kind, help, "", labels, value.into());
    }

    /// Adds a summary without quantiles: its `_sum` and `_count`.
    pub fn summary(&mut self, family: &str, help: &'static str, sum: f64, count: u64) {
        self.add_sample(family, Kind::Summary, help, "_sum", Vec::new(), Value::Float(sum));
        self.add_sample(family, Kind::Summary, help, "_count", Vec::new(), Value::Uint(count));
    }

    fn add_sample(
        &mut self,
        family: &str,
        kind: Kind,
        help: &'static str,
        suffix: &'static str,
        labels: Vec<(&'static str, String)>,
        value: Value,
    ) {
        let family = format!("{}_{family}", self.prefix);
        self.samples.push(Sample { family, kind, help, suffix, labels, value });
    }

    /// Adds `counters` (as `lars stats` names them) as their descriptions in `descs` say. A
    /// counter without one (added since) is exported as it is named, untyped, so that nothing
    /// a daemon counts goes missing from the page.
    pub fn counters(&mut self, descs: &[&[Desc]], counters: &[(&str, u64)]) {
        for &(key, value) in counters {
            match descs.iter().flat_map(|d| d.iter()).find(|d| d.key == key) {
                Some(d) => {
                    let labels = d.label.map(|(name, v)| vec![(name, v.to_string())]).unwrap_or_default();
                    self.add(&d.family_name(), d.kind, d.help, labels, value);
                }
                None => self.add(
                    key,
                    Kind::Untyped,
                    "Undocumented counter (see `lars stats`).",
                    Vec::new(),
                    value,
                ),
            }
        }
    }

    /// The page in the text format. A sample whose family or label names are not valid is
    /// left out (names come from code, never from peers, and tests check them).
    pub fn render(&self) -> String {
        let mut order: Vec<&str> = Vec::new();
        let mut by_family: HashMap<&str, Vec<&Sample>> = HashMap::new();
        for sample in &self.samples {
            let entry = by_family.entry(&sample.family).or_default();
            if entry.is_empty() {
                order.push(&sample.family);
            }
            entry.push(sample);
        }
        let mut page = String::with_capacity(self.samples.len() * 64);
        for family in order {
            let samples = &by_family[family];
            let mut block = String::new();
            let mut enc = Encoder::new(&mut block);
            let first = samples[0];
            if enc.family(family, first.kind, first.help).is_err() {
                continue;
            }
            for sample in samples {
                let labels: Vec<Label<'_>> = sample
                    .labels
                    .iter()
                    .map(|(name, value)| (*name, value as &dyn std::fmt::Display))
                    .collect();
                let mut line = String::new();
                let name = format!("{family}{}", sample.suffix);
                if Encoder::new(&mut line).sample(&name, &labels, sample.value).is_ok() {
                    block.push_str(&line);
                }
            }
            page.push_str(&block);
        }
        page
    }
}

/// lars-dns's page: its counters, its server's, the pool's and the push latency.
pub(crate) fn dns_page(stats: &crate::dns::DnsStats, server: &crate::reactor::ServerStats) -> String {
    let mut scrape = Scrape::new("lars_dns");
    let own = stats.counters();
    let latency = |key| own.iter().find(|(k, _)| *k == key).map_or(0, |&(_, v)| v);
    let (rounds, latency_us) = (latency("push_rounds"), latency("push_latency_us"));
    let own: Vec<_> =
        own.into_iter().filter(|(k, _)| !matches!(*k, "push_rounds" | "push_latency_us")).collect();
    scrape.counters(&[DNS], &own);
    scrape.summary(
        "push_latency_seconds",
        "From noticing a store change to the end of its pushes, per change and worker.",
        latency_us as f64 / 1e6,
        rounds,
    );
    scrape.counters(&[SERVER], &server.counters());
    scrape.counters(&[POOL], &crate::daemon::pool_counters());
    scrape.render()
}

/// lars-reporter's page: its counters, its server's and the pool's.
pub(crate) fn reporter_page(
    stats: &crate::reporter::ReporterStats,
    server: &crate::reactor::ServerStats,
    history: Option<&crate::reporter::HistoryStats>,
) -> String {
    let mut scrape = Scrape::new("lars_reporter");
    scrape.counters(&[REPORTER], &stats.counters());
    if let Some(history) = history {
        scrape.counters(&[REPORTER], &history.counters());
    }
    scrape.counters(&[SERVER], &server.counters());
    scrape.counters(&[POOL], &crate::daemon::pool_counters());
    scrape.render()
}

/// What the agent's page shows, copied from the agent's thread about every second.
#[derive(Debug, Clone, Default)]
pub(crate) struct AgentView {
    pub(crate) counters: Vec<(&'static str, u64)>,
    pub(crate) dns_up: bool,
    pub(crate) reporter_up: bool,
    pub(crate) routes: Vec<RouteView>,
}

/// One route of an [`AgentView`].
#[derive(Debug, Clone)]
pub(crate) struct RouteView {
    pub(crate) modid: i32,
    pub(crate) cmdid: i32,
    /// Hosts the balancer serves.
    pub(crate) idle: u32,
    /// Hosts the balancer avoids as overloaded (only probed).
    pub(crate) overloaded: Vec<SocketAddr>,
    pub(crate) stale: bool,
}

/// The agent's page: its counters, its links, each route's hosts by state (and each
/// overloaded host, a series that exists only while the host is overloaded), and the pool.
pub(crate) fn agent_page(view: &AgentView) -> String {
    let mut scrape = Scrape::new("lars_agent");
    scrape.counters(&[AGENT], &view.counters);
    for (link, up) in [("dns", view.dns_up), ("reporter", view.reporter_up)] {
        let help = "1 while the link to lars-dns or lars-reporter is up and its codec known.";
        scrape.add("link_up", Kind::Gauge, help, vec![("link", link.to_string())], up);
    }
    for route in &view.routes {
        let key = || vec![("modid", route.modid.to_string()), ("cmdid", route.cmdid.to_string())];
        let help = "Hosts of a route, by the balancer's state: idle (served) or overloaded (only probed).";
        for (state, hosts) in [("idle", u64::from(route.idle)), ("overloaded", route.overloaded.len() as u64)]
        {
            let mut labels = key();
            labels.push(("state", state.to_string()));
            scrape.add("route_hosts", Kind::Gauge, help, labels, hosts);
        }
        scrape.add(
            "route_stale",
            Kind::Gauge,
            "1 while a route is served past update_timeout.",
            key(),
            route.stale,
        );
    }
    for route in &view.routes {
        for host in &route.overloaded {
            let mut labels = vec![("modid", route.modid.to_string()), ("cmdid", route.cmdid.to_string())];
            labels.push(("host", host.to_string()));
            let help = "1 for each host the balancer holds overloaded (no series while it is idle).";
            scrape.add("host_overloaded", Kind::Gauge, help, labels, 1u64);
        }
    }
    scrape.counters(&[POOL], &crate::daemon::pool_counters());
    scrape.render()
}

/// The metrics address from `--metrics` or `[metrics] listen`: `IP:PORT`, or a bare port on
/// 127.0.0.1. `None` when neither is set (metrics are off by default).
pub fn listen_addr(ini: &Ini) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(text) = ini.get_str("metrics", "listen") else { return Ok(None) };
    parse_listen(text)
        .map(Some)
        .ok_or_else(|| ini.error("metrics", "listen", format!("`{text}` is not a port or ip:port")))
}

/// `IP:PORT`, or a bare port on loopback.
pub fn parse_listen(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    match text.parse::<u16>() {
        Ok(port) => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
        Err(_) => text.parse().ok(),
    }
}

/// Counters of the responder itself.
#[derive(Debug, Default)]
pub struct ResponderStats {
    /// Pages served.
    pub scrapes: AtomicU64,
    /// Requests answered with an error (bad request, wrong path or method, too large, too
    /// slow).
    pub bad_requests: AtomicU64,
}

/// A running metrics responder. Dropping it stops it.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<ResponderStats>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// [`MetricsServer::start`] at `addr` if there is one (a daemon's `--metrics`), else
    /// nothing.
    pub fn start_if(
        addr: Option<SocketAddr>,
        page: impl Fn() -> String + Send + 'static,
    ) -> io::Result<Option<MetricsServer>> {
        addr.map(|addr| MetricsServer::start(addr, page)).transpose()
    }

    /// Listens on `addr` and serves `GET /metrics` with what `page` returns, on a thread of its
    /// own.
    pub fn start(addr: SocketAddr, page: impl Fn() -> String + Send + 'static) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ResponderStats::default());
        let (thread_stop, thread_stats) = (Arc::clone(&stop), Arc::clone(&stats));
        let thread = std::thread::Builder::new().name("lars-metrics".into()).spawn(move || {
            for conn in listener.incoming() {
                if thread_stop.load(Ordering::Acquire) {
                    return;
                }
                // An accept error (out of descriptors) must not end the responder.
                let Ok(conn) = conn else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                respond(conn, &page, &thread_stats);
            }
        })?;
        Ok(MetricsServer { addr, stop, stats, thread: Some(thread) })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its own counters.
    pub fn stats(&self) -> &ResponderStats {
        &self.stats
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept; the thread sees the flag and ends.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one connection, counting it before the answer leaves.
fn respond(mut conn: TcpStream, page: &dyn Fn() -> String, stats: &ResponderStats) {
    let _ = conn.set_write_timeout(Some(REQUEST_TIMEOUT));
    let status = match read_head(&mut conn) {
        Err(status) => status,
        Ok(head) => route(&head),
    };
    let ok = status == "200 OK";
    let counter = if ok { &stats.scrapes } else { &stats.bad_requests };
    counter.fetch_add(1, Ordering::Relaxed);
    let body = if ok { page() } else { format!("{status}\n") };
    let content_type = if ok { "text/plain; version=0.0.4; charset=utf-8" } else { "text/plain" };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).and_then(|()| conn.write_all(body.as_bytes()));
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

/// Reads up to the blank line that ends the request head, within the size and time bounds.
fn read_head(conn: &mut TcpStream) -> Result<Vec<u8>, &'static str> {
    let started = crate::time::Stopwatch::start();
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = REQUEST_TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err("408 Request Timeout");
        }
        let _ = conn.set_read_timeout(Some(left));
        let n = match conn.read(&mut chunk) {
            Ok(0) => return Err("400 Bad Request"),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err("408 Request Timeout");
            }
            Err(_) => return Err("400 Bad Request"),
        };
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() > MAX_REQUEST {
            return Err("431 Request Header Fields Too Large");
        }
    }
}

/// The status for a request head.
fn route(head: &[u8]) -> &'static str {
    let line = head.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return "400 Bad Request";
    };
    if !version.starts_with(b"HTTP/1.") {
        return "400 Bad Request";
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => "200 OK",
        (b"GET", _) => "404 Not Found",
        _ => "405 Method Not Allowed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, request: &[u8]) -> String {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(request).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn families_are_grouped_and_unknown_counters_kept() {
        let mut scrape = Scrape::new("lars_dns");
        scrape.counters(
            &[DNS, SERVER],
            &[("bad_requests", 2), ("routes", 5), ("load_errors", 1), ("new_one", 7)],
        );
        scrape.summary("push_latency_seconds", "From a change to its push.", 0.5, 4);
        assert_eq!(
            scrape.render(),
            "# HELP lars_dns_errors_total Things refused or failed, by kind.\n\
             # TYPE lars_dns_errors_total counter\n\
             lars_dns_errors_total{kind=\"bad_request\"} 2\n\
             lars_dns_errors_total{kind=\"store\"} 1\n\
             # HELP lars_dns_routes Routes served.\n\
             # TYPE lars_dns_routes gauge\n\
             lars_dns_routes 5\n\
             # HELP lars_dns_new_one Undocumented counter (see `lars stats`).\n\
             # TYPE lars_dns_new_one untyped\n\
             lars_dns_new_one 7\n\
             # HELP lars_dns_push_latency_seconds From a change to its push.\n\
             # TYPE lars_dns_push_latency_seconds summary\n\
             lars_dns_push_latency_seconds_sum 0.5\n\
             lars_dns_push_latency_seconds_count 4\n"
        );
    }

    #[test]
    fn every_description_is_valid_and_unique() {
        for table in [SERVER, DNS, REPORTER, AGENT, WEB, POOL] {
            let mut scrape = Scrape::new("lars_x");
            let counters: Vec<(&str, u64)> = table.iter().map(|d| (d.key, 1)).collect();
            scrape.counters(&[table], &counters);
            let page = scrape.render();
            assert_eq!(page.lines().filter(|l| !l.starts_with('#')).count(), table.len(), "{page}");
            let mut keys: Vec<&str> = table.iter().map(|d| d.key).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), table.len(), "a key described twice");
            for d in table {
                assert!(
                    d.kind != Kind::Counter || d.family_name().ends_with("_total"),
                    "{}",
                    d.family_name()
                );
            }
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("9100"), Some("127.0.0.1:9100".parse().unwrap()), "loopback by default");
        assert_eq!(parse_listen("0.0.0.0:9100"), Some("0.0.0.0:9100".parse().unwrap()));
        assert_eq!(parse_listen("[::1]:9"), Some("[::1]:9".parse().unwrap()));
        assert_eq!(parse_listen("nine"), None);
        let ini = Ini::parse("[metrics]\nlisten = here\n", std::path::Path::new("a.conf")).unwrap();
        let error = listen_addr(&ini).unwrap_err().to_string();
        assert!(error.contains("a.conf") && error.contains("listen"), "{error}");
        assert_eq!(listen_addr(&Ini::new()).unwrap(), None, "off by default");
    }

    #[test]
    fn the_responder_serves_the_page_and_refuses_the_rest() {
        let server =
            MetricsServer::start("127.0.0.1:0".parse().unwrap(), || "x_total 1\n".to_string()).unwrap();
        let addr = server.local_addr();
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nx_total 1\n"), "{ok}");
        assert!(get(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(get(addr, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(addr, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(addr, b"\x00\xff garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
        let huge = [b'A'; MAX_REQUEST + 2048];
        assert!(get(addr, &huge).starts_with("HTTP/1.1 431"));
        // Half a request, then silence: answered 408 once the time is up, and the next
        // scrape is served.
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /metr").unwrap();
        let mut answer = String::new();
        slow.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(get(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert_eq!(server.stats().scrapes.load(Ordering::Relaxed), 3);
        assert_eq!(server.stats().bad_requests.load(Ordering::Relaxed), 5);
    }
}
