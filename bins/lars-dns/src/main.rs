//! lars-dns: serves routes to lars agents and pushes their changes.

use std::error::Error;

use lars_std::config::Fraction;
use lars_std::daemon;
use lars_std::dns::{Dns, DnsConfig, SubscriptionCaps};
use lars_std::store::RouteStore;
use lars_std::store::file::RouteFile;
use lars_std::store::mysql::MysqlRoutes;

const USAGE: &str = "\
usage: lars-dns [--config FILE] [--listen IP:PORT] [--threads N] [--max-conn N]
                [--header-timeout S] [--body-timeout S] [--idle-timeout S]
                [--routes FILE | --mysql URL] [--shrink-limit FRACTION]
                [--allow CIDR,...] [--secret-file FILE [--allow-lars]] [--metrics [IP:]PORT]

Serves routes on TCP (default 127.0.0.1:7778) from the route file (default routes.conf; the
embedded default) or from MySQL (--mysql, or a [mysql] section in the config, as in the
original lars_dns.conf). Until its store is loaded it tells agents it is not ready, and they
keep their routes. A load that removes more than --shrink-limit ([dns] shrink_limit, default
0.5) of the routes or hosts at once (and at least 10 of them) is held until the next full
load (10 s) says the same; 1 turns that off. An agent is subscribed to the routes it asked for,
at most [dns] subscriptions_per_conn (4096) per connection (of them 256 that do not exist,
oldest out) and subscriptions_total (1048576) in all; past them routes are answered without
pushes. A frame's header must arrive within --header-timeout ([reactor] headerTimeout, 10 s)
of its first byte and its body within --body-timeout (bodyTimeout, 30 s) of its header, or the
connection is closed; with --idle-timeout (idleTimeout, default 0: none) a connection that
sends nothing for that long is closed too.

--allow ([reactor] allow) lists the networks agents may connect from (default loopback only:
127.0.0.0/8, ::1); others are closed at accept and counted (`denied`). --secret-file ([auth]
secret_file: a file of mode 600 holding at least 16 bytes) makes every agent prove the shared
secret (and lets agents check that this is the real lars-dns); Lars-codec agents, which cannot,
are then refused unless --allow-lars ([auth] allow_lars). See docs/SECURITY.md.

--metrics ([metrics] listen; off by default) serves Prometheus metrics at
http://IP:PORT/metrics (a bare port is on 127.0.0.1).
";

fn main() {
    if let Err(error) = run() {
        daemon::exit_with("lars-dns", error.as_ref(), USAGE);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let own_keys: Vec<(&str, &str)> =
        [("dns", "routes"), ("dns", "shrink_limit")].into_iter().chain(SubscriptionCaps::KEYS).collect();
    let Some(daemon::ServerStart { mut shutdown, args, keys, mut ini }) =
        daemon::start_server(USAGE, &["routes", "shrink-limit"], &own_keys)?
    else {
        return Ok(());
    };
    if let Some(limit) = args.flag("shrink-limit") {
        ini.set_by_flag("shrink-limit", "dns", "shrink_limit", limit);
    }
    if let Some(routes) = args.flag("routes") {
        ini.set_by_flag("routes", "dns", "routes", routes);
    }
    let server = daemon::server_config(&mut ini, &args, 7778)?;
    // --routes wins, and then [mysql] is not even read.
    let mysql = match args.flag("routes") {
        Some(_) => None,
        None => daemon::mysql_opts(&ini, &args)?,
    };
    let store: Box<dyn RouteStore> = match mysql {
        Some(opts) => Box::new(MysqlRoutes::new(opts)),
        None => Box::new(RouteFile::new(ini.get("dns", "routes", "routes.conf".to_string())?)),
    };
    let source = store.describe();
    let auth = daemon::auth_config(&mut ini, &args)?;
    daemon::log_access_summary("lars-dns", &server, &auth);
    let mut config = DnsConfig::new(server);
    config.auth = auth;
    let Fraction(shrink_limit) = ini.get("dns", "shrink_limit", Fraction(config.shrink_limit))?;
    config.shrink_limit = shrink_limit;
    config.metrics = daemon::metrics_addr(&mut ini, &args)?;
    config.subscriptions = SubscriptionCaps::from_ini(&ini)?;
    if args.switch("check-config") {
        daemon::print_config("lars-dns", &ini);
        return Ok(());
    }
    let dns = Dns::start(config, store)?;
    let mut status = format!("listening on {}, routes from {source}", dns.local_addr());
    if let Some(addr) = dns.metrics_addr() {
        status += &format!("; metrics on http://{addr}/metrics");
    }
    let counters = || {
        let mut counters = dns.stats().counters();
        counters.extend(dns.server_stats().counters());
        counters.extend(daemon::pool_counters());
        counters
    };
    daemon::serve(&mut shutdown, &args, &keys, &ini, &status, &counters)?;
    dns.shutdown();
    lars_std::logger::finish();
    Ok(())
}
