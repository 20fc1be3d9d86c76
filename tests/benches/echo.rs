//! Reactor echo benchmark, in the manner of the original's `qps_test`: each client thread
//! holds one connection and ping-pongs a small frame ("Hello Lars!!!"), either closed loop (one
//! request in flight) or pipelined (32 in flight); then each client thread holds 32
//! connections with one request in flight on each, as a daemon serving a fleet sees it. The
//! same clients also run against a plain thread-per-connection blocking echo server, the
//! baseline, in the same process, in half-second slices alternating with ours (see
//! `run_row`).
//!
//! These VMs make waking an idle CPU expensive, so closed-loop figures depend on whether the
//! other core is busy: every closed-loop figure is taken twice, on an otherwise idle machine
//! and with one core kept busy by a spinning thread, and labelled so. Compare like with like.
//! Beside the rates, each row gives each server's own CPU time per round trip: where both
//! servers are bound by the same kernel work, it shows what each adds to it.
//! Figures go to stdout and to `LARS_BENCH_OUT` (JSON).
// Measuring wall time is the point here.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lars_tests::spinner::Spinner;
use lars_tests::{echo_server, frame_bytes};

/// Each figure is measured in slices, alternating with the other server's (ABBA ABBA), so that
/// a drift in the VM's speed during a row weighs on both servers alike.
const SLICE: Duration = Duration::from_millis(500);
/// Slices per server per row.
const SLICES: u32 = 8;
const PIPELINE: usize = 32;
/// Connections per client thread in the many-connections rows: a daemon serves a fleet.
const MANY_CONNS: usize = 32;

/// The baseline: a blocking echo server with one thread per connection.
fn blocking_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = std::thread::Builder::new().name("blocking-echo".into()).spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut stream = stream;
                let mut header = [0u8; 8];
                let mut body = vec![0u8; 65536];
                while stream.read_exact(&mut header).is_ok() {
                    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
                    if len > body.len() || stream.read_exact(&mut body[..len]).is_err() {
                        return;
                    }
                    let mut frame = header.to_vec();
                    frame.extend_from_slice(&body[..len]);
                    if stream.write_all(&frame).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Whose turn it is in a row: one of the servers' indices, or `DONE`.
const DONE: usize = usize::MAX;

/// Names (as the kernel truncates them, 15 bytes) of each server's threads, in `run_row`'s order.
const SERVER_THREADS: [&[&str]; 2] = [&["lars-worker-", "lars-acceptor"], &["blocking-echo"]];

/// On-CPU time so far, in ns, of each of this process's threads whose name starts with one
/// of `prefixes`, by thread id (from `/proc/self/task/*/schedstat`, whose first field is the
/// time run).
fn cpu_ns(prefixes: &[&str]) -> HashMap<u64, u64> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return HashMap::new() };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| prefixes.iter().any(|p| comm.starts_with(p)))
        })
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            Some((tid, stat.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// CPU time, in ns, that threads still alive at `after` ran since `before` (threads from an
/// earlier row may exit in between; threads started since count in full).
fn cpu_between(before: &HashMap<u64, u64>, after: &HashMap<u64, u64>) -> u64 {
    after.iter().map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0))).sum()
}

/// What `run_row` measured for one server.
struct Figures {
    per_sec: f64,
    /// The server's own threads' CPU time per round trip, in µs.
    server_cpu_us: f64,
}

