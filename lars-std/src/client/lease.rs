//! A leased route: `lars_core::lease` driven with a UDP socket and the coarse clock.
//!
//! `Client::get_host` costs a UDP round trip through the agent for every call; a [`Lease`]
//! costs one pick in process (tens of nanoseconds) and, behind its calls, a route refresh per
//! `ttl` and a summary of the call counts per `flush_interval`. Neither ever blocks a call: a
//! refresh is sent and its answer taken from the socket on a later call, and until it comes
//! (or if the agent is gone) the lease keeps serving the hosts it has.
//!
//! The lease's balancer learns only from the calls reported to it, so a lease sees a host fail
//! as soon as its own calls fail. The agent adds the summaries to the statistics it sends to
//! lars-reporter, so the console's call counts include leased calls.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use lars_core::lb::Pick;
use lars_core::time::Instant;
use lars_core::wire::frame;
use lars_core::wire::native::{Outcome, WeightedHost};

use super::{Client, ClientError};
use crate::time::{Clock, from_std};

/// Hosts a leased route can hold, as many as the agent's.
const HOSTS: usize = crate::agent::HOSTS;
/// How often the socket is looked at for a refresh's answer while one is in flight.
const ANSWER_POLL: lars_core::time::Duration = lars_core::time::Duration::from_millis(1);

/// How a lease balances and how often it talks to the agent: the core's
/// [`LeaseParams`](lars_core::lease::LeaseParams), which defines and defaults each parameter.
/// A lease uses its `ttl`, `flush_interval`, `policy` and `lb`; its `retry_after` and `recheck`
/// are the client's own, set when the lease starts: the [`ClientConfig`](super::ClientConfig)'s
/// `timeout` and [`REG_INIT_SPACING`](super::REG_INIT_SPACING). Its durations are the core's
/// ([`CoreDuration`](super::CoreDuration), or [`from_std`](crate::time::from_std) of a std
/// one), and its policy types are in [`client`](super) too:
///
/// ```
/// use lars_std::client::{ClientConfig, CoreDuration, LeaseConfig, PolicyKind};
///
/// let mut config = ClientConfig::default();
/// config.lease = LeaseConfig { ttl: CoreDuration::from_millis(500), ..LeaseConfig::default() };
/// config.lease.flush_interval = lars_std::time::from_std(std::time::Duration::from_millis(50));
/// config.lease.policy = PolicyKind::RoundRobin;
/// ```
pub type LeaseConfig = lars_core::lease::LeaseParams;

/// A route leased from the agent. Its calls take `&mut self`: give each thread its own lease
/// (or share one behind a `Mutex`).
///
/// # Examples
///
/// ```no_run
/// use std::time::Instant;
/// use lars_std::client::{Client, ClientConfig, ClientError, Outcome};
///
/// let client = Client::new(ClientConfig::default());
/// let mut lease = client.lease(1001, 1)?; // one per thread
/// for _ in 0..1000 {
///     let host = lease.get_host(None)?; // picked in process: no syscall
///     let start = Instant::now();
///     // ... call `host` ...
///     lease.report(host, Outcome::Ok, start.elapsed());
/// }
/// lease.flush()?; // the summary goes to the agent every 100 ms anyway
/// # Ok::<(), ClientError>(())
/// ```
pub struct Lease {
    lease: Box<lars_core::lease::Lease<HOSTS>>,
    clock: Clock,
    socket: UdpSocket,
    /// When the calls next look at the socket and at what the lease wants sent.
    next_drive: Instant,
    buf: Box<[u8]>,
}

impl Lease {
    /// Leases `(modid, cmdid)` from `client`'s agent, waiting as long as one call may (the
    /// client's timeout times its attempts) for the agent to have the route.
    pub(super) fn new(client: &Client, modid: i32, cmdid: i32) -> Result<Lease, ClientError> {
        // Summaries and refreshes are native messages; an original agent knows neither.
        if client.codec(modid, cmdid)? == super::Codec::Lars {
            return Err(ClientError::NeedsNative("leases"));
        }
        let patience = client.config.timeout.saturating_mul(client.config.retries.saturating_add(1));
        let attempts = patience.as_millis().div_ceil(super::REG_INIT_SPACING.as_millis()).max(1);
        let route = client.reg_init(modid, cmdid, u32::try_from(attempts).unwrap_or(u32::MAX))?;
        let agent = client.agent_for(modid, cmdid)?;
        let local: SocketAddr =
            if agent.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local)?;
        socket.connect(agent)?;
        socket.set_nonblocking(true)?;
        let config = LeaseConfig {
            retry_after: from_std(client.config.timeout),
            recheck: from_std(super::REG_INIT_SPACING),
            ..client.config.lease
        };
        let clock = Clock::new();
        let now = clock.now_coarse();
        let seed = RandomState::new().hash_one((modid, cmdid));
        let lease =
            lars_core::lease::Lease::new(now, modid, cmdid, route.version, &route.hosts, config, seed)
                .map_err(|_| ClientError::RouteTooLarge { hosts: route.hosts.len() })?;
        let next_drive = lease.poll_timeout();
        Ok(Lease {
            lease: Box::new(lease),
            clock,
            socket,
            next_drive,
            buf: vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize].into_boxed_slice(),
        })
    }

    /// A host for the next call. `key` pins a caller to a host under consistent hashing.
    pub fn get_host(&mut self, key: Option<u64>) -> Result<SocketAddr, ClientError> {
        let now = self.clock.now_coarse();
        if now >= self.next_drive {
            // The agent being away is no reason to fail a call: the lease serves what it has.
            let _ = self.drive(now);
        }
        match self.lease.get_host(now, key) {
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
        self.lease.report(now, host, outcome, latency_us);
        if now >= self.next_drive {
            let _ = self.drive(now);
        }
    }

    /// Sends the call counts to the agent now.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        let now = self.clock.now_coarse();
        self.lease.flush(now);
        self.drive(now).map_err(ClientError::Io)
    }

    /// The store's version of the hosts in use.
    pub fn version(&self) -> u64 {
        self.lease.version()
    }

    /// The hosts in use.
    pub fn hosts(&self) -> Vec<WeightedHost> {
        (0..self.lease.len()).filter_map(|i| self.lease.host(i)).collect()
    }

    /// Takes the agent's answers, sends what the lease wants sent, and says when to come back.
    /// A datagram the socket refuses is lost like one lost on the way: a refresh is asked again,
    /// and statistics are best effort. Returns the first send error.
    fn drive(&mut self, now: Instant) -> io::Result<()> {
        while self.lease.awaiting_answer() {
            match self.socket.recv(&mut self.buf) {
                Ok(n) => {
                    self.lease.handle_datagram(now, &self.buf[..n]);
                }
                // Nothing yet; or ICMP from an agent that is gone, which a retry covers.
                Err(_) => break,
            }
        }
        let mut result = Ok(());
        while let Some(len) = self.lease.poll_transmit(now, &mut self.buf) {
            if let Err(e) = self.socket.send(&self.buf[..len]) {
                result = result.and(Err(e));
            }
        }
        self.next_drive = self.lease.poll_timeout();
        if self.lease.awaiting_answer() {
            self.next_drive = self.next_drive.min(now + ANSWER_POLL);
        }
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
