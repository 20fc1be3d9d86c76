//! The lars agent as a sans-IO state machine (`agent` layer).
//!
//! The agent serves local callers (`get_host`, `report`, `get_route`), keeps one balancer per
//! route, pulls routes from lars-dns and sends call statistics to lars-reporter. It performs no
//! IO and reads no clock. A driver (the std daemon, or the smoltcp gateway node) feeds it:
//! - API datagrams with [`Agent::handle_api_datagram`], which writes the reply (if any) into a
//!   buffer the driver then sends back to the datagram's source;
//! - frames from the dns and reporter links with [`Agent::handle_dns_frame`] and
//!   [`Agent::handle_reporter_frame`], and link changes with [`Agent::handle_dns_link`] and
//!   [`Agent::handle_reporter_link`];
//! - the passing of time with [`Agent::handle_timeout`], no later than [`Agent::poll_timeout`].
//!
//! After any `handle_*` call the driver drains [`Agent::poll_transmit`] (frames for the dns and
//! reporter links) and [`Agent::poll_event`] (things worth logging) until they return `None`.
//!
//! Capacity is fixed by the const generics: `R` routes of up to `H` hosts each. A full table or
//! an oversized route is refused with a clear error code and counted, never a panic. Both body
//! codecs are accepted from callers, and each answer uses the codec of its request. Upstream,
//! each link speaks the codec its configuration names, or the one its peer turns out to speak
//! (see [`CodecChoice::Auto`]), so the agent works with an original Lars
//! lars_dns and lars_reporter as well as with lars's.

mod link;
mod route;
mod stats;

use core::net::{SocketAddr, SocketAddrV4};

use link::LinkState;
pub use route::RouteState;
use route::{Pull, Route, route_key};

use crate::lb::{Balance, LbConfig, Pick, PolicyKind, Rng, UpdateError};
use crate::time::{Duration, Instant};
use crate::wire::native::{self, Outcome, WeightedHost};
pub use crate::wire::{Codec, CodecChoice};
use crate::wire::{Decode, Error, Frame, List, MsgId, RetCode, frame, lars};

/// A route that uses another policy than [`AgentConfig::default_policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// The policy for that route.
    pub policy: PolicyKind,
}

/// How the agent behaves. `Default` gives the shipped Lars configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Policy parameters.
    pub lb: LbConfig,
    /// The policy of routes not listed in `route_policies`.
    pub default_policy: PolicyKind,
    /// Per-route policy choices.
    pub route_policies: heapless::Vec<RoutePolicy, 32>,
    /// Age after which a route's hosts are refreshed from lars-dns (served meanwhile).
    pub update_timeout: Duration,
    /// How long a pull waits for its answer before it is sent again; doubles on each retry.
    pub pull_timeout: Duration,
    /// The longest wait between two pulls of one route.
    pub pull_backoff_max: Duration,
    /// How often call statistics go to lars-reporter.
    pub report_interval: Duration,
    /// Statistics go out early once this many results are waiting (0: only on the interval).
    pub report_after: u32,
    /// The codec spoken to lars-dns.
    pub dns_codec: CodecChoice,
    /// The codec spoken to lars-reporter.
    pub reporter_codec: CodecChoice,
    /// How long a link with [`CodecChoice::Auto`] waits for the peer to answer its `Hello`
    /// before it takes the peer for an original Lars daemon.
    pub codec_probe_timeout: Duration,
    /// This agent's id in statistics (the original used its IPv4 address as an integer).
    pub caller: u32,
    /// Seed of the policies' randomness.
    pub seed: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            lb: LbConfig::default(),
            default_policy: PolicyKind::Lars,
            route_policies: heapless::Vec::new(),
            update_timeout: Duration::from_secs(15),
            pull_timeout: Duration::from_secs(1),
            pull_backoff_max: Duration::from_secs(30),
            report_interval: Duration::from_secs(1),
            report_after: 1000,
            dns_codec: CodecChoice::Auto,
            reporter_codec: CodecChoice::Auto,
            codec_probe_timeout: Duration::from_secs(1),
            caller: 0,
            seed: 0x6c61_7273,
        }
    }
}

/// Why an API datagram got no answer. Each is counted in [`AgentStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// The datagram is not a valid frame or body.
    Malformed(Error),
    /// The msgid is not a request an agent serves.
    Unexpected(MsgId),
    /// The answer does not fit the reply buffer (a very large route asked for over UDP).
    ReplyTooLarge,
}

impl core::fmt::Display for ApiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ApiError::Malformed(e) => write!(f, "malformed API datagram: {e}"),
            ApiError::Unexpected(id) => write!(f, "msgid {id:?} is not an agent request"),
            ApiError::ReplyTooLarge => f.write_str("the answer does not fit in the reply buffer"),
        }
    }
}

impl core::error::Error for ApiError {}

/// Why a frame from lars-dns was refused: the driver should close the dns link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsError {
    /// The body does not decode.
    Malformed(Error),
    /// The msgid is not something lars-dns sends.
    Unexpected(MsgId),
}

impl core::fmt::Display for DnsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DnsError::Malformed(e) => write!(f, "malformed frame from lars-dns: {e}"),
            DnsError::Unexpected(id) => write!(f, "lars-dns sent msgid {id:?}"),
        }
    }
}

