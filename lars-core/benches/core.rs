//! Core micro benchmarks: frame decoding, every message's encode and decode, and the buffer
//! pool. Run by `cargo xtask bench`, which writes the figures to `target/bench/core.json`.
//!
//! Each figure is the median of 7 samples of about 100 ms each, in nanoseconds per operation.
//! The pool's figures with several threads are CPU time (each thread's own, from
//! `/proc/thread-self/schedstat`) per operation, the median of 5 runs: on a shared 2-core
//! machine wall time would also count other processes and, with 4 threads, the time each
//! thread waits for a core.
// Measuring wall time is the point here.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use lars_core::agent::{Agent, AgentConfig};
use lars_core::lb::{Balance, Balancer, LbConfig, Pick, PolicyKind, Rng};
use lars_core::pool::{Buf, BufPool, Class, ClassState, Link, Magazine, Slab};
use lars_core::time::Instant as CoreInstant;
use lars_core::wire::frame::FrameDecoder;
use lars_core::wire::{Encode, List, Message, MsgId, RetCode, lars, native};

mod harness;
use harness::{Figure, Runner, thread_cpu_ns};

fn host(last: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 8080)
}

fn main() {
    let mut runner = Runner::from_args();

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

    bench_pool(&mut runner);
    bench_policies(&mut runner);
    bench_agent(&mut runner);
    bench_decisions(&mut runner);

    runner.finish();
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

/// The decision log: 30 reports that overload a host (15 failures in a row), probe it and
/// re-admit it (15 successes in a row), which is 3 decisions, through an agent that logs them
/// (the std agent's 1,024 entries) and one that only counts them (`D = 0`, the gateway's). The
/// difference over 3 is what logging one decision costs.
fn bench_decisions(runner: &mut Runner) {
    fn cycle<const D: usize>(agent: &mut Agent<4, 16, D>, now: &mut CoreInstant) {
        let host = SocketAddr::V4(host(1));
        for outcome in [native::Outcome::Fail, native::Outcome::Ok] {
            for _ in 0..15 {
                *now += lars_core::time::Duration::from_micros(1);
                agent.report(*now, 1001, 2, black_box(host), outcome, 100);
            }
        }
    }
    fn agent<const D: usize>() -> Box<Agent<4, 16, D>> {
        let mut agent = Box::new(Agent::new(AgentConfig::default(), CoreInstant::ZERO));
        let hosts: Vec<_> =
            (1..=2).map(|i| native::WeightedHost { addr: SocketAddr::V4(host(i)), weight: 1 }).collect();
        assert!(agent.restore_route(CoreInstant::ZERO, 1001, 2, &hosts));
        agent
    }
    let logged_name = "decision log: 30 reports making 3 decisions, logged (D = 1024)";
    let counted_name = "decision log: the same 30 reports, decisions only counted (D = 0)";
    if !runner.wants(logged_name) {
        return;
    }
    let mut logged = agent::<{ lars_core::agent::DECISIONS }>();
    let mut now = CoreInstant::ZERO;
    runner.bench(logged_name, None, || cycle(&mut logged, &mut now));
    assert!(logged.decision_counts().0 > 0, "the cycle makes decisions");
    let mut counted = agent::<0>();
    let mut now = CoreInstant::ZERO;
    runner.bench(counted_name, None, || cycle(&mut counted, &mut now));
    let [with, without] =
        [logged_name, counted_name].map(|n| runner.figures.iter().find(|f| f.name == n).unwrap().ns_per_op);
    runner.figures.push(Figure {
        name: "decision log: cost per decision event ((logged - counted) / 3)".into(),
        ns_per_op: (with - without) / 3.0,
        target_ns: None,
    });
    println!(
        "decision log memory in the std agent: {} B ({} entries of {} B); the gateway keeps none (D = 0)",
        lars_core::agent::DECISIONS * std::mem::size_of::<lars_core::agent::Decision>(),
        lars_core::agent::DECISIONS,
        std::mem::size_of::<lars_core::agent::Decision>()
    );
}

/// The pool's shape in the daemons, scaled down: 4 KiB and 64 KiB classes.
type Pool = BufPool<'static, 2>;
type Mag = Magazine<'static, 2, 64>;

/// The daemons' magazine rounds: 32 small blocks and 8 large ones per thread, with a quarter of
/// each class for all magazines together.
const SMALL_ROUNDS: usize = 32;
const LARGE_ROUNDS: usize = 8;

/// The pool benchmarks: alloc + free on 1, 2 and 4 threads with and without magazines, a
/// mixed-size pattern, a hand-off from an allocating thread to a freeing one, and `Vec`s beside
/// them.
fn bench_pool(runner: &mut Runner) {
    static SMALL: Slab<4096, 1024> = Slab::new();
    static LARGE: Slab<65536, 64> = Slab::new();
    static PLAIN: Pool = BufPool::new([SMALL.class(), LARGE.class()]);
    static SMALL_M: Slab<4096, 1024> = Slab::new();
    static LARGE_M: Slab<65536, 64> = Slab::new();
    static CACHED: Pool = BufPool::new([
        SMALL_M.class().with_magazines(SMALL_ROUNDS, 256),
        LARGE_M.class().with_magazines(LARGE_ROUNDS, 16),
    ]);

    runner.bench("pool alloc + free, 1 thread", Some(20.0), || {
        black_box(PLAIN.alloc(black_box(1000)).unwrap());
    });
    {
        let mut magazine: Mag = Magazine::new(&CACHED);
        runner.bench("pool alloc + free, 1 thread, magazine", None, || {
            let buf = magazine.alloc(black_box(1000)).unwrap();
            magazine.free(black_box(buf));
        });
    }
    // The daemons' storage is leaked once at start from the configuration rather than static:
    // the same classes over run-time storage cost the same.
    {
        let leaked = leaked_pool();
        let mut magazine: Mag = Magazine::new(leaked);
        runner.bench("pool alloc + free, 1 thread, magazine, storage leaked at start", None, || {
            let buf = magazine.alloc(black_box(1000)).unwrap();
            magazine.free(black_box(buf));
        });
    }
    // Alloc and free are one compare-exchange each; what one costs varies between hosts, so
    // the figures above are read against this one.
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
    runner.bench("reference: Vec::with_capacity(1000) + drop, 1 thread", None, || {
        black_box(Vec::<u8>::with_capacity(black_box(1000)));
    });

    const OPS: u64 = 2_000_000;
    for threads in [1, 2, 4] {
        let target = (threads == 2).then_some(25.0);
        let name = |what: &str| format!("pool alloc + free, {threads} threads contending, {what} (CPU/op)");
        runner.threaded(&name("no magazine"), None, threads, OPS, |_| {
            move || {
                black_box(PLAIN.alloc(black_box(1000)).unwrap());
            }
        });
        runner.threaded(&name("magazines"), target, threads, OPS, |_| {
            let mut magazine: Mag = Magazine::new(&CACHED);
            move || {
                let buf = magazine.alloc(black_box(1000)).unwrap();
                magazine.free(black_box(buf));
            }
        });
        runner.threaded(&name("Vec for reference"), None, threads, OPS, |_| {
            || {
                black_box(Vec::<u8>::with_capacity(black_box(1000)));
            }
        });
    }

    // Mixed sizes: each thread keeps its last 6 buffers and allocates from a pattern of small
    // and large sizes, so that blocks stay out for a while and both classes are in play.
    const SIZES: [usize; 8] = [1000, 300, 4000, 20_000, 1000, 2000, 65_000, 500];
    let mixed = |what: &str| format!("pool mixed sizes (1/4 large, 6 held), 2 threads, {what} (CPU/op)");
    runner.threaded(&mixed("no magazine"), None, 2, OPS, |_| {
        let mut held: std::collections::VecDeque<Buf<'static>> = std::collections::VecDeque::new();
        let mut i = 0;
        move || {
            i += 1;
            held.push_back(PLAIN.alloc(SIZES[i % SIZES.len()]).unwrap());
            if held.len() > 6 {
                drop(held.pop_front());
            }
        }
    });
    runner.threaded(&mixed("magazines"), None, 2, OPS, |_| {
        let mut magazine: Mag = Magazine::new(&CACHED);
        let mut held: std::collections::VecDeque<Buf<'static>> = std::collections::VecDeque::new();
        let mut i = 0;
        move || {
            i += 1;
            held.push_back(magazine.alloc(SIZES[i % SIZES.len()]).unwrap());
            if held.len() > 6
                && let Some(old) = held.pop_front()
            {
                magazine.free(old);
            }
        }
    });
    runner.threaded(&mixed("Vec for reference"), None, 2, OPS, |_| {
        let mut held: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
        let mut i = 0;
        move || {
            i += 1;
            held.push_back(Vec::with_capacity(SIZES[i % SIZES.len()]));
            if held.len() > 6 {
                drop(held.pop_front());
            }
        }
    });

    bench_hand_off(runner);
}

/// The daemons' pool shape over storage leaked once, as `lars_std::pool` builds it from the
/// configuration.
fn leaked_pool() -> &'static Pool {
    fn class(size: usize, blocks: usize, rounds: usize) -> Class<'static> {
        let state = Box::leak(Box::new(ClassState::new()));
        let links = Box::leak((0..blocks).map(|_| Link::new()).collect::<Box<[Link]>>());
        let bytes = Box::leak(vec![0u8; size * blocks].into_boxed_slice());
        Class::over(state, links, bytes).unwrap().with_magazines(rounds, blocks / 4)
    }
    Box::leak(Box::new(BufPool::new([class(4096, 1024, SMALL_ROUNDS), class(65536, 64, LARGE_ROUNDS)])))
}

