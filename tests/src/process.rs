//! A daemon started as its binary, as systemd starts it: `NOTIFY_SOCKET` pointing at a socket
//! the test bound, stderr in a file the test reads, and signals sent by pid. Also what the
//! daemons' service tests share besides: a run to the exit (`--check-config`, a wrong command
//! line), the lines of `--check-config`'s output, and a plain HTTP GET of a page.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// How long a test waits for a daemon to say something before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running daemon process, killed when dropped.
pub struct DaemonProcess {
    child: Child,
    notify: UnixDatagram,
    log: PathBuf,
    dir: PathBuf,
}

/// A fresh scratch folder for one test, named after it.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lars-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("make a scratch folder");
    dir
}

impl DaemonProcess {
    /// Starts `exe` with `args` and the environment `env`, in a fresh folder under `dir`, with
    /// `NOTIFY_SOCKET` set and stderr written to `log.txt` there.
    pub fn start(exe: &str, args: &[&str], env: &[(&str, &str)], dir: &Path) -> DaemonProcess {
        let notify_path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
        let log = dir.join("log.txt");
        let stderr = std::fs::File::create(&log).expect("create the log file");
        let mut command = Command::new(exe);
        command
            .args(args)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("LARS_LOG")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("start {exe}: {e}"));
        DaemonProcess { child, notify, log, dir: dir.to_path_buf() }
    }

    /// The folder it runs in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The next notification it sent (`READY=1\n...`), or `None` after `timeout`.
    pub fn next_notification(&self, timeout: Duration) -> Option<String> {
        self.notify.set_read_timeout(Some(timeout)).expect("set a timeout");
        let mut buf = [0u8; 4096];
        let len = self.notify.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// Waits for `READY=1` and returns its `STATUS=` text, failing the test with the log if
    /// the daemon does not get there.
    pub fn wait_ready(&mut self) -> String {
        let message = self.next_notification(PATIENCE);
        let Some(message) = message.filter(|m| m.lines().any(|l| l == "READY=1")) else {
            let status = self.child.try_wait().ok().flatten();
            panic!("no READY=1 (exit status {status:?}); log:\n{}", self.log());
        };
        let status = message.lines().find_map(|l| l.strip_prefix("STATUS=")).unwrap_or_default();
        status.to_string()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's size in bytes.
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// Waits until the log holds `needle`; false after [`PATIENCE`].
    pub fn wait_for_log(&self, needle: &str) -> bool {
        self.wait_for_log_where(|log| log.contains(needle))
    }

    /// Waits until `holds` is true of the log; false after [`PATIENCE`].
    pub fn wait_for_log_where(&self, holds: impl Fn(&str) -> bool) -> bool {
        let waited = lars_std::time::Stopwatch::start();
        while waited.elapsed() < PATIENCE {
            if holds(&self.log()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a child has a pid");
        rustix::process::kill_process(pid, signal).expect("signal the daemon");
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll the child")
    }

    /// Sends SIGTERM and waits for the exit (killing it after [`PATIENCE`]).
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        let waited = lars_std::time::Stopwatch::start();
        while waited.elapsed() < PATIENCE {
            if let Some(status) = self.exited() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("it did not stop within {PATIENCE:?} of SIGTERM; log:\n{}", self.log());
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `exe` with `args` through a daemon's life as systemd and an operator see it: READY=1
/// once it serves (`serves` is called with its STATUS text at that moment and checks that it
/// does), SIGHUP (it reads its configuration again and keeps serving), SIGUSR1 (it logs its
/// counters), then SIGTERM: STOPPING=1 and exit status 0. Returns the log.
pub fn check_lifecycle(exe: &str, args: &[&str], dir: &Path, serves: impl Fn(&str)) -> String {
    let mut daemon = DaemonProcess::start(exe, args, &[], dir);
    let status = daemon.wait_ready();
    serves(&status);
    daemon.signal(rustix::process::Signal::HUP);
    assert!(
        daemon.wait_for_log("configuration read again"),
        "SIGHUP read the configuration:\n{}",
        daemon.log()
    );
    daemon.signal(rustix::process::Signal::USR1);
    assert!(daemon.wait_for_log("counters: "), "SIGUSR1 logged the counters:\n{}", daemon.log());
    assert_eq!(daemon.exited(), None, "SIGHUP and SIGUSR1 did not end it:\n{}", daemon.log());
    serves(&status);
    let exit = daemon.stop();
    let stopping = daemon.next_notification(Duration::from_secs(1)).unwrap_or_default();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "STOPPING=1 on SIGTERM, got {stopping:?}");
    assert!(exit.success(), "a clean stop exits 0: {exit}\n{}", daemon.log());
    daemon.log()
}

/// What a program run to its exit wrote.
pub struct Exit {
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs `exe` with `args` and the environment `env` (and without `LARS_LOG`) to its exit, as
/// an operator runs `--check-config` or a mistaken command line, and fails the test (with what
/// it wrote) unless it exits with `code`.
pub fn run_to_exit(exe: &str, args: &[&str], env: &[(&str, &str)], code: i32) -> Exit {
    let mut command = Command::new(exe);
    command.args(args).env_remove("LARS_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap_or_else(|e| panic!("run {exe}: {e}"));
    let exit = Exit {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(
        out.status.code(),
        Some(code),
        "{exe} {} exits with {code}:\n{}{}",
        args.join(" "),
        exit.stdout,
        exit.stderr
    );
    exit
}

/// The line `key = value  # origin` of `[section]` in `check_config`, the output of
/// `--check-config`; fails the test if there is none.
pub fn config_line(check_config: &str, section: &str, key: &str) -> String {
    let body = check_config.split(&format!("\n[{section}]\n")).nth(1).unwrap_or_default();
    let body = body.split("\n\n").next().unwrap_or_default();
    body.lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("[{section}] {key} in {check_config}"))
        .to_string()
}

/// Where `--check-config` says the value of `[section] key` came from (after its `# `).
pub fn config_origin(check_config: &str, section: &str, key: &str) -> String {
    let line = config_line(check_config, section, key);
    line.split_once(" # ").map(|(_, origin)| origin.to_string()).unwrap_or_default()
}

/// `GET path` over HTTP/1.1: the status line and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut conn = TcpStream::connect(addr).expect("it accepts connections once it is ready");
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// The address in a STATUS text such as `listening on 127.0.0.1:7778, ...` (the first
/// `ip:port` after `on `).
pub fn status_addr(status: &str) -> SocketAddr {
    let after = status.split_once(" on ").map_or(status, |(_, rest)| rest).trim_start_matches("UDP ");
    let addr = after.split([',', ' ']).next().unwrap_or_default();
    addr.parse().unwrap_or_else(|_| panic!("no address in the status {status:?}"))
}
