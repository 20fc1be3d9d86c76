//! Smooth weighted round robin (`lb` layer) in O(log n) per pick.
//!
//! A cycle is `W = sum(w_i)` picks, in which host `i` is picked exactly `w_i` times, as in nginx.
//! Host `i`'s `k`-th pick of a cycle has an ideal slot: it should not come before pick
//! `(k - 1) * W / w_i` (its start) and should be done by pick `k * W / w_i` (its finish). Each pick
//! goes to the host with the earliest finish among those whose start has come, ties to the lower
//! index (the "earliest eligible virtual deadline first" rule of stride schedulers). Ordering by
//! finish alone, `(n_i + 1) / w_i`, keeps the per-cycle counts but bunches a heavy host's picks
//! at the start of the cycle (weights `[19, 1 x 19]` would give the heavy host its first 18 picks
//! in a row); the start condition is what interleaves them, keeping every host within one pick
//! of its ideal share `t * w_i / W` at every point `t` of the cycle. There is always an eligible
//! host: if none were, every `n_i` would exceed `t * w_i / W`, so the `n_i` would sum to more
//! than `t`.
//!
//! Hosts not yet eligible wait in a heap ordered by start, eligible ones in a heap ordered by
//! finish; a pick moves the newly eligible across and takes the first, so it costs O(log n)
//! amortised. Counts reset when a cycle completes (O(n log n) once per `W >= n` picks) and on every
//! update. Weight 0 means drained: never picked; a route whose weights are all 0 has no hosts.
//!
//! Slow start: a picked host still in its ramp that `slow_start_admits` rejects gives up its
//! turn (its count still advances) and the next is picked, at most `len` times, the last taken
//! anyway.

use core::net::SocketAddr;

use super::{Balance, HostIndex, NewHosts, Pick, Rng, StateChange, UpdateError, slow_start_admits};
use crate::time::{Duration, Instant};
use crate::wire::native::{Outcome, WeightedHost};

/// One host, when it joined (for slow start) and its picks in the current cycle (`<= weight`).
#[derive(Debug, Clone, Copy)]
struct Slot {
    host: WeightedHost,
    since: Instant,
    count: u32,
}

/// Smooth weighted round robin over up to `H` hosts.
pub struct Weighted<const H: usize> {
    slots: heapless::Vec<Slot, H>,
    index: HostIndex<H>,
    /// Hosts with weight whose next pick has reached its start, by finish.
    ready: Heap<H>,
    /// Hosts with weight whose next pick has not reached its start, by start. Hosts that used
    /// their whole weight sit here until the cycle ends.
    waiting: Heap<H>,
    /// `W`, the sum of the weights: picks in a cycle (0: nothing to pick).
    cycle: u64,
    /// Picks made in the current cycle, `< cycle`.
    done: u64,
    slow_start: Duration,
}

impl<const H: usize> Weighted<H> {
    /// An empty route; `slow_start` is the ramp window of new hosts (zero for none).
    pub fn new(slow_start: Duration) -> Self {
        Weighted {
            slots: heapless::Vec::new(),
            index: HostIndex::new(),
            ready: Heap::new(),
            waiting: Heap::new(),
            cycle: 0,
            done: 0,
            slow_start,
        }
    }

    /// Starts a cycle: counts to zero, and every host with weight is eligible.
    fn restart_cycle(&mut self) {
        let Weighted { slots, ready, waiting, cycle, done, .. } = self;
        *done = 0;
        *cycle = 0;
        ready.clear();
        waiting.clear();
        for slot in slots.iter_mut() {
            slot.count = 0;
            *cycle = cycle.saturating_add(u64::from(slot.host.weight));
        }
        for (i, slot) in slots.iter().enumerate() {
            if slot.host.weight > 0 {
                // `i < H < u16::MAX` (checked by `HostIndex::new`).
                ready.push(i as u16, |a, b| finishes_first(slots, a, b));
            }
        }
    }

    /// Takes the next turn of the cycle: the host whose pick it is, its count advanced.
    fn next_turn(&mut self) -> Option<Slot> {
        let Weighted { slots, ready, waiting, cycle, done, .. } = self;
        while let Some(i) = waiting.peek().filter(|&i| is_eligible(slots, i, *cycle, *done)) {
            waiting.pop(|a, b| starts_first(slots, a, b));
            ready.push(i, |a, b| finishes_first(slots, a, b));
        }
        let i = ready.pop(|a, b| finishes_first(slots, a, b))?;
        let slot = slots.get_mut(usize::from(i))?;
        slot.count = slot.count.saturating_add(1);
        let turn = *slot;
        *done += 1;
        if *done >= *cycle {
            self.restart_cycle();
        } else {
            waiting.push(i, |a, b| starts_first(slots, a, b));
        }
        Some(turn)
    }
}

