//! Agent checks: `lars_core::agent` driven as a driver would drive it, by a sequence of
//! `arbitrary` operations (API requests in both codecs and as raw bytes, dns and reporter
//! frames, links going up and down, time passing), with its invariants checked after each:
//! - it never panics;
//! - a host it picks belongs to the route, and the hosts it serves are among those lars-dns
//!   (or a restored cache) offered;
//! - every answer and every frame it transmits decodes, is of the kind expected, and frames go
//!   only to links that are up;
//! - its counters never go back, agree with what it did (requests handled, pulls and
//!   statistics frames sent), and `StatsRequest` answers them;
//! - after `handle_timeout(now)` and a drained `poll_transmit`, its next deadline is in the
//!   future (a driver never spins).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use arbitrary::{Arbitrary, Unstructured};
use lars_core::agent::{Agent, AgentConfig, Link, RoutePolicy};
use lars_core::lb::PolicyKind;
use lars_core::time::{Duration, Instant};
use lars_core::wire::frame::{self, MAX_BODY};
use lars_core::wire::native::{self, Outcome, WeightedHost};
use lars_core::wire::{Codec, CodecChoice, Encode, Frame, List, Message, MsgId, RetCode, lars};

/// Small on purpose: nine routes meet a table of six, and six hosts a route of four.
const ROUTES: usize = 6;
const HOSTS: usize = 4;
/// Operations per input: enough to fill tables, few enough to stay fast.
const MAX_OPS: usize = 400;

/// One of nine routes.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct RouteSel(u8);

impl RouteSel {
    fn key(self) -> (i32, i32) {
        let n = self.0 % 9;
        (i32::from(n / 3) + 1000, i32::from(n % 3))
    }
}

/// One of ten hosts, two of them IPv6 (which the Lars codec cannot carry).
#[derive(Arbitrary, Debug, Clone, Copy)]
struct HostSel(u8);

impl HostSel {
    fn addr(self) -> SocketAddr {
        match self.0 % 10 {
            8 => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 9000),
            9 => SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5)), 80),
            n => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n + 1), 9000 + u16::from(n % 2))),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum OutcomeSel {
    Ok,
    Fail,
    Overload,
}

impl From<OutcomeSel> for Outcome {
    fn from(o: OutcomeSel) -> Outcome {
        match o {
            OutcomeSel::Ok => Outcome::Ok,
            OutcomeSel::Fail => Outcome::Fail,
            OutcomeSel::Overload => Outcome::Overload,
        }
    }
}

/// A msgid, known to either codec.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct MsgSel(u8);

impl MsgSel {
    fn id(self) -> MsgId {
        MsgId::ALL[usize::from(self.0) % MsgId::ALL.len()]
    }
}

/// How the agent is configured.
#[derive(Arbitrary, Debug)]
struct Setup {
    policy: u8,
    own_policy: Option<(RouteSel, u8)>,
    dns_codec: u8,
    reporter_codec: u8,
    report_after: u8,
    caller: u32,
    seed: u64,
}

impl Setup {
    fn config(&self) -> AgentConfig {
        let policy = |n: u8| PolicyKind::ALL[usize::from(n) % PolicyKind::ALL.len()];
        let codec = |n: u8| match n % 3 {
            0 => CodecChoice::Auto,
            1 => CodecChoice::Fixed(Codec::Native),
            _ => CodecChoice::Fixed(Codec::Lars),
        };
        let mut config = AgentConfig {
            default_policy: policy(self.policy),
            dns_codec: codec(self.dns_codec),
            reporter_codec: codec(self.reporter_codec),
            report_after: u32::from(self.report_after % 8),
            caller: self.caller,
            seed: self.seed,
            ..AgentConfig::default()
        };
        if let Some((route, n)) = self.own_policy {
            let (modid, cmdid) = route.key();
            let _ = config.route_policies.push(RoutePolicy { modid, cmdid, policy: policy(n) });
        }
        config
    }
}

