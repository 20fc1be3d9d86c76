//! Deterministic simulation of the agent: the real `Agent` with an in-memory lars-dns, an
//! in-memory lars-reporter and API callers, over in-memory links on a virtual clock (in the
//! manner of quinn-proto's test `Pair`). Every frame crosses the real codecs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use lars_core::agent::{Agent, AgentConfig, AgentEvent, ApiError, Codec, CodecChoice, Link, RouteState};
use lars_core::lb::PolicyKind;
use lars_core::time::{Duration, Instant};
use lars_core::wire::frame::{self, MAX_BODY};
use lars_core::wire::native::{self, Outcome, StatsRequest, WeightedHost};
use lars_core::wire::{Decode, Error, Frame, List, Message, MsgId, RetCode, lars};

type Key = (i32, i32);

fn host(last: u8) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 8000 + u16::from(last)))
}

fn weighted(lasts: &[u8]) -> Vec<WeightedHost> {
    lasts.iter().map(|&l| WeightedHost { addr: host(l), weight: 1 }).collect()
}

/// An in-memory lars-dns: a route table, subscriptions, and switches to go down or go silent.
#[derive(Default)]
struct Dns {
    routes: BTreeMap<Key, Vec<WeightedHost>>,
    version: u64,
    subscribed: BTreeSet<Key>,
    pulls: Vec<(Instant, Key)>,
    up: bool,
    /// Connected but never answers.
    silent: bool,
    codec: Option<Codec>,
    /// An original Lars lars_dns ignores the msgids it does not know, the native `Hello` too.
    original: bool,
    /// Has not loaded its store: answers natively that it is not ready.
    unready: bool,
}

/// An in-memory lars-reporter summing what it receives per (route, host).
#[derive(Default)]
struct Reporter {
    up: bool,
    totals: BTreeMap<(Key, SocketAddr), (u64, u64)>,
    overloaded: BTreeMap<(Key, SocketAddr), bool>,
    /// The last `ServerCallStatus` counts of each host: what the row would hold.
    status: BTreeMap<(Key, SocketAddr), (u32, u32)>,
    frames: usize,
    /// An original Lars lars_reporter: it takes only msgid 3 and ignores the rest.
    original: bool,
    /// The decisions received, as `lars events` prints them.
    decisions: Vec<String>,
}

struct Sim {
    now: Instant,
    agent: Agent<8, 8, 16>,
    dns: Dns,
    reporter: Reporter,
    seq: u32,
    buf: Vec<u8>,
    events: Vec<AgentEvent>,
}

impl Sim {
    fn new(config: AgentConfig) -> Sim {
        let now = Instant::from_millis(1_000);
        let mut sim = Sim {
            now,
            agent: Agent::new(config, now),
            dns: Dns { up: true, ..Dns::default() },
            reporter: Reporter { up: true, ..Reporter::default() },
            seq: 0,
            buf: vec![0; 70_000],
            events: Vec::new(),
        };
        sim.agent.handle_dns_link(now, true);
        sim.agent.handle_reporter_link(now, true);
        sim.agent.set_unix_time(now, 1_764_000_000);
        sim
    }

    /// Delivers every frame the agent wants to send, and the dns answers, until quiet.
    fn drive(&mut self) {
        while let Some(tx) = self.agent.poll_transmit(self.now, &mut self.buf) {
            let bytes = self.buf[..tx.len].to_vec();
            match tx.link {
                Link::Dns => self.dns_receive(&bytes),
                Link::Reporter => self.reporter_receive(&bytes),
            }
        }
        while let Some(event) = self.agent.poll_event() {
            self.events.push(event);
        }
    }

    fn dns_receive(&mut self, bytes: &[u8]) {
        assert!(self.dns.up, "the agent sent to a dns link it was told is down");
        let frame = Frame::parse_datagram(bytes, MAX_BODY).expect("the agent sends whole frames");
        let (key, codec) = match Message::from_frame(frame).expect("the agent sends valid bodies") {
            Message::GetRouteRequest(r) => ((r.modid, r.cmdid), Codec::Lars),
            Message::NativeGetRouteRequest(r) if !self.dns.original => ((r.modid, r.cmdid), Codec::Native),
            Message::Hello(_) if self.dns.original => return,
            Message::Hello(hello) => {
                assert_eq!(hello.role, native::Role::Agent);
                let answer = native::Hello { role: native::Role::Dns, ..hello };
                let mut out = [0u8; 64];
                let len = frame::encode(MsgId::Hello, &answer, &mut out).unwrap();
                let frame = Frame::parse_datagram(&out[..len], MAX_BODY).unwrap();
                self.agent.handle_dns_frame(self.now, frame).expect("the agent takes a Hello");
                return;
            }
            other => panic!("the agent sent {other:?} to dns"),
        };
        self.dns.codec = Some(codec);
        self.dns.pulls.push((self.now, key));
        self.dns.subscribed.insert(key);
        if !self.dns.silent {
            self.dns_send(key);
        }
    }

    /// lars-dns sends its current hosts of `key` (an answer or a push).
    fn dns_send(&mut self, key: Key) {
        let hosts = self.dns.routes.get(&key).cloned().unwrap_or_default();
        if self.dns.unready {
            let body = native::RouteResponse {
                seq: 0,
                modid: key.0,
                cmdid: key.1,
                code: RetCode::SystemError,
                version: 0,
                hosts: List::from_slice(&[]),
            };
            let mut out = [0u8; 64];
            let len = frame::encode(MsgId::NativeRouteResponse, &body, &mut out).unwrap();
            let frame = Frame::parse_datagram(&out[..len], MAX_BODY).unwrap();
            self.agent.handle_dns_frame(self.now, frame).expect("the agent takes an unready answer");
            return;
        }
        let mut out = vec![0; 70_000];
        let len = match self.dns.codec.unwrap_or(Codec::Native) {
            Codec::Lars => {
                let v4: Vec<SocketAddrV4> = hosts
                    .iter()
                    .map(|h| if let SocketAddr::V4(a) = h.addr { a } else { unreachable!() })
                    .collect();
                let body =
                    lars::GetRouteResponse { modid: key.0, cmdid: key.1, hosts: List::from_slice(&v4) };
                frame::encode(MsgId::GetRouteResponse, &body, &mut out)
            }
            Codec::Native => {
                let code = if hosts.is_empty() { RetCode::NoExist } else { RetCode::Succ };
                let body = native::RouteResponse {
                    seq: 0,
                    modid: key.0,
                    cmdid: key.1,
                    code,
                    version: self.dns.version,
                    hosts: List::from_slice(&hosts),
                };
                frame::encode(MsgId::NativeRouteResponse, &body, &mut out)
            }
        }
        .unwrap();
        let frame = Frame::parse_datagram(&out[..len], MAX_BODY).unwrap();
        self.agent.handle_dns_frame(self.now, frame).expect("the agent accepts dns frames");
    }

    /// The store changes a route; lars-dns pushes it to subscribers.
    fn dns_set_route(&mut self, key: Key, lasts: &[u8]) {
        self.dns.version += 1;
        self.dns.routes.insert(key, weighted(lasts));
        if self.dns.up && self.dns.subscribed.contains(&key) {
            self.dns_send(key);
        }
        self.drive();
    }

    fn dns_down(&mut self) {
        self.dns.up = false;
        self.dns.subscribed.clear(); // a new connection starts with no subscriptions
        self.agent.handle_dns_link(self.now, false);
        self.drive();
    }

