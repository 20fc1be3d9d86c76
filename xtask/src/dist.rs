//! `cargo xtask dist`: Debian packages of the daemons, the console and the CLI, made with
//! `dpkg-deb` from the binaries and each package's `bins/<name>/dist/` folder; and the gate of
//! `cargo xtask test` that installs them into a throwaway root, checks their files and units,
//! starts each daemon on its packaged configuration, and starts lars-dns, lars-reporter and
//! lars-web again on a fresh MariaDB database made from the packaged `schema.sql`.
//!
//! What a package holds comes from its folder, so a new binary needs a [`PACKAGES`] entry and
//! a folder: `*.service` files go to `/usr/lib/systemd/system/`, `*.conf` files to
//! `/etc/lars/` (as conffiles, so an operator's edits survive upgrades), files under `share/`
//! to `/usr/share/lars/`; the binary goes to `/usr/bin/`, its `--help` to
//! `/usr/share/doc/<name>/README`. The CLI's package also holds the MariaDB schema as
//! `/usr/share/lars/schema.sql`, written by `lars db-init --print-sql` from the code that
//! makes it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::command::run;
use super::schema::SCHEMA_TABLES;
use super::{cargo, root};

/// A Debian package of one binary.
struct Package {
    /// Package, binary and cargo package name.
    name: &'static str,
    /// The control file's one-line summary.
    summary: &'static str,
    /// A daemon with a systemd unit (and maintainer scripts that tell systemd about it).
    daemon: bool,
}

const PACKAGES: [Package; 5] = [
    Package { name: "lars-dns", summary: "lars-dns: serves routes to lars agents", daemon: true },
    Package {
        name: "lars-reporter",
        summary: "lars-reporter: stores the call statistics of lars agents",
        daemon: true,
    },
    Package {
        name: "lars-agent",
        summary: "lars-agent: the local load-balancing agent of lars",
        daemon: true,
    },
    Package { name: "lars", summary: "lars: the command-line client and admin tool", daemon: false },
    Package { name: "lars-web", summary: "lars-web: the lars web console", daemon: true },
];

/// The control file's maintainer: set it to the packager's address.
const MAINTAINER: &str = "lars developers <lars@lars-rs.invalid>";

const COPYRIGHT: &str = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: lars
Source: https://github.com/lars-rs/lars

Files: *
License: MIT or Apache-2.0
";

fn packages() -> impl Iterator<Item = &'static Package> {
    PACKAGES.iter()
}

/// `cargo xtask dist [--debug]`: builds the binaries (the `dist` profile: release, stripped)
/// and their packages in `target/debian/`. `--check` runs the gate instead ([`check`]).
pub(crate) fn dist(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--check") {
        return check();
    }
    let debug = args.iter().any(|a| a == "--debug");
    let profile = if debug { "dev" } else { "dist" };
    let bins = build(profile)?;
    let out = root().join("target/debian");
    let debs = build_packages(&bins, &out, !debug)?;
    for deb in &debs {
        println!("{}", deb.display());
    }
    Ok(())
}

/// Builds the packaged binaries with `profile` and returns their folder.
fn build(profile: &str) -> Result<PathBuf, String> {
    let mut command = cargo(&["build", "--profile", profile]);
    for package in packages() {
        command.args(["-p", package.name]);
    }
    run(&mut command)?;
    Ok(root().join("target").join(if profile == "dev" { "debug" } else { profile }))
}

