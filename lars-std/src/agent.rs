//! lars-agent: `lars_core::agent` behind UDP API endpoints, with TCP links to lars-dns and
//! lars-reporter.
//!
//! One thread runs one event loop holding the API endpoints (127.0.0.1:8888, 8889 and 8890 by
//! default; the original bound 0.0.0.0, D-A-9), the two reconnecting clients (each with a list of
//! replica addresses to fail over between) and the agent. The loop only moves bytes and time:
//! datagrams go to `handle_api_datagram_with` (which also answers `lars stats`, adding the
//! pool's and the sockets' counters to the agent's) and replies straight back; dns frames to
//! `handle_dns_frame`; link changes to `handle_*_link`; `poll_transmit` output to the links;
//! `poll_timeout` into the loop's wait.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use lars_core::agent::{Agent, AgentEvent, AgentStats, DECISIONS, Link, Severity};
use lars_core::time::Instant;
use lars_core::wire::native::{Counter, CounterSource};
use lars_core::wire::{Frame, frame};

use crate::reactor::{
    Control, EventLoop, LinkEvent, Ready, SpinStats, TcpClient, TcpClientConfig, UdpEndpoint, UdpStats, Waker,
};
use crate::time::Clock;

mod cache;
mod config;

use cache::RouteCache;
pub use config::{AgentDaemonConfig, KEYS, exposure_warning, read_agent_config};

/// Routes an agent holds.
pub const ROUTES: usize = 512;
/// Hosts per route an agent holds; a larger route is refused (and counted) until it shrinks.
pub const HOSTS: usize = 256;

const DNS_KEY: usize = 1000;
const REPORTER_KEY: usize = 1001;
const DNS_TIMER: u64 = 1;
const REPORTER_TIMER: u64 = 2;
/// Datagrams served per endpoint per wake-up, so one busy port cannot starve the others.
const API_BUDGET: usize = 256;
/// How long a stop waits for lars-reporter's link to take the last statistics.
const STOP_FLUSH: lars_core::time::Duration = lars_core::time::Duration::from_millis(1000);

/// A running lars-agent.
pub struct AgentDaemon {
    api: Vec<SocketAddr>,
    stats: Arc<Mutex<AgentStats>>,
    stop: Waker<()>,
    thread: Option<JoinHandle<()>>,
    metrics: Option<crate::metrics::MetricsServer>,
}

