//! Tests of the smooth weighted round robin policy: exact cycles, smoothness, drained hosts,
//! updates and random operations.

use std::collections::HashMap;
use std::vec::Vec;

use super::*;
use crate::lb::testutil::addr;

fn weighted(weights: &[u32]) -> Vec<WeightedHost> {
    weights.iter().enumerate().map(|(i, &weight)| WeightedHost { addr: addr(i as u16), weight }).collect()
}

fn at(secs: u64) -> Instant {
    Instant::ZERO + Duration::from_secs(secs)
}

/// The index (in `hosts`) of the host picked.
fn pick_index<const H: usize>(wrr: &mut Weighted<H>, rng: &mut Rng, now: Instant) -> usize {
    match wrr.pick(now, None, rng) {
        Pick::Host(a) => (0..wrr.len()).find(|&i| wrr.host(i).unwrap().addr == a).unwrap(),
        other => panic!("expected a host, got {other:?}"),
    }
}

fn random_weights(rng: &mut Rng, n: usize) -> Vec<u32> {
    let mut weights: Vec<u32> = (0..n).map(|_| rng.below(20) as u32).collect();
    if weights.iter().all(|&w| w == 0) {
        weights[0] = 1 + rng.below(19) as u32;
    }
    weights
}

#[test]
fn empty_or_drained_route_has_no_hosts() {
    let mut wrr = Weighted::<8>::new(Duration::ZERO);
    let mut rng = Rng::new(1);
    assert_eq!(wrr.pick(at(0), None, &mut rng), Pick::NoHosts);
    wrr.update(at(0), &weighted(&[0, 0, 0])).unwrap();
    assert_eq!(wrr.len(), 3);
    assert_eq!(wrr.pick(at(0), None, &mut rng), Pick::NoHosts);
    wrr.update(at(0), &weighted(&[0, 2, 0])).unwrap();
    assert_eq!(wrr.pick(at(0), None, &mut rng), Pick::Host(addr(1)));
    wrr.update(at(0), &[]).unwrap();
    assert_eq!(wrr.pick(at(0), None, &mut rng), Pick::NoHosts);
}

/// Exact: in each of several consecutive cycles of `W = sum(w_i)` picks, host `i` is picked
/// exactly `w_i` times (weights random in `0..20`, so drained hosts are never picked).
#[test]
fn every_cycle_picks_each_host_its_weight() {
    let mut rng = Rng::new(2);
    for _ in 0..300 {
        let n = 1 + rng.below(16);
        let weights = random_weights(&mut rng, n);
        let mut wrr = Weighted::<16>::new(Duration::ZERO);
        wrr.update(at(0), &weighted(&weights)).unwrap();
        let cycle: u32 = weights.iter().sum();
        for _ in 0..3 {
            let mut counts = std::vec![0; weights.len()];
            for _ in 0..cycle {
                counts[pick_index(&mut wrr, &mut rng, at(0))] += 1;
            }
            assert_eq!(counts, weights);
        }
    }
}

/// The largest `|picks_i(t) - t * w_i / W|` over every host and every prefix `t` of one cycle,
/// in units of one pick.
fn worst_lag(weights: &[u32]) -> f64 {
    let mut wrr = Weighted::<64>::new(Duration::ZERO);
    let mut rng = Rng::new(0);
    wrr.update(at(0), &weighted(weights)).unwrap();
    let cycle: u32 = weights.iter().sum();
    let mut counts = std::vec![0u32; weights.len()];
    let mut worst = 0f64;
    for t in 1..=cycle {
        counts[pick_index(&mut wrr, &mut rng, at(0))] += 1;
        for (&n, &w) in counts.iter().zip(weights) {
            let lag = (f64::from(n) - f64::from(t) * f64::from(w) / f64::from(cycle)).abs();
            worst = worst.max(lag);
        }
    }
    worst
}

/// Smoothness: at every prefix `t` of a cycle, each host's picks stay strictly within one pick of
/// its ideal share `t * w_i / W` (measured worst over these cases: 0.998), for random weights in
/// `0..20` over up to 64 hosts, and for one heavy host among many light ones, which ordering by
/// finish alone would serve 18 times in a row (a lag of 9).
#[test]
fn picks_stay_within_one_of_the_ideal_share() {
    let mut rng = Rng::new(3);
    let mut worst = 0f64;
    for _ in 0..400 {
        let n = 1 + rng.below(64);
        let weights = random_weights(&mut rng, n);
        worst = worst.max(worst_lag(&weights));
    }
    let mut heavy = std::vec![1; 20];
    heavy[7] = 19;
    worst = worst.max(worst_lag(&heavy));
    worst = worst.max(worst_lag(&[1000, 1, 1, 1, 999, 3]));
    assert!(worst < 1.0, "worst lag {worst}");
}

#[test]
fn huge_weights_alternate() {
    let mut wrr = Weighted::<4>::new(Duration::ZERO);
    let mut rng = Rng::new(4);
    wrr.update(at(0), &weighted(&[u32::MAX, 0, u32::MAX])).unwrap();
    let picks: Vec<_> = (0..6).map(|_| pick_index(&mut wrr, &mut rng, at(0))).collect();
    assert_eq!(picks, [0, 2, 0, 2, 0, 2]);
}