fn output(command: &mut Command) -> Result<String, String> {
    let shown = format!("{command:?}");
    let out = command.output().map_err(|e| format!("{shown} could not start: {e}"))?;
    if !out.status.success() {
        return Err(format!("{shown} exited with {}: {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("{shown} wrote something that is not UTF-8"))
}

/// Builds every package from the binaries in `bins` into `out`; `compress` chooses xz (for
/// users) over a fast gzip (for the gate).
fn build_packages(bins: &Path, out: &Path, compress: bool) -> Result<Vec<PathBuf>, String> {
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?.trim().to_string();
    let staging = out.join("staging");
    let _ = std::fs::remove_dir_all(&staging);
    packages().map(|package| build_package(package, bins, &staging, out, &arch, compress)).collect()
}

fn build_package(
    package: &Package,
    bins: &Path,
    staging: &Path,
    out: &Path,
    arch: &str,
    compress: bool,
) -> Result<PathBuf, String> {
    let name = package.name;
    let dir = staging.join(name);
    let folder = root().join("bins").join(name);
    let binary = bins.join(name);
    put(&dir.join("usr/bin").join(name), &read(&binary)?, 0o755)?;
    let help = output(Command::new(&binary).arg("--help"))?;
    put(&dir.join("usr/share/doc").join(name).join("README"), help.as_bytes(), 0o644)?;
    put(&dir.join("usr/share/doc").join(name).join("copyright"), COPYRIGHT.as_bytes(), 0o644)?;
    let mut conffiles = Vec::new();
    for file in files(&folder.join("dist"))? {
        let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let target = match file.extension().and_then(|e| e.to_str()) {
            Some("service") => dir.join("usr/lib/systemd/system").join(&file_name),
            Some("conf") => {
                conffiles.push(format!("/etc/lars/{file_name}"));
                dir.join("etc/lars").join(&file_name)
            }
            _ => continue,
        };
        put(&target, &read(&file)?, 0o644)?;
    }
    for file in files(&folder.join("dist/share"))? {
        let file_name = file.file_name().unwrap_or_default();
        put(&dir.join("usr/share/lars").join(file_name), &read(&file)?, 0o644)?;
    }
    if name == "lars" {
        let schema = output(Command::new(&binary).args(["db-init", "--print-sql"]))?;
        put(&dir.join("usr/share/lars/schema.sql"), schema.as_bytes(), 0o644)?;
    }
    let debian = dir.join("DEBIAN");
    if !conffiles.is_empty() {
        put(&debian.join("conffiles"), format!("{}\n", conffiles.join("\n")).as_bytes(), 0o644)?;
    }
    if package.daemon {
        for (script, text) in maintainer_scripts(name) {
            put(&debian.join(script), text.as_bytes(), 0o755)?;
        }
    }
    let version = version(&folder)?;
    let depends = if package.daemon { "libc6, procps" } else { "libc6" };
    let control = format!(
        "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n\
         Installed-Size: {}\nDepends: {depends}\nSection: net\nPriority: optional\n\
         Homepage: https://github.com/lars-rs/lars\nDescription: {}\n {}\n",
        installed_kib(&dir)?,
        package.summary,
        "Service discovery and client-side load balancing (a Rust rewrite of Lars); see\n \
         /usr/share/doc/PACKAGE/README and the project's README, \"Install on a server\"."
            .replace("PACKAGE", name),
    );
    put(&debian.join("control"), control.as_bytes(), 0o644)?;
    let deb = out.join(format!("{name}_{version}_{arch}.deb"));
    let mut command = Command::new("dpkg-deb");
    command.arg("--root-owner-group");
    if compress {
        command.arg("-Zxz");
    } else {
        command.args(["-Zgzip", "-z1"]);
    }
    run(command.arg("--build").arg(&dir).arg(&deb).stdout(Stdio::null()))?;
    Ok(deb)
}

/// The daemon's maintainer scripts. They tell a running systemd about the unit and stop it
/// on removal; an install into another root (`DPKG_ROOT`, a chroot being built) or on a
/// machine without systemd tells no one. Enabling and first start are the operator's, once
/// the `.conf` says where MariaDB is (README, "Install on a server").
fn maintainer_scripts(name: &str) -> [(&'static str, String); 3] {
    let systemd = "[ -z \"${DPKG_ROOT:-}\" ] && [ -d /run/systemd/system ]";
    [
        (
            "postinst",
            format!(
                "#!/bin/sh\nset -e\nif [ \"$1\" = configure ] && {systemd}; then\n    \
                 systemctl daemon-reload || true\n    \
                 # An upgrade restarts a running daemon on the new binary.\n    \
                 systemctl try-restart {name}.service || true\nfi\n"
            ),
        ),
        (
            "prerm",
            format!(
                "#!/bin/sh\nset -e\nif [ \"$1\" = remove ] && {systemd}; then\n    \
                 systemctl stop {name}.service || true\nfi\n"
            ),
        ),
        (
            "postrm",
            format!(
                "#!/bin/sh\nset -e\nif [ \"$1\" = purge ]; then\n    \
                 # The unit's StateDirectory (under private/ with DynamicUser=).\n    \
                 rm -rf \"${{DPKG_ROOT:-}}/var/lib/{name}\" \"${{DPKG_ROOT:-}}/var/lib/private/{name}\"\nfi\n\
                 if {systemd}; then\n    systemctl daemon-reload || true\nfi\n"
            ),
        ),
    ]
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` with `mode`, making its folders.
fn put(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let parent = path.parent().ok_or("a path without a folder")?;
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The files in `dir` (none if it does not exist), sorted.
fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.map(|e| e.path()).map_err(|e| format!("{}: {e}", dir.display())))
        .collect::<Result<_, _>>()?;
    files.retain(|f| f.is_file());
    files.sort();
    Ok(files)
}

/// The `version = "..."` of the package's Cargo.toml.
fn version(folder: &Path) -> Result<String, String> {
    let manifest = String::from_utf8_lossy(&read(&folder.join("Cargo.toml"))?).into_owned();
    manifest
        .lines()
        .find_map(|line| line.strip_prefix("version = \"")?.strip_suffix('"').map(str::to_string))
        .ok_or_else(|| format!("no version in {}/Cargo.toml", folder.display()))
}

/// What the files under `dir` (but `DEBIAN/`) take, in KiB, for the control file.
fn installed_kib(dir: &Path) -> Result<u64, String> {
    fn walk(dir: &Path, total: &mut u64) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name() == "DEBIAN" {
                continue;
            }
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(&entry.path(), total)?;
            } else {
                *total += meta.len().div_ceil(1024);
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(dir, &mut total).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(total)
}

/// The gate: packages of the debug binaries installed with `dpkg --root` into a throwaway
/// root; their files, conffiles and schema checked; each unit verified by
/// `systemd-analyze verify` (no warning allowed) and `systemd-analyze security` (an exposure of
/// 2.0 at most); each daemon's packaged `.conf` checked with `--check-config` and the daemon
/// started on it (paths and ports moved into the root and onto free loopback ports by
/// environment variables) until it says READY=1, then stopped with SIGTERM (STOPPING=1, exit
/// 0); the packaged `schema.sql` loaded into a fresh MariaDB database with the `mariadb`
/// client and lars-dns, lars-reporter and lars-web started on it ([`start_on_mariadb`]); and
/// the packages purged again.
pub(crate) fn check() -> Result<(), String> {
    let bins = build("dev")?;
    let out = root().join("target/debian-check");
    let debs = build_packages(&bins, &out, false)?;
    let dest = out.join("root");
    let _ = std::fs::remove_dir_all(&dest);
    for folder in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(dest.join(folder)).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    // The packages' dependencies are the host's: the root only records them as installed.
    let stubs: String = ["libc6", "procps"]
        .iter()
        .map(|name| {
            format!(
                "Package: {name}\nStatus: install ok installed\nVersion: 9999\nArchitecture: all\n\
                 Maintainer: none\nDescription: the host's {name}, recorded for the throwaway root\n\n"
            )
        })
        .collect();
    put(&dest.join("var/lib/dpkg/status"), stubs.as_bytes(), 0o644)?;
    for name in ["libc6", "procps"] {
        put(&dest.join(format!("var/lib/dpkg/info/{name}.list")), b"", 0o644)?;
    }
    run(dpkg(&dest).arg("--install").args(&debs))?;
    for package in packages() {
        check_files(package, &dest)?;
    }
    for package in packages().filter(|p| p.daemon) {
        verify_unit(package.name, &dest, &out)?;
    }
    start_daemons(&dest, &out)?;
    start_on_mariadb(&dest, &out)?;
    let names: Vec<&str> = packages().map(|p| p.name).collect();
    run(dpkg(&dest).arg("--purge").args(&names))?;
    let left = dest.join("etc/lars");
    if left.exists() && std::fs::read_dir(&left).map_or(0, |d| d.count()) > 0 {
        return Err(format!("{} still holds files after a purge", left.display()));
    }
    println!("{} packages installed, checked, started and purged in {}", names.len(), dest.display());
    Ok(())
}

fn dpkg(dest: &Path) -> Command {
    let mut command = Command::new("dpkg");
    command
        .arg(format!("--root={}", dest.display()))
        .args(["--force-not-root", "--force-script-chrootless", "--log=/dev/null"])
        .stdout(Stdio::null());
    command
}

/// The package's files are where they belong and its `.conf` files are conffiles.
fn check_files(package: &Package, dest: &Path) -> Result<(), String> {
    let name = package.name;
    let listed =
        output(Command::new("dpkg-query").arg(format!("--root={}", dest.display())).args(["-L", name]))?;
    let conffiles = output(Command::new("dpkg-query").arg(format!("--root={}", dest.display())).args([
        "-W",
        "-f=${Conffiles}",
        name,
    ]))?;
    let mut expected = vec![format!("/usr/bin/{name}"), format!("/usr/share/doc/{name}/copyright")];
    let folder = root().join("bins").join(name).join("dist");
    for file in files(&folder)? {
        let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        match file.extension().and_then(|e| e.to_str()) {
            Some("service") => expected.push(format!("/usr/lib/systemd/system/{file_name}")),
            Some("conf") => {
                let path = format!("/etc/lars/{file_name}");
                if !conffiles.lines().any(|l| l.trim_start().starts_with(&format!("{path} "))) {
                    return Err(format!("{name}: {path} is not a conffile: {conffiles}"));
                }
                expected.push(path);
            }
            _ => {}
        }
    }
    if name == "lars" {
        expected.push("/usr/share/lars/schema.sql".into());
        let schema = std::fs::read_to_string(dest.join("usr/share/lars/schema.sql")).unwrap_or_default();
        if !SCHEMA_TABLES
            .iter()
            .all(|table| schema.contains(&format!("CREATE TABLE IF NOT EXISTS {table} (")))
        {
            return Err(format!("{name}: schema.sql lacks a table:\n{schema}"));
        }
    }
    for path in &expected {
        if !listed.lines().any(|l| l == path) || !dest.join(path.trim_start_matches('/')).is_file() {
            return Err(format!("{name}: {path} is not installed (dpkg -L says:\n{listed})"));
        }
    }
    let mode =
        std::fs::metadata(dest.join("usr/bin").join(name)).map(|m| m.permissions().mode()).unwrap_or(0);
    if mode & 0o111 == 0 {
        return Err(format!("{name}: /usr/bin/{name} is not executable ({mode:o})"));
    }
    Ok(())
}

/// `systemd-analyze verify` and `security` on the installed unit, its `ExecStart` pointed at
/// the binary in the throwaway root (verify checks that the program exists).
fn verify_unit(name: &str, dest: &Path, out: &Path) -> Result<(), String> {
    let installed = dest.join(format!("usr/lib/systemd/system/{name}.service"));
    let text = std::fs::read_to_string(&installed).map_err(|e| format!("{}: {e}", installed.display()))?;
    let moved =
        text.replace(&format!("/usr/bin/{name}"), &dest.join("usr/bin").join(name).display().to_string());
    let unit = out.join("units").join(format!("{name}.service"));
    put(&unit, moved.as_bytes(), 0o644)?;
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .map_err(|e| format!("systemd-analyze could not start: {e}"))?;
    let said = String::from_utf8_lossy(&verify.stderr);
    if !verify.status.success() || !said.trim().is_empty() {
        return Err(format!("systemd-analyze verify {name}.service: {}\n{said}", verify.status));
    }
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
        .map_err(|e| format!("systemd-analyze could not start: {e}"))?;
    let report = String::from_utf8_lossy(&security.stdout);
    let level = report.lines().find(|l| l.contains("Overall exposure level")).unwrap_or("no exposure level");
    if !security.status.success() {
        return Err(format!("systemd-analyze security {name}.service: more than 2.0: {level}\n{report}"));
    }
    println!("{name}.service: verified; {}", level.trim_start_matches(['→', ' ']));
    Ok(())
}

/// A daemon started from the throwaway root, with its own notify socket.
struct Started {
    name: &'static str,
    child: Child,
    notify: UnixDatagram,
    log: PathBuf,
}

impl Started {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The next notification within `timeout`.
    fn notification(&self, timeout: Duration) -> Option<String> {
        self.notify.set_read_timeout(Some(timeout)).ok()?;
        let mut buf = [0u8; 1024];
        let len = self.notify.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// Waits for READY=1 and returns the port in its STATUS (`listening on ip:port, ...`).
    fn ready(&mut self) -> Result<u16, String> {
        let message = self.notification(Duration::from_secs(30)).unwrap_or_default();
        if !message.lines().any(|l| l == "READY=1") {
            let _ = self.child.kill();
            return Err(format!("{} sent no READY=1 ({message:?}); its log:\n{}", self.name, self.log()));
        }
        let status = message.lines().find_map(|l| l.strip_prefix("STATUS=")).unwrap_or_default();
        let port = status
            .split([' ', ','])
            .find_map(|word| word.rsplit_once(':')?.1.parse::<u16>().ok())
            .ok_or_else(|| format!("{}: no port in STATUS={status}", self.name))?;
        println!("{}: READY=1, STATUS={status}", self.name);
        Ok(port)
    }

    /// `GET /login` on the console's `port` answers 200.
    fn serves_its_sign_in_page(&self, port: u16) -> Result<(), String> {
        use std::io::{Read, Write};
        let fail = |e: std::io::Error| format!("{}: GET /login on port {port}: {e}", self.name);
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(fail)?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).map_err(fail)?;
        conn.write_all(b"GET /login HTTP/1.1\r\nHost: lars\r\nConnection: close\r\n\r\n").map_err(fail)?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).map_err(fail)?;
        match answer.lines().next() {
            Some("HTTP/1.1 200 OK") => Ok(()),
            line => Err(format!("{}: GET /login answered {line:?}; its log:\n{}", self.name, self.log())),
        }
    }

    /// SIGTERM, then STOPPING=1 and exit status 0.
    fn stop(mut self) -> Result<(), String> {
        run(Command::new("kill").arg("-TERM").arg(self.child.id().to_string()))?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                return Err(format!("{} did not stop within 30 s of SIGTERM:\n{}", self.name, self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stopping = self.notification(Duration::from_secs(1)).unwrap_or_default();
        if !status.success() || !stopping.lines().any(|l| l == "STOPPING=1") {
            return Err(format!("{}: {status}, {stopping:?}; its log:\n{}", self.name, self.log()));
        }
        Ok(())
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Checks each daemon's packaged `.conf` with `--check-config`, then starts lars-dns,
/// lars-reporter, lars-agent (pointed at those two) and lars-web on them, as their units would.
fn start_daemons(dest: &Path, out: &Path) -> Result<(), String> {
    let state = |name: &str| dest.join("var/lib").join(name);
    for name in ["lars-reporter", "lars-agent", "lars-web"] {
        std::fs::create_dir_all(state(name)).map_err(|e| format!("{}: {e}", state(name).display()))?;
    }
    let routes = dest.join("etc/lars/routes.conf").display().to_string();
    let stats = state("lars-reporter").join("stats.txt").display().to_string();
    let cache = state("lars-agent").join("routes.cache").display().to_string();
    // The packaged paths and ports, moved into the root and onto free ports.
    let dns_env = [("LARS_DNS_ROUTES", routes), ("LARS_REACTOR_PORT", "0".to_string())];
    let reporter_env = [("LARS_REPORTER_STATS_FILE", stats), ("LARS_REACTOR_PORT", "0".to_string())];
    let mut dns = start(dest, out, "lars-dns", &[], &dns_env)?;
    let dns_port = dns.ready()?;
    let mut reporter = start(dest, out, "lars-reporter", &[], &reporter_env)?;
    let reporter_port = reporter.ready()?;
    let agent_env = [
        ("LARS_AGENT_ROUTE_CACHE", cache),
        ("LARS_DNSSERVER_PORT", dns_port.to_string()),
        ("LARS_REPORTER_PORT", reporter_port.to_string()),
    ];
    let mut agent = start(dest, out, "lars-agent", &["--api", "127.0.0.1:0"], &agent_env)?;
    agent.ready()?;
    let web_env = [
        ("LARS_WEB_STATE", state("lars-web").display().to_string()),
        ("LARS_WEB_ROUTES", dest.join("etc/lars/routes.conf").display().to_string()),
        ("LARS_WEB_LISTEN", "127.0.0.1:0".to_string()),
    ];
    let mut web = start(dest, out, "lars-web", &[], &web_env)?;
    let web_port = web.ready()?;
    web.serves_its_sign_in_page(web_port)?;
    if !state("lars-web").join("secret").is_file() {
        return Err(format!("lars-web made no session key in {}", state("lars-web").display()));
    }
    web.stop()?;
    agent.stop()?;
    reporter.stop()?;
    dns.stop()
}

/// Loads the installed `schema.sql` into a fresh database of the tests' MariaDB (the `mariadb`
/// client, as an operator would) and starts lars-dns, lars-reporter and lars-web on it with
/// their packaged `.conf` and the `[mysql]` keys set by environment, as
/// `/etc/lars/<name>.env` would. Each must get to READY=1 without saying that the schema
/// lacks something `lars db-init` would add, and stop cleanly; the database is dropped.
fn start_on_mariadb(dest: &Path, out: &Path) -> Result<(), String> {
    let server = super::mysql::ensure()?;
    let (host, port, user, password) = super::mysql::parts(&server.url)?;
    let client = super::setup::find("mariadb")
        .or_else(|| super::setup::find("mysql"))
        .ok_or("no `mariadb` (or `mysql`) client to load schema.sql with: apt-get install mariadb-client")?;
    let database = format!("lars_dist_check_{}", std::process::id());
    let mariadb = |database: Option<&str>| {
        let mut command = Command::new(&client);
        command
            .args(["--protocol=tcp", "--host", &host, "--port", &port.to_string(), "--user", &user])
            .env("MYSQL_PWD", &password);
        command.args(database);
        command
    };
    let sql = |statement: String| output(mariadb(None).args(["-e", &statement]));
    sql(format!("DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database}"))?;
    let schema = dest.join("usr/share/lars/schema.sql");
    let loaded = std::fs::File::open(&schema)
        .map_err(|e| format!("{}: {e}", schema.display()))
        .and_then(|file| output(mariadb(Some(&database)).stdin(file)));
    let started = loaded.and_then(|_| {
        let mysql: [(&'static str, String); 5] = [
            ("LARS_MYSQL_DB_HOST", host.clone()),
            ("LARS_MYSQL_DB_PORT", port.to_string()),
            ("LARS_MYSQL_DB_USER", user.clone()),
            ("LARS_MYSQL_DB_PASSWD", password.clone()),
            ("LARS_MYSQL_DB_NAME", database.clone()),
        ];
        let env = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
            mysql.iter().chain(extra).cloned().collect()
        };
        let reactor = [("LARS_REACTOR_PORT", "0".to_string())];
        let mut dns = start(dest, out, "lars-dns", &[], &env(&reactor))?;
        dns.ready()?;
        let mut reporter = start(dest, out, "lars-reporter", &[], &env(&reactor))?;
        reporter.ready()?;
        let state = dest.join("var/lib/lars-web");
        let web =
            [("LARS_WEB_STATE", state.display().to_string()), ("LARS_WEB_LISTEN", "127.0.0.1:0".to_string())];
        let mut web = start(dest, out, "lars-web", &[], &env(&web))?;
        let web_port = web.ready()?;
        web.serves_its_sign_in_page(web_port)?;
        for daemon in [&dns, &reporter, &web] {
            let log = daemon.log();
            if log.contains("db-init") {
                return Err(format!("{} finds the packaged schema lacking:\n{log}", daemon.name));
            }
        }
        println!("lars-dns, lars-reporter and lars-web started on {database}, made from schema.sql");
        web.stop()?;
        reporter.stop()?;
        dns.stop()
    });
    let dropped = sql(format!("DROP DATABASE IF EXISTS {database}"));
    started.and(dropped.map(drop))
}

fn start(
    dest: &Path,
    out: &Path,
    name: &'static str,
    args: &[&str],
    env: &[(&str, String)],
) -> Result<Started, String> {
    use std::os::linux::net::SocketAddrExt;
    let binary = dest.join("usr/bin").join(name);
    let conf = dest.join("etc/lars").join(format!("{name}.conf"));
    let mut check = Command::new(&binary);
    check.arg("--config").arg(&conf).arg("--check-config").args(args).env_remove("LARS_LOG");
    for (var, value) in env {
        check.env(var, value);
    }
    output(&mut check).map_err(|e| format!("{name} --check-config on its packaged .conf: {e}"))?;
    // An abstract socket name, as systemd may pass one.
    let socket_name = format!("lars-xtask-dist-{name}-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(socket_name.as_bytes())
        .map_err(|e| format!("notify socket: {e}"))?;
    let notify = UnixDatagram::bind_addr(&addr).map_err(|e| format!("notify socket: {e}"))?;
    let log = out.join(format!("{name}.log"));
    let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut command = Command::new(&binary);
    command
        .arg("--config")
        .arg(&conf)
        .args(args)
        .env("NOTIFY_SOCKET", format!("@{socket_name}"))
        .env_remove("LARS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    for (var, value) in env {
        command.env(var, value);
    }
    let child = command.spawn().map_err(|e| format!("{name} could not start: {e}"))?;
    Ok(Started { name, child, notify, log })
}
