//! Tests of the Lars policy: the reference's worked thresholds, the probe cadence, and a
//! differential test against a plain model of the original algorithm.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::vec::Vec;

use super::*;

fn addr(last: u8) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 80))
}

fn hosts(lasts: &[u8]) -> Vec<WeightedHost> {
    lasts.iter().map(|&l| WeightedHost { addr: addr(l), weight: 1 }).collect()
}

fn lars(config: LarsConfig, lasts: &[u8]) -> Lars<16> {
    let mut lb = Lars::new(config, Duration::ZERO);
    lb.update(Instant::ZERO, &hosts(lasts)).unwrap();
    lb
}

fn t(secs: u64) -> Instant {
    Instant::ZERO + Duration::from_secs(secs)
}

#[test]
fn fifteen_failures_in_a_row_overload_a_fresh_host() {
    let mut lb = lars(LarsConfig::default(), &[1, 2]);
    for _ in 0..14 {
        lb.report(t(1), addr(1), Outcome::Fail, 0);
    }
    assert!(!lb.is_overloaded(addr(1)));
    lb.report(t(1), addr(1), Outcome::Overload, 0);
    assert!(lb.is_overloaded(addr(1)));
    assert_eq!(lb.counters(addr(1)), Some([0, 5, 0, 0, 0, 0]), "set_overload resets to verr = init_err_cnt");
    assert_eq!(lb.overloaded_hosts().collect::<Vec<_>>(), [addr(1)]);
    assert_eq!(lb.idle_hosts().collect::<Vec<_>>(), [addr(2)]);
}

#[test]
fn error_rate_threshold_is_strict() {
    let config = LarsConfig { contin_err_limit: 1000, ..LarsConfig::default() };
    let mut lb = lars(config, &[1]);
    for _ in 0..20 {
        lb.report(t(1), addr(1), Outcome::Fail, 0);
    }
    assert!(!lb.is_overloaded(addr(1)), "20/200 is not above 0.1");
    lb.report(t(1), addr(1), Outcome::Fail, 0);
    assert!(lb.is_overloaded(addr(1)), "21/201 is above 0.1");
}

#[test]
fn six_successes_bring_an_overloaded_host_back() {
    let mut lb = lars(LarsConfig::default(), &[1]);
    for _ in 0..15 {
        lb.report(t(1), addr(1), Outcome::Fail, 0);
    }
    assert!(lb.is_overloaded(addr(1)));
    for _ in 0..5 {
        lb.report(t(2), addr(1), Outcome::Ok, 0);
    }
    assert!(lb.is_overloaded(addr(1)), "5/10 is not above 0.5");
    lb.report(t(2), addr(1), Outcome::Ok, 0);
    assert!(!lb.is_overloaded(addr(1)), "6/11 is above 0.5");
    assert_eq!(lb.counters(addr(1)), Some([180, 0, 0, 0, 0, 0]));
}

#[test]
fn probe_cadence_is_ten_idle_picks_then_one_probe() {
    let mut lb = lars(LarsConfig::default(), &[1, 2]);
    for _ in 0..15 {
        lb.report(t(1), addr(2), Outcome::Fail, 0);
    }
    let mut rng = Rng::new(1);
    let picks: Vec<_> = (0..22).map(|_| lb.pick(t(1), None, &mut rng)).collect();
    let probes: Vec<_> =
        picks.iter().enumerate().filter(|(_, p)| **p == Pick::Host(addr(2))).map(|(i, _)| i).collect();
    assert_eq!(probes, [10, 21]);
    assert!(picks.iter().all(|p| matches!(p, Pick::Host(_))));
}

#[test]
fn all_overloaded_answers_overload_except_on_probe_turns() {
    let mut lb = lars(LarsConfig::default(), &[1]);
    for _ in 0..15 {
        lb.report(t(1), addr(1), Outcome::Fail, 0);
    }
    let mut rng = Rng::new(1);
    let picks: Vec<_> = (0..11).map(|_| lb.pick(t(1), None, &mut rng)).collect();
    assert!(picks[..10].iter().all(|p| *p == Pick::Overloaded));
    assert_eq!(picks[10], Pick::Host(addr(1)));
}

