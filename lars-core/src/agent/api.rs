//! The agent's local API: `get_host`, `report`, `get_route`, leasing clients' summaries and
//! `StatsRequest`, in both codecs, answered synchronously into the driver's buffer.

use core::net::{SocketAddr, SocketAddrV4};

use super::*;
use crate::lb::{Balance, Pick};
use crate::time::Instant;
use crate::wire::native::{self, CounterSource, Outcome, WeightedHost};
use crate::wire::{Decode, Error, Frame, List, MsgId, RetCode, frame, lars};

/// What an API request asked for, decoded from either codec.
enum ApiRequest<'a> {
    GetHost {
        seq: u32,
        modid: i32,
        cmdid: i32,
        key: Option<u64>,
        codec: Codec,
    },
    Report {
        modid: i32,
        cmdid: i32,
        host: SocketAddr,
        outcome: Outcome,
        latency_us: u32,
    },
    Reports(native::ReportBatch<'a>),
    #[cfg(feature = "leases")]
    Summary(native::CallStats<'a>),
    GetRoute {
        seq: u32,
        modid: i32,
        cmdid: i32,
        codec: Codec,
    },
    Decisions(native::DecisionsRequest),
    #[cfg(feature = "stats")]
    Stats {
        seq: u32,
    },
}

/// What the agent answers a `StatsRequest` with: every [`AgentStats`] counter, then `routes`,
/// `stats_waiting_calls` (calls tallied, not yet sent to lars-reporter), `routes_stale` (served
/// past `update_timeout` while lars-dns is unreachable or not ready), `dns_ready`, (with the
/// `auth` feature) `auth_failures`, the decision log's `decisions` and `decisions_dropped`, then
/// the driver's own counters.
#[cfg(feature = "stats")]
struct AnsweredCounters<'a> {
    stats: AgentStats,
    routes: usize,
    waiting_calls: u64,
    stale_routes: usize,
    dns_ready: bool,
    decisions: (u64, u64),
    driver: &'a dyn CounterSource,
}

#[cfg(feature = "stats")]
impl CounterSource for AnsweredCounters<'_> {
    fn for_each(&self, each: &mut dyn FnMut(native::Counter<'_>)) {
        self.stats.counters().for_each(each);
        [
            ("routes", self.routes as u64),
            ("stats_waiting_calls", self.waiting_calls),
            ("routes_stale", self.stale_routes as u64),
            ("dns_ready", u64::from(self.dns_ready)),
        ]
        .for_each(each);
        #[cfg(feature = "auth")]
        [("auth_failures", self.stats.auth_failures)].for_each(each);
        [("decisions", self.decisions.0), ("decisions_dropped", self.decisions.1)].for_each(each);
        self.driver.for_each(each);
    }
}

impl<const R: usize, const H: usize, const D: usize> Agent<R, H, D> {
    /// Chooses a host: the agent's `get_host`.
    pub fn get_host(
        &mut self,
        now: Instant,
        modid: i32,
        cmdid: i32,
        key: Option<u64>,
    ) -> (RetCode, Option<SocketAddr>) {
        self.pick_host(now, modid, cmdid, key, Codec::Native)
    }

