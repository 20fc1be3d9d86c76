//! `cargo xtask firmware [--dhcp] [--qemu]` and `cargo xtask size`: builds the gateway firmware, boots it
//! in QEMU against real daemons inside a private network namespace, and measures its memory.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::demo::{Daemons, RunFiles, build_binaries};
use super::{cargo, root};

const TARGET: &str = "thumbv7em-none-eabihf";
const PROFILE: &str = "firmware";
/// The firmware's build-time defaults (lars-embedded/firmware/src/main.rs): QEMU's user-mode
/// network gives the guest 10.0.2.15 and maps 10.0.2.2 to the namespace's loopback.
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const DNS: &str = "127.0.0.1:7778";
const REPORTER: &str = "127.0.0.1:7779";
const API: &str = "127.0.0.1:8888";
const HOSTS: [&str; 3] = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
/// The host whose calls all fail in the simulation.
const FAILING: &str = "127.0.0.1:9002";
/// Memory targets with 16 routes × 16 hosts (issue 6).
const FLASH_TARGET: u64 = 96 * 1024;
const RAM_TARGET: u64 = 48 * 1024;

/// How the firmware gets its address: the two builds that are tested and measured.
#[derive(Clone, Copy)]
pub(crate) enum Variant {
    /// 10.0.2.15/24 fixed at build time.
    Static,
    /// A lease from QEMU's DHCP server (feature `dhcp`).
    Dhcp,
}

impl Variant {
    pub(crate) const ALL: [Variant; 2] = [Variant::Static, Variant::Dhcp];

    fn name(self) -> &'static str {
        match self {
            Variant::Static => "static",
            Variant::Dhcp => "dhcp",
        }
    }
}

pub(crate) fn firmware(args: &[String]) -> Result<(), String> {
    let dhcp = args.iter().any(|a| a == "--dhcp");
    let qemu = args.iter().any(|a| a == "--qemu");
    if args.iter().any(|a| a != "--dhcp" && a != "--qemu") {
        return Err("usage: cargo xtask firmware [--dhcp] [--qemu]".into());
    }
    let variant = if dhcp { Variant::Dhcp } else { Variant::Static };
    let elf = build(variant)?;
    if qemu {
        run_in_qemu(&elf, variant)
    } else {
        println!("firmware: {}", elf.display());
        Ok(())
    }
}

/// Builds the release firmware and returns its ELF (one path for every build: use it before
/// building another).
fn build(variant: Variant) -> Result<PathBuf, String> {
    build_with(variant, &[])
}

fn build_with(variant: Variant, env: &[(&str, &str)]) -> Result<PathBuf, String> {
    println!("==> building the firmware ({TARGET}, profile {PROFILE}, {} address)", variant.name());
    let mut command =
        cargo(&["build", "-q", "-p", "lars-firmware", "--target", TARGET, "--profile", PROFILE]);
    if let Variant::Dhcp = variant {
        command.args(["--features", "dhcp"]);
    }
    command.env("DEFMT_LOG", "info").envs(env.iter().copied());
    let status = command.status().map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err("the firmware did not build".into());
    }
    Ok(root().join("target").join(TARGET).join(PROFILE).join("lars-firmware"))
}

