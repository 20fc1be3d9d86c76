//! A fleet migrating one part at a time: every mix of original Lars parts and lars parts, on a
//! database made with the original's schema. The original parts are peers written from the
//! protocol (`lars_tests::original`); the lars parts are the real daemons and client.
//!
//! | lars part | against | test |
//! |---|---|---|
//! | lars-dns (MySQL) | original database, original agent | `lars_dns_serves_and_pushes_an_original_database_as_it_is` |
//! | lars-reporter (MySQL) | original database, original and lars agents | `lars_reporter_stores_into_an_original_database` |
//! | `lars route` (RouteAdmin), `db-init` | original database | `route_administration_and_db_init_on_an_original_database` |
//! | lars-agent | original lars_dns and lars_reporter | `the_agent_speaks_lars_to_an_original_dns_and_reporter` |
//! | client (`lars` CLI) | original agent | `the_client_speaks_lars_to_an_original_agent` |
//! | lars-reporter writers | each other | `concurrent_writers_lose_no_row` |

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use mysql::prelude::Queryable;

use lars_core::wire::frame;
use lars_core::wire::{Codec, CodecChoice, Decode, List, MsgId, lars};
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::client::Outcome;
use lars_std::client::{Client, ClientConfig, ClientError};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::console::Actor;
use lars_std::store::mysql::{MysqlRoutes, MysqlStats, RouteAdmin, Schema};
use lars_std::store::{StatRow, StatsStore};
use lars_tests::original::{OriginalAgent, OriginalDns, OriginalReporter};
use lars_tests::{FrameClient, TestDb, eventually};

const A: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);

fn loopback() -> ServerConfig {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 2;
    config
}

fn schema(db: &TestDb) -> Schema {
    Schema::detect(&mut db.conn()).unwrap()
}

