//! Core micro benchmarks: frame decoding, every message's encode and decode, and the buffer
//! pool. Run by `cargo xtask bench`, which writes the figures to `target/bench/core.json`.
//!
//! Each figure is the median of 7 samples of about 100 ms each, in nanoseconds per operation.
// Measuring wall time is the point here.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use lars_core::agent::{Agent, AgentConfig};
use lars_core::lb::{Balance, Balancer, LbConfig, Pick, PolicyKind, Rng};
use lars_core::pool::{BufPool, Slab};
use lars_core::time::Instant as CoreInstant;
use lars_core::wire::frame::FrameDecoder;
use lars_core::wire::{Encode, List, Message, MsgId, RetCode, lars, native};

struct Figure {
    name: String,
    ns_per_op: f64,
    target_ns: Option<f64>,
}

/// Median ns per call of `op` over 7 samples of about 100 ms.
fn measure(mut op: impl FnMut()) -> f64 {
    let mut batch = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            op();
        }
        if start.elapsed() > Duration::from_millis(10) {
            break;
        }
        batch *= 2;
    }
    batch *= 10;
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                op();
            }
            start.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn host(last: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 8080)
}

/// Runs the benchmarks whose names contain one of the filters (all when there is none).
struct Runner {
    filters: Vec<String>,
    figures: Vec<Figure>,
}

impl Runner {
    fn wants(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }

