//! lars-reporter: stores the call statistics lars agents send.

use std::error::Error;

use lars_std::config::ReactorConfig;
use lars_std::daemon::{self, AUTH_KEYS, Args, MYSQL_KEYS};
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::signal::Shutdown;
use lars_std::store::StatsStore;
use lars_std::store::file::StatsFile;
use lars_std::store::mysql::MysqlStats;

const USAGE: &str = "\
usage: lars-reporter [--config FILE] [--listen IP:PORT] [--threads N] [--max-conn N]
                     [--writers N] [--mysql URL | --stats-file FILE]
                     [--allow CIDR,...] [--secret-file FILE [--allow-lars]]

Receives call statistics on TCP (default 127.0.0.1:7779) and writes them in batches to MySQL's
ServerCallStatus (--mysql, or a [mysql] section as in the original lars_reporter.conf), or,
with no MySQL, to a statistics file (--stats-file, [reporter] stats_file; default
lars-stats.txt).

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
    // First, so that a SIGHUP while it starts does not end it; a stop at any moment after
    // the reporter started flushes what it holds.
    let mut shutdown = Shutdown::install()?;
    let args = Args::for_daemon(
        &["listen", "threads", "max-conn", "writers", "mysql", "stats-file", "allow", "secret-file"],
        &["allow-lars"],
    )?;
    if args.switch("help") {
        print!("{USAGE}\n{}", daemon::DAEMON_USAGE);
        return Ok(());
    }
    let keys: Vec<(&str, &str)> = ReactorConfig::KEYS
        .iter()
        .chain(&MYSQL_KEYS)
        .chain(&AUTH_KEYS)
        .copied()
        .chain([("reporter", "db_thread_cnt"), ("reporter", "stats_file")])
        .collect();
    let args = args.flags_only()?;
    let mut ini = daemon::load_config(&args, &keys)?;
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
    config.writers = ini.get("reporter", "db_thread_cnt", 3usize)?;
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
            (Reporter::start(config, move |_| Box::new(MysqlStats::new(opts.clone())))?, target)
        }
        None => {
            let path = stats_file.unwrap_or_default();
            // One writer: a single file is rewritten after each batch.
            config.writers = 1;
            let target = format!("{} (no MySQL configured)", StatsFile::new(&path).describe());
            (Reporter::start(config, move |_| Box::new(StatsFile::new(path.clone())))?, target)
        }
    };
    let status = format!("listening on {}, writing to {target}", reporter.local_addr());
    let counters = || {
        let mut counters = reporter.stats().counters();
        counters.extend(daemon::pool_counters());
        counters
    };
    daemon::serve(&mut shutdown, &args, &keys, &ini, &status, &counters)?;
    reporter.shutdown();
    lars_std::logger::finish();
    Ok(())
}
