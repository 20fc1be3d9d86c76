//! What the daemons and the CLI share: flag parsing, config loading with overrides, and picking
//! a store. Kept here so the binaries stay thin `main.rs` files.
//!
//! Every daemon reads an original-style `.conf` (`--config FILE`, optional), applies `LARS_*`
//! environment variables, then its flags. Flags are `--name value` (or `--name=value`); a flag
//! that is not known, or lacks its value, is an error naming it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use lars_core::wire::frame;

use crate::config::{ConfigError, Ini, Origin, ReactorConfig};
use crate::pool::PoolConfig;
use crate::reactor::ServerConfig;

/// A command-line error, shown with the usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parsed command-line arguments: positional words and `--flag value` pairs.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// Words that are not flags, in order.
    pub positional: Vec<String>,
    flags: BTreeMap<String, String>,
}

impl Args {
    /// Parses this process's arguments (after the program name), which must be UTF-8.
    pub fn from_env(known: &[&str], switches: &[&str]) -> Result<Args, UsageError> {
        // The argument is not repeated: it may hold a password.
        let args = std::env::args_os()
            .skip(1)
            .enumerate()
            .map(|(index, arg)| {
                arg.into_string()
                    .map_err(|_| UsageError(format!("argument {} is not valid UTF-8", index + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Args::parse(args, known, switches)
    }

    /// Parses `args` (without the program name). `switches` are flags without a value.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        known: &[&str],
        switches: &[&str],
    ) -> Result<Args, UsageError> {
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--") else {
                parsed.positional.push(arg);
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (flag.to_string(), None),
            };
            if switches.contains(&name.as_str()) {
                parsed.flags.insert(name, "true".into());
                continue;
            }
            if !known.contains(&name.as_str()) {
                return Err(UsageError(format!("unknown flag --{name}")));
            }
            let value = match inline.or_else(|| args.next()) {
                Some(value) => value,
                None => return Err(UsageError(format!("--{name} needs a value"))),
            };
            parsed.flags.insert(name, value);
        }
        Ok(parsed)
    }

    /// Fails on positional words, for a program that takes flags only (a forgotten
    /// `--config` must not start a daemon on its defaults).
    pub fn flags_only(self) -> Result<Args, UsageError> {
        match self.positional.first() {
            Some(word) => Err(UsageError(format!("unexpected argument `{word}` (flags start with --)"))),
            None => Ok(self),
        }
    }

    /// The value of `--name`.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    /// Whether the switch `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }

    /// `--name` parsed as `T`, or `default`.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, UsageError> {
        match self.flag(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| UsageError(format!("--{name}: `{text}` is not valid"))),
        }
    }
}

/// Loads `--config FILE` (or an empty config), printing the lines it skipped, then `LARS_*`
/// variables for `keys` and for `[pool]`, and sizes the process-wide buffer pool from `[pool]`
/// (every daemon has one, and it must be sized before anything allocates).
pub fn load_config(args: &Args, keys: &[(&str, &str)]) -> Result<Ini, ConfigError> {
    let mut ini = match args.flag("config") {
        Some(path) => Ini::load(Path::new(path))?,
        None => Ini::new(),
    };
    for warning in ini.warnings() {
        eprintln!("warning: {warning}");
    }
    ini.apply_env(std::env::vars_os(), keys)?;
    ini.apply_env(std::env::vars_os(), &PoolConfig::KEYS)?;
    // Every daemon accepts frames up to the protocol's limit.
    let pool = PoolConfig::from_ini(&ini, frame::HEADER_LEN + frame::MAX_BODY as usize)?;
    crate::pool::configure(pool).map_err(|e| ConfigError {
        origin: Origin::Flag,
        key: None,
        message: e.to_string(),
    })?;
    Ok(ini)
}

/// The flags [`server_config`] reads, for a daemon's list of known flags.
pub const SERVER_FLAGS: [&str; 6] =
    ["listen", "threads", "max-conn", "header-timeout", "body-timeout", "idle-timeout"];

/// The `[reactor]` server config, with `--listen ip:port`, `--threads`, `--max-conn` and the
/// timeouts (`--header-timeout`, `--body-timeout`, `--idle-timeout`, in seconds) applied over
/// the file.
pub fn server_config(
    ini: &mut Ini,
    args: &Args,
    default_port: u16,
) -> Result<ServerConfig, Box<dyn std::error::Error>> {
    if let Some(listen) = args.flag("listen") {
        let addr: SocketAddr =
            listen.parse().map_err(|_| UsageError(format!("--listen: `{listen}` is not ip:port")))?;
        ini.set("reactor", "ip", &addr.ip().to_string());
        ini.set("reactor", "port", &addr.port().to_string());
    }
    if let Some(threads) = args.flag("threads") {
        ini.set("reactor", "threadNum", threads);
    }
    if let Some(max) = args.flag("max-conn") {
        ini.set("reactor", "maxConn", max);
    }
    if let Some(allow) = args.flag("allow") {
        ini.set("reactor", "allow", allow);
    }
    for (flag, key) in [
        ("header-timeout", "headerTimeout"),
        ("body-timeout", "bodyTimeout"),
        ("idle-timeout", "idleTimeout"),
    ] {
        if let Some(value) = args.flag(flag) {
            ini.set("reactor", key, value);
        }
    }
    let reactor = ReactorConfig::from_ini(ini, default_port)?;
    let mut server = ServerConfig::new(reactor.addr());
    server.threads = reactor.thread_num;
    server.max_conns = reactor.max_conn;
    server.allow = reactor.allow;
    server.header_timeout = reactor.header_timeout;
    server.body_timeout = reactor.body_timeout;
    server.idle_timeout = reactor.idle_timeout;
    Ok(server)
}