/// Round trips per second to each of `servers`, and the servers' own CPU time per round trip,
/// each summed over `threads` client threads that hold `conns` connections and keep
/// `in_flight` requests out on each. A thread serves its connections in turn: it reads one
/// answer from each and sends the next request.
///
/// The servers take turns in half-second slices (ABBA ABBA), so that a drift in the VM's speed
/// weighs on both alike. Connections and threads stay up for the whole row, and a client whose
/// server is not on turn collects its outstanding answers and waits: nothing is reconnected
/// between slices, so the scheduler's placement of long-lived threads is not reset either.
fn run_row(servers: [SocketAddr; 2], threads: usize, conns: usize, in_flight: usize) -> [Figures; 2] {
    let request = frame_bytes(0x101, b"Hello Lars!!!");
    let turn = Arc::new(AtomicUsize::new(DONE - 1)); // nobody's: connect and wait
    let connected = Arc::new(std::sync::Barrier::new(2 * threads + 1));
    let clients: Vec<_> = (0..2)
        .flat_map(|server| (0..threads).map(move |_| server))
        .map(|server| {
            let request = request.clone();
            let turn = Arc::clone(&turn);
            let connected = Arc::clone(&connected);
            let addr = servers[server];
            std::thread::Builder::new()
                .name(format!("{}-client", ["lars", "blocking"][server]))
                .spawn(move || {
                    let mut streams: Vec<TcpStream> = (0..conns)
                        .map(|_| {
                            let stream = TcpStream::connect(addr).unwrap();
                            stream.set_nodelay(true).unwrap();
                            stream
                        })
                        .collect();
                    connected.wait();
                    let mut reply = vec![0u8; request.len()];
                    let mut count = 0u64;
                    loop {
                        match turn.load(Ordering::Acquire) {
                            DONE => return (server, count),
                            now if now != server => {
                                std::thread::sleep(Duration::from_millis(1));
                                continue;
                            }
                            _ => {}
                        }
                        for stream in &mut streams {
                            for _ in 0..in_flight {
                                stream.write_all(&request).unwrap();
                            }
                        }
                        while turn.load(Ordering::Relaxed) == server {
                            for stream in &mut streams {
                                stream.read_exact(&mut reply).unwrap();
                                assert_eq!(reply, request);
                                count += 1;
                                stream.write_all(&request).unwrap();
                            }
                        }
                        for stream in &mut streams {
                            for _ in 0..in_flight {
                                stream.read_exact(&mut reply).unwrap();
                            }
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    connected.wait();
    let cpu_before = SERVER_THREADS.map(cpu_ns);
    for slice in 0..2 * SLICES {
        turn.store(if matches!(slice % 4, 0 | 3) { 0 } else { 1 }, Ordering::Release);
        std::thread::sleep(SLICE);
    }
    // Before the clients hang up, when the blocking server's threads exit.
    let cpu_after = SERVER_THREADS.map(cpu_ns);
    turn.store(DONE, Ordering::Release);
    let mut totals = [0u64; 2];
    for client in clients {
        let (server, count) = client.join().unwrap();
        totals[server] += count;
    }
    [0, 1].map(|server| Figures {
        per_sec: totals[server] as f64 / (SLICE * SLICES).as_secs_f64(),
        server_cpu_us: cpu_between(&cpu_before[server], &cpu_after[server]) as f64
            / 1e3
            / totals[server].max(1) as f64,
    })
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let reactor = echo_server(2, 1024);
    let blocking = blocking_echo_server();
    let mut rows = Vec::new();
    println!(
        "{:<60} {:>12} {:>12} {:>7} {:>15} {:>15}",
        "echo (round trips/s)", "lars reactor", "blocking", "ratio", "lars CPU/rt", "blocking CPU/rt"
    );
    let modes = [
        ("closed loop", 1, 1),
        ("pipelined x32", 1, PIPELINE),
        ("closed loop on 32 connections each", MANY_CONNS, 1),
    ];
    for (mode, conns, in_flight) in modes {
        let conditions: &[&str] =
            if (conns, in_flight) == (1, 1) { &["idle", "one core busy"] } else { &["idle"] };
        for &condition in conditions {
            for threads in [1, 2] {
                let name = format!(
                    "{mode}, {threads} client thread{}, {condition}",
                    if threads > 1 { "s" } else { "" }
                );
                if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
                    continue;
                }
                let spinner = (condition != "idle").then(Spinner::start);
                let [ours, theirs] = run_row([reactor.local_addr(), blocking], threads, conns, in_flight);
                let (cpu_ours, cpu_theirs) = (ours.server_cpu_us, theirs.server_cpu_us);
                let (ours, theirs) = (ours.per_sec, theirs.per_sec);
                drop(spinner);
                println!(
                    "{name:<60} {ours:>12.0} {theirs:>12.0} {:>6.2}x {cpu_ours:>12.2} µs {cpu_theirs:>12.2} µs",
                    ours / theirs
                );
                rows.push(format!(
                    "  {{\"name\": \"{name}\", \"lars_per_sec\": {ours:.0}, \"blocking_per_sec\": {theirs:.0}, \"ratio\": {:.3}, \"lars_server_cpu_us\": {cpu_ours:.3}, \"blocking_server_cpu_us\": {cpu_theirs:.3}}}",
                    ours / theirs
                ));
            }
        }
    }
    println!("CPU/rt: the server's own threads' CPU time per round trip (from /proc/self/task/*/schedstat)");
    println!("original Lars reactor, measured here (closed loop, idle): 17.5k/s at 1 thread, 39.9k/s at 2");
    if let Some(path) = std::env::var_os("LARS_BENCH_OUT") {
        let path = std::path::PathBuf::from(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("[\n{}\n]", rows.join(",\n"))).unwrap();
        println!("wrote {}", path.display());
    }
    let stats = reactor.stats();
    assert_eq!(stats.bad_frames.load(Ordering::Relaxed), 0);
}
