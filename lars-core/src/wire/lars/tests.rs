//! Byte-vector tests for the Lars bodies: each vector was made by `protoc --encode` (see
//! `testdata/lars/gen-vectors.sh`), and each message must parse from it and emit it exactly.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::vec;

use super::*;
use crate::wire::testutil::check_quartet;

macro_rules! vector {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/lars/", $name, ".bin"))
    };
}

const A: HostInfo = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 177), 8080);
const B: HostInfo = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
const LOCAL: HostInfo = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 9000);

#[test]
fn get_route_request() {
    check_quartet(vector!("get_route_request"), GetRouteRequest { modid: 1001, cmdid: 2 });
    check_quartet(vector!("get_route_request_negative"), GetRouteRequest { modid: -5, cmdid: 7 });
    // protoc writes `{0, 0}` as an empty body, on which the original Lars aborts (D-R-3): it
    // is read as protoc writes it, and written with its field 1 (`08 00`), which decodes the
    // same.
    assert_eq!(GetRouteRequest::parse(vector!("get_route_request_empty")), Ok(GetRouteRequest::default()));
    check_quartet(&[0x08, 0x00], GetRouteRequest { modid: 0, cmdid: 0 });
}

/// No Lars message is ever written with an empty body.
#[test]
fn no_body_is_empty() {
    let mut out = [0xa5u8; 16];
    let bodies: [&dyn Encode; 5] = [
        &GetRouteRequest::default(),
        &GetRouteResponse { modid: 0, cmdid: 0, hosts: List::default() },
        &GetHostRequest { seq: 0, modid: 0, cmdid: 0 },
        &GetHostResponse { seq: 0, modid: 0, cmdid: 0, retcode: 0, host: None },
        &ReportStatusRequest { modid: 0, cmdid: 0, caller: 0, results: List::default(), ts: 0 },
    ];
    for body in bodies {
        assert_eq!(body.buffer_len(), 2);
        assert_eq!(body.emit(&mut out), Ok(2));
        assert_eq!(out[..2], [0x08, 0x00]);
    }
}

#[test]
fn get_route_response() {
    let hosts = [A, B];
    check_quartet(
        vector!("get_route_response"),
        GetRouteResponse { modid: 1001, cmdid: 2, hosts: List::from_slice(&hosts) },
    );
    let gone = GetRouteResponse::parse(vector!("get_route_response_gone")).unwrap();
    assert!(gone.hosts.is_empty());
    check_quartet(
        vector!("get_route_response_gone"),
        GetRouteResponse { modid: 1001, cmdid: 2, hosts: List::default() },
    );
}

#[test]
fn report_status_request() {
    let results = [
        HostCallResult { host: B, succ: 180, err: 5, overload: false },
        HostCallResult { host: A, succ: 0, err: 17, overload: true },
    ];
    check_quartet(
        vector!("report_status_request"),
        ReportStatusRequest {
            modid: 1001,
            cmdid: 2,
            caller: A.ip().to_bits() as i32,
            results: List::from_slice(&results),
            ts: 1_764_000_000,
        },
    );
}

#[test]
fn get_host() {
    check_quartet(vector!("get_host_request"), GetHostRequest { seq: 7, modid: 1001, cmdid: 2 });
    check_quartet(
        vector!("get_host_response"),
        GetHostResponse { seq: 7, modid: 1001, cmdid: 2, retcode: 0, host: Some(LOCAL) },
    );
    check_quartet(
        vector!("get_host_response_noexist"),
        GetHostResponse { seq: 8, modid: 1001, cmdid: 2, retcode: 3, host: None },
    );
}

#[test]
fn report_request() {
    check_quartet(
        vector!("report_request"),
        ReportRequest { modid: 1001, cmdid: 2, host: Some(B), retcode: 1 },
    );
}

#[test]
fn unknown_fields_are_skipped() {
    // get_host_request with a varint field 9, a fixed64 field 10, a string field 11 and a fixed32
    // field 12 spliced in.
    let mut bytes = vec![0x48, 0x01, 0x51, 1, 2, 3, 4, 5, 6, 7, 8, 0x5a, 2, b'h', b'i', 0x65, 1, 2, 3, 4];
    bytes.extend_from_slice(vector!("get_host_request"));
    assert_eq!(GetHostRequest::parse(&bytes), Ok(GetHostRequest { seq: 7, modid: 1001, cmdid: 2 }));
}

#[test]
fn repeated_singular_sub_message_merges() {
    // host { ip: 10.0.0.1 } then host { port: 80 }: proto3 merges them into 10.0.0.1:80.
    let bytes = [0x1a, 0x05, 0x08, 0x81, 0x80, 0x80, 0x50, 0x1a, 0x02, 0x10, 0x50];
    assert_eq!(ReportRequest::parse(&bytes).unwrap().host, Some(B));
}

#[test]
fn hosts_interleaved_with_other_fields_keep_their_order() {
    // host A, then modid, then host B: the list walks past the scalar.
    let bytes =
        [&vector!("get_route_response")[5..21], &[0x08, 0x05][..], &vector!("get_route_response")[21..]]
            .concat();
    let route = GetRouteResponse::parse(&bytes).unwrap();
    assert_eq!(route.modid, 5);
    assert_eq!(route.hosts.iter().collect::<std::vec::Vec<_>>(), [A, B]);
}

#[test]
fn malformed_bodies_are_precise_errors() {
    // Port 70000 does not fit.
    assert_eq!(ReportRequest::parse(&[0x1a, 0x04, 0x10, 0xf0, 0xa2, 0x04]), Err(Error::BadValue));
    // modid sent as a string.
    assert_eq!(
        GetRouteRequest::parse(&[0x0a, 0x01, 0x00]),
        Err(Error::BadWireType { field: 1, wire_type: 2 })
    );
    // host sent as a varint.
    assert_eq!(GetRouteResponse::parse(&[0x18, 0x01]), Err(Error::BadWireType { field: 3, wire_type: 0 }));
    // A host whose length runs past the body.
    assert_eq!(GetRouteResponse::parse(&[0x1a, 0x05, 0x08, 0x01]), Err(Error::Truncated));
    // A broken host inside an otherwise valid list.
    assert_eq!(ReportStatusRequest::parse(&[0x22, 0x02, 0x08, 0x80]), Err(Error::Truncated));
    // A varint cut short at the end of the body.
    assert_eq!(GetHostRequest::parse(&[0x08, 0x80]), Err(Error::Truncated));
}

#[test]
fn report_sizes_bound_the_longest_encoding() {
    let longest = HostCallResult {
        host: SocketAddrV4::new(Ipv4Addr::new(255, 255, 255, 255), 65535),
        succ: u32::MAX,
        err: u32::MAX,
        overload: true,
    };
    let results = [longest; 3];
    let head_only =
        ReportStatusRequest { modid: -1, cmdid: -1, caller: -1, results: List::default(), ts: u32::MAX };
    let full = ReportStatusRequest { results: List::from_slice(&results), ..head_only };
    assert!(head_only.buffer_len() <= REPORT_HEAD_MAX_LEN, "{}", head_only.buffer_len());
    let per_result = (full.buffer_len() - head_only.buffer_len()) / results.len();
    assert!(per_result <= HostCallResult::MAX_ENCODED_LEN, "{per_result}");
    let mut out = vec![0u8; full.buffer_len()];
    assert_eq!(full.emit(&mut out), Ok(full.buffer_len()));
}
