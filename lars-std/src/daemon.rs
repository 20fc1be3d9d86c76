//! What the daemons and the CLI share: flag parsing, config loading with overrides, and picking
//! a store. Kept here so the binaries stay thin `main.rs` files.
//!
//! Every daemon reads an original-style `.conf` (`--config FILE`, optional), applies `LARS_*`
//! environment variables, then its flags. Flags are `--name value` (or `--name=value`); a flag
//! that is not known, or lacks its value, is an error naming it. Every daemon also takes the
//! flags of `DAEMON_USAGE`: the log's level and format, and `--check-config`, which prints
//! the effective configuration with the origin of every value and exits (0, or 78 on an
//! error). A key or section the daemon does not read is a warning naming the file and line.
//!
//! Exit codes follow `sysexits.h`: 64 for a usage error, 78 for a configuration error, 70 for
//! anything else.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use lars_core::wire::frame;

use crate::config::{ConfigError, Ini, Origin, ReactorConfig};
use crate::logger;
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

/// The flags every daemon takes besides its own (see [`DAEMON_USAGE`]).
pub const DAEMON_FLAGS: [&str; 3] = ["config", "log-level", "log-format"];
/// The switches every daemon takes.
pub const DAEMON_SWITCHES: [&str; 2] = ["help", "check-config"];

/// The part of every daemon's `--help` about the flags all of them take.
pub const DAEMON_USAGE: &str = "\
Every daemon also takes:
  --log-level LEVEL   off, error, warn, info (the default), debug or trace; also LARS_LOG
                      or [log] level
  --log-format FMT    text (the default) or json, one object per line; also [log] format
  --check-config      print the effective configuration, each value with where it came from
                      (file and line, environment variable, flag or default), and exit: 0 if
                      it is valid, 78 if not
Lines go to stderr, with a UTC time unless stderr is systemd's journal; one call site writes
at most 10 lines per 10 s and sums up the rest. SIGHUP reads the configuration file again
(the log settings take effect; other changes are named and wait for a restart); SIGUSR1 logs
the counters; SIGINT or SIGTERM stops cleanly. Under systemd (Type=notify) the daemon says
READY=1 once it serves and STOPPING=1 when it stops.
";

impl Args {
    /// Parses a daemon's arguments: its own flags `known` and `switches`, and
    /// [`DAEMON_FLAGS`] and [`DAEMON_SWITCHES`].
    pub fn for_daemon(known: &[&str], switches: &[&str]) -> Result<Args, UsageError> {
        let flags: Vec<&str> = known.iter().chain(&DAEMON_FLAGS).copied().collect();
        let switches: Vec<&str> = switches.iter().chain(&DAEMON_SWITCHES).copied().collect();
        Args::from_env(&flags, &switches)
    }

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

/// The flags a usage text names (its `--name` words), sorted and each once: what a program's
/// test compares with the flags it accepts, so that its help offers no flag it refuses and
/// hides none it takes.
pub fn usage_flags(usage: &str) -> Vec<&str> {
    let mut flags: Vec<&str> = usage
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter_map(|word| word.strip_prefix("--"))
        .filter(|flag| !flag.is_empty())
        .collect();
    flags.sort_unstable();
    flags.dedup();
    flags
}

/// Loads `--config FILE` (or an empty config), then `LARS_*` variables for `keys`, `[pool]`
/// and `[log]`, and the log flags; starts the logger; logs the lines it skipped and the keys
/// and sections no daemon reads; and sizes the process-wide buffer pool from `[pool]` (every
/// daemon has one, and it must be sized before anything allocates).
pub fn load_config(args: &Args, keys: &[(&str, &str)]) -> Result<Ini, ConfigError> {
    let ini = read_config(args, keys, true)?;
    logger::init(&program_name(), log_settings(&ini)?);
    warn_about(&ini, keys, true);
    // Every daemon accepts frames up to the protocol's limit.
    let pool = PoolConfig::from_ini(&ini, frame::HEADER_LEN + frame::MAX_BODY as usize)?;
    crate::pool::configure(pool).map_err(|e| ConfigError {
        origin: Origin::Default,
        key: None,
        message: e.to_string(),
    })?;
    Ok(ini)
}

/// [`load_config`] for a program without a buffer pool (lars-web, which frames nothing): the
/// same file, environment, log flags and logger, and `[pool]` is a section it does not read.
pub fn load_config_without_pool(args: &Args, keys: &[(&str, &str)]) -> Result<Ini, ConfigError> {
    let ini = read_config(args, keys, false)?;
    logger::init(&program_name(), log_settings(&ini)?);
    warn_about(&ini, keys, false);
    Ok(ini)
}

/// This program's name, as the log shows it.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|arg0| Path::new(&arg0).file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "lars".into())
}

