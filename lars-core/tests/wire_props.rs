//! Property tests for the wire layer: no decoder panics on any input, every message round-trips,
//! and the stream decoder gives the same frames however the stream is cut.
//!
//! Cases come from a seeded SplitMix64 generator, so a failure names its seed and case and
//! reruns identically. Set `LARS_PROP_CASES` to run more cases than the default 10,000 each.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use lars_core::wire::frame::{FrameDecoder, MAX_BODY};
use lars_core::wire::{Encode, Error, Frame, List, Message, MsgId, RetCode, lars, native};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    /// Integers biased towards the edges, where codecs break.
    fn u64_edgy(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => u64::MAX >> self.below(64),
            2 => self.next() & 0xff,
            3 => 1u64 << self.below(64),
            _ => self.next(),
        }
    }

    fn i32(&mut self) -> i32 {
        self.u64_edgy() as i32
    }

    fn u32(&mut self) -> u32 {
        self.u64_edgy() as u32
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn v4(&mut self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from_bits(self.u32()), self.u32() as u16)
    }

    fn addr(&mut self) -> SocketAddr {
        if self.chance(2) {
            SocketAddr::V4(self.v4())
        } else {
            let ip = Ipv6Addr::from_bits(u128::from(self.next()) << 64 | u128::from(self.next()));
            SocketAddr::new(ip.into(), self.u32() as u16)
        }
    }

    fn ret_code(&mut self) -> RetCode {
        [RetCode::Succ, RetCode::Overload, RetCode::SystemError, RetCode::NoExist][self.below(4)]
    }
}

fn cases() -> u64 {
    std::env::var("LARS_PROP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// Runs `check` on `cases()` seeded generators, naming the seed of any case that panics.
fn for_cases(name: &str, check: impl Fn(&mut Rng)) {
    for case in 0..cases() {
        let seed = case.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ name.len() as u64;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&mut Rng(seed)))) {
            eprintln!("property `{name}` failed at case {case} (seed {seed:#x})");
            resume_unwind(panic);
        }
    }
}

/// Item storage for random messages with lists.
#[derive(Default)]
struct Items {
    names: Vec<String>,
    counters: Vec<(usize, u64)>,
    v4: Vec<SocketAddrV4>,
    results: Vec<lars::HostCallResult>,
    reports: Vec<native::Report>,
    weighted: Vec<native::WeightedHost>,
    stats: Vec<native::HostStats>,
    host_reports: Vec<native::HostReport>,
    decisions: Vec<native::HostDecision>,
}

impl Items {
    fn fill(rng: &mut Rng) -> Items {
        let n = |rng: &mut Rng| rng.below(6);
        let report = |rng: &mut Rng| native::Report {
            modid: rng.i32(),
            cmdid: rng.i32(),
            host: rng.addr(),
            outcome: [native::Outcome::Ok, native::Outcome::Fail, native::Outcome::Overload][rng.below(3)],
            latency_us: rng.u32(),
        };
        let names: Vec<String> = (0..3)
            .map(|_| (0..rng.below(12)).map(|_| (b'a' + rng.below(26) as u8) as char).collect())
            .collect();
        let mut items = Items {
            counters: (0..n(rng)).map(|_| (rng.below(3), rng.u64_edgy())).collect(),
            names,
            v4: (0..n(rng)).map(|_| rng.v4()).collect(),
            results: (0..n(rng))
                .map(|_| lars::HostCallResult {
                    host: rng.v4(),
                    succ: rng.u32(),
                    err: rng.u32(),
                    overload: rng.chance(2),
                })
                .collect(),
            reports: (0..n(rng)).map(|_| report(rng)).collect(),
            weighted: (0..n(rng))
                .map(|_| native::WeightedHost { addr: rng.addr(), weight: rng.u32() })
                .collect(),
            stats: (0..n(rng))
                .map(|_| native::HostStats {
                    modid: rng.i32(),
                    cmdid: rng.i32(),
                    host: rng.addr(),
                    succ: rng.u32(),
                    err: rng.u32(),
                    overload: rng.u32(),
                    overloaded: rng.chance(2),
                    latency_sum_us: rng.u64_edgy(),
                    latency_max_us: rng.u32(),
                })
                .collect(),
            host_reports: Vec::new(),
            decisions: Vec::new(),
        };
        items.decisions = (0..n(rng))
            .map(|_| {
                let (a, b, c) = (rng.u32(), rng.u32(), rng.u32());
                let reasons = [
                    native::Reason::ConsecutiveFailures { count: a, limit: b },
                    native::Reason::WindowErrorRate { part: a, whole: b, limit_ppm: c },
                    native::Reason::Probe { ok: rng.chance(2), secs: a },
                    native::Reason::SlowStart { secs: c },
                ];
                let changes = [native::Change::Overloaded, native::Change::Probed, native::Change::Forgiven];
                native::HostDecision {
                    modid: rng.i32(),
                    cmdid: rng.i32(),
                    host: rng.addr(),
                    age_ms: rng.u32(),
                    change: changes[rng.below(3)],
                    reason: reasons[rng.below(4)],
                }
            })
            .collect();
        items.host_reports = items
            .stats
            .iter()
            .map(|&stats| native::HostReport { stats, window_succ: rng.u32(), window_err: rng.u32() })
            .collect();
        items
    }
}

