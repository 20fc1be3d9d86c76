//! lars-web: the web console's binary. `lars-web [--config FILE]` serves the console, as a
//! daemon like the others (the `.conf`, `LARS_*` variables and flags, the logger, systemd's
//! readiness, SIGHUP, SIGUSR1 and SIGTERM); `lars-web user add NAME --role admin|viewer`
//! creates a user.

use std::error::Error;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;

use lars_std::config::Ini;
use lars_std::daemon::{self, Args, MYSQL_KEYS, UsageError};
use lars_std::signal::Shutdown;
use lars_std::store::console;
use lars_web::ConsoleConfig;
use lars_web::auth::{Role, add_user};

const USAGE: &str = "\
usage: lars-web [--config FILE] [--listen IP:PORT] [--threads N] [--state DIR]
                [--mysql URL | --routes FILE [--stats-file FILE]] [--secure-cookies]
                [--metrics [IP:]PORT]
       lars-web user add NAME --role admin|viewer [--config FILE] [--state DIR]

The web console for lars routes, their audit log and call status. It listens on
--listen ([web] listen, default 127.0.0.1:8080) with --threads ([web] threads, 4) request
threads: put a TLS proxy in front of it to reach it from elsewhere, and give it
--secure-cookies ([web] secure_cookies) so that the session cookie is marked Secure.

Routes come from MySQL (--mysql, or a [mysql] section as in the original lars_dns.conf) or,
with none, from the route file --routes ([web] routes), with call status from --stats-file
([web] stats_file, lars-reporter's statistics file). --state DIR ([web] state, default
/var/lib/lars-web) holds the users and the key that signs sessions, made on first run.
`user add` reads the password from the first line of standard input.

--metrics ([metrics] listen; off by default) serves Prometheus metrics at
http://IP:PORT/metrics (a bare port is on 127.0.0.1).
";

/// Its own flags, besides `--config` and the others every daemon takes (`DAEMON_USAGE`).
const FLAGS: [&str; 8] = ["listen", "threads", "state", "mysql", "routes", "stats-file", "metrics", "role"];

const SWITCHES: [&str; 1] = ["secure-cookies"];

/// The `[web]` keys, each with the flag that overrides it.
const WEB_KEYS: [(&str, &str); 6] = [
    ("listen", "listen"),
    ("threads", "threads"),
    ("state", "state"),
    ("routes", "routes"),
    ("stats-file", "stats_file"),
    ("secure-cookies", "secure_cookies"),
];

/// The state directory by default: the unit's `StateDirectory`.
const DEFAULT_STATE: &str = "/var/lib/lars-web";

/// The most request threads (each is a thread of tiny_http's).
const MAX_THREADS: usize = 256;

fn main() {
    if let Err(error) = run() {
        daemon::exit_with("lars-web", error.as_ref(), USAGE);
    }
}

fn usage(message: &str) -> Box<dyn Error> {
    Box::new(UsageError(message.to_string()))
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = Args::for_daemon(&FLAGS, &SWITCHES)?;
    if args.switch("help") {
        print!("{USAGE}\n{}", daemon::DAEMON_USAGE);
        return Ok(());
    }
    let keys: Vec<(&str, &str)> =
        WEB_KEYS.iter().map(|(_, key)| ("web", *key)).chain(MYSQL_KEYS).chain(daemon::METRICS_KEYS).collect();
    match args.positional.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["user", "add", name] => {
            let ini = load(&args, &keys)?;
            let state: String = ini.get("web", "state", DEFAULT_STATE.to_string())?;
            user_add(&args, Path::new(&state), name)
        }
        [] => {
            // Before the configuration is read, so that a SIGHUP while it starts does not end it.
            let mut shutdown = Shutdown::install()?;
            let ini = load(&args, &keys)?;
            serve(&mut shutdown, &args, &keys, ini)
        }
        _ => Err(usage("unknown command (the commands are `user add NAME --role ROLE` and none)")),
    }
}

/// The file, the environment and the flags over them; the logger started.
fn load(args: &Args, keys: &[(&str, &str)]) -> Result<Ini, Box<dyn Error>> {
    let mut ini = daemon::load_config_without_pool(args, keys)?;
    for (flag, key) in WEB_KEYS {
        if flag == "secure-cookies" {
            if args.switch(flag) {
                ini.set_by_flag(flag, "web", key, "true");
            }
        } else if let Some(value) = args.flag(flag) {
            ini.set_by_flag(flag, "web", key, value);
        }
    }
    Ok(ini)
}

