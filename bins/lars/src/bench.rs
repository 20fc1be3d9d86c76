//! `lars bench`: the original qps tool. N threads, each calling its own module (modid base + i)
//! in a closed loop of get_host + report; a live rate each second, then a table with throughput
//! and get_host latency percentiles (the original had no latency tool).
//!
//! By default every get_host is a round trip through the agent, as in the original. With
//! `--lease`, each thread leases its route and picks in process (`lars_std::client::Lease`),
//! and its results reach the agent as summaries.

use std::error::Error;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lars_std::client::Outcome;
use lars_std::client::{Client, ClientError};
use lars_std::daemon::Args;
use lars_std::time::Stopwatch;

/// Latencies in nanoseconds, in buckets 1/16 of a power of two wide (6% resolution).
struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram { counts: vec![0; 61 * 16] }
    }

    fn bucket(nanos: u64) -> usize {
        if nanos < 16 {
            return nanos as usize;
        }
        let exponent = 63 - nanos.leading_zeros() as usize;
        (exponent - 3) * 16 + ((nanos >> (exponent - 4)) & 15) as usize
    }

    fn lower_bound(bucket: usize) -> u64 {
        if bucket < 16 {
            return bucket as u64;
        }
        let (exponent, mantissa) = (bucket / 16 + 3, bucket as u64 % 16);
        (16 + mantissa) << (exponent - 4)
    }

    fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(nanos)] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
    }

    /// The latency below which a fraction `p` of the samples fall, in microseconds.
    fn percentile_us(&self, p: f64) -> f64 {
        let total: u64 = self.counts.iter().sum();
        let rank = ((total as f64 * p).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::lower_bound(bucket) as f64 / 1000.0;
            }
        }
        0.0
    }
}

/// One thread's results.
struct Run {
    modid: i32,
    pairs: u64,
    errors: u64,
    latencies: Histogram,
}

/// One thread's closed loop until `stop`: a host, a report of the time it took.
fn closed_loop(
    client: &Client,
    modid: i32,
    cmdid: i32,
    lease: bool,
    stop: &AtomicBool,
    total: &AtomicU64,
) -> Result<Run, ClientError> {
    let mut run = Run { modid, pairs: 0, errors: 0, latencies: Histogram::new() };
    let mut leased = if lease { Some(client.lease(modid, cmdid)?) } else { None };
    // Publishing every pair would make the threads fight over one cache line.
    let mut unpublished = 0;
    while !stop.load(Ordering::Relaxed) {
        let stopwatch = Stopwatch::start();
        let host = match &mut leased {
            Some(lease) => lease.get_host(None),
            None => client.get_host(modid, cmdid, None),
        };
        let Ok(host) = host else {
            run.errors += 1;
            continue;
        };
        let took = stopwatch.elapsed();
        run.latencies.record(took);
        match &mut leased {
            Some(lease) => lease.report(host, Outcome::Ok, took),
            None => client.report(modid, cmdid, host, Outcome::Ok, took)?,
        }
        run.pairs += 1;
        unpublished += 1;
        if unpublished == 256 {
            total.fetch_add(unpublished, Ordering::Relaxed);
            unpublished = 0;
        }
    }
    Ok(run)
}

pub(crate) fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let threads: usize = args.get("threads", 1)?;
    let seconds: u64 = args.get("seconds", 5)?;
    let base: i32 = args.get("modid-base", 1)?;
    let cmdid: i32 = args.get("cmdid", 1)?;
    let lease = args.switch("lease");
    let client = Arc::new(crate::client(args)?);
    for i in 0..threads {
        client.reg_init(base + i as i32, cmdid, 40)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (client, stop, total) = (Arc::clone(&client), Arc::clone(&stop), Arc::clone(&total));
            std::thread::spawn(move || closed_loop(&client, base + i as i32, cmdid, lease, &stop, &total))
        })
        .collect();
    let live = std::io::stderr().is_terminal();
    let mut last = 0;
    for second in 1..=seconds {
        std::thread::sleep(Duration::from_secs(1));
        let now = total.load(Ordering::Relaxed);
        if live {
            eprint!("\r{second:>3} s  {:>11} get_host + report per second", now - last);
            let _ = std::io::stderr().flush();
        }
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    if live {
        eprintln!();
    }
    let mut runs = Vec::new();
    for worker in workers {
        runs.push(worker.join().map_err(|_| "a bench thread panicked")??);
    }
    let mut all = Histogram::new();
    println!("{:>8} {:>12} {:>11} {:>8}", "modid", "pairs/s", "pairs", "errors");
    for run in &runs {
        all.merge(&run.latencies);
        let rate = run.pairs as f64 / seconds as f64;
        println!("{:>8} {rate:>12.0} {:>11} {:>8}", run.modid, run.pairs, run.errors);
    }
    let pairs: u64 = runs.iter().map(|r| r.pairs).sum();
    let rate = pairs as f64 / seconds as f64;
    let (p50, p99) = (all.percentile_us(0.50), all.percentile_us(0.99));
    let mode = if lease { "leased routes" } else { "a round trip to the agent per get_host" };
    println!(
        "total: {rate:.0} get_host + report per second over {threads} threads ({mode}); \
         get_host p50 {p50:.2} us, p99 {p99:.2} us"
    );
    if let Some(path) = args.flag("json") {
        let json = format!(
            "{{\"threads\": {threads}, \"lease\": {lease}, \"pairs_per_sec\": {rate:.0}, \
             \"p50_us\": {p50:.3}, \"p99_us\": {p99:.3}}}\n"
        );
        std::fs::write(path, json)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn buckets_are_contiguous_and_bound_their_values() {
        for bucket in 0..61 * 16 - 1 {
            assert_eq!(Histogram::bucket(Histogram::lower_bound(bucket)), bucket);
            assert_eq!(Histogram::bucket(Histogram::lower_bound(bucket + 1) - 1), bucket);
        }
        assert_eq!(Histogram::bucket(u64::MAX), 61 * 16 - 1);
    }

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut h = Histogram::new();
        for micros in 1..=100 {
            h.record(std::time::Duration::from_micros(micros));
        }
        let p50 = h.percentile_us(0.5);
        assert!((47.0..=50.0).contains(&p50), "{p50}");
        let p99 = h.percentile_us(0.99);
        assert!((93.0..=99.0).contains(&p99), "{p99}");
    }
}
