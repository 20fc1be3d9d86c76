//! lars-agent: the local load-balancing agent.

use std::error::Error;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::config::{Ini, Origin};
use lars_std::daemon::{self, Args, UsageError};
use lars_std::signal::Shutdown;

const USAGE: &str = "\
usage: lars-agent [--config FILE] [--dns IP:PORT,...] [--reporter IP:PORT,...] [--api IP:PORT,...]
                  [--dns-codec auto|native|lars] [--reporter-codec auto|native|lars]
                  [--policy lars|round_robin|weighted|p2c|maglev]
                  [--route-cache FILE] [--route-cache-max-age SECONDS] [--secret-file FILE]
                  [--metrics [IP:]PORT]

Serves get_host, report and get_route on UDP (default 127.0.0.1:8888, 8889 and 8890), pulls
routes from lars-dns and sends call statistics to lars-reporter. Several lars-dns or
lars-reporter replicas may be listed; the agent fails over between them. Reads the original
lars_lb_agent.conf keys ([dnsserver] ip port, [reporter] ip port, [loadbalance] ...).

--dns-codec and --reporter-codec ([dnsserver] codec, [reporter] codec) say what to speak to
them: `native` for lars daemons, `lars` for an original Lars lars_dns or lars_reporter, or
`auto` (the default): greet each new link with a native Hello and speak Lars when it goes
unanswered for 1 s. The choice is logged.