    fn dns_up(&mut self) {
        self.dns.up = true;
        self.agent.handle_dns_link(self.now, true);
        self.drive();
    }

    fn reporter_receive(&mut self, bytes: &[u8]) {
        assert!(self.reporter.up, "the agent sent to a reporter link it was told is down");
        let frame = Frame::parse_datagram(bytes, MAX_BODY).unwrap();
        match Message::from_frame(frame).unwrap() {
            Message::Hello(_) if self.reporter.original => {}
            Message::Hello(hello) => {
                let answer = native::Hello { role: native::Role::Reporter, ..hello };
                let mut out = [0u8; 64];
                let len = frame::encode(MsgId::Hello, &answer, &mut out).unwrap();
                let frame = Frame::parse_datagram(&out[..len], MAX_BODY).unwrap();
                self.agent.handle_reporter_frame(self.now, frame).expect("the agent takes a Hello");
            }
            Message::StatusReport(report) if !self.reporter.original => {
                self.reporter.frames += 1;
                assert_eq!(report.ts, 1_764_000_000 + (self.now.as_millis() / 1000) as u32 - 1);
                for entry in &report.entries {
                    let e = entry.stats;
                    let key = ((e.modid, e.cmdid), e.host);
                    let total = self.reporter.totals.entry(key).or_default();
                    total.0 += u64::from(e.succ);
                    total.1 += u64::from(e.err);
                    self.reporter.overloaded.insert(key, e.overloaded);
                    self.reporter.status.insert(key, (entry.window_succ, entry.window_err));
                }
            }
            Message::DecisionReport(report) if !self.reporter.original => {
                for d in &report.entries {
                    let line =
                        format!("{}/{} {} {}: {}", d.modid, d.cmdid, d.host, d.change.as_str(), d.reason);
                    self.reporter.decisions.push(line);
                }
            }
            // The original stores these counts as they are: they are not period counts, so
            // `totals` (which sums periods) stays out of it.
            Message::ReportStatusRequest(r) => {
                self.reporter.frames += 1;
                for e in &r.results {
                    let key = ((r.modid, r.cmdid), SocketAddr::V4(e.host));
                    self.reporter.status.insert(key, (e.succ, e.err));
                    self.reporter.overloaded.insert(key, e.overload);
                }
            }
            other => panic!("the agent sent {other:?} to the reporter"),
        }
    }

    /// Moves the virtual clock forward by `by`, stopping at every deadline the agent asks for.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = self.agent.poll_timeout().map_or(end, |t| t.max(self.now)).min(end);
            self.now = next;
            self.agent.handle_timeout(self.now);
            self.drive();
            if self.now >= end {
                break;
            }
        }
    }

    fn api(&mut self, message: &Message<'_>) -> Result<Option<Message<'static>>, ApiError> {
        let mut datagram = vec![0; 1024];
        let n = message.emit_frame(&mut datagram).unwrap();
        let mut reply = vec![0; 65_536];
        let len = self.agent.handle_api_datagram(self.now, &datagram[..n], &mut reply)?;
        self.drive();
        if len == 0 {
            return Ok(None);
        }
        let reply: &'static [u8] = reply[..len].to_vec().leak();
        Ok(Some(Message::from_frame(Frame::parse_datagram(reply, MAX_BODY).unwrap()).unwrap()))
    }

    /// `get_host` over the Lars protocol, checking the echo of seq, modid and cmdid.
    fn get_host(&mut self, key: Key) -> (RetCode, Option<SocketAddr>) {
        self.seq += 1;
        let request = lars::GetHostRequest { seq: self.seq, modid: key.0, cmdid: key.1 };
        let Some(Message::GetHostResponse(r)) = self.api(&Message::GetHostRequest(request)).unwrap() else {
            panic!("get_host got no GetHostResponse")
        };
        assert_eq!((r.seq, r.modid, r.cmdid), (self.seq, key.0, key.1), "echo");
        (RetCode::from_i32(r.retcode).unwrap(), r.host.map(SocketAddr::V4))
    }

    /// `get_host` over the native protocol.
    fn get_host_native(&mut self, key: Key) -> (RetCode, Option<SocketAddr>) {
        self.seq += 1;
        let request = native::GetHostRequest { seq: self.seq, modid: key.0, cmdid: key.1, key: None };
        let Some(Message::NativeGetHostResponse(r)) =
            self.api(&Message::NativeGetHostRequest(request)).unwrap()
        else {
            panic!("native get_host got no NativeGetHostResponse")
        };
        assert_eq!((r.seq, r.modid, r.cmdid), (self.seq, key.0, key.1), "echo");
        (r.code, r.host)
    }

    fn report(&mut self, key: Key, addr: SocketAddr, ok: bool) {
        let SocketAddr::V4(v4) = addr else { unreachable!() };
        let request =
            lars::ReportRequest { modid: key.0, cmdid: key.1, host: Some(v4), retcode: i32::from(!ok) };
        assert_eq!(self.api(&Message::ReportRequest(request)).unwrap(), None);
    }

    fn report_native(&mut self, key: Key, addr: SocketAddr, outcome: Outcome, latency_us: u32) {
        let report = native::Report { modid: key.0, cmdid: key.1, host: addr, outcome, latency_us };
        assert_eq!(self.api(&Message::NativeReport(report)).unwrap(), None);
    }

    /// A caller's loop: get a host, call it (failing on `bad` hosts), report. Returns the
    /// number of calls that went to each host.
    fn calls(
        &mut self,
        key: Key,
        n: usize,
        bad: &[SocketAddr],
        spacing: Duration,
    ) -> BTreeMap<SocketAddr, usize> {
        let mut picks = BTreeMap::new();
        for _ in 0..n {
            if let (RetCode::Succ, Some(addr)) = self.get_host(key) {
                *picks.entry(addr).or_insert(0) += 1;
                self.report(key, addr, !bad.contains(&addr));
            }
            self.advance(spacing);
        }
        picks
    }
}

const ROUTE: Key = (1001, 1);

fn sim_with_route(lasts: &[u8]) -> Sim {
    let mut sim = Sim::new(AgentConfig::default());
    sim.dns.routes.insert(ROUTE, weighted(lasts));
    sim
}

#[test]
fn an_unknown_route_is_pulled_and_then_served() {
    let mut sim = sim_with_route(&[1, 2]);
    assert_eq!(sim.get_host(ROUTE), (RetCode::NoExist, None), "not known yet: code 3 while pulling");
    assert_eq!(sim.dns.pulls.len(), 1);
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Fresh));
    let picks: Vec<_> = (0..4).map(|_| sim.get_host(ROUTE)).collect();
    assert_eq!(picks, [1, 2, 1, 2].map(|l| (RetCode::Succ, Some(host(l)))));
    assert!(sim.events.contains(&AgentEvent::RouteCreated { modid: 1001, cmdid: 1 }));
    assert!(sim.events.contains(&AgentEvent::RouteUpdated { modid: 1001, cmdid: 1, hosts: 2 }));
}

