//! Byte-vector tests for the native bodies. The vectors were worked out from postcard's wire
//! spec (varints, zigzag for signed integers, enum tags as varints, `varint(len)` before a
//! sequence), independently of this encoder; they are repeated in `docs/PROTOCOL.md`.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;
use crate::wire::{MsgId, frame};

static HELLO: [u8; 9] = [0x01, 0x00, 0x81, 0x80, 0x80, 0x50, 0xf7, 0xff, 0x03];
static HEARTBEAT: [u8; 2] = [0xac, 0x02];
static GET_HOST_REQUEST: [u8; 6] = [0x07, 0xd2, 0x0f, 0x04, 0x01, 0x2a];
static GET_HOST_RESPONSE: [u8; 12] = [0x07, 0xd2, 0x0f, 0x04, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x50];
static REPORT: [u8; 25] = [
    0xd2, 0x0f, 0x04, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x90, 0x3f, 0x02, 0xdc, 0x0b,
];
static REPORT_BATCH: [u8; 38] = [
    0x02, 0xd2, 0x0f, 0x04, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x50, 0x00, 0xfa, 0x01, 0xd2, 0x0f, 0x04, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x90,
    0x3f, 0x02, 0xdc, 0x0b,
];
static GET_ROUTE_REQUEST: [u8; 3] = [0x01, 0x09, 0x0e];
static ROUTE_RESPONSE: [u8; 22] = [
    0x00, 0xd2, 0x0f, 0x04, 0x00, 0x2a, 0x02, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x50, 0x01, 0x00, 0xc0, 0xa8,
    0x01, 0xb1, 0x90, 0x3f, 0x03,
];
static CALL_STATS: [u8; 29] = [
    0x81, 0x80, 0x80, 0x50, 0x80, 0x82, 0x92, 0xc9, 0x06, 0x01, 0xd2, 0x0f, 0x04, 0x00, 0x0a, 0x00, 0x00,
    0x01, 0x50, 0xb4, 0x01, 0x05, 0x01, 0x00, 0x90, 0xbf, 0x05, 0xc4, 0x13,
];
static STATUS_REPORT: [u8; 32] = [
    0x81, 0x80, 0x80, 0x50, 0x80, 0x82, 0x92, 0xc9, 0x06, 0x01, 0xd2, 0x0f, 0x04, 0x00, 0x0a, 0x00, 0x00,
    0x01, 0x50, 0xb4, 0x01, 0x05, 0x01, 0x00, 0x90, 0xbf, 0x05, 0xc4, 0x13, 0xb0, 0x09, 0x07,
];
static DECISION_REPORT: [u8; 39] = [
    0x81, 0x80, 0x80, 0x50, 0x80, 0x82, 0x92, 0xc9, 0x06, 0x02, 0xd2, 0x0f, 0x04, 0x00, 0x0a, 0x00, 0x00,
    0x01, 0x50, 0xfa, 0x01, 0x00, 0x00, 0x0f, 0x0f, 0xd2, 0x0f, 0x04, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x50,
    0x00, 0x01, 0x06, 0x01, 0x03,
];

static DECISIONS_REQUEST: [u8; 6] = [0x05, 0x01, 0xd2, 0x0f, 0x00, 0x10];
static DECISIONS_RESPONSE: [u8; 17] =
    [0x05, 0x01, 0xd2, 0x0f, 0x04, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x50, 0xfa, 0x01, 0x00, 0x00, 0x0f, 0x0f];

static STATS_REQUEST: [u8; 1] = [0x09];
static STATS_RESPONSE: [u8; 21] = [
    0x09, 0x02, 0x02, 0x09, 0x66, 0x72, 0x61, 0x6d, 0x65, 0x73, 0x5f, 0x69, 0x6e, 0xd2, 0x09, 0x04, 0x6f,
    0x70, 0x65, 0x6e, 0x03,
];