/// A random message of kind `msgid`, borrowing its lists from `items`.
fn random_message<'a>(
    rng: &mut Rng,
    msgid: MsgId,
    items: &'a Items,
    counters: &'a mut Vec<native::Counter<'a>>,
) -> Message<'a> {
    *counters =
        items.counters.iter().map(|&(i, value)| native::Counter { name: &items.names[i], value }).collect();
    let route_req = |rng: &mut Rng| lars::GetRouteRequest { modid: rng.i32(), cmdid: rng.i32() };
    let route_rsp = |rng: &mut Rng| lars::GetRouteResponse {
        modid: rng.i32(),
        cmdid: rng.i32(),
        hosts: List::from_slice(&items.v4),
    };
    let maybe_v4 = |rng: &mut Rng| if rng.chance(3) { None } else { Some(rng.v4()) };
    match msgid {
        MsgId::GetRouteRequest => Message::GetRouteRequest(route_req(rng)),
        MsgId::ApiGetRouteRequest => Message::ApiGetRouteRequest(route_req(rng)),
        MsgId::GetRouteResponse => Message::GetRouteResponse(route_rsp(rng)),
        MsgId::ApiGetRouteResponse => Message::ApiGetRouteResponse(route_rsp(rng)),
        MsgId::ReportStatusRequest => Message::ReportStatusRequest(lars::ReportStatusRequest {
            modid: rng.i32(),
            cmdid: rng.i32(),
            caller: rng.i32(),
            results: List::from_slice(&items.results),
            ts: rng.u32(),
        }),
        MsgId::GetHostRequest => Message::GetHostRequest(lars::GetHostRequest {
            seq: rng.u32(),
            modid: rng.i32(),
            cmdid: rng.i32(),
        }),
        MsgId::GetHostResponse => Message::GetHostResponse(lars::GetHostResponse {
            seq: rng.u32(),
            modid: rng.i32(),
            cmdid: rng.i32(),
            retcode: rng.i32(),
            host: maybe_v4(rng),
        }),
        MsgId::ReportRequest => Message::ReportRequest(lars::ReportRequest {
            modid: rng.i32(),
            cmdid: rng.i32(),
            host: maybe_v4(rng),
            retcode: rng.i32(),
        }),
        MsgId::Hello => Message::Hello(native::Hello {
            version: rng.u32() as u16,
            role: [native::Role::Agent, native::Role::Api, native::Role::Dns, native::Role::Reporter]
                [rng.below(4)],
            node: rng.u32(),
            max_body: rng.u32(),
        }),
        MsgId::Heartbeat => Message::Heartbeat(native::Heartbeat { seq: rng.u32() }),
        MsgId::AuthHello => Message::AuthHello(native::AuthHello {
            version: rng.u32() as u16,
            role: native::Role::Agent,
            node: rng.u32(),
            max_body: rng.u32(),
            nonce: core::array::from_fn(|_| rng.u32() as u8),
        }),
        MsgId::AuthChallenge => Message::AuthChallenge(native::AuthChallenge {
            version: rng.u32() as u16,
            role: native::Role::Dns,
            node: rng.u32(),
            max_body: rng.u32(),
            nonce: core::array::from_fn(|_| rng.u32() as u8),
            proof: core::array::from_fn(|_| rng.u32() as u8),
        }),
        MsgId::AuthProof => {
            Message::AuthProof(native::AuthProof { proof: core::array::from_fn(|_| rng.u32() as u8) })
        }
        MsgId::NativeGetHostRequest => Message::NativeGetHostRequest(native::GetHostRequest {
            seq: rng.u32(),
            modid: rng.i32(),
            cmdid: rng.i32(),
            key: if rng.chance(2) { Some(rng.u64_edgy()) } else { None },
        }),
        MsgId::NativeGetHostResponse => Message::NativeGetHostResponse(native::GetHostResponse {
            seq: rng.u32(),
            modid: rng.i32(),
            cmdid: rng.i32(),
            code: rng.ret_code(),
            host: if rng.chance(3) { None } else { Some(rng.addr()) },
        }),
        MsgId::NativeReport => Message::NativeReport(native::Report {
            modid: rng.i32(),
            cmdid: rng.i32(),
            host: rng.addr(),
            outcome: native::Outcome::Fail,
            latency_us: rng.u32(),
        }),
        MsgId::NativeReportBatch => {
            Message::NativeReportBatch(native::ReportBatch { reports: List::from_slice(&items.reports) })
        }
        MsgId::NativeGetRouteRequest => Message::NativeGetRouteRequest(native::GetRouteRequest {
            seq: rng.u32(),
            modid: rng.i32(),
            cmdid: rng.i32(),
        }),
        MsgId::NativeRouteResponse => Message::NativeRouteResponse(native::RouteResponse {
            seq: rng.u32(),
            modid: rng.i32(),
            cmdid: rng.i32(),
            code: rng.ret_code(),
            version: rng.u64_edgy(),
            hosts: List::from_slice(&items.weighted),
        }),
        MsgId::NativeCallStats => Message::NativeCallStats(native::CallStats {
            caller: rng.u32(),
            ts: rng.u32(),
            entries: List::from_slice(&items.stats),
        }),
        MsgId::StatusReport => Message::StatusReport(native::StatusReport {
            caller: rng.u32(),
            ts: rng.u32(),
            entries: List::from_slice(&items.host_reports),
        }),
        MsgId::DecisionReport => Message::DecisionReport(native::DecisionReport {
            caller: rng.u32(),
            ts: rng.u32(),
            entries: List::from_slice(&items.decisions),
        }),
        MsgId::DecisionsRequest => Message::DecisionsRequest(native::DecisionsRequest {
            seq: rng.u32(),
            modid: if rng.chance(2) { Some(rng.i32()) } else { None },
            cmdid: if rng.chance(2) { Some(rng.i32()) } else { None },
            skip: rng.u32(),
        }),
        MsgId::DecisionsResponse => Message::DecisionsResponse(native::DecisionsResponse {
            seq: rng.u32(),
            entries: List::from_slice(&items.decisions),
        }),
        MsgId::StatsRequest => Message::StatsRequest(native::StatsRequest { seq: rng.u32() }),
        MsgId::StatsResponse => Message::StatsResponse(native::StatsResponse {
            seq: rng.u32(),
            role: native::Role::Reporter,
            counters: List::from_slice(counters),
        }),
    }
}

