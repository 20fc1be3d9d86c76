//! lars: the command-line client and admin tool.

mod bench;
mod simulate;

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use lars_std::client::Outcome;
use lars_std::client::{Client, ClientConfig};
use lars_std::daemon::{Args, UsageError};
use lars_std::store::console::{Actor, ConsoleStore, FileConsole, MysqlConsole};
use lars_std::store::file::RouteFile;
use lars_std::store::mysql::{self, MysqlRoutes, RouteAdmin};

/// One subcommand: what it takes, what it does, and the only flags it accepts.
struct Command {
    name: &'static str,
    args: &'static str,
    about: &'static str,
    flags: &'static [&'static str],
    switches: &'static [&'static str],
    /// The exit codes it can end with, each explained in [`EXIT_CODES`].
    exits: &'static [i32],
}

/// Flags of the commands that call the agent.
const CALL: [&str; 3] = ["agent", "codec", "timeout-ms"];

/// The exit codes of the commands that make calls to a route through the agent.
const CALLS_A_ROUTE: [i32; 6] = [0, 2, 3, 64, 75, 70];
/// The exit codes of the commands that ask the agent, or a daemon, for what it holds.
const ASKS_A_DAEMON: [i32; 4] = [0, 64, 75, 70];
/// The exit codes of the commands that talk to no agent.
const LOCAL: [i32; 3] = [0, 64, 70];

const COMMANDS: &[Command] = &[
    Command {
        name: "get-host",
        args: "MODID CMDID",
        about: "a host for the next call",
        flags: &["agent", "codec", "timeout-ms", "key"],
        switches: &[],
        exits: &[0, 1, 2, 3, 64, 75, 70],
    },
    Command {
        name: "report",
        args: "MODID CMDID HOST:PORT ok|fail|overload",
        about: "a call's result",
        flags: &["agent", "codec", "timeout-ms", "latency-us"],
        switches: &[],
        exits: &[0, 2, 64, 75, 70],
    },
    Command {
        name: "get-route",
        args: "MODID CMDID",
        about: "every host of the route (waits up to 1 s while the agent fetches a route it has not seen)",
        flags: &CALL,
        switches: &[],
        exits: &[0, 3, 64, 75, 70],
    },
    Command {
        name: "simulate",
        args: "MODID CMDID",
        about: "the original simulator: calls with failing hosts, then a per-host table",
        flags: &["agent", "codec", "timeout-ms", "count", "fail", "interval-ms"],
        switches: &[],
        exits: &CALLS_A_ROUTE,
    },
    Command {
        name: "bench",
        args: "",
        about: "the original qps tool: N threads, one module each; --lease picks in process from leased routes",
        flags: &["agent", "codec", "timeout-ms", "threads", "seconds", "modid-base", "cmdid", "json"],
        switches: &["lease"],
        exits: &CALLS_A_ROUTE,
    },
    Command {
        name: "route",
        args: "add MODID CMDID HOST:PORT | del MODID CMDID HOST:PORT | list",
        about: "change or list the routes in the route file (--routes) or MySQL (--mysql)",
        flags: &["routes", "mysql", "weight"],
        switches: &[],
        exits: &LOCAL,
    },
    Command {
        name: "status",
        args: "",
        about: "call statistics stored by lars-reporter (its --stats-file, or MySQL)",
        flags: &["stats-file", "mysql"],
        switches: &[],
        exits: &LOCAL,
    },
    Command {
        name: "events",
        args: "",
        about: "the balancers' decisions: each host state change with its reason, from the local agent's \
                log, or with --mysql every agent's, as lars-reporter stored them (newest 100 of the last day)",
        flags: &["agent", "codec", "timeout-ms", "mysql", "modid", "cmdid", "host", "since-minutes", "limit"],
        switches: &[],
        exits: &ASKS_A_DAEMON,
    },
    Command {
        name: "stats",
        args: "",
        about: "a daemon's counters (the agent's by default)",
        flags: &["agent", "codec", "timeout-ms", "dns", "reporter"],
        switches: &[],
        exits: &ASKS_A_DAEMON,
    },
    Command {
        name: "db-init",
        args: "",
        about: "create or upgrade the lars_dns schema (--print-sql: print it as an SQL script)",
        flags: &["mysql"],
        switches: &["print-sql"],
        exits: &LOCAL,
    },
];

