//! The Lars idle/overload policy: the original agent's algorithm, with its defects fixed.
//!
//! Hosts live on two lists, idle and overloaded. Picks rotate through the idle list; every
//! `probe_num + 1`th pick probes the overloaded list instead, so an overloaded host gets the odd
//! call that can prove it healthy. When every host is overloaded, picks answer
//! [`Pick::Overloaded`] except on probe turns. Reports move hosts between the lists:
//! - idle → overloaded when the virtual error rate `verr / (vsucc + verr)` exceeds `err_rate`,
//!   or after `contin_err_limit` failures in a row. A fresh idle host starts at `vsucc =
//!   init_succ_cnt`, so with the defaults it takes 15 failures in a row, or 21 failures
//!   without a success (21/201 > 0.1, 20/200 is not).
//! - overloaded → idle when `vsucc / (vsucc + verr)` exceeds `succ_rate` (from `verr =
//!   init_err_cnt`: 6 successes), or after `contin_succ_limit` successes in a row.
//! - On a report that changes nothing, the time checks run: an idle host whose window
//!   (`idle_timeout`) has passed is overloaded if its real error rate in the window reached
//!   `window_err_rate`, else its window restarts; an overloaded host is forgiven after
//!   `overload_timeout`.
//!
//! Fixed from the original (see the reference's D-A-3, D-A-4, D-A-5, D-A-10): every counter and
//! timestamp starts initialised (a new host's window starts when it joins), removed hosts leave
//! the index as well as the lists, list moves are O(1) (circular lists linked by index), and an
//! empty route answers [`Pick::NoHosts`] instead of touching an empty list.

use core::net::SocketAddr;

use super::{
    Balance, Change, HostAddr, HostIndex, NewHosts, Pick, Reason, Rng, StateChange, UpdateError,
    slow_start_admits,
};
use crate::time::{Duration, Instant};
use crate::wire::native::{Outcome, WeightedHost};

/// A rate such as `err_rate`, in parts per million, so that threshold tests are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate(u32);

impl Rate {
    /// `ppm` parts per million.
    pub const fn from_ppm(ppm: u32) -> Rate {
        Rate(ppm)
    }

    /// The rate nearest to `fraction` (clamped to 0..=1), as written in a config file.
    pub fn from_fraction(fraction: f64) -> Rate {
        let clamped = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
        Rate((clamped * 1_000_000.0 + 0.5) as u32)
    }

    /// Parts per million.
    pub const fn ppm(self) -> u32 {
        self.0
    }

    /// Whether `part / whole > self`, exactly.
    fn exceeded_by(self, part: u32, whole: u64) -> bool {
        u64::from(part) * 1_000_000 > u64::from(self.0) * whole
    }

    /// Whether `part / whole >= self`, exactly.
    fn reached_by(self, part: u32, whole: u64) -> bool {
        u64::from(part) * 1_000_000 >= u64::from(self.0) * whole
    }
}

/// The Lars policy's parameters (`[loadbalance]` in the agent's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LarsConfig {
    /// Idle picks between two probes of the overloaded list.
    pub probe_num: u32,
    /// `vsucc` of a fresh or recovered idle host.
    pub init_succ_cnt: u32,
    /// `verr` of a newly overloaded host.
    pub init_err_cnt: u32,
    /// An idle host whose virtual error rate exceeds this is overloaded.
    pub err_rate: Rate,
    /// An overloaded host whose virtual success rate exceeds this recovers.
    pub succ_rate: Rate,
    /// Successes in a row that bring an overloaded host back.
    pub contin_succ_limit: u32,
    /// Failures in a row that overload an idle host.
    pub contin_err_limit: u32,
    /// Real error rate over an idle window at which the host is overloaded.
    pub window_err_rate: Rate,
    /// Length of an idle host's window.
    pub idle_timeout: Duration,
    /// Time after which an overloaded host is forgiven.
    pub overload_timeout: Duration,
}

