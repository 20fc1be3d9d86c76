//! lars-web run as a Linux service, as the other daemons are: readiness and stop told to
//! systemd, SIGHUP and SIGUSR1 answered without a restart, `--check-config` with the origin of
//! every value, the exit codes of `sysexits.h`, its metrics page, and `user add`.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../tests/src/process.rs"]
mod process;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use process::{
    DaemonProcess, check_lifecycle, config_line, config_origin, http_get, run_to_exit, scratch, status_addr,
};

const EXE: &str = env!("CARGO_BIN_EXE_lars-web");

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
        let (line, _) = http_get(status_addr(status), "/login");
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
    let env = [("LARS_WEB_THREADS", "8"), ("LARS_METRICS_LISTEN", "9464")];
    let out = run_to_exit(EXE, &["--config", conf, "--check-config", "--secure-cookies"], &env, 0);
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    let line = |section: &str, key: &str| config_line(stdout, section, key);
    let origin = |section: &str, key: &str| config_origin(stdout, section, key);
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
    run_to_exit(EXE, &["--no-such-flag"], &[], 64); // EX_USAGE
    run_to_exit(EXE, &["serve"], &[], 64);
    // No store is a configuration error (EX_CONFIG).
    let stderr = run_to_exit(EXE, &["--check-config"], &[], 78).stderr;
    assert!(stderr.contains("key `web.routes`: no store"), "{stderr}");
    let env = [("LARS_WEB_LISTEN", "8080")];
    let stderr = run_to_exit(EXE, &["--check-config", "--routes", "r"], &env, 78).stderr;
    assert!(stderr.contains("environment variable LARS_WEB_LISTEN: key `web.listen`"), "{stderr}");
    let stderr = run_to_exit(EXE, &["--check-config", "--routes", "r", "--threads", "0"], &[], 78).stderr;
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
    assert_eq!(http_get(console, "/login").0, "HTTP/1.1 200 OK");
    assert_eq!(http_get(console, "/services").0, "HTTP/1.1 303 See Other", "to the sign-in page");
    assert_eq!(http_get(console, "/nothing-here").0, "HTTP/1.1 404 Not Found");
    let (line, page) = http_get(metrics, "/metrics");
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
    run_to_exit(EXE, &["user", "add", "bob"], &[], 64);
    let _ = std::fs::remove_dir_all(&dir);
}