/// One thread allocates, another frees what it allocated, as the reactor's reader and writer
/// threads would. The buffers go over in batches of 1,024 through a channel, and the empty
/// batches come back for reuse: waking a thread costs microseconds on these machines, so the
/// batches are large, and the channel's own cost (with values the size of a `Buf`, which cross
/// between the cores too) is measured alone beside them.
fn bench_hand_off(runner: &mut Runner) {
    const BATCH: usize = 1024;
    const OPS: u64 = 1 << 21;
    // Three batches in flight at most, and the magazines' rounds.
    static SMALL: Slab<4096, 4096> = Slab::new();
    static PLAIN: BufPool<'static, 1> = BufPool::new([SMALL.class()]);
    static SMALL_M: Slab<4096, 4096> = Slab::new();
    static CACHED: BufPool<'static, 1> = BufPool::new([SMALL_M.class().with_magazines(SMALL_ROUNDS, 1024)]);
    type HandMag = Magazine<'static, 1, 64>;

    let name = |what: &str| format!("pool hand-off, alloc on one thread, free on another, {what} (CPU/op)");
    fn run<T: Send>(mut make: impl FnMut() -> T + Send, mut take: impl FnMut(T) + Send) -> f64 {
        let (to_freer, from_maker) = std::sync::mpsc::sync_channel::<Vec<T>>(1);
        let (to_maker, from_freer) = std::sync::mpsc::sync_channel::<Vec<T>>(3);
        for _ in 0..3 {
            to_maker.send(Vec::with_capacity(BATCH)).unwrap();
        }
        let (maker, freer) = std::thread::scope(|scope| {
            let maker = scope.spawn(move || {
                let start = thread_cpu_ns();
                for _ in 0..OPS / BATCH as u64 {
                    let mut batch = from_freer.recv().unwrap();
                    batch.extend((0..BATCH).map(|_| make()));
                    to_freer.send(batch).unwrap();
                }
                thread_cpu_ns() - start
            });
            let freer = scope.spawn(move || {
                let start = thread_cpu_ns();
                for mut batch in from_maker.iter() {
                    batch.drain(..).for_each(&mut take);
                    let _ = to_maker.send(batch);
                }
                thread_cpu_ns() - start
            });
            (maker.join().unwrap(), freer.join().unwrap())
        });
        (maker + freer) as f64 / OPS as f64
    }
    if !runner.wants(&name("")) {
        return;
    }
    let median = |f: &mut dyn FnMut() -> f64| {
        let mut samples: Vec<f64> = (0..5).map(|_| f()).collect();
        samples.sort_by(f64::total_cmp);
        samples[2]
    };
    // The channel carrying values the size of a `Buf`, whose bytes move between the cores too.
    const BUF_WORDS: usize = size_of::<Buf<'static>>() / size_of::<usize>();
    let channel = median(&mut || {
        run(
            || black_box([7usize; BUF_WORDS]),
            |n| {
                black_box(n);
            },
        )
    });
    let no_magazine = median(&mut || run(|| PLAIN.alloc(1000).unwrap(), |buf| drop(black_box(buf))));
    let magazines = median(&mut || {
        let mut maker: HandMag = Magazine::new(&CACHED);
        let mut freer: HandMag = Magazine::new(&CACHED);
        run(move || maker.alloc(1000).unwrap(), move |buf| freer.free(black_box(buf)))
    });
    let vec = median(&mut || run(|| Vec::<u8>::with_capacity(1000), |v| drop(black_box(v))));
    for (what, ns) in [
        ("the channel alone", channel),
        ("no magazine", no_magazine),
        ("magazines", magazines),
        ("Vec for reference", vec),
    ] {
        runner.figures.push(Figure { name: name(what), ns_per_op: ns, target_ns: None });
    }
}
