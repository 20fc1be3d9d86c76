//! The system on its embedded default, the route file, and with peers that speak only the
//! original Lars protocol (msgids 1–8): an original API talking to our agent, and an original
//! agent talking to our lars-dns.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use lars_core::wire::frame::{self, MAX_BODY};
use lars_core::wire::{Decode, Frame, MsgId, RetCode, lars};
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::{Client, ClientConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::file::RouteFile;
use lars_std::store::memory::MemoryStats;
use lars_tests::{FrameClient, Scratch, eventually};

fn loopback(addr: &str) -> ServerConfig {
    let mut config = ServerConfig::new(addr.parse().unwrap());
    config.threads = 2;
    config
}

fn dns_on(routes: &PathBuf, addr: &str) -> Dns {
    let mut config = DnsConfig::new(loopback(addr));
    config.poll_interval = Duration::from_millis(50);
    Dns::start(config, Box::new(RouteFile::new(routes))).unwrap()
}

/// Rewrites the route file atomically, as `lars route` does.
fn write_routes(path: &PathBuf, text: &str) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

#[test]
fn the_route_file_drives_the_system_end_to_end() {
    let scratch = Scratch::new("routefile");
    let routes = scratch.0.join("routes.conf");
    write_routes(&routes, "# demo\n4 2 10.2.0.1:80\n4 2 10.2.0.2:80\n");
    let dns = dns_on(&routes, "127.0.0.1:0");
    let dns_addr = dns.local_addr();
    let stats = MemoryStats::new();
    let store = stats.clone();
    let reporter =
        Reporter::start(ReporterConfig::new(loopback("127.0.0.1:0")), move |_| Box::new(store.clone()))
            .unwrap();
    let mut config = AgentDaemonConfig::new(vec![dns_addr], vec![reporter.local_addr()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });

    assert_eq!(client.reg_init(4, 2, 20).unwrap().hosts.len(), 2, "the route reaches get_route");
    let gone = SocketAddr::from(([10, 2, 0, 1], 80));
    write_routes(&routes, "4 2 10.2.0.2:80\n4 2 10.2.0.3:80\n");
    eventually("the edit is pushed", || {
        client.get_route(4, 2).is_ok_and(|r| r.hosts.iter().all(|h| h.addr != gone))
    });
    for _ in 0..20 {
        let host = client.get_host(4, 2, None).unwrap();
        assert_ne!(host, gone, "a deleted host is not handed out");
        client.report(4, 2, host, lars_std::client::Outcome::Ok, Duration::from_micros(100)).unwrap();
    }
    eventually("the reporter has the rows", || stats.rows().iter().map(|r| r.succ).sum::<u32>() == 20);

    // A bad edit is refused with its line, and the last good routes keep serving.
    write_routes(&routes, "4 2 10.2.0.2:80\n4 two 10.2.0.9:80\n");
    eventually("the bad edit is counted as a load error", || {
        dns.stats().load_errors.load(std::sync::atomic::Ordering::Relaxed) > 0
    });
    assert_eq!(dns.snapshot().hosts((4, 2)).len(), 2);

    // lars-dns dies; the agent serves what it has; a new lars-dns on the same port resumes.
    dns.shutdown();
    assert!(client.get_host(4, 2, None).is_ok(), "cached hosts keep serving");
    write_routes(&routes, "4 2 10.2.0.7:80\n");
    let restarted = (0..100)
        .find_map(|_| {
            let mut config = DnsConfig::new(ServerConfig { addr: dns_addr, ..loopback("127.0.0.1:0") });
            config.poll_interval = Duration::from_millis(50);
            let started = Dns::start(config, Box::new(RouteFile::new(&routes)));
            if started.is_err() {
                std::thread::sleep(Duration::from_millis(50));
            }
            started.ok()
        })
        .expect("lars-dns restarts on its port");
    eventually("the agent re-pulls from the new lars-dns", || {
        client
            .get_route(4, 2)
            .is_ok_and(|r| r.hosts.len() == 1 && r.hosts[0].addr == SocketAddr::from(([10, 2, 0, 7], 80)))
    });
    drop(restarted);
}

/// Sends one Lars frame on `socket` and reads the answer.
fn lars_call(
    socket: &UdpSocket,
    msgid: MsgId,
    body: &impl lars_core::wire::Encode,
) -> Option<(MsgId, Vec<u8>)> {
    let mut out = vec![0; 512];
    let n = frame::encode(msgid, body, &mut out).unwrap();
    socket.send(&out[..n]).unwrap();
    if matches!(msgid, MsgId::ReportRequest) {
        return None;
    }
    let mut buf = vec![0; 70_000];
    let n = socket.recv(&mut buf).unwrap();
    let frame = Frame::parse_datagram(&buf[..n], MAX_BODY).unwrap();
    Some((frame.msgid, frame.body.to_vec()))
}

#[test]
fn an_original_api_client_is_answered_in_the_lars_protocol() {
    let scratch = Scratch::new("compat-api");
    let routes = scratch.0.join("routes.conf");
    write_routes(&routes, "11 1 192.168.1.177:7777\n");
    let dns = dns_on(&routes, "127.0.0.1:0");
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec!["127.0.0.1:9".parse().unwrap()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    let agent = AgentDaemon::start(config).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    socket.connect(agent.api_addrs()[(11 + 1) % 3]).unwrap();

    // reg_init: get_route until it has hosts (msgid 7, answered with 8).
    let want = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 177), 7777);
    eventually("the agent has the route", || {
        let (id, body) =
            lars_call(&socket, MsgId::ApiGetRouteRequest, &lars::GetRouteRequest { modid: 11, cmdid: 1 })
                .unwrap();
        let route = lars::GetRouteResponse::parse(&body).unwrap();
        id == MsgId::ApiGetRouteResponse
            && (route.modid, route.cmdid) == (11, 1)
            && route.hosts.iter().eq([want])
    });
    // get_host (4 → 5) echoes seq, modid and cmdid, and carries the host.
    let (id, body) =
        lars_call(&socket, MsgId::GetHostRequest, &lars::GetHostRequest { seq: 41, modid: 11, cmdid: 1 })
            .unwrap();
    let answer = lars::GetHostResponse::parse(&body).unwrap();
    assert_eq!(id, MsgId::GetHostResponse);
    assert_eq!(
        (answer.seq, answer.modid, answer.cmdid, answer.retcode, answer.host),
        (41, 11, 1, 0, Some(want))
    );
    // report (6): retcode 1 is a failure; 15 of them overload the only host.
    for _ in 0..15 {
        lars_call(
            &socket,
            MsgId::ReportRequest,
            &lars::ReportRequest { modid: 11, cmdid: 1, host: Some(want), retcode: 1 },
        );
    }
    eventually("overloaded after 15 failures", || {
        let (_, body) =
            lars_call(&socket, MsgId::GetHostRequest, &lars::GetHostRequest { seq: 42, modid: 11, cmdid: 1 })
                .unwrap();
        lars::GetHostResponse::parse(&body).unwrap().retcode == RetCode::Overload.as_i32()
    });
    // An unknown route answers code 3 while it is pulled.
    let (_, body) =
        lars_call(&socket, MsgId::GetHostRequest, &lars::GetHostRequest { seq: 43, modid: 99, cmdid: 9 })
            .unwrap();
    assert_eq!(lars::GetHostResponse::parse(&body).unwrap().retcode, RetCode::NoExist.as_i32());
}