const B: SocketAddr = SocketAddr::new(core::net::IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 80);
const A: SocketAddr = SocketAddr::new(core::net::IpAddr::V4(Ipv4Addr::new(192, 168, 1, 177)), 8080);
const V6: SocketAddr =
    SocketAddr::new(core::net::IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), 8080);

const REPORT_V6: Report =
    Report { modid: 1001, cmdid: 2, host: V6, outcome: Outcome::Overload, latency_us: 1500 };
const REPORT_V4: Report = Report { modid: 1001, cmdid: 2, host: B, outcome: Outcome::Ok, latency_us: 250 };
const STATS: HostStats = HostStats {
    modid: 1001,
    cmdid: 2,
    host: B,
    succ: 180,
    err: 5,
    overload: 1,
    overloaded: false,
    latency_sum_us: 90_000,
    latency_max_us: 2500,
};

/// The shared byte-vector check, plus what postcard's strictness adds: one byte short is
/// `Truncated`, one byte over is `TrailingBytes`.
fn check_quartet<'a, M>(bytes: &'a [u8], expected: M)
where
    M: Decode<'a> + Encode + PartialEq + core::fmt::Debug + Copy,
{
    crate::wire::testutil::check_quartet(bytes, expected);
    assert_eq!(M::parse(&bytes[..bytes.len() - 1]), Err(Error::Truncated));
    let long: &'a [u8] = [bytes, &[0]].concat().leak();
    assert_eq!(M::parse(long), Err(Error::TrailingBytes));
}

#[test]
fn hello() {
    check_quartet(
        &HELLO,
        Hello { version: PROTOCOL_VERSION, role: Role::Agent, node: 0x0a00_0001, max_body: 65527 },
    );
}

#[test]
fn a_daemon_answers_any_hello_that_decodes_with_its_own() {
    let ours = Hello { version: PROTOCOL_VERSION, role: Role::Dns, node: 0, max_body: frame::MAX_BODY };
    assert_eq!(Hello::answer(&HELLO, Role::Dns), Ok(ours));
    let mut older = HELLO;
    older[0] = 0x00; // version 0
    assert_eq!(Hello::answer(&older, Role::Reporter), Ok(Hello { role: Role::Reporter, ..ours }));
    assert_eq!(Hello::answer(&HELLO[..3], Role::Dns), Err(Error::Truncated));
}

#[test]
fn heartbeat() {
    check_quartet(&HEARTBEAT, Heartbeat { seq: 300 });
}

#[test]
fn get_host() {
    check_quartet(&GET_HOST_REQUEST, GetHostRequest { seq: 7, modid: 1001, cmdid: 2, key: Some(42) });
    check_quartet(
        &GET_HOST_RESPONSE,
        GetHostResponse { seq: 7, modid: 1001, cmdid: 2, code: RetCode::Succ, host: Some(B) },
    );
}

#[test]
fn report_and_batch() {
    check_quartet(&REPORT, REPORT_V6);
    let reports = [REPORT_V4, REPORT_V6];
    check_quartet(&REPORT_BATCH, ReportBatch { reports: List::from_slice(&reports) });
}

#[test]
fn route() {
    check_quartet(&GET_ROUTE_REQUEST, GetRouteRequest { seq: 1, modid: -5, cmdid: 7 });
    let hosts = [WeightedHost { addr: B, weight: 1 }, WeightedHost { addr: A, weight: 3 }];
    check_quartet(
        &ROUTE_RESPONSE,
        RouteResponse {
            seq: 0,
            modid: 1001,
            cmdid: 2,
            code: RetCode::Succ,
            version: 42,
            hosts: List::from_slice(&hosts),
        },
    );
}

#[test]
fn call_stats() {
    let entries = [STATS];
    check_quartet(
        &CALL_STATS,
        CallStats { caller: 0x0a00_0001, ts: 1_764_000_000, entries: List::from_slice(&entries) },
    );
}

