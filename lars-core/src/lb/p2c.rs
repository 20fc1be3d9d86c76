//! Power of two choices over a time-decayed EWMA of latency (`lb` layer).
//!
//! A pick draws two distinct hosts at random and takes the cheaper, where a host's cost is its
//! EWMA latency times `pending + 1`, `pending` being its picks not yet matched by a report
//! (capped at 1024). Counting pending calls keeps a host that just became cheap from drawing
//! every call before its reports catch up. O(1) per pick and per report.
//!
//! The EWMA decays with time, not with the number of reports: a report at `now`, `dt` after the
//! host's previous one, keeps `w = decay / (decay + dt)` of the old value (a first-order stand-in
//! for `exp(-dt / decay)`) and takes `1 - w` of the new sample. So a host's history fades over
//! about `decay` whatever its call rate, and a report in the same microsecond as the previous one
//! moves nothing. Values are fixed point with 16 fraction bits, so that small `dt`s still move
//! the average. `Fail` and `Overload` count as `max(latency, failure_penalty_us)`, which pushes
//! traffic away from failing hosts.
//!
//! Only picked hosts get reports, so a pick also fades each candidate's EWMA by
//! `decay / (decay + idle)`, `idle` being the time since its last report (as tower's `PeakEwma`
//! does): a host avoided for being slow or failing is tried again after a while, instead of
//! keeping its bad value for good.
//!
//! Weights are ignored (a weight-0 host is still picked): the cost already says how much a host
//! can take. Slow start: a candidate still in its ramp that `slow_start_admits` rejects loses to
//! the other candidate.

use core::net::SocketAddr;

use super::{Balance, HostIndex, NewHosts, Pick, Rng, StateChange, UpdateError, slow_start_admits};
use crate::time::{Duration, Instant};
use crate::wire::native::{Outcome, WeightedHost};

/// Fraction bits of the fixed-point EWMA: latencies up to `u32::MAX` µs use 48 bits of a `u64`.
const FRAC_BITS: u32 = 16;

/// The most unreported picks a host counts; more would only grow the cost past any use.
const MAX_PENDING: u16 = 1024;

/// Parameters of the P2C policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct P2cConfig {
    /// Time over which a host's latency history fades (the EWMA's time constant). Zero keeps only
    /// the last report, which then never fades.
    pub decay: Duration,
    /// The latency, in µs, that a `Fail` or `Overload` counts as at least.
    pub failure_penalty_us: u32,
    /// The latency, in µs, a new host is assumed to have before its first report.
    pub initial_latency_us: u32,
}

impl Default for P2cConfig {
    fn default() -> Self {
        P2cConfig { decay: Duration::from_secs(10), failure_penalty_us: 1_000_000, initial_latency_us: 1_000 }
    }
}

/// One host and what the policy knows of it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    host: WeightedHost,
    /// When it joined (for slow start).
    since: Instant,
    /// EWMA latency in µs, fixed point with `FRAC_BITS` fraction bits.
    ewma: u64,
    /// The latest time the EWMA was updated at (never moves back).
    last: Instant,
    /// Picks not yet matched by a report, at most `MAX_PENDING`.
    pending: u16,
}

impl Slot {
    /// The cost of one more call at `now`: the EWMA, faded by the time since the host's last
    /// report, times `pending + 1`.
    fn cost(&self, now: Instant, decay: u128) -> u128 {
        let idle = u128::from(now.saturating_since(self.last).as_micros());
        // A host that no report has reached for `idle` looks `decay / (decay + idle)` as slow,
        // so a host that once failed or was slow is tried again after a while instead of being
        // starved for good (its EWMA only changes on reports, which need picks).
        let faded = match decay {
            0 => u128::from(self.ewma),
            _ => u128::from(self.ewma) * decay / (decay + idle),
        };
        faded * (u128::from(self.pending) + 1)
    }
}

/// Power of two choices over up to `H` hosts.
pub struct P2c<const H: usize> {
    slots: heapless::Vec<Slot, H>,
    index: HostIndex<H>,
    config: P2cConfig,
    slow_start: Duration,
}

