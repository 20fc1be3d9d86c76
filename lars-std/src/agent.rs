//! lars-agent: `lars_core::agent` behind UDP API endpoints, with TCP links to lars-dns and
//! lars-reporter.
//!
//! One thread runs one event loop holding the API endpoints (127.0.0.1:8888, 8889 and 8890 by
//! default; the original bound 0.0.0.0, D-A-9), the two reconnecting clients (each with a list of
//! replica addresses to fail over between) and the agent. The loop only moves bytes and time:
//! datagrams go to `handle_api_datagram` and replies straight back; dns frames to
//! `handle_dns_frame`; link changes to `handle_*_link`; `poll_transmit` output to the links;
//! `poll_timeout` into the loop's timer.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use lars_core::agent::{Agent, AgentConfig, AgentEvent, AgentStats, Link};
use lars_core::time::Instant;
use lars_core::wire::native::{Role, StatsRequest};
use lars_core::wire::{Decode, Frame, MsgId, Raw, frame};

use crate::reactor::{ClientConfig, Control, EventLoop, LinkEvent, Ready, TcpClient, UdpEndpoint, Waker};
use crate::time::Clock;

/// Routes an agent holds.
pub const ROUTES: usize = 512;
/// Hosts per route an agent holds; a larger route is refused (and counted) until it shrinks.
pub const HOSTS: usize = 256;

/// How lars-agent runs.
#[derive(Debug, Clone)]
pub struct AgentDaemonConfig {
    /// The API endpoints (port 0 picks a free one); the API sends a route's traffic to
    /// endpoint `(modid + cmdid) mod n`, but any endpoint serves any route.
    pub api: Vec<SocketAddr>,
    /// lars-dns replicas.
    pub dns: Vec<SocketAddr>,
    /// lars-reporter replicas.
    pub reporter: Vec<SocketAddr>,
    /// The agent itself.
    pub agent: AgentConfig,
}

impl AgentDaemonConfig {
    /// The original's ports on loopback, with lars-dns and lars-reporter at `dns` and `reporter`.
    pub fn new(dns: Vec<SocketAddr>, reporter: Vec<SocketAddr>) -> Self {
        let api = (8888..=8890).map(|port| SocketAddr::from(([127, 0, 0, 1], port))).collect();
        AgentDaemonConfig { api, dns, reporter, agent: AgentConfig::default() }
    }
}

const DNS_KEY: usize = 1000;
const REPORTER_KEY: usize = 1001;
const DNS_TIMER: u64 = 1;
const REPORTER_TIMER: u64 = 2;
const AGENT_TIMER: u64 = 3;
/// Datagrams served per endpoint per wake-up, so one busy port cannot starve the others.
const API_BUDGET: usize = 256;

/// A running lars-agent.
pub struct AgentDaemon {
    api: Vec<SocketAddr>,
    stats: Arc<Mutex<AgentStats>>,
    stop: Waker<()>,
    thread: Option<JoinHandle<()>>,
}

