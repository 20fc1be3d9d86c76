//! lars-dns run as a Linux service: readiness and stop told to systemd, SIGHUP and SIGUSR1
//! answered without a restart, `--check-config` with the origin of every value, unknown keys
//! named, and the exit codes of `sysexits.h`.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../tests/src/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use process::{
    DaemonProcess, check_lifecycle, config_line, config_origin, run_to_exit, scratch, status_addr,
};

const EXE: &str = env!("CARGO_BIN_EXE_lars-dns");

/// Asks for route 1001/1 in the Lars codec (GetRouteRequest, msgid 1) and checks that the
/// answer (msgid 2) names the one host of the route file.
fn serves_the_route(status: &str) {
    let mut stream =
        TcpStream::connect(status_addr(status)).expect("it accepts connections once it is ready");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // modid = 1001 (field 1), cmdid = 1 (field 2)
    let body = [0x08, 0xe9, 0x07, 0x10, 0x01];
    let mut frame = vec![1, 0, 0, 0, body.len() as u8, 0, 0, 0];
    frame.extend_from_slice(&body);
    stream.write_all(&frame).unwrap();
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).expect("an answer");
    assert_eq!(header[0], 2, "GetRouteResponse");
}

#[test]
fn it_tells_systemd_when_it_serves_and_survives_sighup_and_sigusr1() {
    let dir = scratch("dns-service");
    let routes = dir.join("routes.conf");
    std::fs::write(&routes, "1001 1 10.0.0.1:80\n").unwrap();
    let args = ["--routes", routes.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    let log = check_lifecycle(EXE, &args, &dir, serves_the_route);
    assert!(log.contains("INFO  lars-dns: loaded 1 routes, 1 hosts from route file"), "{log}");
    assert!(log.contains("counters: loads="), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_line_repeated_from_one_place_is_written_ten_times_then_summed_up() {
    let dir = scratch("dns-rate-limit");
    let routes = dir.join("routes.conf");
    std::fs::write(&routes, "").unwrap();
    let args = ["--routes", routes.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    let mut dns = DaemonProcess::start(EXE, &args, &[], &dir);
    dns.wait_ready();
    let written = |log: &str| log.lines().filter(|l| l.contains("lars-dns: counters: ")).count();
    // One signal at a time, each after the last one's line is out: signals sent together
    // coalesce, and would leave fewer lines for a reason that is not the limit.
    for line in 1..=10 {
        dns.signal(rustix::process::Signal::USR1);
        assert!(dns.wait_for_log_where(|log| written(log) == line), "counters line {line}:\n{}", dns.log());
    }
    for _ in 0..5 {
        dns.signal(rustix::process::Signal::USR1);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The summary comes once the ten-second window has ended (the daemon looks every second),
    // not at the stop: a stop taken before the last signals would leave nothing to sum up.
    let summed_up = " more like this suppressed in the last ";
    assert!(dns.wait_for_log(summed_up), "no summary line after the window:\n{}", dns.log());
    assert!(dns.stop().success());
    let log = dns.log();
    assert_eq!(written(&log), 10, "ten lines from one call site in 10 s:\n{log}");
    let summary = log.lines().find(|l| l.contains(summed_up)).unwrap_or_default();
    let suppressed: usize = summary
        .split_once(" more like this")
        .and_then(|(before, _)| before.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("a summary line:\n{log}"));
    // The five after the tenth: at least the first is delivered alone, so it is suppressed.
    assert!((1..=5).contains(&suppressed) && summary.contains("counters: loads="), "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_shows_where_each_value_came_from() {
    let dir = scratch("dns-check-config");
    let conf = dir.join("lars-dns.conf");
    std::fs::write(
        &conf,
        "[reactor]\nmaxConns = 10\nport = 7000\n[log]\nlevel = debug\n[mysql]\ndb_host = 127.0.0.1\ndb_passwd = s3cret\n",
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let args = ["--config", conf, "--check-config", "--threads", "2"];
    let out = run_to_exit(EXE, &args, &[("LARS_REACTOR_IP", "127.0.0.2")], 0);
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    let origin = |section: &str, key: &str| config_origin(stdout, section, key);
    assert_eq!(origin("reactor", "port"), format!("{conf}:3"));
    assert_eq!(origin("reactor", "ip"), "environment variable LARS_REACTOR_IP");
    assert_eq!(origin("reactor", "threadNum"), "flag --threads");
    assert_eq!(origin("reactor", "maxConn"), "default");
    assert_eq!(origin("log", "level"), format!("{conf}:5"));
    assert!(config_line(stdout, "mysql", "db_passwd").starts_with("db_passwd = (hidden)"), "{stdout}");
    assert!(!stdout.contains("s3cret"), "the password is not shown: {stdout}");
    assert!(
        stderr.contains(&format!(
            "{conf}:2: key `reactor.maxConns`: unknown key (did you mean `maxConn`?): ignored"
        )),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_codes_say_usage_or_configuration() {
    run_to_exit(EXE, &["--no-such-flag"], &[], 64); // EX_USAGE
    // EX_CONFIG
    let stderr = run_to_exit(EXE, &["--check-config"], &[("LARS_REACTOR_PORT", "77x")], 78).stderr;
    assert!(stderr.contains("environment variable LARS_REACTOR_PORT: key `reactor.port`"), "{stderr}");
    let stderr = run_to_exit(EXE, &["--check-config", "--log-level", "loud"], &[], 78).stderr;
    assert!(stderr.contains("flag --log-level: key `log.level`: `loud` is not off, error"), "{stderr}");
}