/// What happens next.
#[derive(Arbitrary, Debug)]
enum Op {
    GetHost {
        route: RouteSel,
        key: Option<u64>,
        native: bool,
        seq: u32,
    },
    Report {
        route: RouteSel,
        host: HostSel,
        outcome: OutcomeSel,
        latency_us: u32,
        native: bool,
    },
    ReportBatch(Vec<(RouteSel, HostSel, OutcomeSel, u32)>),
    Summary(Vec<(RouteSel, HostSel, u16, u16)>),
    GetRoute {
        route: RouteSel,
        native: bool,
        seq: u32,
    },
    Stats {
        seq: u32,
    },
    /// Any body under a known msgid; `cut` bytes short or long of its header's length.
    ApiBytes {
        msgid: MsgSel,
        body: Vec<u8>,
        cut: i8,
    },
    DnsRoute {
        route: RouteSel,
        native: bool,
        code: u8,
        version: u64,
        hosts: Vec<(HostSel, u8)>,
    },
    DnsFrame {
        msgid: MsgSel,
        body: Vec<u8>,
    },
    ReporterFrame {
        msgid: MsgSel,
        body: Vec<u8>,
    },
    DnsHello,
    ReporterHello,
    Link {
        dns: bool,
        up: bool,
    },
    Advance {
        ms: u16,
    },
    Restore {
        route: RouteSel,
        hosts: Vec<(HostSel, u8)>,
    },
}

/// Runs the operations `data` encodes against one agent.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else { return };
    // `LARS_FUZZ_TRACE=1 cargo fuzz run ... agent INPUT` prints what an input does.
    let trace = std::env::var_os("LARS_FUZZ_TRACE").is_some();
    if trace {
        eprintln!("{setup:?}");
    }
    let mut sim = Sim::new(setup.config());
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        if trace {
            eprintln!("at {} ms: {op:?}", sim.now.as_millis());
        }
        sim.step(op);
        sim.check();
    }
}

/// Decodes an answer the agent wrote.
fn parse(frame: &[u8]) -> Result<Message<'_>, lars_core::wire::Error> {
    Message::from_frame(Frame::parse_datagram(frame, MAX_BODY)?)
}