/// Each flag's value and meaning, for the commands' help.
const FLAG_HELP: &[(&str, &str, &str)] = &[
    ("agent", "IP:PORT,...", "the agent's API endpoints (default 127.0.0.1:8888-8890)"),
    ("codec", "auto|native|lars", "lars speaks to an original Lars agent; auto (the default) finds out"),
    (
        "timeout-ms",
        "N",
        "ms to wait for each answer (default 200 from the agent, which is asked 3 times; 2000 from lars-dns or lars-reporter; not used with MySQL)",
    ),
    ("key", "K", "a hash key, for consistent hashing"),
    ("latency-us", "N", "the call's latency"),
    ("count", "N", "calls to make (default 1000)"),
    ("fail", "HOST:PORT=RATE,...", "hosts that fail, and how often"),
    ("interval-ms", "N", "pause between calls"),
    ("threads", "N", "caller threads"),
    ("seconds", "S", "how long to run"),
    ("modid-base", "M", "thread i calls module M + i"),
    ("cmdid", "C", "the command id"),
    ("json", "FILE", "also write the figures as JSON"),
    ("lease", "", "lease the routes and pick in process"),
    ("print-sql", "", "print the schema as an SQL script instead of making it"),
    ("routes", "FILE", "the route file"),
    ("mysql", "URL", "the lars_dns database (mysql://user:pw@host/lars_dns)"),
    ("weight", "W", "the host's weight (default 1)"),
    ("stats-file", "FILE", "lars-reporter's statistics file (default lars-stats.txt)"),
    ("dns", "IP:PORT", "ask this lars-dns"),
    ("reporter", "IP:PORT", "ask this lars-reporter"),
    ("modid", "M", "only this module's routes"),
    ("host", "HOST:PORT", "only this host (with --mysql)"),
    ("since-minutes", "N", "only the last N minutes (with --mysql; default a day)"),
    ("limit", "N", "the newest N at most (with --mysql; default 100)"),
];

/// What each exit code means, in the order the help lists them.
const EXIT_CODES: &[(i32, &str)] = &[
    (0, "done"),
    (1, "every host of the route is overloaded"),
    (2, "the agent refused the request or cannot carry it (or a lease cannot hold the route)"),
    (3, "no such route"),
    (64, "usage error"),
    (75, "no answer: the agent (or the daemon asked) is not running"),
    (70, "anything else"),
];

/// The meanings of `codes`, one a line, as the help lists them.
fn exit_codes_text(codes: &[i32]) -> String {
    let mut text = String::from("exit codes:\n");
    for (code, meaning) in EXIT_CODES.iter().filter(|(code, _)| codes.contains(code)) {
        text += &format!("  {code:<4} {meaning}\n");
    }
    text
}

/// The list of commands (`lars --help`).
fn usage_text() -> String {
    let mut text =
        String::from("usage: lars <command> [args] [flags]   (lars <command> --help for its flags)\n\n");
    for command in COMMANDS {
        text += &format!("  {:<10} {}\n", command.name, command.about);
    }
    let every: Vec<i32> = EXIT_CODES.iter().map(|(code, _)| *code).collect();
    text += &format!("\n{}", exit_codes_text(&every));
    text
}

/// One command's help (`lars <command> --help`).
fn command_help(command: &Command) -> String {
    let args = if command.args.is_empty() { String::new() } else { format!(" {}", command.args) };
    let mut text = format!("usage: lars {}{args}\n\n{}\n", command.name, command.about);
    if !command.flags.is_empty() || !command.switches.is_empty() {
        text += "\nflags:\n";
    }
    for flag in command.flags.iter().chain(command.switches) {
        let (_, value, meaning) =
            FLAG_HELP.iter().find(|(name, ..)| name == flag).copied().unwrap_or((flag, "", ""));
        let syntax = if value.is_empty() { format!("--{flag}") } else { format!("--{flag} {value}") };
        text += &format!("  {syntax:<28} {meaning}\n");
    }
    text += &format!("\n{}", exit_codes_text(command.exits));
    text
}

