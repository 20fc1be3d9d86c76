//! Hostile-peer and load benchmarks of issue 15, each in a process of its own (the buffer pool
//! and the descriptor limit are the process's):
//!
//! - `flood`: one connection sends 3,000,000 `GetRouteRequest`s for routes that do not exist;
//!   lars-dns's RSS before, after, and after the connection closed, and its subscriptions.
//! - `headers`: lars-dns started with `maxConn` 8,400 on the default pool (refused now), then
//!   with the most the pool backs, every connection holding half a header, and whether a good
//!   client is still answered (and how fast).
//! - `partials`: 520 connections each send 5,000 bytes of a 60 KB frame to lars-reporter; does
//!   another agent's whole 15 KB statistics frame get stored?
//! - `push`: 10,000 agent connections to lars-dns holding 100,000 routes (each subscribes to
//!   one shared route and 10 of its own); the shared route changes; time from the version bump
//!   to the last push, and lars-dns's RSS.
//! - `agent`: a good client's get_host p50/p99 through lars-agent, alone and beside a flood of
//!   get_host from 100 threads.
//!
//! Figures go to stdout and, as JSON, to `LARS_BENCH_OUT`. `LARS_HOSTILE_ONLY=a,b` runs some.
// Measuring wall time is the point here.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lars_core::wire::native::{CallStats, HostStats};
use lars_core::wire::{Decode, Encode, List, MsgId, frame, lars};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::store::memory::{MemoryRoutes, MemoryStats};
use lars_tests::{FrameClient, frame_bytes};

const SECTIONS: [&str; 5] = ["flood", "headers", "partials", "push", "agent"];

fn main() {
    if let Ok(section) = std::env::var("LARS_HOSTILE_SECTION") {
        raise_fd_limit();
        let figures = match section.as_str() {
            "flood" => flood(),
            "headers" => headers(),
            "partials" => partials(),
            "push" => push(),
            "push-agents" => push_agents(),
            "agent" => agent(),
            other => panic!("no section {other}"),
        };
        // The parent collects this line.
        println!("FIGURES {figures}");
        return;
    }
    let only = std::env::var("LARS_HOSTILE_ONLY").unwrap_or_default();
    let mut json = Vec::new();
    for section in SECTIONS.into_iter().filter(|s| only.is_empty() || only.split(',').any(|o| o == *s)) {
        println!("\n== {section}");
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .env("LARS_HOSTILE_SECTION", section)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines() {
            match line.strip_prefix("FIGURES ") {
                Some(figures) => json.push(format!("\"{section}\": {figures}")),
                None => println!("{line}"),
            }
        }
        assert!(output.status.success(), "section {section} failed: {}", output.status);
    }
    if let Some(path) = std::env::var_os("LARS_BENCH_OUT") {
        std::fs::write(&path, format!("{{{}}}\n", json.join(", "))).unwrap();
        println!("wrote {}", std::path::Path::new(&path).display());
    }
}

/// Raises the descriptor limit: the push section holds 20,000 sockets (both ends of 10,000
/// connections) in this process. Root may raise the hard limit too (to 65,536); anyone may
/// raise the soft one to the hard one.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    const WANTED: u64 = 65_536;
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let raised = if hard < WANTED
        && setrlimit(Resource::Nofile, Rlimit { current: Some(WANTED), maximum: Some(WANTED) }).is_ok()
    {
        WANTED
    } else {
        setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum }).unwrap();
        hard
    };
    println!(
        "(RLIMIT_NOFILE of this process: soft {:?} and hard {:?}, now {raised} for both)",
        limit.current, limit.maximum
    );
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    kib / 1024.0
}