/// The file, the environment and the log flags, merged; `[pool]` from the environment when
/// the program has a pool (`pooled`).
fn read_config(args: &Args, keys: &[(&str, &str)], pooled: bool) -> Result<Ini, ConfigError> {
    let mut ini = match args.flag("config") {
        Some(path) => Ini::load(Path::new(path))?,
        None => Ini::new(),
    };
    ini.apply_env(std::env::vars_os(), keys)?;
    if pooled {
        ini.apply_env(std::env::vars_os(), &PoolConfig::KEYS)?;
    }
    ini.apply_env(std::env::vars_os(), &logger::KEYS)?;
    // LARS_LOG is the short spelling, as RUST_LOG is for other programs.
    if let Some(level) = std::env::var_os("LARS_LOG") {
        let Some(level) = level.to_str() else {
            return Err(ConfigError {
                origin: Origin::Env("LARS_LOG".into()),
                key: Some("log.level".into()),
                message: "the value is not valid UTF-8".into(),
            });
        };
        ini.set_by_env("LARS_LOG", "log", "level", level);
    }
    for (flag, key) in [("log-level", "level"), ("log-format", "format")] {
        if let Some(value) = args.flag(flag) {
            ini.set_by_flag(flag, "log", key, value);
        }
    }
    Ok(ini)
}

/// The logger's settings from `[log]`.
pub fn log_settings(ini: &Ini) -> Result<logger::Settings, ConfigError> {
    let default = logger::Settings::default();
    Ok(logger::Settings {
        level: ini.get("log", "level", default.level)?,
        format: ini.get("log", "format", default.format)?,
    })
}

/// Logs the lines the loader skipped and the keys and sections that none of `keys`, `[log]`
/// and (when the program has a pool, `pooled`) `[pool]` names.
fn warn_about(ini: &Ini, keys: &[(&str, &str)], pooled: bool) {
    let pool: &[(&str, &str)] = if pooled { &PoolConfig::KEYS } else { &[] };
    let known: Vec<(&str, &str)> = keys.iter().chain(pool).chain(&logger::KEYS).copied().collect();
    for warning in ini.warnings().iter().chain(&ini.unknown(&known)) {
        log::warn!("{warning}");
    }
}

/// Reads the configuration again for SIGHUP: applies the log settings, logs the new file's
/// warnings, and names the keys whose value changed in the file or the environment, which
/// take effect at the next start. `running` is the configuration the daemon runs with. On an
/// error nothing changes.
pub fn reload(args: &Args, keys: &[(&str, &str)], running: &Ini) -> Result<(), ConfigError> {
    // The process has a pool if it loaded its configuration with one ([`load_config`]).
    let pooled = crate::pool::configured();
    let fresh = read_config(args, keys, pooled)?;
    let settings = log_settings(&fresh)?;
    logger::apply(settings);
    warn_about(&fresh, keys, pooled);
    let changed: Vec<String> = running
        .effective()
        .into_iter()
        // A flag still wins at the next start; the log settings took effect already.
        .filter(|e| !matches!(e.origin, Origin::Flag(_)) && e.section != "log")
        .filter(|e| running.peek(&e.section, &e.key) != fresh.peek(&e.section, &e.key))
        .map(|e| format!("[{}] {}", e.section, e.key))
        .collect();
    let source = args.flag("config").unwrap_or("no file");
    let level = settings.level.as_str().to_ascii_lowercase();
    let format = crate::config::ConfigValue::show(&settings.format);
    if changed.is_empty() {
        log::info!(
            "configuration read again from {source}: log level {level}, format {format}; nothing else changed"
        );
    } else {
        log::warn!(
            "configuration read again from {source}: log level {level}, format {format}; changed, and applied \
             only at the next start: {}",
            changed.join(", ")
        );
    }
    Ok(())
}

