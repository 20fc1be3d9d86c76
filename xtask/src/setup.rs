//! What `cargo xtask test` needs on a machine, installed when it is missing, so that a fresh
//! clone needs nothing but `cargo xtask test`.
//!
//! Rust components and targets come from rustup. Debian packages come from `apt-get` when xtask
//! runs as root; otherwise xtask prints the one command to run and stops. A MySQL server is
//! needed only when nothing answers at `LARS_MYSQL_URL` (then `mariadb-server` provides a
//! throwaway `mariadbd`, see `mysql.rs`). `defmt-print` only makes the firmware's log readable
//! in the test output, so it is installed with cargo when missing but not required.

use std::process::{Command, Stdio};

/// The Rust components the gates use.
const COMPONENTS: [&str; 2] = ["rustfmt", "clippy"];

/// A program the gates run, and the Debian package that provides it.
struct Program {
    name: &'static str,
    package: &'static str,
    /// Why the gates need it, for the message when it cannot be installed.
    why: &'static str,
}

/// The programs the gates run.
const PROGRAMS: [Program; 2] = [
    Program { name: "qemu-system-arm", package: "qemu-system-arm", why: "boots the gateway firmware" },
    Program { name: "ip", package: "iproute2", why: "makes the firmware's private network namespace" },
];

/// Installs what is missing, or says what to run. `needs_mysql_server` asks for MariaDB too.
pub(crate) fn ensure(needs_mysql_server: bool) -> Result<(), String> {
    rust_parts()?;
    let mut packages: Vec<&str> =
        PROGRAMS.iter().filter(|p| find(p.name).is_none()).map(|p| p.package).collect();
    if needs_mysql_server && find("mariadbd").is_none() {
        packages.push("mariadb-server");
    }
    if !packages.is_empty() {
        apt_install(&packages)?;
    }
    if find("defmt-print").is_none() {
        println!("installing defmt-print (it decodes the firmware's log in the test output)");
        let installed = Command::new(cargo())
            .args(["install", "defmt-print", "--locked", "--quiet"])
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            println!("warning: `cargo install defmt-print` failed; the firmware's log stays undecoded");
        }
    }
    Ok(())
}

/// The rustup components and the no_std targets.
fn rust_parts() -> Result<(), String> {
    let Some(rustup) = find("rustup") else {
        // A toolchain without rustup: say what must be there instead of guessing.
        println!(
            "no rustup: make sure rustfmt, clippy and the targets {} are installed",
            super::NO_STD_TARGETS.join(", ")
        );
        return Ok(());
    };
    let listed = |args: &[&str]| -> String {
        Command::new(&rustup)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let components = listed(&["component", "list", "--installed"]);
    let missing: Vec<&str> =
        COMPONENTS.into_iter().filter(|c| !components.lines().any(|line| line.starts_with(c))).collect();
    if !missing.is_empty() {
        run(Command::new(&rustup).args(["component", "add"]).args(&missing))?;
    }
    let targets = listed(&["target", "list", "--installed"]);
    let missing: Vec<&str> =
        super::NO_STD_TARGETS.into_iter().filter(|t| !targets.lines().any(|line| line == *t)).collect();
    if !missing.is_empty() {
        run(Command::new(&rustup).args(["target", "add"]).args(&missing))?;
    }
    Ok(())
}

fn apt_install(packages: &[&str]) -> Result<(), String> {
    let command = format!("apt-get install -y --no-install-recommends {}", packages.join(" "));
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root || find("apt-get").is_none() {
        let why: Vec<String> = PROGRAMS
            .iter()
            .filter(|p| packages.contains(&p.package))
            .map(|p| format!("{} {}", p.name, p.why))
            .collect();
        return Err(format!(
            "missing Debian packages ({}). Install them, then run `cargo xtask test` again:\n    sudo {command}",
            if why.is_empty() { "a MySQL server for the tests".to_string() } else { why.join("; ") }
        ));
    }
    println!("installing {}", packages.join(", "));
    run(Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{shown} exited with {status}")),
        Err(e) => Err(format!("{shown} could not start: {e}")),
    }
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The program `name` on `PATH` (or in the sbin folders, where Debian puts daemons).
pub(crate) fn find(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/sbin"].map(std::path::PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