impl Default for LarsConfig {
    /// The shipped `lars_lb_agent.conf` values (not the original's code defaults, D-A-2).
    fn default() -> Self {
        LarsConfig {
            probe_num: 10,
            init_succ_cnt: 180,
            init_err_cnt: 5,
            err_rate: Rate::from_ppm(100_000),
            succ_rate: Rate::from_ppm(500_000),
            contin_succ_limit: 15,
            contin_err_limit: 15,
            window_err_rate: Rate::from_ppm(700_000),
            idle_timeout: Duration::from_secs(15),
            overload_timeout: Duration::from_secs(15),
        }
    }
}

/// One host's state, as the original's `host_info`, plus its list links.
#[derive(Debug, Clone, Copy)]
struct Host {
    addr: HostAddr,
    weight: u32,
    /// Virtual counters: they drive the state changes and are reset by them.
    vsucc: u32,
    verr: u32,
    /// Real counters over the current window.
    rsucc: u32,
    rerr: u32,
    contin_succ: u32,
    contin_err: u32,
    /// Calls that leasing clients balanced themselves, over the current window: reported with
    /// the real counters, never used to decide.
    #[cfg(feature = "leases")]
    leased: (u32, u32),
    overloaded: bool,
    /// Overloaded, and no call to it has come back since (its next report is the first probe's).
    unprobed: bool,
    /// Joined or recovered, and its slow start not yet seen to end.
    ramping: bool,
    /// When the host entered its current state (idle or overloaded), or last reset its idle
    /// window. The original kept separate idle and overload timestamps, always set together.
    since: Instant,
    /// When the host joined or last recovered, for slow start.
    up_since: Instant,
    prev: u16,
    next: u16,
}

impl Host {
    fn new(host: WeightedHost, now: Instant, config: &LarsConfig) -> Host {
        Host {
            addr: host.addr.into(),
            weight: host.weight,
            vsucc: config.init_succ_cnt,
            verr: 0,
            rsucc: 0,
            rerr: 0,
            contin_succ: 0,
            contin_err: 0,
            #[cfg(feature = "leases")]
            leased: (0, 0),
            overloaded: false,
            unprobed: false,
            ramping: false,
            since: now,
            up_since: now,
            prev: 0,
            next: 0,
        }
    }

    fn set_idle(&mut self, now: Instant, config: &LarsConfig) {
        *self = Host {
            up_since: self.up_since,
            ramping: self.ramping,
            prev: self.prev,
            next: self.next,
            ..Host::new(self.as_weighted(), now, config)
        };
    }

    fn set_overload(&mut self, now: Instant, config: &LarsConfig) {
        self.set_idle(now, config);
        self.vsucc = 0;
        self.verr = config.init_err_cnt;
        self.overloaded = true;
        self.unprobed = true;
    }

    /// Back to idle from overloaded: its slow start begins again.
    fn recover(&mut self, now: Instant, config: &LarsConfig, ramp: bool) {
        self.set_idle(now, config);
        self.up_since = now;
        self.ramping = ramp;
    }

    fn as_weighted(&self) -> WeightedHost {
        WeightedHost { addr: self.addr.into(), weight: self.weight }
    }

    /// The real error rate over the window reached `window_err_rate`.
    fn window_failed(&self, config: &LarsConfig) -> bool {
        let calls = u64::from(self.rsucc) + u64::from(self.rerr);
        calls != 0 && config.window_err_rate.reached_by(self.rerr, calls)
    }
}

/// A circular list threaded through `Host::prev`/`next`; `head` is the front, its `prev` the back.
#[derive(Debug, Clone, Copy)]
struct List {
    head: Option<u16>,
}

impl List {
    const EMPTY: List = List { head: None };
}

/// The Lars idle/overload balancer for routes of up to `H` hosts.
pub struct Lars<const H: usize> {
    config: LarsConfig,
    slow_start: Duration,
    hosts: heapless::Vec<Host, H>,
    index: HostIndex<H>,
    idle: List,
    overload: List,
    /// Picks since the last probe (the original's `_access_cnt`, D-A-4: now initialised).
    access_cnt: u32,
}