#[test]
fn status_report() {
    let entries = [HostReport { stats: STATS, window_succ: 1200, window_err: 7 }];
    check_quartet(
        &STATUS_REPORT,
        StatusReport { caller: 0x0a00_0001, ts: 1_764_000_000, entries: List::from_slice(&entries) },
    );
}

#[test]
fn decision_report() {
    let entries = [
        HostDecision {
            modid: 1001,
            cmdid: 2,
            host: B,
            age_ms: 250,
            change: Change::Overloaded,
            reason: Reason::ConsecutiveFailures { count: 15, limit: 15 },
        },
        HostDecision {
            modid: 1001,
            cmdid: 2,
            host: B,
            age_ms: 0,
            change: Change::Probed,
            reason: Reason::Probe { ok: true, secs: 3 },
        },
    ];
    check_quartet(
        &DECISION_REPORT,
        DecisionReport { caller: 0x0a00_0001, ts: 1_764_000_000, entries: List::from_slice(&entries) },
    );
    // Reason tag 8 and change tag 5 do not exist.
    let mut bad = DECISION_REPORT;
    bad[22] = 8;
    assert_eq!(DecisionReport::parse(&bad), Err(Error::BadValue));
    let mut bad = DECISION_REPORT;
    bad[21] = 5;
    assert_eq!(DecisionReport::parse(&bad), Err(Error::BadValue));
}

#[test]
fn decisions_page() {
    check_quartet(&DECISIONS_REQUEST, DecisionsRequest { seq: 5, modid: Some(1001), cmdid: None, skip: 16 });
    let entries = [HostDecision {
        modid: 1001,
        cmdid: 2,
        host: B,
        age_ms: 250,
        change: Change::Overloaded,
        reason: Reason::ConsecutiveFailures { count: 15, limit: 15 },
    }];
    check_quartet(&DECISIONS_RESPONSE, DecisionsResponse { seq: 5, entries: List::from_slice(&entries) });
}

