//! One route of the agent's table: its balancer, its lifecycle and its tallies (its pull state
//! is the table's, `table.rs`).
//!
//! Lifecycle: a route is created **pulling** by the first request for it and answers "does not
//! exist" until lars-dns sends its hosts. Then it is **fresh**. Once `update_timeout` has passed
//! since the last answer or push, the next request marks it **stale** and re-pulls it, while
//! its last known hosts keep being served, for as long as lars-dns stays unreachable if need be.
//!
//! Pulls have a deadline: a pull with no answer is sent again with exponential backoff (the
//! original could wait in PULLING forever). A dns link that drops and comes back re-pulls every
//! route, which also renews the agent's subscriptions.

use core::net::SocketAddr;

use crate::lb::{Balancer, HostAddr, PolicyKind};
use crate::tally::CallCounts;
use crate::time::{Duration, Instant};
use crate::wire::native::{HostStats, Outcome, WeightedHost};

/// Where a route is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteState {
    /// Created by a request; waiting for lars-dns to send its hosts.
    Pulling,
    /// Hosts known and recent.
    Fresh,
    /// Hosts known but older than `update_timeout`; still served while a refresh is pulled.
    Stale,
    /// lars-dns answered that the route does not exist: requests are answered so without
    /// asking again until `missing_ttl` has passed (the negative cache). The first route to
    /// go when the table needs room.
    Missing,
}

/// Per-host call tallies since the last flush to lars-reporter (kept, and summed, for as long as
/// lars-reporter is unreachable: one per host, so their room is the route's).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tally {
    pub(crate) host: HostAddr,
    pub(crate) counts: CallCounts,
    /// Already in a frame of the flush under way (the padding had room for it).
    pub(crate) flushed: bool,
}

impl Tally {
    pub(crate) const fn zero(host: HostAddr) -> Tally {
        Tally { host, counts: CallCounts::ZERO, flushed: false }
    }

    /// The calls counted.
    pub(crate) fn calls(&self) -> u64 {
        self.counts.calls()
    }
}

/// Where a flush is in one route: its balancer's hosts first, then the tallies of hosts that
/// left the route since.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlushCursor {
    host: usize,
    tally: usize,
}

impl FlushCursor {
    /// Whether the flush has not started on the route yet.
    pub(crate) fn at_start(&self) -> bool {
        *self == FlushCursor::default()
    }
}

pub(crate) struct Route<const H: usize> {
    pub(crate) modid: i32,
    pub(crate) cmdid: i32,
    pub(crate) state: RouteState,
    pub(crate) balancer: Balancer<H>,
    /// The store's version of the hosts we hold, as lars-dns said it (native dns only; 0 from a
    /// Lars dns). Shown to callers; never compared, since it orders nothing across links.
    pub(crate) version: u64,
    pub(crate) updated_at: Instant,
    /// The last request for the route (`get_host`, `get_route`, a report): the table evicts the
    /// route asked for longest ago when it needs room.
    pub(crate) asked_at: Instant,
    /// Pulls sent since the last answer: drives the backoff.
    pub(crate) attempts: u32,
    /// Sorted by host address.
    pub(crate) tallies: heapless::Vec<Tally, H>,
}

impl<const H: usize> Route<H> {
    pub(crate) fn new(
        modid: i32,
        cmdid: i32,
        policy: PolicyKind,
        lb: &crate::lb::LbConfig,
        now: Instant,
    ) -> Self {
        Route {
            modid,
            cmdid,
            state: RouteState::Pulling,
            balancer: Balancer::new(policy, lb),
            version: 0,
            updated_at: now,
            asked_at: now,
            attempts: 0,
            tallies: heapless::Vec::new(),
        }
    }

    /// The pull timeout for the next attempt: `base · 2^attempts`, at most `max`.
    pub(crate) fn pull_deadline(&self, now: Instant, base: Duration, max: Duration) -> Instant {
        let factor = 1u64 << self.attempts.min(20);
        now + base.saturating_mul(factor).min(max)
    }