/// A firmware built with a malformed setting must panic at boot, and the panic handler must
/// print why on QEMU's stderr and exit QEMU with an error (not hang, not exit 0).
pub(crate) fn panic_exits_qemu() -> Result<(), String> {
    let elf = build_with(Variant::Static, &[("LARS_FW_DNS", "not-an-address")])?;
    let mut qemu = Command::new("qemu-system-arm")
        .args(["-machine", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native", "-nic", "none", "-kernel"])
        .arg(&elf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start qemu-system-arm: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        match qemu.try_wait().map_err(|e| format!("qemu: {e}"))? {
            Some(status) => break status,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => {
                let _ = qemu.kill();
                let _ = qemu.wait();
                return Err("the panicking firmware did not exit QEMU within 20 s".into());
            }
        }
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = qemu.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    print!("{stderr}");
    if status.code() != Some(101) || !stderr.contains("malformed LARS_FW_DNS") {
        return Err(format!("expected exit status 101 and the panic message, got {status}"));
    }
    println!("the panic handler exited QEMU with status 101 and said why");
    Ok(())
}

/// The sizes of the firmware's sections that count against flash and RAM.
struct Sizes {
    text: u64,
    rodata: u64,
    data: u64,
    bss: u64,
}

impl Sizes {
    fn read(elf: &Path) -> Result<Sizes, String> {
        let bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
        let sections =
            elf32_sections(&bytes).ok_or_else(|| format!("{}: not a 32-bit ELF", elf.display()))?;
        let section =
            |name: &str| sections.iter().filter(|(n, _)| n == name).map(|(_, size)| *size).sum::<u64>();
        let sizes = Sizes {
            text: section(".vector_table") + section(".text"),
            rodata: section(".rodata"),
            data: section(".data"),
            bss: section(".bss") + section(".uninit"),
        };
        if sizes.text == 0 {
            return Err(format!("{}: no .text section", elf.display()));
        }
        Ok(sizes)
    }

    fn flash(&self) -> u64 {
        self.text + self.rodata + self.data
    }

    fn ram(&self) -> u64 {
        self.data + self.bss
    }
}

/// The `(name, size)` of every section of a little-endian 32-bit ELF file, from its section
/// headers (what `size -A` prints), or `None` if the file is not one.
fn elf32_sections(elf: &[u8]) -> Option<Vec<(String, u64)>> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?) as usize);
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?) as usize);
    // Magic, ELFCLASS32, little-endian.
    if elf.get(..6)? != b"\x7fELF\x01\x01" {
        return None;
    }
    let (table, entry_size, count, names_index) =
        (u32_at(0x20)?, u16_at(0x2e)?, u16_at(0x30)?, u16_at(0x32)?);
    let header = |i: usize| table + i * entry_size;
    let names = u32_at(header(names_index) + 16)?;
    (0..count)
        .map(|i| {
            let name_start = names + u32_at(header(i))?;
            let name_len = elf.get(name_start..)?.iter().position(|&b| b == 0)?;
            let name = String::from_utf8_lossy(&elf[name_start..name_start + name_len]).into_owned();
            Some((name, u32_at(header(i) + 20)? as u64))
        })
        .collect()
}

