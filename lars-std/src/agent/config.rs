//! lars-agent's configuration: the keys it reads, how they become an `AgentConfig`, and the
//! daemon's own settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use lars_core::agent::AgentConfig;

/// The `lars_lb_agent.conf` keys lars-agent reads (also as `LARS_<SECTION>_<KEY>`), besides
/// the `[route:MODID:CMDID] policy` sections.
pub const KEYS: [(&str, &str); 27] = [
    ("agent", "route_cache"),
    ("agent", "route_cache_max_age"),
    ("agent", "spin"),
    ("dnsserver", "ip"),
    ("dnsserver", "port"),
    ("dnsserver", "codec"),
    ("reporter", "ip"),
    ("reporter", "port"),
    ("reporter", "codec"),
    ("loadbalance", "probe_num"),
    ("loadbalance", "init_succ_cnt"),
    ("loadbalance", "init_err_cnt"),
    ("loadbalance", "err_rate"),
    ("loadbalance", "succ_rate"),
    ("loadbalance", "contin_succ_limit"),
    ("loadbalance", "contin_err_limit"),
    ("loadbalance", "window_err_rate"),
    ("loadbalance", "idle_timeout"),
    ("loadbalance", "overload_timeout"),
    ("loadbalance", "update_timeout"),
    ("loadbalance", "missing_ttl"),
    ("loadbalance", "route_idle_evict"),
    ("loadbalance", "policy"),
    ("loadbalance", "slow_start"),
    ("loadbalance", "p2c_decay"),
    ("loadbalance", "p2c_failure_penalty_us"),
    ("loadbalance", "p2c_initial_latency_us"),
];

/// Reads the agent's behaviour from `ini` into `config`: the codecs, the original
/// `[loadbalance]` keys, the default policy and its parameters (`policy`, `slow_start`,
/// `p2c_*`), and one `[route:MODID:CMDID]` section per route with its own `policy`. An
/// unknown value, or a route section that does not name a route, is an error naming the file,
/// line and key.
pub fn read_agent_config(
    ini: &crate::config::Ini,
    config: &mut AgentConfig,
) -> Result<(), crate::config::ConfigError> {
    use crate::config::Fraction;
    use lars_core::lb::lars::Rate;
    use lars_core::time::Duration;
    let secs = |key: &str, default: Duration| -> Result<Duration, crate::config::ConfigError> {
        Ok(Duration::from_secs(ini.get("loadbalance", key, default.as_micros() / 1_000_000)?))
    };
    let rate = |key: &str, default: Rate| -> Result<Rate, crate::config::ConfigError> {
        let Fraction(rate) = ini.get("loadbalance", key, Fraction(f64::from(default.ppm()) / 1e6))?;
        Ok(Rate::from_fraction(rate))
    };
    config.dns_codec = ini.get("dnsserver", "codec", config.dns_codec)?;
    config.reporter_codec = ini.get("reporter", "codec", config.reporter_codec)?;
    let lars = &mut config.lb.lars;
    lars.probe_num = ini.get("loadbalance", "probe_num", lars.probe_num)?;
    lars.init_succ_cnt = ini.get("loadbalance", "init_succ_cnt", lars.init_succ_cnt)?;
    lars.init_err_cnt = ini.get("loadbalance", "init_err_cnt", lars.init_err_cnt)?;
    lars.err_rate = rate("err_rate", lars.err_rate)?;
    lars.succ_rate = rate("succ_rate", lars.succ_rate)?;
    lars.contin_succ_limit = ini.get("loadbalance", "contin_succ_limit", lars.contin_succ_limit)?;
    lars.contin_err_limit = ini.get("loadbalance", "contin_err_limit", lars.contin_err_limit)?;
    lars.window_err_rate = rate("window_err_rate", lars.window_err_rate)?;
    lars.idle_timeout = secs("idle_timeout", lars.idle_timeout)?;
    lars.overload_timeout = secs("overload_timeout", lars.overload_timeout)?;
    config.update_timeout = secs("update_timeout", config.update_timeout)?;
    config.missing_ttl = secs("missing_ttl", config.missing_ttl)?;
    config.route_idle_evict = secs("route_idle_evict", config.route_idle_evict)?;
    config.default_policy = ini.get("loadbalance", "policy", config.default_policy)?;
    config.lb.slow_start = secs("slow_start", config.lb.slow_start)?;
    let p2c = &mut config.lb.p2c;
    p2c.decay = secs("p2c_decay", p2c.decay)?;
    p2c.failure_penalty_us = ini.get("loadbalance", "p2c_failure_penalty_us", p2c.failure_penalty_us)?;
    p2c.initial_latency_us = ini.get("loadbalance", "p2c_initial_latency_us", p2c.initial_latency_us)?;
    for section in ini.sections_with_prefix("route:") {
        let bad = |message: &str| ini.error(section, "policy", format!("[{section}]: {message}"));
        let route = section.strip_prefix("route:").and_then(|rest| rest.split_once(':'));
        let Some((Ok(modid), Ok(cmdid))) =
            route.map(|(m, c)| (m.trim().parse::<i32>(), c.trim().parse::<i32>()))
        else {
            return Err(bad("a route section is named [route:MODID:CMDID]"));
        };
        if ini.get_str(section, "policy").is_none() {
            return Err(bad("a route section needs `policy = ...`"));
        }
        let policy = ini.get(section, "policy", config.default_policy)?;
        let route_policy = lars_core::agent::RoutePolicy { modid, cmdid, policy };
        if config.route_policies.push(route_policy).is_err() {
            return Err(bad("more than 32 routes with their own policy"));
        }
    }
    Ok(())
}

