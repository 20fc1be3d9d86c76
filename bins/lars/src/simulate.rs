//! `lars simulate`: the original simulator. Calls a route through the agent, failing calls to
//! chosen hosts at chosen rates, and prints a per-host table, so the overload and probing
//! behaviour can be watched.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use lars_core::lb::Rng;
use lars_std::client::Outcome;
use lars_std::client::{Client, ClientError};
use lars_std::daemon::{Args, UsageError};

#[derive(Default)]
struct Tally {
    calls: u64,
    ok: u64,
    failed: u64,
}

/// `--fail HOST:PORT=RATE,...`: each listed host fails that fraction of its calls.
fn failure_rates(args: &Args) -> Result<BTreeMap<SocketAddr, f64>, UsageError> {
    let Some(list) = args.flag("fail") else { return Ok(BTreeMap::new()) };
    list.split(',')
        .map(|item| {
            let bad = || UsageError(format!("--fail: `{item}` is not HOST:PORT=RATE"));
            let (host, rate) = item.split_once('=').ok_or_else(bad)?;
            let rate: f64 = rate.parse().map_err(|_| bad())?;
            Ok((host.trim().parse().map_err(|_| bad())?, rate.clamp(0.0, 1.0)))
        })
        .collect()
}

pub(crate) fn run(client: &Client, args: &Args, modid: i32, cmdid: i32) -> Result<(), Box<dyn Error>> {
    let count: u64 = args.get("count", 1000)?;
    let interval = Duration::from_millis(args.get("interval-ms", 1)?);
    let fail = failure_rates(args)?;
    client.reg_init(modid, cmdid, 20)?;
    let mut rng = Rng::new(u64::from(std::process::id()));
    let mut hosts: BTreeMap<SocketAddr, Tally> = BTreeMap::new();
    let (mut overloaded, mut no_route) = (0u64, 0u64);
    let live = std::io::stderr().is_terminal();
    for i in 1..=count {
        match client.get_host(modid, cmdid, None) {
            Ok(host) => {
                let fails =
                    fail.get(&host).is_some_and(|&rate| (rng.next_u64() as f64 / u64::MAX as f64) < rate);
                let tally = hosts.entry(host).or_default();
                tally.calls += 1;
                if fails {
                    tally.failed += 1
                } else {
                    tally.ok += 1
                }
                let outcome = if fails { Outcome::Fail } else { Outcome::Ok };
                client.report(
                    modid,
                    cmdid,
                    host,
                    outcome,
                    Duration::from_micros(200 + rng.below(800) as u64),
                )?;
            }
            Err(ClientError::Overloaded) => overloaded += 1,
            Err(ClientError::NoRoute) => no_route += 1,
            Err(e) => return Err(e.into()),
        }
        if live && (i % 100 == 0 || i == count) {
            eprint!("\rsimulate {modid}/{cmdid}: {i}/{count} calls");
            let _ = std::io::stderr().flush();
        }
        std::thread::sleep(interval);
    }
    if live {
        eprintln!();
    }
    println!("{:<24} {:>8} {:>8} {:>8} {:>8}  failure rate set", "host", "calls", "ok", "failed", "share");
    for (host, tally) in &hosts {
        let share = 100.0 * tally.calls as f64 / count as f64;
        let rate = fail.get(host).map_or(String::from("-"), |r| format!("{:.0}%", r * 100.0));
        println!(
            "{:<24} {:>8} {:>8} {:>8} {share:>7.1}%  {rate}",
            host.to_string(),
            tally.calls,
            tally.ok,
            tally.failed
        );
    }
    println!("answered overloaded: {overloaded}, no route: {no_route}, of {count} calls");
    Ok(())
}