#[test]
fn timeouts_forgive_and_window_checks_overload() {
    let mut lb = lars(LarsConfig::default(), &[1, 2]);
    for _ in 0..15 {
        lb.report(t(1), addr(1), Outcome::Fail, 0);
    }
    // A failure at 15 s after being marked: no success transition, so the timeout forgives.
    lb.report(t(16), addr(1), Outcome::Fail, 0);
    assert!(!lb.is_overloaded(addr(1)));
    // Host 2: 3 successes, 7 failures (not in a row, rate 7/190 < 0.1) in its window, then a
    // report 15 s after it joined: 7/10 >= 0.7 overloads it.
    for outcome in [Outcome::Fail, Outcome::Ok].repeat(3).into_iter().chain([Outcome::Fail; 4]) {
        lb.report(t(5), addr(2), outcome, 0);
    }
    assert!(!lb.is_overloaded(addr(2)));
    lb.report(t(15), addr(2), Outcome::Fail, 0);
    assert!(lb.is_overloaded(addr(2)), "window error rate 8/11 reached 0.7");
}

#[test]
fn a_new_host_is_not_judged_on_an_uninitialised_window() {
    // D-A-5: with idle_ts left at 0 the original overloaded a brand-new host on its first failure.
    let mut lb = Lars::<4>::new(LarsConfig::default(), Duration::ZERO);
    lb.update(t(1000), &hosts(&[1])).unwrap();
    lb.report(t(1000), addr(1), Outcome::Fail, 0);
    assert!(!lb.is_overloaded(addr(1)));
}

#[test]
fn removed_hosts_leave_lists_and_index_and_can_come_back() {
    let mut lb = lars(LarsConfig::default(), &[1, 2, 3, 4]);
    for _ in 0..15 {
        lb.report(t(1), addr(2), Outcome::Fail, 0);
    }
    lb.update(t(2), &hosts(&[4, 3])).unwrap();
    assert_eq!(lb.len(), 2);
    assert_eq!(lb.idle_hosts().collect::<Vec<_>>(), [addr(3), addr(4)]);
    assert_eq!(lb.overloaded_hosts().count(), 0);
    lb.report(t(2), addr(2), Outcome::Fail, 0); // gone: ignored, no use-after-free (D-A-3)
    assert_eq!(lb.counters(addr(2)), None);
    lb.update(t(3), &hosts(&[2, 3, 4])).unwrap();
    assert_eq!(lb.counters(addr(2)), Some([180, 0, 0, 0, 0, 0]), "a returning host starts fresh");
    assert_eq!(lb.idle_hosts().collect::<Vec<_>>(), [addr(3), addr(4), addr(2)]);
}

#[test]
fn empty_route_and_capacity() {
    let mut lb = Lars::<2>::new(LarsConfig::default(), Duration::ZERO);
    let mut rng = Rng::new(1);
    assert_eq!(lb.pick(t(0), None, &mut rng), Pick::NoHosts);
    lb.update(t(0), &hosts(&[1, 2])).unwrap();
    assert_eq!(lb.update(t(0), &hosts(&[1, 2, 3])), Err(UpdateError::OverCapacity { hosts: 3, capacity: 2 }));
    assert_eq!(lb.len(), 2, "a refused update changes nothing");
    lb.update(t(0), &hosts(&[1, 1, 2])).unwrap_err();
    lb.update(t(0), &hosts(&[])).unwrap();
    assert_eq!(lb.pick(t(0), None, &mut rng), Pick::NoHosts);
}

#[test]
fn slow_start_ramps_a_new_host() {
    let mut lb = Lars::<4>::new(LarsConfig::default(), Duration::from_secs(10));
    lb.update(Instant::ZERO, &hosts(&[1])).unwrap();
    lb.update(t(100), &hosts(&[1, 2])).unwrap();
    let mut rng = Rng::new(7);
    let share = |lb: &mut Lars<4>, now: Instant, rng: &mut Rng| {
        (0..2000).filter(|_| lb.pick(now, None, rng) == Pick::Host(addr(2))).count()
    };
    let early = share(&mut lb, t(101), &mut rng);
    let later = share(&mut lb, t(108), &mut rng);
    let done = share(&mut lb, t(120), &mut rng);
    assert!(early < 300, "10% into the ramp, {early} of 2000");
    assert!(later > early * 3, "{later} vs {early}");
    assert_eq!(done, 1000, "after the window, plain round robin");
}