/// An update starts a new cycle: with weights 3:1 the cycle pattern restarts from its head.
#[test]
fn update_restarts_the_cycle_and_keeps_join_times() {
    let mut wrr = Weighted::<4>::new(Duration::from_secs(10));
    let mut rng = Rng::new(5);
    wrr.update(at(0), &weighted(&[3, 1])).unwrap();
    let head: Vec<_> = (0..4).map(|_| pick_index(&mut wrr, &mut rng, at(20))).collect();
    pick_index(&mut wrr, &mut rng, at(20));
    wrr.update(at(30), &weighted(&[3, 1, 2])[..2]).unwrap();
    let again: Vec<_> = (0..4).map(|_| pick_index(&mut wrr, &mut rng, at(30))).collect();
    assert_eq!(head, again);
    assert_eq!(head.iter().filter(|&&i| i == 0).count(), 3);
    // Host 2 joins at 40; hosts 0 and 1 keep joining at 0.
    wrr.update(at(40), &weighted(&[3, 1, 2])).unwrap();
    let since: Vec<_> = wrr.slots.iter().map(|s| s.since).collect();
    assert_eq!(since, [at(0), at(0), at(40)]);
}

#[test]
fn over_capacity_update_changes_nothing() {
    let mut wrr = Weighted::<3>::new(Duration::ZERO);
    let mut rng = Rng::new(6);
    wrr.update(at(0), &weighted(&[2, 1])).unwrap();
    let first = pick_index(&mut wrr, &mut rng, at(0));
    let err = wrr.update(at(1), &weighted(&[1, 1, 1, 1])).unwrap_err();
    assert_eq!(err, UpdateError::OverCapacity { hosts: 4, capacity: 3 });
    assert_eq!((0..wrr.len()).map(|i| wrr.host(i).unwrap()).collect::<Vec<_>>(), weighted(&[2, 1]));
    // The cycle goes on where it was: two more picks complete it.
    let mut cycle = std::vec![first];
    cycle.extend((0..2).map(|_| pick_index(&mut wrr, &mut rng, at(1))));
    cycle.sort();
    assert_eq!(cycle, [0, 0, 1]);
}

/// Slow start: a host of weight 4 joining two of weight 4 gets, in each fifth of the window, a
/// share within 0.01 of `p / (2 + p)` (measured: 0.003), `p` being the elapsed fraction (each of
/// its turns passes with probability `1 - p`); after the window, exactly its third.
#[test]
fn slow_start_ramps_a_new_host_up() {
    let window = Duration::from_secs(10);
    let mut wrr = Weighted::<4>::new(window);
    let mut rng = Rng::new(7);
    wrr.update(at(0), &weighted(&[4, 4])).unwrap();
    wrr.update(at(100), &weighted(&[4, 4, 4])).unwrap();
    let per_fifth = 20_000u64;
    for fifth in 0..5 {
        let new = (0..per_fifth)
            .filter(|i| {
                let now = at(100) + Duration::from_micros(fifth * 2_000_000 + i * 2_000_000 / per_fifth);
                pick_index(&mut wrr, &mut rng, now) == 2
            })
            .count();
        let share = new as f64 / per_fifth as f64;
        let p = (fifth as f64 + 0.5) / 5.0;
        assert!((share - p / (2.0 + p)).abs() < 0.01, "fifth {fifth}: share {share}");
    }
    wrr.update(at(200), &weighted(&[4, 4, 4])).unwrap();
    let after = (0..300).filter(|_| pick_index(&mut wrr, &mut rng, at(200)) == 2).count();
    assert_eq!(after, 100);
}

/// Random updates (duplicates, over capacity, weights 0 and `u32::MAX`), reports for known and
/// unknown hosts, and time that jumps back: every pick is a current host of weight above 0.
#[test]
fn picks_only_current_weighted_hosts_under_random_operations() {
    for seed in 0..6 {
        let mut rng = Rng::new(seed);
        let window = if seed % 2 == 0 { Duration::ZERO } else { Duration::from_secs(3) };
        let mut wrr = Weighted::<8>::new(window);
        let mut current: HashMap<SocketAddr, u32> = HashMap::new();
        let mut now = at(100);
        for _ in 0..5000 {
            now = if rng.below(50) == 0 { at(rng.below(200) as u64) } else { now + Duration::from_millis(7) };
            match rng.below(20) {
                0 => {
                    let update: Vec<_> = (0..rng.below(11))
                        .map(|_| WeightedHost {
                            addr: addr(rng.below(12) as u16),
                            weight: [0, 1, 7, u32::MAX][rng.below(4)],
                        })
                        .collect();
                    let before: Vec<_> = (0..wrr.len()).map(|i| wrr.host(i).unwrap()).collect();
                    let mut expected = before.clone();
                    if update.len() <= 8 {
                        expected = update.clone();
                        let mut seen = std::collections::HashSet::new();
                        expected.retain(|h| seen.insert(h.addr));
                        wrr.update(now, &update).unwrap();
                    } else {
                        wrr.update(now, &update).unwrap_err();
                    }
                    let after: Vec<_> = (0..wrr.len()).map(|i| wrr.host(i).unwrap()).collect();
                    assert_eq!(after, expected);
                    current = after.iter().map(|h| (h.addr, h.weight)).collect();
                }
                1..=3 => {
                    let outcome = [Outcome::Ok, Outcome::Fail, Outcome::Overload][rng.below(3)];
                    wrr.report(now, addr(rng.below(40) as u16), outcome, u32::MAX);
                }
                _ => match wrr.pick(now, Some(rng.next_u64()), &mut rng) {
                    Pick::Host(a) => assert!(current.get(&a).is_some_and(|&w| w > 0), "{a} in {current:?}"),
                    Pick::NoHosts => assert!(current.values().all(|&w| w == 0)),
                    Pick::Overloaded => panic!("weighted round robin never reports overload"),
                },
            }
            assert!(!current.keys().any(|&a| wrr.is_overloaded(a)));
        }
    }
}