#[test]
fn a_pull_without_answer_is_retried_with_backoff() {
    let mut sim = sim_with_route(&[1]);
    sim.dns.silent = true;
    assert_eq!(sim.get_host(ROUTE).0, RetCode::NoExist);
    sim.advance(Duration::from_secs(40));
    let times: Vec<u64> = sim.dns.pulls.iter().map(|(t, _)| t.as_millis()).collect();
    // Sent at 1 s, then after 1, 2, 4, 8, 16 s, then capped at 30 s.
    assert_eq!(times, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000]);
    assert_eq!(sim.get_host(ROUTE).0, RetCode::NoExist, "still pulling");
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Pulling));
    assert_eq!(sim.agent.stats().pull_timeouts, 5);
    sim.dns.silent = false;
    sim.advance(Duration::from_secs(30));
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))));
}

#[test]
fn an_old_route_is_refreshed_while_served_and_served_stale_while_dns_is_down() {
    let mut sim = sim_with_route(&[1]);
    sim.get_host(ROUTE);
    sim.advance(Duration::from_secs(16));
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))), "served while refreshed");
    assert_eq!(sim.dns.pulls.len(), 2, "re-pulled after update_timeout");
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Fresh), "the refresh came back");

    sim.dns_down();
    sim.advance(Duration::from_secs(16));
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))), "last known hosts keep serving");
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Stale));
    sim.advance(Duration::from_secs(60));
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))));
    assert_eq!(sim.dns.pulls.len(), 2, "nothing is sent while the link is down");

    sim.dns.routes.insert(ROUTE, weighted(&[2]));
    sim.dns_up();
    assert_eq!(sim.dns.pulls.len(), 3, "reconnecting re-pulls every route");
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Fresh));
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(2))));
    assert!(sim.dns.subscribed.contains(&ROUTE), "the new connection carries the subscription");
    sim.dns_set_route(ROUTE, &[3]);
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(3))), "pushes flow again");
}

#[test]
fn a_push_keeps_the_state_of_hosts_that_stay_and_an_empty_push_removes_the_route() {
    let mut sim = sim_with_route(&[1, 2, 3]);
    sim.get_host(ROUTE);
    for _ in 0..15 {
        sim.report(ROUTE, host(1), false);
    }
    assert!(sim.agent.is_overloaded(ROUTE.0, ROUTE.1, host(1)));
    sim.dns_set_route(ROUTE, &[1, 3, 4]);
    assert!(sim.agent.is_overloaded(ROUTE.0, ROUTE.1, host(1)), "host 1 stayed: still overloaded");
    let hosts: BTreeSet<_> = sim.agent.route_hosts(ROUTE.0, ROUTE.1).unwrap().map(|h| h.addr).collect();
    assert_eq!(hosts, [1, 3, 4].map(host).into());
    let picks = sim.calls(ROUTE, 30, &[], Duration::from_millis(10));
    assert!(!picks.contains_key(&host(2)), "a removed host is never handed out");

    sim.dns_set_route(ROUTE, &[]);
    assert_eq!(
        sim.agent.route_state(ROUTE.0, ROUTE.1),
        Some(RouteState::Missing),
        "an empty host list removes the route's hosts; the route is remembered as missing"
    );
    assert!(sim.events.contains(&AgentEvent::RouteRemoved { modid: 1001, cmdid: 1 }));
    let pulls = sim.dns.pulls.len();
    assert_eq!(sim.get_host(ROUTE), (RetCode::NoExist, None));
    assert_eq!(sim.dns.pulls.len(), pulls, "within missing_ttl the answer comes from the negative cache");
    sim.dns.routes.insert(ROUTE, weighted(&[5]));
    sim.advance(AgentConfig::default().missing_ttl + Duration::from_millis(1));
    assert_eq!(sim.get_host(ROUTE), (RetCode::NoExist, None), "after it, the request pulls it anew");
    assert_eq!(sim.dns.pulls.len(), pulls + 1);
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(5))));
}

/// A local process asking for random routes used to fill the table for good (512 routes, then
/// every new route refused). Routes dns says don't exist are now a negative cache that gives
/// way to any new route, routes in use are never evicted, and the log lines stay bounded.
#[test]
fn a_caller_asking_for_random_routes_never_pushes_out_a_route_in_use() {
    let mut sim = Sim::new(AgentConfig::default());
    for modid in 0..4 {
        sim.dns.routes.insert((modid, 1), weighted(&[1]));
        sim.get_host((modid, 1));
    }
    sim.events.clear();
    for (n, modid) in (1000..3000).enumerate() {
        assert_eq!(sim.get_host((modid, 1)).0, RetCode::NoExist, "a route dns doesn't have");
        if n % 50 == 0 {
            for real in 0..4 {
                assert_eq!(sim.get_host((real, 1)), (RetCode::Succ, Some(host(1))), "in use: kept");
            }
            sim.advance(Duration::from_millis(200));
        }
    }
    let stats = *sim.agent.stats();
    assert_eq!(stats.route_table_full, 0, "the missing routes gave way each time");
    assert_eq!(stats.routes_missing, 2000);
    assert_eq!(sim.agent.route_count(), 4);
    assert!(
        sim.agent.missing_routes() <= 2,
        "at most a quarter of the table: {}",
        sim.agent.missing_routes()
    );
    // A new real route still finds room during the flood.
    sim.dns.routes.insert((7, 1), weighted(&[2]));
    assert_eq!(sim.get_host((7, 1)).0, RetCode::NoExist);
    assert_eq!(sim.get_host((7, 1)), (RetCode::Succ, Some(host(2))));
    // 2000 routes created and 2000 found missing over 8 s of report intervals: a bounded
    // number of lines, and the rest counted.
    sim.advance(Duration::from_secs(2));
    let lifecycle = sim
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                AgentEvent::RouteCreated { .. }
                    | AgentEvent::RouteMissing { .. }
                    | AgentEvent::RouteEvicted { .. }
            )
        })
        .count();
    let suppressed: u32 = sim
        .events
        .iter()
        .map(|e| if let AgentEvent::RouteEventsSuppressed { count } = e { *count } else { 0 })
        .sum();
    assert!(lifecycle <= 16 * 12, "{lifecycle} lifecycle events logged");
    assert!(suppressed as usize + lifecycle >= 2 * 2000, "the rest are counted: {suppressed}");
}

/// A full table of routes in use refuses a new one; once a route has not been asked for in
/// `route_idle_evict`, it makes room (the one asked for longest ago).
#[test]
fn a_full_table_evicts_the_route_nobody_asked_for_longest() {
    let config = AgentConfig::default();
    let mut sim = Sim::new(config.clone());
    for modid in 0..8 {
        sim.dns.routes.insert((modid, 1), weighted(&[1]));
        sim.get_host((modid, 1));
    }
    sim.dns.routes.insert((99, 1), weighted(&[3]));
    assert_eq!(sim.get_host((99, 1)).0, RetCode::SystemError, "all in use: refused");
    sim.advance(Duration::from_secs(10));
    for modid in 1..8 {
        sim.get_host((modid, 1)); // route 0 is the one nobody asks for
    }
    sim.advance(Duration::from_secs(config.route_idle_evict.as_secs() - 5));
    for modid in 1..8 {
        sim.get_host((modid, 1));
    }
    assert_eq!(sim.get_host((99, 1)).0, RetCode::NoExist, "route 0 idle long enough: evicted, 99 pulled");
    assert!(sim.events.contains(&AgentEvent::RouteEvicted { modid: 0, cmdid: 1 }));
    assert_eq!(sim.agent.route_state(0, 1), None);
    assert_eq!(sim.get_host((99, 1)), (RetCode::Succ, Some(host(3))));
    assert_eq!(sim.agent.stats().routes_evicted, 1);
}