#[test]
fn an_original_agent_is_served_and_pushed_to_by_lars_dns() {
    let scratch = Scratch::new("compat-dns");
    let routes = scratch.0.join("routes.conf");
    write_routes(&routes, "1 1 192.168.1.177:7777\n");
    let dns = dns_on(&routes, "127.0.0.1:0");
    let mut agent = FrameClient::connect(dns.local_addr()).unwrap();
    let mut request = vec![0; 64];
    let n =
        frame::encode(MsgId::GetRouteRequest, &lars::GetRouteRequest { modid: 1, cmdid: 1 }, &mut request)
            .unwrap();
    agent.write(&request[..n]).unwrap();
    let (id, body) = agent.read_frame().unwrap();
    assert_eq!(id, MsgId::GetRouteResponse.as_u32());
    let route = lars::GetRouteResponse::parse(&body).unwrap();
    assert_eq!(
        route.hosts.iter().collect::<Vec<_>>(),
        [SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 177), 7777)]
    );
    // The modid-0/cmdid-0 request is an empty body (it crashed the original, D-R-3).
    agent.write(&[1, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    let (id, body) = agent.read_frame().unwrap();
    assert_eq!((id, lars::GetRouteResponse::parse(&body).unwrap().hosts.len()), (2, 0));
    // A change is pushed on msgid 2 with the full new host list.
    write_routes(&routes, "1 1 192.168.1.177:7777\n1 1 192.168.1.178:7776\n");
    let (id, body) = agent.read_frame().unwrap();
    assert_eq!((id, lars::GetRouteResponse::parse(&body).unwrap().hosts.len()), (2, 2));
    // Removing the route pushes an empty list.
    write_routes(&routes, "\n");
    let (id, body) = agent.read_frame().unwrap();
    assert_eq!((id, lars::GetRouteResponse::parse(&body).unwrap().hosts.len()), (2, 0));
}

#[test]
fn a_route_file_restored_with_an_older_timestamp_still_reaches_agents() {
    let scratch = Scratch::new("backdated");
    let routes = scratch.0.join("routes.conf");
    write_routes(&routes, "6 1 10.6.0.1:80\n");
    let dns = dns_on(&routes, "127.0.0.1:0");
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec!["127.0.0.1:9".parse().unwrap()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    client.reg_init(6, 1, 20).unwrap();
    // A backup put back: new content, but a modification time an hour in the past.
    write_routes(&routes, "6 1 10.6.0.2:80\n");
    let an_hour_ago = std::time::SystemTime::UNIX_EPOCH
        + Duration::from_secs(lars_std::time::Clock::unix_secs().saturating_sub(3600));
    std::fs::File::options().write(true).open(&routes).unwrap().set_modified(an_hour_ago).unwrap();
    eventually("the restored route reaches the agent", || {
        client
            .get_route(6, 1)
            .is_ok_and(|r| r.hosts.len() == 1 && r.hosts[0].addr == SocketAddr::from(([10, 6, 0, 2], 80)))
    });
}
