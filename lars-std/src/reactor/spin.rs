//! The adaptive wait: whether an event loop that has run out of work busy-polls for a moment
//! before it sleeps, decided by a pure state machine from what the loop has seen.
//!
//! # Why
//!
//! On these VMs a core that goes idle is halted (the guest does not halt-poll), and waking it
//! again costs tens of microseconds, more than the work of a request. A caller with one request
//! in flight sends its next request a few microseconds after our reply, and would pay that wake
//! on every request: a short busy-poll keeps the core awake across the gap. Spinning is harmful
//! when requests come sparsely (the spin is wasted) and when another thread needs the core,
//! which on two cores shared with the callers is often the very caller being waited for. A
//! fixed 30 µs spin, measured, made the quiet single caller 2.8× faster and everything else
//! slower (two callers 0.72×, one core busy 0.60–0.76×). And where the cores are busy anyway
//! (other processes runnable), sleeping costs no halt and a spin only adds its probes: the echo
//! bench on a machine loaded by builds ran its closed loop at half the rate when it spun.
//! Whether spinning pays is therefore measured, not assumed; hence these rules.
//!
//! # Rules
//!
//! - **Only if it pays.** The loop runs in trials of [`SpinConfig::trial_idles`] idle periods
//!   (and [`SpinConfig::trial_min`] at least, [`SpinConfig::trial_max`] at most), each either
//!   spinning (by the rules below) or not, and measures each trial's wall time per request
//!   served (which the loop's user reports), the inverse of its throughput. It spins in the
//!   trials that follow when spinning cost at most [`SpinConfig::spin_gain_percent`] % of what
//!   blocking did (and, once spinning, as long as it costs less), and tries the other way
//!   again after a run of trials that doubles while the choice holds, up to
//!   [`SpinConfig::max_exploit_trials`]. A trial with little work in it (under one request per
//!   two idle periods) decides nothing. Requests, not IO events: a loop that sleeps finds more
//!   requests per event when it wakes, and would look slower per event than it is.
//! - **Only where a core would idle.** Sleeping halts a core only if nothing else wants it.
//!   The loop samples the number of runnable threads besides its own (`/proc/loadavg`) every
//!   [`SpinConfig::load_every`]; while their average fills every core, it does not spin at all:
//!   a wake-up costs no halt then, and a spin would take a core that another thread needs.
//! - **Dense only.** Spin only after `streak` returns from idle in a row each found work within
//!   [`SpinConfig::dense_gap`] of going idle. A spin that ends empty doubles the streak needed
//!   (up to [`SpinConfig::max_streak`]); a spin that catches work halves it.
//! - **Short.** A spin lasts [`SpinConfig::window`] at most, and never past the loop's own
//!   deadline (a timer, the caller's `max_wait`); one cut short by that deadline counts neither
//!   way.
//! - **Never against another thread.** Between probes the spinning thread yields its core, so a
//!   runnable thread there runs first. A step between two probes longer than
//!   [`SpinConfig::preempted_step`] means the core was taken: another thread needed it. Spinning
//!   then stops for a back-off, [`SpinConfig::backoff_min`] at first, doubling when it happens
//!   again within [`SpinConfig::backoff_max`] of the last time, up to `backoff_max`.
//! - **Bounded waste.** Spin time that caught nothing is capped at
//!   [`SpinConfig::waste_per_sec`] per second.
//!
//! The loop ([`super::EventLoop`]) probes, yields and measures; everything it decides is here,
//! unit-tested with synthetic timestamps.

use lars_core::time::{Duration, Instant};

/// The adaptive wait's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinConfig {
    /// The longest one spin lasts.
    pub window: Duration,
    /// Work found within this long of going idle (by a spin, or by a blocking wait, whose
    /// figure includes the wake-up) counts as dense.
    pub dense_gap: Duration,
    /// Dense returns in a row needed before the first spin, and after a spin that caught work.
    pub min_streak: u32,
    /// The most dense returns in a row that empty spins can make the next spin wait for.
    pub max_streak: u32,
    /// A step between two probes longer than this means another thread had the core.
    pub preempted_step: Duration,
    /// The first back-off after the core was taken.
    pub backoff_min: Duration,
    /// The longest back-off, and how soon after a back-off the core must be taken again for
    /// the next to double.
    pub backoff_max: Duration,
    /// Spin time that caught nothing, at most, per second.
    pub waste_per_sec: Duration,
    /// Idle periods in a trial, at least.
    pub trial_idles: u32,
    /// A trial's shortest and longest wall time.
    pub trial_min: Duration,
    /// See `trial_min`.
    pub trial_max: Duration,
    /// Spinning is chosen when its cost per request is at most this percentage of blocking's.
    pub spin_gain_percent: u64,
    /// The most trials the chosen way runs before the other is tried again.
    pub max_exploit_trials: u32,
    /// How often the loop samples how many other threads are runnable.
    pub load_every: Duration,
}