/// How lars-agent runs.
#[derive(Debug, Clone)]
pub struct AgentDaemonConfig {
    /// The API endpoints (port 0 picks a free one); the API sends a route's traffic to
    /// endpoint `(modid + cmdid) mod n`, but any endpoint serves any route.
    pub api: Vec<SocketAddr>,
    /// lars-dns replicas.
    pub dns: Vec<SocketAddr>,
    /// lars-reporter replicas.
    pub reporter: Vec<SocketAddr>,
    /// The agent itself.
    pub agent: AgentConfig,
    /// Where the agent keeps a copy of its routes, so that a restart while lars-dns is
    /// unreachable still serves them (`[agent] route_cache`; none by default).
    pub route_cache: Option<PathBuf>,
    /// A copy older than this is ignored at start (`[agent] route_cache_max_age`, seconds).
    pub route_cache_max_age: std::time::Duration,
    /// Where to serve Prometheus metrics (`--metrics`), if anywhere.
    pub metrics: Option<SocketAddr>,
    /// The adaptive wait (`[agent] spin`, on by default): busy-poll briefly before sleeping
    /// while callers come densely and a core would idle. Off, the loop always sleeps.
    pub spin: bool,
}

impl AgentDaemonConfig {
    /// The original's ports on loopback, with lars-dns and lars-reporter at `dns` and `reporter`.
    pub fn new(dns: Vec<SocketAddr>, reporter: Vec<SocketAddr>) -> Self {
        let api = (8888..=8890).map(|port| SocketAddr::from(([127, 0, 0, 1], port))).collect();
        AgentDaemonConfig {
            api,
            dns,
            reporter,
            agent: AgentConfig::default(),
            route_cache: None,
            route_cache_max_age: std::time::Duration::from_secs(24 * 3600),
            metrics: None,
            spin: true,
        }
    }
}

/// The warning for an API endpoint at `addr` that is not on loopback: the API takes no
/// credentials, and its `get_route` answers a small datagram with a whole route (about 150
/// times its size at 256 hosts), which turns an exposed agent into a reflector for anyone who
/// can forge a source address. `None` for loopback.
pub fn exposure_warning(addr: SocketAddr) -> Option<String> {
    if addr.ip().to_canonical().is_loopback() {
        return None;
    }
    Some(format!(
        "lars-agent: warning: the API listens on {addr}, not on loopback: anyone who can reach it can ask for \
         routes and report calls, and get_route answers a small datagram with a whole route (a reflector \
         for spoofed sources); keep it on 127.0.0.1 unless a firewall closes it"
    ))
}

#[cfg(test)]
mod tests;
