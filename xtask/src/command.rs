//! What several tasks share: running a command and saying how it failed, and the release build
//! that the benchmarks measure (the daemons and the CLI, and what else a bench needs).

use std::process::Command;

use super::cargo;

/// Runs `command` to its end; an error names it and says how it failed.
pub(crate) fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{shown} exited with {status}")),
        Err(e) => Err(format!("{shown} could not start: {e}")),
    }
}

/// Builds lars-dns, lars-reporter, lars-agent, lars and the `extra` packages in release, as
/// the benchmarks run them from `target/release`.
pub(crate) fn build_release(extra: &[&str]) -> Result<(), String> {
    let mut args = vec!["build", "--release", "-q"];
    for package in ["lars-dns", "lars-reporter", "lars-agent", "lars"].iter().chain(extra) {
        args.extend(["-p", package]);
    }
    let status = cargo(&args).status().map_err(|e| format!("release build: could not start: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("release build: {status}")) }
}