fn main() {
    let words: Vec<String> = match std::env::args_os().skip(1).map(|a| a.into_string()).collect() {
        Ok(words) => words,
        Err(_) => fail(None, &UsageError("an argument is not valid UTF-8".into())),
    };
    let name = command_word(&words);
    let command = COMMANDS.iter().find(|c| Some(c.name) == name);
    if let Err(error) = run(&words, name, command) {
        fail(command, error.as_ref());
    }
}

/// The command among `words`: the first that is neither a flag nor the value of one, so that
/// flags may also come before it (`lars --agent 10.0.0.1:8888 stats`).
fn command_word(words: &[String]) -> Option<&str> {
    let takes_value =
        |flag: &str| FLAG_HELP.iter().any(|(name, value, _)| *name == flag && !value.is_empty());
    let mut words = words.iter();
    while let Some(word) = words.next() {
        match word.strip_prefix("--") {
            None => return Some(word),
            Some(flag) if !flag.contains('=') && takes_value(flag) => {
                words.next();
            }
            Some(_) => {}
        }
    }
    None
}

/// Says what went wrong and exits with its code ([`EXIT_CODES`]).
fn fail(command: Option<&Command>, error: &(dyn Error + 'static)) -> ! {
    if error.is::<UsageError>() {
        let help = command.map_or_else(usage_text, command_help);
        eprintln!("lars: {error}\n\n{help}");
    } else {
        eprintln!("lars: {}", lars_std::client::with_causes(error));
    }
    std::process::exit(exit_code(error));
}

/// The exit code that says what `error` was ([`EXIT_CODES`]).
fn exit_code(error: &(dyn Error + 'static)) -> i32 {
    use lars_std::client::ClientError;
    if error.is::<UsageError>() {
        return 64;
    }
    match error.downcast_ref::<ClientError>() {
        Some(ClientError::Overloaded) => 1,
        // The agent, or a lease, cannot serve this as asked.
        Some(
            ClientError::Refused { .. } | ClientError::NeedsNative(_) | ClientError::RouteTooLarge { .. },
        ) => 2,
        Some(ClientError::NoRoute) => 3,
        Some(ClientError::Timeout | ClientError::DaemonTimeout { .. } | ClientError::Unreachable { .. }) => {
            75
        }
        _ => 70,
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
    config.timeout = timeout(args, config.timeout)?;
    Ok(Client::new(config))
}

/// `--timeout-ms`, or `default`.
fn timeout(args: &Args, default: Duration) -> Result<Duration, Box<dyn Error>> {
    let Some(ms) = args.flag("timeout-ms") else { return Ok(default) };
    match ms.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(usage(&format!("--timeout-ms: `{ms}` is not a number of milliseconds above 0"))),
    }
}

/// Makes the agent fetch `(modid, cmdid)` before the call, as the original tools' `reg_init`
/// did. A route that does not exist is left for the call itself to report.
fn reg_init(client: &Client, modid: i32, cmdid: i32) -> Result<(), Box<dyn Error>> {
    match client.reg_init(modid, cmdid, 20) {
        Ok(_) | Err(lars_std::client::ClientError::NoRoute) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn run(words: &[String], name: Option<&str>, command: Option<&Command>) -> Result<(), Box<dyn Error>> {
    if words.iter().any(|w| w == "--version") {
        println!("lars {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let Some(command) = command else {
        match name {
            Some("help") => print!("{}", usage_text()),
            None if words.iter().all(|w| w == "--help") => print!("{}", usage_text()),
            None => return Err(usage("flags but no command")),
            Some(other) => return Err(usage(&format!("unknown command `{other}`"))),
        }
        return Ok(());
    };
    let switches: Vec<&str> = command.switches.iter().copied().chain(["help"]).collect();
    let args = Args::parse(words.iter().cloned(), command.flags, &switches)
        .map_err(|e| usage(&format!("{}: {}", command.name, e.0)))?;
    if args.switch("help") {
        print!("{}", command_help(command));
        return Ok(());
    }
    match command.name {
        "get-host" => {
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
        "report" => {
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
        "get-route" => {
            // An agent that has not seen the route yet fetches it first: give it a moment.
            let route = client(&args)?.reg_init(int(&args, 1, "MODID")?, int(&args, 2, "CMDID")?, 20)?;
            println!("version {}", route.version);
            for host in route.hosts {
                println!("{} weight {}", host.addr, host.weight);
            }
        }
        "simulate" => {
            simulate::run(&client(&args)?, &args, int(&args, 1, "MODID")?, int(&args, 2, "CMDID")?)?
        }
        "bench" => bench::run(&args)?,
        "route" => route(&args)?,
        "status" => status(&args)?,
        "events" => events(&args)?,
        "stats" => {
            let counters = match (args.flag("dns"), args.flag("reporter")) {
                (Some(addr), None) | (None, Some(addr)) => {
                    let addr: SocketAddr =
                        addr.parse().map_err(|_| usage(&format!("`{addr}` is not ip:port")))?;
                    lars_std::client::daemon_stats(addr, timeout(&args, Duration::from_secs(2))?)?
                }
                (None, None) => client(&args)?.agent_stats()?,
                (Some(_), Some(_)) => return Err(usage("stats asks one daemon at a time")),
            };
            for (name, value) in counters {
                println!("{name:<28} {value}");
            }
        }
        "db-init" if args.switch("print-sql") => print!("{}", mysql::schema_sql()),
        "db-init" => {
            let url = args.flag("mysql").ok_or_else(|| usage("db-init needs --mysql URL"))?;
            mysql::init_schema(&mysql::opts(url)?)?;
            println!("schema ready in {url}");
        }
        other => return Err(format!("`{other}` has no handler (a bug in lars)").into()),
    }
    Ok(())
}

/// Who `lars route` changes a route as, for the audit log: the login (the one behind `sudo`
/// first) and the machine it ran on.
fn cli_actor() -> Actor {
    let user = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown user".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    Actor { user, address: format!("lars route on {}", if host.is_empty() { "this machine" } else { host }) }
}

fn route(args: &Args) -> Result<(), Box<dyn Error>> {
    let (mut listing, mut admin): (Box<dyn ConsoleStore>, Box<dyn RouteAdmin>) =
        match (args.flag("mysql"), args.flag("routes")) {
            (Some(url), None) => (
                Box::new(MysqlConsole::new(mysql::opts(url)?)),
                Box::new(MysqlRoutes::new(mysql::opts(url)?)),
            ),
            (None, Some(path)) => (Box::new(FileConsole::new(path, None)), Box::new(RouteFile::new(path))),
            _ => return Err(usage("route needs either --routes FILE or --mysql URL")),
        };
    match args.positional.get(1).map(String::as_str) {
        Some("add") => {
            let key = (int(args, 2, "MODID")?, int(args, 3, "CMDID")?);
            admin.add_host(key, int(args, 4, "HOST:PORT")?, args.get("weight", 1)?, &cli_actor())?;
        }
        Some("del") => {
            let key = (int(args, 2, "MODID")?, int(args, 3, "CMDID")?);
            let host: SocketAddr = int(args, 4, "HOST:PORT")?;
            if !admin.remove_host(key, host, &cli_actor())? {
                return Err(format!("{host} is not in route {} {}", key.0, key.1).into());
            }
        }
        Some("list") => {
            // Every host the store keeps, as the console lists them: those out of rotation
            // (which lars-dns does not serve) marked so.
            let overview = listing.overview()?;
            println!("{:>10} {:>10}  {:<24} {:>6}", "modid", "cmdid", "host", "weight");
            let mut out = 0;
            for ((modid, cmdid), hosts) in &overview.routes {
                for host in hosts {
                    let state = if host.in_rotation { "" } else { "  out of rotation" };
                    out += usize::from(!host.in_rotation);
                    println!(
                        "{modid:>10} {cmdid:>10}  {:<24} {:>6}{state}",
                        host.addr.to_string(),
                        host.weight
                    );
                }
            }
            let hosts: usize = overview.routes.values().map(Vec::len).sum();
            println!(
                "{} routes, {hosts} hosts ({out} out of rotation), version {}",
                overview.routes.len(),
                overview.version
            );
        }
        _ => return Err(usage("route add|del|list")),
    }
    Ok(())
}

/// `lars events`: the decisions in the store, oldest first.
fn events(args: &Args) -> Result<(), Box<dyn Error>> {
    use lars_std::store::history::mysql::MysqlHistory;
    use lars_std::store::history::{DecisionFilter, HistoryStore};
    let Some(url) = args.flag("mysql") else { return agent_events(args) };
    let route = match (args.flag("modid"), args.flag("cmdid")) {
        (None, None) => None,
        (Some(_), Some(_)) => Some((args.get("modid", 0)?, args.get("cmdid", 0)?)),
        _ => return Err(usage("--modid and --cmdid go together")),
    };
    let host = args
        .flag("host")
        .map(|h| h.parse::<SocketAddr>().map_err(|_| usage(&format!("--host: `{h}` is not ip:port"))))
        .transpose()?;
    let since_minutes: u64 = args.get("since-minutes", 24 * 60)?;
    let now_ms = lars_std::time::Clock::unix_secs() * 1000;
    let filter = DecisionFilter {
        route,
        host,
        since_ms: now_ms.saturating_sub(since_minutes * 60_000),
        limit: args.get("limit", 100usize)?,
        offset: 0,
    };
    let rows = MysqlHistory::new(mysql::opts(url)?).decisions(filter)?;
    if rows.is_empty() {
        println!("no decisions in the last {since_minutes} minutes");
    }
    for d in rows {
        let caller = std::net::Ipv4Addr::from_bits(d.caller);
        println!(
            "{}  {}/{}  {:<22} {:<16} {}  (agent {caller})",
            utc(d.at_ms),
            d.modid,
            d.cmdid,
            d.host.to_string(),
            d.change,
            d.reason
        );
    }
    Ok(())
}

/// `lars events` without `--mysql`: the local agent's log, oldest first.
fn agent_events(args: &Args) -> Result<(), Box<dyn Error>> {
    let modid = args.flag("modid").map(|_| args.get("modid", 0)).transpose()?;
    let cmdid = args.flag("cmdid").map(|_| args.get("cmdid", 0)).transpose()?;
    let decisions = client(args)?.agent_decisions(modid, cmdid)?;
    if decisions.is_empty() {
        println!("no decisions in the agent's log");
    }
    for d in decisions.iter().rev() {
        println!(
            "{:>9.1} s ago  {}/{}  {:<22} {:<16} {}",
            f64::from(d.age_ms) / 1000.0,
            d.modid,
            d.cmdid,
            d.host.to_string(),
            d.change.as_str(),
            d.reason
        );
    }
    Ok(())
}

/// Unix milliseconds as `2026-12-01 11:35:40.123` UTC.
fn utc(ms: u64) -> String {
    let utc = lars_std::time::UtcTime::from_unix_micros(ms.saturating_mul(1000));
    format!("{} {}.{:03}", utc.date(), utc.time(), utc.micros / 1000)
}

fn status(args: &Args) -> Result<(), Box<dyn Error>> {
    // The statistics file is a log: `read` gives its rows, the last of each key, as MySQL holds them.
    let rows = match args.flag("mysql") {
        Some(url) => mysql::read_status(&mysql::opts(url)?)?,
        None => lars_std::store::file::StatsFile::read(std::path::Path::new(
            args.flag("stats-file").unwrap_or("lars-stats.txt"),
        ))?,
    };
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{COMMANDS, EXIT_CODES, FLAG_HELP, command_help, command_word, exit_code, run, usage};
    use lars_std::client::{ClientError, Refusal};
    use std::error::Error;

    #[test]
    fn the_command_is_found_before_or_after_flags_but_never_in_a_flag_value() {
        let words = |line: &str| line.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(command_word(&words("stats --agent 10.0.0.1:8888")), Some("stats"));
        assert_eq!(command_word(&words("--agent 10.0.0.1:8888 stats")), Some("stats"));
        assert_eq!(command_word(&words("--agent=10.0.0.1:8888 --lease get-host 1 1")), Some("get-host"));
        // `--codec lars`: `lars` is the flag's value, not a command.
        assert_eq!(command_word(&words("--codec lars route 1 1")), Some("route"));
        assert_eq!(command_word(&words("--version")), None);
        let error = run(&words("--agent 10.0.0.1:8888"), None, None).unwrap_err();
        assert_eq!(error.to_string(), "flags but no command");
        assert!(run(&[], None, None).is_ok() && run(&words("--help"), None, None).is_ok());
    }

    /// Every code a failure exits with, and every code a command's help lists, is explained.
    #[test]
    fn every_exit_code_is_explained() {
        let explained = |code: i32| EXIT_CODES.iter().any(|(known, _)| *known == code);
        let failures: Vec<Box<dyn Error>> = vec![
            usage("bad"),
            Box::new(ClientError::Overloaded),
            Box::new(ClientError::Refused { reason: Refusal::TableFull }),
            Box::new(ClientError::RouteTooLarge { hosts: 300 }),
            Box::new(ClientError::NoRoute),
            Box::new(ClientError::Timeout),
            "a store error".into(),
        ];
        let codes: Vec<i32> = failures.iter().map(|e| exit_code(e.as_ref())).collect();
        assert_eq!(codes, [64, 1, 2, 2, 3, 75, 70]);
        for command in COMMANDS {
            for &code in command.exits {
                assert!(explained(code), "lars {} lists exit code {code}", command.name);
            }
        }
    }

    /// Each command's help documents exactly the flags it accepts (`lars stats --dns` was once
    /// refused as an unknown flag), every documented flag has a meaning, and no meaning is
    /// left over.
    #[test]
    fn each_commands_help_and_accepted_flags_agree() {
        for command in COMMANDS {
            let help = command_help(command);
            let documented = lars_std::daemon::usage_flags(&help);
            let mut accepted: Vec<&str> = command.flags.iter().chain(command.switches).copied().collect();
            accepted.sort_unstable();
            assert_eq!(documented, accepted, "lars {}", command.name);
            for flag in &accepted {
                assert!(FLAG_HELP.iter().any(|(name, ..)| name == flag), "--{flag} has no help");
            }
        }
        for (flag, value, _) in FLAG_HELP {
            assert!(
                COMMANDS.iter().any(|c| c.flags.contains(flag) || c.switches.contains(flag)),
                "--{flag} is documented but no command takes it"
            );
            // `command_word` knows a switch by its empty value text, as the parser knows it
            // by `switches`: the two must agree, or the command word would be misread.
            let switch = COMMANDS.iter().any(|c| c.switches.contains(flag));
            let takes_value = COMMANDS.iter().any(|c| c.flags.contains(flag));
            assert!(
                switch != takes_value,
                "--{flag} is a switch for one command and takes a value for another"
            );
            assert_eq!(
                value.is_empty(),
                switch,
                "--{flag}: its help's value text and whether it is a switch"
            );
        }
    }

    #[test]
    fn a_flag_of_another_command_is_a_usage_error_and_every_command_has_help() {
        let words = |text: &str| text.split(' ').map(String::from).collect::<Vec<_>>();
        let get_host = COMMANDS.iter().find(|c| c.name == "get-host");
        let error = run(&words("get-host 1 1 --weight 3"), Some("get-host"), get_host).unwrap_err();
        assert!(error.is::<lars_std::daemon::UsageError>());
        assert_eq!(error.to_string(), "get-host: unknown flag --weight");
        for command in COMMANDS {
            let help = words(&format!("{} --help", command.name));
            assert!(run(&help, Some(command.name), Some(command)).is_ok(), "lars {} --help", command.name);
        }
    }
}

#[cfg(test)]
mod utc_tests {
    #[test]
    fn unix_milliseconds_read_as_utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00.000");
        assert_eq!(super::utc(1_764_000_000_123), "2025-11-24 16:00:00.123");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00.000");
    }
}
