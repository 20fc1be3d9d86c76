//! lars-reporter: stores the call statistics lars agents send.

use std::error::Error;

use lars_std::daemon;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::StatsStore;
use lars_std::store::file::StatsFile;
use lars_std::store::history::HistoryStore;
use lars_std::store::history::mysql::MysqlHistory;
use lars_std::store::mysql::MysqlStats;

const USAGE: &str = "\
usage: lars-reporter [--config FILE] [--listen IP:PORT] [--threads N] [--max-conn N]
                     [--header-timeout S] [--body-timeout S] [--idle-timeout S]
                     [--writers N] [--mysql URL | --stats-file FILE] [--metrics [IP:]PORT]
                     [--allow CIDR,...] [--secret-file FILE [--allow-lars]]

Receives call statistics on TCP (default 127.0.0.1:7779) and writes them in batches to MySQL's
ServerCallStatus (--mysql, or a [mysql] section as in the original lars_reporter.conf), or,
with no MySQL, to a statistics file (--stats-file, [reporter] stats_file; default
lars-stats.txt). On MySQL it also keeps per-minute call history (CallHistory) and the agents'
decisions (HostDecision), made by `lars db-init`, for [reporter] history_retention_hours and
decision_retention_hours (168 each). --metrics ([metrics] listen; off by default) serves
Prometheus metrics at http://IP:PORT/metrics (a bare port is on 127.0.0.1). A frame's header
must arrive within --header-timeout ([reactor] headerTimeout, 10 s) of its first byte and its
body within --body-timeout (bodyTimeout, 30 s) of its header, or the connection is closed;
with --idle-timeout (idleTimeout, default 0: none) a connection that sends nothing for that
long is closed too.

--allow ([reactor] allow) lists the networks agents may connect from (default loopback only);
others are closed at accept and counted (`denied`). --secret-file ([auth] secret_file, mode
600) makes every agent prove the shared secret, and stores each agent's rows under the identity
it proved (a frame claiming another caller is stored under the proven one and counted in
`callers_rewritten`); Lars-codec agents are then refused unless --allow-lars ([auth]
allow_lars). See docs/SECURITY.md.
";

fn main() {
    if let Err(error) = run() {
        daemon::exit_with("lars-reporter", error.as_ref(), USAGE);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let own_keys = [
        ("reporter", "db_thread_cnt"),
        ("reporter", "stats_file"),
        ("reporter", "history_retention_hours"),
        ("reporter", "decision_retention_hours"),
    ];
    // A stop at any moment after the reporter started flushes what it holds.
    let Some(daemon::ServerStart { mut shutdown, args, keys, mut ini }) =
        daemon::start_server(USAGE, &["writers", "stats-file"], &own_keys)?
    else {
        return Ok(());
    };
    let server = daemon::server_config(&mut ini, &args, 7779)?;
    let auth = daemon::auth_config(&mut ini, &args)?;
    daemon::log_access_summary("lars-reporter", &server, &auth);
    let mut config = ReporterConfig::new(server);
    config.auth = auth;
    // The original read [reporter] db_thread_cnt (its shipped file misspells the section).
    if let Some(writers) = args.flag("writers") {
        ini.set_by_flag("writers", "reporter", "db_thread_cnt", writers);
    }
    if let Some(path) = args.flag("stats-file") {
        ini.set_by_flag("stats-file", "reporter", "stats_file", path);
    }
    config.writers = ReporterConfig::writers_from(&ini)?;
    config.metrics = daemon::metrics_addr(&mut ini, &args)?;
    let hours = |key, default: std::time::Duration| -> Result<std::time::Duration, Box<dyn Error>> {
        let hours: u64 = ini.get("reporter", key, default.as_secs() / 3600)?;
        Ok(std::time::Duration::from_secs(hours * 3600))
    };
    config.history.retention = hours("history_retention_hours", config.history.retention)?;
    config.history.decision_retention = hours("decision_retention_hours", config.history.decision_retention)?;
    // A statistics file named by flag wins, and then [mysql] is not even read.
    let mysql = match args.flag("stats-file") {
        Some(_) => None,
        None => daemon::mysql_opts(&ini, &args)?,
    };
    let stats_file = match mysql {
        Some(_) => None,
        None => Some(ini.get("reporter", "stats_file", "lars-stats.txt".to_string())?),
    };
    if args.switch("check-config") {
        daemon::print_config("lars-reporter", &ini);
        return Ok(());
    }
    let (reporter, target) = match mysql {
        Some(opts) => {
            let target = MysqlStats::new(opts.clone()).describe();
            let mut history = MysqlHistory::new(opts.clone());
            // Only db-init changes a schema: without its tables there is no history, and it says so.
            let history: Option<Box<dyn HistoryStore>> = match history.tables_exist() {
                Ok(false) => {
                    log::warn!(
                        "no CallHistory and HostDecision tables (run `lars db-init`); \
                         call history and decisions are not kept"
                    );
                    None
                }
                Ok(true) | Err(_) => Some(Box::new(history)),
            };
            let reporter = Reporter::start_with_history(
                config,
                move |_| Box::new(MysqlStats::new(opts.clone())),
                history,
            )?;
            (reporter, target)
        }
        None => {
            let path = stats_file.unwrap_or_default();
            // Opened now, so that a file that cannot be written is a configuration error.
            let file =
                StatsFile::open(&path).map_err(|e| ini.error("reporter", "stats_file", e.to_string()))?;
            let target = format!("{} (no MySQL configured)", file.describe());
            // One writer: the file is one log.
            (Reporter::start_with_stores(config, vec![Box::new(file)])?, target)
        }
    };
    let mut status = format!("listening on {}, writing to {target}", reporter.local_addr());
    if let Some(addr) = reporter.metrics_addr() {
        status += &format!("; metrics on http://{addr}/metrics");
    }
    let counters = || {
        let mut counters = reporter.stats().counters();
        counters.extend(daemon::pool_counters());
        counters
    };
    daemon::serve(&mut shutdown, &args, &keys, &ini, &status, &counters)?;
    let unstored = reporter.shutdown();
    lars_std::logger::finish();
    if unstored > 0 {
        return Err(format!("{unstored} rows received were not stored").into());
    }
    Ok(())
}
