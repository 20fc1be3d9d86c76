//! Byte-vector tests for the native bodies. The vectors were worked out from postcard's wire
//! spec (varints, zigzag for signed integers, enum tags as varints, `varint(len)` before a
//! sequence), independently of this encoder; they are repeated in `docs/PROTOCOL.md`.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;

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
fn stats() {
    check_quartet(&STATS_REQUEST, StatsRequest { seq: 9 });
    let counters = [Counter { name: "frames_in", value: 1234 }, Counter { name: "open", value: 3 }];
    check_quartet(
        &STATS_RESPONSE,
        StatsResponse { seq: 9, role: Role::Dns, counters: List::from_slice(&counters) },
    );
    // A counter name that is not UTF-8.
    let mut bad = STATS_RESPONSE;
    bad[4] = 0xff;
    assert_eq!(StatsResponse::parse(&bad), Err(Error::BadValue));
}

#[test]
fn lists_are_plain_postcard_sequences() {
    // Our hand-rolled list decoding must agree with postcard's own sequence decoding.
    use postcard::heapless_v0_9::heapless::Vec as HVec;
    #[derive(serde::Deserialize, Debug)]
    struct Mirror {
        seq: u32,
        modid: i32,
        cmdid: i32,
        code: RetCode,
        version: u64,
        hosts: HVec<WeightedHost, 4>,
    }
    let mirror: Mirror = postcard::from_bytes(&ROUTE_RESPONSE).unwrap();
    let ours = RouteResponse::parse(&ROUTE_RESPONSE).unwrap();
    assert_eq!(
        (mirror.seq, mirror.modid, mirror.cmdid, mirror.code, mirror.version),
        (0, 1001, 2, RetCode::Succ, 42)
    );
    assert!(ours.hosts.iter().eq(mirror.hosts.iter().copied()));
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
