//! The `lars` CLI against an original Lars agent (a peer that speaks only msgids 4–8, from
//! `lars_tests::original`): with the default `--codec auto` every call command works, and
//! what the original protocol cannot carry is refused with a message and exit code 2.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Command, Output};

use lars_tests::original::OriginalAgent;

fn lars(agent: SocketAddr, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lars"))
        .args(args)
        .args(["--agent", &agent.to_string()])
        .output()
        .expect("run lars")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_call_command_works_against_an_original_agent() {
    let hosts = vec![
        SocketAddrV4::new(Ipv4Addr::new(10, 3, 0, 1), 80),
        SocketAddrV4::new(Ipv4Addr::new(10, 3, 0, 2), 80),
    ];
    let agent = OriginalAgent::start((21, 1), hosts.clone());

    let out = lars(agent.addr, &["get-route", "21", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "version 0\n10.3.0.1:80 weight 1\n10.3.0.2:80 weight 1\n");

    let out = lars(agent.addr, &["get-host", "21", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let host = text(&out.stdout);
    assert!(hosts.iter().any(|h| format!("{h}\n") == host), "{host}");

    let out = lars(agent.addr, &["report", "21", "1", "10.3.0.1:80", "fail"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = lars(agent.addr, &["simulate", "21", "1", "--count", "20", "--interval-ms", "0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let bench = ["bench", "--threads", "1", "--seconds", "1", "--modid-base", "21", "--cmdid", "1"];
    let out = lars(agent.addr, &bench);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.lines().any(|line| line.trim_start().starts_with("21 ")), "{table}");

    // One report, 20 from simulate, and one per pick bench made.
    let reports = agent.reports.lock().unwrap().clone();
    assert!(reports.len() > 21, "{} reports", reports.len());
    assert_eq!(reports[0], (21, 1, hosts[0], 1), "the report came as msgid 6 with retcode 1");

    let out = lars(agent.addr, &["get-host", "21", "1", "--key", "7"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("original Lars protocol, which has no hash key"), "{stderr}");
    let out = lars(agent.addr, &[&bench[..], &["--lease"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no leases"), "{}", text(&out.stderr));
}

#[test]
fn codec_native_against_an_original_agent_times_out_and_a_bad_codec_is_a_usage_error() {
    let agent = OriginalAgent::start((22, 1), vec![SocketAddrV4::new(Ipv4Addr::new(10, 3, 0, 1), 80)]);
    let out = lars(agent.addr, &["get-host", "22", "1", "--codec", "native"]);
    assert_eq!(out.status.code(), Some(75), "a timeout has its own exit code");
    assert!(text(&out.stderr).contains("no answer from the agent"), "{}", text(&out.stderr));
    let out = lars(agent.addr, &["get-host", "22", "1", "--codec", "original"]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--codec: `original` is not auto, native or lars"), "{stderr}");
}

/// Exit codes tell a missing route and a timeout from an internal error; each command takes
/// only its own flags and has its own help.
#[test]
fn exit_codes_flags_and_help_per_command() {
    let agent = OriginalAgent::start((23, 1), vec![SocketAddrV4::new(Ipv4Addr::new(10, 3, 0, 1), 80)]);
    let out = lars(agent.addr, &["get-host", "24", "1"]);
    assert_eq!(out.status.code(), Some(3), "no such route: {}", text(&out.stderr));
    let out = lars(agent.addr, &["get-route", "23", "1", "--weight", "2"]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("get-route: unknown flag --weight"), "{stderr}");
    assert!(stderr.contains("usage: lars get-route MODID CMDID"), "the command's own usage: {stderr}");
    let out = lars(agent.addr, &["report", "--help"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("--latency-us N"), "{}", text(&out.stdout));
    let out = Command::new(env!("CARGO_BIN_EXE_lars")).arg("--version").output().unwrap();
    assert_eq!(text(&out.stdout), format!("lars {}\n", env!("CARGO_PKG_VERSION")));
}

/// As the original `get_host` and `report` tools do, `lars get-host` and `lars report` make a
/// fresh agent fetch the route first: the first call is answered, and the report is counted.
#[test]
fn get_host_and_report_work_on_a_route_the_agent_has_not_seen() {
    use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
    use lars_std::dns::{Dns, DnsConfig};
    use lars_std::reactor::ServerConfig;
    use lars_std::reporter::{Reporter, ReporterConfig};
    use lars_std::store::memory::{MemoryRoutes, MemoryStats};

    let server = || ServerConfig::new("127.0.0.1:0".parse().unwrap());
    let routes = MemoryRoutes::new();
    routes.set_route((41, 1), &["10.5.0.1:80".parse().unwrap()]);
    routes.set_route((42, 1), &["10.5.0.2:80".parse().unwrap()]);
    let dns = Dns::start(DnsConfig::new(server()), Box::new(routes.clone())).unwrap();
    let stats = MemoryStats::new();
    let store = stats.clone();
    let reporter = Reporter::start(ReporterConfig::new(server()), move |_| Box::new(store.clone())).unwrap();
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter.local_addr()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap()];
    let agent = AgentDaemon::start(config).unwrap();
    let api = agent.api_addrs()[0];

    let out = lars(api, &["get-host", "41", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "10.5.0.1:80\n");
    let out = lars(api, &["report", "42", "1", "10.5.0.2:80", "ok"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    lars_tests::eventually("the report is stored", || {
        stats.rows().iter().any(|row| (row.modid, row.cmdid, row.succ) == (42, 1, 1))
    });
}
