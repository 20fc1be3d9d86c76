//! lars-agent run as a Linux service: readiness and stop told to systemd, SIGHUP (a new log
//! level and format from the `.conf`) and SIGUSR1 answered without a restart, and a flood of
//! requests for unknown routes that leaves a few lines in the log, not megabytes.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../tests/src/process.rs"]
mod process;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use lars_core::wire::{MsgId, frame, lars::GetHostRequest};
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::store::memory::MemoryRoutes;
use process::{DaemonProcess, check_lifecycle, scratch, status_addr};

const EXE: &str = env!("CARGO_BIN_EXE_lars-agent");

/// lars-dns in process, with route 1001/1 and 1002/1 of one host each.
fn dns() -> Dns {
    let routes = MemoryRoutes::new();
    routes.set_weighted_route((1001, 1), &[("10.7.0.1:80".parse().unwrap(), 1)]);
    routes.set_weighted_route((1002, 1), &[("10.7.0.2:80".parse().unwrap(), 1)]);
    Dns::start(DnsConfig::new(ServerConfig::new("127.0.0.1:0".parse().unwrap())), Box::new(routes)).unwrap()
}

fn get_host(api: SocketAddr, modid: i32) -> SocketAddr {
    let client = Client::new(ClientConfig { agent: vec![api], ..ClientConfig::default() });
    client.reg_init(modid, 1, 100).unwrap();
    client.get_host(modid, 1, None).unwrap()
}

#[test]
fn it_tells_systemd_when_it_serves_and_survives_sighup_and_sigusr1() {
    let dns = dns();
    let dir = scratch("agent-service");
    let dns_addr = dns.local_addr().to_string();
    let args = ["--dns", &dns_addr, "--reporter", "127.0.0.1:9", "--api", "127.0.0.1:0"];
    let log = check_lifecycle(EXE, &args, &dir, |status| {
        assert_eq!(get_host(status_addr(status), 1001).to_string(), "10.7.0.1:80");
    });
    assert!(log.contains("INFO  lars-agent: route 1001/1 updated: 1 host\n"), "the event in words:\n{log}");
    assert!(log.contains("counters: api_requests="), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_applies_the_log_level_and_format_of_the_conf_file() {
    let dns = dns();
    let dir = scratch("agent-reload");
    let conf = dir.join("lars-agent.conf");
    let text = |log: &str| {
        format!(
            "[dnsserver]\nip = 127.0.0.1\nport = {}\n[reporter]\nip = 127.0.0.1\nport = 9\n[log]\n{log}\n",
            dns.local_addr().port()
        )
    };
    std::fs::write(&conf, text("level = warn")).unwrap();
    let args = ["--config", conf.to_str().unwrap(), "--api", "127.0.0.1:0"];
    let mut agent = DaemonProcess::start(EXE, &args, &[], &dir);
    let api = status_addr(&agent.wait_ready());
    get_host(api, 1001);
    std::fs::write(&conf, text("level = info\nformat = json")).unwrap();
    agent.signal(rustix::process::Signal::HUP);
    assert!(agent.wait_for_log("configuration read again"), "{}", agent.log());
    get_host(api, 1002);
    assert!(agent.wait_for_log(r#""message":"route 1002/1 updated: 1 host"}"#), "{}", agent.log());
    let log = agent.log();
    assert!(!log.contains("route 1001/1"), "at level warn, an update is not logged:\n{log}");
    let line = log.lines().find(|l| l.contains("route 1002/1")).unwrap();
    assert!(
        line.starts_with(r#"{"time":""#) && line.contains(r#""level":"info","program":"lars-agent""#),
        "{line}"
    );
    assert!(agent.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flood_of_unknown_routes_writes_a_few_lines() {
    let dns = dns();
    let dir = scratch("agent-flood");
    let dns_addr = dns.local_addr().to_string();
    let args = ["--dns", &dns_addr, "--reporter", "127.0.0.1:9", "--api", "127.0.0.1:0"];
    let mut agent = DaemonProcess::start(EXE, &args, &[], &dir);
    let api = status_addr(&agent.wait_ready());
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut datagram = [0u8; 64];
    let mut answers = [0u8; 2048];
    // 20,000 requests for routes lars-dns does not have, paced so that the agent's table
    // (512 routes) frees as lars-dns answers "no such route": each one a route created and
    // removed, which once wrote two lines each.
    for modid in 0..20_000 {
        let request = GetHostRequest { seq: modid as u32, modid: 100_000 + modid, cmdid: 1 };
        let len = frame::encode(MsgId::GetHostRequest, &request, &mut datagram).unwrap();
        let _ = socket.send_to(&datagram[..len], api);
        if modid % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
            while socket.recv(&mut answers).is_ok() {}
        }
    }
    assert!(agent.stop().success());
    let log = agent.log();
    // Counted either by the agent (route events beyond a few per report interval) or by the
    // log (lines beyond a few per call site).
    let counted: u64 = log
        .lines()
        .filter_map(|line| {
            let (before, _) = line
                .split_once(" more like this suppressed")
                .or_else(|| line.split_once(" more route events"))?;
            before.rsplit(' ').next()?.parse::<u64>().ok()
        })
        .sum();
    assert!(counted >= 200, "the flood was counted, {counted} lines left out:\n{log}");
    assert!(agent.log_len() < 16 * 1024, "{} bytes of log:\n{log}", agent.log_len());
    let _ = std::fs::remove_dir_all(&dir);
}