/// The agent, its virtual clock, the links as a driver sees them, and what it was told.
struct Sim {
    agent: Agent<ROUTES, HOSTS>,
    now: Instant,
    dns_up: bool,
    reporter_up: bool,
    buf: Vec<u8>,
    reply: Vec<u8>,
    counters: Vec<(&'static str, u64)>,
    api_calls: u64,
    api_refused: u64,
    dns_refused: u64,
    pulls: u64,
    stats_frames: u64,
}

impl Sim {
    fn new(config: AgentConfig) -> Sim {
        let now = Instant::from_millis(1);
        let agent = Agent::new(config, now);
        let counters = agent.stats().counters().to_vec();
        Sim {
            agent,
            now,
            dns_up: false,
            reporter_up: false,
            buf: vec![0; frame::HEADER_LEN + MAX_BODY as usize],
            reply: vec![0; frame::HEADER_LEN + MAX_BODY as usize],
            counters,
            api_calls: 0,
            api_refused: 0,
            dns_refused: 0,
            pulls: 0,
            stats_frames: 0,
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::GetHost { route, key, native, seq } => {
                let (modid, cmdid) = route.key();
                let before = self.agent.stats().get_host;
                let reply = if native {
                    self.api(MsgId::NativeGetHostRequest, &native::GetHostRequest { seq, modid, cmdid, key })
                } else {
                    self.api(MsgId::GetHostRequest, &lars::GetHostRequest { seq, modid, cmdid })
                };
                assert_eq!(self.agent.stats().get_host, before + 1, "get_host not counted once");
                let reply = reply.expect("a get_host is answered");
                let (code, host) = match parse(&reply) {
                    Ok(Message::GetHostResponse(r)) if !native => {
                        assert_eq!((r.seq, r.modid, r.cmdid), (seq, modid, cmdid));
                        (RetCode::from_i32(r.retcode).expect("a known code"), r.host.map(SocketAddr::V4))
                    }
                    Ok(Message::NativeGetHostResponse(r)) if native => {
                        assert_eq!((r.seq, r.modid, r.cmdid), (seq, modid, cmdid));
                        (r.code, r.host)
                    }
                    other => panic!("get_host answered with {other:?}"),
                };
                assert_eq!(code == RetCode::Succ, host.is_some(), "a host exactly on success");
                // Hosts that can be picked: weight 0 means drained, never picked.
                let held =
                    self.agent.route_hosts(modid, cmdid).map(|hosts| hosts.filter(|h| h.weight > 0).count());
                match code {
                    RetCode::NoExist => {
                        assert!(held.unwrap_or(0) == 0, "NoExist for a route of {held:?} hosts")
                    }
                    // A full table, or (Lars codec) an IPv6 host the answer cannot carry.
                    RetCode::SystemError => assert!(
                        held.is_none() && self.agent.route_count() == ROUTES || !native && held.is_some(),
                        "SystemError for a route of {held:?} hosts"
                    ),
                    RetCode::Succ | RetCode::Overload => {
                        assert!(held.is_some(), "an answer for a route not held")
                    }
                }
                if let Some(host) = host {
                    self.assert_in_route(modid, cmdid, host);
                }
                // The direct call must agree with the route too.
                if let (RetCode::Succ, Some(host)) = self.agent.get_host(self.now, modid, cmdid, key) {
                    self.assert_in_route(modid, cmdid, host);
                }
            }
            Op::Report { route, host, outcome, latency_us, native } => {
                let (modid, cmdid) = route.key();
                let (host, outcome) = (host.addr(), Outcome::from(outcome));
                let reply = match (native, host) {
                    (false, SocketAddr::V4(v4)) => {
                        let retcode = i32::from(outcome != Outcome::Ok);
                        self.api(
                            MsgId::ReportRequest,
                            &lars::ReportRequest { modid, cmdid, host: Some(v4), retcode },
                        )
                    }
                    _ => self.api(
                        MsgId::NativeReport,
                        &native::Report { modid, cmdid, host, outcome, latency_us },
                    ),
                };
                assert!(reply.is_none(), "a report has no answer");
            }
            Op::ReportBatch(items) => {
                let reports: Vec<native::Report> = items
                    .iter()
                    .map(|&(route, host, outcome, latency_us)| {
                        let (modid, cmdid) = route.key();
                        native::Report {
                            modid,
                            cmdid,
                            host: host.addr(),
                            outcome: outcome.into(),
                            latency_us,
                        }
                    })
                    .collect();
                let batch = native::ReportBatch { reports: List::from_slice(&reports) };
                assert!(self.api(MsgId::NativeReportBatch, &batch).is_none());
            }
            Op::Summary(items) => {
                let entries: Vec<native::HostStats> = items
                    .iter()
                    .map(|&(route, host, succ, err)| {
                        let (modid, cmdid) = route.key();
                        let mut stats = native::HostStats::empty(modid, cmdid, host.addr());
                        (stats.succ, stats.err) = (u32::from(succ), u32::from(err));
                        stats
                    })
                    .collect();
                let summary = native::CallStats { caller: 1, ts: 0, entries: List::from_slice(&entries) };
                assert!(self.api(MsgId::NativeCallStats, &summary).is_none());
            }
            Op::GetRoute { route, native, seq } => {
                let (modid, cmdid) = route.key();
                let reply = if native {
                    self.api(MsgId::NativeGetRouteRequest, &native::GetRouteRequest { seq, modid, cmdid })
                } else {
                    self.api(MsgId::ApiGetRouteRequest, &lars::GetRouteRequest { modid, cmdid })
                };
                let reply = reply.expect("a get_route is answered");
                let hosts: Vec<SocketAddr> = match parse(&reply) {
                    Ok(Message::ApiGetRouteResponse(r)) if !native => {
                        assert_eq!((r.modid, r.cmdid), (modid, cmdid));
                        r.hosts.iter().map(SocketAddr::V4).collect()
                    }
                    Ok(Message::NativeRouteResponse(r)) if native => {
                        assert_eq!((r.seq, r.modid, r.cmdid), (seq, modid, cmdid));
                        assert_eq!(r.code == RetCode::Succ, !r.hosts.is_empty());
                        r.hosts.iter().map(|h| h.addr).collect()
                    }
                    other => panic!("get_route answered with {other:?}"),
                };
                assert!(hosts.len() <= HOSTS);
                for host in hosts {
                    self.assert_in_route(modid, cmdid, host);
                }
            }
            Op::Stats { seq } => {
                let reply = self.api(MsgId::StatsRequest, &native::StatsRequest { seq });
                let reply = reply.expect("a StatsRequest is answered");
                let Ok(Message::StatsResponse(r)) = parse(&reply) else {
                    panic!("StatsRequest answered with {:?}", parse(&reply));
                };
                assert_eq!((r.seq, r.role), (seq, native::Role::Agent));
                // The answer is taken after the request was counted.
                let stats = self.agent.stats().counters();
                for (name, value) in stats {
                    let answered = r.counters.iter().find(|c| c.name == name).map(|c| c.value);
                    assert_eq!(answered, Some(value), "StatsResponse's {name}");
                }
                let routes = r.counters.iter().find(|c| c.name == "routes").map(|c| c.value);
                assert_eq!(routes, Some(self.agent.route_count() as u64));
            }
            Op::ApiBytes { msgid, body, cut } => {
                let mut datagram = vec![0u8; frame::HEADER_LEN + body.len()];
                let n = frame::encode(msgid.id(), &lars_core::wire::Raw(&body), &mut datagram)
                    .expect("a buffer of the frame's length is enough");
                datagram.truncate(n);
                match cut {
                    c if c < 0 => datagram.truncate(n.saturating_sub(usize::from(c.unsigned_abs()))),
                    c => datagram.extend(std::iter::repeat_n(0x5a, c as usize % 4)),
                }
                self.api_calls += 1;
                let answer = self.agent.handle_api_datagram(self.now, &datagram, &mut self.reply);
                self.api_refused += u64::from(answer.is_err());
                if let Ok(len) = answer
                    && len > 0
                {
                    let reply = Frame::parse_datagram(&self.reply[..len], MAX_BODY);
                    let reply = reply.expect("an answer is a whole frame");
                    assert!(Message::from_frame(reply).is_ok(), "an answer decodes");
                }
            }
            Op::DnsRoute { route, native, code, version, hosts } => {
                if !self.dns_up {
                    return;
                }
                let (modid, cmdid) = route.key();
                let offered: Vec<WeightedHost> = hosts
                    .iter()
                    .map(|&(host, weight)| WeightedHost { addr: host.addr(), weight: u32::from(weight % 5) })
                    .collect();
                let mut body = vec![0u8; MAX_BODY as usize];
                let (msgid, len) = if native {
                    let code = [RetCode::Succ, RetCode::NoExist, RetCode::SystemError][usize::from(code % 3)];
                    let hosts = List::from_slice(&offered);
                    let response = native::RouteResponse { seq: 0, modid, cmdid, code, version, hosts };
                    (MsgId::NativeRouteResponse, response.emit(&mut body))
                } else {
                    let v4: Vec<SocketAddrV4> = offered
                        .iter()
                        .filter_map(|h| match h.addr {
                            SocketAddr::V4(v4) => Some(v4),
                            SocketAddr::V6(_) => None,
                        })
                        .collect();
                    let response = lars::GetRouteResponse { modid, cmdid, hosts: List::from_slice(&v4) };
                    (MsgId::GetRouteResponse, response.emit(&mut body))
                };
                // A route too large for one frame is one no lars-dns can send.
                let Ok(len) = len else { return };
                let before = *self.agent.stats();
                self.dns_frame(Frame { msgid, body: &body[..len] });
                let after = *self.agent.stats();
                // An answer that was applied as it came: what is served is among what was offered.
                let applied = after.routes_received > before.routes_received
                    && after.route_over_capacity == before.route_over_capacity
                    && (!native || code % 3 == 0);
                if applied && let Some(served) = self.agent.route_hosts(modid, cmdid) {
                    for host in served {
                        let offered = offered.iter().any(|o| o.addr == host.addr);
                        assert!(offered, "{host:?} served but not offered");
                    }
                }
            }
            Op::DnsFrame { msgid, body } => {
                if self.dns_up {
                    self.dns_frame(Frame { msgid: msgid.id(), body: &body });
                }
            }
            Op::ReporterFrame { msgid, body } => {
                if self.reporter_up {
                    self.reporter_frame(Frame { msgid: msgid.id(), body: &body });
                }
            }
            Op::DnsHello | Op::ReporterHello => {
                let hello = native::Hello {
                    version: native::PROTOCOL_VERSION,
                    role: native::Role::Dns,
                    node: 0,
                    max_body: MAX_BODY,
                };
                let mut body = [0u8; 32];
                let len = hello.emit(&mut body).expect("a Hello fits 32 bytes");
                let frame = Frame { msgid: MsgId::Hello, body: &body[..len] };
                match op {
                    Op::DnsHello if self.dns_up => self.dns_frame(frame),
                    Op::ReporterHello if self.reporter_up => self.reporter_frame(frame),
                    _ => {}
                }
            }
            Op::Link { dns, up } => {
                if dns && up != self.dns_up {
                    self.dns_up = up;
                    self.agent.handle_dns_link(self.now, up);
                } else if !dns && up != self.reporter_up {
                    self.reporter_up = up;
                    self.agent.handle_reporter_link(self.now, up);
                }
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(ms));
                let due = self.agent.poll_timeout().expect("the agent always has a deadline");
                if due <= self.now {
                    self.agent.handle_timeout(self.now);
                    self.drain();
                    let next = self.agent.poll_timeout().expect("the agent always has a deadline");
                    assert!(
                        next > self.now,
                        "deadline {next:?} not after {:?}: a driver would spin",
                        self.now
                    );
                }
            }
            Op::Restore { route, hosts } => {
                let (modid, cmdid) = route.key();
                let hosts: Vec<WeightedHost> = hosts
                    .iter()
                    .map(|&(host, weight)| WeightedHost { addr: host.addr(), weight: u32::from(weight % 5) })
                    .collect();
                if self.agent.restore_route(self.now, modid, cmdid, &hosts) {
                    let served: Vec<WeightedHost> =
                        self.agent.route_hosts(modid, cmdid).expect("a restored route is held").collect();
                    assert!(!served.is_empty());
                    assert!(served.iter().all(|s| hosts.iter().any(|h| h.addr == s.addr)));
                }
            }
        }
        self.drain();
    }

