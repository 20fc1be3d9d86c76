//! A leased route: the client holds the route's hosts, picks locally with a `lars_core`
//! balancer, and sends the agent a summary of its calls instead of one datagram per call.
//!
//! `Client::get_host` costs a UDP round trip through the agent for every call; a [`Lease`]
//! costs one pick in process (tens of nanoseconds) and, in the background of its calls, one
//! route refresh per `ttl` and one summary datagram per `flush_interval`. Neither ever blocks a
//! call: the refresh is sent, and its answer taken from the socket on a later call; until it
//! arrives (or if the agent is gone) the lease keeps serving the hosts it has.
//!
//! The lease's balancer learns only from the calls reported to it, so a lease sees a host
//! failing as soon as its own calls fail. The agent adds the summaries to the statistics it
//! sends to lars-reporter, so the console's call counts include leased calls.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use lars_core::lb::{Balance, Balancer, LbConfig, Pick, PolicyKind, Rng};
use lars_core::time::Instant;
use lars_core::wire::native::{self, CallStats, HostStats, Outcome, WeightedHost};
use lars_core::wire::{Decode, Frame, List, MsgId, RetCode, frame};

use super::{Client, ClientError};
use crate::time::{Clock, from_std};

/// Hosts a leased route can hold, as many as the agent's.
const HOSTS: usize = crate::agent::HOSTS;

/// How a lease balances and how often it talks to the agent.
#[derive(Debug, Clone, Copy)]
pub struct LeaseConfig {
    /// How long the hosts are used before they are refreshed from the agent.
    pub ttl: Duration,
    /// How often the call counts go to the agent (also on `flush` and on drop).
    pub flush_interval: Duration,
    /// The balancing policy.
    pub policy: PolicyKind,
    /// The policies' parameters.
    pub lb: LbConfig,
}

impl Default for LeaseConfig {
    /// Refresh every second, send counts every 100 ms, the Lars policy with its defaults.
    fn default() -> Self {
        LeaseConfig {
            ttl: Duration::from_secs(1),
            flush_interval: Duration::from_millis(100),
            policy: PolicyKind::Lars,
            lb: LbConfig::default(),
        }
    }
}

/// A route leased from the agent. Its calls take `&mut self`: give each thread its own lease
/// (or share one behind a `Mutex`).
pub struct Lease {
    modid: i32,
    cmdid: i32,
    config: LeaseConfig,
    clock: Clock,
    socket: UdpSocket,
    balancer: Box<Balancer<HOSTS>>,
    rng: Rng,
    version: u64,
    refresh_at: Instant,
    /// The seq of the refresh in flight, and when it was asked.
    refreshing: Option<(u32, Instant)>,
    /// How long a refresh may go unanswered before it is asked again.
    retry_after: lars_core::time::Duration,
    /// Since when the agent has answered that it has no such route.
    absent_since: Option<Instant>,
    seq: u32,
    /// Call counts since the last flush, one entry per host.
    counts: Vec<HostStats>,
    /// Where the last reported host sits in `counts`: reports usually follow picks of the
    /// same few hosts.
    hint: usize,
    flush_at: Instant,
    buf: Box<[u8]>,
}