impl Default for SpinConfig {
    /// The figures measured on the 2-core VMs: the gap a closed-loop caller leaves after a reply
    /// is 5–30 µs when its core is awake, and a core taken by a runnable thread comes back after
    /// a scheduler slice (0.75 ms or more). An uncontended spin's probe steps take a few µs, but
    /// now and then one takes tens or hundreds (an interrupt, the host): at 50 µs such steps
    /// paused spinning so often on a quiet machine that it caught a fifth of the requests.
    fn default() -> SpinConfig {
        SpinConfig {
            window: Duration::from_micros(100),
            dense_gap: Duration::from_micros(200),
            min_streak: 2,
            max_streak: 64,
            preempted_step: Duration::from_micros(500),
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
            waste_per_sec: Duration::from_millis(100),
            trial_idles: 256,
            trial_min: Duration::from_millis(10),
            trial_max: Duration::from_millis(100),
            spin_gain_percent: 90,
            max_exploit_trials: 32,
            load_every: Duration::from_millis(5),
        }
    }
}

/// How a spin ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpinEnd {
    /// Work arrived.
    Caught,
    /// The window passed with nothing.
    Missed,
    /// The loop's own deadline came first.
    Cut,
    /// A step between two probes took longer than [`SpinConfig::preempted_step`].
    Preempted,
}

/// What the adaptive wait has done, for counters and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpinStats {
    /// Trials run spinning, and not.
    pub spin_trials: u64,
    /// See `spin_trials`.
    pub block_trials: u64,
    /// Spins that caught work.
    pub caught: u64,
    /// Spins that ran their window out.
    pub missed: u64,
    /// Spins stopped because another thread took the core.
    pub preempted: u64,
    /// Load samples that found the other runnable threads filling every core, on average.
    pub crowded_samples: u64,
}

/// The adaptive wait's state. Feed it what the loop saw ([`SpinPolicy::handle_woken`],
/// [`SpinPolicy::handle_spin`]); ask it before each wait ([`SpinPolicy::poll_spin`]).
#[derive(Debug, Clone)]
pub struct SpinPolicy {
    config: SpinConfig,
    /// Dense returns from idle in a row.
    streak: u32,
    /// Dense returns in a row needed before spinning.
    needed: u32,
    /// No spinning before this.
    paused_until: Instant,
    /// The last back-off's length (zero before the first).
    backoff: Duration,
    /// The second that waste is counted in, and the waste so far in it.
    waste_since: Instant,
    wasted: Duration,
    /// The trial under way.
    trial: Trial,
    /// What each way cost, in ns of wall time per request served, [blocking, spinning].
    cost: [Option<u64>; 2],
    /// The way chosen from the last comparison.
    prefer_spin: bool,
    /// Runnable threads besides the loop's, averaged over samples (in 1/16), and the cores.
    others_runnable_16ths: Option<u64>,
    cpus: u64,
    next_load_sample: Instant,
    /// Trials of the chosen way left before the other is tried, and how many the last run had.
    exploit_left: u32,
    exploit_run: u32,
    stats: SpinStats,
}

/// One trial: spinning or not, since when, and what it has seen.
#[derive(Debug, Clone, Copy)]
struct Trial {
    spin: bool,
    started: Option<Instant>,
    idles: u32,
    work: u64,
}