#[test]
fn slow_start_ramps_a_recovered_host() {
    let mut lb = Lars::<4>::new(LarsConfig::default(), Duration::from_secs(10));
    lb.update(Instant::ZERO, &hosts(&[1, 2])).unwrap();
    for _ in 0..15 {
        lb.report(t(50), addr(2), Outcome::Fail, 0);
    }
    for _ in 0..6 {
        lb.report(t(100), addr(2), Outcome::Ok, 0);
    }
    assert!(!lb.is_overloaded(addr(2)));
    let mut rng = Rng::new(3);
    let early = (0..2000).filter(|_| lb.pick(t(101), None, &mut rng) == Pick::Host(addr(2))).count();
    assert!(early < 300, "a host recovered 1 s ago gets about a tenth of its share: {early} of 2000");
}

/// The original algorithm (reference §7.6) written as plainly as possible, with the defects the
/// real policy fixes fixed the same way: initialised counters and timestamps, removal from the
/// map, and no pick from an empty route.
struct Model {
    /// How often each transition happened: overloaded by error rate, by error streak, by the
    /// idle window; recovered by success rate, by success streak, by timeout.
    causes: [usize; 6],
    config: LarsConfig,
    hosts: Vec<ModelHost>,
    idle: VecDeque<SocketAddr>,
    overload: VecDeque<SocketAddr>,
    access_cnt: u32,
}

#[derive(Clone)]
struct ModelHost {
    addr: SocketAddr,
    vsucc: u32,
    verr: u32,
    rsucc: u32,
    rerr: u32,
    contin_succ: u32,
    contin_err: u32,
    overload: bool,
    idle_ts: Instant,
    overload_ts: Instant,
}

impl Model {
    fn host(&mut self, addr: SocketAddr) -> Option<&mut ModelHost> {
        self.hosts.iter_mut().find(|h| h.addr == addr)
    }

    fn update(&mut self, now: Instant, hosts: &[WeightedHost]) {
        for h in hosts {
            if self.hosts.iter().all(|m| m.addr != h.addr) {
                self.hosts.push(ModelHost {
                    addr: h.addr,
                    vsucc: self.config.init_succ_cnt,
                    verr: 0,
                    rsucc: 0,
                    rerr: 0,
                    contin_succ: 0,
                    contin_err: 0,
                    overload: false,
                    idle_ts: now,
                    overload_ts: now,
                });
                self.idle.push_back(h.addr);
            }
        }
        let keep = |a: &SocketAddr| hosts.iter().any(|h| h.addr == *a);
        self.hosts.retain(|m| keep(&m.addr));
        self.idle.retain(keep);
        self.overload.retain(keep);
    }

    fn take(list: &mut VecDeque<SocketAddr>) -> Pick {
        let front = list.pop_front().unwrap();
        list.push_back(front);
        Pick::Host(front)
    }

    fn pick(&mut self) -> Pick {
        if self.idle.is_empty() {
            if self.overload.is_empty() {
                return Pick::NoHosts;
            }
            if self.access_cnt >= self.config.probe_num {
                self.access_cnt = 0;
                return Self::take(&mut self.overload);
            }
            self.access_cnt += 1;
            return Pick::Overloaded;
        }
        if self.overload.is_empty() {
            return Self::take(&mut self.idle);
        }
        if self.access_cnt >= self.config.probe_num {
            self.access_cnt = 0;
            Self::take(&mut self.overload)
        } else {
            self.access_cnt += 1;
            Self::take(&mut self.idle)
        }
    }

    fn set_idle(h: &mut ModelHost, c: &LarsConfig, now: Instant) {
        (h.vsucc, h.verr, h.rsucc, h.rerr, h.contin_succ, h.contin_err) = (c.init_succ_cnt, 0, 0, 0, 0, 0);
        h.overload = false;
        h.idle_ts = now;
    }

