//! The route table's invariant, `pulls_due` equal to the routes whose pull is due (and an index
//! that finds every route), under random sequences of operations: on the table alone, and on
//! an agent fed random callers, answers, link changes and time.

use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use super::{Pull, RouteTable};
use crate::agent::route::Route;
use crate::agent::{Agent, AgentConfig, CodecChoice};
use crate::lb::{LbConfig, PolicyKind, Rng};
use crate::time::{Duration, Instant};
use crate::wire::native::{self, WeightedHost};
use crate::wire::{Codec, Frame, List, MsgId, RetCode, frame, lars};

fn random_pull(rng: &mut Rng) -> Pull {
    match rng.below(3) {
        0 => Pull::Idle,
        1 => Pull::Due,
        _ => Pull::InFlight { deadline: Instant::from_millis(rng.below(1000) as u64) },
    }
}

#[test]
fn table_keeps_its_count_under_random_operations() {
    let lb = LbConfig::default();
    let now = Instant::ZERO;
    for seed in 1..=50 {
        let mut rng = Rng::new(seed);
        let mut table: RouteTable<8, 2> = RouteTable::new();
        for _ in 0..500 {
            match rng.below(4) {
                0 => {
                    let (modid, cmdid) = (rng.below(12) as i32, rng.below(2) as i32);
                    if table.find(modid, cmdid).is_none() {
                        let route = Route::new(modid, cmdid, PolicyKind::default(), &lb, now);
                        let inserted = table.insert(route, random_pull(&mut rng));
                        assert_eq!(inserted.is_ok(), table.find(modid, cmdid).is_some());
                    }
                }
                1 if table.len() > 0 => {
                    let slot = rng.below(table.len());
                    let (modid, cmdid) = (table[slot].modid, table[slot].cmdid);
                    let removed = table.swap_remove(slot);
                    assert_eq!((removed.modid, removed.cmdid), (modid, cmdid));
                    assert_eq!(table.find(modid, cmdid), None);
                }
                _ if table.len() > 0 => {
                    let slot = rng.below(table.len());
                    let pull = random_pull(&mut rng);
                    table.set_pull(slot, pull);
                    assert_eq!(table.pull(slot), pull);
                }
                _ => {}
            }
            table.assert_consistent();
            assert_eq!(table.first_due(), table.pulls().position(|p| p == Pull::Due));
            for (slot, route) in table.iter().enumerate() {
                assert_eq!(table.find(route.modid, route.cmdid), Some(slot));
            }
        }
    }
}

/// A frame as a link delivers it.
fn deliver(agent: &mut Agent<8, 4>, now: Instant, bytes: &[u8]) {
    let frame = Frame::parse_datagram(bytes, frame::MAX_BODY).expect("a frame this test encoded");
    let _ = agent.handle_dns_frame(now, frame);
}

fn host(i: usize) -> WeightedHost {
    WeightedHost { addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i as u8), 80)), weight: 1 }
}

#[test]
fn agent_keeps_the_count_under_random_traffic() {
    let config = AgentConfig {
        dns_codec: CodecChoice::Fixed(Codec::Native),
        update_timeout: Duration::from_millis(300),
        pull_timeout: Duration::from_millis(100),
        missing_ttl: Duration::from_millis(200),
        route_idle_evict: Duration::from_millis(400),
        ..AgentConfig::default()
    };
    let hosts: [WeightedHost; 6] = core::array::from_fn(host);
    for seed in 1..=30 {
        let mut rng = Rng::new(seed);
        let mut now = Instant::from_millis(1);
        let mut agent: Agent<8, 4> = Agent::new(config.clone(), now);
        agent.handle_dns_link(now, true);
        let (mut buf, mut reply) = ([0u8; 512], [0u8; 512]);
        for step in 0..600u32 {
            let (modid, cmdid) = (rng.below(14) as i32, 1);
            match rng.below(8) {
                0 | 1 => {
                    let request = lars::GetHostRequest { seq: step, modid, cmdid };
                    let len = frame::encode(MsgId::GetHostRequest, &request, &mut buf).unwrap();
                    let _ = agent.handle_api_datagram(now, &buf[..len], &mut reply);
                }
                2 | 3 => {
                    let (code, n) = match rng.below(4) {
                        0 => (RetCode::NoExist, 0),
                        1 => (RetCode::SystemError, 0),
                        _ => (RetCode::Succ, 1 + rng.below(hosts.len())),
                    };
                    let answer = native::RouteResponse {
                        seq: 0,
                        modid,
                        cmdid,
                        code,
                        version: u64::from(step),
                        hosts: List::from_slice(&hosts[..n]),
                    };
                    let len = frame::encode(MsgId::NativeRouteResponse, &answer, &mut buf).unwrap();
                    deliver(&mut agent, now, &buf[..len]);
                }
                4 => {
                    let answer = lars::GetRouteResponse { modid, cmdid, hosts: List::from_slice(&[]) };
                    let len = frame::encode(MsgId::GetRouteResponse, &answer, &mut buf).unwrap();
                    deliver(&mut agent, now, &buf[..len]);
                }
                5 => agent.handle_dns_link(now, rng.below(3) > 0),
                6 => {
                    let _ = agent.restore_route(now, modid, cmdid, &hosts[..1 + rng.below(3)]);
                }
                _ => {
                    now += Duration::from_millis(rng.below(250) as u64);
                    agent.handle_timeout(now);
                }
            }
            agent.routes.assert_consistent();
            // Draining sends the due pulls while the link is up (one at a time, each checked).
            while agent.poll_transmit(now, &mut buf).is_some() {
                agent.routes.assert_consistent();
            }
            while agent.poll_event().is_some() {}
        }
        // The traffic went through every transition: pulls sent, timed out, answered missing.
        let stats = agent.stats();
        assert!(stats.pulls_sent > 0 && stats.pull_timeouts > 0 && stats.routes_missing > 0);
        assert!(stats.routes_evicted > 0 && stats.dns_unready_answers > 0, "{stats:?}");
    }
}