impl<const H: usize> Lars<H> {
    /// An empty balancer.
    pub const fn new(config: LarsConfig, slow_start: Duration) -> Self {
        Lars {
            config,
            slow_start,
            hosts: heapless::Vec::new(),
            index: HostIndex::new(),
            idle: List::EMPTY,
            overload: List::EMPTY,
            access_cnt: 0,
        }
    }

    fn list_mut(&mut self, overloaded: bool) -> &mut List {
        if overloaded { &mut self.overload } else { &mut self.idle }
    }

    fn push_back(&mut self, i: u16) {
        let overloaded = self.hosts[usize::from(i)].overloaded;
        match self.list_mut(overloaded).head {
            None => {
                let host = &mut self.hosts[usize::from(i)];
                (host.prev, host.next) = (i, i);
                self.list_mut(overloaded).head = Some(i);
            }
            Some(head) => {
                let tail = self.hosts[usize::from(head)].prev;
                self.hosts[usize::from(tail)].next = i;
                self.hosts[usize::from(head)].prev = i;
                let host = &mut self.hosts[usize::from(i)];
                (host.prev, host.next) = (tail, head);
            }
        }
    }

    fn unlink(&mut self, i: u16) {
        let Host { prev, next, overloaded, .. } = self.hosts[usize::from(i)];
        let list = self.list_mut(overloaded);
        if next == i {
            list.head = None;
            return;
        }
        if list.head == Some(i) {
            list.head = Some(next);
        }
        self.hosts[usize::from(prev)].next = next;
        self.hosts[usize::from(next)].prev = prev;
    }

    /// Takes the front of a list and rotates it to the back: round robin within the list.
    fn take_front(&mut self, overloaded: bool) -> Option<u16> {
        let head = self.list_mut(overloaded).head?;
        let next = self.hosts[usize::from(head)].next;
        self.list_mut(overloaded).head = Some(next);
        Some(head)
    }

    /// Takes the next idle host, skipping hosts that slow start holds back (at most one lap).
    fn take_idle(&mut self, now: Instant, rng: &mut Rng) -> Option<u16> {
        let first = self.take_front(false)?;
        if self.slow_start == Duration::ZERO {
            return Some(first);
        }
        let mut candidate = first;
        loop {
            let since = self.hosts[usize::from(candidate)].up_since;
            if slow_start_admits(now, since, self.slow_start, rng) {
                return Some(candidate);
            }
            candidate = self.take_front(false)?;
            if candidate == first {
                return Some(first);
            }
        }
    }

    /// Moves host `i` (after a state change of `overloaded`) to the back of its new list.
    fn relist(&mut self, i: u16, was_overloaded: bool) {
        let now_overloaded = self.hosts[usize::from(i)].overloaded;
        self.hosts[usize::from(i)].overloaded = was_overloaded;
        self.unlink(i);
        self.hosts[usize::from(i)].overloaded = now_overloaded;
        self.push_back(i);
    }

    /// Removes host `i`, moving the last host into its slot.
    fn remove(&mut self, i: u16) {
        self.unlink(i);
        let last = (self.hosts.len() - 1) as u16;
        self.hosts.swap_remove(usize::from(i));
        if i == last {
            return;
        }
        // The host that was `last` now sits at `i`: repoint its neighbours and its list head.
        let Host { prev, next, overloaded, .. } = self.hosts[usize::from(i)];
        if next == last {
            let host = &mut self.hosts[usize::from(i)];
            (host.prev, host.next) = (i, i);
        } else {
            self.hosts[usize::from(prev)].next = i;
            self.hosts[usize::from(next)].prev = i;
        }
        let list = self.list_mut(overloaded);
        if list.head == Some(last) {
            list.head = Some(i);
        }
    }

    fn find(&self, addr: SocketAddr) -> Option<u16> {
        self.index.find(addr, |i| self.hosts[i].addr.into()).map(|i| i as u16)
    }

