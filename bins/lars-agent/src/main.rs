//! lars-agent: the local load-balancing agent.

use std::error::Error;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use lars_core::lb::lars::Rate;
use lars_core::time::Duration;
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::config::{ConfigError, Fraction, Ini};
use lars_std::daemon::{self, Args, UsageError};
use lars_std::signal::Shutdown;

const USAGE: &str = "\
usage: lars-agent [--config FILE] [--dns IP:PORT,...] [--reporter IP:PORT,...] [--api IP:PORT,...]
                  [--dns-codec auto|native|lars] [--reporter-codec auto|native|lars]

Serves get_host, report and get_route on UDP (default 127.0.0.1:8888, 8889 and 8890), pulls
routes from lars-dns and sends call statistics to lars-reporter. Several lars-dns or
lars-reporter replicas may be listed; the agent fails over between them. Reads the original
lars_lb_agent.conf keys ([dnsserver] ip port, [reporter] ip port, [loadbalance] ...).

--dns-codec and --reporter-codec ([dnsserver] codec, [reporter] codec) say what to speak to
them: `native` for lars daemons, `lars` for an original Lars lars_dns or lars_reporter, or
`auto` (the default): greet each new link with a native Hello and speak Lars when it goes
unanswered for 1 s. The choice is logged.
SIGINT or SIGTERM stops it.
";

const KEYS: [(&str, &str); 17] = [
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
];

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
        return Ok(list
            .split(',')
            .map(|a| a.trim().parse().map_err(|_| UsageError(format!("--{flag}: `{a}` is not ip:port"))))
            .collect::<Result<_, _>>()?);
    }
    let ip: IpAddr = ini.get(section, "ip", IpAddr::from([127, 0, 0, 1]))?;
    let port: u16 = ini.get(section, "port", default_port)?;
    Ok(vec![SocketAddr::new(ip, port)])
}

fn secs(ini: &Ini, key: &str, default: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(ini.get("loadbalance", key, default)?))
}

fn rate(ini: &Ini, key: &str, default: Rate) -> Result<Rate, ConfigError> {
    let Fraction(rate) = ini.get("loadbalance", key, Fraction(f64::from(default.ppm()) / 1e6))?;
    Ok(Rate::from_fraction(rate))
}

fn run() -> Result<(), Box<dyn Error>> {
    let args =
        Args::from_env(&["config", "dns", "reporter", "api", "dns-codec", "reporter-codec"], &["help"])?;
    if args.switch("help") {
        print!("{USAGE}");
        return Ok(());
    }
    let args = args.flags_only()?;
    let mut ini = daemon::load_config(&args, &KEYS)?;
    for (flag, section) in [("dns-codec", "dnsserver"), ("reporter-codec", "reporter")] {
        if let Some(value) = args.flag(flag) {
            ini.set(section, "codec", value);
        }
    }
    let dns = addrs(&args, &ini, "dns", "dnsserver", 7778)?;
    let reporter = addrs(&args, &ini, "reporter", "reporter", 7779)?;
    let mut config = AgentDaemonConfig::new(dns.clone(), reporter);
    if let Some(api) = args.flag("api") {
        config.api = api
            .split(',')
            .map(|a| a.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|_| UsageError(format!("--api: `{api}` is not a list of ip:port")))?;
    }
    let lars = &mut config.agent.lb.lars;
    lars.probe_num = ini.get("loadbalance", "probe_num", lars.probe_num)?;
    lars.init_succ_cnt = ini.get("loadbalance", "init_succ_cnt", lars.init_succ_cnt)?;
    lars.init_err_cnt = ini.get("loadbalance", "init_err_cnt", lars.init_err_cnt)?;
    lars.err_rate = rate(&ini, "err_rate", lars.err_rate)?;
    lars.succ_rate = rate(&ini, "succ_rate", lars.succ_rate)?;
    lars.contin_succ_limit = ini.get("loadbalance", "contin_succ_limit", lars.contin_succ_limit)?;
    lars.contin_err_limit = ini.get("loadbalance", "contin_err_limit", lars.contin_err_limit)?;
    lars.window_err_rate = rate(&ini, "window_err_rate", lars.window_err_rate)?;
    lars.idle_timeout = secs(&ini, "idle_timeout", 15)?;
    lars.overload_timeout = secs(&ini, "overload_timeout", 15)?;
    config.agent.update_timeout = secs(&ini, "update_timeout", 15)?;
    config.agent.dns_codec = ini.get("dnsserver", "codec", config.agent.dns_codec)?;
    config.agent.reporter_codec = ini.get("reporter", "codec", config.agent.reporter_codec)?;
    config.agent.caller = caller_id(dns[0]);
    config.agent.seed = u64::from(std::process::id()) ^ lars_std::time::Clock::unix_secs();
    let mut shutdown = Shutdown::install()?;
    let agent = AgentDaemon::start(config)?;
    let api: Vec<String> = agent.api_addrs().iter().map(ToString::to_string).collect();
    eprintln!("lars-agent: serving on UDP {}", api.join(", "));
    shutdown.wait()?;
    eprintln!("lars-agent: shutting down");
    agent.shutdown();
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