    fn set_overload(h: &mut ModelHost, c: &LarsConfig, now: Instant) {
        (h.vsucc, h.verr, h.rsucc, h.rerr, h.contin_succ, h.contin_err) = (0, c.init_err_cnt, 0, 0, 0, 0);
        h.overload = true;
        h.overload_ts = now;
    }

    fn move_to(&mut self, addr: SocketAddr, overload: bool) {
        let (from, to) = if overload {
            (&mut self.idle, &mut self.overload)
        } else {
            (&mut self.overload, &mut self.idle)
        };
        from.retain(|a| *a != addr);
        to.push_back(addr);
    }

    fn report(&mut self, now: Instant, addr: SocketAddr, ok: bool) {
        let c = self.config;
        let Some(h) = self.host(addr) else { return };
        if ok {
            h.vsucc += 1;
            h.rsucc += 1;
            h.contin_succ += 1;
            h.contin_err = 0;
        } else {
            h.verr += 1;
            h.rerr += 1;
            h.contin_err += 1;
            h.contin_succ = 0;
        }
        let rate = |part: u32, whole: u32| part as f64 / whole as f64;
        let ppm = |r: Rate| r.ppm() as f64 / 1e6;
        if !h.overload && !ok {
            let by_rate = rate(h.verr, h.vsucc + h.verr) > ppm(c.err_rate);
            let by_streak = h.contin_err >= c.contin_err_limit;
            if by_rate || by_streak {
                self.causes[if by_rate { 0 } else { 1 }] += 1;
                let h = self.host(addr).unwrap();
                Self::set_overload(h, &c, now);
                self.move_to(addr, true);
                return;
            }
        }
        if h.overload && ok {
            let by_rate = rate(h.vsucc, h.vsucc + h.verr) > ppm(c.succ_rate);
            let by_streak = h.contin_succ >= c.contin_succ_limit;
            if by_rate || by_streak {
                self.causes[if by_rate { 3 } else { 4 }] += 1;
                let h = self.host(addr).unwrap();
                Self::set_idle(h, &c, now);
                self.move_to(addr, false);
                return;
            }
        }
        if !h.overload && now - h.idle_ts >= c.idle_timeout {
            let window = h.rsucc + h.rerr != 0 && rate(h.rerr, h.rsucc + h.rerr) >= ppm(c.window_err_rate);
            if window {
                Self::set_overload(h, &c, now);
                self.causes[2] += 1;
                self.move_to(addr, true);
            } else {
                Self::set_idle(h, &c, now);
            }
        } else if h.overload && now - h.overload_ts >= c.overload_timeout {
            Self::set_idle(h, &c, now);
            self.causes[5] += 1;
            self.move_to(addr, false);
        }
    }
}

fn assert_same_state(lb: &Lars<8>, model: &Model, context: &str) {
    assert_eq!(lb.len(), model.hosts.len(), "{context}: host count");
    assert_eq!(lb.access_count(), model.access_cnt, "{context}: access count");
    assert_eq!(lb.idle_hosts().collect::<Vec<_>>(), Vec::from(model.idle.clone()), "{context}: idle list");
    assert_eq!(
        lb.overloaded_hosts().collect::<Vec<_>>(),
        Vec::from(model.overload.clone()),
        "{context}: overload list"
    );
    for h in &model.hosts {
        let counters = [h.vsucc, h.verr, h.rsucc, h.rerr, h.contin_succ, h.contin_err];
        assert_eq!(lb.counters(h.addr), Some(counters), "{context}: counters of {}", h.addr);
        assert_eq!(lb.is_overloaded(h.addr), h.overload, "{context}: state of {}", h.addr);
    }
}

