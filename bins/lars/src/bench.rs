//! `lars bench`: the original qps tool. N threads, each calling its own module (modid base + i)
//! in a closed loop of get_host + report through the agent; a live rate each second, then a
//! table with throughput and get_host latency percentiles (the original had no latency tool).

use std::error::Error;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lars_core::wire::native::Outcome;
use lars_std::client::{Client, ClientConfig, ClientError};
use lars_std::daemon::Args;
use lars_std::time::Clock;

/// One thread's results.
struct Run {
    modid: i32,
    pairs: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

pub(crate) fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let threads: usize = args.get("threads", 1)?;
    let seconds: u64 = args.get("seconds", 5)?;
    let base: i32 = args.get("modid-base", 1)?;
    let cmdid: i32 = args.get("cmdid", 1)?;
    let mut config = ClientConfig::default();
    if let Some(list) = args.flag("agent") {
        config.agent = list.split(',').filter_map(|a| a.trim().parse().ok()).collect();
    }
    let client = Arc::new(Client::new(config));
    for i in 0..threads {
        client.reg_init(base + i as i32, cmdid, 40)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let clock = Clock::new();
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (client, stop, total) = (Arc::clone(&client), Arc::clone(&stop), Arc::clone(&total));
            std::thread::spawn(move || {
                let modid = base + i as i32;
                let mut run = Run { modid, pairs: 0, errors: 0, latencies_us: Vec::new() };
                while !stop.load(Ordering::Relaxed) {
                    let start = clock.now();
                    match client.get_host(modid, cmdid, None) {
                        Ok(host) => {
                            let took = clock.now().saturating_since(start).as_micros();
                            run.latencies_us.push(u32::try_from(took).unwrap_or(u32::MAX));
                            let _ =
                                client.report(modid, cmdid, host, Outcome::Ok, Duration::from_micros(took));
                            run.pairs += 1;
                            total.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(ClientError::Overloaded | ClientError::NoRoute) | Err(_) => run.errors += 1,
                    }
                }
                run
            })
        })
        .collect();
    let live = std::io::stderr().is_terminal();
    let mut last = 0;
    for second in 1..=seconds {
        std::thread::sleep(Duration::from_secs(1));
        let now = total.load(Ordering::Relaxed);
        if live {
            eprint!("\r{second:>3} s  {:>9} get_host + report per second", now - last);
            let _ = std::io::stderr().flush();
        }
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    if live {
        eprintln!();
    }
    let runs: Vec<Run> = workers
        .into_iter()
        .map(|w| w.join().unwrap_or(Run { modid: 0, pairs: 0, errors: 0, latencies_us: Vec::new() }))
        .collect();
    let mut all: Vec<u32> = runs.iter().flat_map(|r| r.latencies_us.iter().copied()).collect();
    all.sort_unstable();
    let percentile = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    println!("{:>8} {:>12} {:>10} {:>8}", "modid", "pairs/s", "pairs", "errors");
    for run in &runs {
        println!(
            "{:>8} {:>12.0} {:>10} {:>8}",
            run.modid,
            run.pairs as f64 / seconds as f64,
            run.pairs,
            run.errors
        );
    }
    let pairs: u64 = runs.iter().map(|r| r.pairs).sum();
    let rate = pairs as f64 / seconds as f64;
    let (p50, p99) = (percentile(0.50), percentile(0.99));
    println!(
        "total: {rate:.0} get_host + report per second over {threads} threads; get_host p50 {p50} us, p99 {p99} us"
    );
    if let Some(path) = args.flag("json") {
        let json = format!(
            "{{\"threads\": {threads}, \"pairs_per_sec\": {rate:.0}, \"p50_us\": {p50}, \"p99_us\": {p99}}}\n"
        );
        std::fs::write(path, json)?;
    }
    Ok(())
}