#[test]
fn stats() {
    check_quartet(&STATS_REQUEST, StatsRequest { seq: 9 });
    let counters = [Counter { name: "frames_in", value: 1234 }, Counter { name: "open", value: 3 }];
    check_quartet(
        &STATS_RESPONSE,
        StatsResponse { seq: 9, role: Role::Dns, counters: List::from_slice(&counters) },
    );
    // The same answer from counters walked in two parts.
    struct TwoParts;
    impl CounterSource for TwoParts {
        fn for_each(&self, each: &mut dyn FnMut(Counter<'_>)) {
            [("frames_in", 1234)].for_each(each);
            [("open", 3)].for_each(each);
        }
    }
    let from = StatsResponseFrom { seq: 9, role: Role::Dns, counters: &TwoParts };
    assert_eq!(from.buffer_len(), STATS_RESPONSE.len());
    let mut out = [0xa5; 22];
    assert_eq!(from.emit(&mut out), Ok(21));
    assert_eq!(out[..21], STATS_RESPONSE);
    assert_eq!(out[21], 0xa5, "wrote past its length");
    assert_eq!(from.emit(&mut out[..20]), Err(Error::BufferTooSmall));
    // A counter name that is not UTF-8.
    let mut bad = STATS_RESPONSE;
    bad[4] = 0xff;
    assert_eq!(StatsResponse::parse(&bad), Err(Error::BadValue));
}

/// The hand-written encoding against `postcard` itself, on values drawn at random: each
/// message is also declared as a plain serde struct (std types, `Vec` for lists), and both must
/// give the same bytes, which must decode back to the value.
mod against_postcard {
    use std::string::String;
    use std::vec::Vec;

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    enum MirrorRole {
        Agent,
        Api,
        Dns,
        Reporter,
        Gateway,
    }

    #[derive(Serialize)]
    enum MirrorOutcome {
        Ok,
        Fail,
        Overload,
    }

    #[derive(Serialize)]
    enum MirrorCode {
        Succ,
        Overload,
        SystemError,
        NoExist,
    }

    fn role(role: Role) -> MirrorRole {
        match role {
            Role::Agent => MirrorRole::Agent,
            Role::Api => MirrorRole::Api,
            Role::Dns => MirrorRole::Dns,
            Role::Reporter => MirrorRole::Reporter,
            Role::Gateway => MirrorRole::Gateway,
        }
    }

    fn outcome(outcome: Outcome) -> MirrorOutcome {
        match outcome {
            Outcome::Ok => MirrorOutcome::Ok,
            Outcome::Fail => MirrorOutcome::Fail,
            Outcome::Overload => MirrorOutcome::Overload,
        }
    }

    fn code(code: RetCode) -> MirrorCode {
        match code {
            RetCode::Succ => MirrorCode::Succ,
            RetCode::Overload => MirrorCode::Overload,
            RetCode::SystemError => MirrorCode::SystemError,
            RetCode::NoExist => MirrorCode::NoExist,
        }
    }

    #[derive(Serialize)]
    struct MirrorHello(u16, MirrorRole, u32, u32);
    #[derive(Serialize)]
    struct MirrorGetHostRequest(u32, i32, i32, Option<u64>);
    #[derive(Serialize)]
    struct MirrorGetHostResponse(u32, i32, i32, MirrorCode, Option<SocketAddr>);
    #[derive(Serialize)]
    struct MirrorReport(i32, i32, SocketAddr, MirrorOutcome, u32);
    #[derive(Serialize)]
    struct MirrorRouteResponse(u32, i32, i32, MirrorCode, u64, Vec<(SocketAddr, u32)>);
    #[derive(Serialize)]
    struct MirrorHostStats(i32, i32, SocketAddr, u32, u32, u32, bool, u64, u32);
    #[derive(Serialize)]
    struct MirrorCallStats(u32, u32, Vec<MirrorHostStats>);
    fn mirror_stats(e: &HostStats) -> MirrorHostStats {
        let (succ, err, overload) = (e.succ, e.err, e.overload);
        MirrorHostStats(
            e.modid,
            e.cmdid,
            e.host,
            succ,
            err,
            overload,
            e.overloaded,
            e.latency_sum_us,
            e.latency_max_us,
        )
    }

    #[derive(Serialize)]
    struct MirrorStatusReport(u32, u32, Vec<(MirrorHostStats, u32, u32)>);
    #[derive(Serialize)]
    struct MirrorStatsResponse(u32, MirrorRole, Vec<(String, u64)>);

    #[derive(Serialize)]
    enum MirrorReason {
        ConsecutiveFailures { count: u32, limit: u32 },
        ConsecutiveSuccesses { count: u32, limit: u32 },
        ErrorRate { part: u32, whole: u32, limit: u32 },
        SuccessRate { part: u32, whole: u32, limit: u32 },
        WindowErrorRate { part: u32, whole: u32, limit: u32 },
        OverloadTimeout { secs: u32 },
        Probe { ok: bool, secs: u32 },
        SlowStart { secs: u32 },
    }

    fn reason(reason: Reason) -> MirrorReason {
        match reason {
            Reason::ConsecutiveFailures { count, limit } => {
                MirrorReason::ConsecutiveFailures { count, limit }
            }
            Reason::ConsecutiveSuccesses { count, limit } => {
                MirrorReason::ConsecutiveSuccesses { count, limit }
            }
            Reason::ErrorRate { part, whole, limit_ppm } => {
                MirrorReason::ErrorRate { part, whole, limit: limit_ppm }
            }
            Reason::SuccessRate { part, whole, limit_ppm } => {
                MirrorReason::SuccessRate { part, whole, limit: limit_ppm }
            }
            Reason::WindowErrorRate { part, whole, limit_ppm } => {
                MirrorReason::WindowErrorRate { part, whole, limit: limit_ppm }
            }
            Reason::OverloadTimeout { secs } => MirrorReason::OverloadTimeout { secs },
            Reason::Probe { ok, secs } => MirrorReason::Probe { ok, secs },
            Reason::SlowStart { secs } => MirrorReason::SlowStart { secs },
        }
    }

    #[derive(Serialize)]
    struct MirrorDecisionReport(u32, u32, Vec<(i32, i32, SocketAddr, u32, u32, MirrorReason)>);

    /// xorshift64*, with values spread over every varint length.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn wide(&mut self) -> u64 {
            let bits = self.next() % 65;
            self.next().checked_shr(64 - bits as u32).unwrap_or(0)
        }

        fn coin(&mut self) -> bool {
            self.next() & 1 == 0
        }

        fn u32(&mut self) -> u32 {
            self.wide() as u32
        }

        fn i32(&mut self) -> i32 {
            self.wide() as i32
        }

        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[(self.next() % from.len() as u64) as usize]
        }

        fn addr(&mut self) -> SocketAddr {
            let port = self.wide() as u16;
            if self.coin() {
                SocketAddr::new(Ipv4Addr::from(self.next() as u32).into(), port)
            } else {
                SocketAddr::new(
                    Ipv6Addr::from(u128::from(self.next()) << 64 | u128::from(self.next())).into(),
                    port,
                )
            }
        }
    }

    const ROLES: [Role; 5] = [Role::Agent, Role::Api, Role::Dns, Role::Reporter, Role::Gateway];
    const CODES: [RetCode; 4] = [RetCode::Succ, RetCode::Overload, RetCode::SystemError, RetCode::NoExist];
    const OUTCOMES: [Outcome; 3] = [Outcome::Ok, Outcome::Fail, Outcome::Overload];

    fn same<'a, M>(ours: M, mirror: &impl Serialize, scratch: &'a mut [u8])
    where
        M: Encode + Decode<'a> + PartialEq + core::fmt::Debug,
    {
        let theirs = postcard::to_allocvec(mirror).unwrap();
        let len = ours.emit(scratch).unwrap();
        assert_eq!(&scratch[..len], &theirs[..], "{ours:?}");
        assert_eq!(ours.buffer_len(), len);
        let scratch: &'a [u8] = scratch;
        assert_eq!(M::parse(&scratch[..len]).unwrap(), ours);
    }

    #[test]
    fn every_body_encodes_as_postcard_does() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let mut scratch = [0u8; 2048];
            let hello = Hello {
                version: rng.wide() as u16,
                role: rng.pick(&ROLES),
                node: rng.u32(),
                max_body: rng.u32(),
            };
            same(
                hello,
                &MirrorHello(hello.version, role(hello.role), hello.node, hello.max_body),
                &mut scratch,
            );

            let key = (rng.coin()).then(|| rng.wide());
            let request = GetHostRequest { seq: rng.u32(), modid: rng.i32(), cmdid: rng.i32(), key };
            let mirror = MirrorGetHostRequest(request.seq, request.modid, request.cmdid, key);
            same(request, &mirror, &mut scratch);

            let host = (rng.coin()).then(|| rng.addr());
            let answer = GetHostResponse {
                seq: rng.u32(),
                modid: rng.i32(),
                cmdid: rng.i32(),
                code: rng.pick(&CODES),
                host,
            };
            let mirror =
                MirrorGetHostResponse(answer.seq, answer.modid, answer.cmdid, code(answer.code), host);
            same(answer, &mirror, &mut scratch);

            let report = Report {
                modid: rng.i32(),
                cmdid: rng.i32(),
                host: rng.addr(),
                outcome: rng.pick(&OUTCOMES),
                latency_us: rng.u32(),
            };
            let mirror = MirrorReport(
                report.modid,
                report.cmdid,
                report.host,
                outcome(report.outcome),
                report.latency_us,
            );
            same(report, &mirror, &mut scratch);

            let hosts: Vec<WeightedHost> =
                (0..rng.next() % 5).map(|_| WeightedHost { addr: rng.addr(), weight: rng.u32() }).collect();
            let route = RouteResponse {
                seq: rng.u32(),
                modid: rng.i32(),
                cmdid: rng.i32(),
                code: rng.pick(&CODES),
                version: rng.wide(),
                hosts: List::from_slice(&hosts),
            };
            let mirror = MirrorRouteResponse(
                route.seq,
                route.modid,
                route.cmdid,
                code(route.code),
                route.version,
                hosts.iter().map(|h| (h.addr, h.weight)).collect(),
            );
            same(route, &mirror, &mut scratch);

            let entries: Vec<HostStats> = (0..rng.next() % 4)
                .map(|_| HostStats {
                    modid: rng.i32(),
                    cmdid: rng.i32(),
                    host: rng.addr(),
                    succ: rng.u32(),
                    err: rng.u32(),
                    overload: rng.u32(),
                    overloaded: rng.coin(),
                    latency_sum_us: rng.wide(),
                    latency_max_us: rng.u32(),
                })
                .collect();
            let stats = CallStats { caller: rng.u32(), ts: rng.u32(), entries: List::from_slice(&entries) };
            let mirror = MirrorCallStats(stats.caller, stats.ts, entries.iter().map(mirror_stats).collect());
            same(stats, &mirror, &mut scratch);

            let reports: Vec<HostReport> = entries
                .iter()
                .map(|&stats| HostReport { stats, window_succ: rng.u32(), window_err: rng.u32() })
                .collect();
            let report =
                StatusReport { caller: rng.u32(), ts: rng.u32(), entries: List::from_slice(&reports) };
            let mirror = MirrorStatusReport(
                report.caller,
                report.ts,
                reports.iter().map(|r| (mirror_stats(&r.stats), r.window_succ, r.window_err)).collect(),
            );
            same(report, &mirror, &mut scratch);

            let decisions: Vec<HostDecision> = (0..rng.next() % 5)
                .map(|_| {
                    let (a, b, c) = (rng.u32(), rng.u32(), rng.u32());
                    let reason = rng.pick(&[
                        Reason::ConsecutiveFailures { count: a, limit: b },
                        Reason::ConsecutiveSuccesses { count: a, limit: b },
                        Reason::ErrorRate { part: a, whole: b, limit_ppm: c },
                        Reason::SuccessRate { part: a, whole: b, limit_ppm: c },
                        Reason::WindowErrorRate { part: a, whole: b, limit_ppm: c },
                        Reason::OverloadTimeout { secs: a },
                        Reason::Probe { ok: c % 2 == 0, secs: a },
                        Reason::SlowStart { secs: b },
                    ]);
                    let change = rng.pick(&[
                        Change::Overloaded,
                        Change::Probed,
                        Change::Readmitted,
                        Change::Forgiven,
                        Change::SlowStartDone,
                    ]);
                    HostDecision {
                        modid: rng.i32(),
                        cmdid: rng.i32(),
                        host: rng.addr(),
                        age_ms: rng.u32(),
                        change,
                        reason,
                    }
                })
                .collect();
            let report =
                DecisionReport { caller: rng.u32(), ts: rng.u32(), entries: List::from_slice(&decisions) };
            let mirror = MirrorDecisionReport(
                report.caller,
                report.ts,
                decisions
                    .iter()
                    .map(|d| (d.modid, d.cmdid, d.host, d.age_ms, d.change as u32, reason(d.reason)))
                    .collect(),
            );
            same(report, &mirror, &mut scratch);

            let names: Vec<String> =
                (0..rng.next() % 4).map(|_| "é_counter".repeat((rng.next() % 30) as usize)).collect();
            let counters: Vec<Counter<'_>> =
                names.iter().map(|name| Counter { name, value: rng.wide() }).collect();
            let response = StatsResponse {
                seq: rng.u32(),
                role: rng.pick(&ROLES),
                counters: List::from_slice(&counters),
            };
            let mirror = MirrorStatsResponse(
                response.seq,
                role(response.role),
                counters.iter().map(|c| (String::from(c.name), c.value)).collect(),
            );
            same(response, &mirror, &mut scratch);
        }
    }
}

