//! A leased route as a sans-IO state machine (`lease` layer): a caller holds a route's hosts,
//! picks locally, and sends the agent summaries of its calls instead of a datagram per call.
//!
//! [`Lease`] keeps a copy of one route and a balancer of its own. A driver (the std client)
//! moves bytes and time:
//! - [`Lease::get_host`] and [`Lease::report`] are the caller's calls, with `now`;
//! - when `now` reaches [`Lease::poll_timeout`], the driver drains [`Lease::poll_transmit`]
//!   (route refresh requests and call summaries for the agent) and sends each datagram;
//! - while [`Lease::awaiting_answer`], it hands what the agent sends back to
//!   [`Lease::handle_datagram`].
//!
//! The copy is refreshed every `ttl` with a `GetRouteRequest`. A refresh never holds up a call:
//! until its answer comes (or if the agent is gone), the lease keeps serving what it has. An
//! agent answers "no such route" both for a deleted route and for one it is still fetching (after
//! a restart, say), so the lease believes it only after a `ttl` of such answers, asking again
//! every `recheck` meanwhile.
//!
//! Call counts are summed per host and go out as one `CallStats` summary (in as many datagrams
//! as the buffer requires) every `flush_interval`, or at once after [`Lease::flush`]. The lease's
//! balancer learns from every reported call at once.

use core::net::SocketAddr;

use crate::lb::{Balance, Balancer, LbConfig, Pick, PolicyKind, Rng, UpdateError};
use crate::tally::CallCounts;
use crate::time::{Duration, Instant};
use crate::wire::native::{self, CallStats, HostStats, Outcome, REPORT_CHUNK, WeightedHost};
use crate::wire::{Decode, Frame, List, MsgId, RetCode, frame};

/// How a lease balances and how often it talks to the agent: every parameter of the state
/// machine. The std client's `LeaseConfig` is this type: its user sets `ttl`, `flush_interval`,
/// `policy` and `lb`, and the client fills in `retry_after` and `recheck` from its own timeout
/// and retry spacing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaseParams {
    /// How long the hosts are used before they are refreshed.
    pub ttl: Duration,
    /// How often call counts go to the agent.
    pub flush_interval: Duration,
    /// How long a refresh may go unanswered before it is asked again.
    pub retry_after: Duration,
    /// How soon to ask again after the agent said it has no such route.
    pub recheck: Duration,
    /// The balancing policy.
    pub policy: PolicyKind,
    /// The policies' parameters.
    pub lb: LbConfig,
}

impl Default for LeaseParams {
    /// Refresh every second, send counts every 100 ms, retry after 200 ms, recheck a missing
    /// route every 50 ms; the Lars policy with its defaults.
    fn default() -> Self {
        LeaseParams {
            ttl: Duration::from_secs(1),
            flush_interval: Duration::from_millis(100),
            retry_after: Duration::from_millis(200),
            recheck: Duration::from_millis(50),
            policy: PolicyKind::Lars,
            lb: LbConfig::default(),
        }
    }
}

const UNSPECIFIED: SocketAddr =
    SocketAddr::V4(core::net::SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0));

/// One route held by a caller, for up to `H` hosts. Results are counted for up to `H` distinct
/// hosts between two summaries; past that (a caller reporting hosts the route never had) a
/// result reaches the balancer only.
pub struct Lease<const H: usize> {
    modid: i32,
    cmdid: i32,
    config: LeaseParams,
    balancer: Balancer<H>,
    rng: Rng,
    version: u64,
    refresh_at: Instant,
    /// The seq of the refresh in flight, and when it was asked.
    refreshing: Option<(u32, Instant)>,
    /// Since when the agent has answered that it has no such route.
    absent_since: Option<Instant>,
    seq: u32,
    /// Call counts since the last summary, one entry per host, kept as the summary's entries
    /// so that a summary is encoded from them as they are (counted through
    /// [`CallCounts`], as the agent counts).
    counts: heapless::Vec<HostStats, H>,
    /// Where the last reported host sits in `counts`: reports follow picks of a few hosts.
    hint: usize,
    flush_at: Instant,
    /// A summary is going out: `poll_transmit` sends datagrams until the counts are empty.
    flushing: bool,
}

