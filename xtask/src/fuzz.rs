//! `cargo xtask fuzz [--seconds N] [TARGET...]`: builds the cargo-fuzz targets in `fuzz/` and
//! runs each for N seconds (60 by default), one after the other, then prints how many inputs
//! each executed. `cargo xtask test` runs the same with a few seconds per target.
//!
//! Each run starts from the committed inputs (`fuzz/seeds/<target>/`, hand-written starting
//! points, and `fuzz/regressions/<target>/`, every input that once crashed, each also a
//! regression test in the workspace) plus what earlier runs found (`target/fuzz/corpus/`,
//! not committed; the short pass leaves it out), so known crashes are replayed before
//! anything new is tried. A crash stops the run with its input saved under
//! `target/fuzz/artifacts/<target>/` and the command that reproduces it.
//!
//! The targets are built without a sanitizer (`--sanitizer none`): lars-core's only `unsafe`
//! is its pool, which these targets do not reach, and without `-Zsanitizer` the build works
//! on the stable toolchain. `cargo-fuzz` itself comes from `cargo xtask setup`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::root;

/// Every target in `fuzz/Cargo.toml`, in the order they run.
pub(crate) const TARGETS: [&str; 6] = ["frame", "bodies", "round_trip", "agent", "route_file", "ini"];

/// Seconds per target in `cargo xtask test`'s short pass.
pub(crate) const SHORT_PASS_SECONDS: u64 = 8;

/// How the targets are built: optimised for a long run, or quickly for `cargo xtask test`'s
/// short pass (a fresh build of the optimised targets alone takes about as long as the whole
/// pass may; unoptimised, they run a few times slower, which a pass of seconds does not mind).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Build {
    Release,
    Dev,
}

/// One target's run.
struct Run {
    target: &'static str,
    executed: u64,
    seconds: f64,
}

/// `cargo xtask fuzz` with its arguments.
pub(crate) fn fuzz(args: &[String]) -> Result<(), String> {
    let usage = "usage: cargo xtask fuzz [--seconds N] [TARGET...]";
    let mut seconds = 60;
    let mut only = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().ok_or(usage)?;
                seconds =
                    value.parse().map_err(|_| format!("--seconds: `{value}` is not a number\n{usage}"))?;
            }
            name => match TARGETS.iter().find(|t| **t == name) {
                Some(target) => only.push(*target),
                None => {
                    return Err(format!(
                        "unknown fuzz target `{name}` (targets: {})\n{usage}",
                        TARGETS.join(", ")
                    ));
                }
            },
        }
    }
    if only.is_empty() {
        only = TARGETS.to_vec();
    }
    run(&only, seconds, Build::Release)
}

/// Builds the targets, then fuzzes each of `targets` for `seconds`.
pub(crate) fn run(targets: &[&'static str], seconds: u64, build: Build) -> Result<(), String> {
    if super::setup::find("cargo-fuzz").is_none() {
        return Err(
            "cargo-fuzz is not installed: run `cargo xtask setup` (or `cargo install cargo-fuzz --locked`)"
                .into(),
        );
    }
    let start = Instant::now();
    let status =
        cargo_fuzz("build", build).status().map_err(|e| format!("could not start cargo fuzz: {e}"))?;
    if !status.success() {
        return Err(format!("cargo fuzz build failed: {status}"));
    }
    println!("fuzz targets built in {:.1} s", start.elapsed().as_secs_f64());
    let mut runs = Vec::new();
    for &target in targets {
        runs.push(run_target(target, seconds, build)?);
    }
    println!("\n{:<12} {:>14} {:>10} {:>12}", "target", "inputs run", "seconds", "per second");
    for run in &runs {
        let rate = run.executed as f64 / run.seconds.max(0.001);
        println!("{:<12} {:>14} {:>10.1} {:>12.0}", run.target, run.executed, run.seconds, rate);
    }
    Ok(())
}

fn run_target(target: &'static str, seconds: u64, build: Build) -> Result<Run, String> {
    let root = root();
    // A long run keeps what it finds for the next; the short pass starts from the committed
    // inputs alone, so that it stays short however large the kept corpus grows.
    let corpus = match build {
        Build::Release => root.join("target/fuzz/corpus").join(target),
        Build::Dev => {
            let scratch = root.join("target/fuzz/short-pass").join(target);
            let _ = std::fs::remove_dir_all(&scratch);
            scratch
        }
    };
    let artifacts = root.join("target/fuzz/artifacts").join(target);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // The first folder receives what this run finds; the committed ones are only read.
    let mut folders: Vec<PathBuf> = vec![corpus];
    for kept in ["seeds", "regressions"] {
        let dir = root.join("fuzz").join(kept).join(target);
        if dir.is_dir() {
            folders.push(dir);
        }
    }
    println!("\n==> fuzz {target} for {seconds} s");
    let mut command = cargo_fuzz("run", build);
    command.arg(target).args(&folders).arg("--").args([
        format!("-max_total_time={seconds}"),
        // A single input that runs for 10 s is a hang: report it as one.
        "-timeout=10".to_string(),
        format!("-artifact_prefix={}/", artifacts.display()),
        "-print_final_stats=1".to_string(),
    ]);
    let start = Instant::now();
    let mut child =
        command.stderr(Stdio::piped()).spawn().map_err(|e| format!("could not start cargo fuzz: {e}"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut executed = None;
    for line in BufReader::new(stderr).lines() {
        let line = line.map_err(|e| format!("read cargo fuzz output: {e}"))?;
        if let Some(count) = line.strip_prefix("stat::number_of_executed_units:") {
            executed = count.trim().parse().ok();
        }
        // libFuzzer's progress, dictionary and statistics lines are many and say little
        // here; what is left is a crash's report and the closing `Done` line.
        let chatter = [
            "#",
            "\tNEW_FUNC",
            "INFO:",
            "stat::",
            "MS:",
            "\"",
            "###",
            "base unit:",
            "0x",
            "WARNING: Failed to find",
        ];
        if !chatter.iter().any(|prefix| line.starts_with(prefix)) {
            eprintln!("{line}");
        }
    }
    let status = child.wait().map_err(|e| format!("wait for cargo fuzz: {e}"))?;
    let seconds = start.elapsed().as_secs_f64();
    if !status.success() {
        let saved = newest_file(&artifacts).map_or_else(String::new, |path| {
            format!(
                "\ninput saved as {}; reproduce with\n    cd fuzz && cargo fuzz run --sanitizer none{} {target} {}",
                path.display(),
                if build == Build::Dev { " --dev" } else { "" },
                path.display()
            )
        });
        return Err(format!("fuzz target `{target}` failed ({status}){saved}"));
    }
    let executed = executed.ok_or_else(|| format!("fuzz target `{target}` printed no final stats"))?;
    Ok(Run { target, executed, seconds })
}

/// `cargo fuzz build` or `cargo fuzz run`, without a sanitizer, as `build` says.
fn cargo_fuzz(task: &str, build: Build) -> Command {
    // cargo-fuzz is a cargo subcommand; run it through the same cargo as xtask.
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.args(["fuzz", task, "--sanitizer", "none"]).current_dir(root().join("fuzz"));
    if build == Build::Dev {
        command.arg("--dev");
    }
    command
}

fn newest_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .max()
        .map(|(_, path)| path)
}