#[test]
fn malformed_bodies_are_precise_errors() {
    // Role tag 9 does not exist.
    assert_eq!(Hello::parse(&[0x01, 0x09, 0x00, 0x00]), Err(Error::BadValue));
    // Option tag 2 does not exist.
    assert_eq!(GetHostRequest::parse(&[0x07, 0xd2, 0x0f, 0x04, 0x02]), Err(Error::BadValue));
    // A u16 version in a 4-byte varint.
    assert_eq!(Hello::parse(&[0x81, 0x80, 0x80, 0x00, 0x00, 0x00, 0x00]), Err(Error::BadVarint));
    // A list claiming a billion items in a ten-byte body fails before walking them.
    assert_eq!(ReportBatch::parse(&[0x80, 0x94, 0xeb, 0xdc, 0x03, 0, 0, 0, 0, 0]), Err(Error::Truncated));
    // The second of two announced reports is cut short.
    assert_eq!(ReportBatch::parse(&REPORT_BATCH[..20]), Err(Error::Truncated));
    // A socket address tag other than V4 (0) and V6 (1).
    let mut bad = GET_HOST_RESPONSE;
    bad[6] = 2;
    assert_eq!(GetHostResponse::parse(&bad), Err(Error::BadValue));
}

/// The size limits senders plan frames with are the real longest encodings.
#[test]
fn stats_size_limits_are_the_longest_encodings() {
    let longest = HostStats {
        modid: i32::MIN,
        cmdid: i32::MIN,
        host: SocketAddr::new(
            Ipv6Addr::new(0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff).into(),
            65535,
        ),
        succ: u32::MAX,
        err: u32::MAX,
        overload: u32::MAX,
        overloaded: true,
        latency_sum_us: u64::MAX,
        latency_max_us: u32::MAX,
    };
    let entries = [longest; 2];
    let stats = CallStats { caller: u32::MAX, ts: u32::MAX, entries: List::from_slice(&entries) };
    let mut out = [0u8; 512];
    let len = frame::encode(MsgId::NativeCallStats, &stats, &mut out).unwrap();
    // caller and ts at 5 bytes each, a 1-byte count for two entries.
    assert_eq!(len - frame::HEADER_LEN - (5 + 5 + 1), 2 * HostStats::MAX_ENCODED_LEN);
    let report = HostReport { stats: longest, window_succ: u32::MAX, window_err: u32::MAX };
    let reports = [report; 2];
    let status = StatusReport { caller: u32::MAX, ts: u32::MAX, entries: List::from_slice(&reports) };
    let len = frame::encode(MsgId::StatusReport, &status, &mut out).unwrap();
    assert_eq!(len - frame::HEADER_LEN - (5 + 5 + 1), 2 * HostReport::MAX_ENCODED_LEN);
    let decision = HostDecision {
        modid: i32::MIN,
        cmdid: i32::MIN,
        host: longest.host,
        age_ms: u32::MAX,
        change: Change::SlowStartDone,
        reason: Reason::WindowErrorRate { part: u32::MAX, whole: u32::MAX, limit_ppm: u32::MAX },
    };
    let decisions = [decision; 2];
    let report = DecisionReport { caller: u32::MAX, ts: u32::MAX, entries: List::from_slice(&decisions) };
    let len = frame::encode(MsgId::DecisionReport, &report, &mut out).unwrap();
    assert_eq!(len - frame::HEADER_LEN - (5 + 5 + 1), 2 * HostDecision::MAX_ENCODED_LEN);
    // The count of the most entries a body can hold takes 3 bytes.
    assert!(frame::MAX_BODY as usize / HostStats::MAX_ENCODED_LEN < 1 << 21);
    assert_eq!(STATS_HEAD_MAX_LEN, 5 + 5 + 3);
}