    fn bench(&mut self, name: &str, target_ns: Option<f64>, op: impl FnMut()) {
        if self.wants(name) {
            let ns_per_op = measure(op);
            self.figures.push(Figure { name: name.to_string(), ns_per_op, target_ns });
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else is a name filter.
    let filters = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let mut runner = Runner { filters, figures: Vec::new() };

    // Frames.
    let frame = include_bytes!("../testdata/lars/get_host_request.bin");
    let mut get_host_frame = vec![4, 0, 0, 0, frame.len() as u8, 0, 0, 0];
    get_host_frame.extend_from_slice(frame);
    let mut decoder = FrameDecoder::new([0u8; 256]);
    runner.bench("frame decode (GetHostRequest frame, whole in input)", None, || {
        let decoded = decoder.decode(black_box(&get_host_frame)).unwrap();
        black_box(decoded.frame);
    });
    runner.bench("frame + body decode (GetHostRequest)", None, || {
        let decoded = decoder.decode(black_box(&get_host_frame)).unwrap();
        black_box(Message::from_frame(decoded.frame.unwrap()).unwrap());
    });

    // Every message, both directions.
    let hosts: Vec<_> = (1..=10).map(host).collect();
    let results: Vec<_> =
        hosts.iter().map(|&h| lars::HostCallResult { host: h, succ: 180, err: 5, overload: false }).collect();
    let weighted: Vec<_> =
        hosts.iter().map(|&h| native::WeightedHost { addr: SocketAddr::V4(h), weight: 1 }).collect();
    let report = native::Report {
        modid: 1001,
        cmdid: 2,
        host: SocketAddr::V4(host(1)),
        outcome: native::Outcome::Ok,
        latency_us: 250,
    };
    let reports = vec![report; 10];
    let stats: Vec<_> = hosts
        .iter()
        .map(|&h| native::HostStats {
            modid: 1001,
            cmdid: 2,
            host: SocketAddr::V4(h),
            succ: 180,
            err: 5,
            overload: 0,
            overloaded: false,
            latency_sum_us: 90_000,
            latency_max_us: 2500,
        })
        .collect();
    let route_req = lars::GetRouteRequest { modid: 1001, cmdid: 2 };
    let route_rsp = lars::GetRouteResponse { modid: 1001, cmdid: 2, hosts: List::from_slice(&hosts) };
    let messages = [
        Message::GetRouteRequest(route_req),
        Message::GetRouteResponse(route_rsp),
        Message::ReportStatusRequest(lars::ReportStatusRequest {
            modid: 1001,
            cmdid: 2,
            caller: 1,
            results: List::from_slice(&results),
            ts: 1_764_000_000,
        }),
        Message::GetHostRequest(lars::GetHostRequest { seq: 7, modid: 1001, cmdid: 2 }),
        Message::GetHostResponse(lars::GetHostResponse {
            seq: 7,
            modid: 1001,
            cmdid: 2,
            retcode: 0,
            host: Some(host(1)),
        }),
        Message::ReportRequest(lars::ReportRequest {
            modid: 1001,
            cmdid: 2,
            host: Some(host(1)),
            retcode: 0,
        }),
        Message::Hello(native::Hello {
            version: native::PROTOCOL_VERSION,
            role: native::Role::Agent,
            node: 1,
            max_body: 65527,
        }),
        Message::Heartbeat(native::Heartbeat { seq: 7 }),
        Message::NativeGetHostRequest(native::GetHostRequest { seq: 7, modid: 1001, cmdid: 2, key: None }),
        Message::NativeGetHostResponse(native::GetHostResponse {
            seq: 7,
            modid: 1001,
            cmdid: 2,
            code: RetCode::Succ,
            host: Some(SocketAddr::V4(host(1))),
        }),
        Message::NativeReport(report),
        Message::NativeReportBatch(native::ReportBatch { reports: List::from_slice(&reports) }),
        Message::NativeGetRouteRequest(native::GetRouteRequest { seq: 7, modid: 1001, cmdid: 2 }),
        Message::NativeRouteResponse(native::RouteResponse {
            seq: 0,
            modid: 1001,
            cmdid: 2,
            code: RetCode::Succ,
            version: 42,
            hosts: List::from_slice(&weighted),
        }),
        Message::NativeCallStats(native::CallStats {
            caller: 1,
            ts: 1_764_000_000,
            entries: List::from_slice(&stats),
        }),
    ];
    let mut out = [0u8; 1024];
    for message in &messages {
        let msgid = message.msgid();
        let codec = if msgid.is_lars() { "lars" } else { "native" };
        let lists = if matches!(
            msgid,
            MsgId::GetRouteResponse
                | MsgId::ReportStatusRequest
                | MsgId::NativeReportBatch
                | MsgId::NativeRouteResponse
                | MsgId::NativeCallStats
        ) {
            " (10 items)"
        } else {
            ""
        };
        runner.bench(&format!("{codec} {msgid:?}{lists} encode"), None, || {
            black_box(black_box(message).emit(&mut out).unwrap());
        });
        let n = message.emit(&mut out).unwrap();
        let body = out[..n].to_vec();
        let decode_target = (msgid == MsgId::GetHostRequest).then_some(30.0);
        runner.bench(&format!("{codec} {msgid:?}{lists} decode"), decode_target, || {
            let message = Message::parse(msgid, black_box(&body)).unwrap();
            // Walk the lists: they decode lazily.
            if let Message::GetRouteResponse(r) | Message::ApiGetRouteResponse(r) = message {
                black_box(r.hosts.iter().count());
            }
            if let Message::NativeRouteResponse(r) = message {
                black_box(r.hosts.iter().count());
            }
            black_box(message);
        });
    }

    // Pool.
    static SMALL: Slab<4096, 64> = Slab::new();
    static LARGE: Slab<65536, 8> = Slab::new();
    static POOL: BufPool<'static, 2> = BufPool::new([SMALL.class(), LARGE.class()]);
    runner.bench("pool alloc + free, 1 thread", Some(20.0), || {
        black_box(POOL.alloc(black_box(1000)).unwrap());
    });
    // Alloc and free are one compare-exchange each; what one costs varies between hosts, so
    // the figure above is read against this one.
    let word = std::sync::atomic::AtomicU64::new(0);
    runner.bench("reference: one uncontended compare-exchange", None, || {
        let current = word.load(std::sync::atomic::Ordering::Relaxed);
        let _ = black_box(&word).compare_exchange_weak(
            current,
            current.wrapping_add(1),
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Relaxed,
        );
    });
    let contended = "pool alloc + free, 2 threads contending (wall time per op per thread)";
    if runner.wants(contended) {
        const OPS: u64 = 5_000_000;
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..OPS {
                        black_box(POOL.alloc(black_box(1000)).unwrap());
                    }
                });
            }
        });
        let ns_per_op = start.elapsed().as_nanos() as f64 / OPS as f64;
        runner.figures.push(Figure { name: contended.to_string(), ns_per_op, target_ns: None });
    }

    bench_policies(&mut runner);
    bench_agent(&mut runner);

    print_and_save(&runner.figures);
}

