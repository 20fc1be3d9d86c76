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

mod api;
mod config;
mod decision;
mod events;
mod link;
mod route;
mod stats;
mod table;
mod upstream;

use core::net::SocketAddr;

pub use config::{AgentConfig, RoutePolicy};
pub use decision::Decision;
use decision::DecisionLog;
pub use events::{AgentEvent, AgentStats, ApiError, DnsError, Link, ReporterError, Severity, Transmit};
use link::LinkState;
use route::Route;
pub use route::RouteState;
use table::{Pull, RouteTable};

use crate::lb::{Balance, PolicyKind, Rng};
use crate::time::Instant;
use crate::wire::native::{self, WeightedHost};
pub use crate::wire::{Codec, CodecChoice};
use crate::wire::{MsgId, frame, lars};

/// The agent, for `R` routes of up to `H` hosts each, keeping the last `D` host state changes
/// in its decision log (none by default: a gateway has no RAM to spare; the std agent keeps
/// [`DECISIONS`]).
///
/// # Examples
///
/// A driver feeds the agent datagrams, frames and time, and sends what it is given:
///
/// ```
/// use lars_core::agent::{Agent, AgentConfig};
/// use lars_core::time::Instant;
/// use lars_core::wire::{frame, lars, MsgId};
///
/// let mut now = Instant::from_millis(0);
/// let mut agent: Agent<16, 16> = Agent::new(AgentConfig::default(), now);
/// agent.handle_dns_link(now, true); // the driver connected to lars-dns
///
/// // A caller's get_host, in the original protocol, as it arrives on UDP 8888.
/// let mut datagram = [0u8; 64];
/// let request = lars::GetHostRequest { seq: 1, modid: 1001, cmdid: 1 };
/// let len = frame::encode(MsgId::GetHostRequest, &request, &mut datagram).unwrap();
/// let mut reply = [0u8; 512];
/// let answer = agent.handle_api_datagram(now, &datagram[..len], &mut reply).unwrap();
/// assert!(answer > 0); // "no such route yet": the agent now pulls it
///
/// // What the agent wants sent (its Hello, then the pull) and when to call it again.
/// let mut out = [0u8; 512];
/// while let Some(transmit) = agent.poll_transmit(now, &mut out) {
///     let _bytes = &out[..transmit.len]; // send on transmit.link
/// }
/// while let Some(event) = agent.poll_event() {
///     let _ = event; // log it
/// }
/// if let Some(at) = agent.poll_timeout() {
///     now = at;
///     agent.handle_timeout(now);
/// }
/// ```
pub struct Agent<const R: usize, const H: usize, const D: usize = 0> {
    config: AgentConfig,
    rng: Rng,
    /// The routes, their index and their pulls (with the count of those due).
    routes: RouteTable<R, H>,
    dns: LinkState,
    reporter: LinkState,
    /// The last route answer came from a lars-dns that had loaded its store.
    dns_ready: bool,
    next_flush: Instant,
    waiting_reports: u32,
    flush: stats::Flush,
    /// Unix time minus the driver's clock, in seconds, for statistics timestamps.
    unix_offset: Option<i64>,
    events: heapless::Deque<AgentEvent, EVENTS>,
    /// Route lifecycle events (created, missing, evicted) logged in this report interval, and
    /// those left out beyond [`ROUTE_EVENTS_PER_INTERVAL`].
    route_events: u16,
    route_events_suppressed: u32,
    decisions: DecisionLog<D>,
    /// A flush started with decisions to send: they follow its statistics frames.
    decisions_due: bool,
    stats: AgentStats,
}

/// Events held until the driver drains them (it does after every call; beyond this the oldest
/// are dropped and counted in `events_dropped`).
const EVENTS: usize = 32;

/// A caller asking for random routes would otherwise cost log lines per route.
const ROUTE_EVENTS_PER_INTERVAL: u16 = 16;

/// The decision log's size in the std agent: a second of flapping at a high rate.
pub const DECISIONS: usize = 1024;