/// An original-protocol caller can only hold IPv4 addresses: on a route mixing IPv4 and IPv6
/// hosts it used to get a system error on half its picks. It is now given the IPv4 hosts,
/// with every policy; native callers get them all.
#[test]
fn a_lars_caller_on_a_mixed_route_gets_its_ipv4_hosts() {
    let v6 = |n: u16| {
        SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n)), 80)
    };
    for policy in
        [PolicyKind::Lars, PolicyKind::RoundRobin, PolicyKind::Weighted, PolicyKind::P2c, PolicyKind::Maglev]
    {
        let config = AgentConfig { default_policy: policy, ..AgentConfig::default() };
        let mut sim = Sim::new(config);
        let mut hosts = weighted(&[1, 2]);
        hosts.extend((1..=6).map(|n| WeightedHost { addr: v6(n), weight: 1 }));
        sim.dns.routes.insert(ROUTE, hosts);
        sim.get_host_native(ROUTE);
        let mut lars_picks = BTreeSet::new();
        for _ in 0..60 {
            let (code, addr) = sim.get_host(ROUTE);
            assert_eq!(code, RetCode::Succ, "{policy:?}");
            let addr = addr.unwrap();
            lars_picks.insert(addr);
            sim.report(ROUTE, addr, true);
        }
        let expected: BTreeSet<_> = [host(1), host(2)].into();
        if policy == PolicyKind::Maglev {
            assert!(lars_picks.is_subset(&expected), "{policy:?}: {lars_picks:?}");
        } else {
            assert_eq!(lars_picks, expected, "{policy:?}");
        }
        assert_eq!(sim.agent.stats().ipv6_not_representable, 0);
        let native_picks: BTreeSet<_> = (0..60).filter_map(|_| sim.get_host_native(ROUTE).1).collect();
        assert!(native_picks.iter().any(SocketAddr::is_ipv6), "{policy:?}: native callers get IPv6 hosts");
    }
}

#[test]
fn a_failing_host_is_overloaded_then_probed_back() {
    let mut sim = sim_with_route(&[1, 2, 3]);
    sim.get_host(ROUTE);
    // Host 2 fails every call: after 15 failures in a row it only gets probes.
    let picks = sim.calls(ROUTE, 600, &[host(2)], Duration::from_millis(5));
    assert!(sim.agent.is_overloaded(ROUTE.0, ROUTE.1, host(2)));
    let bad_share = picks[&host(2)] as f64 / 600.0;
    assert!(bad_share < 0.15, "an overloaded host gets about one call in 11: {bad_share}");
    // Host 2 heals: its next probes succeed and bring it back.
    let picks = sim.calls(ROUTE, 300, &[], Duration::from_millis(5));
    assert!(!sim.agent.is_overloaded(ROUTE.0, ROUTE.1, host(2)), "probed back");
    assert!(picks[&host(2)] > 60, "back in rotation: {}", picks[&host(2)]);
    // The decision log says what happened to host 2, and why.
    let log: Vec<String> = sim.agent.decisions().map(|d| d.to_string()).collect();
    assert_eq!(
        log,
        [
            "1001/1 10.0.0.2:8002 overloaded: 15 consecutive failures (limit 15)",
            "1001/1 10.0.0.2:8002 probed: probe failed after 0 s overloaded",
            // Its later probes failed too, until it healed: 15 successes in a row.
            "1001/1 10.0.0.2:8002 readmitted: 15 consecutive successes (limit 15)",
        ]
    );
    assert_eq!(sim.agent.decision_counts(), (3, 0));
    // They went to lars-reporter with the statistics.
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.reporter.decisions, log);
}

#[test]
fn every_host_overloaded_answers_overload_except_probe_turns() {
    let mut sim = sim_with_route(&[1]);
    sim.get_host(ROUTE);
    for _ in 0..15 {
        sim.report(ROUTE, host(1), false);
    }
    let codes: Vec<_> = (0..11).map(|_| sim.get_host(ROUTE).0).collect();
    assert_eq!(codes[..10], [RetCode::Overload; 10]);
    assert_eq!(codes[10], RetCode::Succ);
}

#[test]
fn a_route_push_during_load_takes_effect_at_once() {
    let mut sim = sim_with_route(&[1, 2]);
    sim.get_host(ROUTE);
    let mut after_push = BTreeMap::new();
    for i in 0..400 {
        if i == 200 {
            sim.dns_set_route(ROUTE, &[2, 3]);
        }
        let (code, addr) = sim.get_host(ROUTE);
        assert_eq!(code, RetCode::Succ);
        let addr = addr.unwrap();
        sim.report(ROUTE, addr, true);
        if i >= 200 {
            *after_push.entry(addr).or_insert(0) += 1;
        }
        sim.advance(Duration::from_millis(2));
    }
    assert_eq!(after_push.keys().copied().collect::<Vec<_>>(), [host(2), host(3)]);
    sim.advance(Duration::from_secs(2));
    let total: u64 = sim.reporter.totals.values().map(|(s, _)| s).sum();
    assert_eq!(total, 400, "every report reached the reporter");
}

#[test]
fn reports_are_batched_and_sum_up_exactly() {
    let mut sim = sim_with_route(&[1, 2, 3]);
    sim.get_host(ROUTE);
    let picks = sim.calls(ROUTE, 900, &[host(3)], Duration::from_micros(900));
    sim.advance(Duration::from_secs(2));
    for (addr, n) in &picks {
        let (succ, err) = sim.reporter.totals[&(ROUTE, *addr)];
        assert_eq!(succ + err, *n as u64, "{addr}");
        assert_eq!(err > 0, *addr == host(3));
    }
    assert!(sim.reporter.frames <= 4, "900 results in {} frames, not one per call", sim.reporter.frames);
    assert_eq!(sim.reporter.overloaded.get(&(ROUTE, host(3))), Some(&true));
}

#[test]
fn a_leasing_clients_summary_merges_with_reports_and_leaves_the_balancer_alone() {
    let mut sim = sim_with_route(&[1, 2]);
    sim.get_host(ROUTE);
    sim.report_native(ROUTE, host(1), Outcome::Ok, 100);
    let entry = |key: Key, addr, succ, err, overload| native::HostStats {
        modid: key.0,
        cmdid: key.1,
        host: addr,
        succ,
        err,
        overload,
        overloaded: false,
        latency_sum_us: 1000,
        latency_max_us: 40,
    };
    let entries = [
        entry(ROUTE, host(1), 700, 0, 0),
        entry(ROUTE, host(2), 10, 300, 5),
        entry((9, 9), host(1), 1, 0, 0),
    ];
    let summary = native::CallStats { caller: 0, ts: 0, entries: List::from_slice(&entries) };
    assert_eq!(sim.api(&Message::NativeCallStats(summary)).unwrap(), None, "no answer");
    assert_eq!(sim.agent.stats().leased_calls, 1010);
    assert_eq!(sim.agent.stats().reports_unknown_route, 1);
    // 300 failures the agent did not balance do not overload host 2 for the agent's callers.
    assert_eq!(sim.calls(ROUTE, 4, &[], Duration::from_millis(1)).len(), 2);
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.reporter.totals[&(ROUTE, host(1))].0, 701 + 2);
    let (succ, err) = sim.reporter.totals[&(ROUTE, host(2))];
    assert_eq!((succ - 2, err), (10, 300));
}

