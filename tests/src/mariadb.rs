//! A private MariaDB server for tests that must hang or stop a database: its own data
//! directory under a scratch folder (made by `mariadb-install-db`), its own free port and
//! socket, started by the test and stopped, hung or killed by its pid only. The shared server
//! at `LARS_MYSQL_URL` is never touched.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::Scratch;

/// A `mariadbd` of the test's own, killed when dropped.
pub struct PrivateMariadb {
    child: Child,
    /// Its folder (data directory, socket, log), removed when dropped.
    pub scratch: Scratch,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl PrivateMariadb {
    /// Initialises a data directory and starts `mariadbd` on a free loopback port, with
    /// `root` and an empty password; waits (up to 30 s) until it answers.
    pub fn start(name: &str) -> PrivateMariadb {
        let scratch = Scratch::new(name);
        let data = scratch.0.join("data");
        // mariadbd runs as `mysql` when started by root, and must reach its folder.
        let as_root = Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout == b"0\n");
        if as_root {
            let status = Command::new("chown").arg("mysql").arg(&scratch.0).status().expect("run chown");
            assert!(status.success(), "chown mysql {}", scratch.0.display());
        }
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if as_root {
            install.arg("--user=mysql");
        }
        let status = install.status().expect("mariadb-install-db is installed (cargo xtask setup)");
        assert!(status.success(), "mariadb-install-db --datadir={} failed", data.display());
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let log = std::fs::File::create(scratch.0.join("server.log")).expect("the server's log");
        let mut server = Command::new("mariadbd");
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", scratch.0.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", scratch.0.join("mysqld.pid").display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve", "--skip-log-bin"])
            .args(["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M"])
            .stdout(Stdio::null())
            .stderr(log);
        if as_root {
            server.arg("--user=mysql");
        }
        let child = server.spawn().expect("start mariadbd");
        let db = PrivateMariadb { child, scratch, port };
        db.wait_until_up();
        db
    }

    /// Its URL, without a database, with `params` (`key=value&...`) appended.
    pub fn url(&self, database: &str, params: &str) -> String {
        let query = if params.is_empty() { String::new() } else { format!("?{params}") };
        format!("mysql://root@127.0.0.1:{}/{database}{query}", self.port)
    }

    /// The server's pid, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process (SIGSTOP): connections stay open and nothing is answered.
    /// Returns once every thread of it is stopped: `kill` returns when the signal is queued,
    /// and on a busy machine the server's connection threads can still answer a query or two
    /// before the thread that takes the signal gets a CPU and stops them all.
    #[allow(clippy::disallowed_methods)] // the test's own deadline
    pub fn hang(&self) {
        assert!(self.signal("-STOP"), "kill -STOP {} (our own mariadbd)", self.pid());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.all_threads_stopped() {
            assert!(std::time::Instant::now() < deadline, "mariadbd {} did not stop in 30 s", self.pid());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether every thread of the server is in state `T` (stopped), from `/proc`.
    fn all_threads_stopped(&self) -> bool {
        let tasks = format!("/proc/{}/task", self.pid());
        let Ok(threads) = std::fs::read_dir(&tasks) else { return false };
        threads.flatten().all(|thread| {
            // `pid (comm) state ...`: the state follows the last `)`.
            std::fs::read_to_string(thread.path().join("stat")).is_ok_and(|stat| {
                stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
            })
        })
    }

    /// Lets a hung server go on (SIGCONT).
    pub fn resume(&self) {
        assert!(self.signal("-CONT"), "kill -CONT {} (our own mariadbd)", self.pid());
    }

    fn signal(&self, signal: &str) -> bool {
        let status = Command::new("kill").arg(signal).arg(self.pid().to_string()).status();
        status.is_ok_and(|s| s.success())
    }

    #[allow(clippy::disallowed_methods)] // the test's own deadline
    fn wait_until_up(&self) {
        let opts = mysql::Opts::from_url(&self.url("", "")).expect("a URL");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while mysql::Conn::new(opts.clone()).is_err() {
            assert!(std::time::Instant::now() < deadline, "the private mariadbd did not answer in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        // By its pid, and resumed first so that a hung one can die.
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