/// Whether host `a`'s next pick is due to finish before host `b`'s: `(n_a + 1) / w_a` against
/// `(n_b + 1) / w_b`, ties to the lower index.
fn finishes_first(slots: &[Slot], a: u16, b: u16) -> bool {
    let tag = |i: u16| slots.get(usize::from(i)).map_or((1, 0), |s| (u128::from(s.count) + 1, s.host.weight));
    let ((na, wa), (nb, wb)) = (tag(a), tag(b));
    (na * u128::from(wb), a) < (nb * u128::from(wa), b)
}

/// Whether host `a`'s next pick may start before host `b`'s: `n_a / w_a` against `n_b / w_b`,
/// ties to the lower index.
fn starts_first(slots: &[Slot], a: u16, b: u16) -> bool {
    let tag = |i: u16| slots.get(usize::from(i)).map_or((1, 0), |s| (u128::from(s.count), s.host.weight));
    let ((na, wa), (nb, wb)) = (tag(a), tag(b));
    (na * u128::from(wb), a) < (nb * u128::from(wa), b)
}

/// Whether host `i`'s next pick has reached its start once `done` picks of the cycle are made:
/// `n_i * W / w_i <= done`.
fn is_eligible(slots: &[Slot], i: u16, cycle: u64, done: u64) -> bool {
    slots.get(usize::from(i)).is_some_and(|s| {
        u128::from(s.count) * u128::from(cycle) <= u128::from(done) * u128::from(s.host.weight)
    })
}

impl<const H: usize> Balance for Weighted<H> {
    fn update(&mut self, now: Instant, hosts: &[WeightedHost]) -> Result<(), UpdateError> {
        let update = NewHosts::<H>::new(hosts)?;
        let mut slots = heapless::Vec::new();
        for &host in &update.hosts {
            let old = &self.slots;
            let old = self.index.find(host.addr, |i| old[i].host.addr).and_then(|i| old.get(i));
            let since = old.map_or(now, |slot| slot.since);
            let _ = slots.push(Slot { host, since, count: 0 }); // fits: `update` holds at most `H`
        }
        self.slots = slots;
        let slots = &self.slots;
        self.index.rebuild(slots.len(), |i| slots[i].host.addr);
        self.restart_cycle();
        Ok(())
    }

    fn pick(&mut self, now: Instant, _key: Option<u64>, rng: &mut Rng) -> Pick {
        for attempt in 1..=self.slots.len() {
            let Some(turn) = self.next_turn() else { break };
            if attempt == self.slots.len() || slow_start_admits(now, turn.since, self.slow_start, rng) {
                return Pick::Host(turn.host.addr);
            }
        }
        Pick::NoHosts
    }

    fn report(
        &mut self,
        _now: Instant,
        _addr: SocketAddr,
        _outcome: Outcome,
        _latency_us: u32,
    ) -> Option<StateChange> {
        // Weighted round robin ignores outcomes.
        None
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn host(&self, i: usize) -> Option<WeightedHost> {
        self.slots.get(i).map(|slot| slot.host)
    }
}

/// A binary min-heap of host indices, ordered by a `less` the caller passes to each operation
/// (the order lives in the slots, which the heap does not own). Keys must not change while an
/// index is in the heap.
struct Heap<const H: usize> {
    items: heapless::Vec<u16, H>,
}

impl<const H: usize> Heap<H> {
    const fn new() -> Self {
        Heap { items: heapless::Vec::new() }
    }

    fn clear(&mut self) {
        self.items.clear();
    }

    fn peek(&self) -> Option<u16> {
        self.items.first().copied()
    }

    /// Adds `item`; a full heap drops it (cannot happen: each host is in at most one heap).
    fn push(&mut self, item: u16, less: impl Fn(u16, u16) -> bool) {
        if self.items.push(item).is_err() {
            return;
        }
        let mut child = self.items.len() - 1;
        while child > 0 {
            let parent = (child - 1) / 2;
            if !less(self.items[child], self.items[parent]) {
                break;
            }
            self.items.swap(child, parent);
            child = parent;
        }
    }

    /// Removes and returns the least item.
    fn pop(&mut self, less: impl Fn(u16, u16) -> bool) -> Option<u16> {
        let last = self.items.len().checked_sub(1)?;
        self.items.swap(0, last);
        let top = self.items.pop();
        let len = self.items.len();
        let mut parent = 0;
        loop {
            let mut least = parent;
            for child in [2 * parent + 1, 2 * parent + 2] {
                if child < len && less(self.items[child], self.items[least]) {
                    least = child;
                }
            }
            if least == parent {
                return top;
            }
            self.items.swap(parent, least);
            parent = least;
        }
    }
}

#[cfg(test)]
mod tests;