#[test]
fn reports_go_out_early_after_report_after_results() {
    let config = AgentConfig {
        report_after: 50,
        report_interval: Duration::from_secs(3600),
        ..AgentConfig::default()
    };
    let mut sim = Sim::new(config);
    sim.dns.routes.insert(ROUTE, weighted(&[1]));
    sim.get_host(ROUTE);
    for _ in 0..49 {
        sim.report_native(ROUTE, host(1), Outcome::Ok, 100);
    }
    sim.advance(Duration::from_millis(1));
    assert_eq!(sim.reporter.frames, 0);
    sim.report_native(ROUTE, host(1), Outcome::Ok, 100);
    sim.advance(Duration::from_millis(1));
    assert_eq!(sim.reporter.totals[&(ROUTE, host(1))], (50, 0));
}

#[test]
fn statistics_are_kept_while_the_reporter_is_down_and_sent_when_it_is_back() {
    let mut sim = sim_with_route(&[1, 2]);
    sim.get_host(ROUTE);
    sim.reporter.up = false;
    sim.agent.handle_reporter_link(sim.now, false);
    // Ten flush intervals of outage, results coming in all along.
    for _ in 0..10 {
        for _ in 0..10 {
            sim.report(ROUTE, host(1), true);
        }
        sim.report(ROUTE, host(2), false);
        sim.report(ROUTE, host(2), false);
        sim.advance(Duration::from_secs(1));
    }
    assert_eq!(sim.reporter.frames, 0, "nothing sent to a link that is down");
    assert_eq!(sim.agent.stats().stats_dropped_calls, 0, "nothing dropped");
    assert_eq!(sim.agent.unreported_calls(), 120, "every call held");
    assert!(!sim.events.iter().any(|e| matches!(e, AgentEvent::StatsDropped { .. })));
    sim.reporter.up = true;
    sim.agent.handle_reporter_link(sim.now, true);
    sim.report(ROUTE, host(1), true);
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.reporter.totals[&(ROUTE, host(1))], (101, 0), "the outage's calls, then the new one");
    assert_eq!(sim.reporter.totals[&(ROUTE, host(2))], (0, 20));
    assert_eq!(sim.agent.unreported_calls(), 0);
}

#[test]
fn calls_that_cannot_be_kept_are_counted_in_calls() {
    let mut sim = sim_with_route(&[1]);
    sim.get_host(ROUTE);
    sim.reporter.up = false;
    sim.agent.handle_reporter_link(sim.now, false);
    // The route's tally table holds 8 hosts (the agent's H): the ninth host's calls have no room.
    for last in 1..=9 {
        for _ in 0..5 {
            sim.report(ROUTE, host(last), true);
        }
    }
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.agent.stats().stats_dropped_calls, 5, "the ninth host's 5 calls, not 1 entry");
    assert_eq!(sim.agent.unreported_calls(), 40);
}

#[test]
fn a_shutdown_flushes_at_once_and_says_what_it_could_not_send() {
    let config = AgentConfig { report_interval: Duration::from_secs(3600), ..AgentConfig::default() };
    let mut sim = Sim::new(config);
    sim.dns.routes.insert(ROUTE, weighted(&[1]));
    sim.get_host(ROUTE);
    for _ in 0..7 {
        sim.report(ROUTE, host(1), true);
    }
    sim.advance(Duration::from_millis(10));
    assert_eq!(sim.reporter.frames, 0, "an hour until the next flush");
    assert!(sim.agent.handle_shutdown(sim.now));
    assert!(sim.agent.flushing());
    sim.drive();
    assert!(!sim.agent.flushing());
    assert_eq!(sim.reporter.totals[&(ROUTE, host(1))], (7, 0));
    assert_eq!(sim.agent.unreported_calls(), 0);

    // With lars-reporter down there is nothing to flush to: the driver learns what is left.
    sim.reporter.up = false;
    sim.agent.handle_reporter_link(sim.now, false);
    sim.report(ROUTE, host(1), false);
    assert!(!sim.agent.handle_shutdown(sim.now));
    assert_eq!(sim.agent.unreported_calls(), 1);
}

#[test]
fn both_codecs_on_the_api_and_on_the_links() {
    for codec in [Codec::Lars, Codec::Native] {
        let choice = CodecChoice::Fixed(codec);
        let config = AgentConfig { dns_codec: choice, reporter_codec: choice, ..AgentConfig::default() };
        let mut sim = Sim::new(config);
        sim.dns.routes.insert(ROUTE, weighted(&[1, 2]));
        assert_eq!(sim.get_host_native(ROUTE), (RetCode::NoExist, None));
        assert_eq!(sim.dns.codec, Some(codec));
        assert_eq!(sim.get_host_native(ROUTE), (RetCode::Succ, Some(host(1))));
        assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(2))));
        sim.report_native(ROUTE, host(1), Outcome::Ok, 250);
        sim.report(ROUTE, host(2), false);

        let route =
            sim.api(&Message::ApiGetRouteRequest(lars::GetRouteRequest { modid: ROUTE.0, cmdid: ROUTE.1 }));
        let Some(Message::ApiGetRouteResponse(r)) = route.unwrap() else { panic!("no Lars route answer") };
        assert_eq!((r.modid, r.cmdid, r.hosts.len()), (ROUTE.0, ROUTE.1, 2));
        let request = native::GetRouteRequest { seq: 77, modid: ROUTE.0, cmdid: ROUTE.1 };
        let Some(Message::NativeRouteResponse(r)) =
            sim.api(&Message::NativeGetRouteRequest(request)).unwrap()
        else {
            panic!("no native route answer")
        };
        assert_eq!((r.seq, r.code, r.hosts.len()), (77, RetCode::Succ, 2));

        sim.advance(Duration::from_secs(2));
        assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (1, 0), "{codec:?}");
        assert_eq!(sim.reporter.status[&(ROUTE, host(2))], (0, 1), "{codec:?}");
        assert!(sim.events.contains(&AgentEvent::CodecChosen { link: Link::Dns, codec }));
    }
}

#[test]
fn a_daemon_that_answers_the_hello_is_spoken_to_natively() {
    let mut sim = sim_with_route(&[1]);
    sim.get_host(ROUTE);
    assert_eq!(sim.agent.link_codec(Link::Dns), Some(Codec::Native));
    assert_eq!(sim.agent.link_codec(Link::Reporter), Some(Codec::Native));
    assert!(sim.events.contains(&AgentEvent::CodecChosen { link: Link::Dns, codec: Codec::Native }));
    assert_eq!(sim.dns.codec, Some(Codec::Native));
}

#[test]
fn an_original_dns_and_reporter_are_spoken_to_in_lars_once_the_hello_goes_unanswered() {
    let mut sim = Sim::new(AgentConfig::default());
    sim.dns.original = true;
    sim.reporter.original = true;
    sim.dns.routes.insert(ROUTE, weighted(&[1, 2]));
    assert_eq!(sim.get_host(ROUTE), (RetCode::NoExist, None));
    assert!(sim.dns.pulls.is_empty(), "no pull before the codec is known");
    assert_eq!(sim.agent.link_codec(Link::Dns), None);
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.agent.link_codec(Link::Dns), Some(Codec::Lars));
    assert_eq!(sim.agent.link_codec(Link::Reporter), Some(Codec::Lars));
    assert!(sim.events.contains(&AgentEvent::CodecChosen { link: Link::Dns, codec: Codec::Lars }));
    assert!(sim.events.contains(&AgentEvent::CodecChosen { link: Link::Reporter, codec: Codec::Lars }));
    assert_eq!(sim.dns.codec, Some(Codec::Lars), "the pull went out in the Lars codec");
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))));
    sim.report(ROUTE, host(1), true);
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (1, 0), "statistics reached the original");
}