impl SpinPolicy {
    /// A policy that has seen nothing yet (it blocks until work comes densely).
    pub fn new(config: SpinConfig) -> SpinPolicy {
        SpinPolicy {
            config,
            streak: 0,
            needed: config.min_streak,
            paused_until: Instant::ZERO,
            backoff: Duration::ZERO,
            waste_since: Instant::ZERO,
            wasted: Duration::ZERO,
            trial: Trial { spin: false, started: None, idles: 0, work: 0 },
            cost: [None, None],
            prefer_spin: false,
            others_runnable_16ths: None,
            cpus: 1,
            next_load_sample: Instant::ZERO,
            exploit_left: 0,
            exploit_run: 1,
            stats: SpinStats::default(),
        }
    }

    /// Whether the trials so far chose spinning.
    pub fn prefers_spin(&self) -> bool {
        self.prefer_spin
    }

    /// Whether the loop should sample the load now (then call [`SpinPolicy::handle_load`]).
    pub fn load_due(&self, now: Instant) -> bool {
        now >= self.next_load_sample
    }

    /// At `now`, `others` threads besides the loop's were runnable on a machine of `cpus`
    /// cores (or the count could not be read: `None`, which never blocks spinning).
    pub fn handle_load(&mut self, now: Instant, others: Option<u64>, cpus: u64) {
        self.next_load_sample = now + self.config.load_every;
        self.cpus = cpus.max(1);
        let Some(others) = others else { return };
        let sample = others.saturating_mul(16);
        // An average over the last few samples (each weighs a quarter): one sample is a
        // moment's snapshot, which a caller between two requests tips either way.
        self.others_runnable_16ths =
            Some(self.others_runnable_16ths.map_or(sample, |avg| avg - avg / 4 + sample / 4));
        if self.crowded() {
            self.stats.crowded_samples += 1;
        }
    }

    /// Whether the other runnable threads fill every core, on average.
    pub fn crowded(&self) -> bool {
        self.others_runnable_16ths.is_some_and(|avg| avg >= self.cpus.saturating_mul(16))
    }

    /// `count` requests were served at `now` (what the trials measure throughput in).
    pub fn handle_work(&mut self, now: Instant, count: usize) {
        self.trial.started.get_or_insert(now);
        self.trial.work = self.trial.work.saturating_add(count as u64);
    }

    /// An idle period ended at `now` (with work or not). Ends the trial when it has run its
    /// course and picks the next.
    pub fn handle_idle_end(&mut self, now: Instant) {
        let started = *self.trial.started.get_or_insert(now);
        self.trial.idles = self.trial.idles.saturating_add(1);
        let elapsed = now.saturating_since(started);
        let complete = self.trial.idles >= self.config.trial_idles && elapsed >= self.config.trial_min;
        if !complete && elapsed < self.config.trial_max {
            return;
        }
        let trial = self.trial;
        if trial.spin {
            self.stats.spin_trials += 1;
        } else {
            self.stats.block_trials += 1;
        }
        let informative = trial.work.saturating_mul(2) >= u64::from(trial.idles);
        if informative {
            let cost = elapsed.as_micros().saturating_mul(1000) / trial.work.max(1);
            let slot = &mut self.cost[usize::from(trial.spin)];
            *slot = Some(slot.map_or(cost, |old| old / 2 + cost / 2));
        }
        let explored = trial.spin != self.prefer_spin;
        if explored && let [Some(block), Some(spin)] = self.cost {
            let chose_spin = if self.prefer_spin {
                spin < block
            } else {
                spin.saturating_mul(100) <= block.saturating_mul(self.config.spin_gain_percent)
            };
            self.exploit_run = if chose_spin == self.prefer_spin {
                self.exploit_run.saturating_mul(2).min(self.config.max_exploit_trials)
            } else {
                1
            };
            self.prefer_spin = chose_spin;
            self.exploit_left = self.exploit_run;
        } else if !explored {
            self.exploit_left = self.exploit_left.saturating_sub(1);
        }
        let other_unknown = self.cost[usize::from(!self.prefer_spin)].is_none();
        let spin_next = if (self.exploit_left == 0 || other_unknown) && informative {
            !self.prefer_spin
        } else {
            self.prefer_spin
        };
        self.trial = Trial { spin: spin_next, started: Some(now), idles: 0, work: 0 };
    }

    /// The parameters.
    pub fn config(&self) -> &SpinConfig {
        &self.config
    }

    /// What it has done.
    pub fn stats(&self) -> SpinStats {
        self.stats
    }

