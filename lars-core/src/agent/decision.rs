//! The decision log: every change of a host's state that the agent's balancers make, with the
//! numbers behind it, in a fixed ring of `D` entries (`agent` layer).
//!
//! A [`Decision`] is a route, a host, when, what changed and why ([`StateChange`]). The agent
//! pushes one whenever a balancer reports a change. With each statistics flush, the decisions
//! not yet sent go to a native lars-reporter as `DecisionReport` frames (a Lars-codec reporter
//! has no message for them). When the ring is full the oldest entry goes; one that had not been
//! sent is counted (`decisions_dropped`), so memory is `D × size_of::<Decision>()` however fast
//! hosts flap. A driver reads the ring with [`crate::agent::Agent::decisions`] (oldest first).
//! `D = 0` keeps no entries and only counts them: what a gateway with no RAM to spare uses.

use core::net::SocketAddr;

use crate::lb::{Change, HostAddr, Reason, StateChange};
use crate::time::Instant;
use crate::wire::native::{
    DECISIONS_PAGE, DecisionReport, DecisionsRequest, DecisionsResponse, HostDecision, REPORT_CHUNK,
    STATS_HEAD_MAX_LEN,
};
use crate::wire::{List, MsgId, frame};

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

    /// As the wire carries it, its age counted back from `now`.
    fn as_wire(&self, now: Instant) -> HostDecision {
        let age_ms = now.saturating_since(self.at).as_micros() / 1000;
        HostDecision {
            modid: self.modid,
            cmdid: self.cmdid,
            host: self.host(),
            age_ms: age_ms.min(u64::from(u32::MAX)) as u32,
            change: self.change.change,
            reason: self.change.reason,
        }
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

const EMPTY_ENTRY: HostDecision = HostDecision {
    modid: 0,
    cmdid: 0,
    host: SocketAddr::V4(core::net::SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0)),
    age_ms: 0,
    change: Change::Probed,
    reason: Reason::SlowStart { secs: 0 },
};

const EMPTY: Decision = Decision {
    at: Instant::ZERO,
    modid: 0,
    cmdid: 0,
    host: HostAddr::UNSPECIFIED,
    change: StateChange { change: Change::Probed, reason: Reason::SlowStart { secs: 0 } },
};

/// A ring of the last `D` decisions. Its indexes are `u16` and its counters `u32` (they wrap,
/// which a Prometheus `rate` reads as a restart): a gateway's `D = 0` log costs 12 bytes.
#[derive(Debug, Clone)]
pub(crate) struct DecisionLog<const D: usize> {
    slots: [Decision; D],
    /// Index of the oldest entry.
    head: u16,
    len: u16,
    /// The newest `unsent` entries have not been sent yet.
    unsent: u16,
    /// Decisions made, ever.
    pub(crate) total: u32,
    /// Decisions pushed out before they were sent.
    pub(crate) dropped: u32,
}

impl<const D: usize> DecisionLog<D> {
    pub(crate) const fn new() -> Self {
        const { assert!(D <= u16::MAX as usize, "a decision log holds at most 65535 entries") };
        DecisionLog { slots: [EMPTY; D], head: 0, len: 0, unsent: 0, total: 0, dropped: 0 }
    }

    fn slot(&self, i: usize) -> &Decision {
        &self.slots[(usize::from(self.head) + i) % D.max(1)]
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
        self.total = self.total.wrapping_add(1);
        if D == 0 {
            self.dropped = self.dropped.wrapping_add(1);
            return;
        }
        let decision = Decision { at, modid, cmdid, host: host.into(), change };
        let (head, len) = (usize::from(self.head), usize::from(self.len));
        if len == D {
            self.slots[head] = decision;
            self.head = ((head + 1) % D) as u16;
            if usize::from(self.unsent) == D {
                self.dropped = self.dropped.wrapping_add(1); // the oldest was never sent
            } else {
                self.unsent += 1;
            }
        } else {
            self.slots[(head + len) % D] = decision;
            self.len += 1;
            self.unsent += 1;
        }
    }

    /// Writes the next `DecisionReport` frame of unsent entries into `buf` (as many as fit, at
    /// most [`REPORT_CHUNK`]), marking them sent; `None` when there is nothing to send or `buf` cannot hold
    /// one entry. Each entry's age is counted back from `now`.
    pub(crate) fn next_frame(&mut self, now: Instant, caller: u32, ts: u32, buf: &mut [u8]) -> Option<usize> {
        let room =
            buf.len().saturating_sub(frame::HEADER_LEN + STATS_HEAD_MAX_LEN) / HostDecision::MAX_ENCODED_LEN;
        let n = usize::from(self.unsent).min(room).min(REPORT_CHUNK);
        if n == 0 {
            return None;
        }
        let mut entries = [EMPTY_ENTRY; REPORT_CHUNK];
        for (entry, decision) in entries.iter_mut().zip(self.iter().skip(usize::from(self.len - self.unsent)))
        {
            *entry = decision.as_wire(now);
        }
        let body = DecisionReport { caller, ts, entries: List::from_slice(&entries[..n]) };
        let len = frame::encode(MsgId::DecisionReport, &body, buf).ok()?;
        self.unsent -= n as u16; // n <= unsent
        Some(len)
    }