fn lars_frame(msgid: MsgId, body: &impl lars_core::wire::Encode) -> Vec<u8> {
    let mut out = vec![0; 70_000];
    let n = frame::encode(msgid, body, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn lars_dns_serves_and_pushes_an_original_database_as_it_is() {
    let db = TestDb::create_original();
    db.console_add(1, 1, A, 7777);
    let mut config = DnsConfig::new(loopback());
    config.poll_interval = Duration::from_millis(100);
    let dns = Dns::start(config, Box::new(MysqlRoutes::new(db.opts.clone()))).unwrap();
    eventually("loaded without a weight column", || dns.snapshot().hosts((1, 1)).len() == 1);
    assert_eq!(dns.snapshot().hosts((1, 1))[0].weight, 1);

    // An original agent: GetRouteRequest (1) answered with GetRouteResponse (2), then pushes.
    let mut agent = FrameClient::connect(dns.local_addr()).unwrap();
    agent.write(&lars_frame(MsgId::GetRouteRequest, &lars::GetRouteRequest { modid: 1, cmdid: 1 })).unwrap();
    let (id, body) = agent.read_frame().unwrap();
    assert_eq!(id, MsgId::GetRouteResponse.as_u32());
    assert_eq!(
        lars::GetRouteResponse::parse(&body).unwrap().hosts.iter().collect::<Vec<_>>(),
        [SocketAddrV4::new(A, 7777)]
    );
    db.console_add(1, 1, B, 7777);
    let (id, body) = agent.read_frame().unwrap();
    assert_eq!((id, lars::GetRouteResponse::parse(&body).unwrap().hosts.len()), (2, 2), "pushed");
    // Nothing was altered.
    assert_eq!(schema(&db), Schema { weight: false, disabled: false, route_index: false });
}

#[test]
fn lars_reporter_stores_into_an_original_database() {
    let db = TestDb::create_original();
    let opts = db.opts.clone();
    let reporter =
        Reporter::start(ReporterConfig::new(loopback()), move |_| Box::new(MysqlStats::new(opts.clone())))
            .unwrap();
    // An original agent's ReportStatusRequest (3).
    let results =
        [lars::HostCallResult { host: SocketAddrV4::new(A, 80), succ: 100, err: 3, overload: false }];
    let report = lars::ReportStatusRequest {
        modid: 2,
        cmdid: 1,
        caller: 123,
        results: List::from_slice(&results),
        ts: 1_764_000_000,
    };
    let mut agent = FrameClient::connect(reporter.local_addr()).unwrap();
    agent.write(&lars_frame(MsgId::ReportStatusRequest, &report)).unwrap();

    // And a lars agent's StatusReport: calls since the host's last state change.
    let dns = OriginalDns::start(BTreeMap::from([((2, 2), vec![SocketAddrV4::new(B, 80)])]));
    let mut config = AgentDaemonConfig::new(vec![dns.addr], vec![reporter.local_addr()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap()];
    config.agent.caller = 7;
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    client.reg_init(2, 2, 100).unwrap();
    for _ in 0..40 {
        let host = client.get_host(2, 2, None).unwrap();
        client.report(2, 2, host, Outcome::Ok, Duration::from_micros(100)).unwrap();
    }
    eventually("both rows stored", || {
        let rows: Vec<(i32, i32, u32, u32, i32, i32, String)> = db
            .conn()
            .query("SELECT modid, cmdid, ip, caller, succ_cnt, err_cnt, overload FROM ServerCallStatus ORDER BY modid, cmdid")
            .unwrap();
        rows == [
            (2, 1, A.to_bits(), 123, 100, 3, "0".to_string()),
            (2, 2, B.to_bits(), 7, 40, 0, "0".to_string()),
        ]
    });
}

/// Who the tests' `lars route` changes are made by.
fn cli() -> Actor {
    Actor { user: "ops".into(), address: "lars route on test".into() }
}

#[test]
fn route_administration_and_db_init_on_an_original_database() {
    let db = TestDb::create_original();
    let mut routes = MysqlRoutes::new(db.opts.clone());
    routes.add_host((5, 1), SocketAddr::from((A, 9000)), 1, &cli()).unwrap();
    let refused = routes.add_host((5, 1), SocketAddr::from((B, 9000)), 5, &cli()).unwrap_err().to_string();
    assert!(refused.contains("no RouteData.weight column") && refused.contains("lars db-init"), "{refused}");
    assert!(routes.remove_host((5, 1), SocketAddr::from((A, 9000)), &cli()).unwrap());
    routes.add_host((5, 1), SocketAddr::from((B, 9000)), 1, &cli()).unwrap();
    let mut conn = db.conn();
    let changes: u64 = conn.query_first("SELECT COUNT(*) FROM RouteChange WHERE modid = 5").unwrap().unwrap();
    let version: u64 = conn.query_first("SELECT version FROM RouteVersion WHERE id = 1").unwrap().unwrap();
    assert_eq!(changes, 3, "every change is logged for lars-dns");
    assert!(version > 0);
    assert_eq!(
        schema(&db),
        Schema { weight: false, disabled: false, route_index: false },
        "nothing but db-init alters it"
    );

    lars_std::store::mysql::init_schema(&db.opts).unwrap();
    assert_eq!(schema(&db), Schema { weight: true, disabled: true, route_index: true });
    lars_std::store::mysql::init_schema(&db.opts).unwrap(); // again: nothing to do
    // The original lars_dns reads `SELECT * FROM RouteData` by position: columns 1-4 still
    // are modid, cmdid, serverip, serverport.
    let row: mysql::Row = conn.query_first("SELECT * FROM RouteData").unwrap().unwrap();
    let positional: (u32, u32, u32, u32) =
        (row.get(1).unwrap(), row.get(2).unwrap(), row.get(3).unwrap(), row.get(4).unwrap());
    assert_eq!(positional, (5, 1, B.to_bits(), 9000));
    // An original console still inserts without a weight; lars reads it as 1.
    db.console_add(5, 1, A, 9001);
    routes.add_host((5, 1), SocketAddr::from((A, 9002)), 5, &cli()).unwrap();
    // With db-init's RouteAudit, `lars route` is audited in its own transaction, as the
    // console is; on the original database there was nothing to write it to.
    let audited: Vec<(String, String, String, String)> =
        conn.query("SELECT user, address, action, detail FROM RouteAudit WHERE modid = 5").unwrap();
    assert_eq!(
        audited,
        [("ops".into(), "lars route on test".into(), "add-host".into(), format!("{A}:9002 weight 5"))]
    );
    let table = lars_std::store::RouteStore::load(&mut routes).unwrap();
    let weights: Vec<u32> = table.hosts((5, 1)).iter().map(|h| h.weight).collect();
    assert_eq!(weights, [1, 5, 1], "sorted by address: A:9001, A:9002, B:9000");
}

#[test]
fn the_agent_speaks_lars_to_an_original_dns_and_reporter() {
    let dns = OriginalDns::start(BTreeMap::from([(
        (3, 1),
        vec![SocketAddrV4::new(A, 80), SocketAddrV4::new(B, 80)],
    )]));
    let reporter = OriginalReporter::start();
    let mut config = AgentDaemonConfig::new(vec![dns.addr], vec![reporter.addr]);
    config.api = vec!["127.0.0.1:0".parse().unwrap()];
    config.agent.caller = 42;
    let agent = AgentDaemon::start(config).unwrap();
    let client = Client::new(ClientConfig { agent: agent.api_addrs().to_vec(), ..ClientConfig::default() });
    let route = client.reg_init(3, 1, 100).unwrap();
    assert_eq!(route.hosts.len(), 2);
    assert!(dns.unknown.load(std::sync::atomic::Ordering::Relaxed) >= 1, "the native Hello went unanswered");
    for i in 0..30 {
        let host = client.get_host(3, 1, None).unwrap();
        let outcome = if i % 10 == 0 { Outcome::Fail } else { Outcome::Ok };
        client.report(3, 1, host, outcome, Duration::from_micros(100)).unwrap();
    }
    eventually("statistics reach the original lars_reporter as msgid 3", || {
        let rows = reporter.rows.lock().unwrap();
        let (succ, err): (u32, u32) = rows
            .iter()
            .filter(|(k, _)| (k.0, k.1, k.3) == (3, 1, 42))
            .fold((0, 0), |t, (_, v)| (t.0 + v.0, t.1 + v.1));
        (succ, err) == (27, 3)
    });
    // A push from the original (msgid 2 on the same link) is taken too: it answers re-pulls.
    dns.routes.lock().unwrap().insert((3, 1), vec![SocketAddrV4::new(A, 80)]);
    drop(agent);
}

#[test]
fn the_client_speaks_lars_to_an_original_agent() {
    let hosts = vec![SocketAddrV4::new(A, 80), SocketAddrV4::new(B, 80)];
    let original = OriginalAgent::start((4, 1), hosts.clone());
    let client = Client::new(ClientConfig { agent: vec![original.addr], ..ClientConfig::default() });
    let route = client.get_route(4, 1).unwrap();
    assert_eq!(
        route.hosts.iter().map(|h| h.addr).collect::<Vec<_>>(),
        hosts.iter().map(|&h| SocketAddr::V4(h)).collect::<Vec<_>>()
    );
    assert_eq!(client.codec(4, 1).unwrap(), Codec::Lars);
    let host = client.get_host(4, 1, None).unwrap();
    assert!(hosts.iter().any(|&h| SocketAddr::V4(h) == host));
    client.report(4, 1, host, Outcome::Ok, Duration::from_micros(5)).unwrap();
    client.report(4, 1, host, Outcome::Overload, Duration::from_micros(5)).unwrap();
    let SocketAddr::V4(v4) = host else { panic!("an IPv4 host") };
    eventually("both reports arrive as msgid 6", || {
        *original.reports.lock().unwrap() == [(4, 1, v4, 0), (4, 1, v4, 1)]
    });
    assert!(matches!(client.get_host(9, 9, None), Err(ClientError::NoRoute)));
    assert!(matches!(client.get_host(4, 1, Some(7)), Err(ClientError::NeedsNative(_))));
    assert!(matches!(client.lease(4, 1), Err(ClientError::NeedsNative(_))));
    // Told outright, it does not ask first.
    let fixed = Client::new(ClientConfig {
        agent: vec![original.addr],
        codec: CodecChoice::Fixed(Codec::Lars),
        ..ClientConfig::default()
    });
    assert!(fixed.get_host(4, 1, None).is_ok());
}

/// A lars agent slower than the client's timeout answers the Lars question too, but after the
/// native one it was asked first: the client must not take it for an original agent.
#[test]
fn a_slow_lars_agent_is_not_taken_for_an_original_one() {
    use lars_core::wire::native::{self, Role};
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 70_000];
        let mut out = vec![0u8; 70_000];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            std::thread::sleep(Duration::from_millis(80));
            let Ok(frame) = lars_core::wire::Frame::parse_datagram(&buf[..n], frame::MAX_BODY) else {
                continue;
            };
            let written = match frame.msgid {
                MsgId::StatsRequest => {
                    let seq = native::StatsRequest::parse(frame.body).unwrap().seq;
                    let answer =
                        native::StatsResponse { seq, role: Role::Agent, counters: List::from_slice(&[]) };
                    frame::encode(MsgId::StatsResponse, &answer, &mut out)
                }
                MsgId::ApiGetRouteRequest => {
                    let r = lars::GetRouteRequest::parse(frame.body).unwrap();
                    let answer = lars::GetRouteResponse {
                        modid: r.modid,
                        cmdid: r.cmdid,
                        hosts: List::from_slice(&[]),
                    };
                    frame::encode(MsgId::ApiGetRouteResponse, &answer, &mut out)
                }
                _ => continue,
            };
            let _ = socket.send_to(&out[..written.unwrap()], from);
        }
    });
    let client = Client::new(ClientConfig {
        agent: vec![addr],
        timeout: Duration::from_millis(50),
        // Enough attempts to outlast the agent's 80 ms even on a loaded machine.
        retries: 20,
        ..ClientConfig::default()
    });
    assert_eq!(client.codec(1, 1).unwrap(), Codec::Native);
}