impl core::error::Error for DnsError {}

/// Why a frame from lars-reporter was refused: the driver should close the reporter link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReporterError {
    /// The msgid is not something lars-reporter sends.
    Unexpected(MsgId),
}

impl core::fmt::Display for ReporterError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReporterError::Unexpected(id) => write!(f, "lars-reporter sent msgid {id:?}"),
        }
    }
}

impl core::error::Error for ReporterError {}

/// Which link a transmit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Link {
    /// The TCP link to lars-dns.
    Dns,
    /// The TCP link to lars-reporter.
    Reporter,
}

/// A frame [`Agent::poll_transmit`] wrote: send `buf[..len]` on `link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub link: Link,
    /// Bytes written at the start of the buffer.
    pub len: usize,
}

/// Something that happened, for the driver to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum AgentEvent {
    /// A request created a route; it is being pulled.
    RouteCreated {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
    },
    /// lars-dns sent the route's hosts.
    RouteUpdated {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
        /// Hosts now in the route.
        hosts: usize,
    },
    /// lars-dns sent an empty host list: the route is gone.
    RouteRemoved {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
    },
    /// lars-dns sent more hosts than a route can hold; the agent serves a subset of them that
    /// is the same at every update (chosen by the agent's `caller`, so that agents spread over
    /// the whole route).
    RouteTooLarge {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
        /// Hosts sent.
        hosts: usize,
    },
    /// lars-dns answered that it has not loaded its store; the route keeps its hosts and is
    /// asked for again later.
    DnsUnready {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
    },
    /// A route passed `update_timeout` and is being refreshed.
    RouteStale {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
    },
    /// A pull got no answer in time and will be sent again.
    PullTimedOut {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
        /// Pulls sent so far without an answer.
        attempts: u32,
    },
    /// A link's codec is known: fixed by configuration, the peer answered the native `Hello`
    /// (native), or it stayed silent or hung up (an original Lars daemon: Lars).
    CodecChosen {
        /// Which link.
        link: Link,
        /// What it speaks from now on.
        codec: Codec,
    },
    /// Statistics were dropped because lars-reporter is unreachable.
    StatsDropped {
        /// Host entries dropped.
        entries: u32,
    },
}

/// The agent's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentStats {
    /// API datagrams handled.
    pub api_requests: u64,
    /// API datagrams refused as malformed or unexpected.
    pub api_errors: u64,
    /// `get_host` requests.
    pub get_host: u64,
    /// Call results reported.
    pub reports: u64,
    /// Reports (or summary entries) for routes the agent does not hold.
    pub reports_unknown_route: u64,
    /// Calls counted in summaries from clients that lease routes and balance themselves (with
    /// the `leases` feature; without it such summaries are refused as unexpected).
    pub leased_calls: u64,
    /// Requests refused because the route table was full.
    pub route_table_full: u64,
    /// Route updates with more hosts than a route can hold, served as a subset.
    pub route_over_capacity: u64,
    /// Answers from a lars-dns that had not loaded its store.
    pub dns_unready_answers: u64,
    /// Hosts left out of a Lars-codec answer because they are IPv6.
    pub ipv6_not_representable: u64,
    /// Pull requests sent to lars-dns.
    pub pulls_sent: u64,
    /// Pulls that timed out and were sent again.
    pub pull_timeouts: u64,
    /// Route answers and pushes applied.
    pub routes_received: u64,
    /// Frames from lars-dns refused.
    pub dns_errors: u64,
    /// Statistics frames sent to lars-reporter.
    pub stats_frames: u64,
    /// Host statistics entries sent.
    pub stats_entries: u64,
    /// Host statistics entries dropped (reporter unreachable, or a tally table full).
    pub stats_dropped: u64,
    /// Events dropped because the driver did not drain them.
    pub events_dropped: u64,
}