#[test]
fn results_reported_while_the_reporter_is_greeted_are_kept_for_the_next_flush() {
    let mut sim = Sim::new(AgentConfig::default());
    sim.reporter.original = true;
    sim.dns.routes.insert(ROUTE, weighted(&[1]));
    sim.get_host(ROUTE);
    sim.get_host(ROUTE);
    for _ in 0..3 {
        sim.report(ROUTE, host(1), true);
    }
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (3, 0));
    assert_eq!(sim.agent.stats().stats_dropped_calls, 0);
}

/// `ServerCallStatus` holds each host's calls since its last idle/overload change, as the
/// original's did, not the last second's: 100 calls over several flushes read 100.
#[test]
fn server_call_status_counts_since_the_last_state_change_in_both_codecs() {
    for codec in [Codec::Lars, Codec::Native] {
        let choice = CodecChoice::Fixed(codec);
        let config = AgentConfig { dns_codec: choice, reporter_codec: choice, ..AgentConfig::default() };
        let mut sim = Sim::new(config);
        sim.dns.routes.insert(ROUTE, weighted(&[1]));
        sim.get_host(ROUTE);
        sim.get_host(ROUTE);
        // One failure in five: neither 15 in a row nor over the 10 % error rate of the
        // virtual counters (which start at 180 successes), so the host stays idle.
        for _second in 0..5 {
            for call in 0..20 {
                sim.report(ROUTE, host(1), call % 5 != 4);
            }
            sim.advance(Duration::from_secs(1));
        }
        assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (80, 20), "{codec:?}");
        // The 9th failure in a row takes the virtual error rate over 10 % (29 of 289) and
        // overloads the host; its window starts again there, so 6 of the 15 are in it.
        for _ in 0..15 {
            sim.report(ROUTE, host(1), false);
        }
        sim.advance(Duration::from_secs(1));
        assert!(sim.agent.is_overloaded(ROUTE.0, ROUTE.1, host(1)));
        assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (0, 6), "{codec:?}: a fresh window");
        assert!(sim.reporter.overloaded[&(ROUTE, host(1))]);
    }
}

#[test]
fn bad_input_is_refused_and_counted() {
    let mut sim = sim_with_route(&[1]);
    let mut reply = [0u8; 256];
    let now = sim.now;
    assert_eq!(
        sim.agent.handle_api_datagram(now, &[4, 0, 0], &mut reply),
        Err(ApiError::Malformed(Error::Truncated))
    );
    let wrong_len = [4, 0, 0, 0, 9, 0, 0, 0, 8, 1];
    assert!(matches!(
        sim.agent.handle_api_datagram(now, &wrong_len, &mut reply),
        Err(ApiError::Malformed(Error::LengthMismatch { .. }))
    ));
    let response_msgid = [5, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        sim.agent.handle_api_datagram(now, &response_msgid, &mut reply),
        Err(ApiError::Unexpected(MsgId::GetHostResponse))
    );
    let bad_body = [4, 0, 0, 0, 2, 0, 0, 0, 0x08, 0x80];
    assert_eq!(
        sim.agent.handle_api_datagram(now, &bad_body, &mut reply),
        Err(ApiError::Malformed(Error::Truncated))
    );
    assert_eq!(sim.agent.stats().api_errors, 4);
    let garbage = Frame { msgid: MsgId::NativeRouteResponse, body: &[0xff, 0xff] };
    assert!(sim.agent.handle_dns_frame(now, garbage).is_err());
    let unexpected = Frame { msgid: MsgId::GetHostRequest, body: &[] };
    assert!(sim.agent.handle_dns_frame(now, unexpected).is_err());
    assert_eq!(sim.agent.stats().dns_errors, 2);
    // The agent still serves.
    sim.get_host(ROUTE);
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))));
}

#[test]
fn a_stats_request_is_answered_with_the_agents_counters_and_the_drivers() {
    let mut sim = sim_with_route(&[1]);
    sim.get_host(ROUTE);
    let Ok(Some(Message::StatsResponse(answer))) = sim.api(&Message::StatsRequest(StatsRequest { seq: 77 }))
    else {
        panic!("a StatsRequest is answered with a StatsResponse");
    };
    assert_eq!((answer.seq, answer.role), (77, native::Role::Agent));
    let names: Vec<&str> = answer.counters.iter().map(|c| c.name).collect();
    let mut expected: Vec<&str> = sim.agent.stats().counters().iter().map(|&(name, _)| name).collect();
    expected.extend(["routes", "stats_waiting_calls", "routes_stale", "dns_ready"]);
    #[cfg(feature = "auth")]
    expected.push("auth_failures");
    expected.extend(["decisions", "decisions_dropped"]);
    assert_eq!(names, expected, "every counter, in order");
    let value = |name: &str| answer.counters.iter().find(|c| c.name == name).map(|c| c.value);
    // Taken once the request itself was counted.
    assert_eq!(value("api_requests"), Some(sim.agent.stats().api_requests));
    assert_eq!(value("get_host"), Some(sim.agent.stats().get_host));
    assert_eq!((value("routes"), value("routes_stale"), value("dns_ready")), (Some(1), Some(0), Some(1)));

    // A driver's counters follow the agent's.
    let mut datagram = [0u8; 16];
    let n = Message::StatsRequest(StatsRequest { seq: 5 }).emit_frame(&mut datagram).unwrap();
    let mut reply = vec![0u8; 4096];
    let now = sim.now;
    let len = sim
        .agent
        .handle_api_datagram_with(
            now,
            &datagram[..n],
            &mut reply,
            &[("pool_small_in_use", 3), ("udp_bad_framing", 2)],
        )
        .unwrap();
    let frame = Frame::parse_datagram(&reply[..len], MAX_BODY).unwrap();
    let Ok(Message::StatsResponse(answer)) = Message::from_frame(frame) else { panic!("{frame:?}") };
    let tail: Vec<(&str, u64)> =
        answer.counters.iter().skip(expected.len()).map(|c| (c.name, c.value)).collect();
    assert_eq!(tail, [("pool_small_in_use", 3), ("udp_bad_framing", 2)]);

    // One that does not decode is refused and counted, like any bad request.
    let errors = sim.agent.stats().api_errors;
    let bad = [0x40, 0x01, 0, 0, 1, 0, 0, 0, 0x80];
    assert_eq!(
        sim.agent.handle_api_datagram(now, &bad, &mut reply),
        Err(ApiError::Malformed(Error::Truncated))
    );
    assert_eq!(sim.agent.stats().api_errors, errors + 1);
}