/// Prints the configuration the daemon would run with, as a `.conf` file whose every value
/// says where it came from (for `--check-config`). Passwords and secrets are not shown.
pub fn print_config(program: &str, ini: &Ini) {
    let mut effective = ini.effective();
    effective.sort_by(|a, b| (&a.section, &a.key).cmp(&(&b.section, &b.key)));
    let mut out = format!("# {program}: the effective configuration; it is valid\n");
    let mut section = None;
    for entry in &effective {
        if section != Some(&entry.section) {
            out.push_str(&format!("\n[{}]\n", entry.section));
            section = Some(&entry.section);
        }
        let secret = ["passwd", "password", "secret"].iter().any(|word| entry.key.contains(word));
        let value = if secret && !entry.value.is_empty() { "(hidden)" } else { entry.value.as_str() };
        let origin = match (&entry.origin, entry.value.is_empty()) {
            (Origin::Default, true) => "not set".to_string(),
            (origin, _) => origin.to_string(),
        };
        out.push_str(&format!("{:<44} # {origin}\n", format!("{} = {value}", entry.key)));
    }
    print!("{out}");
}

/// The counters line SIGUSR1 writes: `name=value` pairs.
pub fn counters_line(counters: &[(&str, u64)]) -> String {
    let pairs: Vec<String> = counters.iter().map(|(name, value)| format!("{name}={value}")).collect();
    format!("counters: {}", pairs.join(" "))
}

