//! Wire checks: frames, every body decoder, and round trips of `arbitrary` messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use arbitrary::{Arbitrary, Unstructured};
use lars_core::wire::frame::{FrameDecoder, HEADER_LEN, MAX_BODY};
use lars_core::wire::{Encode, Error, Frame, List, Message, MsgId, RetCode, lars, native};

/// The frame decoder: a datagram parses exactly when its length is `8 + len`, and a stream cut
/// into chunks of any size gives the frames (and the error) that splitting it whole gives.
///
/// The first two bytes choose the body limit and the chunk sizes; the rest is the stream.
pub fn frame(data: &[u8]) {
    let [limit, cut, stream @ ..] = data else { return };
    let max_body = match limit % 4 {
        0 => MAX_BODY,
        1 => 0,
        _ => u32::from(*limit) * 4,
    };
    match Frame::parse_datagram(stream, max_body) {
        Ok(frame) => {
            assert_eq!(HEADER_LEN + frame.body.len(), stream.len());
            assert!(frame.body.len() <= max_body as usize);
        }
        Err(Error::Truncated) => assert!(stream.len() < HEADER_LEN),
        Err(Error::UnknownMsgId(id)) => assert!(MsgId::from_u32(id).is_err()),
        Err(Error::TooLong { len, max }) => assert!(len > max && max == max_body),
        Err(Error::LengthMismatch { expected, actual }) => {
            assert_ne!(expected, actual);
            assert_eq!(actual as usize, stream.len());
        }
        Err(other) => panic!("parse_datagram failed with {other:?}"),
    }

    // Whole: split frames off the front until an error or an incomplete frame.
    let mut whole = Vec::new();
    let mut rest = stream;
    let whole_error = loop {
        match Frame::parse_prefix(rest, max_body) {
            Ok(Some((frame, used))) => {
                assert_eq!(used, HEADER_LEN + frame.body.len());
                whole.push((frame.msgid, frame.body));
                rest = &rest[used..];
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };

    // Streamed, in chunks of 1 to 16 bytes as `cut` says, into a buffer just big enough.
    let mut decoder = FrameDecoder::with_max_body(vec![0u8; max_body as usize], max_body);
    assert_eq!(decoder.max_body(), max_body.min(MAX_BODY));
    let mut streamed: Vec<(MsgId, Vec<u8>)> = Vec::new();
    let mut rest = stream;
    let mut step = 0usize;
    let stream_error = 'stream: loop {
        if rest.is_empty() {
            break None;
        }
        let size = 1 + (usize::from(*cut).wrapping_mul(step + 7) % 16);
        step += 1;
        let mut chunk = &rest[..size.min(rest.len())];
        rest = &rest[chunk.len()..];
        while !chunk.is_empty() {
            match decoder.decode(chunk) {
                Ok(decoded) => {
                    assert!(decoded.consumed > 0 && decoded.consumed <= chunk.len(), "no progress");
                    if let Some(frame) = decoded.frame {
                        streamed.push((frame.msgid, frame.body.to_vec()));
                    }
                    chunk = &chunk[decoded.consumed..];
                }
                Err(e) => break 'stream Some(e),
            }
        }
    };
    let whole: Vec<(MsgId, Vec<u8>)> = whole.into_iter().map(|(id, body)| (id, body.to_vec())).collect();
    assert_eq!(streamed, whole, "streaming and splitting disagree");
    assert_eq!(stream_error, whole_error, "streaming and splitting fail differently");
    if whole_error.is_none() {
        let consumed: usize = whole.iter().map(|(_, body)| HEADER_LEN + body.len()).sum();
        assert_eq!(decoder.pending(), stream.len() - consumed, "bytes of the unfinished frame");
    }
}

/// Every body decoder on raw bytes: what one accepts, its encoder writes in exactly
/// `buffer_len()` bytes, which decode to the same message and re-encode to the same bytes.
/// The first byte picks the msgid; the rest is the body.
pub fn bodies(data: &[u8]) {
    let [pick, body @ ..] = data else { return };
    let msgid = MsgId::ALL[usize::from(*pick) % MsgId::ALL.len()];
    let Ok(message) = Message::parse(msgid, body) else { return };
    assert_eq!(message.msgid(), msgid);
    let bytes = encode(&message);
    assert_eq!(Message::parse(msgid, &bytes), Ok(message), "re-encoding changed the message");
    let again = Message::parse(msgid, &bytes).map(|m| encode(&m));
    assert_eq!(again.as_deref(), Ok(&bytes[..]), "encoding is not stable");
    if body.len() <= MAX_BODY as usize {
        let mut framed = vec![0u8; HEADER_LEN + bytes.len()];
        let n = message.emit_frame(&mut framed).expect("a buffer of the frame's length is enough");
        let frame = Frame::parse_datagram(&framed[..n], MAX_BODY).expect("an emitted frame parses");
        assert_eq!(Message::from_frame(frame), Ok(message));
    }
}

/// Encodes `message`, checking `buffer_len()` against what `emit` writes, that `emit` writes
/// nothing past it, and that one byte less is refused.
fn encode(message: &Message<'_>) -> Vec<u8> {
    let len = message.buffer_len();
    let mut out = vec![0xa5; len + 8];
    let n = message.emit(&mut out).expect("a buffer of buffer_len() is enough");
    assert_eq!(n, len, "buffer_len() disagrees with emit() for {message:?}");
    assert!(out[n..].iter().all(|&b| b == 0xa5), "emit() wrote past its length");
    if len > 0 {
        let mut short = vec![0u8; len - 1];
        assert_eq!(message.emit(&mut short), Err(Error::BufferTooSmall));
    }
    out.truncate(n);
    out
}

/// decode(encode(x)) == x for a message of every kind built from `arbitrary` input.
pub fn round_trip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(items) = Items::arbitrary(&mut u) else { return };
    let counters = items.counters();
    let Ok(message) = build(&mut u, &items, &counters) else { return };
    let bytes = encode(&message);
    assert_eq!(Message::parse(message.msgid(), &bytes), Ok(message), "decode(encode(x)) != x");
}