impl AgentDaemon {
    /// Binds the endpoints and starts the agent's thread. An API endpoint bound to anything but
    /// loopback is warned about ([`exposure_warning`]).
    pub fn start(config: AgentDaemonConfig) -> io::Result<AgentDaemon> {
        for warning in config.api.iter().filter_map(|addr| exposure_warning(*addr)) {
            log::warn!("{warning}");
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        let config_metrics = config.metrics;
        let stats = Arc::new(Mutex::new(AgentStats::default()));
        let shared = Arc::clone(&stats);
        // The metrics page reads a view the agent's thread refreshes every second, only when
        // metrics are on.
        let view = config.metrics.map(|_| Arc::new(Mutex::new(crate::metrics::AgentView::default())));
        let thread_view = view.clone();
        let thread = std::thread::Builder::new()
            .name("lars-agent".into())
            // The agent's route table is fixed-size (17 MB) and lives on this stack; pages it
            // does not touch cost nothing (the size is address space, not memory). An
            // unoptimised build copies it through each level of its construction
            // (`Agent::new`, `RouteTable::new`, `heapless::Vec::new`), four copies in all.
            .stack_size(if cfg!(debug_assertions) { 128 << 20 } else { 64 << 20 })
            .spawn(move || {
                let clock = Clock::new();
                match Runner::bind(clock, &config) {
                    Ok(runner) => {
                        let _ = ready_tx.send(Ok((runner.addrs(), runner.event_loop.waker())));
                        let mut agent: Agent<ROUTES, HOSTS, DECISIONS> =
                            Agent::new(config.agent, clock.now());
                        agent.set_unix_time(clock.now(), Clock::unix_secs());
                        let cache = config.route_cache.map(RouteCache::new);
                        if let Some(cache) = &cache {
                            cache.restore(&mut agent, clock.now(), config.route_cache_max_age);
                        }
                        runner.run(&mut agent, &shared, cache, thread_view);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        let (api, stop) =
            ready_rx.recv().map_err(|_| io::Error::other("the agent thread died while starting"))??;
        let metrics = match (config_metrics, view) {
            (Some(addr), Some(view)) => Some(crate::metrics::MetricsServer::start(addr, move || {
                crate::metrics::agent_page(&view.lock().unwrap_or_else(|p| p.into_inner()))
            })?),
            _ => None,
        };
        Ok(AgentDaemon { api, stats, stop, thread: Some(thread), metrics })
    }

    /// The bound API endpoints.
    pub fn api_addrs(&self) -> &[SocketAddr] {
        &self.api
    }

    /// Where Prometheus metrics are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(crate::metrics::MetricsServer::local_addr)
    }

    /// The agent's counters (refreshed about every 100 ms).
    pub fn stats(&self) -> AgentStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the agent's thread.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        let _ = self.stop.post(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AgentDaemon {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

struct Runner {
    event_loop: EventLoop<()>,
    endpoints: Vec<UdpEndpoint>,
    dns: TcpClient,
    reporter: TcpClient,
}

impl Runner {
    fn bind(clock: Clock, config: &AgentDaemonConfig) -> io::Result<Runner> {
        let mut event_loop = EventLoop::new(clock, 16)?;
        // Callers with one get_host in flight send their next request microseconds after the
        // reply: while they do, the loop keeps its core awake instead of sleeping between
        // requests (see `reactor/spin.rs`; measured in ARCHITECTURE.md).
        if config.spin {
            event_loop.spin_when_dense(crate::reactor::SpinConfig::default());
        }
        let endpoints = config
            .api
            .iter()
            .enumerate()
            .map(|(key, addr)| UdpEndpoint::bind(&event_loop, *addr, key, false))
            .collect::<io::Result<_>>()?;
        let mut dns_config = TcpClientConfig::new(config.dns.clone());
        dns_config.seed = config.agent.seed;
        let dns = TcpClient::new(&mut event_loop, dns_config, DNS_KEY, DNS_TIMER);
        let mut reporter_config = TcpClientConfig::new(config.reporter.clone());
        reporter_config.seed = config.agent.seed.wrapping_add(1);
        let reporter = TcpClient::new(&mut event_loop, reporter_config, REPORTER_KEY, REPORTER_TIMER);
        Ok(Runner { event_loop, endpoints, dns, reporter })
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.endpoints.iter().filter_map(|e| e.local_addr().ok()).collect()
    }

    fn run<const R: usize, const H: usize, const D: usize>(
        mut self,
        agent: &mut Agent<R, H, D>,
        shared: &Mutex<AgentStats>,
        mut cache: Option<RouteCache>,
        view: Option<Arc<Mutex<crate::metrics::AgentView>>>,
    ) {
        let clock = self.event_loop.clock();
        let mut ready = self.event_loop.ready_list();
        let mut buf = vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize];
        let mut published = clock.now();
        let mut viewed: Option<Instant> = None;
        let mut decisions_logged = 0;
        loop {
            // The agent's own deadline bounds the wait rather than being a loop timer: a timer
            // set each time the deadline moved earlier left the later ones in the loop's heap,
            // which grew with the load (and allocated).
            let max_wait = agent.poll_timeout().map(|deadline| clock.until(deadline));
            ready.clear();
            if self.event_loop.poll(&mut ready, max_wait).is_err() {
                return;
            }
            let now = clock.now();
            for item in ready.drain(..) {
                match item {
                    Ready::Task(()) => return self.flush_before_stop(agent, &mut buf),
                    Ready::Io { key: DNS_KEY, readable, writable } => {
                        let event = self.dns.on_io(&mut self.event_loop, readable, writable, |frame, _| {
                            dns_frame(agent, now, frame)
                        });
                        link_changed(agent, now, Link::Dns, event);
                    }
                    Ready::Io { key: REPORTER_KEY, readable, writable } => {
                        let event =
                            self.reporter.on_io(&mut self.event_loop, readable, writable, |frame, _| {
                                reporter_frame(agent, now, frame)
                            });
                        link_changed(agent, now, Link::Reporter, event);
                    }
                    Ready::Io { key, .. } => {
                        let driver = DriverCounters::new(&self.endpoints, self.event_loop.spin_stats());
                        if let Some(endpoint) = self.endpoints.get_mut(key) {
                            let served = endpoint.serve(API_BUDGET, |_frame, datagram, _from, reply| {
                                agent.handle_api_datagram_with(now, datagram, reply, &driver).unwrap_or(0)
                            });
                            match served {
                                Ok(served) => self.event_loop.handled(served),
                                Err(e) => log::warn!("API socket: {e}"),
                            }
                        }
                    }
                    Ready::Timer(DNS_TIMER) => {
                        let event =
                            self.dns.on_timer(&mut self.event_loop, |frame, _| dns_frame(agent, now, frame));
                        link_changed(agent, now, Link::Dns, event);
                    }
                    Ready::Timer(REPORTER_TIMER) => {
                        let event = self
                            .reporter
                            .on_timer(&mut self.event_loop, |frame, _| reporter_frame(agent, now, frame));
                        link_changed(agent, now, Link::Reporter, event);
                    }
                    Ready::Timer(_) => {}
                }
            }
            if agent.poll_timeout().is_some_and(|deadline| deadline <= now) {
                agent.handle_timeout(now);
            }
            // Links whose handshake failed or timed out: closed, and reconnected with backoff.
            while let Some(link) = agent.poll_link_close() {
                let client = match link {
                    Link::Dns => &mut self.dns,
                    Link::Reporter => &mut self.reporter,
                };
                let event = client.reset(&mut self.event_loop);
                link_changed(agent, now, link, Some(event));
            }
            self.transmit(agent, now, &mut buf);
            while let Some(event) = agent.poll_event() {
                if let (Some(cache), AgentEvent::RouteUpdated { .. } | AgentEvent::RouteRemoved { .. }) =
                    (cache.as_mut(), &event)
                {
                    cache.dirty = true;
                }
                log_event(&event);
            }
            decisions_logged = log_decisions(agent, decisions_logged);
            if let Some(cache) = cache.as_mut() {
                cache.save_if_due(agent, now);
            }
            if now.saturating_since(published).as_millis() >= 100 {
                *shared.lock().unwrap_or_else(|p| p.into_inner()) = *agent.stats();
                published = now;
            }
            if let Some(view) = &view
                && viewed.is_none_or(|at| now.saturating_since(at).as_millis() >= 1000)
            {
                *view.lock().unwrap_or_else(|p| p.into_inner()) = agent_view(agent);
                viewed = Some(now);
            }
        }
    }

    /// The agent is stopping: hands every tally to lars-reporter's link and waits, for
    /// [`STOP_FLUSH`] at most, until the link has written it (or, if the link is greeting or
    /// reconnecting, until it can). What is left is logged.
    fn flush_before_stop<const R: usize, const H: usize, const D: usize>(
        &mut self,
        agent: &mut Agent<R, H, D>,
        buf: &mut [u8],
    ) {
        let clock = self.event_loop.clock();
        let deadline = clock.now() + STOP_FLUSH;
        let mut flushing = false;
        let mut ready = self.event_loop.ready_list();
        loop {
            let now = clock.now();
            agent.handle_timeout(now);
            flushing = flushing || agent.handle_shutdown(now);
            self.transmit(agent, now, buf);
            let written = flushing && !agent.flushing() && self.reporter.queued_output() == 0;
            if written || agent.unreported_calls() == 0 && !agent.flushing() || now >= deadline {
                break;
            }
            ready.clear();
            if self.event_loop.poll(&mut ready, Some(std::time::Duration::from_millis(10))).is_err() {
                break;
            }
            let now = clock.now();
            for item in ready.drain(..) {
                let event = match item {
                    Ready::Io { key: REPORTER_KEY, readable, writable } => {
                        self.reporter.on_io(&mut self.event_loop, readable, writable, |frame, _| {
                            reporter_frame(agent, now, frame)
                        })
                    }
                    Ready::Timer(REPORTER_TIMER) => self
                        .reporter
                        .on_timer(&mut self.event_loop, |frame, _| reporter_frame(agent, now, frame)),
                    _ => None,
                };
                link_changed(agent, now, Link::Reporter, event);
            }
        }
        let left = agent.unreported_calls();
        if left > 0 {
            log::warn!("stopping with {left} calls not sent to lars-reporter (it is unreachable)");
        }
    }

    /// Sends what the agent wants sent. A frame its link refuses is dropped: pulls are retried
    /// by the agent, and statistics are best effort by design.
    fn transmit<const R: usize, const H: usize, const D: usize>(
        &mut self,
        agent: &mut Agent<R, H, D>,
        now: Instant,
        buf: &mut [u8],
    ) {
        while let Some(transmit) = agent.poll_transmit(now, buf) {
            let client = match transmit.link {
                Link::Dns => &mut self.dns,
                Link::Reporter => &mut self.reporter,
            };
            let _ = client.send_frame(&mut self.event_loop, &buf[..transmit.len]);
        }
    }
}

/// Logs the decisions made since `logged` of them were; returns how many have been now. The
/// log keeps them (for `lars stats` and the metrics page to count, and for a reader of the
/// ring).
fn log_decisions<const R: usize, const H: usize, const D: usize>(agent: &Agent<R, H, D>, logged: u64) -> u64 {
    let (total, _) = agent.decision_counts();
    // The core's count is a wrapping u32.
    let new = ((total as u32).wrapping_sub(logged as u32) as usize).min(D);
    let held = agent.decisions().count();
    for decision in agent.decisions().skip(held.saturating_sub(new)) {
        log::info!("decision: {decision}");
    }
    total
}

/// The agent's counters and the daemon's gauges of it, as `lars stats` and metrics name them.
fn agent_counters<const R: usize, const H: usize, const D: usize>(
    agent: &Agent<R, H, D>,
) -> Vec<(&'static str, u64)> {
    let mut counters: Vec<(&str, u64)> = agent.stats().counters().to_vec();
    counters.push(("routes", agent.route_count() as u64));
    counters.push(("stats_waiting_calls", agent.unreported_calls()));
    // Served past update_timeout while lars-dns is unreachable or not ready.
    counters.push(("routes_stale", agent.stale_routes() as u64));
    counters.push(("dns_ready", u64::from(agent.dns_ready())));
    counters.push(("auth_failures", agent.stats().auth_failures));
    let (decisions, dropped) = agent.decision_counts();
    counters.push(("decisions", decisions));
    counters.push(("decisions_dropped", dropped));
    counters
}

/// What the metrics page shows of the agent: counters, links, and each route's hosts by state.
fn agent_view<const R: usize, const H: usize, const D: usize>(
    agent: &Agent<R, H, D>,
) -> crate::metrics::AgentView {
    let routes = agent
        .routes()
        .map(|(modid, cmdid, hosts)| {
            let (mut idle, mut overloaded) = (0, Vec::new());
            for host in hosts {
                if agent.is_overloaded(modid, cmdid, host.addr) {
                    overloaded.push(host.addr);
                } else {
                    idle += 1;
                }
            }
            let stale = agent.route_state(modid, cmdid) == Some(lars_core::agent::RouteState::Stale);
            crate::metrics::RouteView { modid, cmdid, idle, overloaded, stale }
        })
        .collect();
    crate::metrics::AgentView {
        counters: agent_counters(agent),
        dns_up: agent.link_codec(Link::Dns).is_some(),
        reporter_up: agent.link_codec(Link::Reporter).is_some(),
        routes,
    }
}

/// What lars-agent adds to the core agent's counters in its answer to `lars stats`: the pool's,
/// then the API sockets' (as of the start of this wake-up), among them the datagrams dropped
/// for bad framing before they reached the agent, then the adaptive wait's.
struct DriverCounters {
    udp: UdpStats,
    spin: SpinStats,
    /// Read once, when a `StatsRequest` asks for them.
    pool: std::cell::OnceCell<Vec<(&'static str, u64)>>,
}

impl DriverCounters {
    fn new(endpoints: &[UdpEndpoint], spin: Option<SpinStats>) -> DriverCounters {
        let mut udp = UdpStats::default();
        for stats in endpoints.iter().map(UdpEndpoint::stats) {
            udp.received += stats.received;
            udp.malformed += stats.malformed;
            udp.replies += stats.replies;
            udp.send_errors += stats.send_errors;
        }
        DriverCounters { udp, spin: spin.unwrap_or_default(), pool: std::cell::OnceCell::new() }
    }
}

impl CounterSource for DriverCounters {
    fn for_each(&self, each: &mut dyn FnMut(Counter<'_>)) {
        for &(name, value) in self.pool.get_or_init(crate::daemon::pool_counters) {
            each(Counter { name, value });
        }
        [
            ("udp_received", self.udp.received),
            ("udp_bad_framing", self.udp.malformed),
            ("udp_replies", self.udp.replies),
            ("udp_send_errors", self.udp.send_errors),
            ("spin_caught", self.spin.caught),
            ("spin_missed", self.spin.missed),
            ("spin_preempted", self.spin.preempted),
            ("spin_trials_spinning", self.spin.spin_trials),
            ("spin_trials_blocking", self.spin.block_trials),
            ("spin_crowded_samples", self.spin.crowded_samples),
        ]
        .for_each(each);
    }
}

/// Hands a frame from lars-dns to the agent; one it refuses closes the link (which reconnects).
fn dns_frame<const R: usize, const H: usize, const D: usize>(
    agent: &mut Agent<R, H, D>,
    now: Instant,
    frame: Frame<'_>,
) -> Control {
    match agent.handle_dns_frame(now, frame) {
        Ok(()) => Control::Continue,
        Err(e) => {
            log::warn!("{e}; reconnecting");
            Control::Close
        }
    }
}

/// Hands a frame from lars-reporter (its answer to the agent's Hello) to the agent; one it
/// refuses closes the link (which reconnects).
fn reporter_frame<const R: usize, const H: usize, const D: usize>(
    agent: &mut Agent<R, H, D>,
    now: Instant,
    frame: Frame<'_>,
) -> Control {
    match agent.handle_reporter_frame(now, frame) {
        Ok(()) => Control::Continue,
        Err(e) => {
            log::warn!("{e}; reconnecting");
            Control::Close
        }
    }
}

/// Logs an agent event in the core's words at the core's severity, with one call site per
/// kind of event: the log's rate limit is per call site, so a flood of one kind (requests for
/// routes that do not exist) does not hide the others.
fn log_event(event: &AgentEvent) {
    let level = match event.severity() {
        Severity::Debug => log::Level::Debug,
        Severity::Info => log::Level::Info,
        Severity::Warn => log::Level::Warn,
    };
    match event {
        // The error itself was logged where `handle_*_frame` returned it.
        AgentEvent::AuthFailed { timed_out: false, .. } => {}
        AgentEvent::Authenticated { .. } => log::log!(level, "{event}"),
        AgentEvent::AuthFailed { .. } => log::log!(level, "{event}"),
        AgentEvent::RouteCreated { .. } => log::log!(level, "{event}"),
        AgentEvent::RouteUpdated { .. } => log::log!(level, "{event}"),
        AgentEvent::RouteRemoved { .. } => log::log!(level, "{event}"),
        AgentEvent::RouteMissing { .. } => log::log!(level, "{event}"),
        AgentEvent::RouteEvicted { .. } => log::log!(level, "{event}"),
        AgentEvent::RouteEventsSuppressed { .. } => log::log!(level, "{event}"),
        AgentEvent::RouteTooLarge { .. } => log::log!(level, "{event}"),
        AgentEvent::DnsUnready { .. } => log::log!(level, "{event}"),
        AgentEvent::RouteStale { .. } => log::log!(level, "{event}"),
        AgentEvent::PullTimedOut { .. } => log::log!(level, "{event}"),
        AgentEvent::CodecChosen { .. } => log::log!(level, "{event}"),
        AgentEvent::StatsDropped { .. } => log::log!(level, "{event}"),
        _ => log::log!(level, "{event}"),
    }
}

fn peer_name(link: Link) -> &'static str {
    match link {
        Link::Dns => "lars-dns",
        Link::Reporter => "lars-reporter",
    }
}

fn link_changed<const R: usize, const H: usize, const D: usize>(
    agent: &mut Agent<R, H, D>,
    now: Instant,
    link: Link,
    event: Option<LinkEvent>,
) {
    let Some(event) = event else { return };
    let up = matches!(event, LinkEvent::Up(_));
    // Each handshake gets its own nonce; without one (getrandom failed) the link cannot
    // authenticate and is closed.
    if up && agent.config().secret.is_some() {
        match crate::auth::nonce() {
            Ok(nonce) => agent.handle_link_nonce(link, nonce),
            Err(e) => {
                log::error!("getrandom failed ({e}); cannot authenticate to {}", peer_name(link))
            }
        }
    }
    match (link, event) {
        (Link::Dns, LinkEvent::Up(addr)) => log::info!("connected to lars-dns at {addr}"),
        (Link::Reporter, LinkEvent::Up(addr)) => {
            log::info!("connected to lars-reporter at {addr}")
        }
        (_, LinkEvent::Down) => {}
    }
    match link {
        Link::Dns => agent.handle_dns_link(now, up),
        Link::Reporter => agent.handle_reporter_link(now, up),
    }
}
