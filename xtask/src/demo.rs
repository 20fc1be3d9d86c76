//! `cargo xtask demo`: the whole system on loopback, on its embedded defaults (route file,
//! statistics file) or, with `--mysql URL`, on MySQL, with the web console on the same store
//! and a demo admin whose password it prints.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{cargo, root};

/// The daemons, stopped with SIGTERM when dropped (as an operator would).
pub(crate) struct Daemons(pub(crate) Vec<(String, Child)>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for (name, child) in &mut self.0 {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    println!("stopped {name} ({status})");
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// lars-dns, lars-reporter and lars-agent on free loopback ports.
pub(crate) struct Cluster {
    pub(crate) daemons: Daemons,
    /// The agent's API endpoints, comma-separated, for `lars --agent`.
    pub(crate) api: String,
}

impl Cluster {
    /// Starts the daemons from the binaries in `bins`, lars-dns and lars-reporter with their
    /// store flags, then the agent pointing at both. `quiet` silences their logs.
    pub(crate) fn start(
        bins: &std::path::Path,
        dns_store: &[&str],
        reporter_store: &[&str],
        quiet: bool,
    ) -> Result<Cluster, String> {
        let (dns_port, reporter_port) = (free_port()?, free_port()?);
        let api: Vec<String> =
            (0..3).map(|_| free_udp_port().map(|p| format!("127.0.0.1:{p}"))).collect::<Result<_, _>>()?;
        let api = api.join(",");
        let (dns_addr, reporter_addr) =
            (format!("127.0.0.1:{dns_port}"), format!("127.0.0.1:{reporter_port}"));
        let mut daemons = Daemons(Vec::new());
        let mut spawn = |name: &str, args: &[&str]| -> Result<(), String> {
            let mut command = Command::new(bins.join(name));
            command.args(args);
            if quiet {
                command.stderr(Stdio::null());
            }
            let child = command.spawn().map_err(|e| format!("start {name}: {e}"))?;
            daemons.0.push((name.to_string(), child));
            Ok(())
        };
        spawn("lars-dns", &[&["--listen", dns_addr.as_str(), "--threads", "2"][..], dns_store].concat())?;
        wait_for_tcp("lars-dns", dns_port)?;
        spawn(
            "lars-reporter",
            &[&["--listen", reporter_addr.as_str(), "--threads", "2"][..], reporter_store].concat(),
        )?;
        wait_for_tcp("lars-reporter", reporter_port)?;
        spawn("lars-agent", &["--dns", &dns_addr, "--reporter", &reporter_addr, "--api", &api])?;
        Ok(Cluster { daemons, api })
    }

    /// The process id of daemon `name`.
    pub(crate) fn pid(&self, name: &str) -> Option<u32> {
        self.daemons.0.iter().find(|(n, _)| n == name).map(|(_, child)| child.id())
    }
}

/// Builds the host binaries of `packages` (debug profile, as the runs use them).
pub(crate) fn build_binaries(packages: &[&str]) -> Result<(), String> {
    println!("==> building {}", packages.join(", "));
    let mut args = vec!["build", "-q"];
    for package in packages {
        args.extend(["-p", package]);
    }
    let built = cargo(&args).status().map_err(|e| format!("cargo: {e}"))?;
    if built.success() { Ok(()) } else { Err(format!("{} did not build", packages.join(", "))) }
}

/// A run's directory under `target/`, with its route file path and a statistics file that
/// starts empty.
pub(crate) struct RunFiles {
    pub(crate) dir: std::path::PathBuf,
    pub(crate) routes: std::path::PathBuf,
    pub(crate) stats: std::path::PathBuf,
}

impl RunFiles {
    pub(crate) fn fresh(name: &str) -> Result<RunFiles, String> {
        let dir = root().join("target").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (routes, stats) = (dir.join("routes.conf"), dir.join("stats.txt"));
        let _ = std::fs::remove_file(&stats);
        Ok(RunFiles { dir, routes, stats })
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// A UDP port nobody holds now, for the agent's API: a free TCP port may be a busy UDP one.
pub(crate) fn free_udp_port() -> Result<u16, String> {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free UDP port: {e}"))
}

pub(crate) fn wait_for_tcp(name: &str, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{name} did not start listening on port {port}"))
}

fn bin(name: &str) -> std::path::PathBuf {
    root().join("target/debug").join(name)
}

fn run_lars(args: &[&str]) -> Result<(), String> {
    let status = Command::new(bin("lars")).args(args).status().map_err(|e| format!("run lars: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`lars {}` failed: {status}", args.join(" "))) }
}

pub(crate) fn demo(args: &[String]) -> Result<(), String> {
    let mysql = match args {
        [] => None,
        [flag, url] if flag == "--mysql" => Some(url.clone()),
        _ => return Err("usage: cargo xtask demo [--mysql URL]".into()),
    };
    build_binaries(&["lars-dns", "lars-reporter", "lars-agent", "lars", "lars-web"])?;
    let RunFiles { dir, routes, stats } = RunFiles::fresh("demo")?;
    let hosts = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
    let (dns_store, reporter_store): (Vec<String>, Vec<String>) = match &mysql {
        None => {
            std::fs::write(&routes, sample_routes(&hosts))
                .map_err(|e| format!("{}: {e}", routes.display()))?;
            println!("==> route file {} (no MySQL needed)", routes.display());
            (
                vec!["--routes".into(), routes.display().to_string()],
                vec!["--stats-file".into(), stats.display().to_string()],
            )
        }
        Some(url) => {
            println!("==> MySQL at {url}");
            run_lars(&["db-init", "--mysql", url])?;
            for host in &hosts[..] {
                let _ = Command::new(bin("lars"))
                    .args(["route", "del", "1", "1", host, "--mysql", url])
                    .stderr(Stdio::null())
                    .status();
                run_lars(&["route", "add", "1", "1", host, "--mysql", url])?;
            }
            (vec!["--mysql".into(), url.clone()], vec!["--mysql".into(), url.clone()])
        }
    };
    let cluster =
        Cluster::start(&root().join("target/debug"), &strs(&dns_store), &strs(&reporter_store), false)?;
    let api = cluster.api.clone();

    println!("\n==> lars get-route 1 1");
    run_lars(&["get-route", "1", "1", "--agent", &api])?;
    println!("\n==> lars simulate 1 1: 3000 calls; every call to {} fails", hosts[1]);
    println!("    It is marked overloaded after 15 failures in a row, then only gets a probe call");
    println!("    every 11th pick; each probe fails again, so it stays overloaded.");
    let fail = format!("{}=1.0", hosts[1]);
    run_lars(&[
        "simulate",
        "1",
        "1",
        "--count",
        "3000",
        "--fail",
        &fail,
        "--interval-ms",
        "0",
        "--agent",
        &api,
    ])?;
    std::thread::sleep(Duration::from_millis(1500));
    println!(
        "\n==> what lars-reporter stored (per host: successes and failures since its last state change, as\n    the original's ServerCallStatus holds them; the 15 failures that made it overloaded came before)"
    );
    match &mysql {
        None => run_lars(&["status", "--stats-file", &stats.display().to_string()])?,
        Some(url) => run_lars(&["status", "--mysql", url])?,
    }
    let mut cluster = cluster;
    let console_store = match &mysql {
        None => vec![
            "--routes".into(),
            routes.display().to_string(),
            "--stats-file".into(),
            stats.display().to_string(),
        ],
        Some(url) => vec!["--mysql".into(), url.clone()],
    };
    let url = start_console(&mut cluster.daemons, &dir, &strs(&console_store))?;
    println!("\n==> the web console: {url}");
    println!("    sign in as `demo` with the password printed above");
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        println!("    press Enter to stop everything");
        let _ = std::io::stdin().read_line(&mut String::new());
    }
    println!("\n==> stopping");
    drop(cluster);
    println!("demo done: files in {}", dir.display());
    Ok(())
}

/// Starts lars-web on a free port over `store` (its flags), with a new state directory and a
/// demo admin whose random password is printed; returns the URL.
fn start_console(daemons: &mut Daemons, dir: &std::path::Path, store: &[&str]) -> Result<String, String> {
    use std::io::{Read as _, Write as _};
    let state = dir.join("web-state");
    let _ = std::fs::remove_dir_all(&state);
    let mut random = [0u8; 9];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let state_flag = state.display().to_string();
    let mut add = Command::new(bin("lars-web"))
        .args(["user", "add", "demo", "--role", "admin", "--state", &state_flag])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run lars-web user add: {e}"))?;
    add.stdin
        .take()
        .ok_or("no stdin")?
        .write_all(format!("{password}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let added = add.wait().map_err(|e| e.to_string())?;
    if !added.success() {
        return Err(format!("lars-web user add failed: {added}"));
    }
    println!("==> demo admin `demo`, password {password}");
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(bin("lars-web"))
        .args([&["--listen", listen.as_str(), "--state", &state_flag][..], store].concat())
        .spawn()
        .map_err(|e| format!("start lars-web: {e}"))?;
    daemons.0.push(("lars-web".into(), child));
    wait_for_tcp("lars-web", port)?;
    Ok(format!("http://{listen}/"))
}

fn strs(words: &[String]) -> Vec<&str> {
    words.iter().map(String::as_str).collect()
}

fn sample_routes(hosts: &[&str]) -> String {
    let mut text = String::from("# lars demo routes: modid cmdid host:port [weight]\n");
    for host in hosts {
        text.push_str(&format!("1 1 {host}\n"));
    }
    text.push_str("2 1 127.0.0.1:9101\n2 1 127.0.0.1:9102 3\n");
    text
}