fn encode(message: &Message<'_>) -> Vec<u8> {
    let mut out = vec![0xa5; message.buffer_len() + 8];
    let n = message.emit(&mut out).expect("a buffer of buffer_len() is enough");
    assert_eq!(n, message.buffer_len(), "buffer_len() disagrees with emit() for {message:?}");
    assert!(out[n..].iter().all(|&b| b == 0xa5), "emit() wrote past its length");
    out.truncate(n);
    out
}

/// Whatever a decoder accepts must survive a round trip unchanged.
fn check_accepted(msgid: MsgId, body: &[u8]) {
    if let Ok(message) = Message::parse(msgid, body) {
        let again = encode(&message);
        assert_eq!(Message::parse(msgid, &again), Ok(message), "re-encoding changed the message");
    }
}

#[test]
fn every_message_round_trips() {
    for &msgid in MsgId::ALL {
        for_cases(&format!("round trip {msgid:?}"), |rng| {
            let items = Items::fill(rng);
            let mut counters = Vec::new();
            let message = random_message(rng, msgid, &items, &mut counters);
            let bytes = encode(&message);
            assert_eq!(Message::parse(msgid, &bytes), Ok(message));
            let mut frame = vec![0; bytes.len() + 8];
            let n = message.emit_frame(&mut frame).unwrap();
            let frame = Frame::parse_datagram(&frame[..n], MAX_BODY).unwrap();
            assert_eq!(Message::from_frame(frame), Ok(message));
        });
    }
}