    /// How long to busy-poll from `now`, the loop having run out of work, before it blocks; or
    /// `None` to block at once. Call before every wait that would block.
    pub fn poll_spin(&mut self, now: Instant) -> Option<Duration> {
        if !self.trial.spin || self.crowded() || now < self.paused_until || self.streak < self.needed {
            return None;
        }
        if now.saturating_since(self.waste_since) >= Duration::from_secs(1) {
            self.waste_since = now;
            self.wasted = Duration::ZERO;
        }
        let left = self.config.waste_per_sec.as_micros().saturating_sub(self.wasted.as_micros());
        if left == 0 {
            return None;
        }
        Some(Duration::from_micros(self.config.window.as_micros().min(left)))
    }

    /// A blocking wait that began at `idle_since` returned work at `woke`.
    pub fn handle_woken(&mut self, idle_since: Instant, woke: Instant) {
        if woke.saturating_since(idle_since) <= self.config.dense_gap {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.streak = 0;
        }
    }

    /// Whether a step of `step` between two probes of a spin means the core was taken.
    pub fn is_preempted(&self, step: Duration) -> bool {
        step > self.config.preempted_step
    }

    /// A spin that began at `started` ended at `ended`, as `end` says.
    pub fn handle_spin(&mut self, started: Instant, ended: Instant, end: SpinEnd) {
        match end {
            SpinEnd::Caught => {
                self.stats.caught += 1;
                self.streak = self.streak.saturating_add(1);
                self.needed = (self.needed / 2).max(self.config.min_streak);
            }
            SpinEnd::Missed => {
                self.stats.missed += 1;
                self.streak = 0;
                self.needed = self.needed.saturating_mul(2).min(self.config.max_streak);
                self.wasted = self.wasted + ended.saturating_since(started);
            }
            SpinEnd::Cut => {}
            SpinEnd::Preempted => {
                self.stats.preempted += 1;
                self.streak = 0;
                // Taken again soon after the last back-off ended: the contention persists.
                let recent = ended.saturating_since(self.paused_until) <= self.config.backoff_max;
                self.backoff = if recent && self.backoff > Duration::ZERO {
                    Duration::from_micros(
                        self.backoff.saturating_mul(2).as_micros().min(self.config.backoff_max.as_micros()),
                    )
                } else {
                    self.config.backoff_min
                };
                self.paused_until = ended + self.backoff;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(micros: u64) -> Instant {
        Instant::from_micros(micros)
    }

    fn d(micros: u64) -> Duration {
        Duration::from_micros(micros)
    }

    /// A policy in a trial that spins (trials never end in the tests of the other rules, which
    /// call no `handle_idle_end`).
    fn in_spin_trial() -> SpinPolicy {
        let mut policy = SpinPolicy::new(SpinConfig::default());
        policy.trial.spin = true;
        policy
    }

    /// A policy already spinning: two dense wakes at `t` µs.
    fn spinning(t: u64) -> SpinPolicy {
        let mut policy = in_spin_trial();
        policy.handle_woken(us(t), us(t + 20));
        policy.handle_woken(us(t + 40), us(t + 60));
        assert_eq!(policy.poll_spin(us(t + 80)), Some(d(100)));
        policy
    }

    #[test]
    fn blocks_until_work_comes_densely() {
        let mut policy = in_spin_trial();
        assert_eq!(policy.poll_spin(us(0)), None, "nothing seen yet");
        policy.handle_woken(us(0), us(150));
        assert_eq!(policy.poll_spin(us(200)), None, "one dense wake is not a streak");
        policy.handle_woken(us(200), us(5_000));
        policy.handle_woken(us(5_100), us(5_200));
        assert_eq!(policy.poll_spin(us(5_300)), None, "a sparse wake breaks the streak");
        policy.handle_woken(us(5_300), us(5_400));
        assert_eq!(policy.poll_spin(us(5_500)), Some(d(100)));
    }

    #[test]
    fn a_caught_spin_keeps_spinning() {
        let mut policy = spinning(0);
        for round in 0..1000u64 {
            let t = 1_000 + round * 50;
            assert_eq!(policy.poll_spin(us(t)), Some(d(100)));
            policy.handle_spin(us(t), us(t + 15), SpinEnd::Caught);
        }
        assert_eq!(policy.stats(), SpinStats { caught: 1000, ..SpinStats::default() });
    }

    #[test]
    fn an_empty_spin_raises_the_streak_needed_and_a_caught_one_lowers_it() {
        let mut policy = spinning(0);
        policy.handle_spin(us(100), us(200), SpinEnd::Missed);
        assert_eq!(policy.poll_spin(us(300)), None, "an empty spin ends the streak");
        let mut t = 300;
        for _ in 0..3 {
            policy.handle_woken(us(t), us(t + 10));
            t += 20;
            assert_eq!(policy.poll_spin(us(t)), None, "4 dense wakes are needed now");
        }
        policy.handle_woken(us(t), us(t + 10));
        assert_eq!(policy.poll_spin(us(t + 20)), Some(d(100)));
        policy.handle_spin(us(t + 20), us(t + 30), SpinEnd::Caught);
        policy.handle_spin(us(t + 40), us(t + 140), SpinEnd::Missed);
        // Caught halved 4 to 2; missed doubled it again to 4.
        for i in 0..4 {
            assert_eq!(policy.poll_spin(us(t + 200 + i * 20)), None);
            policy.handle_woken(us(t + 200 + i * 20), us(t + 210 + i * 20));
        }
        assert!(policy.poll_spin(us(t + 300)).is_some());
    }

    #[test]
    fn the_streak_needed_is_capped() {
        let mut policy = spinning(0);
        let mut t = 1_000;
        for _ in 0..20 {
            // Become dense again however many wakes it takes, then miss.
            while policy.poll_spin(us(t)).is_none() {
                policy.handle_woken(us(t), us(t + 10));
                t += 20;
            }
            policy.handle_spin(us(t), us(t + 1), SpinEnd::Missed);
            t += 1_000_000; // a new second: waste never limits this test
        }
        let mut wakes = 0;
        while policy.poll_spin(us(t)).is_none() {
            policy.handle_woken(us(t), us(t + 10));
            t += 20;
            wakes += 1;
        }
        assert_eq!(wakes, 64);
    }

    #[test]
    fn a_cut_spin_counts_neither_way() {
        let mut policy = spinning(0);
        policy.handle_spin(us(100), us(130), SpinEnd::Cut);
        assert_eq!(policy.poll_spin(us(140)), Some(d(100)));
        assert_eq!(policy.stats(), SpinStats::default());
    }

    #[test]
    fn a_taken_core_stops_spinning_for_a_backoff_that_doubles_when_it_recurs() {
        let mut policy = spinning(0);
        assert!(!policy.is_preempted(d(500)));
        assert!(policy.is_preempted(d(501)));
        policy.handle_spin(us(100), us(3_100), SpinEnd::Preempted);
        let back = |policy: &mut SpinPolicy, at: u64| {
            policy.handle_woken(us(at), us(at + 10));
            policy.handle_woken(us(at + 20), us(at + 30));
        };
        back(&mut policy, 3_200);
        assert_eq!(policy.poll_spin(us(13_099)), None, "10 ms back-off");
        assert!(policy.poll_spin(us(13_100)).is_some());
        policy.handle_spin(us(13_100), us(14_000), SpinEnd::Preempted);
        back(&mut policy, 14_100);
        assert_eq!(policy.poll_spin(us(33_999)), None, "20 ms: it recurred soon after the last");
        assert!(policy.poll_spin(us(34_000)).is_some());
        // Keeps doubling, up to a second.
        let mut t = 34_000;
        for _ in 0..10 {
            policy.handle_spin(us(t), us(t + 100), SpinEnd::Preempted);
            back(&mut policy, t + 200);
            let mut resume = t + 100;
            while policy.poll_spin(us(resume)).is_none() {
                resume += 1_000;
            }
            assert!(resume - (t + 100) <= 1_001_000);
            t = resume;
        }
        let start = t;
        policy.handle_spin(us(start), us(start + 100), SpinEnd::Preempted);
        back(&mut policy, start + 200);
        assert_eq!(policy.poll_spin(us(start + 100 + 999_999)), None);
        assert!(policy.poll_spin(us(start + 100 + 1_000_000)).is_some());
    }

    #[test]
    fn a_taking_long_after_the_last_starts_the_backoff_over() {
        let mut policy = spinning(0);
        policy.handle_spin(us(100), us(200), SpinEnd::Preempted);
        policy.handle_spin(us(20_000), us(20_100), SpinEnd::Preempted); // 20 ms now
        policy.handle_spin(us(3_000_000), us(3_000_100), SpinEnd::Preempted);
        policy.handle_woken(us(3_000_200), us(3_000_210));
        policy.handle_woken(us(3_000_220), us(3_000_230));
        assert!(policy.poll_spin(us(3_010_100)).is_some(), "back to 10 ms");
        assert_eq!(policy.stats().preempted, 3);
    }

    #[test]
    fn waste_is_capped_per_second() {
        let mut policy = spinning(0);
        let mut t = 1_000;
        let mut spun = 0;
        // Every spin misses; dense wakes between them keep asking for more.
        loop {
            while policy.poll_spin(us(t)).is_none() && policy.streak < policy.needed {
                policy.handle_woken(us(t), us(t + 10));
                t += 20;
            }
            let Some(window) = policy.poll_spin(us(t)) else { break };
            policy.handle_spin(us(t), us(t) + window, SpinEnd::Missed);
            spun += window.as_micros();
            t += window.as_micros();
            policy.needed = 2; // as if caught spins had lowered it again
        }
        assert_eq!(spun, 100_000, "100 ms of empty spins in the second");
        assert!(t < 1_000_000);
        policy.handle_woken(us(1_100_000), us(1_100_010));
        policy.handle_woken(us(1_100_020), us(1_100_030));
        assert_eq!(policy.poll_spin(us(1_100_040)), Some(d(100)), "a new second");
    }

    #[test]
    fn the_last_window_of_a_second_is_what_the_budget_leaves() {
        let mut policy = spinning(0);
        policy.handle_spin(us(100), us(100_070), SpinEnd::Missed);
        policy.handle_woken(us(100_100), us(100_110));
        policy.handle_woken(us(100_120), us(100_130));
        policy.needed = 2;
        assert_eq!(policy.poll_spin(us(100_140)), Some(d(30)));
    }
    /// Runs one trial from `t` µs: `idles` idle periods, one request each, `per_event` µs apart.
    /// Returns when it ended.
    fn run_trial(policy: &mut SpinPolicy, t: u64, idles: u32, per_event: u64) -> u64 {
        let mut now = t;
        for _ in 0..idles {
            now += per_event;
            policy.handle_work(us(now), 1);
            policy.handle_idle_end(us(now));
        }
        now
    }

    fn spins_in_this_trial(policy: &mut SpinPolicy, t: u64) -> bool {
        policy.handle_woken(us(t), us(t + 1));
        policy.handle_woken(us(t + 2), us(t + 3));
        let spins = policy.poll_spin(us(t + 4)).is_some();
        policy.streak = 0;
        spins
    }

    #[test]
    fn a_trial_of_each_way_first_then_the_cheaper_one() {
        let mut policy = SpinPolicy::new(SpinConfig::default());
        assert!(!spins_in_this_trial(&mut policy, 0), "the first trial blocks");
        // 256 idle periods at 50 µs each: 12.8 ms, so the trial ends with its 256th.
        let t = run_trial(&mut policy, 0, 256, 50);
        assert!(spins_in_this_trial(&mut policy, t), "then a trial spins");
        let t = run_trial(&mut policy, t, 256, 40);
        assert!(policy.prefers_spin(), "40 µs per request is 80 % of 50");
        assert!(spins_in_this_trial(&mut policy, t));
        assert_eq!(policy.stats().spin_trials, 1);
        assert_eq!(policy.stats().block_trials, 1);
    }

    #[test]
    fn spinning_must_gain_a_tenth_to_be_chosen() {
        let mut policy = SpinPolicy::new(SpinConfig::default());
        let t = run_trial(&mut policy, 0, 256, 50);
        let t = run_trial(&mut policy, t, 256, 46);
        assert!(!policy.prefers_spin(), "46 is 92 % of 50");
        assert!(!spins_in_this_trial(&mut policy, t));
    }

    #[test]
    fn the_other_way_is_tried_again_after_a_run_that_doubles_while_the_choice_holds() {
        let mut policy = SpinPolicy::new(SpinConfig::default());
        let mut t = run_trial(&mut policy, 0, 256, 50);
        t = run_trial(&mut policy, t, 256, 40); // spin chosen; a run of 1
        let mut runs = Vec::new();
        for _ in 0..7 {
            let mut run = 0;
            while spins_in_this_trial(&mut policy, t) {
                t = run_trial(&mut policy, t, 256, 40);
                run += 1;
            }
            runs.push(run);
            t = run_trial(&mut policy, t, 256, 50); // blocking tried again, and still worse
            assert!(policy.prefers_spin());
        }
        assert_eq!(runs, [1, 2, 4, 8, 16, 32, 32]);
    }

    #[test]
    fn spinning_that_stops_paying_is_dropped_and_the_run_starts_over() {
        let mut policy = SpinPolicy::new(SpinConfig::default());
        let mut t = run_trial(&mut policy, 0, 256, 50);
        t = run_trial(&mut policy, t, 256, 40);
        assert!(policy.prefers_spin());
        // Spinning becomes expensive (the cores got busy): its estimate rises trial by trial
        // (each trial weighs half), and the next comparison drops it.
        t = run_trial(&mut policy, t, 256, 100);
        assert!(!spins_in_this_trial(&mut policy, t), "blocking is tried after the run of 1");
        t = run_trial(&mut policy, t, 256, 50);
        assert!(!policy.prefers_spin(), "spinning's 70 µs (40 and 100, halved) is not under 50");
        assert!(!spins_in_this_trial(&mut policy, t));
        t = run_trial(&mut policy, t, 256, 50);
        assert!(spins_in_this_trial(&mut policy, t), "spinning is tried again after a run of 1");
    }

    #[test]
    fn once_spinning_it_keeps_spinning_while_spinning_costs_less() {
        let mut policy = SpinPolicy::new(SpinConfig::default());
        let mut t = run_trial(&mut policy, 0, 256, 50);
        t = run_trial(&mut policy, t, 256, 40);
        t = run_trial(&mut policy, t, 256, 48); // spinning's estimate: 44
        t = run_trial(&mut policy, t, 256, 50); // blocking's: 50
        assert!(policy.prefers_spin(), "44 < 50, though not a tenth less");
        assert!(spins_in_this_trial(&mut policy, t));
    }

    #[test]
    fn a_trial_with_little_work_decides_nothing() {
        let mut policy = SpinPolicy::new(SpinConfig::default());
        // Idle periods that end without work (timers): 100 ms of them, one request in all.
        policy.handle_work(us(0), 1);
        let mut t = 0;
        while policy.stats().block_trials == 0 {
            t += 1_000;
            policy.handle_idle_end(us(t));
        }
        assert_eq!(t, 100_000, "a trial ends after 100 ms at most");
        assert!(!spins_in_this_trial(&mut policy, t), "no spinning trial follows a trial with no work");
        assert_eq!(policy.cost, [None, None]);
    }
    #[test]
    fn no_spinning_while_other_threads_fill_the_cores() {
        let mut policy = spinning(0);
        assert!(policy.load_due(us(100)));
        policy.handle_load(us(100), Some(2), 2);
        assert!(!policy.load_due(us(5_099)));
        assert!(policy.load_due(us(5_100)));
        assert!(policy.crowded());
        assert_eq!(policy.poll_spin(us(200)), None);
        // One sample of an idle core weighs a quarter: 2 → 1.5, below 2 cores.
        policy.handle_load(us(5_100), Some(0), 2);
        assert!(!policy.crowded());
        assert_eq!(policy.poll_spin(us(5_200)), Some(d(100)));
        // On average one other thread runs: a core would idle; three keep both busy.
        for i in 0..20 {
            policy.handle_load(us(10_000 + i * 5_000), Some(i % 3), 2);
        }
        assert!(!policy.crowded());
        for i in 0..20 {
            policy.handle_load(us(200_000 + i * 5_000), Some(3), 2);
        }
        assert!(policy.crowded());
        policy.handle_load(us(400_000), None, 2);
        assert!(policy.crowded(), "a failed read keeps the last average");
        let mut unread = spinning(0);
        unread.handle_load(us(100), None, 2);
        assert!(!unread.crowded(), "never read: no reason to hold back");
    }
}
