//! lars-reporter on its statistics file (`--stats-file`, the store without MySQL) under a flood:
//! `AGENTS` agents send `ROWS_PER_AGENT` host results each, every one a key of its own (the
//! worst case for a store that keeps one row per key). Times the reporter until every row is
//! stored, the stop that follows, and a restart that adds one row; prints rows per second, the
//! process's peak memory growth, the stop's duration and how many rows the file holds after the
//! restart. Figures go to stdout and to `LARS_BENCH_OUT` (JSON).
// Measuring wall time is the point here.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lars_core::wire::native::{CallStats, HostStats};
use lars_core::wire::{List, MsgId, frame};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::file::StatsFile;
use lars_tests::FrameClient;

const AGENTS: usize = 4;
const ROWS_PER_AGENT: usize = 50_000;
const ENTRIES_PER_FRAME: usize = 64;
/// Rows queued when the reporter is stopped.
const BACKLOG_ROWS: usize = 50_000;

fn loopback() -> ServerConfig {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 2;
    config
}

/// The process's peak resident memory so far, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn frame_of(agent: usize, chunk: &[HostStats]) -> Vec<u8> {
    let body = CallStats { caller: agent as u32, ts: 1_764_000_000, entries: List::from_slice(chunk) };
    let mut out = vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize];
    let len = frame::encode(MsgId::NativeCallStats, &body, &mut out).unwrap();
    out.truncate(len);
    out.shrink_to_fit();
    out
}

/// Rows the file holds.
fn stats_after(path: &std::path::Path) -> usize {
    StatsFile::read(path).map_or(0, |rows| rows.len())
}

fn start(path: &std::path::Path) -> Reporter {
    let mut config = ReporterConfig::new(loopback());
    config.writers = 1;
    let path = path.to_path_buf();
    Reporter::start(config, move |_| Box::new(StatsFile::open(&path).unwrap())).unwrap()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("lars-bench-stats-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stats.txt");
    // Frames are made before the clock starts, so the figure is the reporter's.
    let frames: Vec<Vec<(Vec<u8>, u64)>> = (0..AGENTS)
        .map(|agent| {
            let entries: Vec<HostStats> = (0..ROWS_PER_AGENT)
                .map(|i| {
                    let host = SocketAddr::from(([10, agent as u8, (i >> 8) as u8, i as u8], 80));
                    let mut row = HostStats::empty(1 + (i / 4096) as i32, 1, host);
                    row.succ = 1;
                    row
                })
                .collect();
            entries
                .chunks(ENTRIES_PER_FRAME)
                .map(|chunk| (frame_of(agent, chunk), chunk.len() as u64))
                .collect()
        })
        .collect();
    let total = (AGENTS * ROWS_PER_AGENT) as u64;
    let before_kib = peak_rss_kib();
    let reporter = start(&path);
    let addr: SocketAddr = reporter.local_addr();
    let stats = reporter.stats();
    // Held back while the queue is half full, so the figure is what reaches the file.
    let backlog_limit = (ReporterConfig::new(loopback()).queue_capacity / 2) as u64;
    let sent = std::sync::atomic::AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for frames in &frames {
            let sent = &sent;
            scope.spawn(move || {
                let mut link = FrameClient::connect(addr).unwrap();
                for (frame, rows) in frames {
                    while sent.load(Ordering::Relaxed) - stats.rows_stored.load(Ordering::Relaxed)
                        > backlog_limit
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    sent.fetch_add(*rows, Ordering::Relaxed);
                    link.write(frame).unwrap();
                }
            });
        }
    });
    while stats.rows_stored.load(Ordering::Relaxed) + stats.rows_dropped.load(Ordering::Relaxed) < total {
        assert!(started.elapsed() < Duration::from_secs(600), "gave up waiting for the rows");
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = started.elapsed();
    let stored = stats.rows_stored.load(Ordering::Relaxed);
    let dropped = stats.rows_dropped.load(Ordering::Relaxed);
    let peak_growth_kib = peak_rss_kib().saturating_sub(before_kib);
    // Then a stop with a backlog: `BACKLOG_ROWS` more rows (new keys) sent as fast as the
    // queue takes them, and the stop at once, as a SIGTERM during a flood would.
    let mut link = FrameClient::connect(addr).unwrap();
    let backlog: Vec<HostStats> = (0..BACKLOG_ROWS)
        .map(|i| {
            let mut row =
                HostStats::empty(100, 1, SocketAddr::from(([10, 200, (i >> 8) as u8, i as u8], 80)));
            row.succ = 1;
            row
        })
        .collect();
    for chunk in backlog.chunks(ENTRIES_PER_FRAME) {
        link.write(&frame_of(AGENTS, chunk)).unwrap();
    }
    let received = total + BACKLOG_ROWS as u64;
    while stats.rows_received.load(Ordering::Relaxed) < received {
        assert!(started.elapsed() < Duration::from_secs(600), "gave up waiting for the backlog");
        std::thread::yield_now();
    }
    let stop_started = Instant::now();
    reporter.shutdown();
    let stop = stop_started.elapsed();
    let stored_by_stop = stats_after(&path);
    drop(frames);

    // A restart, one more row: the rows of the first run must still be there.
    let reporter = start(&path);
    let mut link = FrameClient::connect(reporter.local_addr()).unwrap();
    let mut row = HostStats::empty(9, 9, SocketAddr::from(([10, 9, 9, 9], 80)));
    row.succ = 1;
    link.write(&frame_of(0, &[row])).unwrap();
    while reporter.stats().rows_stored.load(Ordering::Relaxed) < 1 {
        std::thread::sleep(Duration::from_millis(2));
    }
    reporter.shutdown();
    let after_restart = stats_after(&path);
    let file_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    std::fs::remove_dir_all(&dir).unwrap();

    let rate = stored as f64 / took.as_secs_f64();
    println!("{:<58} {:>12}", "lars-reporter on a statistics file (distinct keys)", "figure");
    println!("{:<58} {:>9.0} /s", "  rows stored", rate);
    println!("{:<58} {:>9.1} MB", "  peak memory growth (process)", peak_growth_kib as f64 / 1024.0);
    println!("{:<58} {:>9.0} ms", "  stop with 50,000 rows queued", stop.as_secs_f64() * 1e3);
    println!("{:<58} {:>12}", "  rows in the file after that stop", stored_by_stop);
    println!("{:<58} {:>12}", "  rows dropped at the queue", dropped);
    println!("{:<58} {:>12}", "  rows in the file after a restart and one more row", after_restart);
    println!("{:<58} {:>9.1} MB", "  file size", file_bytes as f64 / 1e6);
    println!(
        "{:<58} {:>12}",
        "  expected rows (before / after the restart)",
        format!("{received} / {}", received + 1)
    );
    if let Some(out) = std::env::var_os("LARS_BENCH_OUT") {
        let json = format!(
            "{{\"stats_file_rows_per_s\": {rate:.0}, \"stats_file_peak_growth_mb\": {:.1}, \
             \"stats_file_stop_ms\": {:.0}, \"stats_file_rows_after_restart\": {after_restart}, \
             \"stats_file_rows_after_stop\": {stored_by_stop}, \"stats_file_expected_rows\": {}, \
             \"stats_file_dropped\": {dropped}}}\n",
            peak_growth_kib as f64 / 1024.0,
            stop.as_secs_f64() * 1e3,
            received + 1
        );
        std::fs::write(&out, json).unwrap();
        println!("wrote {}", std::path::Path::new(&out).display());
    }
}
