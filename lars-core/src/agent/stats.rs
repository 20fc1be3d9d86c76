//! Flushing call statistics to lars-reporter: per-host tallies batched into frames.
//!
//! The original sent one `ReportStatusRequest` with every host of the route on every single
//! report (D-A-7). The agent instead tallies results per host and, every `report_interval` (or
//! after `report_after` results), drains the tallies into as few frames as the transmit buffer
//! allows: native `CallStats` frames mix routes; Lars `ReportStatusRequest` frames carry one
//! route each, as that message has a single modid/cmdid.

use core::net::SocketAddr;

use super::route::Route;
use super::{AgentConfig, AgentStats, Codec};
use crate::wire::native::{CallStats, HostStats};
use crate::wire::{List, MsgId, frame, lars};

/// Entries per frame at most; the transmit buffer may allow fewer.
const CHUNK: usize = 64;
/// Largest encoded `HostStats` (all varints at their longest, an IPv6 host).
const NATIVE_ENTRY_MAX: usize = 61;
const NATIVE_HEAD_MAX: usize = 13;
/// Largest encoded `HostCallResult` including its key and length.
const LARS_ENTRY_MAX: usize = 32;
const LARS_HEAD_MAX: usize = 40;

/// Progress of a flush across the route table.
#[derive(Debug, Default)]
pub(crate) struct Flush {
    active: bool,
    slot: usize,
}

impl Flush {
    pub(crate) fn start(&mut self) {
        self.active = true;
        self.slot = 0;
    }

    /// Route `slot` was removed and the last route moved into it: revisit that slot.
    pub(crate) fn route_removed(&mut self, slot: usize) {
        self.slot = self.slot.min(slot);
    }

    /// Writes the next statistics frame into `buf`, or ends the flush.
    pub(crate) fn next_frame<const H: usize>(
        &mut self,
        routes: &mut [Route<H>],
        config: &AgentConfig,
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
            let step = match config.reporter_codec {
                Codec::Native => self.native_frame(routes, config, ts, buf),
                Codec::Lars => self.lars_frame(routes, config, ts, buf, stats),
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

    fn native_frame<const H: usize>(
        &mut self,
        routes: &mut [Route<H>],
        config: &AgentConfig,
        ts: u32,
        buf: &mut [u8],
    ) -> Step {
        let room = buf.len().saturating_sub(frame::HEADER_LEN + NATIVE_HEAD_MAX) / NATIVE_ENTRY_MAX;
        let mut entries = [EMPTY_STATS; CHUNK];
        let mut n = 0;
        while n < room.min(CHUNK) && self.slot < routes.len() {
            let route = &mut routes[self.slot];
            match route.tallies.pop() {
                Some(tally) => {
                    entries[n] = route.host_stats(&tally);
                    n += 1;
                }
                None => self.slot += 1,
            }
        }
        let body = CallStats { caller: config.caller, ts, entries: List::from_slice(&entries[..n]) };
        match frame::encode(MsgId::NativeCallStats, &body, buf) {
            Ok(len) if n > 0 => Step::Frame { len, entries: n },
            _ => Step::TooSmall,
        }
    }

    fn lars_frame<const H: usize>(
        &mut self,
        routes: &mut [Route<H>],
        config: &AgentConfig,
        ts: u32,
        buf: &mut [u8],
        stats: &mut AgentStats,
    ) -> Step {
        let room = buf.len().saturating_sub(frame::HEADER_LEN + LARS_HEAD_MAX) / LARS_ENTRY_MAX;
        if room == 0 {
            return Step::TooSmall;
        }
        let route = &mut routes[self.slot];
        let mut results = [EMPTY_RESULT; CHUNK];
        let mut n = 0;
        while n < room.min(CHUNK) {
            let Some(tally) = route.tallies.pop() else { break };
            let SocketAddr::V4(host) = SocketAddr::from(tally.host) else {
                // The Lars message has no room for an IPv6 host.
                stats.stats_dropped += 1;
                stats.ipv6_not_representable += 1;
                continue;
            };
            let overload = route.host_stats(&tally).overloaded;
            results[n] = lars::HostCallResult { host, succ: tally.succ, err: tally.err, overload };
            n += 1;
        }
        if n == 0 {
            return Step::Skipped;
        }
        let body = lars::ReportStatusRequest {
            modid: route.modid,
            cmdid: route.cmdid,
            caller: config.caller as i32,
            results: List::from_slice(&results[..n]),
            ts,
        };
        match frame::encode(MsgId::ReportStatusRequest, &body, buf) {
            Ok(len) => Step::Frame { len, entries: n },
            Err(_) => Step::TooSmall,
        }
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

const EMPTY_STATS: HostStats =
    HostStats::empty(0, 0, SocketAddr::V4(core::net::SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0)));

const EMPTY_RESULT: lars::HostCallResult = lars::HostCallResult {
    host: core::net::SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0),
    succ: 0,
    err: 0,
    overload: false,
};