    fn rebuild_index(&mut self) {
        let hosts = &self.hosts;
        self.index.rebuild(hosts.len(), |i| hosts[i].addr.into());
    }

    /// Picks since the last probe.
    pub fn access_count(&self) -> u32 {
        self.access_cnt
    }

    /// The idle hosts, front (next to be picked) first.
    pub fn idle_hosts(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.walk(self.idle)
    }

    /// The overloaded hosts, front (next to be probed) first.
    pub fn overloaded_hosts(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.walk(self.overload)
    }

    fn walk(&self, list: List) -> impl Iterator<Item = SocketAddr> + '_ {
        let mut cursor = list.head;
        let head = list.head;
        core::iter::from_fn(move || {
            let i = cursor?;
            let host = &self.hosts[usize::from(i)];
            cursor = Some(host.next).filter(|&n| Some(n) != head);
            Some(host.addr.into())
        })
    }

    /// The counters of `addr`: `(vsucc, verr, rsucc, rerr, contin_succ, contin_err)`.
    pub fn counters(&self, addr: SocketAddr) -> Option<[u32; 6]> {
        let h = &self.hosts[usize::from(self.find(addr)?)];
        Some([h.vsucc, h.verr, h.rsucc, h.rerr, h.contin_succ, h.contin_err])
    }
}

impl<const H: usize> Balance for Lars<H> {
    fn update(&mut self, now: Instant, hosts: &[WeightedHost]) -> Result<(), UpdateError> {
        let update = NewHosts::<H>::new(hosts)?;
        let mut i = 0;
        while i < self.hosts.len() {
            if update.contains(self.hosts[i].addr.into()) {
                i += 1;
            } else {
                self.remove(i as u16);
            }
        }
        self.rebuild_index();
        for host in &update.hosts {
            match self.find(host.addr) {
                Some(i) => self.hosts[usize::from(i)].weight = host.weight,
                None => {
                    let i = self.hosts.len() as u16;
                    // Fits: the update holds at most `H` distinct hosts and the stayers are among them.
                    let _ = self.hosts.push(Host {
                        ramping: self.slow_start != Duration::ZERO,
                        ..Host::new(*host, now, &self.config)
                    });
                    self.push_back(i);
                }
            }
        }
        self.rebuild_index();
        Ok(())
    }

    fn pick(&mut self, now: Instant, _key: Option<u64>, rng: &mut Rng) -> Pick {
        let probe_turn = self.access_cnt >= self.config.probe_num;
        let chosen = match (self.idle.head, self.overload.head) {
            (None, None) => return Pick::NoHosts,
            (None, Some(_)) if !probe_turn => {
                self.access_cnt += 1;
                return Pick::Overloaded;
            }
            (_, Some(_)) if probe_turn => {
                self.access_cnt = 0;
                self.take_front(true)
            }
            (Some(_), None) => self.take_idle(now, rng),
            _ => {
                self.access_cnt += 1;
                self.take_idle(now, rng)
            }
        };
        chosen.map_or(Pick::NoHosts, |i| Pick::Host(self.hosts[usize::from(i)].addr.into()))
    }