/// `cargo xtask size`: flash and static RAM of the release firmware (both variants), against
/// the targets.
pub(crate) fn size() -> Result<(), String> {
    let ratio = |used: u64, target: u64| used as f64 / target as f64;
    let mut json = Vec::new();
    for variant in Variant::ALL {
        let sizes = Sizes::read(&build(variant)?)?;
        println!(
            "{}: text {} + rodata {} + data {} = flash {} B ({:.2} of the {} KiB target)",
            variant.name(),
            sizes.text,
            sizes.rodata,
            sizes.data,
            sizes.flash(),
            ratio(sizes.flash(), FLASH_TARGET),
            FLASH_TARGET / 1024
        );
        println!(
            "{}: data {} + bss {} = static RAM {} B ({:.2} of the {} KiB target)",
            variant.name(),
            sizes.data,
            sizes.bss,
            sizes.ram(),
            ratio(sizes.ram(), RAM_TARGET),
            RAM_TARGET / 1024
        );
        json.push(format!(
            "{{\"variant\":\"{}\",\"target\":\"{TARGET}\",\"routes\":16,\"hosts_per_route\":16,\"text\":{},\"rodata\":{},\"data\":{},\"bss\":{},\"flash\":{},\"static_ram\":{},\"flash_target\":{FLASH_TARGET},\"static_ram_target\":{RAM_TARGET}}}",
            variant.name(),
            sizes.text,
            sizes.rodata,
            sizes.data,
            sizes.bss,
            sizes.flash(),
            sizes.ram()
        ));
    }
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("firmware.json");
    std::fs::write(&path, format!("[{}]\n", json.join(",\n")))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// A network namespace, deleted when dropped.
struct Namespace(String);

impl Namespace {
    fn create() -> Result<Namespace, String> {
        let name = format!("lars-fw-{}", std::process::id());
        if !ip(&["netns", "add", &name])? {
            return Err(format!(
                "`ip netns add {name}` failed: the QEMU run needs a private network namespace (run as root)"
            ));
        }
        let namespace = Namespace(name);
        if !ip(&["netns", "exec", &namespace.0, "ip", "link", "set", "lo", "up"])? {
            return Err("could not bring up the namespace's loopback".into());
        }
        Ok(namespace)
    }

    /// `program args` inside the namespace.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.0]).arg(program);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn ip(args: &[&str]) -> Result<bool, String> {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .map_err(|e| format!("ip: {e} (Debian: apt-get install iproute2)"))
}

/// Runs `lars` inside the namespace against the firmware's API port.
fn lars(namespace: &Namespace, args: &[&str]) -> Result<Output, String> {
    namespace
        .command(&root().join("target/debug/lars"))
        .args(args)
        .args(["--agent", API])
        .output()
        .map_err(|e| format!("run lars: {e}"))
}

fn lars_ok(namespace: &Namespace, args: &[&str]) -> Result<String, String> {
    let output = lars(namespace, args)?;
    if !output.status.success() {
        return Err(format!(
            "`lars {}` through the firmware failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// QEMU, killed when dropped (the firmware serves until stopped).
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_in_qemu(elf: &Path, variant: Variant) -> Result<(), String> {
    if Command::new("qemu-system-arm").arg("--version").output().is_err() {
        return Err("qemu-system-arm not found (Debian: apt-get install qemu-system-arm)".into());
    }
    build_binaries(&["lars-dns", "lars-reporter", "lars"])?;
    let RunFiles { dir, routes, stats } = RunFiles::fresh("firmware")?;
    let route_text: String = HOSTS.iter().map(|host| format!("1 1 {host}\n")).collect();
    std::fs::write(&routes, route_text).map_err(|e| format!("{}: {e}", routes.display()))?;

    let namespace = Namespace::create()?;
    println!("==> lars-dns and lars-reporter on the loopback of namespace {}", namespace.0);
    let bins = root().join("target/debug");
    let mut daemons = Daemons(Vec::new());
    for (name, args) in [
        ("lars-dns", ["--listen", DNS, "--routes", &routes.display().to_string()]),
        ("lars-reporter", ["--listen", REPORTER, "--stats-file", &stats.display().to_string()]),
    ] {
        let child = namespace
            .command(&bins.join(name))
            .args(args)
            .spawn()
            .map_err(|e| format!("start {name}: {e}"))?;
        daemons.0.push((name.to_string(), child));
    }
    wait_until("lars-dns to listen", Duration::from_secs(15), || {
        Ok(namespace.command(&bins.join("lars")).args(["stats", "--dns", DNS]).output()?.status.success())
    })?;

    println!(
        "==> booting {} ({} address) in qemu-system-arm (mps2-an386, LAN9118, user-mode network)",
        elf.display(),
        variant.name()
    );
    let defmt_log = dir.join("defmt.bin");
    let qemu_log = dir.join("qemu.log");
    let file = |path: &Path| std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()));
    let booted = Instant::now();
    let mut qemu = Qemu(
        namespace
            .command(Path::new("qemu-system-arm"))
            .args(["-machine", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .args(["-nic", "user,model=lan9118,hostfwd=udp:127.0.0.1:8888-:8888"])
            .arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(file(&defmt_log)?)
            .stderr(file(&qemu_log)?)
            .spawn()
            .map_err(|e| format!("start qemu-system-arm: {e}"))?,
    );

    let result = exercise(&namespace, &stats, &mut qemu, booted);
    drop(qemu);
    drop(daemons);
    let log = decode_log(elf, &defmt_log);
    let errors = std::fs::read_to_string(&qemu_log).unwrap_or_default();
    if !errors.trim().is_empty() {
        println!("--- qemu stderr ---\n{}", errors.trim_end());
    }
    match result {
        Ok(first_answer) => {
            let from_firmware = log.as_deref().and_then(first_route_ms);
            println!(
                "firmware test passed ({} address): first host answered {:.0} ms after QEMU started{}",
                variant.name(),
                first_answer.as_secs_f64() * 1e3,
                from_firmware
                    .map(|(asked, got)| format!(
                        "; by the firmware's clock the first route was asked for {asked} ms after boot and \
                         arrived {got} ms after boot"
                    ))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Gets hosts, checks them against the route, reports results and waits for the statistics to
/// reach lars-reporter. Returns the time from boot to the first host answered.
fn exercise(
    namespace: &Namespace,
    stats: &Path,
    qemu: &mut Qemu,
    booted: Instant,
) -> Result<Duration, String> {
    let alive = |qemu: &mut Qemu| match qemu.0.try_wait() {
        Ok(None) => Ok(()),
        Ok(Some(status)) => Err(format!("QEMU exited early ({status})")),
        Err(e) => Err(format!("QEMU: {e}")),
    };
    let mut first_answer = None;
    wait_until("the firmware to answer get-host", Duration::from_secs(30), || {
        alive(qemu).map_err(std::io::Error::other)?;
        let answered =
            lars(namespace, &["get-host", "1", "1"]).map_err(std::io::Error::other)?.status.success();
        if answered {
            first_answer = Some(booted.elapsed());
        }
        Ok(answered)
    })?;
    let first_answer = first_answer.unwrap_or_default();

    let route = lars_ok(namespace, &["get-route", "1", "1"])?;
    let mut served: Vec<&str> = route
        .lines()
        .filter(|l| !l.starts_with("version"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    served.sort_unstable();
    if served != HOSTS {
        return Err(format!("the firmware's route 1/1 is {served:?}, lars-dns has {HOSTS:?}"));
    }
    println!("route 1/1 through the firmware: {served:?}");
    for call in 0..30 {
        let host = lars_ok(namespace, &["get-host", "1", "1"])?;
        let host = host.trim();
        if !HOSTS.contains(&host) {
            return Err(format!("get-host answered {host}, which is not in route 1/1"));
        }
        lars_ok(namespace, &["report", "1", "1", host, "ok", "--latency-us", &(100 + call).to_string()])?;
    }
    println!("30 get-host answers were all in the route; results reported");
    let simulated = lars_ok(
        namespace,
        &["simulate", "1", "1", "--count", "400", "--fail", &format!("{FAILING}=1.0"), "--interval-ms", "0"],
    )?;
    print!("{simulated}");
    alive(qemu)?;

    let caller = u32::from(GUEST).to_string();
    wait_until("lars-reporter to store the firmware's statistics", Duration::from_secs(15), || {
        let text = std::fs::read_to_string(stats).unwrap_or_default();
        let row = |host: &str| {
            // The statistics file is a log: the last line of a key wins.
            text.lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .rfind(|w| w.len() == 8 && w[0] == "1" && w[1] == "1" && w[2] == host && w[3] == caller)
        };
        let ok = row(HOSTS[0]).is_some_and(|w| w[4] != "0");
        let failed = row(FAILING).is_some_and(|w| w[5] != "0");
        Ok(ok && failed)
    })?;
    println!("lars-reporter stored the firmware's statistics (caller {GUEST}):");
    print!("{}", std::fs::read_to_string(stats).unwrap_or_default());
    Ok(first_answer)
}

fn wait_until(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> std::io::Result<bool>,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        match done() {
            Ok(true) => return Ok(()),
            Ok(false) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(false) => return Err(format!("timed out after {limit:?} waiting for {what}")),
            Err(e) => return Err(format!("while waiting for {what}: {e}")),
        }
    }
}

/// The firmware's defmt log as text, through `defmt-print` when it is installed.
fn decode_log(elf: &Path, raw: &Path) -> Option<String> {
    let input = std::fs::File::open(raw).ok()?;
    let output = Command::new("defmt-print")
        .args(["-e"])
        .arg(elf)
        .args(["--log-format", "{t} {L} {s}"])
        .stdin(input)
        .output();
    match output {
        Ok(output) => {
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            println!("--- firmware log (defmt) ---\n{}", text.trim_end());
            Some(text)
        }
        Err(_) => {
            println!(
                "the firmware's defmt log is in {} (`cargo install defmt-print`, then `defmt-print -e {} < {}`)",
                raw.display(),
                elf.display(),
                raw.display()
            );
            None
        }
    }
}

/// Milliseconds from boot to the first route request and to its answer from lars-dns, read
/// off a decoded log (`{t}` is seconds since boot).
fn first_route_ms(log: &str) -> Option<(u64, u64)> {
    let at = |event: &str| {
        let line = log.lines().find(|l| l.contains(event))?;
        let seconds: f64 = line.split_whitespace().next()?.parse().ok()?;
        Some((seconds * 1000.0).round() as u64)
    };
    Some((at("RouteCreated")?, at("RouteUpdated")?))
}