#[test]
fn a_full_table_and_an_oversized_route_are_clear_errors() {
    let mut sim = Sim::new(AgentConfig::default());
    for modid in 0..8 {
        sim.dns.routes.insert((modid, 1), weighted(&[1]));
        assert_eq!(sim.get_host((modid, 1)).0, RetCode::NoExist);
    }
    assert_eq!(sim.get_host((99, 1)), (RetCode::SystemError, None), "table full: code 2");
    assert_eq!(sim.agent.stats().route_table_full, 1);
    assert_eq!(sim.get_host((0, 1)), (RetCode::Succ, Some(host(1))), "the others still serve");

    sim.dns_set_route((0, 1), &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(sim.agent.stats().route_over_capacity, 1);
    assert!(sim.events.contains(&AgentEvent::RouteTooLarge { modid: 0, cmdid: 1, hosts: 9 }));
    assert_eq!(held_hosts(&sim, (0, 1)).len(), 8, "a subset is served");
    assert_eq!(sim.get_host((0, 1)).0, RetCode::Succ);
}

fn held_hosts(sim: &Sim, key: Key) -> Vec<SocketAddr> {
    sim.agent.route_hosts(key.0, key.1).map_or_else(Vec::new, |hosts| hosts.map(|h| h.addr).collect())
}

/// A route with more hosts than the agent can hold is served, as a subset that stays the same
/// at every update and differs from agent to agent (by `caller`), so the route's load spreads.
#[test]
fn an_oversized_route_is_served_as_a_stable_subset() {
    let all: Vec<u8> = (1..=20).collect();
    let subset_for = |caller: u32| {
        let mut sim = Sim::new(AgentConfig { caller, ..AgentConfig::default() });
        sim.dns.routes.insert(ROUTE, weighted(&all));
        assert_eq!(sim.get_host(ROUTE).0, RetCode::NoExist, "pulling");
        assert_eq!(sim.get_host(ROUTE).0, RetCode::Succ, "served at once");
        assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Fresh));
        assert_eq!(sim.agent.stats().route_over_capacity, 1);
        assert!(sim.events.contains(&AgentEvent::RouteTooLarge {
            modid: ROUTE.0,
            cmdid: ROUTE.1,
            hosts: 20
        }));
        let first = held_hosts(&sim, ROUTE);
        assert_eq!(first.len(), 8, "as many as a route holds");
        assert!(first.iter().all(|h| all.iter().any(|&l| host(l) == *h)));
        // The same route pushed again, in another order: the same subset.
        let mut shuffled = all.clone();
        shuffled.reverse();
        sim.dns_set_route(ROUTE, &shuffled);
        assert_eq!(held_hosts(&sim, ROUTE), first);
        first
    };
    assert_ne!(subset_for(0x0a00_0001), subset_for(0x0a00_0002), "agents hold different subsets");
}

#[test]
fn report_after_zero_means_interval_only() {
    let config = AgentConfig { report_after: 0, ..AgentConfig::default() };
    let mut sim = Sim::new(config);
    sim.dns.routes.insert(ROUTE, weighted(&[1]));
    sim.get_host(ROUTE);
    sim.report(ROUTE, host(1), true);
    assert!(sim.agent.poll_timeout().unwrap() > sim.now, "no spin: the next deadline is the interval");
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.reporter.totals[&(ROUTE, host(1))], (1, 0));
}

#[test]
fn per_route_policies_are_honoured() {
    let mut config = AgentConfig::default();
    config
        .route_policies
        .push(lars_core::agent::RoutePolicy { modid: 7, cmdid: 7, policy: PolicyKind::RoundRobin })
        .unwrap();
    let mut sim = Sim::new(config);
    sim.dns.routes.insert((7, 7), weighted(&[1, 2]));
    sim.get_host((7, 7));
    for _ in 0..20 {
        sim.report((7, 7), host(1), false);
    }
    assert!(!sim.agent.is_overloaded(7, 7, host(1)), "round robin does not overload hosts");
}

/// A restarted lars-dns, a replica that is behind, or another store gives a lower version: the
/// agent takes it all the same (versions order nothing across links), and a route removed
/// there is removed here.
#[test]
fn a_lower_version_on_a_new_link_is_taken() {
    let mut sim = sim_with_route(&[1, 2]);
    sim.dns.version = 1_764_000_000_000_000_000; // a file's mtime in nanoseconds
    sim.get_host(ROUTE);
    assert_eq!(sim.get_host(ROUTE).0, RetCode::Succ);
    // Fail over to a replica (or a restarted dns on MySQL) whose version is in seconds and
    // which no longer has host 2.
    sim.dns_down();
    sim.dns.version = 1_764_000_000;
    sim.dns.routes.insert(ROUTE, weighted(&[1]));
    sim.dns_up();
    let hosts: Vec<SocketAddr> = sim.agent.route_hosts(ROUTE.0, ROUTE.1).unwrap().map(|h| h.addr).collect();
    assert_eq!(hosts, [host(1)], "the removed host is gone at once");
    assert!(sim.agent.route_state(ROUTE.0, ROUTE.1) == Some(RouteState::Fresh));
    // And the same link's later push, with a version lower still, is taken too.
    sim.dns.version = 5;
    sim.dns_set_route(ROUTE, &[3]);
    let hosts: Vec<SocketAddr> = sim.agent.route_hosts(ROUTE.0, ROUTE.1).unwrap().map(|h| h.addr).collect();
    assert_eq!(hosts, [host(3)]);
    assert_eq!(sim.agent.stats().pull_timeouts, 0, "no pull was left in flight");
}

/// Failing over between replicas that are ahead and behind each other: the agent serves what
/// the replica it is linked to says, and nothing pins it.
#[test]
fn failing_over_between_replicas_ahead_and_behind_follows_the_current_one() {
    let mut sim = sim_with_route(&[1]);
    sim.dns.version = u64::MAX; // a peer that once said 2^64 - 1
    sim.get_host(ROUTE);
    for (version, lasts) in [(10u64, &[2u8][..]), (20, &[3]), (15, &[2, 3])] {
        sim.dns_down();
        sim.dns.version = version;
        sim.dns.routes.insert(ROUTE, weighted(lasts));
        sim.dns_up();
        let mut hosts: Vec<SocketAddr> =
            sim.agent.route_hosts(ROUTE.0, ROUTE.1).unwrap().map(|h| h.addr).collect();
        hosts.sort();
        let want: Vec<SocketAddr> = lasts.iter().map(|&l| host(l)).collect();
        assert_eq!(hosts, want, "replica at version {version}");
    }
}

/// A lars-dns restarted on a store it cannot read answers "not ready": the agent keeps serving
/// what it has, says so, asks again with backoff, and takes the routes once the dns has them.
#[test]
fn a_dns_that_has_not_loaded_its_store_does_not_wipe_the_agent() {
    let mut sim = sim_with_route(&[1, 2]);
    sim.get_host(ROUTE);
    assert_eq!(sim.get_host(ROUTE).0, RetCode::Succ);
    sim.dns_down();
    sim.dns.unready = true;
    sim.dns_up();
    assert_eq!(sim.agent.stats().dns_unready_answers, 1);
    assert!(!sim.agent.dns_ready());
    assert!(sim.events.contains(&AgentEvent::DnsUnready { modid: ROUTE.0, cmdid: ROUTE.1 }));
    for _ in 0..100 {
        assert_eq!(sim.get_host(ROUTE).0, RetCode::Succ, "still served");
    }
    // Past update_timeout the route is stale, and still served.
    sim.advance(Duration::from_secs(20));
    assert_eq!(sim.get_host(ROUTE).0, RetCode::Succ);
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Stale));
    assert_eq!(sim.agent.stale_routes(), 1);
    let asked = sim.dns.pulls.len();
    assert!(asked >= 3, "asked again with backoff ({asked} pulls)");
    // The dns loads its store: the next pull is answered and the route is fresh again.
    sim.dns.unready = false;
    sim.dns.routes.insert(ROUTE, weighted(&[2]));
    sim.advance(Duration::from_secs(30));
    assert!(sim.agent.dns_ready());
    assert_eq!(held_hosts(&sim, ROUTE), [host(2)]);
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Fresh));
}