/// Pick + report on routes of 10 and 1,000 hosts, for each policy.
fn bench_policies(runner: &mut Runner) {
    let policies = [
        ("lars", PolicyKind::Lars),
        ("round robin", PolicyKind::RoundRobin),
        ("weighted", PolicyKind::Weighted),
        ("p2c", PolicyKind::P2c),
        ("maglev", PolicyKind::Maglev),
    ];
    for hosts in [10u16, 1000] {
        let route: Vec<_> = (0..hosts)
            .map(|i| native::WeightedHost {
                addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8), 80)),
                weight: 1 + u32::from(i % 4),
            })
            .collect();
        for (name, kind) in policies {
            let mut balancer: Box<Balancer<1024>> = Box::new(Balancer::new(kind, &LbConfig::default()));
            balancer.update(CoreInstant::ZERO, &route).unwrap();
            let mut rng = Rng::new(1);
            let mut now = CoreInstant::ZERO;
            let mut key = 0u64;
            let target = (name == "lars" && hosts == 1000).then_some(50.0);
            runner.bench(&format!("lb {name}: pick + report, {hosts} hosts"), target, || {
                now += lars_core::time::Duration::from_micros(1);
                key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                if let Pick::Host(addr) = balancer.pick(now, Some(key), &mut rng) {
                    balancer.report(now, addr, native::Outcome::Ok, 100);
                }
            });
        }
    }
}

/// The agent's whole API path: a Lars get_host datagram decoded, answered and encoded, then the
/// matching report datagram.
fn bench_agent(runner: &mut Runner) {
    let name = "agent: get_host + report datagrams (Lars codec, 10-host route)";
    if !runner.wants(name) {
        return;
    }
    let start = CoreInstant::ZERO;
    let mut agent: Box<Agent<4, 1024>> = Box::new(Agent::new(AgentConfig::default(), start));
    agent.handle_dns_link(start, true);
    let mut buf = vec![0u8; 70_000];
    let mut datagram = [0u8; 64];
    let mut reply = [0u8; 256];
    let request = Message::GetHostRequest(lars::GetHostRequest { seq: 1, modid: 1001, cmdid: 2 });
    let n = request.emit_frame(&mut datagram).unwrap();
    agent.handle_api_datagram(start, &datagram[..n], &mut reply).unwrap();
    while agent.poll_transmit(start, &mut buf).is_some() {}
    let hosts: Vec<_> = (1..=10).map(host).collect();
    let route = lars::GetRouteResponse { modid: 1001, cmdid: 2, hosts: List::from_slice(&hosts) };
    let len = lars_core::wire::frame::encode(MsgId::GetRouteResponse, &route, &mut buf).unwrap();
    let frame = lars_core::wire::Frame::parse_datagram(&buf[..len], 65527).unwrap();
    agent.handle_dns_frame(start, frame).unwrap();
    let mut report = [0u8; 64];
    let report_len = Message::ReportRequest(lars::ReportRequest {
        modid: 1001,
        cmdid: 2,
        host: Some(host(1)),
        retcode: 0,
    })
    .emit_frame(&mut report)
    .unwrap();
    runner.bench(name, None, || {
        let len = agent.handle_api_datagram(start, black_box(&datagram[..n]), &mut reply).unwrap();
        black_box(&reply[..len]);
        agent.handle_api_datagram(start, black_box(&report[..report_len]), &mut reply).unwrap();
    });
}

fn print_and_save(figures: &[Figure]) {
    println!("{:<72} {:>10} {:>10}", "benchmark", "ns/op", "target");
    let mut json = String::from("[\n");
    for (i, f) in figures.iter().enumerate() {
        let target = f.target_ns.map_or(String::from("-"), |t| {
            let verdict = if f.ns_per_op <= t { "met" } else { "MISSED" };
            format!("<{t:.0} {verdict}")
        });
        println!("{:<72} {:>10.1} {:>10}", f.name, f.ns_per_op, target);
        let target_json = f.target_ns.map_or(String::from("null"), |t| format!("{t}"));
        json.push_str(&format!(
            "  {{\"name\": \"{}\", \"ns_per_op\": {:.2}, \"target_ns\": {}}}{}\n",
            f.name,
            f.ns_per_op,
            target_json,
            if i + 1 < figures.len() { "," } else { "" }
        ));
    }
    json.push(']');
    if let Some(path) = std::env::var_os("LARS_BENCH_OUT") {
        let path = std::path::PathBuf::from(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the bench output folder");
        }
        std::fs::write(&path, json).expect("write the bench figures");
        println!("wrote {}", path.display());
    }
}