#[test]
fn an_agent_that_answers_nothing_is_a_timeout_not_a_hang() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = Client::new(ClientConfig {
        agent: vec![silent.local_addr().unwrap()],
        timeout: Duration::from_millis(50),
        ..ClientConfig::default()
    });
    assert!(matches!(client.get_host(1, 1, None), Err(ClientError::Timeout)));
}

/// Four writers store the same keys' neighbours at once (adjacent primary keys, which is what
/// makes InnoDB deadlock): every row ends with its writer's last batch.
#[test]
fn concurrent_writers_lose_no_row() {
    let db = TestDb::create_original();
    const WRITERS: u32 = 4;
    const KEYS: u32 = 300;
    const BATCHES: u32 = 30;
    let threads: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let opts = db.opts.clone();
            std::thread::spawn(move || {
                let mut store = MysqlStats::new(opts);
                for batch in 0..BATCHES {
                    // Keys in a different order each time; the store sorts them.
                    let rows: Vec<StatRow> = (0..KEYS)
                        .map(|i| (i * 7 + batch * 13) % KEYS)
                        .map(|i| StatRow {
                            modid: 1,
                            cmdid: 1,
                            host: SocketAddr::from((Ipv4Addr::from_bits(0x0a00_0000 + i), 80)),
                            caller: writer,
                            succ: batch,
                            err: writer,
                            ts: u64::from(batch),
                            overload: false,
                        })
                        .collect();
                    store.store(&rows).unwrap();
                }
                store.transaction_retries()
            })
        })
        .collect();
    let retries: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    eprintln!("transactions retried after a deadlock or lock wait: {retries}");
    let (rows, last): (u64, u64) = db
        .conn()
        .query_first(
            "SELECT COUNT(*), SUM(succ_cnt = ? AND err_cnt = caller) FROM ServerCallStatus"
                .replace('?', &(BATCHES - 1).to_string()),
        )
        .unwrap()
        .unwrap();
    assert_eq!((rows, last), (u64::from(WRITERS * KEYS), u64::from(WRITERS * KEYS)));
}