/// An address of either family. Native bodies carry IPv6 addresses without flow or scope ids.
#[derive(Debug, Clone, Copy)]
struct Addr(SocketAddr);

impl<'a> Arbitrary<'a> for Addr {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let ip = if u.arbitrary()? {
            IpAddr::V4(Ipv4Addr::from_bits(u.arbitrary()?))
        } else {
            IpAddr::V6(Ipv6Addr::from_bits(u.arbitrary()?))
        };
        Ok(Addr(SocketAddr::new(ip, u.arbitrary()?)))
    }
}

fn v4(u: &mut Unstructured<'_>) -> arbitrary::Result<SocketAddrV4> {
    Ok(SocketAddrV4::new(Ipv4Addr::from_bits(u.arbitrary()?), u.arbitrary()?))
}

fn ret_code(u: &mut Unstructured<'_>) -> arbitrary::Result<RetCode> {
    Ok(*u.choose(&[RetCode::Succ, RetCode::Overload, RetCode::SystemError, RetCode::NoExist])?)
}

fn role(u: &mut Unstructured<'_>) -> arbitrary::Result<native::Role> {
    use native::Role::*;
    Ok(*u.choose(&[Agent, Api, Dns, Reporter, Gateway])?)
}

fn outcome(u: &mut Unstructured<'_>) -> arbitrary::Result<native::Outcome> {
    use native::Outcome;
    Ok(*u.choose(&[Outcome::Ok, Outcome::Fail, Outcome::Overload])?)
}

/// The items of the messages' lists, owned, so that the messages can borrow them.
#[derive(Debug)]
struct Items {
    v4: Vec<SocketAddrV4>,
    results: Vec<lars::HostCallResult>,
    reports: Vec<native::Report>,
    weighted: Vec<native::WeightedHost>,
    stats: Vec<native::HostStats>,
    host_reports: Vec<native::HostReport>,
    counters: Vec<(String, u64)>,
}

