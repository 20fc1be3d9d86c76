//! The `lars` CLI's exit codes, run as an operator runs it: a dead daemon is "no answer" (75)
//! like a dead agent, a refusal is 2, a broken answer and a missing statistics file fail with
//! a message, and each command's help lists the exit codes it can end with.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Output};

use lars_core::wire::{Decode, Frame, MsgId, RetCode, frame, native};

fn lars(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lars")).args(args).env_remove("LARS_LOG").output().expect("run lars")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A loopback TCP port with nothing listening on it.
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A native agent that holds every route as one host, and answers every `get_host` with `code`
/// and `host`, each answer `delay` after its request.
fn agent_answering(code: RetCode, host: Option<SocketAddr>, delay: std::time::Duration) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut request, mut reply) = ([0u8; 512], [0u8; 512]);
        let route_host = native::WeightedHost { addr: SocketAddr::from(([10, 9, 0, 1], 80)), weight: 1 };
        while let Ok((n, from)) = socket.recv_from(&mut request) {
            let frame = Frame::parse_datagram(&request[..n], frame::MAX_BODY).unwrap();
            let len = match frame.msgid {
                MsgId::NativeGetRouteRequest => {
                    let asked = native::GetRouteRequest::parse(frame.body).unwrap();
                    let (seq, modid, cmdid) = (asked.seq, asked.modid, asked.cmdid);
                    let hosts = lars_core::wire::List::from_slice(std::slice::from_ref(&route_host));
                    let route =
                        native::RouteResponse { seq, modid, cmdid, code: RetCode::Succ, version: 1, hosts };
                    frame::encode(MsgId::NativeRouteResponse, &route, &mut reply).unwrap()
                }
                MsgId::NativeGetHostRequest => {
                    let asked = native::GetHostRequest::parse(frame.body).unwrap();
                    let (seq, modid, cmdid) = (asked.seq, asked.modid, asked.cmdid);
                    let answer = native::GetHostResponse { seq, modid, cmdid, code, host };
                    frame::encode(MsgId::NativeGetHostResponse, &answer, &mut reply).unwrap()
                }
                _ => continue,
            };
            std::thread::sleep(delay);
            socket.send_to(&reply[..len], from).unwrap();
        }
    });
    addr
}

#[test]
fn a_dead_daemon_is_no_answer_like_a_dead_agent() {
    for daemon in ["--dns", "--reporter"] {
        let dead = closed_port().to_string();
        let out = lars(&["stats", daemon, &dead]);
        assert_eq!(out.status.code(), Some(75), "lars stats {daemon}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!("nothing answers at {dead}")), "{stderr}");
        // And why: the connection's own error follows.
        let (_, cause) = stderr.split_once("(is the daemon running?): ").unwrap_or_default();
        assert!(!cause.trim().is_empty(), "the cause is printed: {stderr}");
    }
}

#[test]
fn a_daemon_that_never_answers_is_no_answer_naming_its_address_not_the_agent() {
    // Accepts (the kernel's backlog), never reads.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    for daemon in ["--dns", "--reporter"] {
        let out = lars(&["stats", daemon, &addr, "--timeout-ms", "100"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(75), "lars stats {daemon}: {stderr}");
        assert!(stderr.contains(&format!("no answer from {addr} in time")), "{stderr}");
        assert!(!stderr.contains("agent"), "{stderr}");
    }
}

#[test]
fn a_refusal_exits_2_and_says_why_and_a_success_without_a_host_is_malformed() {
    let full = agent_answering(RetCode::SystemError, None, std::time::Duration::ZERO).to_string();
    let out = lars(&["get-host", "5", "1", "--agent", &full, "--codec", "native"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("route table is full of routes in use"), "{}", text(&out.stderr));

    let hostless = agent_answering(RetCode::Succ, None, std::time::Duration::ZERO).to_string();
    let out = lars(&["get-host", "5", "1", "--agent", &hostless, "--codec", "native"]);
    assert_eq!(out.status.code(), Some(70), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("malformed answer from the agent: a success without a host"), "{stderr}");
}

#[test]
fn status_of_a_missing_statistics_file_fails_naming_it() {
    let out = lars(&["status", "--stats-file", "/nonexistent/x"]);
    assert_eq!(out.status.code(), Some(70), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("/nonexistent/x"), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "no table");
}

#[test]
fn each_commands_help_lists_its_own_exit_codes() {
    let exit_codes = |command: &str| {
        let out = lars(&[command, "--help"]);
        assert!(out.status.success(), "lars {command} --help: {}", text(&out.stderr));
        let help = text(&out.stdout);
        let (_, codes) = help.split_once("exit codes:\n").unwrap_or_else(|| panic!("{help}"));
        codes.lines().filter_map(|line| line.split_whitespace().next()?.parse().ok()).collect::<Vec<u8>>()
    };
    assert_eq!(exit_codes("get-host"), [0, 1, 2, 3, 64, 75, 70]);
    assert_eq!(exit_codes("get-route"), [0, 3, 64, 75, 70]);
    assert_eq!(exit_codes("stats"), [0, 64, 75, 70]);
    for local in ["route", "status", "db-init"] {
        assert_eq!(exit_codes(local), [0, 64, 70], "lars {local} talks to no agent");
    }
    let out = lars(&["bench", "--help"]);
    assert_eq!(text(&out.stdout).lines().next(), Some("usage: lars bench"));
}

#[test]
fn timeout_ms_sets_the_wait_for_each_answer_and_is_checked() {
    // Agents whose every answer comes 300 ms and 150 ms after its request. The first is too
    // late for the default wait (200 ms) and in time for 5 s: the flag raises the wait. The
    // second is in time for the default and too late for 20 ms (three tries take 60 ms): the
    // flag lowers it.
    let host = SocketAddr::from(([10, 9, 0, 1], 80));
    let slow = agent_answering(RetCode::Succ, Some(host), std::time::Duration::from_millis(300)).to_string();
    let patient =
        lars(&["get-host", "5", "1", "--agent", &slow, "--codec", "native", "--timeout-ms", "5000"]);
    assert_eq!(patient.status.code(), Some(0), "{}", text(&patient.stderr));
    assert!(text(&patient.stdout).contains("10.9.0.1:80"), "{}", text(&patient.stdout));
    let prompt =
        agent_answering(RetCode::Succ, Some(host), std::time::Duration::from_millis(150)).to_string();
    let hasty = lars(&["get-host", "5", "1", "--agent", &prompt, "--codec", "native", "--timeout-ms", "20"]);
    assert_eq!(hasty.status.code(), Some(75), "{}", text(&hasty.stderr));
    assert!(text(&hasty.stderr).contains("no answer from the agent"), "{}", text(&hasty.stderr));

    for bad in ["0", "soon"] {
        let out = lars(&["get-host", "5", "1", "--timeout-ms", bad]);
        assert_eq!(out.status.code(), Some(64), "--timeout-ms {bad}");
        assert!(text(&out.stderr).contains(&format!("--timeout-ms: `{bad}`")), "{}", text(&out.stderr));
    }
}