impl<const H: usize> P2c<H> {
    /// An empty route; `slow_start` is the ramp window of new hosts (zero for none).
    pub fn new(config: P2cConfig, slow_start: Duration) -> Self {
        P2c { slots: heapless::Vec::new(), index: HostIndex::new(), config, slow_start }
    }

    /// The index of the host this pick goes to.
    fn choose(&self, now: Instant, rng: &mut Rng) -> Option<usize> {
        let n = self.slots.len();
        if n < 2 {
            return (n == 1).then_some(0);
        }
        let a = rng.below(n);
        let mut b = rng.below(n - 1);
        if b >= a {
            b += 1;
        }
        let (slot_a, slot_b) = (self.slots.get(a)?, self.slots.get(b)?);
        let decay = u128::from(self.config.decay.as_micros());
        let admits_a = slow_start_admits(now, slot_a.since, self.slow_start, rng);
        let admits_b = slow_start_admits(now, slot_b.since, self.slow_start, rng);
        Some(match (admits_a, admits_b) {
            (true, false) => a,
            (false, true) => b,
            // `a` is the random one of the two, so ties need no coin.
            _ if slot_b.cost(now, decay) < slot_a.cost(now, decay) => b,
            _ => a,
        })
    }
}

impl<const H: usize> Balance for P2c<H> {
    fn update(&mut self, now: Instant, hosts: &[WeightedHost]) -> Result<(), UpdateError> {
        let update = NewHosts::<H>::new(hosts)?;
        let fresh = Slot {
            host: WeightedHost { addr: SocketAddr::from(([0, 0, 0, 0], 0)), weight: 0 },
            since: now,
            ewma: u64::from(self.config.initial_latency_us) << FRAC_BITS,
            last: now,
            pending: 0,
        };
        let mut slots = heapless::Vec::new();
        for &host in &update.hosts {
            let old = &self.slots;
            let old = self.index.find(host.addr, |i| old[i].host.addr).and_then(|i| old.get(i));
            let _ = slots.push(Slot { host, ..*old.unwrap_or(&fresh) }); // fits: at most `H`
        }
        self.slots = slots;
        let slots = &self.slots;
        self.index.rebuild(slots.len(), |i| slots[i].host.addr);
        Ok(())
    }

    fn pick(&mut self, now: Instant, _key: Option<u64>, rng: &mut Rng) -> Pick {
        let Some(slot) = self.choose(now, rng).and_then(|i| self.slots.get_mut(i)) else {
            return Pick::NoHosts;
        };
        slot.pending = slot.pending.saturating_add(1).min(MAX_PENDING);
        Pick::Host(slot.host.addr)
    }

    fn cancel_pick(&mut self, addr: SocketAddr) {
        let slots = &self.slots;
        if let Some(slot) = self.index.find(addr, |i| slots[i].host.addr).and_then(|i| self.slots.get_mut(i))
        {
            slot.pending = slot.pending.saturating_sub(1);
        }
    }

    fn report(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        outcome: Outcome,
        latency_us: u32,
    ) -> Option<StateChange> {
        let slots = &self.slots;
        let slot = self.index.find(addr, |i| slots[i].host.addr).and_then(|i| self.slots.get_mut(i))?;
        let latency = match outcome {
            Outcome::Ok => latency_us,
            Outcome::Fail | Outcome::Overload => latency_us.max(self.config.failure_penalty_us),
        };
        let sample = u128::from(latency) << FRAC_BITS;
        let dt = u128::from(now.saturating_since(slot.last).as_micros());
        let decay = u128::from(self.config.decay.as_micros());
        // (old * decay + sample * dt) / (decay + dt), rounded; at most the larger of old and
        // sample, so it fits back in a u64. Zero decay and zero dt: take the sample.
        let total = decay + dt;
        slot.ewma = match total {
            0 => sample,
            _ => (u128::from(slot.ewma) * decay + sample * dt + total / 2) / total,
        }
        .try_into()
        .unwrap_or(u64::MAX);
        slot.last = slot.last.max(now);
        slot.pending = slot.pending.saturating_sub(1);
        None
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn host(&self, i: usize) -> Option<WeightedHost> {
        self.slots.get(i).map(|slot| slot.host)
    }
}

#[cfg(test)]
mod tests;