    /// Records a call result; returns the calls that could not be counted (see
    /// [`Route::add_tally`]).
    pub(crate) fn tally(&mut self, host: SocketAddr, outcome: Outcome, latency_us: u32) -> u64 {
        let counts = CallCounts::one(outcome, latency_us);
        self.add_tally(Tally { host: HostAddr::from(host), counts, flushed: false })
    }

    /// Merges counts (one call's, or a leasing client's summary) into the host's tally, for as
    /// long as it takes to send them (lars-reporter may be unreachable for a while). Returns
    /// the calls that could not be counted: all of them when the tally table is full (the
    /// balancer saw them all the same), or what went past 2^32 − 1.
    pub(crate) fn add_tally(&mut self, delta: Tally) -> u64 {
        let i = match self.tallies.binary_search_by(|t| t.host.cmp(&delta.host)) {
            Ok(i) => i,
            Err(i) => {
                if self.tallies.insert(i, Tally::zero(delta.host)).is_err() {
                    return delta.calls();
                }
                i
            }
        };
        let t = &mut self.tallies[i];
        if t.flushed {
            // Already sent in the flush under way: these counts start afresh, and go out with
            // the rest of that flush (after the route's hosts) or with the next one.
            *t = Tally::zero(delta.host);
        }
        t.counts.add(&delta.counts)
    }

    /// Calls of this route's tallies not sent yet.
    pub(crate) fn unsent_calls(&self) -> u64 {
        self.tallies.iter().filter(|t| !t.flushed).map(Tally::calls).sum()
    }

    /// The next host of a flush of this route (one with results since the last flush): each
    /// host of the route in turn, with its tally or none, as the original reported every host
    /// of a route, then the tallies of hosts that left the route. `None` when done; the route's
    /// flushed tallies are then gone.
    pub(crate) fn next_flushed(&mut self, cursor: &mut FlushCursor) -> Option<Tally> {
        use crate::lb::Balance;
        while cursor.host < self.balancer.len() {
            let i = cursor.host;
            cursor.host += 1;
            let Some(host) = self.balancer.host(i) else { continue };
            let addr = HostAddr::from(host.addr);
            match self.tallies.binary_search_by(|t| t.host.cmp(&addr)) {
                Ok(at) if self.tallies[at].flushed => continue,
                Ok(at) => {
                    self.tallies[at].flushed = true;
                    return Some(self.tallies[at]);
                }
                Err(_) => return Some(Tally::zero(addr)),
            }
        }
        while let Some(tally) = self.tallies.get_mut(cursor.tally) {
            cursor.tally += 1;
            if !tally.flushed {
                tally.flushed = true;
                return Some(*tally);
            }
        }
        self.tallies.retain(|t| !t.flushed);
        *cursor = FlushCursor::default();
        None
    }

    pub(crate) fn host_stats(&self, tally: &Tally) -> HostStats {
        use crate::lb::Balance;
        let mut stats = HostStats::empty(self.modid, self.cmdid, tally.host.into());
        tally.counts.write_into(&mut stats);
        stats.overloaded = self.balancer.is_overloaded(tally.host.into());
        stats
    }
}

/// The table key of a route: modid in the high half, cmdid in the low half.
pub(crate) fn route_key(modid: i32, cmdid: i32) -> u64 {
    (u64::from(modid as u32) << 32) | u64::from(cmdid as u32)
}

/// Copies the `offered` hosts of `all` into `out`; when there are more than `out` holds, keeps
/// the ones that rank lowest for `salt`, a subset that stays the same across updates and that
/// differs between agents of different salts. Returns how many were kept, in address order.
pub(crate) fn subset<const H: usize>(
    out: &mut [WeightedHost; H],
    all: impl Iterator<Item = WeightedHost>,
    offered: usize,
    salt: u64,
) -> usize {
    if H == 0 {
        return 0;
    }
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