--policy ([loadbalance] policy) is the routes' balancing policy: lars (the original's
idle/overload with probing, the default), round_robin, weighted (smooth weighted round robin),
p2c (power of two choices over EWMA latency) or maglev (consistent hashing on the caller's key).
A route can have its own: a [route:MODID:CMDID] section with `policy = ...` (32 at most).

--route-cache ([agent] route_cache) keeps a copy of the routes in FILE, written atomically at
most once a second after they change; an agent restarted while lars-dns is unreachable serves
them (as stale, until lars-dns answers) unless the copy is older than --route-cache-max-age
([agent] route_cache_max_age, default 86400 s).
[agent] spin = off stops the loop busy-polling before it sleeps (on by default: it spins
only while callers come back to back and a core would idle).
[loadbalance] slow_start (seconds, 0 = off) ramps up hosts that join or recover; p2c_decay
(seconds), p2c_failure_penalty_us and p2c_initial_latency_us tune p2c.
--secret-file ([auth] secret_file: mode 600, at least 16 bytes) makes the agent prove the
shared secret to lars-dns and lars-reporter and demand their proof before it takes a route:
both links then speak the native protocol, authenticated, or not at all. The API stays on
loopback unless --api says otherwise (which is warned about: see docs/SECURITY.md).

--metrics ([metrics] listen; off by default) serves Prometheus metrics at
http://IP:PORT/metrics (a bare port is on 127.0.0.1).
";

fn main() {
    if let Err(error) = run() {
        daemon::exit_with("lars-agent", error.as_ref(), USAGE);
    }
}

/// A list from `--flag`, else from the config's `[section] ip/port`, else `default`.
fn addrs(
    args: &Args,
    ini: &Ini,
    flag: &str,
    section: &str,
    default_port: u16,
) -> Result<Vec<SocketAddr>, Box<dyn Error>> {
    if let Some(list) = args.flag(flag) {
        ini.note(section, "addresses", list, Origin::Flag(flag.into()));
        return Ok(list
            .split(',')
            .map(|a| a.trim().parse().map_err(|_| UsageError(format!("--{flag}: `{a}` is not ip:port"))))
            .collect::<Result<_, _>>()?);
    }
    let ip: IpAddr = ini.get(section, "ip", IpAddr::from([127, 0, 0, 1]))?;
    let port: u16 = ini.get(section, "port", default_port)?;
    Ok(vec![SocketAddr::new(ip, port)])
}

fn run() -> Result<(), Box<dyn Error>> {
    // First, so that a SIGHUP while it starts does not end it.
    let mut shutdown = Shutdown::install()?;
    let args = Args::for_daemon(
        &[
            "dns",
            "reporter",
            "api",
            "dns-codec",
            "reporter-codec",
            "policy",
            "route-cache",
            "route-cache-max-age",
            "secret-file",
            "metrics",
        ],
        &[],
    )?;
    if args.switch("help") {
        print!("{USAGE}\n{}", daemon::DAEMON_USAGE);
        return Ok(());
    }
    let args = args.flags_only()?;
    let keys: Vec<(&str, &str)> = lars_std::agent::KEYS
        .iter()
        .chain(&daemon::AUTH_KEYS[..1])
        .chain(&daemon::METRICS_KEYS)
        .copied()
        .collect();
    let mut ini = daemon::load_config(&args, &keys)?;
    for (flag, section, key) in [
        ("dns-codec", "dnsserver", "codec"),
        ("reporter-codec", "reporter", "codec"),
        ("policy", "loadbalance", "policy"),
        ("route-cache", "agent", "route_cache"),
        ("route-cache-max-age", "agent", "route_cache_max_age"),
    ] {
        if let Some(value) = args.flag(flag) {
            ini.set_by_flag(flag, section, key, value);
        }
    }
    let dns = addrs(&args, &ini, "dns", "dnsserver", 7778)?;
    let reporter = addrs(&args, &ini, "reporter", "reporter", 7779)?;
    let mut config = AgentDaemonConfig::new(dns.clone(), reporter);
    if let Some(api) = args.flag("api") {
        ini.note("agent", "api", api, Origin::Flag("api".into()));
        config.api = api
            .split(',')
            .map(|a| a.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|_| UsageError(format!("--api: `{api}` is not a list of ip:port")))?;
    }
    lars_std::agent::read_agent_config(&ini, &mut config.agent)?;
    config.route_cache = ini.get_str("agent", "route_cache").map(std::path::PathBuf::from);
    let max_age: u64 = ini.get("agent", "route_cache_max_age", config.route_cache_max_age.as_secs())?;
    config.route_cache_max_age = std::time::Duration::from_secs(max_age);
    config.spin = ini.get("agent", "spin", config.spin)?;
    config.metrics = daemon::metrics_addr(&mut ini, &args)?;
    config.agent.caller = caller_id(dns[0]);
    config.agent.secret = daemon::secret(&mut ini, &args)?;
    if config.agent.secret.is_some() {
        log::info!("proving the secret to lars-dns and lars-reporter, and demanding theirs");
    }
    config.agent.seed = u64::from(std::process::id()) ^ lars_std::time::Clock::unix_secs();
    if args.switch("check-config") {
        daemon::print_config("lars-agent", &ini);
        return Ok(());
    }
    let agent = AgentDaemon::start(config)?;
    let api: Vec<String> = agent.api_addrs().iter().map(ToString::to_string).collect();
    let mut status = format!("serving on UDP {}", api.join(", "));
    if let Some(addr) = agent.metrics_addr() {
        status += &format!("; metrics on http://{addr}/metrics");
    }
    let counters = || {
        let mut counters = agent.stats().counters().to_vec();
        counters.extend(daemon::pool_counters());
        counters
    };
    daemon::serve(&mut shutdown, &args, &lars_std::agent::KEYS, &ini, &status, &counters)?;
    agent.shutdown();
    lars_std::logger::finish();
    Ok(())
}

/// This host's address on the way to lars-dns, as the original's `caller` (its IPv4 address as
/// an integer). A UDP `connect` sends nothing; it only picks the route.
fn caller_id(dns: SocketAddr) -> u32 {
    let local = UdpSocket::bind(if dns.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })
        .and_then(|socket| socket.connect(dns).and_then(|()| socket.local_addr()));
    match local.map(|addr| addr.ip()) {
        Ok(IpAddr::V4(ip)) => ip.to_bits(),
        _ => u32::from(std::net::Ipv4Addr::LOCALHOST),
    }
}
