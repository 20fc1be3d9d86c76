//! lars: the command-line client and admin tool.

mod bench;
mod simulate;

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use lars_std::client::Outcome;
use lars_std::client::{Client, ClientConfig};
use lars_std::daemon::{self, Args, UsageError};
use lars_std::store::RouteStore;
use lars_std::store::file::RouteFile;
use lars_std::store::mysql::{self, MysqlRoutes, RouteAdmin};

const USAGE: &str = "\
usage: lars <command> [args] [--agent IP:PORT,...] [--codec auto|native|lars]

calls (through the local lars-agent, default 127.0.0.1:8888-8890; --codec lars speaks to an
original Lars agent, auto (the default) finds out on the first call):
  get-host MODID CMDID [--key K]          a host for the next call
  report MODID CMDID HOST:PORT ok|fail|overload [--latency-us N]
  get-route MODID CMDID                   every host of the route (waits up to 1 s while the
                                          agent fetches a route it has not seen)
  simulate MODID CMDID [--count N] [--fail HOST:PORT=RATE,...] [--interval-ms N]
                                          the original simulator: calls with failing hosts,
                                          then a per-host table
  bench [--threads N] [--seconds S] [--modid-base M] [--cmdid C] [--lease] [--json FILE]
                                          the original qps tool: N threads, one module each;
                                          --lease picks in process from leased routes

administration (--routes FILE for the route file, or --mysql URL):
  route add MODID CMDID HOST:PORT [--weight W]
  route del MODID CMDID HOST:PORT
  route list
  status [--stats-file FILE]              call statistics stored by lars-reporter
  stats [--dns IP:PORT | --reporter IP:PORT]
                                          a daemon's counters (the agent's by default)
  db-init --mysql URL                     create or upgrade the lars_dns schema
";

const FLAGS: [&str; 18] = [
    "agent",
    "codec",
    "dns",
    "reporter",
    "key",
    "latency-us",
    "count",
    "fail",
    "interval-ms",
    "threads",
    "seconds",
    "modid-base",
    "cmdid",
    "json",
    "routes",
    "mysql",
    "weight",
    "stats-file",
];

const SWITCHES: [&str; 2] = ["help", "lease"];

fn main() {
    if let Err(error) = run() {
        daemon::exit_with("lars", error.as_ref(), USAGE);
    }
}

fn usage(message: &str) -> Box<dyn Error> {
    Box::new(UsageError(message.to_string()))
}

fn int<T: std::str::FromStr>(args: &Args, index: usize, what: &str) -> Result<T, Box<dyn Error>> {
    let word = args.positional.get(index).ok_or_else(|| usage(&format!("missing {what}")))?;
    word.parse().map_err(|_| usage(&format!("{what}: `{word}` is not valid")))
}