/// The `[auth]` keys (new): the secret file and whether Lars-codec peers are served with one.
pub const AUTH_KEYS: [(&str, &str); 2] = [("auth", "secret_file"), ("auth", "allow_lars")];

/// The secret of `--secret-file FILE` (`[auth] secret_file`), checked as
/// [`crate::auth::read_secret_file`] says, or none. A secret is never taken from the command
/// line or the environment, where other users can read it.
pub fn secret(ini: &mut Ini, args: &Args) -> Result<Option<lars_core::auth::Secret>, ConfigError> {
    if let Some(path) = args.flag("secret-file") {
        ini.set("auth", "secret_file", path);
    }
    let Some(path) = ini.get_str("auth", "secret_file") else { return Ok(None) };
    crate::auth::read_secret_file(Path::new(path))
        .map(Some)
        .map_err(|message| ini.error("auth", "secret_file", message))
}

/// lars-dns's and lars-reporter's `[auth]`: the secret agents must prove, and `--allow-lars`
/// (`allow_lars`), which serves Lars-codec peers (the original C++ agents) even so.
pub fn auth_config(ini: &mut Ini, args: &Args) -> Result<crate::auth::AuthConfig, ConfigError> {
    if args.switch("allow-lars") {
        ini.set("auth", "allow_lars", "true");
    }
    let secret = secret(ini, args)?;
    let allow_lars = ini.get("auth", "allow_lars", false)?;
    Ok(crate::auth::AuthConfig { secret, allow_lars })
}

/// What a daemon says at start about who may reach it: the allowlist, whether agents must
/// prove a secret, and a warning when it listens beyond loopback but admits loopback only (the
/// default), which would refuse every remote agent.
pub fn access_summary(program: &str, server: &ServerConfig, auth: &crate::auth::AuthConfig) -> Vec<String> {
    let allow: Vec<String> = server.allow.iter().map(ToString::to_string).collect();
    let secret = match (&auth.secret, auth.allow_lars) {
        (None, _) => "no secret: any allowed peer is served",
        (Some(_), false) => "agents must prove the secret; Lars-codec peers are refused",
        (Some(_), true) => {
            "agents must prove the secret; Lars-codec peers are served unauthenticated (--allow-lars)"
        }
    };
    let mut lines = vec![format!("{program}: accepting connections from {}; {secret}", allow.join(", "))];
    let loopback_only = server.allow.iter().all(|cidr| lars_core::access::Cidr::LOOPBACK.contains(cidr));
    if !server.addr.ip().is_loopback() && loopback_only {
        lines.push(format!(
            "{program}: warning: listening on {} but --allow ([reactor] allow) admits loopback only: \
             agents on other hosts are refused",
            server.addr
        ));
    }
    lines
}

/// The `[metrics]` keys every daemon reads (new; the original had no metrics).
pub const METRICS_KEYS: [(&str, &str); 1] = [("metrics", "listen")];

/// Where to serve Prometheus metrics: `--metrics [IP:]PORT` over `[metrics] listen`; none by
/// default. A bare port is on loopback.
pub fn metrics_addr(ini: &mut Ini, args: &Args) -> Result<Option<SocketAddr>, ConfigError> {
    if let Some(listen) = args.flag("metrics") {
        ini.set("metrics", "listen", listen);
    }
    crate::metrics::listen_addr(ini)
}

/// The `[mysql]` keys of the original configs.
pub const MYSQL_KEYS: [(&str, &str); 5] = [
    ("mysql", "db_host"),
    ("mysql", "db_port"),
    ("mysql", "db_user"),
    ("mysql", "db_passwd"),
    ("mysql", "db_name"),
];

/// MySQL connection options: from `--mysql URL` if given, else from an original `[mysql]`
/// section if the config has one, else none (the daemon then uses its file store). The
/// section's values are used as they are: a password may hold `@`, `#` or `/`, and a host may
/// be an IPv6 address.
#[cfg(feature = "mysql")]
pub fn mysql_opts(ini: &Ini, args: &Args) -> Result<Option<mysql::Opts>, Box<dyn std::error::Error>> {
    if let Some(url) = args.flag("mysql") {
        return Ok(Some(crate::store::mysql::opts(url)?));
    }
    if ini.get_str("mysql", "db_host").is_none() && ini.get_str("mysql", "db_name").is_none() {
        return Ok(None);
    }
    let host: String = ini.get("mysql", "db_host", "127.0.0.1".to_string())?;
    let port: u16 = ini.get("mysql", "db_port", 3306)?;
    let user: String = ini.get("mysql", "db_user", "root".to_string())?;
    let password: String = ini.get("mysql", "db_passwd", String::new())?;
    let database: String = ini.get("mysql", "db_name", "lars_dns".to_string())?;
    let builder = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(host))
        .tcp_port(port)
        .user(Some(user))
        .pass((!password.is_empty()).then_some(password))
        .db_name(Some(database));
    Ok(Some(builder.into()))
}