    /// `get_host` for a caller speaking `codec`: an original-protocol caller can only hold an
    /// IPv4 address, so on a route mixing IPv4 and IPv6 hosts it is given one of the IPv4
    /// hosts. The policy picks again (a different affinity key for a hashing policy), its
    /// unused picks taken back, up to once per host; then an IPv4 host is drawn at random.
    fn pick_host(
        &mut self,
        now: Instant,
        modid: i32,
        cmdid: i32,
        mut key: Option<u64>,
        codec: Codec,
    ) -> (RetCode, Option<SocketAddr>) {
        self.stats.get_host += 1;
        let Some(slot) = self.find_or_create(now, modid, cmdid) else {
            return (RetCode::SystemError, None);
        };
        self.refresh_if_old(now, slot);
        let route = &mut self.routes[slot];
        let mut tries = route.balancer.len();
        let mut has_v4 = None;
        loop {
            return match route.balancer.pick(now, key, &mut self.rng) {
                Pick::Host(host @ SocketAddr::V6(_)) if codec == Codec::Lars => {
                    route.balancer.cancel_pick(host);
                    let balancer = &route.balancer;
                    let any_v4 = *has_v4.get_or_insert_with(|| {
                        (0..balancer.len()).any(|i| balancer.host(i).is_some_and(|h| h.addr.is_ipv4()))
                    });
                    if !any_v4 {
                        self.stats.ipv6_not_representable += 1;
                        return (RetCode::SystemError, None);
                    }
                    tries -= 1;
                    if tries > 0 {
                        key = key.map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1));
                        continue;
                    }
                    let v4 = |i| balancer.host(i).filter(|h| h.addr.is_ipv4());
                    let count = (0..balancer.len()).filter_map(v4).count();
                    let nth = self.rng.below(count);
                    match (0..balancer.len()).filter_map(v4).nth(nth) {
                        Some(host) => (RetCode::Succ, Some(host.addr)),
                        None => (RetCode::SystemError, None),
                    }
                }
                Pick::Host(host) => (RetCode::Succ, Some(host)),
                Pick::Overloaded => (RetCode::Overload, None),
                Pick::NoHosts => (RetCode::NoExist, None),
            };
        }
    }

    /// Records a call's result: the agent's `report`.
    pub fn report(
        &mut self,
        now: Instant,
        modid: i32,
        cmdid: i32,
        host: SocketAddr,
        outcome: Outcome,
        latency_us: u32,
    ) {
        self.stats.reports += 1;
        if outcome != Outcome::Ok {
            self.stats.reports_failed += 1;
        }
        let Some(slot) = self.find(modid, cmdid) else {
            self.stats.reports_unknown_route += 1;
            return;
        };
        let route = &mut self.routes[slot];
        route.asked_at = now;
        if let Some(change) = route.balancer.report(now, host, outcome, latency_us) {
            self.decisions.push(now, modid, cmdid, host, change);
        }
        let route = &mut self.routes[slot];
        let dropped = route.tally(host, outcome, latency_us);
        self.waiting_reports = self.waiting_reports.saturating_add(1);
        self.stats.stats_dropped_calls += dropped;
    }

    /// Adds a leasing client's call counts to the statistics bound for lars-reporter. The
    /// client balanced those calls itself, so the agent's balancers, which learn from the calls
    /// they balanced, do not see them.
    #[cfg(feature = "leases")]
    fn leased_summary(&mut self, summary: &native::CallStats<'_>) {
        for entry in &summary.entries {
            let Some(slot) = self.find(entry.modid, entry.cmdid) else {
                self.stats.reports_unknown_route += 1;
                continue;
            };
            let calls = entry.succ.saturating_add(entry.err);
            let counts = crate::tally::CallCounts::of(&entry);
            let delta = route::Tally { host: entry.host.into(), counts, flushed: false };
            self.routes[slot].balancer.count_leased(entry.host, entry.succ, entry.err);
            let dropped = self.routes[slot].add_tally(delta);
            self.stats.leased_calls += u64::from(calls);
            self.waiting_reports = self.waiting_reports.saturating_add(calls);
            self.stats.stats_dropped_calls += dropped;
        }
    }

    /// Handles one API datagram and writes the answer, if the request has one, into `reply`.
    /// Returns the answer's length: 0 for a report, which has no answer. With the `stats`
    /// feature, a `StatsRequest` is answered with the agent's counters;
    /// [`Agent::handle_api_datagram_with`] adds the driver's.
    pub fn handle_api_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
        reply: &mut [u8],
    ) -> Result<usize, ApiError> {
        self.handle_api_datagram_with(now, datagram, reply, &[])
    }

    /// [`Agent::handle_api_datagram`], answering a `StatsRequest` with the agent's counters
    /// followed by `driver`'s (a daemon's buffer pool and sockets, say). `driver` is walked
    /// only for a `StatsRequest`, so it may gather its counters then.
    pub fn handle_api_datagram_with(
        &mut self,
        now: Instant,
        datagram: &[u8],
        reply: &mut [u8],
        driver: &dyn CounterSource,
    ) -> Result<usize, ApiError> {
        self.stats.api_requests += 1;
        let result = self.serve_api(now, datagram, reply, driver);
        if result.is_err() {
            self.stats.api_errors += 1;
        }
        result
    }

    fn serve_api(
        &mut self,
        now: Instant,
        datagram: &[u8],
        reply: &mut [u8],
        driver: &dyn CounterSource,
    ) -> Result<usize, ApiError> {
        #[cfg(not(feature = "stats"))]
        let _ = driver; // Only a `StatsRequest` answer walks it.
        let frame = Frame::parse_datagram(datagram, frame::MAX_BODY).map_err(ApiError::Malformed)?;
        match Self::parse_api(frame)? {
            ApiRequest::GetHost { seq, modid, cmdid, key, codec } => {
                let (code, host) = self.pick_host(now, modid, cmdid, key, codec);
                self.encode_get_host(codec, seq, modid, cmdid, code, host, reply)
            }
            ApiRequest::Report { modid, cmdid, host, outcome, latency_us } => {
                self.report(now, modid, cmdid, host, outcome, latency_us);
                Ok(0)
            }
            ApiRequest::Reports(batch) => {
                for r in &batch.reports {
                    self.report(now, r.modid, r.cmdid, r.host, r.outcome, r.latency_us);
                }
                Ok(0)
            }
            #[cfg(feature = "leases")]
            ApiRequest::Summary(summary) => {
                self.leased_summary(&summary);
                Ok(0)
            }
            ApiRequest::GetRoute { seq, modid, cmdid, codec } => {
                self.get_route_reply(now, codec, seq, modid, cmdid, reply)
            }
            ApiRequest::Decisions(request) => {
                self.decisions.page(now, &request, reply).map_err(|_| ApiError::ReplyTooLarge)
            }
            #[cfg(feature = "stats")]
            ApiRequest::Stats { seq } => {
                let counters = AnsweredCounters {
                    stats: self.stats,
                    routes: self.route_count(),
                    waiting_calls: self.unreported_calls(),
                    stale_routes: self.stale_routes(),
                    dns_ready: self.dns_ready,
                    decisions: self.decision_counts(),
                    driver,
                };
                let body = native::StatsResponseFrom { seq, role: native::Role::Agent, counters: &counters };
                frame::encode(MsgId::StatsResponse, &body, reply).map_err(|_| ApiError::ReplyTooLarge)
            }
        }
    }

    fn parse_api(frame: Frame<'_>) -> Result<ApiRequest<'_>, ApiError> {
        let malformed = ApiError::Malformed;
        Ok(match frame.msgid {
            MsgId::GetHostRequest => {
                let r = lars::GetHostRequest::parse(frame.body).map_err(malformed)?;
                ApiRequest::GetHost {
                    seq: r.seq,
                    modid: r.modid,
                    cmdid: r.cmdid,
                    key: None,
                    codec: Codec::Lars,
                }
            }
            MsgId::NativeGetHostRequest => {
                let r = native::GetHostRequest::parse(frame.body).map_err(malformed)?;
                ApiRequest::GetHost {
                    seq: r.seq,
                    modid: r.modid,
                    cmdid: r.cmdid,
                    key: r.key,
                    codec: Codec::Native,
                }
            }
            MsgId::ReportRequest => {
                let r = lars::ReportRequest::parse(frame.body).map_err(malformed)?;
                let host = SocketAddr::V4(r.host.ok_or(ApiError::Malformed(Error::BadValue))?);
                // The original API's convention: 0 is success, anything else a failure.
                let outcome = if r.retcode == 0 { Outcome::Ok } else { Outcome::Fail };
                ApiRequest::Report { modid: r.modid, cmdid: r.cmdid, host, outcome, latency_us: 0 }
            }
            MsgId::NativeReport => {
                let r = native::Report::parse(frame.body).map_err(malformed)?;
                let (modid, cmdid, host, outcome, latency_us) =
                    (r.modid, r.cmdid, r.host, r.outcome, r.latency_us);
                ApiRequest::Report { modid, cmdid, host, outcome, latency_us }
            }
            MsgId::NativeReportBatch => {
                ApiRequest::Reports(native::ReportBatch::parse(frame.body).map_err(malformed)?)
            }
            #[cfg(feature = "leases")]
            MsgId::NativeCallStats => {
                ApiRequest::Summary(native::CallStats::parse(frame.body).map_err(malformed)?)
            }
            MsgId::ApiGetRouteRequest => {
                let r = lars::GetRouteRequest::parse(frame.body).map_err(malformed)?;
                ApiRequest::GetRoute { seq: 0, modid: r.modid, cmdid: r.cmdid, codec: Codec::Lars }
            }
            MsgId::NativeGetRouteRequest => {
                let r = native::GetRouteRequest::parse(frame.body).map_err(malformed)?;
                ApiRequest::GetRoute { seq: r.seq, modid: r.modid, cmdid: r.cmdid, codec: Codec::Native }
            }
            MsgId::DecisionsRequest => {
                ApiRequest::Decisions(native::DecisionsRequest::parse(frame.body).map_err(malformed)?)
            }
            #[cfg(feature = "stats")]
            MsgId::StatsRequest => {
                ApiRequest::Stats { seq: native::StatsRequest::parse(frame.body).map_err(malformed)?.seq }
            }
            other => return Err(ApiError::Unexpected(other)),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn encode_get_host(
        &mut self,
        codec: Codec,
        seq: u32,
        modid: i32,
        cmdid: i32,
        mut code: RetCode,
        host: Option<SocketAddr>,
        reply: &mut [u8],
    ) -> Result<usize, ApiError> {
        let written = match codec {
            Codec::Lars => {
                let host = match host {
                    Some(SocketAddr::V4(v4)) => Some(v4),
                    Some(SocketAddr::V6(_)) => {
                        self.stats.ipv6_not_representable += 1;
                        code = RetCode::SystemError;
                        None
                    }
                    None => None,
                };
                let body = lars::GetHostResponse { seq, modid, cmdid, retcode: code.as_i32(), host };
                frame::encode(MsgId::GetHostResponse, &body, reply)
            }
            Codec::Native => {
                let body = native::GetHostResponse { seq, modid, cmdid, code, host };
                frame::encode(MsgId::NativeGetHostResponse, &body, reply)
            }
        };
        written.map_err(|_| ApiError::ReplyTooLarge)
    }

    fn get_route_reply(
        &mut self,
        now: Instant,
        codec: Codec,
        seq: u32,
        modid: i32,
        cmdid: i32,
        reply: &mut [u8],
    ) -> Result<usize, ApiError> {
        let slot = self.find_or_create(now, modid, cmdid);
        if let Some(slot) = slot {
            self.refresh_if_old(now, slot);
        }
        let route = slot.map(|s| &self.routes[s]);
        let count = route.map_or(0, |r| r.balancer.len());
        let host_at = |i: usize| route.and_then(|r| r.balancer.host(i));
        let written = match codec {
            Codec::Lars => {
                let mut v4 = [SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0); H];
                let mut n = 0;
                for host in (0..count).filter_map(host_at) {
                    match host.addr {
                        SocketAddr::V4(a) => {
                            v4[n] = a;
                            n += 1;
                        }
                        SocketAddr::V6(_) => self.stats.ipv6_not_representable += 1,
                    }
                }
                let body = lars::GetRouteResponse { modid, cmdid, hosts: List::from_slice(&v4[..n]) };
                frame::encode(MsgId::ApiGetRouteResponse, &body, reply)
            }
            Codec::Native => {
                let mut hosts =
                    [WeightedHost { addr: SocketAddr::V4(SocketAddrV4::new(0.into(), 0)), weight: 0 }; H];
                for (slot, host) in hosts.iter_mut().zip((0..count).filter_map(host_at)) {
                    *slot = host;
                }
                let code = if count == 0 { RetCode::NoExist } else { RetCode::Succ };
                let version = route.map_or(0, |r| r.version);
                let hosts = List::from_slice(&hosts[..count]);
                let body = native::RouteResponse { seq, modid, cmdid, code, version, hosts };
                frame::encode(MsgId::NativeRouteResponse, &body, reply)
            }
        };
        written.map_err(|_| ApiError::ReplyTooLarge)
    }
}
