//! What `cargo xtask test` needs on a machine, installed when it is missing, so that a fresh
//! clone needs nothing but `cargo xtask test`.
//!
//! Rust components and targets come from rustup. Debian packages come from `apt-get` when xtask
//! runs as root; otherwise xtask prints the one command to run and stops. A MySQL server is
//! needed only when nothing answers at `LARS_MYSQL_URL` (then `mariadb-server` provides a
//! throwaway `mariadbd`, see `mysql.rs`). The client libraries' gates need C and C++
//! compilers, a JDK and Python 3 with venv, and `cbindgen` (installed with cargo) to check the C
//! header. Debian's `prometheus` (with `promtool`) scrapes the daemons in the metrics tests and
//! tests the shipped alert rules. The console's browser tests need Debian's `chromium` and
//! `chromium-driver` (chromedriver). The fuzz targets need `cargo-fuzz` (installed with cargo;
//! no nightly toolchain, as they build without a sanitizer) and the C++ compiler that builds
//! libFuzzer. `defmt-print` only makes the firmware's log readable in the test output, so it is
//! installed with cargo when missing but not required.

use std::process::{Command, Stdio};

use super::command::run;

/// The Rust components the gates use.
const COMPONENTS: [&str; 2] = ["rustfmt", "clippy"];

/// A program the gates run, and the Debian packages that provide it.
struct Program {
    name: &'static str,
    package: &'static str,
    /// Why the gates need it, for the message when it cannot be installed.
    why: &'static str,
}

/// The programs the gates run.
const PROGRAMS: [Program; 13] = [
    Program { name: "qemu-system-arm", package: "qemu-system-arm", why: "boots the gateway firmware" },
    Program { name: "ip", package: "iproute2", why: "makes the firmware's private network namespace" },
    Program { name: "cc", package: "gcc libc6-dev", why: "builds the C client's test" },
    Program { name: "c++", package: "g++", why: "builds the C++ client's test" },
    Program { name: "javac", package: "openjdk-17-jdk-headless", why: "builds the Java client" },
    Program { name: "python3", package: "python3", why: "runs the Python client's test" },
    Program { name: "prometheus", package: "prometheus", why: "scrapes the daemons' metrics in the tests" },
    Program { name: "promtool", package: "prometheus", why: "tests the alert rules and lints the metrics" },
    Program { name: "dpkg-deb", package: "dpkg", why: "builds the Debian packages" },
    Program { name: "systemd-analyze", package: "systemd", why: "verifies the systemd units" },
    Program { name: "kill", package: "procps", why: "stops daemons with SIGTERM (and the units' reload)" },
    Program { name: "chromium", package: "chromium", why: "runs the web console's browser tests" },
    Program {
        name: "chromedriver",
        package: "chromium-driver",
        why: "drives Chromium in the console's tests",
    },
];

/// Cargo-installed tools: the name, whether the gates need it, and why.
const CARGO_TOOLS: [(&str, bool, &str); 3] = [
    ("cbindgen", true, "checks that bins/lars-c/include/lars.h matches the code"),
    // Built without a sanitizer, the targets need no nightly toolchain (xtask/src/fuzz.rs).
    ("cargo-fuzz", true, "builds and runs the fuzz targets in fuzz/"),
    ("defmt-print", false, "decodes the firmware's log in the test output"),
];

/// Installs what is missing, or says what to run. `needs_mysql_server` asks for MariaDB too.
pub(crate) fn ensure(needs_mysql_server: bool) -> Result<(), String> {
    rust_parts()?;
    let mut packages: Vec<&str> =
        PROGRAMS.iter().filter(|p| find(p.name).is_none()).flat_map(|p| p.package.split(' ')).collect();
    // prometheus and promtool come in one package.
    packages.dedup();
    // The Python test installs the package into a fresh virtual environment.
    let venv = Command::new("python3").args(["-c", "import ensurepip, venv"]).stderr(Stdio::null()).status();
    if !venv.is_ok_and(|s| s.success()) {
        packages.push("python3-venv");
    }
    if needs_mysql_server && find("mariadbd").is_none() {
        packages.push("mariadb-server");
    }
    if !packages.is_empty() {
        apt_install(&packages)?;
    }
    for (tool, needed, why) in CARGO_TOOLS {
        if find(tool).is_some() {
            continue;
        }
        println!("installing {tool} (it {why}); compiling it takes a few minutes");
        let installed = Command::new(cargo())
            .args(["install", tool, "--locked", "--quiet"])
            .status()
            .is_ok_and(|s| s.success());
        match (installed, needed) {
            (true, _) => {}
            (false, true) => return Err(format!("`cargo install {tool} --locked` failed; it {why}")),
            (false, false) => println!("warning: `cargo install {tool}` failed; the gates pass without it"),
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
            .filter(|p| p.package.split(' ').any(|package| packages.contains(&package)))
            .map(|p| format!("{} {}", p.name, p.why))
            .collect();
        return Err(format!(
            "missing Debian packages ({}). Install them as root, then run `cargo xtask test` again \
             (as root: the firmware's QEMU run needs a network namespace):\n    {command}",
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
