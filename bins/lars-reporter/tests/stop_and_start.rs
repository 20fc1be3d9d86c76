//! The lars-reporter binary on its statistics file: a SIGTERM stores every row accepted, a
//! restart keeps the rows of the run before, a torn last line left by a crash is ignored, and
//! operator mistakes (`--stats-file` in a missing directory, `--writers 100000`) stop it at
//! start with an error naming the setting.
// A test's own deadlines, not time the code under test sees.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lars_core::wire::native::{CallStats, HostStats};
use lars_core::wire::{List, MsgId, frame};
use lars_std::store::file::StatsFile;
use lars_tests::{FrameClient, Scratch, eventually_within};

/// A running lars-reporter and what it said on stderr.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    log: std::sync::mpsc::Receiver<String>,
    /// What it said before it listened.
    before: Vec<String>,
}

impl Drop for Daemon {
    /// A test that fails leaves no daemon behind (killed by its pid).
    fn drop(&mut self) {
        if self.child.try_wait().is_ok_and(|status| status.is_none()) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start(stats: &Path, extra: &[&str]) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lars-reporter"))
        .args(["--listen", "127.0.0.1:0", "--stats-file"])
        .arg(stats)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lars-reporter");
    let (tx, log) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut before = Vec::new();
    let addr = loop {
        let line = log.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("lars-reporter did not say where it listens: {before:?}")
        });
        // After the logger's time and level.
        let listening = line.split_once("lars-reporter: listening on ").map(|(_, rest)| rest);
        if let Some(addr) = listening.and_then(|rest| rest.split(',').next()?.parse().ok()) {
            break addr;
        }
        before.push(line);
    };
    Daemon { child, addr, log, before }
}

impl Daemon {
    fn counter(&self, name: &str) -> u64 {
        let counters = lars_std::client::daemon_stats(self.addr, Duration::from_secs(2)).expect("stats");
        counters.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
    }

    /// SIGTERM, then its exit status (within 20 s) and the rest of its log.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("lars-reporter did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.log.try_iter().collect())
    }
}

/// Sends `rows` host results, each a key of its own from `first`, in `CallStats` frames.
fn send(addr: SocketAddr, first: usize, rows: usize) {
    let mut link = FrameClient::connect(addr).unwrap();
    let entries: Vec<HostStats> = (first..first + rows)
        .map(|i| {
            let mut row = HostStats::empty(
                3,
                1,
                SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 80)),
            );
            row.succ = 1;
            row
        })
        .collect();
    for chunk in entries.chunks(64) {
        let body = CallStats { caller: 9, ts: 1_764_000_000, entries: List::from_slice(chunk) };
        let mut out = vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize];
        let len = frame::encode(MsgId::NativeCallStats, &body, &mut out).unwrap();
        link.write(&out[..len]).unwrap();
    }
}

#[test]
fn a_sigterm_stores_every_row_accepted_and_a_restart_keeps_them() {
    let scratch = Scratch::new("reporter-bin-stop");
    let stats = scratch.0.join("stats.txt");
    let first = start(&stats, &[]);
    send(first.addr, 0, 1000);
    eventually_within(Duration::from_secs(25), "1,000 rows stored", || first.counter("rows_stored") == 1000);
    let (status, _) = first.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(StatsFile::read(&stats).unwrap().len(), 1000);

    let second = start(&stats, &[]);
    std::thread::scope(|scope| {
        for part in 0..4 {
            let addr = second.addr;
            scope.spawn(move || send(addr, 1000 + part * 22_000, 22_000));
        }
    });
    eventually_within(Duration::from_secs(25), "88,000 rows accepted", || {
        second.counter("rows_received") == 88_000
    });
    // At once, whatever is still queued.
    let (status, log) = second.terminate();
    assert!(status.success(), "{status}: {log:?}");
    assert_eq!(StatsFile::read(&stats).unwrap().len(), 89_000, "every row of both runs is in the file");
}

#[test]
fn a_torn_last_line_left_by_a_crash_is_ignored() {
    let scratch = Scratch::new("reporter-bin-torn");
    let stats = scratch.0.join("stats.txt");
    std::fs::write(
        &stats,
        "# modid cmdid host caller succ err overload ts\n3 1 10.0.0.1:80 9 5 0 0 1764000000\n3 1 10.0.0.2:8",
    )
    .unwrap();
    let daemon = start(&stats, &[]);
    assert!(daemon.before.iter().any(|l| l.contains("ignoring a torn last line")), "{:?}", daemon.before);
    send(daemon.addr, 3, 1);
    eventually_within(Duration::from_secs(25), "the new row stored", || daemon.counter("rows_stored") == 1);
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{status}: {log:?}");
    let rows = StatsFile::read(&stats).unwrap();
    let hosts: Vec<String> = rows.iter().map(|r| r.host.to_string()).collect();
    assert_eq!(
        hosts,
        ["10.0.0.1:80", "10.0.0.3:80"],
        "the old row kept, the torn one gone, the new one added"
    );
}

/// Runs lars-reporter with `args`, which must make it refuse to start; returns its stderr.
fn refused(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_lars-reporter"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .expect("run lars-reporter");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "started with {args:?}: {stderr}");
    assert!(!stderr.contains("listening on"), "it must not start listening: {stderr}");
    stderr
}

#[test]
fn operator_mistakes_are_found_at_start() {
    let scratch = Scratch::new("reporter-bin-mistakes");
    let missing = scratch.0.join("no-such-dir/stats.txt");
    let stderr = refused(&["--stats-file", missing.to_str().unwrap()]);
    assert!(stderr.contains("reporter.stats_file") && stderr.contains("does not exist"), "{stderr}");
    let stats = scratch.0.join("stats.txt");
    let stderr = refused(&["--stats-file", stats.to_str().unwrap(), "--writers", "100000"]);
    assert!(
        stderr.contains("reporter.db_thread_cnt") && stderr.contains("100000 writers: give 1 to 64"),
        "{stderr}"
    );
    let config = scratch.0.join("lars_reporter.conf");
    std::fs::write(&config, "[reporter]\ndb_thread_cnt = 0\n").unwrap();
    let stderr = refused(&["--stats-file", stats.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert!(stderr.contains("lars_reporter.conf:2") && stderr.contains("0 writers"), "{stderr}");
}