impl AgentDaemon {
    /// Binds the endpoints and starts the agent's thread.
    pub fn start(config: AgentDaemonConfig) -> io::Result<AgentDaemon> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let stats = Arc::new(Mutex::new(AgentStats::default()));
        let shared = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("lars-agent".into())
            // The agent's route table is fixed-size and lives on this stack; pages it does not
            // touch cost nothing.
            .stack_size(64 << 20)
            .spawn(move || {
                let clock = Clock::new();
                match Runner::bind(clock, &config) {
                    Ok(runner) => {
                        let _ = ready_tx.send(Ok((runner.addrs(), runner.event_loop.waker())));
                        let mut agent: Agent<ROUTES, HOSTS> = Agent::new(config.agent, clock.now());
                        agent.set_unix_time(clock.now(), Clock::unix_secs());
                        runner.run(&mut agent, &shared);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        let (api, stop) =
            ready_rx.recv().map_err(|_| io::Error::other("the agent thread died while starting"))??;
        Ok(AgentDaemon { api, stats, stop, thread: Some(thread) })
    }

    /// The bound API endpoints.
    pub fn api_addrs(&self) -> &[SocketAddr] {
        &self.api
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
        let endpoints = config
            .api
            .iter()
            .enumerate()
            .map(|(key, addr)| UdpEndpoint::bind(&event_loop, *addr, key, false))
            .collect::<io::Result<_>>()?;
        let mut dns_config = ClientConfig::new(config.dns.clone());
        dns_config.seed = config.agent.seed;
        let dns = TcpClient::new(&mut event_loop, dns_config, DNS_KEY, DNS_TIMER);
        let mut reporter_config = ClientConfig::new(config.reporter.clone());
        reporter_config.seed = config.agent.seed.wrapping_add(1);
        let reporter = TcpClient::new(&mut event_loop, reporter_config, REPORTER_KEY, REPORTER_TIMER);
        Ok(Runner { event_loop, endpoints, dns, reporter })
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.endpoints.iter().filter_map(|e| e.local_addr().ok()).collect()
    }

    fn run<const R: usize, const H: usize>(mut self, agent: &mut Agent<R, H>, shared: &Mutex<AgentStats>) {
        let clock = self.event_loop.clock();
        let mut ready = Vec::new();
        let mut buf = vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize];
        let mut armed: Option<Instant> = None;
        let mut published = clock.now();
        loop {
            if let Some(deadline) = agent.poll_timeout()
                && armed.is_none_or(|at| deadline < at)
            {
                self.event_loop.set_timer(deadline, AGENT_TIMER);
                armed = Some(deadline);
            }
            ready.clear();
            if self.event_loop.poll(&mut ready, None).is_err() {
                return;
            }
            let now = clock.now();
            for item in ready.drain(..) {
                match item {
                    Ready::Task(()) => return,
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
                        if let Some(endpoint) = self.endpoints.get_mut(key) {
                            let served = endpoint.serve(API_BUDGET, |frame, datagram, _from, reply| {
                                if frame.msgid == MsgId::StatsRequest {
                                    return stats_reply(agent, frame.body, reply);
                                }
                                agent.handle_api_datagram(now, datagram, reply).unwrap_or(0)
                            });
                            if let Err(e) = served {
                                eprintln!("lars-agent: API socket: {e}");
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
                    Ready::Timer(_) => {
                        armed = None;
                        agent.handle_timeout(now);
                    }
                }
            }
            self.transmit(agent, now, &mut buf);
            while let Some(event) = agent.poll_event() {
                log_event(&event);
            }
            if now.saturating_since(published).as_millis() >= 100 {
                *shared.lock().unwrap_or_else(|p| p.into_inner()) = *agent.stats();
                published = now;
            }
        }
    }

    /// Sends what the agent wants sent. A frame its link refuses is dropped: pulls are retried
    /// by the agent, and statistics are best effort by design.
    fn transmit<const R: usize, const H: usize>(
        &mut self,
        agent: &mut Agent<R, H>,
        now: Instant,
        buf: &mut [u8],
    ) {
        while let Some(transmit) = agent.poll_transmit(now, buf) {
            let Ok(frame) = Frame::parse_datagram(&buf[..transmit.len], frame::MAX_BODY) else { continue };
            let client = match transmit.link {
                Link::Dns => &mut self.dns,
                Link::Reporter => &mut self.reporter,
            };
            let _ = client.send(&mut self.event_loop, frame.msgid, &Raw(frame.body));
        }
    }
}

/// Answers `lars stats`: the agent's counters and the pool's.
fn stats_reply<const R: usize, const H: usize>(agent: &Agent<R, H>, body: &[u8], reply: &mut [u8]) -> usize {
    let Ok(request) = StatsRequest::parse(body) else { return 0 };
    let mut counters: Vec<(&str, u64)> = agent.stats().counters().to_vec();
    counters.push(("routes", agent.route_count() as u64));
    // Served past update_timeout while lars-dns is unreachable or not ready.
    counters.push(("routes_stale", agent.stale_routes() as u64));
    counters.push(("dns_ready", u64::from(agent.dns_ready())));
    counters.extend(crate::daemon::pool_counters());
    crate::daemon::stats_response(request.seq, Role::Agent, &counters, reply).unwrap_or(0)
}

/// Hands a frame from lars-dns to the agent; one it refuses closes the link (which reconnects).
fn dns_frame<const R: usize, const H: usize>(
    agent: &mut Agent<R, H>,
    now: Instant,
    frame: Frame<'_>,
) -> Control {
    match agent.handle_dns_frame(now, frame) {
        Ok(()) => Control::Continue,
        Err(e) => {
            eprintln!("lars-agent: {e}; reconnecting");
            Control::Close
        }
    }
}

/// Hands a frame from lars-reporter (its answer to the agent's Hello) to the agent; one it
/// refuses closes the link (which reconnects).
fn reporter_frame<const R: usize, const H: usize>(
    agent: &mut Agent<R, H>,
    now: Instant,
    frame: Frame<'_>,
) -> Control {
    match agent.handle_reporter_frame(now, frame) {
        Ok(()) => Control::Continue,
        Err(e) => {
            eprintln!("lars-agent: {e}; reconnecting");
            Control::Close
        }
    }
}

fn log_event(event: &AgentEvent) {
    match event {
        AgentEvent::CodecChosen { link, codec } => {
            let peer = match link {
                Link::Dns => "lars-dns",
                Link::Reporter => "lars-reporter",
            };
            let how = match codec {
                lars_core::wire::Codec::Native => "the native protocol",
                lars_core::wire::Codec::Lars => "the original Lars protocol",
            };
            eprintln!("lars-agent: speaking {how} to {peer}");
        }
        other => eprintln!("lars-agent: {other:?}"),
    }
}

fn link_changed<const R: usize, const H: usize>(
    agent: &mut Agent<R, H>,
    now: Instant,
    link: Link,
    event: Option<LinkEvent>,
) {
    let Some(event) = event else { return };
    let up = matches!(event, LinkEvent::Up(_));
    match (link, event) {
        (Link::Dns, LinkEvent::Up(addr)) => eprintln!("lars-agent: connected to lars-dns at {addr}"),
        (Link::Reporter, LinkEvent::Up(addr)) => {
            eprintln!("lars-agent: connected to lars-reporter at {addr}")
        }
        (_, LinkEvent::Down) => {}
    }
    match link {
        Link::Dns => agent.handle_dns_link(now, up),
        Link::Reporter => agent.handle_reporter_link(now, up),
    }
}