impl<'a> Arbitrary<'a> for Items {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let list = |u: &mut Unstructured<'a>| u.int_in_range(0..=6usize);
        let mut stats = Vec::new();
        for _ in 0..list(u)? {
            stats.push(native::HostStats {
                modid: u.arbitrary()?,
                cmdid: u.arbitrary()?,
                host: Addr::arbitrary(u)?.0,
                succ: u.arbitrary()?,
                err: u.arbitrary()?,
                overload: u.arbitrary()?,
                overloaded: u.arbitrary()?,
                latency_sum_us: u.arbitrary()?,
                latency_max_us: u.arbitrary()?,
            });
        }
        let mut items = Items {
            v4: (0..list(u)?).map(|_| v4(u)).collect::<arbitrary::Result<_>>()?,
            results: Vec::new(),
            reports: Vec::new(),
            weighted: Vec::new(),
            host_reports: Vec::new(),
            stats,
            counters: Vec::arbitrary(u)?,
        };
        for _ in 0..list(u)? {
            let (succ, err, overload) = u.arbitrary()?;
            items.results.push(lars::HostCallResult { host: v4(u)?, succ, err, overload });
        }
        for _ in 0..list(u)? {
            let (modid, cmdid, host) = (u.arbitrary()?, u.arbitrary()?, Addr::arbitrary(u)?.0);
            let (outcome, latency_us) = (outcome(u)?, u.arbitrary()?);
            items.reports.push(native::Report { modid, cmdid, host, outcome, latency_us });
        }
        for _ in 0..list(u)? {
            items.weighted.push(native::WeightedHost { addr: Addr::arbitrary(u)?.0, weight: u.arbitrary()? });
        }
        for &stats in &items.stats {
            let (window_succ, window_err) = u.arbitrary()?;
            items.host_reports.push(native::HostReport { stats, window_succ, window_err });
        }
        Ok(items)
    }
}

impl Items {
    fn counters(&self) -> Vec<native::Counter<'_>> {
        self.counters.iter().map(|(name, value)| native::Counter { name, value: *value }).collect()
    }
}

