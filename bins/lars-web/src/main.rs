//! lars-web: the web console's binary. `lars-web --mysql URL` (or `--routes FILE`) serves the
//! console; `lars-web user add NAME --role admin|viewer` creates a user.

use std::error::Error;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lars_std::daemon::{self, Args, UsageError};
use lars_web::ConsoleConfig;
use lars_web::auth::{Role, add_user};

const USAGE: &str = "\
usage: lars-web [--mysql URL | --routes FILE [--stats-file FILE]] [--listen IP:PORT] [--state DIR]
                [--secure-cookies]
       lars-web user add NAME --role admin|viewer [--state DIR]

The web console for lars routes, their audit log and call status. It listens on
127.0.0.1:8080 by default: put a TLS proxy in front of it to reach it from elsewhere.
--state DIR (default /var/lib/lars-web) holds the users and the key that signs sessions,
made on first run. `user add` reads the password from the first line of standard input.
--secure-cookies marks the session cookie Secure (behind a TLS proxy).
";

const FLAGS: [&str; 6] = ["mysql", "routes", "stats-file", "listen", "state", "role"];

const SWITCHES: [&str; 2] = ["help", "secure-cookies"];

fn main() {
    if let Err(error) = run() {
        daemon::exit_with("lars-web", error.as_ref(), USAGE);
    }
}

fn usage(message: &str) -> Box<dyn Error> {
    Box::new(UsageError(message.to_string()))
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = Args::from_env(&FLAGS, &SWITCHES)?;
    if args.switch("help") {
        print!("{USAGE}");
        return Ok(());
    }
    let state = PathBuf::from(args.flag("state").unwrap_or("/var/lib/lars-web"));
    match args.positional.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["user", "add", name] => {
            let role = args.flag("role").ok_or_else(|| usage("user add needs --role admin|viewer"))?;
            let role = Role::parse(role)
                .ok_or_else(|| usage(&format!("--role: `{role}` is not admin or viewer")))?;
            eprintln!("password for {name} (one line on standard input):");
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            add_user(&state, name, role, password)?;
            println!("user {name} ({}) saved in {}", role.name(), state.join("users").display());
            Ok(())
        }
        [] => serve(&args, &state),
        _ => Err(usage("unknown command")),
    }
}

fn serve(args: &Args, state: &Path) -> Result<(), Box<dyn Error>> {
    // The store's warnings go through lars's logger, as the daemons' do.
    lars_std::logger::init("lars-web", lars_std::logger::Settings::default());
    let mut config = ConsoleConfig::new(state);
    config.secure_cookies = args.switch("secure-cookies");
    if let Some(listen) = args.flag("listen") {
        config.listen = listen
            .parse::<SocketAddr>()
            .map_err(|_| usage(&format!("--listen: `{listen}` is not ip:port")))?;
    }
    let store = lars_std::store::console::open(
        args.flag("mysql"),
        args.flag("routes").map(Path::new),
        args.flag("stats-file").map(Path::new),
    )
    .map_err(|e| usage(&e.to_string()))?;
    let running = lars_web::start(&config, store)?;
    eprintln!("lars-web: listening on http://{}/", running.addr());
    running.wait();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{FLAGS, SWITCHES, USAGE};

    /// Every flag the usage text offers is accepted, and every accepted flag is documented.
    #[test]
    fn usage_and_accepted_flags_agree() {
        let mut documented: Vec<&str> = USAGE
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter_map(|word| word.strip_prefix("--"))
            .filter(|flag| !flag.is_empty())
            .collect();
        documented.sort_unstable();
        documented.dedup();
        let mut accepted: Vec<&str> =
            FLAGS.iter().chain(&SWITCHES).copied().filter(|s| *s != "help").collect();
        accepted.sort_unstable();
        assert_eq!(documented, accepted);
    }
}