/// As the original did, a route with results is reported whole, every host in it (those not
/// called with no calls), and a route without any is not reported.
#[test]
fn a_flush_reports_every_host_of_an_active_route_and_no_idle_route() {
    let mut sim = sim_with_route(&[1, 2, 3]);
    sim.dns.routes.insert((7, 7), weighted(&[4]));
    sim.get_host(ROUTE);
    sim.get_host((7, 7));
    sim.get_host(ROUTE);
    sim.report(ROUTE, host(1), true);
    sim.advance(Duration::from_secs(2));
    let reported: Vec<(Key, SocketAddr)> = sim.reporter.status.keys().copied().collect();
    assert_eq!(reported, [(ROUTE, host(1)), (ROUTE, host(2)), (ROUTE, host(3))]);
    assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (1, 0));
    assert_eq!(sim.reporter.status[&(ROUTE, host(2))], (0, 0));
    let frames = sim.reporter.frames;
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.reporter.frames, frames, "nothing new, nothing sent");
}

/// Results recorded between the frames of a flush (a driver may interleave them) neither stall
/// the flush on one route nor get lost: every route is reported, and the new results go out.
#[test]
fn results_recorded_during_a_flush_do_not_stall_it() {
    for codec in [Codec::Lars, Codec::Native] {
        let choice = CodecChoice::Fixed(codec);
        let config = AgentConfig { dns_codec: choice, reporter_codec: choice, ..AgentConfig::default() };
        let mut sim = Sim::new(config);
        let other = (9, 9);
        sim.dns.routes.insert(ROUTE, weighted(&[1]));
        sim.dns.routes.insert(other, weighted(&[2]));
        for key in [ROUTE, other, ROUTE, other] {
            sim.get_host(key);
        }
        sim.report(ROUTE, host(1), true);
        sim.report(other, host(2), true);
        // To the flush, then one frame at a time with a new result of the first route between.
        sim.now = sim.agent.poll_timeout().unwrap();
        sim.agent.handle_timeout(sim.now);
        let mut frames = 0u32;
        while let Some(tx) = sim.agent.poll_transmit(sim.now, &mut sim.buf) {
            let bytes = sim.buf[..tx.len].to_vec();
            sim.reporter_receive(&bytes);
            frames += 1;
            assert!(frames < 10, "{codec:?}: the flush keeps going back to the same route");
            sim.agent.report(sim.now, ROUTE.0, ROUTE.1, host(1), Outcome::Ok, 10);
        }
        assert!(sim.reporter.status.contains_key(&(other, host(2))), "{codec:?}: the second route");
        sim.advance(Duration::from_secs(2));
        // The window (both codecs) and the sum of the periods' counts (native) hold every call.
        assert_eq!(sim.reporter.status[&(ROUTE, host(1))].0, 1 + frames, "{codec:?}");
        if codec == Codec::Native {
            assert_eq!(sim.reporter.totals[&(ROUTE, host(1))].0, u64::from(1 + frames), "nothing lost");
        }
    }
}

/// With a secret, the agent's first frame on a link is its `AuthHello`, nothing from the dns is
/// taken before the dns proved the secret, a push before that closes the link, and once the
/// proof checks out the agent proves itself and only then pulls.
#[test]
fn with_a_secret_nothing_from_the_dns_is_taken_before_it_proved_it() {
    use lars_core::auth::{Responder, Secret};
    let secret = Secret::new(b"the fleet's shared secret").unwrap();
    let config = AgentConfig { secret: Some(secret.clone()), caller: 7, ..AgentConfig::default() };
    let now = Instant::from_millis(1_000);
    let mut agent: Agent<8, 8> = Agent::new(config, now);
    let mut buf = vec![0u8; 70_000];
    fn frame_of(bytes: &[u8]) -> Frame<'_> {
        Frame::parse_datagram(bytes, MAX_BODY).unwrap()
    }
    fn encode(msgid: MsgId, body: &dyn lars_core::wire::Encode) -> Vec<u8> {
        let mut raw = vec![0u8; body.buffer_len()];
        body.emit(&mut raw).unwrap();
        let mut out = vec![0u8; 256];
        let len = frame::encode(msgid, &lars_core::wire::Raw(&raw), &mut out).unwrap();
        out.truncate(len);
        out
    }
    // A caller asks for route 5/5, so the agent wants to pull it.
    let request = encode(
        MsgId::NativeGetHostRequest,
        &native::GetHostRequest { seq: 1, modid: 5, cmdid: 5, key: None },
    );
    let mut reply = [0u8; 512];
    let _ = agent.handle_api_datagram(now, &request, &mut reply);

    agent.handle_link_nonce(Link::Dns, [1; 16]);
    agent.handle_dns_link(now, true);
    let tx = agent.poll_transmit(now, &mut buf).expect("the hello");
    assert_eq!((tx.link, frame_of(&buf[..tx.len]).msgid), (Link::Dns, MsgId::AuthHello));
    assert!(
        agent.poll_transmit(now, &mut buf).is_none_or(|tx| tx.link != Link::Dns),
        "no pull before the proof"
    );
    // An impostor pushes a route without answering the challenge: refused, and the link closes.
    let hosts = weighted(&[66]);
    let push = native::RouteResponse {
        seq: 0,
        modid: 5,
        cmdid: 5,
        code: RetCode::Succ,
        version: 1,
        hosts: List::from_slice(&hosts),
    };
    let pushed = encode(MsgId::NativeRouteResponse, &push);
    assert!(agent.handle_dns_frame(now, frame_of(&pushed)).is_err());
    assert_eq!(agent.route_hosts(5, 5).map(|h| h.count()), Some(0), "the impostor's host was not taken");
    assert_eq!(agent.poll_link_close(), Some(Link::Dns));
    assert_eq!(agent.poll_link_close(), None);
    agent.handle_dns_link(now, false);

    // The real dns: a new link, a new nonce, a challenge that checks out.
    agent.handle_link_nonce(Link::Dns, [2; 16]);
    agent.handle_dns_link(now, true);
    let tx = agent.poll_transmit(now, &mut buf).unwrap();
    let hello = native::AuthHello::parse(frame_of(&buf[..tx.len]).body).unwrap();
    assert_eq!((hello.node, hello.nonce), (7, [2; 16]));
    let mut dns = Responder::new();
    let challenge = dns.handle_hello(Some(&secret), &hello, native::Role::Dns, 0, MAX_BODY, [3; 16]).unwrap();
    agent.handle_dns_frame(now, frame_of(&encode(MsgId::AuthChallenge, &challenge))).unwrap();
    let tx = agent.poll_transmit(now, &mut buf).unwrap();
    let proof = native::AuthProof::parse(frame_of(&buf[..tx.len]).body).expect("the proof comes first");
    assert_eq!(dns.handle_proof(Some(&secret), &proof), Ok(7));
    let tx = agent.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(frame_of(&buf[..tx.len]).msgid, MsgId::NativeGetRouteRequest, "then the pull");
    agent.handle_dns_frame(now, frame_of(&pushed)).unwrap();
    assert_eq!(agent.route_hosts(5, 5).map(|h| h.count()), Some(1), "the proven dns's route is taken");
}