/// Runs a started daemon until SIGINT or SIGTERM: tells systemd it is ready (with `status`),
/// answers SIGHUP ([`reload`]) and SIGUSR1 (logs `counters()`), and writes the log's
/// summaries of suppressed lines every second. Then tells systemd it stops.
pub fn serve(
    shutdown: &mut crate::signal::Shutdown,
    args: &Args,
    keys: &[(&str, &str)],
    ini: &Ini,
    status: &str,
    counters: &dyn Fn() -> Vec<(&'static str, u64)>,
) -> std::io::Result<()> {
    use crate::signal::Signal;
    log::info!("{status}");
    if let Err(e) = crate::notify::ready(status) {
        log::warn!("could not tell systemd that it is ready (NOTIFY_SOCKET): {e}");
    }
    loop {
        match shutdown.next(Some(std::time::Duration::from_secs(1)))? {
            Some(Signal::Stop) => break,
            Some(Signal::Reload) => {
                if let Err(e) = reload(args, keys, ini) {
                    log::error!("SIGHUP: {e}; the running configuration stays");
                }
            }
            Some(Signal::Report) => log::info!("{}", counters_line(&counters())),
            None => log::logger().flush(),
        }
    }
    log::info!("stopping");
    let _ = crate::notify::stopping();
    Ok(())
}

/// The flags [`server_config`] reads, for a daemon's list of known flags.
pub const SERVER_FLAGS: [&str; 6] =
    ["listen", "threads", "max-conn", "header-timeout", "body-timeout", "idle-timeout"];

/// The flags every server daemon (lars-dns, lars-reporter) takes besides [`SERVER_FLAGS`]:
/// its MySQL store, the allowlist, the secret file and the metrics address.
const SERVER_DAEMON_FLAGS: [&str; 4] = ["mysql", "allow", "secret-file", "metrics"];
/// The switch every server daemon takes: `--allow-lars` ([`auth_config`]).
const SERVER_DAEMON_SWITCHES: [&str; 1] = ["allow-lars"];

/// A server daemon once [`start_server`] has read its flags and configuration.
pub struct ServerStart {
    /// The signals it answers, installed before anything else.
    pub shutdown: crate::signal::Shutdown,
    /// Its flags (no positional words).
    pub args: Args,
    /// Every configuration key it reads: `[reactor]`, `[mysql]`, `[auth]`, `[metrics]`, then
    /// its own.
    pub keys: Vec<(&'static str, &'static str)>,
    /// Its configuration, loaded as [`load_config`] does.
    pub ini: Ini,
}

/// The start-up every server daemon (lars-dns, lars-reporter) shares, before its own logic:
/// installs the signal handlers first (so that a SIGHUP while it starts does not end it),
/// parses [`SERVER_FLAGS`], the flags every server daemon takes and its `own_flags`, prints
/// `usage` and [`DAEMON_USAGE`] for `--help` (and then gives `None`), refuses positional
/// words, and loads its configuration with the `[reactor]`, `[mysql]`, `[auth]` and
/// `[metrics]` keys and its `own_keys`.
pub fn start_server(
    usage: &str,
    own_flags: &[&str],
    own_keys: &[(&'static str, &'static str)],
) -> Result<Option<ServerStart>, Box<dyn std::error::Error>> {
    let shutdown = crate::signal::Shutdown::install()?;
    let flags: Vec<&str> =
        SERVER_FLAGS.iter().chain(&SERVER_DAEMON_FLAGS).chain(own_flags).copied().collect();
    let args = Args::for_daemon(&flags, &SERVER_DAEMON_SWITCHES)?;
    if args.switch("help") {
        print!("{usage}\n{DAEMON_USAGE}");
        return Ok(None);
    }
    let keys: Vec<(&'static str, &'static str)> = ReactorConfig::KEYS
        .iter()
        .chain(&MYSQL_KEYS)
        .chain(&AUTH_KEYS)
        .chain(&METRICS_KEYS)
        .chain(own_keys)
        .copied()
        .collect();
    let args = args.flags_only()?;
    let ini = load_config(&args, &keys)?;
    Ok(Some(ServerStart { shutdown, args, keys, ini }))
}

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
        ini.set_by_flag("listen", "reactor", "ip", &addr.ip().to_string());
        ini.set_by_flag("listen", "reactor", "port", &addr.port().to_string());
    }
    if let Some(threads) = args.flag("threads") {
        ini.set_by_flag("threads", "reactor", "threadNum", threads);
    }
    if let Some(max) = args.flag("max-conn") {
        ini.set_by_flag("max-conn", "reactor", "maxConn", max);
    }
    if let Some(allow) = args.flag("allow") {
        ini.set_by_flag("allow", "reactor", "allow", allow);
    }
    for (flag, key) in [
        ("header-timeout", "headerTimeout"),
        ("body-timeout", "bodyTimeout"),
        ("idle-timeout", "idleTimeout"),
    ] {
        if let Some(value) = args.flag(flag) {
            ini.set_by_flag(flag, "reactor", key, value);
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
    if !reactor.spin {
        server.spin = None;
    }
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

/// Logs the lines of [`access_summary`] (without their program name, which the log adds).
pub fn log_access_summary(program: &str, server: &ServerConfig, auth: &crate::auth::AuthConfig) {
    let prefix = format!("{program}: ");
    for line in access_summary(program, server, auth) {
        log::info!("{}", line.strip_prefix(&prefix).unwrap_or(&line));
    }
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
        ini.note("mysql", "url", &crate::store::mysql::without_password(url), Origin::Flag("mysql".into()));
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

/// The server's counters, set once the server has started (its workers are built before).
pub(crate) type ServerStatsCell =
    std::sync::Arc<std::sync::OnceLock<std::sync::Arc<crate::reactor::ServerStats>>>;

/// A daemon's answer to the control frames it takes from an agent: its own `Hello` to the
/// agent's, and a `Heartbeat` echoed as the five bytes at most it decodes to (not as whatever
/// body came). `None` for any other msgid; `Some(Err(()))` for a body that does not decode,
/// which the caller counts and closes for.
pub(crate) fn answer_control(
    frame: &lars_core::wire::Frame<'_>,
    role: lars_core::wire::native::Role,
    reply: &mut crate::reactor::Sender<'_>,
) -> Option<Result<crate::reactor::Control, ()>> {
    use lars_core::wire::{Decode, MsgId, native};
    let sent = match frame.msgid {
        MsgId::Hello => match native::Hello::answer(frame.body, role) {
            Ok(hello) => reply.send(MsgId::Hello, &hello),
            Err(_) => return Some(Err(())),
        },
        MsgId::Heartbeat => match native::Heartbeat::parse(frame.body) {
            Ok(heartbeat) => reply.send(MsgId::Heartbeat, &heartbeat),
            Err(_) => return Some(Err(())),
        },
        _ => return None,
    };
    Some(Ok(crate::reactor::Control::after(sent)))
}

/// Answers a `StatsRequest` (already decoded: one that does not decode is the caller's bad
/// request) with a service's counters, the server's and the pool's.
pub(crate) fn answer_stats(
    request: lars_core::wire::native::StatsRequest,
    role: lars_core::wire::native::Role,
    own: Vec<(&'static str, u64)>,
    server: &ServerStatsCell,
    reply: &mut crate::reactor::Sender<'_>,
) -> crate::reactor::Control {
    let mut counters = own;
    if let Some(server) = server.get() {
        counters.extend(server.counters());
    }
    counters.extend(pool_counters());
    let mut out = vec![0u8; 8192];
    match stats_response(request.seq, role, &counters, &mut out) {
        Ok(len) if reply.send_frame(&out[..len]).is_ok() => crate::reactor::Control::Continue,
        _ => crate::reactor::Control::Close,
    }
}

/// The process-wide pool's counters, named for a `StatsResponse`: per class, its size, the
/// blocks in buffers, cached in the threads' magazines, the most ever out at once, and the
/// allocations refused; and the large blocks held by frames still on their way (at most half
/// the class).
pub fn pool_counters() -> Vec<(&'static str, u64)> {
    let mut counters = Vec::with_capacity(13);
    for (keys, class) in crate::metrics::POOL_KEYS.iter().zip(crate::pool::stats()) {
        let values = [
            class.block_size as u64,
            class.blocks as u64,
            class.in_use as u64,
            class.cached as u64,
            class.high_water as u64,
            u64::from(class.failed),
        ];
        counters.extend(keys.iter().copied().zip(values));
    }
    counters.push(("pool_large_held_by_partial_frames", crate::reactor::slow_holds() as u64));
    counters
}

/// Prints `error` and exits with the conventional code: usage (64), configuration (78) or
/// software (70).
pub fn exit_with(program: &str, error: &(dyn std::error::Error + 'static), usage: &str) -> ! {
    if error.is::<UsageError>() {
        eprintln!("{program}: {error}\n\n{usage}");
        std::process::exit(64);
    }
    let code = if error.is::<ConfigError>() { 78 } else { 70 };
    if logger::installed() {
        log::error!("{error}");
        logger::finish();
    } else {
        eprintln!("{program}: {error}");
    }
    std::process::exit(code);
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
    fn usage_flags_are_the_dashed_words_once_each() {
        let usage = "usage: x [--config FILE] [--b|--a]\n--config is optional; -- alone is not a flag (--a).";
        assert_eq!(usage_flags(usage), ["a", "b", "config"]);
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