impl<const R: usize, const H: usize, const D: usize> Agent<R, H, D> {
    /// An agent with no routes and both links down.
    pub fn new(config: AgentConfig, now: Instant) -> Self {
        const { assert!(R <= u16::MAX as usize, "an agent holds at most 65535 routes") };
        Agent {
            dns: LinkState::new(config.dns_codec),
            reporter: LinkState::new(config.reporter_codec),
            rng: Rng::new(config.seed),
            next_flush: now + config.report_interval,
            config,
            routes: RouteTable::new(),
            dns_ready: true,
            waiting_reports: 0,
            flush: stats::Flush::default(),
            unix_offset: None,
            events: heapless::Deque::new(),
            route_events: 0,
            route_events_suppressed: 0,
            decisions: DecisionLog::new(),
            decisions_due: false,
            stats: AgentStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &AgentStats {
        &self.stats
    }

    /// The decision log: the last `D` host state changes, oldest first.
    pub fn decisions(&self) -> impl Iterator<Item = &Decision> + '_ {
        self.decisions.iter()
    }

    /// Decisions made since start, and those pushed out of the log before they were sent.
    pub fn decision_counts(&self) -> (u64, u64) {
        (u64::from(self.decisions.total), u64::from(self.decisions.dropped))
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

    /// Number of routes held (those remembered as missing left out).
    pub fn route_count(&self) -> usize {
        self.routes.iter().filter(|r| r.state != RouteState::Missing).count()
    }

    /// Number of routes remembered as missing (the negative cache).
    pub fn missing_routes(&self) -> usize {
        self.routes.len() - self.route_count()
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
        self.routes.iter().filter(|r| r.state != RouteState::Missing).map(|route| {
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
        self.routes.find(modid, cmdid)
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

    /// The route's slot, creating the route (pulling) if the table has room or can make it.
    fn find_or_create(&mut self, now: Instant, modid: i32, cmdid: i32) -> Option<usize> {
        if let Some(slot) = self.find(modid, cmdid) {
            return Some(slot);
        }
        if self.routes.is_full() {
            let Some(victim) = self.eviction_victim(now) else {
                self.stats.route_table_full += 1;
                return None;
            };
            self.evict(victim);
        }
        let policy = self.policy_for(modid, cmdid);
        let route = Route::new(modid, cmdid, policy, &self.config.lb, now);
        let Ok(slot) = self.routes.insert(route, Pull::Due) else {
            self.stats.route_table_full += 1;
            return None;
        };
        self.push_route_event(AgentEvent::RouteCreated { modid, cmdid });
        Some(slot)
    }

    /// The route a full table gives up for a new one: one remembered as missing (the oldest
    /// answer), else the one asked for longest ago if nobody asked for it in
    /// `route_idle_evict`. A route in use is never evicted, so a caller asking for random
    /// routes can only take the room of routes nobody needs.
    fn eviction_victim(&self, now: Instant) -> Option<usize> {
        let missing = self.routes.iter().enumerate().filter(|(_, r)| r.state == RouteState::Missing);
        if let Some((slot, _)) = missing.min_by_key(|(_, r)| r.updated_at) {
            return Some(slot);
        }
        let idle = self.config.route_idle_evict;
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, r)| now.saturating_since(r.asked_at) >= idle)
            .min_by_key(|(_, r)| r.asked_at)
            .map(|(slot, _)| slot)
    }

    fn evict(&mut self, slot: usize) {
        let (modid, cmdid) = (self.routes[slot].modid, self.routes[slot].cmdid);
        self.remove_route(slot);
        self.stats.routes_evicted += 1;
        self.push_route_event(AgentEvent::RouteEvicted { modid, cmdid });
    }

    /// lars-dns says the route in `slot` does not exist: it stays in the table as missing
    /// (the negative cache), without hosts or tallies, so that requests for it are answered
    /// without asking again for `missing_ttl`. At most a quarter of the table is missing
    /// routes: beyond that the oldest is forgotten.
    fn remember_missing(&mut self, now: Instant, slot: usize) {
        let had_hosts = matches!(self.routes[slot].state, RouteState::Fresh | RouteState::Stale);
        let (modid, cmdid) = (self.routes[slot].modid, self.routes[slot].cmdid);
        self.remove_route(slot);
        self.stats.routes_missing += 1;
        let most = (R / 4).max(1);
        if self.routes.iter().filter(|r| r.state == RouteState::Missing).count() >= most
            && let Some(oldest) = self.eviction_victim(now)
        {
            self.remove_route(oldest);
        }
        let policy = self.policy_for(modid, cmdid);
        let mut route = Route::new(modid, cmdid, policy, &self.config.lb, now);
        route.state = RouteState::Missing;
        // Room: a route was just taken out of the table.
        let _ = self.routes.insert(route, Pull::Idle);
        if had_hosts {
            self.push_event(AgentEvent::RouteRemoved { modid, cmdid });
        } else {
            self.push_route_event(AgentEvent::RouteMissing { modid, cmdid });
        }
    }

    /// A route lifecycle event, within the interval's budget.
    fn push_route_event(&mut self, event: AgentEvent) {
        if self.route_events < ROUTE_EVENTS_PER_INTERVAL {
            self.route_events += 1;
            self.push_event(event);
        } else {
            self.route_events_suppressed = self.route_events_suppressed.saturating_add(1);
        }
    }

    fn remove_route(&mut self, slot: usize) {
        let route = self.routes.swap_remove(slot);
        let dropped = route.unsent_calls();
        if dropped > 0 {
            self.stats.stats_dropped_calls += dropped;
            self.push_event(AgentEvent::StatsDropped { calls: dropped.min(u64::from(u32::MAX)) as u32 });
        }
        self.flush.route_removed(slot);
    }

    fn mark_due(&mut self, slot: usize) {
        self.routes.set_pull(slot, Pull::Due);
    }

    /// A request for the route in `slot`: it is in use. Once a route's hosts are older than
    /// `update_timeout`: a fresh route turns stale, and a route with no pull under way (fresh,
    /// or one whose last answer could not be applied) is pulled again. The last known hosts
    /// keep serving meanwhile. A missing route is asked for again after `missing_ttl`.
    fn refresh_if_old(&mut self, now: Instant, slot: usize) {
        let idle = self.routes.pull(slot) == Pull::Idle;
        let route = &mut self.routes[slot];
        route.asked_at = now;
        if route.state == RouteState::Missing {
            if idle && now.saturating_since(route.updated_at) > self.config.missing_ttl {
                self.mark_due(slot);
            }
            return;
        }
        if now.saturating_since(route.updated_at) <= self.config.update_timeout {
            return;
        }
        let became_stale = route.state == RouteState::Fresh;
        if became_stale {
            route.state = RouteState::Stale;
        }
        let (modid, cmdid) = (route.modid, route.cmdid);
        if idle {
            self.mark_due(slot);
        }
        if became_stale {
            self.push_event(AgentEvent::RouteStale { modid, cmdid });
        }
    }

    /// Gives `link` the nonce for its next handshake. A driver of an agent with a secret
    /// calls this with fresh random bytes (from a CSPRNG) before each `handle_*_link(now,
    /// true)`; a link that comes up without one cannot authenticate and is closed.
    #[cfg(feature = "auth")]
    pub fn handle_link_nonce(&mut self, link: Link, nonce: [u8; native::NONCE_LEN]) {
        match link {
            Link::Dns => self.dns.set_nonce(nonce),
            Link::Reporter => self.reporter.set_nonce(nonce),
        }
    }

    /// A link the driver must close (its handshake failed or timed out), and then report down
    /// with `handle_*_link(now, false)`. Call after any `handle_*` call until `None`.
    #[cfg(feature = "auth")]
    #[must_use]
    pub fn poll_link_close(&mut self) -> Option<Link> {
        [Link::Dns, Link::Reporter].into_iter().find(|&link| match link {
            Link::Dns => self.dns.take_close(),
            Link::Reporter => self.reporter.take_close(),
        })
    }

    /// Advances time: ends greetings that got no answer, retries pulls that got none, and
    /// starts statistics flushes.
    pub fn handle_timeout(&mut self, now: Instant) {
        #[cfg(feature = "auth")]
        let authenticating = [self.dns.is_authenticating(), self.reporter.is_authenticating()];
        let dns = self.dns.handle_timeout(now);
        self.codec_chosen(Link::Dns, dns);
        let reporter = self.reporter.handle_timeout(now);
        self.codec_chosen(Link::Reporter, reporter);
        // A handshake that timed out leaves its link to be closed.
        #[cfg(feature = "auth")]
        for (link, was) in [(Link::Dns, authenticating[0]), (Link::Reporter, authenticating[1])] {
            let still = match link {
                Link::Dns => self.dns.is_authenticating(),
                Link::Reporter => self.reporter.is_authenticating(),
            };
            if was && !still {
                self.stats.auth_failures += 1;
                self.push_event(AgentEvent::AuthFailed { link, timed_out: true });
            }
        }
        for slot in 0..self.routes.len() {
            if let Pull::InFlight { deadline } = self.routes.pull(slot)
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
            self.route_events = 0;
            if self.route_events_suppressed > 0 {
                let count = core::mem::take(&mut self.route_events_suppressed);
                self.push_event(AgentEvent::RouteEventsSuppressed { count });
            }
            self.waiting_reports = 0;
            // Greeting lars-reporter, or unable to reach it: the tallies stay where they are
            // and keep summing (one per host, in room the route already has), and go out with
            // the first flush once the link speaks.
            if self.reporter.codec().is_some() {
                self.flush.start();
                self.decisions_due = self.decisions.has_unsent();
            } else {
                self.stats.stats_flushes_held += 1;
            }
        }
    }

    /// The driver is stopping: starts a flush of every tally at once, if lars-reporter's link
    /// speaks. Returns whether it did; then drain [`Agent::poll_transmit`] and give the link
    /// a moment to write it. If not (the link is down or still greeting), the driver may call
    /// again while it waits; [`Agent::unreported_calls`] says what would be lost.
    pub fn handle_shutdown(&mut self, now: Instant) -> bool {
        if self.reporter.codec().is_none() {
            return false;
        }
        self.next_flush = now + self.config.report_interval;
        self.waiting_reports = 0;
        self.flush.start();
        true
    }

    /// Calls reported to the agent whose results have not been handed to lars-reporter's link
    /// yet: those held while it is unreachable, and those waiting for the next flush.
    pub fn unreported_calls(&self) -> u64 {
        self.routes.iter().map(Route::unsent_calls).sum()
    }

    /// Whether a statistics flush is under way ([`Agent::poll_transmit`] has frames for it
    /// while lars-reporter's link speaks).
    pub fn flushing(&self) -> bool {
        self.flush.is_active()
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
        for pull in self.routes.pulls() {
            if let Pull::InFlight { deadline } = pull {
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
            && let Some(slot) = self.routes.first_due()
        {
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
            let deadline = route.pull_deadline(now, self.config.pull_timeout, self.config.pull_backoff_max);
            self.routes.set_pull(slot, Pull::InFlight { deadline });
            let route = &mut self.routes[slot];
            route.attempts = route.attempts.saturating_add(1);
            self.stats.pulls_sent += 1;
            return Some(Transmit { link: Link::Dns, len });
        }
        if let Some(codec) = self.reporter.codec() {
            let ts = self.unix_secs(now);
            let caller = self.config.caller;
            if let Some(len) =
                self.flush.next_frame(&mut self.routes, codec, caller, ts, buf, &mut self.stats)
            {
                return Some(Transmit { link: Link::Reporter, len });
            }
            // The decisions go with the statistics, to a native reporter only.
            if self.decisions_due {
                let sent = match codec {
                    Codec::Native => self.decisions.next_frame(now, caller, ts, buf),
                    Codec::Lars => None,
                };
                match sent {
                    Some(len) => return Some(Transmit { link: Link::Reporter, len }),
                    None => self.decisions_due = false,
                }
            }
        }
        None
    }

    /// The native `Hello` that greets a link whose codec is to be found out, or the frames of
    /// a handshake.
    fn poll_hello(&mut self, link: Link, buf: &mut [u8]) -> Option<Transmit> {
        let state = match link {
            Link::Dns => &mut self.dns,
            Link::Reporter => &mut self.reporter,
        };
        // Buffers too small for these frames (under 70 bytes) are the driver's bug; they stay due.
        #[cfg(feature = "auth")]
        if let Some(hello) = state.auth_hello_due() {
            let len = frame::encode(MsgId::AuthHello, &hello, buf).ok()?;
            state.hello_sent();
            return Some(Transmit { link, len });
        }
        #[cfg(feature = "auth")]
        if let Some(proof) = state.proof_due() {
            let len = frame::encode(MsgId::AuthProof, &native::AuthProof { proof }, buf).ok()?;
            state.proof_sent();
            return Some(Transmit { link, len });
        }
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