/// Agrees with the model pick for pick and state for state over 48 seeds × 5,000 random steps
/// of picks, reports, route updates and time.
#[test]
fn differential_against_the_reference_model() {
    let mut steps = 0;
    let mut seen = [0usize; 3]; // picks answered with a host, with overload, with no hosts
    let mut causes = [0usize; 6];
    for seed in 0..48u64 {
        let mut rng = Rng::new(seed);
        let mut pick_rng = Rng::new(seed);
        // Configurations where each transition gets to decide: the shipped values; short
        // timeouts; long timeouts with frequent probes and a short success streak; rates only.
        let secs = Duration::from_secs;
        let config = match seed % 4 {
            0 => LarsConfig::default(),
            1 => LarsConfig { idle_timeout: secs(6), overload_timeout: secs(4), ..LarsConfig::default() },
            2 => LarsConfig {
                probe_num: 2,
                contin_succ_limit: 3,
                overload_timeout: secs(600),
                ..LarsConfig::default()
            },
            _ => LarsConfig {
                probe_num: 3,
                contin_err_limit: 1000,
                idle_timeout: secs(600),
                overload_timeout: secs(600),
                ..LarsConfig::default()
            },
        };
        let mut lb = Lars::<8>::new(config, Duration::ZERO);
        let mut model = Model {
            causes: [0; 6],
            config,
            hosts: Vec::new(),
            idle: VecDeque::new(),
            overload: VecDeque::new(),
            access_cnt: 0,
        };
        // Per-host failure probability in percent: some hosts are bad, some flaky, some fine.
        let health = [2, 90, 100];
        let mut fail_pct: Vec<usize> = (0..10).map(|_| health[rng.below(3)]).collect();
        let mut now = Instant::ZERO;
        // Time regimes: with slow time the streak and rate thresholds decide; with fast time the
        // idle window and the overload timeout do; whole seconds (the original's clock) land
        // exactly on the timeouts.
        let time_regime = (seed / 4) % 4;
        for step in 0..5_000 {
            let context = std::format!("seed {seed} step {step}");
            match rng.below(100) {
                0..55 => {
                    let (ours, theirs) = (lb.pick(now, None, &mut pick_rng), model.pick());
                    assert_eq!(ours, theirs, "{context}: pick");
                    seen[match ours {
                        Pick::Host(_) => 0,
                        Pick::Overloaded => 1,
                        Pick::NoHosts => 2,
                    }] += 1;
                    // Most callers report on the host they were given, at once.
                    if let Pick::Host(host) = ours
                        && rng.below(10) < 8
                    {
                        let SocketAddr::V4(v4) = host else { unreachable!() };
                        let ok = rng.below(100) >= fail_pct[usize::from(v4.ip().octets()[3])];
                        let outcome =
                            if ok { Outcome::Ok } else { [Outcome::Fail, Outcome::Overload][rng.below(2)] };
                        lb.report(now, host, outcome, 0);
                        model.report(now, host, ok);
                    }
                }
                55..70 => {
                    // A report on any address, possibly one the route does not have.
                    let last = rng.below(10);
                    let host = addr(last as u8);
                    let ok = rng.below(100) >= fail_pct[last];
                    lb.report(now, host, if ok { Outcome::Ok } else { Outcome::Fail }, 0);
                    model.report(now, host, ok);
                }
                70..90 => {}
                90..92 => {
                    // Hosts fall ill and heal.
                    fail_pct[rng.below(10)] = health[rng.below(3)];
                }
                92..99 => {
                    now += match time_regime {
                        0 => Duration::from_millis(rng.below(10) as u64),
                        1 => Duration::from_millis(rng.below(300) as u64),
                        2 => Duration::from_millis(rng.below(3000) as u64),
                        _ => Duration::from_secs(rng.below(3) as u64),
                    }
                }
                _ => {
                    // Mostly small changes (so hosts live long enough to cross thresholds),
                    // sometimes a whole new host set.
                    let mut update: Vec<_> =
                        model.hosts.iter().map(|h| WeightedHost { addr: h.addr, weight: 1 }).collect();
                    match rng.below(10) {
                        0..4 => update.push(WeightedHost { addr: addr(rng.below(10) as u8), weight: 1 }),
                        4..7 if !update.is_empty() => {
                            update.remove(rng.below(update.len()));
                        }
                        7 => update.reverse(),
                        _ => {
                            let most = if rng.below(2) == 0 { 4 } else { 10 };
                            update = (0..rng.below(most))
                                .map(|_| WeightedHost { addr: addr(rng.below(10) as u8), weight: 1 })
                                .collect();
                        }
                    }
                    match lb.update(now, &update) {
                        Ok(()) => model.update(now, &update),
                        Err(UpdateError::OverCapacity { .. }) => {
                            assert!(update.len() > 8, "{context}: refused")
                        }
                    }
                }
            }
            assert_same_state(&lb, &model, &context);
            steps += 1;
        }
        for (total, n) in causes.iter_mut().zip(model.causes) {
            *total += n;
        }
    }
    std::println!(
        "picks answered with a host, overload, no hosts: {seen:?}; transitions by cause: {causes:?}"
    );
    assert!(steps >= 200_000);
    assert!(seen.iter().all(|&n| n > 200), "the trace exercises every kind of answer: {seen:?}");
    assert!(causes.iter().all(|&n| n > 20), "the trace exercises every transition: {causes:?}");
}