    /// Sends `body` under `msgid` to the API and returns the answer's frame bytes, if any.
    fn api(&mut self, msgid: MsgId, body: &impl Encode) -> Option<Vec<u8>> {
        let mut datagram = vec![0u8; frame::HEADER_LEN + body.buffer_len()];
        let n = frame::encode(msgid, body, &mut datagram).expect("a buffer of the frame's length is enough");
        self.api_calls += 1;
        let len = match self.agent.handle_api_datagram(self.now, &datagram[..n], &mut self.reply) {
            Ok(len) => len,
            Err(e) => panic!("{msgid:?} refused: {e}"),
        };
        if len == 0 {
            return None;
        }
        Frame::parse_datagram(&self.reply[..len], MAX_BODY).expect("an answer is a whole frame");
        Some(self.reply[..len].to_vec())
    }

    /// Hands a frame to the agent as from lars-dns; one it refuses closes the link.
    fn dns_frame(&mut self, frame: Frame<'_>) {
        if self.agent.handle_dns_frame(self.now, frame).is_err() {
            self.dns_refused += 1;
            self.dns_up = false;
            self.agent.handle_dns_link(self.now, false);
        }
    }

    /// Hands a frame to the agent as from lars-reporter; one it refuses closes the link.
    fn reporter_frame(&mut self, frame: Frame<'_>) {
        if self.agent.handle_reporter_frame(self.now, frame).is_err() {
            self.reporter_up = false;
            self.agent.handle_reporter_link(self.now, false);
        }
    }

