//! Finds the MySQL server the tests use, or starts a throwaway MariaDB under `target/`.
//!
//! Order: `LARS_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`) if something answers there;
//! otherwise a private `mariadbd` on a free loopback port, when MariaDB is installed; otherwise
//! an error saying how to get one. The tests are never run without MySQL.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306";

/// A MySQL server for the tests. A throwaway server is stopped when this drops.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) origin: &'static str,
    child: Option<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a server answers at `LARS_MYSQL_URL` (or its default).
pub(crate) fn reachable() -> bool {
    let url = std::env::var("LARS_MYSQL_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
    host_port(&url).is_ok_and(|addr| answers(&addr, Duration::from_secs(2)))
}

pub(crate) fn ensure() -> Result<Server, String> {
    let url = std::env::var("LARS_MYSQL_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
    let addr = host_port(&url)?;
    if answers(&addr, Duration::from_secs(2)) {
        return Ok(Server { url, origin: "LARS_MYSQL_URL", child: None });
    }
    println!("nothing answers at {addr} ({url})");
    let Some(mariadbd) = super::setup::find("mariadbd") else {
        return Err(format!(
            "no MySQL at {url}, and mariadbd is not installed to start a throwaway one.\n\
             Start MariaDB or MySQL there, point LARS_MYSQL_URL at a server \
             (mysql://user:password@host:port), or install MariaDB: apt-get install mariadb-server"
        ));
    };
    start_throwaway(&mariadbd)
}

/// `host:port` of a `mysql://[user[:password]@]host[:port][/db]` URL.
fn host_port(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("mysql://")
        .ok_or_else(|| format!("LARS_MYSQL_URL `{url}` must start with mysql://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.is_empty() {
        return Err(format!("LARS_MYSQL_URL `{url}` names no host"));
    }
    Ok(if host_port.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        host_port.to_string()
    } else {
        format!("{host_port}:3306")
    })
}

/// The host, port, user and password of a `mysql://[user[:password]@]host[:port][/db]` URL
/// (user `root` and no password when it names none), for the `[mysql]` keys of a daemon's
/// `.conf` and for the `mariadb` client.
pub(crate) fn parts(url: &str) -> Result<(String, u16, String, String), String> {
    let host_port = host_port(url)?;
    let (host, port) = host_port.rsplit_once(':').ok_or_else(|| format!("no port in {host_port}"))?;
    let port = port.parse().map_err(|_| format!("`{port}` is not a port"))?;
    let authority = url.trim_start_matches("mysql://").split(['/', '?']).next().unwrap_or_default();
    let (user, password) = match authority.rsplit_once('@') {
        Some((credentials, _)) => match credentials.split_once(':') {
            Some((user, password)) => (user.to_string(), password.to_string()),
            None => (credentials.to_string(), String::new()),
        },
        None => ("root".to_string(), String::new()),
    };
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port, user, password))
}

fn answers(addr: &str, timeout: Duration) -> bool {
    let Ok(addrs) = addr.to_socket_addrs() else { return false };
    addrs.into_iter().any(|a: SocketAddr| TcpStream::connect_timeout(&a, timeout).is_ok())
}

fn start_throwaway(mariadbd: &Path) -> Result<Server, String> {
    let dir = super::root().join("target/mariadb");
    let data = dir.join("data");
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let user = if is_root { "root".to_string() } else { std::env::var("USER").unwrap_or_default() };
    if !data.join("mysql").is_dir() {
        fs::create_dir_all(&data).map_err(|e| format!("create {}: {e}", data.display()))?;
        let install = super::setup::find("mariadb-install-db")
            .ok_or("mariadb-install-db not found next to mariadbd")?;
        println!("initialising a throwaway MariaDB in {}", data.display());
        let output = Command::new(install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--user={user}"))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .output()
            .map_err(|e| format!("run mariadb-install-db: {e}"))?;
        if !output.status.success() {
            let _ = fs::remove_dir_all(&data);
            return Err(format!("mariadb-install-db failed:\n{}", String::from_utf8_lossy(&output.stderr)));
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("find a free port: {e}"))?
        .port();
    let log = dir.join("mariadbd.log");
    let child = Command::new(mariadbd)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--log-error={}", log.display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        // A private, loopback-only server for one test run: no accounts to set up.
        .arg("--skip-grant-tables")
        .arg(format!("--user={user}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {}: {e}", mariadbd.display()))?;
    let mut server = Server {
        url: format!("mysql://root@127.0.0.1:{port}"),
        origin: "throwaway mariadbd",
        child: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(child) = &mut server.child
            && let Ok(Some(status)) = child.try_wait()
        {
            return Err(format!("mariadbd exited with {status}; see {}", log.display()));
        }
        if answers(&format!("127.0.0.1:{port}"), Duration::from_millis(200)) {
            println!("started a throwaway MariaDB on 127.0.0.1:{port} (log: {})", log.display());
            return Ok(server);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("mariadbd did not answer on port {port} within 60 s; see {}", log.display()))
}

#[cfg(test)]
mod tests {
    use super::{host_port, parts};

    #[test]
    fn url_host_and_port() {
        assert_eq!(host_port("mysql://root@127.0.0.1:3306").unwrap(), "127.0.0.1:3306");
        assert_eq!(host_port("mysql://app:pw@db.example:3307/lars_dns?x=1").unwrap(), "db.example:3307");
        assert_eq!(host_port("mysql://localhost").unwrap(), "localhost:3306");
        assert!(host_port("postgres://x").is_err());
        assert!(host_port("mysql:///db").is_err());
        let owned = |(h, p, u, w): (&str, u16, &str, &str)| (h.into(), p, u.into(), w.into());
        assert_eq!(parts("mysql://root@127.0.0.1:3306"), Ok(owned(("127.0.0.1", 3306, "root", ""))));
        assert_eq!(parts("mysql://app:pw@db:3307/lars_dns"), Ok(owned(("db", 3307, "app", "pw"))));
        assert_eq!(parts("mysql://localhost"), Ok(owned(("localhost", 3306, "root", ""))));
    }
}