/// Every state change comes back from `report` with the numbers that decided it.
#[test]
fn each_state_change_says_why() {
    let mut lb = lars(LarsConfig::default(), &[1, 2]);
    let change = |change, reason| Some(StateChange { change, reason });
    for _ in 0..14 {
        assert_eq!(lb.report(t(1), addr(1), Outcome::Fail, 0), None);
    }
    assert_eq!(
        lb.report(t(1), addr(1), Outcome::Fail, 0),
        change(Change::Overloaded, Reason::ConsecutiveFailures { count: 15, limit: 15 })
    );
    // The first call back from the overloaded host is its first probe; later ones are not.
    assert_eq!(
        lb.report(t(3), addr(1), Outcome::Ok, 0),
        change(Change::Probed, Reason::Probe { ok: true, secs: 2 })
    );
    for _ in 0..4 {
        assert_eq!(lb.report(t(3), addr(1), Outcome::Ok, 0), None);
    }
    // verr starts at init_err_cnt 5: the sixth success makes 6/11 > 0.5.
    assert_eq!(
        lb.report(t(3), addr(1), Outcome::Ok, 0),
        change(Change::Readmitted, Reason::SuccessRate { part: 6, whole: 11, limit_ppm: 500_000 })
    );
    // 21 failures without a success, spread so that none is the 15th in a row: 21/201 > 0.1.
    let mut last = None;
    for i in 0..21 {
        let outcome = if i % 10 == 9 { Outcome::Overload } else { Outcome::Fail };
        if i % 14 == 13 {
            lb.report(t(4), addr(2), Outcome::Fail, 0);
        }
        last = lb.report(t(4), addr(2), outcome, 0);
        if last.is_some() {
            break;
        }
    }
    assert!(matches!(last, Some(StateChange { change: Change::Overloaded, .. })), "{last:?}");
    // Forgiven after overload_timeout (15 s).
    assert_eq!(
        lb.report(t(5), addr(2), Outcome::Fail, 0),
        change(Change::Probed, Reason::Probe { ok: false, secs: 1 })
    );
    assert_eq!(
        lb.report(t(20), addr(2), Outcome::Fail, 0),
        change(Change::Forgiven, Reason::OverloadTimeout { secs: 16 })
    );
    // An idle window (15 s) with a real error rate of 0.7 or more overloads the host.
    let mut lb = lars(LarsConfig::default(), &[1]);
    for _ in 0..6 {
        for outcome in [Outcome::Fail, Outcome::Fail, Outcome::Fail, Outcome::Ok] {
            assert_eq!(lb.report(t(1), addr(1), outcome, 0), None);
        }
    }
    let text = lb
        .report(t(16), addr(1), Outcome::Fail, 0)
        .map(|c| std::format!("{}: {}", c.change.as_str(), c.reason));
    assert_eq!(text.as_deref(), Some("overloaded: window error rate 0.76 >= 0.70 (19/25)"));
}

#[test]
fn the_end_of_slow_start_is_a_decision() {
    let mut lb = Lars::<16>::new(LarsConfig::default(), Duration::from_secs(10));
    lb.update(t(0), &hosts(&[1])).unwrap();
    assert_eq!(lb.report(t(5), addr(1), Outcome::Ok, 0), None, "still ramping");
    assert_eq!(
        lb.report(t(10), addr(1), Outcome::Ok, 0),
        Some(StateChange { change: Change::SlowStartDone, reason: Reason::SlowStart { secs: 10 } })
    );
    assert_eq!(lb.report(t(11), addr(1), Outcome::Ok, 0), None, "once");
}
