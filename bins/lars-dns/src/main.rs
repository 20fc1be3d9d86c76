//! lars-dns: serves routes to lars agents and pushes their changes.

use std::error::Error;

use lars_std::config::ReactorConfig;
use lars_std::daemon::{self, Args, MYSQL_KEYS};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::signal::Shutdown;
use lars_std::store::RouteStore;
use lars_std::store::file::RouteFile;
use lars_std::store::mysql::{self, MysqlRoutes};

const USAGE: &str = "\
usage: lars-dns [--config FILE] [--listen IP:PORT] [--threads N] [--max-conn N]
                [--routes FILE | --mysql URL]

Serves routes on TCP (default 127.0.0.1:7778) from the route file (default routes.conf; the
embedded default) or from MySQL (--mysql, or a [mysql] section in the config, as in the
original lars_dns.conf). SIGINT or SIGTERM stops it cleanly.
";

fn main() {
    if let Err(error) = run() {
        daemon::exit_with("lars-dns", error.as_ref(), USAGE);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(
        std::env::args().skip(1),
        &["config", "listen", "threads", "max-conn", "routes", "mysql"],
        &["help"],
    )?;
    if args.switch("help") {
        print!("{USAGE}");
        return Ok(());
    }
    let keys: Vec<(&str, &str)> =
        ReactorConfig::KEYS.iter().chain(&MYSQL_KEYS).copied().chain([("dns", "routes")]).collect();
    let mut ini = daemon::load_config(&args, &keys)?;
    let server = daemon::server_config(&mut ini, &args, 7778)?;
    let store: Box<dyn RouteStore> = match (args.flag("routes"), daemon::mysql_url(&ini, &args)?) {
        (None, Some(url)) => Box::new(MysqlRoutes::new(mysql::opts(&url)?)),
        (routes, _) => {
            let path = match routes {
                Some(path) => path.to_string(),
                None => ini.get("dns", "routes", "routes.conf".to_string())?,
            };
            Box::new(RouteFile::new(path))
        }
    };
    let source = store.describe();
    let mut shutdown = Shutdown::install()?;
    let dns = Dns::start(DnsConfig::new(server), store)?;
    eprintln!("lars-dns: listening on {}, routes from {source}", dns.local_addr());
    shutdown.wait()?;
    eprintln!("lars-dns: shutting down");
    dns.shutdown();
    Ok(())
}