    fn report(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        outcome: Outcome,
        _latency_us: u32,
    ) -> Option<StateChange> {
        let i = self.find(addr)?;
        let config = self.config;
        let ramp = self.slow_start != Duration::ZERO;
        let host = &mut self.hosts[usize::from(i)];
        let success = outcome == Outcome::Ok;
        if success {
            host.vsucc = host.vsucc.saturating_add(1);
            host.rsucc = host.rsucc.saturating_add(1);
            host.contin_succ = host.contin_succ.saturating_add(1);
            host.contin_err = 0;
        } else {
            host.verr = host.verr.saturating_add(1);
            host.rerr = host.rerr.saturating_add(1);
            host.contin_err = host.contin_err.saturating_add(1);
            host.contin_succ = 0;
        }
        let calls = u64::from(host.vsucc) + u64::from(host.verr);
        let whole = calls.min(u64::from(u32::MAX)) as u32;
        let secs = |since: Instant| {
            (now.saturating_since(since).as_micros() / 1_000_000).min(u64::from(u32::MAX)) as u32
        };
        if !host.overloaded && !success {
            let reason = if host.contin_err >= config.contin_err_limit {
                Some(Reason::ConsecutiveFailures { count: host.contin_err, limit: config.contin_err_limit })
            } else if config.err_rate.exceeded_by(host.verr, calls) {
                Some(Reason::ErrorRate { part: host.verr, whole, limit_ppm: config.err_rate.ppm() })
            } else {
                None
            };
            if let Some(reason) = reason {
                host.set_overload(now, &config);
                self.relist(i, false);
                return Some(StateChange { change: Change::Overloaded, reason });
            }
        } else if host.overloaded && success {
            let reason = if host.contin_succ >= config.contin_succ_limit {
                Some(Reason::ConsecutiveSuccesses {
                    count: host.contin_succ,
                    limit: config.contin_succ_limit,
                })
            } else if config.succ_rate.exceeded_by(host.vsucc, calls) {
                Some(Reason::SuccessRate { part: host.vsucc, whole, limit_ppm: config.succ_rate.ppm() })
            } else {
                None
            };
            if let Some(reason) = reason {
                host.recover(now, &config, ramp);
                self.relist(i, true);
                return Some(StateChange { change: Change::Readmitted, reason });
            }
        }
        if !host.overloaded && now.saturating_since(host.since) >= config.idle_timeout {
            if host.window_failed(&config) {
                let reason = Reason::WindowErrorRate {
                    part: host.rerr,
                    whole: host.rsucc.saturating_add(host.rerr),
                    limit_ppm: config.window_err_rate.ppm(),
                };
                host.set_overload(now, &config);
                self.relist(i, false);
                return Some(StateChange { change: Change::Overloaded, reason });
            }
            host.set_idle(now, &config);
        } else if host.overloaded && now.saturating_since(host.since) >= config.overload_timeout {
            let reason = Reason::OverloadTimeout { secs: secs(host.since) };
            host.recover(now, &config, ramp);
            self.relist(i, true);
            return Some(StateChange { change: Change::Forgiven, reason });
        }
        if host.overloaded && host.unprobed {
            host.unprobed = false;
            return Some(StateChange {
                change: Change::Probed,
                reason: Reason::Probe { ok: success, secs: secs(host.since) },
            });
        }
        if host.ramping && now.saturating_since(host.up_since) >= self.slow_start {
            host.ramping = false;
            let secs = (self.slow_start.as_micros() / 1_000_000).min(u64::from(u32::MAX)) as u32;
            return Some(StateChange { change: Change::SlowStartDone, reason: Reason::SlowStart { secs } });
        }
        None
    }

    fn len(&self) -> usize {
        self.hosts.len()
    }

    fn host(&self, i: usize) -> Option<WeightedHost> {
        self.hosts.get(i).map(Host::as_weighted)
    }

    fn is_overloaded(&self, addr: SocketAddr) -> bool {
        self.find(addr).is_some_and(|i| self.hosts[usize::from(i)].overloaded)
    }

    fn window(&self, addr: SocketAddr) -> Option<(u32, u32)> {
        let h = &self.hosts[usize::from(self.find(addr)?)];
        #[cfg(feature = "leases")]
        return Some((h.rsucc.saturating_add(h.leased.0), h.rerr.saturating_add(h.leased.1)));
        #[cfg(not(feature = "leases"))]
        Some((h.rsucc, h.rerr))
    }

    #[cfg(feature = "leases")]
    fn count_leased(&mut self, addr: SocketAddr, succ: u32, err: u32) {
        if let Some(i) = self.find(addr) {
            let leased = &mut self.hosts[usize::from(i)].leased;
            *leased = (leased.0.saturating_add(succ), leased.1.saturating_add(err));
        }
    }
}

#[cfg(test)]
mod tests;