fn counter(addr: SocketAddr, name: &str) -> Option<u64> {
    let counters = lars_std::client::daemon_stats(addr, Duration::from_secs(10)).ok()?;
    counters.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

fn loopback(threads: usize) -> ServerConfig {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = threads;
    config
}

fn route_request(modid: i32, cmdid: i32, out: &mut [u8]) -> usize {
    let body = lars::GetRouteRequest { modid, cmdid };
    frame::encode(MsgId::GetRouteRequest, &body, &mut out[..frame::HEADER_LEN + body.buffer_len()]).unwrap()
}

fn read_frame(stream: &mut TcpStream, body: &mut Vec<u8>) -> std::io::Result<u32> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header)?;
    let len = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
    body.resize(len, 0);
    stream.read_exact(body)?;
    Ok(u32::from_le_bytes(header[..4].try_into().unwrap()))
}

/// Whether a fresh connection gets route `(modid, 1)` within `limit`; how long it took.
fn answered_within(addr: SocketAddr, modid: i32, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, limit).ok()?;
    stream.set_read_timeout(Some(limit)).ok()?;
    let mut out = [0u8; 32];
    let len = route_request(modid, 1, &mut out);
    stream.write_all(&out[..len]).ok()?;
    read_frame(&mut stream, &mut Vec::new()).ok()?;
    Some(start.elapsed())
}

fn flood() -> String {
    const REQUESTS: u64 = 3_000_000;
    let store = MemoryRoutes::new();
    store.set_route((1, 1), &["10.0.0.1:80".parse().unwrap()]);
    let dns = Dns::start(DnsConfig::new(loopback(5)), Box::new(store)).unwrap();
    let addr = dns.local_addr();
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_mb();
    let start = Instant::now();
    let stream = TcpStream::connect(addr).unwrap();
    let writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut writer = std::io::BufWriter::with_capacity(256 * 1024, writer);
        let mut out = [0u8; 32];
        for i in 0..REQUESTS {
            let len = route_request(1_000_000 + i as i32, 1, &mut out);
            writer.write_all(&out[..len]).unwrap();
        }
        writer.flush().unwrap();
    });
    let mut reader = stream.try_clone().unwrap();
    let mut body = Vec::new();
    for _ in 0..REQUESTS {
        read_frame(&mut reader, &mut body).unwrap();
    }
    sender.join().unwrap();
    let took = start.elapsed().as_secs_f64();
    let after = rss_mb();
    let subscriptions = counter(addr, "subscriptions");
    drop((stream, reader));
    std::thread::sleep(Duration::from_secs(1));
    let closed = rss_mb();
    println!("{REQUESTS} GetRoute for unknown routes from one connection in {took:.1} s");
    println!("lars-dns RSS: {before:.1} MB before, {after:.1} MB after, {closed:.1} MB 1 s after the close");
    println!("subscriptions held after the flood: {subscriptions:?} (None: no such counter)");
    format!(
        "{{\"requests\": {REQUESTS}, \"seconds\": {took:.2}, \"rss_before_mb\": {before:.1}, \
         \"rss_after_mb\": {after:.1}, \"rss_after_close_mb\": {closed:.1}, \"subscriptions\": {}}}",
        subscriptions.map_or("null".into(), |n| n.to_string())
    )
}