fn client(args: &Args) -> Result<Client, Box<dyn Error>> {
    let mut config = ClientConfig::default();
    if let Some(list) = args.flag("agent") {
        config.agent = list
            .split(',')
            .map(|a| {
                a.trim().parse::<SocketAddr>().map_err(|_| usage(&format!("--agent: `{a}` is not ip:port")))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(codec) = args.flag("codec") {
        config.codec = lars_std::client::CodecChoice::parse(codec)
            .ok_or_else(|| usage(&format!("--codec: `{codec}` is not auto, native or lars")))?;
    }
    Ok(Client::new(config))
}

/// Makes the agent fetch `(modid, cmdid)` before the call, as the original tools' `reg_init`
/// did. A route that does not exist is left for the call itself to report.
fn reg_init(client: &Client, modid: i32, cmdid: i32) -> Result<(), Box<dyn Error>> {
    match client.reg_init(modid, cmdid, 20) {
        Ok(_) | Err(lars_std::client::ClientError::NoRoute) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = Args::from_env(&FLAGS, &SWITCHES)?;
    let command = args.positional.first().map(String::as_str);
    match command {
        None | Some("help") => print!("{USAGE}"),
        Some(_) if args.switch("help") => print!("{USAGE}"),
        Some("get-host") => {
            let key = args
                .flag("key")
                .map(|k| k.parse::<u64>())
                .transpose()
                .map_err(|_| usage("--key: not a number"))?;
            let (modid, cmdid) = (int(&args, 1, "MODID")?, int(&args, 2, "CMDID")?);
            let client = client(&args)?;
            // As the original tool does: an agent that has not seen the route fetches it first.
            reg_init(&client, modid, cmdid)?;
            println!("{}", client.get_host(modid, cmdid, key)?);
        }
        Some("report") => {
            let host: SocketAddr = int(&args, 3, "HOST:PORT")?;
            let outcome = match args.positional.get(4).map(String::as_str) {
                Some("ok") => Outcome::Ok,
                Some("fail") => Outcome::Fail,
                Some("overload") => Outcome::Overload,
                _ => return Err(usage("the outcome is ok, fail or overload")),
            };
            let latency = Duration::from_micros(args.get("latency-us", 0)?);
            let (modid, cmdid) = (int(&args, 1, "MODID")?, int(&args, 2, "CMDID")?);
            let client = client(&args)?;
            // The agent counts a report only for a route it holds.
            reg_init(&client, modid, cmdid)?;
            client.report(modid, cmdid, host, outcome, latency)?;
        }
        Some("get-route") => {
            // An agent that has not seen the route yet fetches it first: give it a moment.
            let route = client(&args)?.reg_init(int(&args, 1, "MODID")?, int(&args, 2, "CMDID")?, 20)?;
            println!("version {}", route.version);
            for host in route.hosts {
                println!("{} weight {}", host.addr, host.weight);
            }
        }
        Some("simulate") => {
            simulate::run(&client(&args)?, &args, int(&args, 1, "MODID")?, int(&args, 2, "CMDID")?)?
        }
        Some("bench") => bench::run(&args)?,
        Some("route") => route(&args)?,
        Some("status") => status(&args)?,
        Some("stats") => {
            let counters = match (args.flag("dns"), args.flag("reporter")) {
                (Some(addr), None) | (None, Some(addr)) => {
                    let addr: SocketAddr =
                        addr.parse().map_err(|_| usage(&format!("`{addr}` is not ip:port")))?;
                    lars_std::client::daemon_stats(addr, Duration::from_secs(2))?
                }
                (None, None) => client(&args)?.agent_stats()?,
                (Some(_), Some(_)) => return Err(usage("stats asks one daemon at a time")),
            };
            for (name, value) in counters {
                println!("{name:<28} {value}");
            }
        }
        Some("db-init") => {
            let url = args.flag("mysql").ok_or_else(|| usage("db-init needs --mysql URL"))?;
            mysql::init_schema(&mysql::opts(url)?)?;
            println!("schema ready in {url}");
        }
        Some(other) => return Err(usage(&format!("unknown command `{other}`"))),
    }
    Ok(())
}

fn route(args: &Args) -> Result<(), Box<dyn Error>> {
    let (mut store, mut admin): (Box<dyn RouteStore>, Box<dyn RouteAdmin>) =
        match (args.flag("mysql"), args.flag("routes")) {
            (Some(url), None) => {
                (Box::new(MysqlRoutes::new(mysql::opts(url)?)), Box::new(MysqlRoutes::new(mysql::opts(url)?)))
            }
            (None, Some(path)) => (Box::new(RouteFile::new(path)), Box::new(RouteFile::new(path))),
            _ => return Err(usage("route needs either --routes FILE or --mysql URL")),
        };
    match args.positional.get(1).map(String::as_str) {
        Some("add") => {
            let key = (int(args, 2, "MODID")?, int(args, 3, "CMDID")?);
            admin.add_host(key, int(args, 4, "HOST:PORT")?, args.get("weight", 1)?)?;
        }
        Some("del") => {
            let key = (int(args, 2, "MODID")?, int(args, 3, "CMDID")?);
            let host: SocketAddr = int(args, 4, "HOST:PORT")?;
            if !admin.remove_host(key, host)? {
                return Err(format!("{host} is not in route {} {}", key.0, key.1).into());
            }
        }
        Some("list") => {
            let table = store.load()?;
            println!("{:>10} {:>10}  {:<24} {:>6}", "modid", "cmdid", "host", "weight");
            for ((modid, cmdid), hosts) in &table.routes {
                for host in hosts.iter() {
                    println!("{modid:>10} {cmdid:>10}  {:<24} {:>6}", host.addr.to_string(), host.weight);
                }
            }
            println!(
                "{} routes, {} hosts, version {}",
                table.routes.len(),
                table.host_count(),
                table.version
            );
        }
        _ => return Err(usage("route add|del|list")),
    }
    Ok(())
}

fn status(args: &Args) -> Result<(), Box<dyn Error>> {
    if let Some(url) = args.flag("mysql") {
        let rows = mysql::read_status(&mysql::opts(url)?)?;
        println!(
            "{:>8} {:>8}  {:<22} {:>10} {:>8} {:>8} {:>9}",
            "modid", "cmdid", "host", "caller", "succ", "err", "overload"
        );
        for r in rows {
            let caller = std::net::Ipv4Addr::from_bits(r.caller);
            println!(
                "{:>8} {:>8}  {:<22} {caller:>10} {:>8} {:>8} {:>9}",
                r.modid,
                r.cmdid,
                r.host.to_string(),
                r.succ,
                r.err,
                r.overload
            );
        }
        return Ok(());
    }
    let path = args.flag("stats-file").unwrap_or("lars-stats.txt");
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{FLAGS, SWITCHES, USAGE};

    /// Every `--flag` the usage text offers must be one the parser accepts (`lars stats --dns`
    /// was once refused as an unknown flag), and every accepted flag must be documented.
    #[test]
    fn usage_and_accepted_flags_agree() {
        let mut documented: Vec<&str> = USAGE
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter_map(|word| word.strip_prefix("--"))
            .filter(|flag| !flag.is_empty())
            .collect();
        documented.sort_unstable();
        documented.dedup();
        // --help is the one switch the usage text need not list.
        let mut accepted: Vec<&str> =
            FLAGS.iter().chain(&SWITCHES).copied().filter(|s| *s != "help").collect();
        accepted.sort_unstable();
        assert_eq!(documented, accepted);
    }
}