impl Lease {
    /// Leases `(modid, cmdid)` from `client`'s agent, waiting as long as one call may (the
    /// client's timeout times its attempts) for the agent to have the route.
    pub(super) fn new(client: &Client, modid: i32, cmdid: i32) -> Result<Lease, ClientError> {
        let patience = client.config.timeout.saturating_mul(client.config.retries.saturating_add(1));
        let attempts = patience.as_millis().div_ceil(super::REG_INIT_SPACING.as_millis()).max(1);
        let route = client.reg_init(modid, cmdid, u32::try_from(attempts).unwrap_or(u32::MAX))?;
        let agent = client.agent_for(modid, cmdid)?;
        let local: SocketAddr =
            if agent.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local)?;
        socket.connect(agent)?;
        socket.set_nonblocking(true)?;
        let config = client.config.lease;
        let clock = Clock::new();
        let now = clock.now_coarse();
        let mut balancer = Box::new(Balancer::new(config.policy, &config.lb));
        balancer.update(now, &route.hosts).map_err(|_| ClientError::AgentError)?;
        Ok(Lease {
            modid,
            cmdid,
            config,
            clock,
            socket,
            balancer,
            rng: Rng::new(RandomState::new().hash_one(modid ^ cmdid.rotate_left(16))),
            version: route.version,
            refresh_at: now + from_std(config.ttl),
            refreshing: None,
            retry_after: from_std(client.config.timeout),
            absent_since: None,
            seq: 0,
            counts: Vec::new(),
            hint: 0,
            flush_at: now + from_std(config.flush_interval),
            buf: vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize].into_boxed_slice(),
        })
    }

    /// A host for the next call. `key` pins a caller to a host under consistent hashing.
    pub fn get_host(&mut self, key: Option<u64>) -> Result<SocketAddr, ClientError> {
        let now = self.clock.now_coarse();
        if now >= self.refresh_at {
            self.refresh(now);
        }
        match self.balancer.pick(now, key, &mut self.rng) {
            Pick::Host(host) => Ok(host),
            Pick::Overloaded => Err(ClientError::Overloaded),
            Pick::NoHosts => Err(ClientError::NoRoute),
        }
    }

    /// Reports how a call to `host` went: to the lease's balancer at once, to the agent with
    /// the next summary.
    pub fn report(&mut self, host: SocketAddr, outcome: Outcome, latency: Duration) {
        let now = self.clock.now_coarse();
        let latency_us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.balancer.report(now, host, outcome, latency_us);
        // Past MAX_COUNTED_HOSTS distinct hosts (the agent unreachable, or a caller reporting
        // hosts the route never had) a result reaches the balancer only.
        if let Some(entry) = self.entry(host) {
            entry.record(outcome, latency_us);
        }
        if now >= self.flush_at {
            // A summary the socket refuses now goes with the next one.
            let _ = self.send_counts(now);
        }
    }

    /// Sends the call counts to the agent now.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        let now = self.clock.now_coarse();
        self.send_counts(now)
    }

    /// The store's version of the hosts in use.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The hosts in use.
    pub fn hosts(&self) -> Vec<WeightedHost> {
        (0..self.balancer.len()).filter_map(|i| self.balancer.host(i)).collect()
    }

    /// The counts of `host`, or `None` when [`MAX_COUNTED_HOSTS`] other hosts already have
    /// counts waiting.
    fn entry(&mut self, host: SocketAddr) -> Option<&mut HostStats> {
        if self.counts.get(self.hint).is_none_or(|e| e.host != host) {
            self.hint = match self.counts.iter().position(|e| e.host == host) {
                Some(i) => i,
                None if self.counts.len() >= MAX_COUNTED_HOSTS => return None,
                None => {
                    self.counts.push(HostStats::empty(self.modid, self.cmdid, host));
                    self.counts.len() - 1
                }
            };
        }
        self.counts.get_mut(self.hint)
    }

    /// Sends the counts, as many datagrams as they need; keeps them (to add to) if the socket
    /// refuses.
    fn send_counts(&mut self, now: Instant) -> Result<(), ClientError> {
        self.flush_at = now + from_std(self.config.flush_interval);
        for entry in &mut self.counts {
            entry.overloaded = self.balancer.is_overloaded(entry.host);
        }
        let mut sent = 0;
        let result = self.counts.chunks(SUMMARY_CHUNK).try_for_each(|chunk| {
            let summary = CallStats { caller: 0, ts: 0, entries: List::from_slice(chunk) };
            let len = frame::encode(MsgId::NativeCallStats, &summary, &mut self.buf)
                .map_err(ClientError::Malformed)?;
            self.socket.send(&self.buf[..len])?;
            sent += chunk.len();
            Ok(())
        });
        self.counts.drain(..sent);
        self.hint = 0;
        result
    }

    /// Takes a refresh's answer if one has come, and asks (again) when none is in flight or the
    /// last request went unanswered for the client's timeout.
    fn refresh(&mut self, now: Instant) {
        self.refresh_at = now + REFRESH_POLL;
        if let Some((seq, asked_at)) = self.refreshing {
            match self.take_route(seq, now) {
                Ok(Some(next)) => {
                    self.refreshing = None;
                    self.refresh_at = next;
                    return;
                }
                _ if now.saturating_since(asked_at) < self.retry_after => return,
                // No answer in time: ask again.
                _ => {}
            }
        }
        self.seq = self.seq.wrapping_add(1);
        let request = native::GetRouteRequest { seq: self.seq, modid: self.modid, cmdid: self.cmdid };
        let mut out = [0u8; 64];
        if let Ok(len) = frame::encode(MsgId::NativeGetRouteRequest, &request, &mut out) {
            // A request the socket refuses is asked again after `retry_after`, like a lost one.
            let _ = self.socket.send(&out[..len]);
            self.refreshing = Some((self.seq, now));
        }
    }

    /// Reads waiting answers. When the one for `seq` has come, applies it and returns when to
    /// refresh next.
    fn take_route(&mut self, seq: u32, now: Instant) -> io::Result<Option<Instant>> {
        loop {
            let n = match self.socket.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            };
            let Ok(frame) = Frame::parse_datagram(&self.buf[..n], frame::MAX_BODY) else { continue };
            if frame.msgid != MsgId::NativeRouteResponse {
                continue;
            }
            let Ok(route) = native::RouteResponse::parse(frame.body) else { continue };
            if route.seq != seq {
                continue;
            }
            let ttl = from_std(self.config.ttl);
            if route.code != RetCode::NoExist {
                self.absent_since = None;
            }
            return Ok(Some(match route.code {
                RetCode::Succ => {
                    let hosts: Vec<WeightedHost> = route.hosts.iter().collect();
                    // A route over our capacity keeps the hosts we have.
                    if self.balancer.update(now, &hosts).is_ok() {
                        self.version = route.version;
                    }
                    now + ttl
                }
                // "No such route" is also what an agent says while it fetches a route it does
                // not hold yet (after a restart, say): keep the hosts and ask again soon, and
                // believe it once it has said so for a ttl.
                RetCode::NoExist => {
                    let since = *self.absent_since.get_or_insert(now);
                    if now.saturating_since(since) >= ttl {
                        let _ = self.balancer.update(now, &[]);
                        now + ttl
                    } else {
                        now + from_std(super::REG_INIT_SPACING)
                    }
                }
                _ => now + ttl,
            }));
        }
    }
}

/// Hosts whose counts may wait for the next summary: a route's hosts and then some.
const MAX_COUNTED_HOSTS: usize = 4 * HOSTS;
/// Entries per summary datagram (an entry is at most 61 bytes, a datagram 64 KiB).
const SUMMARY_CHUNK: usize = 512;

/// How often a refresh in flight is looked for on the socket.
const REFRESH_POLL: lars_core::time::Duration = lars_core::time::Duration::from_millis(1);

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