fn headers() -> String {
    const ASKED: usize = 8400;
    let store = MemoryRoutes::new();
    store.set_route((1, 1), &["10.0.0.1:80".parse().unwrap()]);
    let mut server = loopback(5);
    server.max_conns = ASKED;
    let (max_conns, refused) = match Dns::start(DnsConfig::new(server.clone()), Box::new(store.clone())) {
        Ok(dns) => {
            drop(dns);
            (ASKED, None)
        }
        Err(e) => {
            println!("maxConn {ASKED} refused at start: {e}");
            // The most the default pool backs, as the message says.
            (3072, Some(e.to_string()))
        }
    };
    server.max_conns = max_conns;
    let dns = Dns::start(DnsConfig::new(server), Box::new(store)).unwrap();
    let addr = dns.local_addr();
    // Every slot but the good client's holds 4 bytes of a header.
    let mut out = [0u8; 32];
    route_request(1, 1, &mut out);
    let held: Vec<TcpStream> = (0..max_conns - 2)
        .filter_map(|_| {
            let mut stream = TcpStream::connect(addr).ok()?;
            stream.write_all(&out[..4]).ok()?;
            Some(stream)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let answer = answered_within(addr, 1, Duration::from_secs(5));
    println!(
        "maxConn {max_conns}, {} connections holding half a header: a good client {}",
        held.len(),
        answer.map_or("got no answer in 5 s".into(), |t| format!(
            "was answered in {:.1} ms",
            t.as_secs_f64() * 1e3
        ))
    );
    format!(
        "{{\"asked_max_conn\": {ASKED}, \"refused_at_start\": {}, \"max_conn\": {max_conns}, \"half_headers\": {}, \
         \"good_client_answered_ms\": {}}}",
        refused.is_some(),
        held.len(),
        answer.map_or("null".into(), |t| format!("{:.2}", t.as_secs_f64() * 1e3))
    )
}

fn partials() -> String {
    use lars_std::reporter::{Reporter, ReporterConfig};
    const SLOW: usize = 520;
    const ROWS: u64 = 1100;
    let stats = MemoryStats::new();
    let store = stats.clone();
    let reporter =
        Reporter::start(ReporterConfig::new(loopback(5)), move |_| Box::new(store.clone())).unwrap();
    let addr = reporter.local_addr();
    let big = frame_bytes(MsgId::NativeCallStats.as_u32(), &[0u8; 60_000]);
    let slow: Vec<FrameClient> = (0..SLOW)
        .map(|_| {
            let mut client = FrameClient::connect(addr).unwrap();
            client.write(&big[..5000]).unwrap();
            client
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // An agent's statistics frame of about 15 KB.
    let entries: Vec<HostStats> = (0..ROWS)
        .map(|i| {
            let mut entry = HostStats::empty(1, 1, SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 80)));
            entry.succ = 1;
            entry
        })
        .collect();
    let body = CallStats { caller: 7, ts: 1_764_000_000, entries: List::from_slice(&entries) };
    let mut out = vec![0u8; frame::HEADER_LEN + body.buffer_len()];
    let len = frame::encode(MsgId::NativeCallStats, &body, &mut out).unwrap();
    let mut agent = FrameClient::connect(addr).unwrap();
    let start = Instant::now();
    agent.write(&out[..len]).unwrap();
    let rows = &reporter.stats().rows_stored;
    while rows.load(Ordering::Relaxed) < ROWS && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stored = rows.load(Ordering::Relaxed);
    let took = start.elapsed();
    println!(
        "{SLOW} connections holding 5,000 bytes of a 60 KB frame; a whole {len}-byte frame from another agent: {}",
        if stored >= 500 {
            format!("stored in {:.1} ms", took.as_secs_f64() * 1e3)
        } else {
            format!("{stored} of {ROWS} rows stored after 5 s")
        }
    );
    drop(slow);
    format!(
        "{{\"slow_connections\": {SLOW}, \"good_frame_bytes\": {len}, \"good_rows_stored\": {stored}, \"stored_ms\": {}}}",
        if stored >= ROWS { format!("{:.2}", took.as_secs_f64() * 1e3) } else { "null".into() }
    )
}

const AGENTS: usize = 10_000;
const ROUTES: i32 = 100_000;
/// Routes each agent asks for besides the shared one.
const OWN: usize = 10;

/// The agents' side of `push`, in a process of its own (the descriptor limit is per process):
/// connects 10,000 agents to the lars-dns at `LARS_HOSTILE_DNS`, each asking for route 1 and
/// 10 of its own, says `READY` once every answer came, then reads the push of route 1 on
/// every connection and says `READ`.
fn push_agents() -> String {
    use std::io::BufRead;
    let addr: SocketAddr = std::env::var("LARS_HOSTILE_DNS").unwrap().parse().unwrap();
    let mut out = [0u8; 32];
    let mut body = Vec::new();
    let mut agents: Vec<TcpStream> = Vec::with_capacity(AGENTS);
    for agent in 0..AGENTS {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut requests = Vec::new();
        // The shared route, and 10 of its own: every route is held by somebody.
        for modid in std::iter::once(1).chain((0..OWN).map(|k| 2 + ((agent * OWN + k) as i32 % (ROUTES - 1))))
        {
            let len = route_request(modid, 1, &mut out);
            requests.extend_from_slice(&out[..len]);
        }
        stream.write_all(&requests).unwrap();
        agents.push(stream);
    }
    for stream in &mut agents {
        for _ in 0..=OWN {
            read_frame(stream, &mut body).unwrap();
        }
    }
    println!("READY");
    std::io::stdout().flush().unwrap();
    for stream in &mut agents {
        read_frame(stream, &mut body).unwrap();
        let route = lars::GetRouteResponse::parse(&body).unwrap();
        assert_eq!((route.modid, route.hosts.len()), (1, 2));
    }
    println!("READ");
    std::io::stdout().flush().unwrap();
    // Hold the connections until the parent is done measuring.
    let _ = std::io::stdin().lock().lines().next();
    "{}".into()
}

fn push() -> String {
    use std::io::BufRead;
    // Two small blocks per connection, and the magazines' quarter: the reactor refuses less.
    let pool = lars_std::pool::PoolConfig { small_blocks: 32_768, ..Default::default() };
    lars_std::pool::configure(pool).unwrap();
    let store = MemoryRoutes::new();
    for modid in 1..=ROUTES {
        let host = SocketAddr::from(([10, (modid >> 16) as u8, (modid >> 8) as u8, modid as u8], 80));
        store.set_route((modid, 1), &[host]);
    }
    let mut server = loopback(2);
    server.max_conns = AGENTS + 64;
    let mut config = DnsConfig::new(server);
    config.poll_interval = Duration::from_millis(10);
    config.reload_interval = Duration::from_secs(3600);
    let dns = Dns::start(config, Box::new(store.clone())).unwrap();
    let addr = dns.local_addr();
    let before = rss_mb();
    let setup = Instant::now();
    let mut agents = std::process::Command::new(std::env::current_exe().unwrap())
        .env("LARS_HOSTILE_SECTION", "push-agents")
        .env("LARS_HOSTILE_DNS", addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(agents.stdout.take().unwrap()).lines();
    let mut expect = |word: &str| loop {
        let line = said.next().expect("the agents' process ended").unwrap();
        if line == word {
            break;
        }
    };
    expect("READY");
    let setup = setup.elapsed().as_secs_f64();
    let subscriptions = counter(addr, "subscriptions");
    let held = rss_mb();
    let pushes = &dns.stats().pushes;
    let pushed_before = pushes.load(Ordering::Relaxed);
    let bump = Instant::now();
    store.set_route((1, 1), &["10.0.0.1:80".parse().unwrap(), "10.0.0.2:80".parse().unwrap()]);
    let mut first_push = None;
    while pushes.load(Ordering::Relaxed) < pushed_before + AGENTS as u64 {
        assert!(bump.elapsed() < Duration::from_secs(60), "the pushes did not all go out");
        if first_push.is_none() && pushes.load(Ordering::Relaxed) > pushed_before {
            first_push = Some(bump.elapsed());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let last_push = bump.elapsed();
    let first_push = first_push.unwrap_or(last_push);
    expect("READ");
    let received = bump.elapsed();
    drop(agents.stdin.take());
    agents.wait().unwrap();
    let failures = dns.stats().push_failures.load(Ordering::Relaxed);
    println!(
        "{AGENTS} agent connections, {ROUTES} routes, {subscriptions:?} subscriptions, set up in {setup:.1} s"
    );
    println!(
        "lars-dns RSS {before:.1} MB with the routes, {held:.1} MB with the agents and their subscriptions"
    );
    println!(
        "version bump -> last of {AGENTS} pushes sent: {:.1} ms (every agent had read it after {:.1} ms; {failures} failed)",
        last_push.as_secs_f64() * 1e3,
        received.as_secs_f64() * 1e3
    );
    println!(
        "  of which version bump -> first push: {:.1} ms (noticing, every 10 ms here, and reloading the memory \
         store's 100,000 routes, which has no change log)",
        first_push.as_secs_f64() * 1e3
    );
    format!(
        "{{\"agents\": {AGENTS}, \"routes\": {ROUTES}, \"subscriptions\": {}, \"rss_routes_mb\": {before:.1}, \
         \"rss_agents_mb\": {held:.1}, \"bump_to_first_push_ms\": {:.2}, \"bump_to_last_push_ms\": {:.2}, \"bump_to_all_read_ms\": {:.2}, \"push_failures\": {failures}}}",
        subscriptions.unwrap_or(0),
        first_push.as_secs_f64() * 1e3,
        last_push.as_secs_f64() * 1e3,
        received.as_secs_f64() * 1e3
    )
}

fn agent() -> String {
    use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
    use lars_std::client::{Client, ClientConfig};
    use lars_std::reporter::{Reporter, ReporterConfig};
    const FLOODERS: usize = 100;
    const SAMPLES: usize = 20_000;
    let store = MemoryRoutes::new();
    store.set_route((1, 1), &["10.0.0.1:80".parse().unwrap(), "10.0.0.2:80".parse().unwrap()]);
    let dns = Dns::start(DnsConfig::new(loopback(2)), Box::new(store)).unwrap();
    let stats = MemoryStats::new();
    let reporter =
        Reporter::start(ReporterConfig::new(loopback(2)), move |_| Box::new(stats.clone())).unwrap();
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter.local_addr()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    let daemon = AgentDaemon::start(config).unwrap();
    let client_config = ClientConfig { agent: daemon.api_addrs().to_vec(), ..ClientConfig::default() };
    let good = Client::new(client_config.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while good.get_host(1, 1, None).is_err() {
        assert!(Instant::now() < deadline, "the route never reached the agent");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Up to SAMPLES calls, for 3 s at most.
    let percentiles = |client: &Client| {
        let until = Instant::now() + Duration::from_secs(3);
        let mut samples: Vec<Duration> = Vec::with_capacity(SAMPLES);
        while samples.len() < SAMPLES && Instant::now() < until {
            let start = Instant::now();
            let _ = client.get_host(1, 1, None);
            samples.push(start.elapsed());
        }
        samples.sort_unstable();
        let at = |p: f64| {
            samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)].as_secs_f64() * 1e6
        };
        (at(0.5), at(0.99), samples.len())
    };
    let (alone_p50, alone_p99, alone_n) = percentiles(&good);
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let (stop, calls, errors, config) =
                (Arc::clone(&stop), Arc::clone(&calls), Arc::clone(&errors), client_config.clone());
            std::thread::spawn(move || {
                let client = Client::new(config);
                while !stop.load(Ordering::Relaxed) {
                    let counter = if client.get_host(1, 1, None).is_ok() { &calls } else { &errors };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let flood_start = (Instant::now(), calls.load(Ordering::Relaxed));
    let (flood_p50, flood_p99, flood_n) = percentiles(&good);
    let flood_rate =
        (calls.load(Ordering::Relaxed) - flood_start.1) as f64 / flood_start.0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        flooder.join().unwrap();
    }
    let errors = errors.load(Ordering::Relaxed);
    println!("good client's get_host alone ({alone_n} calls): p50 {alone_p50:.0} us, p99 {alone_p99:.0} us");
    println!(
        "beside {FLOODERS} flooding threads ({flood_rate:.0} get_host/s, {errors} errors; {flood_n} calls): \
         p50 {flood_p50:.0} us, p99 {flood_p99:.0} us ({:.1}x alone)",
        flood_p99 / alone_p99
    );
    format!(
        "{{\"flooders\": {FLOODERS}, \"alone_p50_us\": {alone_p50:.1}, \"alone_p99_us\": {alone_p99:.1}, \
         \"flood_p50_us\": {flood_p50:.1}, \"flood_p99_us\": {flood_p99:.1}, \"flood_calls_per_s\": {flood_rate:.0}, \
         \"flood_errors\": {errors}}}"
    )
}
