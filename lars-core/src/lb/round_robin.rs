//! Round robin (`lb` layer): the hosts of a route in turn, in update order, ignoring weights.
//!
//! O(1) per pick; reports are ignored. With slow start, a host still in its ramp window is skipped
//! unless `slow_start_admits` takes it, and a pick tries at most `len` hosts (O(n) at worst)
//! before it takes the host at the cursor anyway, so a route of only new hosts still answers.
//! An update keeps each staying host's join time and goes on from the host that was due next.

use core::net::SocketAddr;

use super::{Balance, HostIndex, NewHosts, Pick, Rng, StateChange, UpdateError, slow_start_admits};
use crate::time::{Duration, Instant};
use crate::wire::native::{Outcome, WeightedHost};

/// One host and the time it joined the route (for slow start).
#[derive(Debug, Clone, Copy)]
struct Slot {
    host: WeightedHost,
    since: Instant,
}

/// Round robin over up to `H` hosts.
pub struct RoundRobin<const H: usize> {
    slots: heapless::Vec<Slot, H>,
    index: HostIndex<H>,
    /// Position of the next host to try; always `< slots.len()` unless the route is empty.
    cursor: usize,
    slow_start: Duration,
}

impl<const H: usize> RoundRobin<H> {
    /// An empty route; `slow_start` is the ramp window of new hosts (zero for none).
    pub fn new(slow_start: Duration) -> Self {
        RoundRobin { slots: heapless::Vec::new(), index: HostIndex::new(), cursor: 0, slow_start }
    }

    /// The slot at the cursor, moving the cursor on.
    fn advance(&mut self) -> Option<Slot> {
        let slot = self.slots.get(self.cursor).copied();
        self.cursor += 1;
        if self.cursor >= self.slots.len() {
            self.cursor = 0;
        }
        slot
    }
}

impl<const H: usize> Balance for RoundRobin<H> {
    fn update(&mut self, now: Instant, hosts: &[WeightedHost]) -> Result<(), UpdateError> {
        let update = NewHosts::<H>::new(hosts)?;
        let old = &self.slots;
        let find_old = |addr| self.index.find(addr, |i| old[i].addr());
        // The rotation goes on from the host that was due next, or, if the update drops it, from
        // the first host after it (in the old order) that stays, so that an update never makes
        // the rotation skip or repeat a staying host.
        let due = (0..old.len())
            .map(|k| (self.cursor + k) % old.len())
            .find_map(|i| old.get(i).filter(|slot| update.contains(slot.addr())))
            .map(|slot| slot.addr());
        let mut slots = heapless::Vec::new();
        let mut cursor = 0;
        for (i, &host) in update.hosts.iter().enumerate() {
            let since = find_old(host.addr).and_then(|j| old.get(j)).map_or(now, |slot| slot.since);
            let _ = slots.push(Slot { host, since }); // fits: `update` holds at most `H` hosts
            if Some(host.addr) == due {
                cursor = i;
            }
        }
        self.slots = slots;
        self.cursor = cursor;
        let slots = &self.slots;
        self.index.rebuild(slots.len(), |i| slots[i].addr());
        Ok(())
    }

    fn pick(&mut self, now: Instant, _key: Option<u64>, rng: &mut Rng) -> Pick {
        if self.slow_start != Duration::ZERO {
            for _ in 0..self.slots.len() {
                let Some(slot) = self.slots.get(self.cursor) else { break };
                if slow_start_admits(now, slot.since, self.slow_start, rng) {
                    break;
                }
                // Skipped: the host gives its turn to the next one.
                self.advance();
            }
        }
        self.advance().map_or(Pick::NoHosts, |slot| Pick::Host(slot.addr()))
    }

