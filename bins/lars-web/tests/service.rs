//! lars-web run as a Linux service, as the other daemons are: readiness and stop told to
//! systemd, SIGHUP and SIGUSR1 answered without a restart, `--check-config` with the origin of
//! every value, the exit codes of `sysexits.h`, its metrics page, and `user add`.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../tests/src/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use process::{DaemonProcess, check_lifecycle, scratch, status_addr};

const EXE: &str = env!("CARGO_BIN_EXE_lars-web");

/// `GET path`: the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut conn = TcpStream::connect(addr).expect("it accepts connections once it is ready");
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

fn route_file(dir: &std::path::Path) -> String {
    let routes = dir.join("routes.conf");
    std::fs::write(&routes, "1001 1 10.0.0.1:80\n").unwrap();
    routes.to_str().unwrap().to_string()
}

#[test]
fn it_tells_systemd_when_it_serves_and_survives_sighup_and_sigusr1() {
    let dir = scratch("web-service");
    let routes = route_file(&dir);
    let state = dir.join("state");
    let args = ["--routes", &routes, "--state", state.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    let log = check_lifecycle(EXE, &args, &dir, |status| {
        let (line, _) = get(status_addr(status), "/login");
        assert_eq!(line, "HTTP/1.1 200 OK", "the sign-in page is served");
    });
    assert!(log.contains("INFO  lars-web: listening on 127.0.0.1:"), "{log}");
    assert!(log.contains("WARN  lars-web: no user exists yet"), "{log}");
    assert!(log.contains("counters: requests_2xx=1 "), "SIGUSR1 came after one page: {log}");
    assert!(state.join("secret").is_file(), "the session key was made in the state directory");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_shows_where_each_value_came_from() {
    let dir = scratch("web-check-config");
    let conf = dir.join("lars-web.conf");
    std::fs::write(
        &conf,
        "[web]\nlisten = 127.0.0.1:8081\nstate = /var/lib/lars-web\nthreds = 2\n[log]\nformat = json\n\
         [mysql]\ndb_host = 127.0.0.1\ndb_passwd = s3cret\n[pool]\nsmallBlocks = 9\n",
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let out = Command::new(EXE)
        .args(["--config", conf, "--check-config", "--secure-cookies"])
        .env("LARS_WEB_THREADS", "8")
        .env("LARS_METRICS_LISTEN", "9464")
        .env_remove("LARS_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    // `key = value  # origin` in `[section]`.
    let line = |section: &str, key: &str| {
        let body = stdout.split(&format!("\n[{section}]\n")).nth(1).unwrap_or_default();
        let body = body.split("\n\n").next().unwrap_or_default().to_string();
        body.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("[{section}] {key} in {stdout}"))
            .to_string()
    };
    let origin =
        |section: &str, key: &str| line(section, key).split_once(" # ").map(|(_, o)| o.to_string()).unwrap();
    assert_eq!(origin("web", "listen"), format!("{conf}:2"));
    assert_eq!(origin("web", "threads"), "environment variable LARS_WEB_THREADS");
    assert_eq!(origin("web", "secure_cookies"), "flag --secure-cookies");
    assert!(!stdout.contains("routes = "), "with [mysql], the route file is not read: {stdout}");
    assert_eq!(origin("log", "format"), format!("{conf}:6"));
    assert_eq!(origin("log", "level"), "default");
    assert_eq!(origin("metrics", "listen"), "environment variable LARS_METRICS_LISTEN");
    assert_eq!(origin("mysql", "db_host"), format!("{conf}:8"));
    assert!(line("mysql", "db_passwd").starts_with("db_passwd = (hidden)"), "{stdout}");
    assert!(!stdout.contains("s3cret"), "the password is not shown: {stdout}");
    assert!(!stdout.contains("[pool]"), "lars-web has no buffer pool: {stdout}");
    // The warnings are JSON lines, as [log] format says.
    assert!(
        stderr.lines().any(|l| l.starts_with('{')
            && l.contains("\"level\":\"warn\"")
            && l.contains("unknown key (did you mean `threads`?)")),
        "{stderr}"
    );
    assert!(stderr.contains("unknown section [pool]"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_codes_say_usage_or_configuration() {
    let code = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(EXE);
        command.args(args).env_remove("LARS_LOG");
        for (name, value) in env {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (usage, stderr) = code(&["--no-such-flag"], &[]);
    assert_eq!(usage, Some(64), "EX_USAGE: {stderr}");
    let (usage, stderr) = code(&["serve"], &[]);
    assert_eq!(usage, Some(64), "EX_USAGE: {stderr}");
    let (none, stderr) = code(&["--check-config"], &[]);
    assert_eq!(none, Some(78), "no store is a configuration error: {stderr}");
    assert!(stderr.contains("key `web.routes`: no store"), "{stderr}");
    let (listen, stderr) = code(&["--check-config", "--routes", "r"], &[("LARS_WEB_LISTEN", "8080")]);
    assert_eq!(listen, Some(78), "{stderr}");
    assert!(stderr.contains("environment variable LARS_WEB_LISTEN: key `web.listen`"), "{stderr}");
    let (threads, stderr) = code(&["--check-config", "--routes", "r", "--threads", "0"], &[]);
    assert_eq!(threads, Some(78), "{stderr}");
    assert!(stderr.contains("flag --threads: key `web.threads`: must be from 1 to 256"), "{stderr}");
}

#[test]
fn its_metrics_page_counts_what_it_answered() {
    let dir = scratch("web-metrics");
    let routes = route_file(&dir);
    let state = dir.join("state");
    let args = [
        "--routes",
        &routes,
        "--state",
        state.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ];
    let mut web = DaemonProcess::start(EXE, &args, &[], &dir);
    let status = web.wait_ready();
    let console = status_addr(&status);
    let metrics: SocketAddr = status
        .split_once("metrics on http://")
        .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("the metrics address in {status:?}"));
    assert_eq!(get(console, "/login").0, "HTTP/1.1 200 OK");
    assert_eq!(get(console, "/services").0, "HTTP/1.1 303 See Other", "to the sign-in page");
    assert_eq!(get(console, "/nothing-here").0, "HTTP/1.1 404 Not Found");
    let (line, page) = get(metrics, "/metrics");
    assert_eq!(line, "HTTP/1.1 200 OK");
    for series in [
        "lars_web_requests_total{class=\"2xx\"} 1",
        "lars_web_requests_total{class=\"3xx\"} 1",
        "lars_web_requests_total{class=\"4xx\"} 1",
        "lars_web_logins_total{result=\"ok\"} 0",
        "lars_web_errors_total{kind=\"store\"} 0",
    ] {
        assert!(page.contains(series), "{series} in\n{page}");
    }
    assert!(web.stop().success(), "{}", web.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn user_add_reads_the_password_from_standard_input() {
    let dir = scratch("web-user-add");
    let state = dir.join("state");
    let mut child = Command::new(EXE)
        .args(["user", "add", "alice", "--role", "admin", "--state", state.to_str().unwrap()])
        .env_remove("LARS_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a long enough password\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("user alice (admin) saved in"), "{stdout}");
    let users = std::fs::read_to_string(state.join("users")).unwrap();
    assert!(users.contains("alice") && !users.contains("a long enough password"), "{users}");
    let missing_role = Command::new(EXE).args(["user", "add", "bob"]).output().unwrap();
    assert_eq!(missing_role.status.code(), Some(64));
    let _ = std::fs::remove_dir_all(&dir);
}
