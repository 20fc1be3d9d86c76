//! The simulation's harness: an in-memory lars-dns and lars-reporter, API callers, and a
//! virtual clock, around the real `Agent`.

pub(crate) use std::collections::{BTreeMap, BTreeSet};
pub(crate) use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

pub(crate) use lars_core::agent::{
    Agent, AgentConfig, AgentEvent, ApiError, Codec, CodecChoice, Link, RouteState,
};
pub(crate) use lars_core::lb::PolicyKind;
pub(crate) use lars_core::time::{Duration, Instant};
pub(crate) use lars_core::wire::frame::{self, MAX_BODY};
pub(crate) use lars_core::wire::native::{self, Outcome, StatsRequest, WeightedHost};
pub(crate) use lars_core::wire::{Decode, Error, Frame, List, Message, MsgId, RetCode, lars};

pub(crate) type Key = (i32, i32);

pub(crate) fn host(last: u8) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 8000 + u16::from(last)))
}

pub(crate) fn weighted(lasts: &[u8]) -> Vec<WeightedHost> {
    lasts.iter().map(|&l| WeightedHost { addr: host(l), weight: 1 }).collect()
}

/// An in-memory lars-dns: a route table, subscriptions, and switches to go down or go silent.
#[derive(Default)]
pub(crate) struct Dns {
    pub(crate) routes: BTreeMap<Key, Vec<WeightedHost>>,
    pub(crate) version: u64,
    pub(crate) subscribed: BTreeSet<Key>,
    pub(crate) pulls: Vec<(Instant, Key)>,
    pub(crate) up: bool,
    /// Connected but never answers.
    pub(crate) silent: bool,
    pub(crate) codec: Option<Codec>,
    /// An original Lars lars_dns ignores the msgids it does not know, the native `Hello` too.
    pub(crate) original: bool,
    /// Has not loaded its store: answers natively that it is not ready.
    pub(crate) unready: bool,
}

/// An in-memory lars-reporter summing what it receives per (route, host).
#[derive(Default)]
pub(crate) struct Reporter {
    pub(crate) up: bool,
    pub(crate) totals: BTreeMap<(Key, SocketAddr), (u64, u64)>,
    pub(crate) overloaded: BTreeMap<(Key, SocketAddr), bool>,
    /// The last `ServerCallStatus` counts of each host: what the row would hold.
    pub(crate) status: BTreeMap<(Key, SocketAddr), (u32, u32)>,
    pub(crate) frames: usize,
    /// An original Lars lars_reporter: it takes only msgid 3 and ignores the rest.
    pub(crate) original: bool,
    /// The decisions received, as `lars events` prints them.
    pub(crate) decisions: Vec<String>,
}

pub(crate) struct Sim {
    pub(crate) now: Instant,
    pub(crate) agent: Agent<8, 8, 16>,
    pub(crate) dns: Dns,
    pub(crate) reporter: Reporter,
    pub(crate) seq: u32,
    pub(crate) buf: Vec<u8>,
    pub(crate) events: Vec<AgentEvent>,
}

impl Sim {
    pub(crate) fn new(config: AgentConfig) -> Sim {
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
    pub(crate) fn drive(&mut self) {
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

    pub(crate) fn dns_receive(&mut self, bytes: &[u8]) {
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
    pub(crate) fn dns_send(&mut self, key: Key) {
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
    pub(crate) fn dns_set_route(&mut self, key: Key, lasts: &[u8]) {
        self.dns.version += 1;
        self.dns.routes.insert(key, weighted(lasts));
        if self.dns.up && self.dns.subscribed.contains(&key) {
            self.dns_send(key);
        }
        self.drive();
    }

    pub(crate) fn dns_down(&mut self) {
        self.dns.up = false;
        self.dns.subscribed.clear(); // a new connection starts with no subscriptions
        self.agent.handle_dns_link(self.now, false);
        self.drive();
    }

    pub(crate) fn dns_up(&mut self) {
        self.dns.up = true;
        self.agent.handle_dns_link(self.now, true);
        self.drive();
    }

    pub(crate) fn reporter_receive(&mut self, bytes: &[u8]) {
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
    pub(crate) fn advance(&mut self, by: Duration) {
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

    pub(crate) fn api(&mut self, message: &Message<'_>) -> Result<Option<Message<'static>>, ApiError> {
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
    pub(crate) fn get_host(&mut self, key: Key) -> (RetCode, Option<SocketAddr>) {
        self.seq += 1;
        let request = lars::GetHostRequest { seq: self.seq, modid: key.0, cmdid: key.1 };
        let Some(Message::GetHostResponse(r)) = self.api(&Message::GetHostRequest(request)).unwrap() else {
            panic!("get_host got no GetHostResponse")
        };
        assert_eq!((r.seq, r.modid, r.cmdid), (self.seq, key.0, key.1), "echo");
        (RetCode::from_i32(r.retcode).unwrap(), r.host.map(SocketAddr::V4))
    }

    /// `get_host` over the native protocol.
    pub(crate) fn get_host_native(&mut self, key: Key) -> (RetCode, Option<SocketAddr>) {
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

    pub(crate) fn report(&mut self, key: Key, addr: SocketAddr, ok: bool) {
        let SocketAddr::V4(v4) = addr else { unreachable!() };
        let request =
            lars::ReportRequest { modid: key.0, cmdid: key.1, host: Some(v4), retcode: i32::from(!ok) };
        assert_eq!(self.api(&Message::ReportRequest(request)).unwrap(), None);
    }

    pub(crate) fn report_native(&mut self, key: Key, addr: SocketAddr, outcome: Outcome, latency_us: u32) {
        let report = native::Report { modid: key.0, cmdid: key.1, host: addr, outcome, latency_us };
        assert_eq!(self.api(&Message::NativeReport(report)).unwrap(), None);
    }

    /// A caller's loop: get a host, call it (failing on `bad` hosts), report. Returns the
    /// number of calls that went to each host.
    pub(crate) fn calls(
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

pub(crate) const ROUTE: Key = (1001, 1);

pub(crate) fn sim_with_route(lasts: &[u8]) -> Sim {
    let mut sim = Sim::new(AgentConfig::default());
    sim.dns.routes.insert(ROUTE, weighted(lasts));
    sim
}

/// The hosts the agent holds for `key`.
pub(crate) fn held_hosts(sim: &Sim, key: Key) -> Vec<SocketAddr> {
    sim.agent.route_hosts(key.0, key.1).map_or_else(Vec::new, |hosts| hosts.map(|h| h.addr).collect())
}