    fn report(
        &mut self,
        _now: Instant,
        _addr: SocketAddr,
        _outcome: Outcome,
        _latency_us: u32,
    ) -> Option<StateChange> {
        // Round robin ignores outcomes.
        None
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn host(&self, i: usize) -> Option<WeightedHost> {
        self.slots.get(i).map(|slot| slot.host)
    }
}

impl Slot {
    fn addr(&self) -> SocketAddr {
        self.host.addr
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::lb::testutil::{addr, hosts};

    fn at(secs: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(secs)
    }

    fn picked(rr: &mut RoundRobin<8>, rng: &mut Rng, now: Instant) -> SocketAddr {
        match rr.pick(now, None, rng) {
            Pick::Host(addr) => addr,
            other => panic!("expected a host, got {other:?}"),
        }
    }

    #[test]
    fn empty_route_has_no_hosts() {
        let mut rr = RoundRobin::<8>::new(Duration::from_secs(5));
        let mut rng = Rng::new(1);
        assert_eq!(rr.pick(at(0), None, &mut rng), Pick::NoHosts);
        rr.update(at(0), &hosts(&[1, 2])).unwrap();
        rr.update(at(1), &[]).unwrap();
        assert_eq!(rr.pick(at(1), None, &mut rng), Pick::NoHosts);
        assert!(rr.is_empty());
    }

    /// Exact: over `k * n` picks from any starting point, each host is picked exactly `k` times.
    #[test]
    fn each_host_is_picked_equally_often() {
        let mut rng = Rng::new(7);
        for n in 1..=8u16 {
            let ids: Vec<u16> = (0..n).map(|i| i * 5 + 1).collect();
            let mut rr = RoundRobin::<8>::new(Duration::ZERO);
            rr.update(at(0), &hosts(&ids)).unwrap();
            for _ in 0..rng.below(20) {
                picked(&mut rr, &mut rng, at(0));
            }
            let k = 1 + rng.below(10);
            let mut counts = std::collections::HashMap::new();
            for _ in 0..k * usize::from(n) {
                *counts.entry(picked(&mut rr, &mut rng, at(0))).or_insert(0) += 1;
            }
            assert_eq!(counts.len(), usize::from(n));
            assert!(counts.values().all(|&c| c == k), "n={n} k={k}: {counts:?}");
        }
    }

    #[test]
    fn update_goes_on_from_the_host_due_next() {
        let mut rr = RoundRobin::<8>::new(Duration::ZERO);
        let mut rng = Rng::new(3);
        rr.update(at(0), &hosts(&[1, 2, 4, 5])).unwrap();
        assert_eq!(picked(&mut rr, &mut rng, at(0)), addr(1));
        assert_eq!(picked(&mut rr, &mut rng, at(0)), addr(2));
        // Host 4 is due; it moves in the new order and stays due.
        rr.update(at(1), &hosts(&[5, 4, 2, 1, 7])).unwrap();
        assert_eq!(picked(&mut rr, &mut rng, at(1)), addr(4));
        assert_eq!(picked(&mut rr, &mut rng, at(1)), addr(2));
        // Host 1 is due but leaves: the first staying host after it in the old order (7) is next.
        rr.update(at(2), &hosts(&[7, 5, 4])).unwrap();
        assert_eq!(picked(&mut rr, &mut rng, at(2)), addr(7));
        assert_eq!(picked(&mut rr, &mut rng, at(2)), addr(5));
    }

    #[test]
    fn stayers_keep_their_join_time() {
        let mut rr = RoundRobin::<8>::new(Duration::from_secs(10));
        rr.update(at(0), &hosts(&[1, 2])).unwrap();
        rr.update(at(5), &hosts(&[3, 2])).unwrap();
        let since: Vec<_> = rr.slots.iter().map(|s| (s.host.addr, s.since)).collect();
        assert_eq!(since, [(addr(3), at(5)), (addr(2), at(0))]);
    }

    #[test]
    fn over_capacity_update_changes_nothing() {
        let mut rr = RoundRobin::<4>::new(Duration::ZERO);
        let mut rng = Rng::new(5);
        rr.update(at(0), &hosts(&[1, 2, 4])).unwrap();
        rr.pick(at(0), None, &mut rng);
        let err = rr.update(at(1), &hosts(&[1, 2, 4, 5, 7])).unwrap_err();
        assert_eq!(err, UpdateError::OverCapacity { hosts: 5, capacity: 4 });
        let kept: Vec<_> = (0..rr.len()).filter_map(|i| rr.host(i)).collect();
        assert_eq!(kept, hosts(&[1, 2, 4]));
        assert_eq!(rr.pick(at(1), None, &mut rng), Pick::Host(addr(2)));
    }

    /// Random updates (duplicates, over capacity, weights 0 and `u32::MAX`), reports for known and
    /// unknown hosts, and time that jumps back: every pick is a host of the current route.
    #[test]
    fn picks_only_current_hosts_under_random_operations() {
        for seed in 0..6 {
            let mut rng = Rng::new(seed);
            let window = if seed % 2 == 0 { Duration::ZERO } else { Duration::from_secs(3) };
            let mut rr = RoundRobin::<8>::new(window);
            let mut current: Vec<WeightedHost> = Vec::new();
            let mut now = at(100);
            for _ in 0..5000 {
                now = if rng.below(50) == 0 {
                    at(rng.below(200) as u64)
                } else {
                    now + Duration::from_millis(7)
                };
                match rng.below(20) {
                    0 => {
                        let update: Vec<_> = (0..rng.below(11))
                            .map(|_| WeightedHost {
                                addr: addr(rng.below(12) as u16),
                                weight: [0, 1, 7, u32::MAX][rng.below(4)],
                            })
                            .collect();
                        let before: Vec<_> = (0..rr.len()).filter_map(|i| rr.host(i)).collect();
                        match rr.update(now, &update) {
                            Ok(()) => {
                                current = update.clone();
                                let mut seen = std::collections::HashSet::new();
                                current.retain(|h| seen.insert(h.addr));
                                assert!(update.len() <= 8);
                            }
                            Err(_) => assert!(update.len() > 8),
                        }
                        let after: Vec<_> = (0..rr.len()).filter_map(|i| rr.host(i)).collect();
                        assert_eq!(after, current, "before {before:?}");
                    }
                    1..=3 => {
                        let outcome = [Outcome::Ok, Outcome::Fail, Outcome::Overload][rng.below(3)];
                        rr.report(now, addr(rng.below(40) as u16), outcome, u32::MAX);
                    }
                    _ => match rr.pick(now, Some(rng.next_u64()), &mut rng) {
                        Pick::Host(a) => assert!(current.iter().any(|h| h.addr == a)),
                        Pick::NoHosts => assert!(current.is_empty()),
                        Pick::Overloaded => panic!("round robin never reports overload"),
                    },
                }
                assert!(!current.iter().any(|h| rr.is_overloaded(h.addr)));
            }
        }
    }

    /// A host joining 4 others ramps up: in each tenth of the window its share of picks is within
    /// 0.01 of `p / (4 + p)` (it takes its turn with probability `p`, the elapsed fraction), so it
    /// grows from about 1% to about 19%, and after the window it gets exactly one pick in five.
    #[test]
    fn slow_start_ramps_a_new_host_up() {
        let window = Duration::from_secs(10);
        let mut rr = RoundRobin::<8>::new(window);
        let mut rng = Rng::new(11);
        rr.update(at(0), &hosts(&[1, 2, 4, 5])).unwrap();
        rr.update(at(100), &hosts(&[1, 2, 4, 5, 7])).unwrap();
        let picks_per_tenth = 20_000;
        let mut shares = Vec::new();
        for tenth in 0..10u64 {
            let mut new = 0;
            for i in 0..picks_per_tenth {
                let now =
                    at(100) + Duration::from_micros(tenth * 1_000_000 + i * 1_000_000 / picks_per_tenth);
                new += usize::from(picked(&mut rr, &mut rng, now) == addr(7));
            }
            let share = new as f64 / picks_per_tenth as f64;
            let p = (tenth as f64 + 0.5) / 10.0;
            assert!((share - p / (4.0 + p)).abs() < 0.01, "tenth {tenth}: share {share}");
            shares.push(share);
        }
        assert!(shares.windows(2).all(|w| w[0] < w[1]), "{shares:?}");
        let after = (0..500).filter(|_| picked(&mut rr, &mut rng, at(111)) == addr(7)).count();
        assert_eq!(after, 100);
    }
}
