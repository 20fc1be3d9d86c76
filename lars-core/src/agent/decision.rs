//! The decision log: every change of a host's state that the agent's balancers make, with the
//! numbers behind it, in a fixed ring of `D` entries (`agent` layer).
//!
//! A [`Decision`] is a route, a host, when, what changed and why ([`StateChange`]). The agent
//! pushes one whenever a balancer reports a change; when the ring is full the oldest entry
//! goes and is counted (`decisions_dropped`), so memory is `D × size_of::<Decision>()` however
//! fast hosts flap. A driver reads the ring with [`crate::agent::Agent::decisions`] (newest
//! last) and takes entries it has passed on with [`crate::agent::Agent::take_decisions`].
//! `D = 0` keeps no entries and only counts them: what a gateway with no RAM to spare uses.

use core::net::SocketAddr;

use crate::lb::{Change, HostAddr, Reason, StateChange};
use crate::time::Instant;

/// One host state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// When, on the driver's clock.
    pub at: Instant,
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    host: HostAddr,
    /// What changed and why.
    pub change: StateChange,
}

impl Decision {
    /// The host.
    pub fn host(&self) -> SocketAddr {
        self.host.into()
    }
}

impl core::fmt::Display for Decision {
    /// `1001/2 10.0.0.1:80 overloaded: 15 consecutive failures (limit 15)`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}/{} {} {}: {}",
            self.modid,
            self.cmdid,
            self.host(),
            self.change.change.as_str(),
            self.change.reason
        )
    }
}

const EMPTY: Decision = Decision {
    at: Instant::ZERO,
    modid: 0,
    cmdid: 0,
    host: HostAddr::UNSPECIFIED,
    change: StateChange { change: Change::Probed, reason: Reason::SlowStart { secs: 0 } },
};

/// A ring of the last `D` decisions.
#[derive(Debug, Clone)]
pub(crate) struct DecisionLog<const D: usize> {
    slots: [Decision; D],
    /// Index of the oldest entry.
    head: usize,
    len: usize,
    /// Decisions made, ever.
    pub(crate) total: u64,
    /// Decisions pushed out before they were taken.
    pub(crate) dropped: u64,
}

impl<const D: usize> DecisionLog<D> {
    pub(crate) const fn new() -> Self {
        DecisionLog { slots: [EMPTY; D], head: 0, len: 0, total: 0, dropped: 0 }
    }

    /// Adds a decision, pushing out the oldest when full.
    pub(crate) fn push(
        &mut self,
        at: Instant,
        modid: i32,
        cmdid: i32,
        host: SocketAddr,
        change: StateChange,
    ) {
        self.total += 1;
        if D == 0 {
            self.dropped += 1;
            return;
        }
        let decision = Decision { at, modid, cmdid, host: host.into(), change };
        if self.len == D {
            self.slots[self.head] = decision;
            self.head = (self.head + 1) % D;
            self.dropped += 1;
        } else {
            self.slots[(self.head + self.len) % D] = decision;
            self.len += 1;
        }
    }

    /// The entries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Decision> + '_ {
        (0..self.len).map(move |i| &self.slots[(self.head + i) % D.max(1)])
    }

    /// Forgets the `n` oldest entries (they were passed on).
    pub(crate) fn take(&mut self, n: usize) {
        let n = n.min(self.len);
        if D > 0 {
            self.head = (self.head + n) % D;
        }
        self.len -= n;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::lb::Reason;

    fn change(count: u32) -> StateChange {
        StateChange { change: Change::Overloaded, reason: Reason::ConsecutiveFailures { count, limit: 15 } }
    }

    fn counts<const D: usize>(log: &DecisionLog<D>) -> Vec<u32> {
        log.iter()
            .map(|d| match d.change.reason {
                Reason::ConsecutiveFailures { count, .. } => count,
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn the_ring_keeps_the_newest_and_counts_what_it_drops() {
        let host: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let mut log = DecisionLog::<3>::new();
        for n in 1..=5 {
            log.push(Instant::ZERO, 1001, 2, host, change(n));
        }
        assert_eq!(counts(&log), [3, 4, 5]);
        assert_eq!((log.total, log.dropped), (5, 2));
        log.take(2);
        assert_eq!(counts(&log), [5]);
        log.push(Instant::ZERO, 1001, 2, host, change(6));
        assert_eq!(counts(&log), [5, 6]);
        log.take(9);
        assert_eq!(log.len(), 0);
        let mut none = DecisionLog::<0>::new();
        none.push(Instant::ZERO, 1, 1, host, change(1));
        assert_eq!((none.len(), none.total, none.dropped), (0, 1, 1), "D = 0 only counts");
    }

    #[test]
    fn a_decision_reads_as_numbers() {
        let host: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let mut log = DecisionLog::<4>::new();
        log.push(Instant::ZERO, 1001, 2, host, change(15));
        let window = StateChange {
            change: Change::Overloaded,
            reason: Reason::WindowErrorRate { part: 18, whole: 25, limit_ppm: 700_000 },
        };
        log.push(Instant::ZERO, 1001, 2, host, window);
        let text: Vec<std::string::String> = log.iter().map(|d| std::format!("{d}")).collect();
        assert_eq!(
            text,
            [
                "1001/2 10.0.0.1:80 overloaded: 15 consecutive failures (limit 15)",
                "1001/2 10.0.0.1:80 overloaded: window error rate 0.72 >= 0.70 (18/25)",
            ]
        );
    }
}
