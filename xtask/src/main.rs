//! xtask: the project's tasks, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! - `test`: every gate CI runs, in order, with a summary at the end.
//! - `bench`: the benchmarks, printing figures and writing JSON under `target/bench/`.
//! - `fuzz`: the cargo-fuzz targets in `fuzz/`, each for a given time (`fuzz.rs`).
// xtask times its steps and waits for servers: wall time is the point.
#![allow(clippy::disallowed_methods)]

mod clients;
mod command;
mod demo;
mod dist;
mod firmware;
mod fuzz;
mod mysql;
// Shared with lars-tests, which xtask does not depend on (it depends on nothing of lars).
#[allow(unreachable_pub)]
#[path = "../../tests/src/schema.rs"]
mod schema;
mod setup;
#[allow(unreachable_pub)]
#[path = "../../tests/src/spinner.rs"]
mod spinner;
mod system_bench;
#[cfg(test)]
mod tidy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  demo [--mysql URL]   the whole system on loopback: route file by default, or MySQL
  db-init [URL]        create or upgrade the lars_dns schema (default LARS_MYSQL_URL + /lars_dns)
  setup   install what the tests need and this machine lacks (rustup parts, Debian
          packages as root, cbindgen, cargo-fuzz, defmt-print); `test` does it first
  test    fmt check, clippy -D warnings, the alert rules' promtool tests, workspace tests
          (with MySQL), the pool's loom model, no_std builds, the firmware in QEMU, the client
          libraries, the Debian packages installed into a throwaway root, a short fuzz pass
  dist [--debug | --check]
          Debian packages of lars-dns, lars-reporter, lars-agent and the lars CLI (units,
          /etc/lars/*.conf, the MariaDB schema) in target/debian/; --check installs debug
          builds of them into a throwaway root and starts them (part of `test`)
  firmware [--dhcp] [--qemu]
          build the gateway firmware (static address, or DHCP); boot it in QEMU against
          real daemons
  test-clients [c|cpp|python|java]
          only the client libraries' gates (part of `test`)
  size    flash and static RAM of the firmware (target/bench/firmware.json)
  fuzz [--seconds N] [TARGET...]
          build the cargo-fuzz targets in fuzz/ and run each for N seconds (default 60):
          frame, bodies, round_trip, agent, route_file, ini; `test` runs a short pass
  bench [core|echo|daemons|hostile|system|clients|web]
          core micro benchmarks and the process-wide pool, the reactor echo benchmark,
          lars-dns and lars-reporter on MariaDB, hostile peers and load (a flood, half-sent
          headers and frames, 10,000 agents on 100,000 routes, the agent under a flood), the
          system benchmark (on MariaDB), the C, C++, Python and Java clients beside the Rust
          one, and the console's service list at 100,000 routes (on MariaDB); figures in
          target/bench/*.json
";

/// The embedded targets every no_std crate must build for: thumbv6m has no compare-and-swap,
/// thumbv7em is the gateway firmware's.
const NO_STD_TARGETS: [&str; 2] = ["thumbv7em-none-eabihf", "thumbv6m-none-eabi"];
/// `lars-nostd-check` instantiates the generic agent and policies, which a plain library build
/// of lars-core would not compile.
const NO_STD_CRATES: [&str; 3] = ["lars-core", "lars-embedded", "lars-nostd-check"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("setup") => setup::ensure(!mysql::reachable()),
        Some("bench") => bench(&args[1..]),
        Some("test-clients") => clients::test(&args[1..]),
        Some("demo") => demo::demo(&args[1..]),
        Some("dist") => dist::dist(&args[1..]),
        Some("db-init") => db_init(&args[1..]),
        Some("firmware") => firmware::firmware(&args[1..]),
        Some("size") => firmware::size(),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("help" | "-h" | "--help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask lives one level below it.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits inside the workspace").to_path_buf()
}

fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.args(args).current_dir(root());
    command
}

enum Outcome {
    Passed,
    Failed(String),
    NotRun(String),
}

struct Step {
    name: String,
    outcome: Outcome,
    took: Duration,
}

/// Runs the gates in order. A failed gate does not stop the later ones (so one run shows every
/// problem), except that the tests never run without MySQL.
fn test() -> Result<(), String> {
    let mut steps = Vec::new();
    let mut totals = TestTotals::default();
    let run = |steps: &mut Vec<Step>, name: &str, mut command: Command| {
        println!("\n==> {name}");
        let start = Instant::now();
        let outcome = match command.status() {
            Ok(status) if status.success() => Outcome::Passed,
            Ok(status) => Outcome::Failed(format!("exited with {status}")),
            Err(e) => Outcome::Failed(format!("could not start: {e}")),
        };
        steps.push(Step { name: name.to_string(), outcome, took: start.elapsed() });
    };

    println!("\n==> setup");
    let start = Instant::now();
    let outcome = setup::ensure(!mysql::reachable()).map_or_else(
        |message| {
            // Said now, not only in the summary: the later steps may fail for it.
            eprintln!("xtask: {message}");
            Outcome::Failed(message)
        },
        |()| Outcome::Passed,
    );
    steps.push(Step { name: "setup (what this machine lacked)".into(), outcome, took: start.elapsed() });

    run(&mut steps, "fmt", cargo(&["fmt", "--all", "--check"]));
    // fuzz/ is a workspace of its own, which `--all` does not reach.
    run(&mut steps, "fmt fuzz/", cargo(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"]));
    // The default members are the host crates; the MCU-only crates get their own builds below.
    run(&mut steps, "clippy", cargo(&["clippy", "--all-targets", "--", "-D", "warnings"]));
    // Broken intra-doc links and malformed doc comments fail here, not on docs.rs.
    let mut docs = cargo(&["doc", "--no-deps"]);
    docs.env("RUSTDOCFLAGS", "-D warnings");
    run(&mut steps, "docs (-D warnings)", docs);
    // Alone, lars-agent and lars-std build without the `mysql` feature that the others turn on.
    run(
        &mut steps,
        "clippy lars-std and lars-agent without MySQL",
        cargo(&["clippy", "-p", "lars-std", "-p", "lars-agent", "--all-targets", "--", "-D", "warnings"]),
    );

    // The shipped alert rules, each pinned by a unit test of its own (dist/prometheus/).
    let mut promtool = Command::new("promtool");
    promtool.args(["test", "rules", "lars-alerts.test.yml"]).current_dir(root().join("dist/prometheus"));
    run(&mut steps, "promtool test rules (dist/prometheus/lars-alerts.yml)", promtool);

    println!("\n==> mysql");
    let start = Instant::now();
    match mysql::ensure() {
        Ok(server) => {
            println!("MySQL for the tests: {}", server.url);
            steps.push(Step {
                name: format!("mysql ({})", server.origin),
                outcome: Outcome::Passed,
                took: start.elapsed(),
            });
            // Every test binary runs even when one fails, so one run shows every problem.
            let mut tests = cargo(&["test", "--no-fail-fast"]);
            tests.env("LARS_MYSQL_URL", &server.url);
            println!("\n==> workspace tests");
            let start = Instant::now();
            let outcome = match run_counting_tests(tests, &mut totals) {
                Ok(true) => Outcome::Passed,
                Ok(false) => Outcome::Failed("some tests failed".into()),
                Err(e) => Outcome::Failed(e),
            };
            steps.push(Step { name: "workspace tests".into(), outcome, took: start.elapsed() });
            drop(server);
        }
        Err(message) => {
            eprintln!("{message}");
            steps.push(Step {
                name: "mysql".into(),
                outcome: Outcome::Failed(message),
                took: start.elapsed(),
            });
            steps.push(Step {
                name: "workspace tests".into(),
                outcome: Outcome::NotRun("no MySQL to test against".into()),
                took: Duration::ZERO,
            });
        }
    }

    // The pool's model test: lars-core rebuilt over loom's atomics (its own target folder, as
    // `--cfg loom` rebuilds every dependency), exploring the magazines' interleavings.
    println!("\n==> loom model of the pool");
    let start = Instant::now();
    let mut loom = cargo(&["test", "-p", "lars-core", "--lib", "pool::loom_model"]);
    loom.env("RUSTFLAGS", "--cfg loom").env("CARGO_TARGET_DIR", root().join("target/loom"));
    let outcome = match run_counting_tests(loom, &mut totals) {
        Ok(true) => Outcome::Passed,
        Ok(false) => Outcome::Failed("the model found a failing interleaving".into()),
        Err(e) => Outcome::Failed(e),
    };
    steps.push(Step { name: "loom model of the pool".into(), outcome, took: start.elapsed() });

    // A short pass of every fuzz target, built unoptimised to build fast: the committed
    // regressions replayed, then a few seconds of new inputs each.
    let name = format!("fuzz, {} s per target", fuzz::SHORT_PASS_SECONDS);
    println!("\n==> {name}");
    let start = Instant::now();
    let outcome = fuzz::run(&fuzz::TARGETS, fuzz::SHORT_PASS_SECONDS, fuzz::Build::Dev)
        .map_or_else(Outcome::Failed, |()| Outcome::Passed);
    steps.push(Step { name, outcome, took: start.elapsed() });

    for krate in NO_STD_CRATES {
        for target in NO_STD_TARGETS {
            run(
                &mut steps,
                &format!("no_std build {krate} {target}"),
                cargo(&["build", "-p", krate, "--target", target]),
            );
        }
    }

    // The handshake (`auth`) is off in the firmware, but it must build where it could run.
    for target in NO_STD_TARGETS {
        run(
            &mut steps,
            &format!("no_std build lars-core [auth] {target}"),
            cargo(&["build", "-p", "lars-core", "--features", "auth", "--target", target]),
        );
    }

    // Both firmware variants: the DHCP one also lints lars-embedded's `dhcp` code.
    for features in ["", "dhcp"] {
        run(
            &mut steps,
            &format!("clippy lars-firmware [{features}]"),
            cargo(&[
                "clippy",
                "-p",
                "lars-firmware",
                "--target",
                NO_STD_TARGETS[0],
                "--features",
                features,
                "--",
                "-D",
                "warnings",
            ]),
        );
    }
    // In-process steps: the firmware in QEMU, both variants, and its panic path.
    let firmware_steps: [(&str, InProcessStep); 3] = [
        ("firmware in QEMU, static address", || firmware::firmware(&["--qemu".into()])),
        ("firmware in QEMU, DHCP", || firmware::firmware(&["--qemu".into(), "--dhcp".into()])),
        ("firmware panic exits QEMU with an error", firmware::panic_exits_qemu),
    ];
    let package_steps: [(&str, InProcessStep); 1] =
        [("Debian packages: installed in a throwaway root, units verified, daemons started", dist::check)];
    for (name, step) in firmware_steps.into_iter().chain(clients::TEST_STEPS).chain(package_steps) {
        println!("\n==> {name}");
        let start = Instant::now();
        let outcome = step().map_or_else(Outcome::Failed, |()| Outcome::Passed);
        steps.push(Step { name: name.into(), outcome, took: start.elapsed() });
    }

    println!("\n==> summary");
    let mut failed = 0;
    for step in &steps {
        let (mark, detail) = match &step.outcome {
            Outcome::Passed => ("ok     ", String::new()),
            Outcome::Failed(why) => ("FAILED ", format!(": {why}")),
            Outcome::NotRun(why) => ("NOT RUN", format!(": {why}")),
        };
        if !matches!(step.outcome, Outcome::Passed) {
            failed += 1;
        }
        println!("{mark} {:>6.1}s  {}{detail}", step.took.as_secs_f64(), step.name);
    }
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    if failed == 0 { Ok(()) } else { Err(format!("{failed} of {} steps did not pass", steps.len())) }
}

/// A step that runs inside xtask rather than as a command.
type InProcessStep = fn() -> Result<(), String>;

#[derive(Default)]
struct TestTotals {
    passed: u64,
    failed: u64,
}

/// Runs `cargo test`, echoing its output and adding up its `test result:` lines.
fn run_counting_tests(mut command: Command, totals: &mut TestTotals) -> Result<bool, String> {
    let mut child = command.stdout(Stdio::piped()).spawn().map_err(|e| format!("could not start: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("read cargo test output: {e}"))?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            let count = |label: &str| {
                result
                    .split([';', '.'])
                    .find_map(|part| part.trim().strip_suffix(label)?.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            totals.passed += count("passed");
            totals.failed += count("failed");
        }
    }
    let status = child.wait().map_err(|e| format!("wait for cargo test: {e}"))?;
    Ok(status.success())
}

fn db_init(args: &[String]) -> Result<(), String> {
    let url = match args.first() {
        Some(url) => url.clone(),
        None => format!(
            "{}/lars_dns",
            std::env::var("LARS_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
        ),
    };
    let status = cargo(&["run", "-q", "-p", "lars", "--", "db-init", "--mysql", &url])
        .status()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("db-init failed: {status}")) }
}

/// Runs the benchmark suites named in `only` (`core`, `echo`, `system`), or all of them.
fn bench(only: &[String]) -> Result<(), String> {
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // (suite, package, bench target, figures): `core` is lars-core's micro benchmarks and the
    // process-wide pool as lars-std's threads use it.
    let suites = [
        ("core", "lars-core", "core", "core.json"),
        ("core", "lars-std", "pool", "pool.json"),
        ("echo", "lars-tests", "echo", "echo.json"),
        ("daemons", "lars-tests", "daemons", "daemons.json"),
        ("daemons", "lars-tests", "stats_file", "stats_file.json"),
        ("hostile", "lars-tests", "hostile", "hostile.json"),
        ("web", "lars-tests", "web", "web.json"),
        ("web", "lars-tests", "web_history", "web_history.json"),
    ];
    // The daemon and system benchmarks run on MariaDB, found or started as for the tests.
    let server =
        if wanted("daemons") || wanted("system") || wanted("web") { Some(mysql::ensure()?) } else { None };
    let mysql_url = server.as_ref().map(|s| s.url.clone()).unwrap_or_default();
    for (_, package, bench, json) in suites.into_iter().filter(|(suite, ..)| wanted(suite)) {
        println!("\n==> {package} bench {bench}");
        let status = cargo(&["bench", "-p", package, "--bench", bench])
            .env("LARS_BENCH_OUT", root().join("target/bench").join(json))
            .env("LARS_MYSQL_URL", &mysql_url)
            .status()
            .map_err(|e| format!("could not start cargo: {e}"))?;
        if !status.success() {
            return Err(format!("{package} bench {bench} failed: {status}"));
        }
    }
    if wanted("clients") {
        clients::bench()?;
    }
    if wanted("system") { system_bench::run(&mysql_url) } else { Ok(()) }
}