    fn assert_in_route(&self, modid: i32, cmdid: i32, host: SocketAddr) {
        let hosts = self.agent.route_hosts(modid, cmdid).expect("a route that gave a host is held");
        let hosts: Vec<WeightedHost> = hosts.collect();
        assert!(
            hosts.iter().any(|h| h.addr == host),
            "{host} is not a host of ({modid}, {cmdid}): {hosts:?}"
        );
    }

    /// Takes every frame the agent wants sent, checking each; and its events.
    fn drain(&mut self) {
        let mut frames = 0;
        while let Some(transmit) = self.agent.poll_transmit(self.now, &mut self.buf) {
            frames += 1;
            assert!(frames < 10_000, "poll_transmit never ends");
            assert!(transmit.len <= self.buf.len());
            let up = match transmit.link {
                Link::Dns => self.dns_up,
                Link::Reporter => self.reporter_up,
            };
            assert!(up, "a frame for the {:?} link, which is down", transmit.link);
            let frame = Frame::parse_datagram(&self.buf[..transmit.len], MAX_BODY).expect("a whole frame");
            let message = Message::from_frame(frame).expect("a transmitted frame decodes");
            match (transmit.link, message) {
                (_, Message::Hello(_)) => {}
                (Link::Dns, Message::GetRouteRequest(_) | Message::NativeGetRouteRequest(_)) => {
                    self.pulls += 1
                }
                (Link::Reporter, Message::ReportStatusRequest(_) | Message::StatusReport(_)) => {
                    self.stats_frames += 1
                }
                (link, other) => panic!("{other:?} sent on the {link:?} link"),
            }
        }
        let mut events = 0;
        while self.agent.poll_event().is_some() {
            events += 1;
            assert!(events <= 64, "more events than the queue holds");
        }
    }

    fn check(&mut self) {
        let stats = *self.agent.stats();
        let now = stats.counters();
        for ((name, before), (_, after)) in self.counters.iter().zip(now) {
            assert!(after >= *before, "counter {name} went back from {before} to {after}");
        }
        self.counters = now.to_vec();
        assert_eq!(stats.api_requests, self.api_calls, "API datagrams handled");
        assert_eq!(stats.api_errors, self.api_refused, "API datagrams refused");
        assert_eq!(stats.dns_errors, self.dns_refused, "dns frames refused");
        assert_eq!(stats.pulls_sent, self.pulls, "pulls counted and pulls sent");
        assert_eq!(stats.stats_frames, self.stats_frames, "statistics frames counted and sent");
        assert!(self.agent.route_count() <= ROUTES);
        assert!(self.agent.stale_routes() <= self.agent.route_count());
        for (_, _, hosts) in self.agent.routes() {
            assert!(hosts.count() <= HOSTS);
        }
    }
}