    /// Writes the answer to `request` into `reply`: the newest matching entries after
    /// `request.skip` of them, at most [`DECISIONS_PAGE`], newest first.
    pub(crate) fn page(
        &self,
        now: Instant,
        request: &DecisionsRequest,
        reply: &mut [u8],
    ) -> Result<usize, crate::wire::Error> {
        let matches = |d: &&Decision| {
            request.modid.is_none_or(|m| m == d.modid) && request.cmdid.is_none_or(|c| c == d.cmdid)
        };
        let mut entries = [EMPTY_ENTRY; DECISIONS_PAGE];
        let mut n = 0;
        let newest_first = (0..usize::from(self.len)).rev().map(|i| self.slot(i));
        let page = newest_first.filter(matches).skip(request.skip as usize);
        for (entry, decision) in entries.iter_mut().zip(page) {
            *entry = decision.as_wire(now);
            n += 1;
        }
        let body = DecisionsResponse { seq: request.seq, entries: List::from_slice(&entries[..n]) };
        frame::encode(MsgId::DecisionsResponse, &body, reply)
    }

    /// Whether some entries wait to be sent.
    pub(crate) fn has_unsent(&self) -> bool {
        self.unsent > 0
    }

    /// The entries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Decision> + '_ {
        (0..usize::from(self.len)).map(move |i| self.slot(i))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
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
        assert_eq!((log.total, log.dropped), (5, 2), "two were pushed out unsent");
        // A buffer for one entry sends one; then the rest.
        let mut buf = [0u8; 8 + STATS_HEAD_MAX_LEN + HostDecision::MAX_ENCODED_LEN];
        let len = log.next_frame(Instant::ZERO, 7, 0, &mut buf).unwrap();
        let body = crate::wire::Frame::parse_datagram(&buf[..len], 65527).unwrap().body;
        let report = <DecisionReport as crate::wire::Decode>::parse(body).unwrap();
        let sent: Vec<HostDecision> = report.entries.iter().collect();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, Reason::ConsecutiveFailures { count: 3, limit: 15 });
        let mut big = [0u8; 4096];
        assert!(log.next_frame(Instant::ZERO, 7, 0, &mut big).is_some());
        assert!(log.next_frame(Instant::ZERO, 7, 0, &mut big).is_none(), "all sent");
        // Sent entries stay readable, and pushing them out loses nothing.
        log.push(Instant::ZERO, 1001, 2, host, change(6));
        assert_eq!(counts(&log), [4, 5, 6]);
        assert_eq!(log.dropped, 2);
        assert_eq!(log.len(), 3);
        let mut none = DecisionLog::<0>::new();
        none.push(Instant::ZERO, 1, 1, host, change(1));
        assert_eq!((none.len(), none.total, none.dropped), (0, 1, 1), "D = 0 only counts");
    }

    #[test]
    fn pages_are_newest_first_and_filtered() {
        let mut log = DecisionLog::<32>::new();
        for n in 1..=20 {
            let host: SocketAddr = "10.0.0.1:80".parse().unwrap();
            log.push(Instant::ZERO, if n % 5 == 0 { 7 } else { 1001 }, 2, host, change(n));
        }
        let page = |modid: Option<i32>, skip: u32| -> Vec<u32> {
            let mut reply = [0u8; 2048];
            let request = DecisionsRequest { seq: 3, modid, cmdid: None, skip };
            let len = log.page(Instant::ZERO, &request, &mut reply).unwrap();
            let body = crate::wire::Frame::parse_datagram(&reply[..len], 65527).unwrap().body;
            let response = <DecisionsResponse as crate::wire::Decode>::parse(body).unwrap();
            assert_eq!(response.seq, 3);
            response
                .entries
                .iter()
                .map(|d| match d.reason {
                    Reason::ConsecutiveFailures { count, .. } => count,
                    _ => 0,
                })
                .collect()
        };
        assert_eq!(page(None, 0), (5..=20).rev().collect::<Vec<_>>());
        assert_eq!(page(None, 16), [4, 3, 2, 1]);
        assert_eq!(page(Some(7), 0), [20, 15, 10, 5]);
        assert_eq!(page(Some(7), 4), Vec::<u32>::new());
        let mut small = [0u8; 16];
        assert!(
            log.page(
                Instant::ZERO,
                &DecisionsRequest { seq: 3, modid: None, cmdid: None, skip: 0 },
                &mut small
            )
            .is_err()
        );
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