fn user_add(args: &Args, state: &Path, name: &str) -> Result<(), Box<dyn Error>> {
    let role = args.flag("role").ok_or_else(|| usage("user add needs --role admin|viewer"))?;
    let role = Role::parse(role).ok_or_else(|| usage(&format!("--role: `{role}` is not admin or viewer")))?;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // A prompt for the person at the terminal, not a log line.
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "password for {name} (one line): ");
        let _ = stderr.flush();
    }
    let mut password = String::new();
    stdin.lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    add_user(state, name, role, password)?;
    println!("user {name} ({}) saved in {}", role.name(), state.join("users").display());
    Ok(())
}

/// Where the console's routes are (`Opts`: the MySQL driver's options, as lars-std gives them).
enum Store<Opts> {
    Mysql(Opts),
    File { routes: String, stats: Option<String> },
}

fn serve(
    shutdown: &mut Shutdown,
    args: &Args,
    keys: &[(&str, &str)],
    mut ini: Ini,
) -> Result<(), Box<dyn Error>> {
    let state: String = ini.get("web", "state", DEFAULT_STATE.to_string())?;
    let mut config = ConsoleConfig::new(&state);
    config.listen = ini.get("web", "listen", config.listen)?;
    config.threads = ini.get("web", "threads", config.threads)?;
    if !(1..=MAX_THREADS).contains(&config.threads) {
        return Err(ini.error("web", "threads", format!("must be from 1 to {MAX_THREADS}")).into());
    }
    config.secure_cookies = ini.get("web", "secure_cookies", false)?;
    config.metrics = daemon::metrics_addr(&mut ini, args)?;
    // --routes wins, and then [mysql] is not even read.
    let mysql = match args.flag("routes") {
        Some(_) => None,
        None => daemon::mysql_opts(&ini, args)?,
    };
    let store = match mysql {
        Some(opts) => Store::Mysql(opts),
        None => {
            let routes = ini.get_str("web", "routes").filter(|path| !path.is_empty()).map(str::to_string);
            let routes = routes.ok_or_else(|| {
                ini.error(
                    "web",
                    "routes",
                    "no store: give [mysql] (or --mysql URL), or a route file ([web] routes, --routes FILE)",
                )
            })?;
            let stats = ini.get_str("web", "stats_file").filter(|path| !path.is_empty()).map(str::to_string);
            Store::File { routes, stats }
        }
    };
    if args.switch("check-config") {
        daemon::print_config("lars-web", &ini);
        return Ok(());
    }
    let store = match store {
        Store::Mysql(opts) => console::open_mysql(opts),
        Store::File { routes, stats } => {
            console::open(None, Some(Path::new(&routes)), stats.as_deref().map(Path::new))?
        }
    };
    let source = store.describe_store();
    let running = lars_web::start(&config, store)?;
    let addr: SocketAddr = running.addr();
    let mut status = format!("listening on {addr}, console at http://{addr}/, routes from {source}");
    if let Some(metrics) = running.metrics_addr() {
        status += &format!("; metrics on http://{metrics}/metrics");
    }
    if !Path::new(&state).join("users").exists() {
        log::warn!(
            "no user exists yet in {state}: create one with `lars-web user add NAME --role admin` \
             (with the same --config or --state)"
        );
    }
    let counters = || running.stats().counters();
    daemon::serve(shutdown, args, keys, &ini, &status, &counters)?;
    drop(running);
    lars_std::logger::finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{FLAGS, SWITCHES, USAGE};

    /// Every flag the usage text offers is accepted, and every accepted flag is documented
    /// (`--config` is one of every daemon's flags, the rest of which `DAEMON_USAGE` shows).
    #[test]
    fn usage_and_accepted_flags_agree() {
        let documented = lars_std::daemon::usage_flags(USAGE);
        let mut accepted: Vec<&str> = FLAGS.iter().chain(&SWITCHES).chain(&["config"]).copied().collect();
        accepted.sort_unstable();
        assert_eq!(documented, accepted);
    }
}