impl AgentStats {
    /// Every counter, named.
    pub fn counters(&self) -> [(&'static str, u64); 18] {
        [
            ("api_requests", self.api_requests),
            ("api_errors", self.api_errors),
            ("get_host", self.get_host),
            ("reports", self.reports),
            ("reports_unknown_route", self.reports_unknown_route),
            ("leased_calls", self.leased_calls),
            ("route_table_full", self.route_table_full),
            ("route_over_capacity", self.route_over_capacity),
            ("dns_unready_answers", self.dns_unready_answers),
            ("ipv6_not_representable", self.ipv6_not_representable),
            ("pulls_sent", self.pulls_sent),
            ("pull_timeouts", self.pull_timeouts),
            ("routes_received", self.routes_received),
            ("dns_errors", self.dns_errors),
            ("stats_frames", self.stats_frames),
            ("stats_entries", self.stats_entries),
            ("stats_dropped", self.stats_dropped),
            ("events_dropped", self.events_dropped),
        ]
    }
}

/// What an API request asked for, decoded from either codec.
enum ApiRequest<'a> {
    GetHost {
        seq: u32,
        modid: i32,
        cmdid: i32,
        key: Option<u64>,
        codec: Codec,
    },
    Report {
        modid: i32,
        cmdid: i32,
        host: SocketAddr,
        outcome: Outcome,
        latency_us: u32,
    },
    Reports(native::ReportBatch<'a>),
    #[cfg(feature = "leases")]
    Summary(native::CallStats<'a>),
    GetRoute {
        seq: u32,
        modid: i32,
        cmdid: i32,
        codec: Codec,
    },
}

/// The agent, for `R` routes of up to `H` hosts each.
pub struct Agent<const R: usize, const H: usize> {
    config: AgentConfig,
    rng: Rng,
    routes: heapless::Vec<Route<H>, R>,
    /// `(route_key, slot)`, sorted by key.
    index: heapless::Vec<(u64, u16), R>,
    dns: LinkState,
    reporter: LinkState,
    /// The last route answer came from a lars-dns that had loaded its store.
    dns_ready: bool,
    /// Routes whose pull is `Due`: lets `poll_transmit` skip the scan when there are none.
    pulls_due: usize,
    next_flush: Instant,
    waiting_reports: u32,
    flush: stats::Flush,
    /// Unix time minus the driver's clock, in seconds, for statistics timestamps.
    unix_offset: Option<i64>,
    events: heapless::Deque<AgentEvent, 64>,
    stats: AgentStats,
}

impl<const R: usize, const H: usize> Agent<R, H> {
    /// An agent with no routes and both links down.
    pub fn new(config: AgentConfig, now: Instant) -> Self {
        const { assert!(R <= u16::MAX as usize, "an agent holds at most 65535 routes") };
        Agent {
            dns: LinkState::new(config.dns_codec),
            reporter: LinkState::new(config.reporter_codec),
            rng: Rng::new(config.seed),
            next_flush: now + config.report_interval,
            config,
            routes: heapless::Vec::new(),
            index: heapless::Vec::new(),
            dns_ready: true,
            pulls_due: 0,
            waiting_reports: 0,
            flush: stats::Flush::default(),
            unix_offset: None,
            events: heapless::Deque::new(),
            stats: AgentStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &AgentStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The codec `link` speaks, once it is up and known.
    pub fn link_codec(&self, link: Link) -> Option<Codec> {
        match link {
            Link::Dns => self.dns.codec(),
            Link::Reporter => self.reporter.codec(),
        }
    }

    /// Whether the last route answer came from a lars-dns that had loaded its store (true
    /// until an answer says otherwise).
    pub fn dns_ready(&self) -> bool {
        self.dns_ready
    }

    /// Routes whose hosts are older than `update_timeout` (served while they are refreshed).
    pub fn stale_routes(&self) -> usize {
        self.routes.iter().filter(|r| r.state == RouteState::Stale).count()
    }

    /// Number of routes held.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// The lifecycle state of a route, if the agent holds it.
    pub fn route_state(&self, modid: i32, cmdid: i32) -> Option<RouteState> {
        self.find(modid, cmdid).map(|slot| self.routes[slot].state)
    }

    /// The hosts of a route, if the agent holds it.
    pub fn route_hosts(&self, modid: i32, cmdid: i32) -> Option<impl Iterator<Item = WeightedHost> + '_> {
        let route = &self.routes[self.find(modid, cmdid)?];
        Some((0..route.balancer.len()).filter_map(|i| route.balancer.host(i)))
    }

    /// Every route the agent holds, with its hosts: what a driver saves so that a restarted
    /// agent can serve before lars-dns answers ([`Agent::restore_route`]).
    pub fn routes(&self) -> impl Iterator<Item = (i32, i32, impl Iterator<Item = WeightedHost> + '_)> + '_ {
        self.routes.iter().map(|route| {
            let hosts = (0..route.balancer.len()).filter_map(|i| route.balancer.host(i));
            (route.modid, route.cmdid, hosts)
        })
    }

    /// Takes a route's hosts from a copy the driver saved in an earlier run. The route is
    /// served at once, as stale, and pulled from lars-dns like any other; a dns that answers
    /// replaces the hosts. Returns false when the table has no room or the hosts do not fit.
    pub fn restore_route(&mut self, now: Instant, modid: i32, cmdid: i32, hosts: &[WeightedHost]) -> bool {
        if hosts.is_empty() || self.find(modid, cmdid).is_some() {
            return false;
        }
        let Some(slot) = self.find_or_create(now, modid, cmdid) else { return false };
        let route = &mut self.routes[slot];
        if route.balancer.update(now, hosts).is_err() {
            self.remove_route(slot);
            return false;
        }
        route.state = RouteState::Stale;
        true
    }

    /// Whether the route's policy currently treats `host` as overloaded.
    pub fn is_overloaded(&self, modid: i32, cmdid: i32, host: SocketAddr) -> bool {
        self.find(modid, cmdid).is_some_and(|slot| self.routes[slot].balancer.is_overloaded(host))
    }

    /// Changes the id that names this agent in its statistics from the next flush on (a gateway
    /// whose address comes from DHCP learns it after start).
    pub fn set_caller(&mut self, caller: u32) {
        self.config.caller = caller;
    }

    /// Tells the agent the wall-clock time, for the timestamps of its statistics.
    pub fn set_unix_time(&mut self, now: Instant, unix_secs: u64) {
        self.unix_offset = Some(unix_secs as i64 - now.as_micros().div_euclid(1_000_000) as i64);
    }

    fn unix_secs(&self, now: Instant) -> u32 {
        self.unix_offset
            .map_or(0, |offset| (now.as_micros() / 1_000_000) as i64 + offset)
            .clamp(0, u32::MAX as i64) as u32
    }

    fn find(&self, modid: i32, cmdid: i32) -> Option<usize> {
        let key = route_key(modid, cmdid);
        let pos = self.index.binary_search_by_key(&key, |&(k, _)| k).ok()?;
        Some(usize::from(self.index[pos].1))
    }

    fn push_event(&mut self, event: AgentEvent) {
        if self.events.is_full() {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        let _ = self.events.push_back(event);
    }

    fn policy_for(&self, modid: i32, cmdid: i32) -> PolicyKind {
        self.config
            .route_policies
            .iter()
            .find(|p| p.modid == modid && p.cmdid == cmdid)
            .map_or(self.config.default_policy, |p| p.policy)
    }

    /// The route's slot, creating the route (pulling) if the table has room.
    fn find_or_create(&mut self, now: Instant, modid: i32, cmdid: i32) -> Option<usize> {
        if let Some(slot) = self.find(modid, cmdid) {
            return Some(slot);
        }
        let policy = self.policy_for(modid, cmdid);
        let slot = self.routes.len();
        if self.routes.push(Route::new(modid, cmdid, policy, &self.config.lb, now)).is_err() {
            self.stats.route_table_full += 1;
            return None;
        }
        let key = route_key(modid, cmdid);
        let pos = self.index.binary_search_by_key(&key, |&(k, _)| k).unwrap_or_else(|p| p);
        let _ = self.index.insert(pos, (key, slot as u16)); // room: index and routes have equal capacity
        self.pulls_due += 1;
        self.push_event(AgentEvent::RouteCreated { modid, cmdid });
        Some(slot)
    }

    fn remove_route(&mut self, slot: usize) {
        let route = self.routes.swap_remove(slot);
        if route.pull == Pull::Due {
            self.pulls_due -= 1;
        }
        self.stats.stats_dropped += route.tallies.len() as u64;
        self.index.retain(|&(k, _)| k != route_key(route.modid, route.cmdid));
        if let Some(moved) = self.routes.get(slot) {
            let key = route_key(moved.modid, moved.cmdid);
            if let Some(entry) = self.index.iter_mut().find(|(k, _)| *k == key) {
                entry.1 = slot as u16;
            }
        }
        self.flush.route_removed(slot);
    }

    fn mark_due(&mut self, slot: usize) {
        if self.routes[slot].pull != Pull::Due {
            self.routes[slot].pull = Pull::Due;
            self.pulls_due += 1;
        }
    }

    /// Once a route's hosts are older than `update_timeout`: a fresh route turns stale, and a
    /// route with no pull under way (fresh, or one whose last answer could not be applied) is
    /// pulled again. The last known hosts keep serving meanwhile.
    fn refresh_if_old(&mut self, now: Instant, slot: usize) {
        let route = &mut self.routes[slot];
        if now.saturating_since(route.updated_at) <= self.config.update_timeout {
            return;
        }
        let became_stale = route.state == RouteState::Fresh;
        if became_stale {
            route.state = RouteState::Stale;
        }
        let (modid, cmdid, idle) = (route.modid, route.cmdid, route.pull == Pull::Idle);
        if idle {
            self.mark_due(slot);
        }
        if became_stale {
            self.push_event(AgentEvent::RouteStale { modid, cmdid });
        }
    }

    /// Chooses a host: the agent's `get_host`.
    pub fn get_host(
        &mut self,
        now: Instant,
        modid: i32,
        cmdid: i32,
        key: Option<u64>,
    ) -> (RetCode, Option<SocketAddr>) {
        self.stats.get_host += 1;
        let Some(slot) = self.find_or_create(now, modid, cmdid) else {
            return (RetCode::SystemError, None);
        };
        self.refresh_if_old(now, slot);
        let route = &mut self.routes[slot];
        match route.balancer.pick(now, key, &mut self.rng) {
            Pick::Host(host) => (RetCode::Succ, Some(host)),
            Pick::Overloaded => (RetCode::Overload, None),
            Pick::NoHosts => (RetCode::NoExist, None),
        }
    }

    /// Records a call's result: the agent's `report`.
    pub fn report(
        &mut self,
        now: Instant,
        modid: i32,
        cmdid: i32,
        host: SocketAddr,
        outcome: Outcome,
        latency_us: u32,
    ) {
        self.stats.reports += 1;
        let Some(slot) = self.find(modid, cmdid) else {
            self.stats.reports_unknown_route += 1;
            return;
        };
        let route = &mut self.routes[slot];
        route.balancer.report(now, host, outcome, latency_us);
        if route.tally(host, outcome, latency_us) {
            self.waiting_reports = self.waiting_reports.saturating_add(1);
        } else {
            self.stats.stats_dropped += 1;
        }
    }

    /// Adds a leasing client's call counts to the statistics bound for lars-reporter. The
    /// client balanced those calls itself, so the agent's balancers, which learn from the calls
    /// they balanced, do not see them.
    #[cfg(feature = "leases")]
    fn leased_summary(&mut self, summary: &native::CallStats<'_>) {
        for entry in &summary.entries {
            let Some(slot) = self.find(entry.modid, entry.cmdid) else {
                self.stats.reports_unknown_route += 1;
                continue;
            };
            let calls = entry.succ.saturating_add(entry.err);
            let delta = route::Tally {
                host: entry.host.into(),
                succ: entry.succ,
                err: entry.err,
                overload: entry.overload.min(entry.err),
                latency_sum_us: entry.latency_sum_us,
                latency_max_us: entry.latency_max_us,
                flushed: false,
            };
            self.routes[slot].balancer.count_leased(entry.host, entry.succ, entry.err);
            if self.routes[slot].add_tally(delta) {
                self.stats.leased_calls += u64::from(calls);
                self.waiting_reports = self.waiting_reports.saturating_add(calls);
            } else {
                self.stats.stats_dropped += 1;
            }
        }
    }

    /// Handles one API datagram and writes the answer, if the request has one, into `reply`.
    /// Returns the answer's length: 0 for a report, which has no answer.
    pub fn handle_api_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
        reply: &mut [u8],
    ) -> Result<usize, ApiError> {
        self.stats.api_requests += 1;
        let result = self.serve_api(now, datagram, reply);
        if result.is_err() {
            self.stats.api_errors += 1;
        }
        result
    }

    fn serve_api(&mut self, now: Instant, datagram: &[u8], reply: &mut [u8]) -> Result<usize, ApiError> {
        let frame = Frame::parse_datagram(datagram, frame::MAX_BODY).map_err(ApiError::Malformed)?;
        match Self::parse_api(frame)? {
            ApiRequest::GetHost { seq, modid, cmdid, key, codec } => {
                let (code, host) = self.get_host(now, modid, cmdid, key);
                self.encode_get_host(codec, seq, modid, cmdid, code, host, reply)
            }
            ApiRequest::Report { modid, cmdid, host, outcome, latency_us } => {
                self.report(now, modid, cmdid, host, outcome, latency_us);
                Ok(0)
            }
            ApiRequest::Reports(batch) => {
                for r in &batch.reports {
                    self.report(now, r.modid, r.cmdid, r.host, r.outcome, r.latency_us);
                }
                Ok(0)
            }
            #[cfg(feature = "leases")]
            ApiRequest::Summary(summary) => {
                self.leased_summary(&summary);
                Ok(0)
            }
            ApiRequest::GetRoute { seq, modid, cmdid, codec } => {
                self.get_route_reply(now, codec, seq, modid, cmdid, reply)
            }
        }
    }

    fn parse_api(frame: Frame<'_>) -> Result<ApiRequest<'_>, ApiError> {
        let malformed = ApiError::Malformed;
        Ok(match frame.msgid {
            MsgId::GetHostRequest => {
                let r = lars::GetHostRequest::parse(frame.body).map_err(malformed)?;
                ApiRequest::GetHost {
                    seq: r.seq,
                    modid: r.modid,
                    cmdid: r.cmdid,
                    key: None,
                    codec: Codec::Lars,
                }
            }
            MsgId::NativeGetHostRequest => {
                let r = native::GetHostRequest::parse(frame.body).map_err(malformed)?;
                ApiRequest::GetHost {
                    seq: r.seq,
                    modid: r.modid,
                    cmdid: r.cmdid,
                    key: r.key,
                    codec: Codec::Native,
                }
            }
            MsgId::ReportRequest => {
                let r = lars::ReportRequest::parse(frame.body).map_err(malformed)?;
                let host = SocketAddr::V4(r.host.ok_or(ApiError::Malformed(Error::BadValue))?);
                // The original API's convention: 0 is success, anything else a failure.
                let outcome = if r.retcode == 0 { Outcome::Ok } else { Outcome::Fail };
                ApiRequest::Report { modid: r.modid, cmdid: r.cmdid, host, outcome, latency_us: 0 }
            }
            MsgId::NativeReport => {
                let r = native::Report::parse(frame.body).map_err(malformed)?;
                let (modid, cmdid, host, outcome, latency_us) =
                    (r.modid, r.cmdid, r.host, r.outcome, r.latency_us);
                ApiRequest::Report { modid, cmdid, host, outcome, latency_us }
            }
            MsgId::NativeReportBatch => {
                ApiRequest::Reports(native::ReportBatch::parse(frame.body).map_err(malformed)?)
            }
            #[cfg(feature = "leases")]
            MsgId::NativeCallStats => {
                ApiRequest::Summary(native::CallStats::parse(frame.body).map_err(malformed)?)
            }
            MsgId::ApiGetRouteRequest => {
                let r = lars::GetRouteRequest::parse(frame.body).map_err(malformed)?;
                ApiRequest::GetRoute { seq: 0, modid: r.modid, cmdid: r.cmdid, codec: Codec::Lars }
            }
            MsgId::NativeGetRouteRequest => {
                let r = native::GetRouteRequest::parse(frame.body).map_err(malformed)?;
                ApiRequest::GetRoute { seq: r.seq, modid: r.modid, cmdid: r.cmdid, codec: Codec::Native }
            }
            other => return Err(ApiError::Unexpected(other)),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn encode_get_host(
        &mut self,
        codec: Codec,
        seq: u32,
        modid: i32,
        cmdid: i32,
        mut code: RetCode,
        host: Option<SocketAddr>,
        reply: &mut [u8],
    ) -> Result<usize, ApiError> {
        let written = match codec {
            Codec::Lars => {
                let host = match host {
                    Some(SocketAddr::V4(v4)) => Some(v4),
                    Some(SocketAddr::V6(_)) => {
                        self.stats.ipv6_not_representable += 1;
                        code = RetCode::SystemError;
                        None
                    }
                    None => None,
                };
                let body = lars::GetHostResponse { seq, modid, cmdid, retcode: code.as_i32(), host };
                frame::encode(MsgId::GetHostResponse, &body, reply)
            }
            Codec::Native => {
                let body = native::GetHostResponse { seq, modid, cmdid, code, host };
                frame::encode(MsgId::NativeGetHostResponse, &body, reply)
            }
        };
        written.map_err(|_| ApiError::ReplyTooLarge)
    }

    fn get_route_reply(
        &mut self,
        now: Instant,
        codec: Codec,
        seq: u32,
        modid: i32,
        cmdid: i32,
        reply: &mut [u8],
    ) -> Result<usize, ApiError> {
        let slot = self.find_or_create(now, modid, cmdid);
        if let Some(slot) = slot {
            self.refresh_if_old(now, slot);
        }
        let route = slot.map(|s| &self.routes[s]);
        let count = route.map_or(0, |r| r.balancer.len());
        let host_at = |i: usize| route.and_then(|r| r.balancer.host(i));
        let written = match codec {
            Codec::Lars => {
                let mut v4 = [SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0); H];
                let mut n = 0;
                for host in (0..count).filter_map(host_at) {
                    match host.addr {
                        SocketAddr::V4(a) => {
                            v4[n] = a;
                            n += 1;
                        }
                        SocketAddr::V6(_) => self.stats.ipv6_not_representable += 1,
                    }
                }
                let body = lars::GetRouteResponse { modid, cmdid, hosts: List::from_slice(&v4[..n]) };
                frame::encode(MsgId::ApiGetRouteResponse, &body, reply)
            }
            Codec::Native => {
                let mut hosts =
                    [WeightedHost { addr: SocketAddr::V4(SocketAddrV4::new(0.into(), 0)), weight: 0 }; H];
                for (slot, host) in hosts.iter_mut().zip((0..count).filter_map(host_at)) {
                    *slot = host;
                }
                let code = if count == 0 { RetCode::NoExist } else { RetCode::Succ };
                let version = route.map_or(0, |r| r.version);
                let hosts = List::from_slice(&hosts[..count]);
                let body = native::RouteResponse { seq, modid, cmdid, code, version, hosts };
                frame::encode(MsgId::NativeRouteResponse, &body, reply)
            }
        };
        written.map_err(|_| ApiError::ReplyTooLarge)
    }

    /// The dns link came up (`true`) or went down. Coming up re-pulls every route (once the
    /// link's codec is known), which also renews the subscriptions a new lars-dns connection
    /// does not have; going down turns pulls in flight back into pulls to send.
    pub fn handle_dns_link(&mut self, now: Instant, up: bool) {
        if up {
            let known = self.dns.up(now, self.config.codec_probe_timeout);
            self.codec_chosen(Link::Dns, known);
        } else {
            self.dns.down();
        }
        for slot in 0..self.routes.len() {
            if up || matches!(self.routes[slot].pull, Pull::InFlight { .. }) {
                self.mark_due(slot);
            }
        }
    }

    /// The reporter link came up (`true`) or went down.
    pub fn handle_reporter_link(&mut self, now: Instant, up: bool) {
        if up {
            let known = self.reporter.up(now, self.config.codec_probe_timeout);
            self.codec_chosen(Link::Reporter, known);
        } else {
            self.reporter.down();
        }
    }

    fn codec_chosen(&mut self, link: Link, codec: Option<Codec>) {
        if let Some(codec) = codec {
            self.push_event(AgentEvent::CodecChosen { link, codec });
        }
    }

    /// Handles a frame from lars-reporter, which sends nothing but its answer to the agent's
    /// `Hello` (and keep-alives). An error means the link is unusable; the driver should close
    /// it (and reconnect).
    pub fn handle_reporter_frame(&mut self, _now: Instant, frame: Frame<'_>) -> Result<(), ReporterError> {
        match frame.msgid {
            MsgId::Hello => {
                let known = self.reporter.heard_hello();
                self.codec_chosen(Link::Reporter, known);
                Ok(())
            }
            MsgId::Heartbeat => Ok(()),
            other => Err(ReporterError::Unexpected(other)),
        }
    }

    /// Handles a frame from lars-dns: a route answer or push. An error means the link is
    /// unusable; the driver should close it (and reconnect).
    pub fn handle_dns_frame(&mut self, now: Instant, frame: Frame<'_>) -> Result<(), DnsError> {
        let result = self.apply_dns_frame(now, frame);
        if result.is_err() {
            self.stats.dns_errors += 1;
        }
        result
    }

    fn apply_dns_frame(&mut self, now: Instant, frame: Frame<'_>) -> Result<(), DnsError> {
        let mut hosts = [WeightedHost { addr: SocketAddr::V4(SocketAddrV4::new(0.into(), 0)), weight: 1 }; H];
        let salt = u64::from(self.config.caller);
        let (modid, cmdid, version, offered, kept) = match frame.msgid {
            MsgId::GetRouteResponse => {
                let r = lars::GetRouteResponse::parse(frame.body).map_err(DnsError::Malformed)?;
                let all = r.hosts.iter().map(|addr| WeightedHost { addr: SocketAddr::V4(addr), weight: 1 });
                let kept = subset(&mut hosts, all, r.hosts.len(), salt);
                (r.modid, r.cmdid, 0, r.hosts.len(), kept)
            }
            MsgId::NativeRouteResponse => {
                let r = native::RouteResponse::parse(frame.body).map_err(DnsError::Malformed)?;
                match r.code {
                    RetCode::Succ => {}
                    // The dns has not loaded its store: it does not know, so nothing changes.
                    RetCode::SystemError => {
                        self.dns_unready(now, r.modid, r.cmdid);
                        return Ok(());
                    }
                    _ => {
                        self.apply_route(now, r.modid, r.cmdid, r.version, &[], 0);
                        return Ok(());
                    }
                }
                let kept = subset(&mut hosts, r.hosts.iter(), r.hosts.len(), salt);
                (r.modid, r.cmdid, r.version, r.hosts.len(), kept)
            }
            // A native lars-dns answers the agent's greeting; that decides the link's codec.
            MsgId::Hello => {
                let known = self.dns.heard_hello();
                self.codec_chosen(Link::Dns, known);
                return Ok(());
            }
            MsgId::Heartbeat => return Ok(()),
            other => return Err(DnsError::Unexpected(other)),
        };
        self.apply_route(now, modid, cmdid, version, &hosts[..kept], offered);
        Ok(())
    }

    /// lars-dns answered that it has not loaded its store (it restarted on a store it cannot
    /// read, say). The route keeps its hosts, stale or not, and is asked for again after the
    /// pull's backoff, as if the answer had not come.
    fn dns_unready(&mut self, now: Instant, modid: i32, cmdid: i32) {
        self.stats.dns_unready_answers += 1;
        self.dns_ready = false;
        let Some(slot) = self.find(modid, cmdid) else { return };
        let route = &self.routes[slot];
        let deadline = route.pull_deadline(now, self.config.pull_timeout, self.config.pull_backoff_max);
        if route.pull == Pull::Due {
            self.pulls_due -= 1;
        }
        self.routes[slot].pull = Pull::InFlight { deadline };
        self.push_event(AgentEvent::DnsUnready { modid, cmdid });
    }

    /// Applies `hosts`, the route as lars-dns sent it (`offered` hosts, of which `hosts` is the
    /// subset that fits).
    fn apply_route(
        &mut self,
        now: Instant,
        modid: i32,
        cmdid: i32,
        version: u64,
        hosts: &[WeightedHost],
        offered: usize,
    ) {
        // Answers for routes nobody asked this agent for are ignored, as in the original.
        let Some(slot) = self.find(modid, cmdid) else { return };
        self.stats.routes_received += 1;
        // The latest answer on the link is the truth, whatever its version: one TCP link
        // delivers in order, and versions from another link (a restarted dns, another replica,
        // another store) are not comparable. Only the link is, and it changes when they do.
        self.dns_ready = true;
        let route = &mut self.routes[slot];
        if route.pull == Pull::Due {
            self.pulls_due -= 1;
        }
        route.pull = Pull::Idle;
        route.attempts = 0;
        if offered == 0 {
            self.remove_route(slot);
            self.push_event(AgentEvent::RouteRemoved { modid, cmdid });
            return;
        }
        match route.balancer.update(now, hosts) {
            Ok(()) => {
                route.state = RouteState::Fresh;
                route.version = version;
                route.updated_at = now;
                let hosts = route.balancer.len();
                if offered > hosts {
                    self.stats.route_over_capacity += 1;
                    self.push_event(AgentEvent::RouteTooLarge { modid, cmdid, hosts: offered });
                }
                self.push_event(AgentEvent::RouteUpdated { modid, cmdid, hosts });
            }
            Err(UpdateError::OverCapacity { hosts, .. }) => {
                // Keep serving what we had; try again at the next refresh.
                route.updated_at = now;
                self.stats.route_over_capacity += 1;
                self.push_event(AgentEvent::RouteTooLarge { modid, cmdid, hosts });
            }
        }
    }

    /// Advances time: ends greetings that got no answer, retries pulls that got none, and
    /// starts statistics flushes.
    pub fn handle_timeout(&mut self, now: Instant) {
        let dns = self.dns.handle_timeout(now);
        self.codec_chosen(Link::Dns, dns);
        let reporter = self.reporter.handle_timeout(now);
        self.codec_chosen(Link::Reporter, reporter);
        for slot in 0..self.routes.len() {
            if let Pull::InFlight { deadline } = self.routes[slot].pull
                && now >= deadline
            {
                self.stats.pull_timeouts += 1;
                let route = &self.routes[slot];
                let event = AgentEvent::PullTimedOut {
                    modid: route.modid,
                    cmdid: route.cmdid,
                    attempts: route.attempts,
                };
                self.mark_due(slot);
                self.push_event(event);
            }
        }
        if now >= self.next_flush || self.early_flush_due() {
            self.next_flush = now + self.config.report_interval;
            self.waiting_reports = 0;
            if self.reporter.codec().is_some() {
                self.flush.start();
            } else if self.reporter.is_connected() {
                // Still greeting lars-reporter: the tallies wait for the next interval.
            } else {
                let dropped: usize =
                    self.routes.iter_mut().map(|r| core::mem::take(&mut r.tallies).len()).sum();
                if dropped > 0 {
                    self.stats.stats_dropped += dropped as u64;
                    self.push_event(AgentEvent::StatsDropped { entries: dropped as u32 });
                }
            }
        }
    }

    /// Enough results are waiting to send them before the interval ends (0 turns this off).
    fn early_flush_due(&self) -> bool {
        self.config.report_after > 0 && self.waiting_reports >= self.config.report_after
    }

    /// When [`Agent::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.next_flush;
        if self.early_flush_due() {
            next = Instant::ZERO; // now
        }
        for route in &self.routes {
            if let Pull::InFlight { deadline } = route.pull {
                next = next.min(deadline);
            }
        }
        for deadline in [self.dns.deadline(), self.reporter.deadline()].into_iter().flatten() {
            next = next.min(deadline);
        }
        Some(next)
    }

    /// Writes the next frame for the dns or reporter link into `buf`. Call again until `None`
    /// after any `handle_*` call. Frames for a link that is down are not produced.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        for link in [Link::Dns, Link::Reporter] {
            if let Some(transmit) = self.poll_hello(link, buf) {
                return Some(transmit);
            }
        }
        if let Some(codec) = self.dns.codec()
            && self.pulls_due > 0
        {
            for slot in 0..self.routes.len() {
                if self.routes[slot].pull != Pull::Due {
                    continue;
                }
                let route = &self.routes[slot];
                let written = match codec {
                    Codec::Lars => frame::encode(
                        MsgId::GetRouteRequest,
                        &lars::GetRouteRequest { modid: route.modid, cmdid: route.cmdid },
                        buf,
                    ),
                    Codec::Native => frame::encode(
                        MsgId::NativeGetRouteRequest,
                        &native::GetRouteRequest { seq: 0, modid: route.modid, cmdid: route.cmdid },
                        buf,
                    ),
                };
                // A buffer too small for a 30-byte request is the driver's bug; leave it due.
                let len = written.ok()?;
                let deadline =
                    route.pull_deadline(now, self.config.pull_timeout, self.config.pull_backoff_max);
                let route = &mut self.routes[slot];
                route.pull = Pull::InFlight { deadline };
                route.attempts = route.attempts.saturating_add(1);
                self.pulls_due -= 1;
                self.stats.pulls_sent += 1;
                return Some(Transmit { link: Link::Dns, len });
            }
        }
        if let Some(codec) = self.reporter.codec() {
            let ts = self.unix_secs(now);
            let caller = self.config.caller;
            if let Some(len) =
                self.flush.next_frame(&mut self.routes, codec, caller, ts, buf, &mut self.stats)
            {
                return Some(Transmit { link: Link::Reporter, len });
            }
        }
        None
    }

    /// The native `Hello` that greets a link whose codec is to be found out.
    fn poll_hello(&mut self, link: Link, buf: &mut [u8]) -> Option<Transmit> {
        let state = match link {
            Link::Dns => &mut self.dns,
            Link::Reporter => &mut self.reporter,
        };
        if !state.hello_due() {
            return None;
        }
        let hello = native::Hello {
            version: native::PROTOCOL_VERSION,
            role: native::Role::Agent,
            node: self.config.caller,
            max_body: frame::MAX_BODY,
        };
        // A buffer too small for a 16-byte greeting is the driver's bug; leave it due.
        let len = frame::encode(MsgId::Hello, &hello, buf).ok()?;
        state.hello_sent();
        Some(Transmit { link, len })
    }

    /// The next event worth logging.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<AgentEvent> {
        self.events.pop_front()
    }
}

/// Copies the `offered` hosts of `all` into `out`; when there are more than `out` holds, keeps
/// the ones that rank lowest for `salt`, a subset that stays the same across updates and that
/// differs between agents of different salts. Returns how many were kept, in address order.
fn subset<const H: usize>(
    out: &mut [WeightedHost; H],
    all: impl Iterator<Item = WeightedHost>,
    offered: usize,
    salt: u64,
) -> usize {
    if offered <= H {
        let mut n = 0;
        for (slot, host) in out.iter_mut().zip(all) {
            *slot = host;
            n += 1;
        }
        return n;
    }
    let mut ranks = [0u64; H];
    let mut n = 0;
    // The highest rank kept, replaced whenever a lower one comes.
    let mut worst = 0;
    for host in all {
        let rank = crate::lb::host_rank(salt, host.addr);
        if n < H {
            out[n] = host;
            ranks[n] = rank;
            if rank > ranks[worst] {
                worst = n;
            }
            n += 1;
        } else if rank < ranks[worst] {
            out[worst] = host;
            ranks[worst] = rank;
            worst = (0..H).max_by_key(|&i| ranks[i]).unwrap_or(0);
        }
    }
    out[..n].sort_unstable_by_key(|h| h.addr);
    n
}