/// A message of a kind `u` picks, borrowing its lists from `items`.
fn build<'a>(
    u: &mut Unstructured<'_>,
    items: &'a Items,
    counters: &'a [native::Counter<'a>],
) -> arbitrary::Result<Message<'a>> {
    let msgid = *u.choose(MsgId::ALL)?;
    let maybe_v4 = |u: &mut Unstructured<'_>| -> arbitrary::Result<Option<SocketAddrV4>> {
        if u.arbitrary()? { Ok(Some(v4(u)?)) } else { Ok(None) }
    };
    let route_request = |u: &mut Unstructured<'_>| -> arbitrary::Result<lars::GetRouteRequest> {
        Ok(lars::GetRouteRequest { modid: u.arbitrary()?, cmdid: u.arbitrary()? })
    };
    let route_response = |u: &mut Unstructured<'_>| -> arbitrary::Result<lars::GetRouteResponse<'a>> {
        let (modid, cmdid) = u.arbitrary()?;
        Ok(lars::GetRouteResponse { modid, cmdid, hosts: List::from_slice(&items.v4) })
    };
    Ok(match msgid {
        MsgId::GetRouteRequest => Message::GetRouteRequest(route_request(u)?),
        MsgId::ApiGetRouteRequest => Message::ApiGetRouteRequest(route_request(u)?),
        MsgId::GetRouteResponse => Message::GetRouteResponse(route_response(u)?),
        MsgId::ApiGetRouteResponse => Message::ApiGetRouteResponse(route_response(u)?),
        MsgId::ReportStatusRequest => Message::ReportStatusRequest(lars::ReportStatusRequest {
            modid: u.arbitrary()?,
            cmdid: u.arbitrary()?,
            caller: u.arbitrary()?,
            results: List::from_slice(&items.results),
            ts: u.arbitrary()?,
        }),
        MsgId::GetHostRequest => Message::GetHostRequest(lars::GetHostRequest {
            seq: u.arbitrary()?,
            modid: u.arbitrary()?,
            cmdid: u.arbitrary()?,
        }),
        MsgId::GetHostResponse => Message::GetHostResponse(lars::GetHostResponse {
            seq: u.arbitrary()?,
            modid: u.arbitrary()?,
            cmdid: u.arbitrary()?,
            retcode: u.arbitrary()?,
            host: maybe_v4(u)?,
        }),
        MsgId::ReportRequest => Message::ReportRequest(lars::ReportRequest {
            modid: u.arbitrary()?,
            cmdid: u.arbitrary()?,
            host: maybe_v4(u)?,
            retcode: u.arbitrary()?,
        }),
        MsgId::Hello => Message::Hello(native::Hello {
            version: u.arbitrary()?,
            role: role(u)?,
            node: u.arbitrary()?,
            max_body: u.arbitrary()?,
        }),
        MsgId::Heartbeat => Message::Heartbeat(native::Heartbeat { seq: u.arbitrary()? }),
        MsgId::AuthHello => Message::AuthHello(native::AuthHello {
            version: u.arbitrary()?,
            role: role(u)?,
            node: u.arbitrary()?,
            max_body: u.arbitrary()?,
            nonce: u.arbitrary()?,
        }),
        MsgId::AuthChallenge => Message::AuthChallenge(native::AuthChallenge {
            version: u.arbitrary()?,
            role: role(u)?,
            node: u.arbitrary()?,
            max_body: u.arbitrary()?,
            nonce: u.arbitrary()?,
            proof: u.arbitrary()?,
        }),
        MsgId::AuthProof => Message::AuthProof(native::AuthProof { proof: u.arbitrary()? }),
        MsgId::NativeGetHostRequest => Message::NativeGetHostRequest(native::GetHostRequest {
            seq: u.arbitrary()?,
            modid: u.arbitrary()?,
            cmdid: u.arbitrary()?,
            key: u.arbitrary()?,
        }),
        MsgId::NativeGetHostResponse => Message::NativeGetHostResponse(native::GetHostResponse {
            seq: u.arbitrary()?,
            modid: u.arbitrary()?,
            cmdid: u.arbitrary()?,
            code: ret_code(u)?,
            host: Option::<Addr>::arbitrary(u)?.map(|a| a.0),
        }),
        MsgId::NativeReport => Message::NativeReport(native::Report {
            modid: u.arbitrary()?,
            cmdid: u.arbitrary()?,
            host: Addr::arbitrary(u)?.0,
            outcome: outcome(u)?,
            latency_us: u.arbitrary()?,
        }),
        MsgId::NativeReportBatch => {
            Message::NativeReportBatch(native::ReportBatch { reports: List::from_slice(&items.reports) })
        }
        MsgId::NativeGetRouteRequest => Message::NativeGetRouteRequest(native::GetRouteRequest {
            seq: u.arbitrary()?,
            modid: u.arbitrary()?,
            cmdid: u.arbitrary()?,
        }),
        MsgId::NativeRouteResponse => Message::NativeRouteResponse(native::RouteResponse {
            seq: u.arbitrary()?,
            modid: u.arbitrary()?,
            cmdid: u.arbitrary()?,
            code: ret_code(u)?,
            version: u.arbitrary()?,
            hosts: List::from_slice(&items.weighted),
        }),
        MsgId::NativeCallStats => Message::NativeCallStats(native::CallStats {
            caller: u.arbitrary()?,
            ts: u.arbitrary()?,
            entries: List::from_slice(&items.stats),
        }),
        MsgId::StatusReport => Message::StatusReport(native::StatusReport {
            caller: u.arbitrary()?,
            ts: u.arbitrary()?,
            entries: List::from_slice(&items.host_reports),
        }),
        // The decision messages' entries come from the `bodies` target's raw bytes; built
        // here they would repeat the balancer's change and reason types, so they go empty.
        MsgId::DecisionReport => Message::DecisionReport(native::DecisionReport {
            caller: u.arbitrary()?,
            ts: u.arbitrary()?,
            entries: List::from_slice(&[]),
        }),
        MsgId::DecisionsRequest => Message::DecisionsRequest(native::DecisionsRequest {
            seq: u.arbitrary()?,
            modid: u.arbitrary()?,
            cmdid: u.arbitrary()?,
            skip: u.arbitrary()?,
        }),
        MsgId::DecisionsResponse => Message::DecisionsResponse(native::DecisionsResponse {
            seq: u.arbitrary()?,
            entries: List::from_slice(&[]),
        }),
        MsgId::StatsRequest => Message::StatsRequest(native::StatsRequest { seq: u.arbitrary()? }),
        MsgId::StatsResponse => Message::StatsResponse(native::StatsResponse {
            seq: u.arbitrary()?,
            role: role(u)?,
            counters: List::from_slice(counters),
        }),
    })
}