#[test]
fn arbitrary_bytes_never_panic_any_decoder() {
    for &msgid in MsgId::ALL {
        for_cases(&format!("arbitrary bytes {msgid:?}"), |rng| {
            let body = rng.bytes(48);
            check_accepted(msgid, &body);
        });
    }
}

#[test]
fn mutated_messages_never_panic_any_decoder() {
    for &msgid in MsgId::ALL {
        for_cases(&format!("mutations {msgid:?}"), |rng| {
            let items = Items::fill(rng);
            let mut counters = Vec::new();
            let mut body = encode(&random_message(rng, msgid, &items, &mut counters));
            for _ in 0..=rng.below(3) {
                match rng.below(4) {
                    0 if !body.is_empty() => {
                        let i = rng.below(body.len());
                        body[i] ^= 1 << rng.below(8);
                    }
                    1 if !body.is_empty() => body.truncate(rng.below(body.len())),
                    2 => body.insert(rng.below(body.len() + 1), rng.next() as u8),
                    _ => body.extend_from_slice(&rng.bytes(4)),
                }
            }
            check_accepted(msgid, &body);
        });
    }
}

#[test]
fn bad_framing_is_a_precise_error() {
    for_cases("datagram framing", |rng| {
        let datagram = rng.bytes(24);
        match Frame::parse_datagram(&datagram, 16) {
            Ok(frame) => assert_eq!(frame.body.len() + 8, datagram.len()),
            Err(Error::Truncated) => assert!(datagram.len() < 8),
            Err(Error::UnknownMsgId(id)) => assert!(MsgId::from_u32(id).is_err()),
            Err(Error::TooLong { len, max: 16 }) => assert!(len > 16),
            Err(Error::LengthMismatch { expected, actual }) => assert_ne!(expected, actual),
            Err(other) => panic!("unexpected framing error {other:?}"),
        }
    });
}

#[test]
fn stream_decoder_is_indifferent_to_chunking() {
    for_cases("stream chunking", |rng| {
        let items = Items::fill(rng);
        let mut stream_counters: Vec<Vec<native::Counter<'_>>> = (0..5).map(|_| Vec::new()).collect();
        let count = 1 + rng.below(5);
        let messages: Vec<_> = stream_counters
            .iter_mut()
            .take(count)
            .map(|counters| {
                let msgid = MsgId::ALL[rng.below(MsgId::ALL.len())];
                random_message(rng, msgid, &items, counters)
            })
            .collect();
        let mut stream = Vec::new();
        for message in &messages {
            let mut frame = vec![0; message.buffer_len() + 8];
            let n = message.emit_frame(&mut frame).unwrap();
            stream.extend_from_slice(&frame[..n]);
        }
        let mut decoder = FrameDecoder::new(vec![0u8; 4096]);
        let mut decoded = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let chunk = &rest[..1 + rng.below(rest.len().min(40))];
            let mut chunk_rest = chunk;
            while !chunk_rest.is_empty() {
                let step = decoder.decode(chunk_rest).unwrap();
                assert!(step.consumed > 0 && step.consumed <= chunk_rest.len());
                if let Some(frame) = step.frame {
                    decoded.push((frame.msgid, frame.body.to_vec()));
                }
                chunk_rest = &chunk_rest[step.consumed..];
            }
            rest = &rest[chunk.len()..];
        }
        assert_eq!(decoder.pending(), 0);
        let expected: Vec<_> = messages.iter().map(|m| (m.msgid(), encode(m))).collect();
        assert_eq!(decoded, expected);
    });
}

#[test]
fn stream_decoder_survives_garbage() {
    for_cases("stream garbage", |rng| {
        let garbage = rng.bytes(64);
        let mut decoder = FrameDecoder::with_max_body([0u8; 32], 32);
        let mut rest = &garbage[..];
        while !rest.is_empty() {
            let chunk = &rest[..1 + rng.below(rest.len())];
            match decoder.decode(chunk) {
                Ok(step) => {
                    assert!(step.consumed > 0 && step.consumed <= chunk.len());
                    if let Some(frame) = step.frame {
                        assert!(frame.body.len() <= 32);
                    }
                    rest = &rest[step.consumed..];
                }
                Err(Error::UnknownMsgId(_) | Error::TooLong { .. }) => return,
                Err(other) => panic!("unexpected stream error {other:?}"),
            }
        }
    });
}