/// Writes a `StatsResponse` frame with `counters` into `out`, for a daemon answering
/// `StatsRequest`; returns its length.
pub fn stats_response(
    seq: u32,
    role: lars_core::wire::native::Role,
    counters: &[(&str, u64)],
    out: &mut [u8],
) -> Result<usize, lars_core::wire::Error> {
    use lars_core::wire::native::{Counter, StatsResponse};
    let counters: Vec<Counter<'_>> = counters.iter().map(|&(name, value)| Counter { name, value }).collect();
    let body = StatsResponse { seq, role, counters: lars_core::wire::List::from_slice(&counters) };
    lars_core::wire::frame::encode(lars_core::wire::MsgId::StatsResponse, &body, out)
}

/// The process-wide pool's counters, named for a `StatsResponse`: per class, its size, the
/// blocks in buffers, cached in the threads' magazines, the most ever out at once, and the
/// allocations refused; and the large blocks held by frames still on their way (at most half
/// the class).
pub fn pool_counters() -> Vec<(&'static str, u64)> {
    let [small, large] = crate::pool::stats();
    vec![
        ("pool_small_block_size", small.block_size as u64),
        ("pool_small_blocks", small.blocks as u64),
        ("pool_small_in_use", small.in_use as u64),
        ("pool_small_in_magazines", small.cached as u64),
        ("pool_small_high_water", small.high_water as u64),
        ("pool_small_failed", u64::from(small.failed)),
        ("pool_large_block_size", large.block_size as u64),
        ("pool_large_blocks", large.blocks as u64),
        ("pool_large_in_use", large.in_use as u64),
        ("pool_large_in_magazines", large.cached as u64),
        ("pool_large_high_water", large.high_water as u64),
        ("pool_large_failed", u64::from(large.failed)),
        ("pool_large_held_by_partial_frames", crate::reactor::slow_holds() as u64),
    ]
}

/// Prints `error` and exits with the conventional usage (64) or software (70) code.
pub fn exit_with(program: &str, error: &(dyn std::error::Error + 'static), usage: &str) -> ! {
    if error.is::<UsageError>() {
        eprintln!("{program}: {error}\n\n{usage}");
        std::process::exit(64);
    }
    eprintln!("{program}: {error}");
    std::process::exit(70);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Result<Args, UsageError> {
        Args::parse(words.iter().map(|w| w.to_string()), &["listen", "mysql", "config"], &["verbose"])
    }

    #[test]
    fn flags_and_positionals() {
        let parsed =
            args(&["route", "--listen", "127.0.0.1:1", "add", "--mysql=mysql://x@h/db", "--verbose"])
                .unwrap();
        assert_eq!(parsed.positional, ["route", "add"]);
        assert_eq!(parsed.flag("listen"), Some("127.0.0.1:1"));
        assert_eq!(parsed.flag("mysql"), Some("mysql://x@h/db"));
        assert!(parsed.switch("verbose"));
        assert_eq!(args(&["--nope", "1"]).unwrap_err().0, "unknown flag --nope");
        assert_eq!(args(&["--listen"]).unwrap_err().0, "--listen needs a value");
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_opts_from_an_original_config() {
        let ini = Ini::parse(
            "[mysql]\ndb_host = ::1\ndb_port = 3307\ndb_user = root\ndb_passwd = p@ss#1/%\ndb_name = lars_dns\n",
            Path::new("lars_dns.conf"),
        )
        .unwrap();
        let none = Args::default();
        let opts = mysql_opts(&ini, &none).unwrap().unwrap();
        assert_eq!(opts.get_ip_or_hostname(), "::1");
        assert_eq!(opts.get_tcp_port(), 3307);
        assert_eq!(opts.get_user(), Some("root"));
        assert_eq!(opts.get_pass(), Some("p@ss#1/%"), "taken as it is, not as part of a URL");
        assert_eq!(opts.get_db_name(), Some("lars_dns"));
        assert!(mysql_opts(&Ini::new(), &none).unwrap().is_none(), "no [mysql]: the file store");
        let flag = args(&["--mysql", "mysql://u@h:1/db"]).unwrap();
        assert_eq!(mysql_opts(&ini, &flag).unwrap().unwrap().get_ip_or_hostname(), "h", "the flag wins");
    }

    #[test]
    fn a_daemon_refuses_stray_words() {
        assert!(args(&["--listen", "127.0.0.1:1"]).unwrap().flags_only().is_ok());
        assert_eq!(
            args(&["lars_dns.conf"]).unwrap().flags_only().unwrap_err().0,
            "unexpected argument `lars_dns.conf` (flags start with --)"
        );
    }
}
