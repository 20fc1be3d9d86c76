//! Flushing call statistics to lars-reporter: per-host tallies batched into frames.
//!
//! The original sent one `ReportStatusRequest` with every host of the route on every single
//! report (D-A-7). The agent instead tallies results per host and, every `report_interval` (or
//! after `report_after` results), drains the tallies into as few frames as the transmit buffer
//! allows: native `StatusReport` frames mix routes; Lars `ReportStatusRequest` frames carry one
//! route each, as that message has a single modid/cmdid.
//!
//! A route with results since the last flush is reported whole, every host of it, as the
//! original did (its console lists a route's hosts from `ServerCallStatus`); a route without
//! any is not reported. What lars-reporter stores in `ServerCallStatus` means what it meant in
//! the original: each host's calls since its balancer last changed its state (the Lars policy's window, which it
//! restarts on every idle/overload change and after `idle_timeout`). A Lars frame carries only
//! that; a native frame carries it beside the period's counts and latencies. Policies that keep
//! no window report the period's counts in its place.

use core::net::SocketAddr;

use super::route::{FlushCursor, Route, Tally};
use super::table::RouteTable;
use super::{AgentStats, Codec};
use crate::lb::Balance;
use crate::wire::native::{HostReport, HostStats, REPORT_CHUNK, STATS_HEAD_MAX_LEN, StatusReport};
use crate::wire::{List, MsgId, frame, lars};

/// Progress of a flush across the route table.
#[derive(Debug, Default)]
pub(crate) struct Flush {
    active: bool,
    slot: usize,
    /// Where the flush is in the route at `slot`.
    cursor: FlushCursor,
}

impl Flush {
    pub(crate) fn is_active(&self) -> bool {
        self.active
    }

    pub(crate) fn start(&mut self) {
        self.active = true;
        self.slot = 0;
        self.cursor = FlushCursor::default();
    }

    /// Route `slot` was removed and the last route moved into it: revisit that slot, from the
    /// start (a route half flushed skips the tallies it already sent).
    pub(crate) fn route_removed(&mut self, slot: usize) {
        self.slot = self.slot.min(slot);
        self.cursor = FlushCursor::default();
    }

    /// Writes the next statistics frame into `buf`, or ends the flush.
    pub(crate) fn next_frame<const R: usize, const H: usize>(
        &mut self,
        routes: &mut RouteTable<R, H>,
        codec: Codec,
        caller: u32,
        ts: u32,
        buf: &mut [u8],
        stats: &mut AgentStats,
    ) -> Option<usize> {
        while self.active {
            while routes.get(self.slot).is_some_and(|r| r.tallies.is_empty()) {
                self.slot += 1;
            }
            if self.slot >= routes.len() {
                break;
            }
            let step = match codec {
                Codec::Native => self.native_frame(routes, caller, ts, buf),
                Codec::Lars => self.lars_frame(routes, caller, ts, buf, stats),
            };
            match step {
                Step::Frame { len, entries } => {
                    stats.stats_frames += 1;
                    stats.stats_entries += entries as u64;
                    return Some(len);
                }
                Step::Skipped => {}
                // Not even one entry fits: the driver's buffer is too small. Stop, don't spin.
                Step::TooSmall => break,
            }
        }
        self.active = false;
        None
    }

    fn native_frame<const R: usize, const H: usize>(
        &mut self,
        routes: &mut RouteTable<R, H>,
        caller: u32,
        ts: u32,
        buf: &mut [u8],
    ) -> Step {
        let room =
            buf.len().saturating_sub(frame::HEADER_LEN + STATS_HEAD_MAX_LEN) / HostReport::MAX_ENCODED_LEN;
        let mut entries = [EMPTY_REPORT; REPORT_CHUNK];
        let mut n = 0;
        while n < room.min(REPORT_CHUNK) && self.slot < routes.len() {
            let route = &mut routes[self.slot];
            if self.cursor.at_start() && route.tallies.is_empty() {
                self.slot += 1; // no results since the last flush: nothing to say
                continue;
            }
            match route.next_flushed(&mut self.cursor) {
                Some(tally) => {
                    let (window_succ, window_err) = window(route, &tally);
                    entries[n] = HostReport { stats: route.host_stats(&tally), window_succ, window_err };
                    n += 1;
                }
                None => self.slot += 1,
            }
        }
        let body = StatusReport { caller, ts, entries: List::from_slice(&entries[..n]) };
        match frame::encode(MsgId::StatusReport, &body, buf) {
            Ok(len) if n > 0 => Step::Frame { len, entries: n },
            _ => Step::TooSmall,
        }
    }

    fn lars_frame<const R: usize, const H: usize>(
        &mut self,
        routes: &mut RouteTable<R, H>,
        caller: u32,
        ts: u32,
        buf: &mut [u8],
        stats: &mut AgentStats,
    ) -> Step {
        let room = buf.len().saturating_sub(frame::HEADER_LEN + lars::REPORT_HEAD_MAX_LEN)
            / lars::HostCallResult::MAX_ENCODED_LEN;
        if room == 0 {
            return Step::TooSmall;
        }
        let route = &mut routes[self.slot];
        let mut results = [EMPTY_RESULT; REPORT_CHUNK];
        let mut n = 0;
        let mut done = false;
        while n < room.min(REPORT_CHUNK) {
            let Some(tally) = route.next_flushed(&mut self.cursor) else {
                done = true;
                break;
            };
            let SocketAddr::V4(host) = SocketAddr::from(tally.host) else {
                // The Lars message has no room for an IPv6 host.
                stats.stats_dropped_calls += tally.calls();
                stats.ipv6_not_representable += 1;
                continue;
            };
            let overload = route.balancer.is_overloaded(host.into());
            let (succ, err) = window(route, &tally);
            results[n] = lars::HostCallResult { host, succ, err, overload };
            n += 1;
        }
        let body = lars::ReportStatusRequest {
            modid: route.modid,
            cmdid: route.cmdid,
            caller: caller as i32,
            results: List::from_slice(&results[..n]),
            ts,
        };
        let step = match frame::encode(MsgId::ReportStatusRequest, &body, buf) {
            _ if n == 0 => Step::Skipped,
            Ok(len) => Step::Frame { len, entries: n },
            Err(_) => Step::TooSmall,
        };
        // The route is done: on to the next, even if results came in since (they wait for
        // the next flush).
        if done {
            self.slot += 1;
        }
        step
    }
}

/// What one attempt at a frame did.
enum Step {
    Frame {
        len: usize,
        entries: usize,
    },
    /// The route had nothing this codec can carry.
    Skipped,
    TooSmall,
}

/// The host's calls since its last state change, or the period's where the policy keeps no
/// window.
fn window<const H: usize>(route: &Route<H>, tally: &Tally) -> (u32, u32) {
    route.balancer.window(tally.host.into()).unwrap_or((tally.counts.succ, tally.counts.err))
}

const EMPTY_REPORT: HostReport = HostReport {
    stats: HostStats::empty(
        0,
        0,
        SocketAddr::V4(core::net::SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0)),
    ),
    window_succ: 0,
    window_err: 0,
};

const EMPTY_RESULT: lars::HostCallResult = lars::HostCallResult {
    host: core::net::SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0),
    succ: 0,
    err: 0,
    overload: false,
};
