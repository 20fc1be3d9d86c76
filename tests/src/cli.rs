//! The `lars` command-line tool as an operator runs it, for tests in this crate (which cannot
//! name another package's `CARGO_BIN_EXE_*`): [`lars_exe`] builds the binary from the
//! current sources once per test process, and [`lars`] runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The path of a `lars` binary built from the sources as they are now.
///
/// The first call runs `cargo build -p lars --bin lars` (the `cargo` that runs the tests, from
/// `$CARGO`) and takes the executable's path from cargo's own report of what it built, so the
/// binary is never a stale one left in the target folder, whatever the target folder or
/// profile. A failed build fails the test, with cargo's output.
pub fn lars_exe() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_bin("lars", "lars"))
}

/// Builds `bin` of `package` and returns the executable cargo reports.
fn build_bin(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin, "--message-format=json-render-diagnostics"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", cargo.to_string_lossy()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cargo build -p {package} --bin {bin} failed ({}):\n{stderr}",
        output.status
    );
    let built = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["target"]["name"] == bin)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from));
    let exe = built.unwrap_or_else(|| panic!("cargo built no executable named {bin}:\n{stderr}"));
    assert!(exe.is_file(), "cargo reported {} but it is not there", exe.display());
    exe
}

/// Runs `lars` with `args` and waits for it; its output and exit status, whatever they are.
pub fn lars(args: &[&str]) -> Output {
    Command::new(lars_exe())
        .args(args)
        .env_remove("LARS_LOG")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", lars_exe().display()))
}

/// Runs `lars` with `args`, fails the test unless it exits 0, and returns its standard output.
pub fn lars_ok(args: &[&str]) -> String {
    let output = lars(args);
    assert!(
        output.status.success(),
        "lars {} exited {}:\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