impl<const H: usize> Lease<H> {
    /// A lease of `(modid, cmdid)` holding `hosts` at `version` (from a first `get_route`),
    /// whose balancer's randomness comes from `seed`.
    pub fn new(
        now: Instant,
        modid: i32,
        cmdid: i32,
        version: u64,
        hosts: &[WeightedHost],
        config: LeaseParams,
        seed: u64,
    ) -> Result<Self, UpdateError> {
        let mut balancer = Balancer::new(config.policy, &config.lb);
        balancer.update(now, hosts)?;
        Ok(Lease {
            modid,
            cmdid,
            config,
            balancer,
            rng: Rng::new(seed),
            version,
            refresh_at: now + config.ttl,
            refreshing: None,
            absent_since: None,
            seq: 0,
            counts: heapless::Vec::new(),
            hint: 0,
            flush_at: now + config.flush_interval,
            flushing: false,
        })
    }

    /// A host for the next call; `key` pins a caller to a host under consistent hashing.
    pub fn get_host(&mut self, now: Instant, key: Option<u64>) -> Pick {
        self.balancer.pick(now, key, &mut self.rng)
    }

    /// Records how a call to `host` went.
    pub fn report(&mut self, now: Instant, host: SocketAddr, outcome: Outcome, latency_us: u32) {
        self.balancer.report(now, host, outcome, latency_us);
        if let Some(entry) = self.entry(host) {
            let mut counts = CallCounts::of(entry);
            counts.add(&CallCounts::one(outcome, latency_us));
            counts.write_into(entry);
        }
    }

    /// Makes the next [`Lease::poll_transmit`] send the call counts.
    pub fn flush(&mut self, now: Instant) {
        self.flush_at = now;
    }

    /// When the driver should next drain [`Lease::poll_transmit`]: the next refresh (or the
    /// retry of one in flight) or summary. How often to look for a refresh's answer meanwhile is
    /// the driver's choice.
    pub fn poll_timeout(&self) -> Instant {
        let refresh = match self.refreshing {
            Some((_, asked_at)) => asked_at + self.config.retry_after,
            None => self.refresh_at,
        };
        refresh.min(self.flush_at)
    }

    /// Whether a refresh is waiting for the agent's answer.
    pub fn awaiting_answer(&self) -> bool {
        self.refreshing.is_some()
    }

    /// The next datagram for the agent, written into `buf`: a refresh request when one is due,
    /// then the call counts when they are due. Returns its length.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let retry_due =
            |(_, asked_at): (u32, Instant)| now.saturating_since(asked_at) >= self.config.retry_after;
        if now >= self.refresh_at && self.refreshing.is_none_or(retry_due) {
            self.seq = self.seq.wrapping_add(1);
            let request = native::GetRouteRequest { seq: self.seq, modid: self.modid, cmdid: self.cmdid };
            if let Ok(len) = frame::encode(MsgId::NativeGetRouteRequest, &request, buf) {
                self.refreshing = Some((self.seq, now));
                return Some(len);
            }
        }
        if now >= self.flush_at && !self.flushing {
            self.flushing = true;
            for entry in self.counts.iter_mut() {
                entry.overloaded = self.balancer.is_overloaded(entry.host);
            }
        }
        if self.flushing {
            if let Some(len) = self.next_summary(buf) {
                return Some(len);
            }
            self.flushing = false;
            self.flush_at = now + self.config.flush_interval;
        }
        None
    }

    /// Takes a datagram from the agent. Returns whether it was the answer to the refresh in
    /// flight (anything else is ignored).
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> bool {
        let Some((seq, _)) = self.refreshing else { return false };
        let Ok(frame) = Frame::parse_datagram(datagram, frame::MAX_BODY) else { return false };
        if frame.msgid != MsgId::NativeRouteResponse {
            return false;
        }
        let Ok(route) = native::RouteResponse::parse(frame.body) else { return false };
        if route.seq != seq || (route.modid, route.cmdid) != (self.modid, self.cmdid) {
            return false;
        }
        self.refreshing = None;
        self.refresh_at = now + self.config.ttl;
        if route.code != RetCode::NoExist {
            self.absent_since = None;
        }
        match route.code {
            RetCode::Succ => {
                let mut hosts = [WeightedHost { addr: UNSPECIFIED, weight: 1 }; H];
                let count = route.hosts.len();
                for (slot, host) in hosts.iter_mut().zip(route.hosts.iter()) {
                    *slot = host;
                }
                // A route over our capacity keeps the hosts we have.
                if count <= H && self.balancer.update(now, &hosts[..count]).is_ok() {
                    self.version = route.version;
                }
            }
            RetCode::NoExist => {
                let since = *self.absent_since.get_or_insert(now);
                if now.saturating_since(since) >= self.config.ttl {
                    // Emptying always fits.
                    let _ = self.balancer.update(now, &[]);
                } else {
                    self.refresh_at = now + self.config.recheck;
                }
            }
            // The agent could not answer: keep what we have until the next refresh.
            _ => {}
        }
        true
    }

    /// The store's version of the hosts in use.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The number of hosts in use.
    pub fn len(&self) -> usize {
        self.balancer.len()
    }

    /// Whether the lease has no hosts (the route was deleted).
    pub fn is_empty(&self) -> bool {
        self.balancer.is_empty()
    }

    /// The `i`th host in use.
    pub fn host(&self, i: usize) -> Option<WeightedHost> {
        self.balancer.host(i)
    }

    fn entry(&mut self, host: SocketAddr) -> Option<&mut HostStats> {
        if self.counts.get(self.hint).is_none_or(|e| e.host != host) {
            self.hint = match self.counts.iter().position(|e| e.host == host) {
                Some(i) => i,
                None => {
                    self.counts.push(HostStats::empty(self.modid, self.cmdid, host)).ok()?;
                    self.counts.len() - 1
                }
            };
        }
        self.counts.get_mut(self.hint)
    }

    /// Writes the next datagram of the summary being sent and drops its entries from the counts.
    fn next_summary(&mut self, buf: &mut [u8]) -> Option<usize> {
        let room = buf.len().saturating_sub(frame::HEADER_LEN + native::STATS_HEAD_MAX_LEN)
            / native::HostStats::MAX_ENCODED_LEN;
        let n = self.counts.len().min(room).min(REPORT_CHUNK);
        if n == 0 {
            return None;
        }
        let summary = CallStats { caller: 0, ts: 0, entries: List::from_slice(&self.counts[..n]) };
        let len = frame::encode(MsgId::NativeCallStats, &summary, buf).ok()?;
        // Drop the sent entries, keeping the rest in order.
        let rest = self.counts.len() - n;
        self.counts.copy_within(n.., 0);
        self.counts.truncate(rest);
        self.hint = 0;
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;

    const ROUTE: (i32, i32) = (7, 1);

    fn host(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], 80))
    }

    fn hosts(lasts: &[u8]) -> Vec<WeightedHost> {
        lasts.iter().map(|&l| WeightedHost { addr: host(l), weight: 1 }).collect()
    }

    fn at(millis: u64) -> Instant {
        Instant::from_millis(millis)
    }

    fn lease<const H: usize>(lasts: &[u8]) -> Lease<H> {
        Lease::new(at(0), ROUTE.0, ROUTE.1, 1, &hosts(lasts), LeaseParams::default(), 42).unwrap()
    }

    /// Drains `poll_transmit` at `now` into the frames it produced.
    fn transmit<const H: usize>(lease: &mut Lease<H>, now: Instant, buf_len: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = std::vec![0u8; buf_len];
        while let Some(len) = lease.poll_transmit(now, &mut buf) {
            out.push(buf[..len].to_vec());
        }
        out
    }

    fn refresh_seq(datagram: &[u8]) -> u32 {
        let frame = Frame::parse_datagram(datagram, frame::MAX_BODY).unwrap();
        assert_eq!(frame.msgid, MsgId::NativeGetRouteRequest);
        let request = native::GetRouteRequest::parse(frame.body).unwrap();
        assert_eq!((request.modid, request.cmdid), ROUTE);
        request.seq
    }

    fn answer(seq: u32, code: RetCode, version: u64, lasts: &[u8]) -> Vec<u8> {
        let hosts = hosts(lasts);
        let body = native::RouteResponse {
            seq,
            modid: ROUTE.0,
            cmdid: ROUTE.1,
            code,
            version,
            hosts: List::from_slice(&hosts),
        };
        let mut out = std::vec![0u8; 4096];
        let len = frame::encode(MsgId::NativeRouteResponse, &body, &mut out).unwrap();
        out.truncate(len);
        out
    }

    fn held<const H: usize>(lease: &Lease<H>) -> Vec<SocketAddr> {
        (0..lease.len()).filter_map(|i| lease.host(i)).map(|h| h.addr).collect()
    }

    #[test]
    fn picks_are_local_and_the_route_is_refreshed_every_ttl_and_retried() {
        let mut lease: Lease<8> = lease(&[1, 2]);
        let picks: Vec<Pick> = (0..4).map(|_| lease.get_host(at(1), None)).collect();
        assert!(picks.iter().all(|p| matches!(p, Pick::Host(h) if [host(1), host(2)].contains(h))));
        assert!(transmit(&mut lease, at(999), 1024).is_empty(), "nothing before the ttl");
        assert_eq!(lease.poll_timeout(), at(1000));
        let sent = transmit(&mut lease, at(1000), 1024);
        assert_eq!(sent.len(), 1);
        assert_eq!(refresh_seq(&sent[0]), 1);
        assert!(lease.awaiting_answer());
        assert!(transmit(&mut lease, at(1100), 1024).is_empty(), "in flight");
        assert_eq!(lease.poll_timeout(), at(1200), "retried after retry_after");
        let retried = transmit(&mut lease, at(1200), 1024);
        assert_eq!(refresh_seq(&retried[0]), 2);
        assert!(!lease.handle_datagram(at(1210), &answer(1, RetCode::Succ, 2, &[3])), "a stale answer");
        assert!(lease.handle_datagram(at(1210), &answer(2, RetCode::Succ, 5, &[2, 3])));
        assert_eq!(held(&lease), [host(2), host(3)]);
        assert_eq!(lease.version(), 5);
        assert!(!lease.awaiting_answer());
        // Summaries are due every 100 ms (the last at 1200), before the next refresh at 2210.
        assert_eq!(lease.poll_timeout(), at(1300));
        assert!(transmit(&mut lease, at(1300), 1024).is_empty(), "no calls reported: no summary");
        assert_eq!(lease.poll_timeout(), at(1400));
    }

    #[test]
    fn no_such_route_is_believed_only_after_a_ttl_of_such_answers() {
        let mut lease: Lease<8> = lease(&[1]);
        let seq = refresh_seq(&transmit(&mut lease, at(1000), 1024)[0]);
        assert!(lease.handle_datagram(at(1001), &answer(seq, RetCode::NoExist, 0, &[])));
        assert_eq!(held(&lease), [host(1)], "kept while the agent may be fetching it");
        assert_eq!(lease.poll_timeout(), at(1051), "asked again soon");
        let seq = refresh_seq(&transmit(&mut lease, at(1051), 1024)[0]);
        assert!(lease.handle_datagram(at(1052), &answer(seq, RetCode::Succ, 3, &[1, 2])));
        assert_eq!(held(&lease), [host(1), host(2)], "it was only being fetched");
        let mut now = 2052;
        for _ in 0..30 {
            let Some(seq) = transmit(&mut lease, at(now), 1024).first().map(|d| refresh_seq(d)) else {
                now += 1;
                continue;
            };
            assert!(lease.handle_datagram(at(now), &answer(seq, RetCode::NoExist, 0, &[])));
            now = lease.poll_timeout().as_millis();
        }
        assert!(lease.is_empty(), "deleted, after a ttl of answers saying so");
        assert_eq!(lease.get_host(at(now), None), Pick::NoHosts);
    }

    #[test]
    fn counts_go_out_as_one_summary_split_to_fit_the_buffer() {
        let mut lease: Lease<128> = lease(&[1, 2]);
        let mut expected = std::collections::BTreeMap::new();
        for i in 0..100u8 {
            for _ in 0..=(i % 3) {
                let outcome = if i % 7 == 0 { Outcome::Fail } else { Outcome::Ok };
                lease.report(at(5), host(i), outcome, 100);
                *expected.entry(host(i)).or_insert(0u32) += 1;
            }
        }
        assert!(transmit(&mut lease, at(50), 1024).is_empty(), "not due");
        lease.flush(at(60));
        let sent = transmit(&mut lease, at(60), 1024);
        assert!(sent.len() >= 7, "1 KiB holds 16 entries: {} datagrams", sent.len());
        let mut got = std::collections::BTreeMap::new();
        for datagram in &sent {
            assert!(datagram.len() <= 1024);
            let frame = Frame::parse_datagram(datagram, frame::MAX_BODY).unwrap();
            let summary = CallStats::parse(frame.body).unwrap();
            for e in &summary.entries {
                assert_eq!((e.modid, e.cmdid), ROUTE);
                assert_eq!(e.latency_sum_us, u64::from(e.succ + e.err) * 100);
                assert!(got.insert(e.host, e.succ + e.err).is_none(), "each host once");
            }
        }
        assert_eq!(got, expected);
        assert!(transmit(&mut lease, at(61), 1024).is_empty(), "sent counts are gone");
        assert_eq!(lease.poll_timeout(), at(160));
    }

    #[test]
    fn counts_are_kept_for_at_most_h_hosts_and_the_balancer_still_learns() {
        let mut lease: Lease<2> = lease(&[1, 2]);
        for _ in 0..20 {
            lease.report(at(1), host(1), Outcome::Fail, 0);
        }
        for last in 3..9 {
            lease.report(at(1), host(last), Outcome::Ok, 0);
        }
        // The Lars policy overloaded host 1 on its failures.
        assert!((0..10).all(|_| lease.get_host(at(2), None) == Pick::Host(host(2))));
        lease.flush(at(3));
        let sent = transmit(&mut lease, at(3), 4096);
        let frame = Frame::parse_datagram(&sent[0], frame::MAX_BODY).unwrap();
        let summary = CallStats::parse(frame.body).unwrap();
        let entries: Vec<HostStats> = summary.entries.iter().collect();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].host, entries[0].err, entries[0].overloaded), (host(1), 20, true));
        assert_eq!(entries[1].host, host(3));
    }

    #[test]
    fn datagrams_that_are_not_the_answer_change_nothing() {
        let mut lease: Lease<8> = lease(&[1]);
        assert!(!lease.handle_datagram(at(1), &answer(0, RetCode::Succ, 9, &[5])), "nothing asked");
        let seq = refresh_seq(&transmit(&mut lease, at(1000), 1024)[0]);
        assert!(!lease.handle_datagram(at(1001), b"garbage"));
        assert!(!lease.handle_datagram(at(1001), &answer(seq + 1, RetCode::Succ, 9, &[5])));
        let mut other = answer(seq, RetCode::Succ, 9, &[5]);
        assert_eq!(other[8..10], [0x01, 0x0e], "seq 1, then modid 7 as a zigzag varint");
        other[9] = 0x02; // modid 7 -> 1
        assert!(!lease.handle_datagram(at(1001), &other[..]), "another route's answer");
        assert_eq!(held(&lease), [host(1)]);
        assert!(lease.awaiting_answer());
    }

    #[test]
    fn mangled_answers_never_panic_and_leave_a_usable_lease() {
        let mut rng = Rng::new(7);
        let mut lease: Lease<4> = lease(&[1, 2]);
        let mut now = 1000;
        for case in 0..10_000u64 {
            while !lease.awaiting_answer() {
                now = now.max(lease.poll_timeout().as_millis()) + 1;
                transmit(&mut lease, at(now), 1024);
            }
            let Some((seq, _)) = lease.refreshing else { panic!("case {case}: no refresh in flight") };
            // A valid answer (sometimes over capacity), then damaged.
            let lasts: Vec<u8> = (0..rng.next_u64() % 7).map(|i| i as u8 + 1).collect();
            let mut datagram = answer(seq, RetCode::Succ, case, &lasts);
            for _ in 0..rng.next_u64() % 4 {
                if datagram.is_empty() {
                    break;
                }
                let at = (rng.next_u64() as usize) % datagram.len();
                match rng.next_u64() % 3 {
                    0 => datagram[at] = rng.next_u64() as u8,
                    1 => datagram.truncate(at),
                    _ => datagram.insert(at, rng.next_u64() as u8),
                }
            }
            lease.handle_datagram(at(now), &datagram);
            assert!(lease.len() <= 4, "case {case}");
            if !lease.is_empty() {
                assert!(
                    matches!(lease.get_host(at(now), None), Pick::Host(_) | Pick::Overloaded),
                    "case {case}"
                );
            }
        }
    }
}
