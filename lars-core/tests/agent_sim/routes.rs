//! Routes: pulls, refreshes, pushes, the table's limits and which hosts a caller is given.

use crate::sim::*;

#[test]
fn an_unknown_route_is_pulled_and_then_served() {
    let mut sim = sim_with_route(&[1, 2]);
    assert_eq!(sim.get_host(ROUTE), (RetCode::NoExist, None), "not known yet: code 3 while pulling");
    assert_eq!(sim.dns.pulls.len(), 1);
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Fresh));
    let picks: Vec<_> = (0..4).map(|_| sim.get_host(ROUTE)).collect();
    assert_eq!(picks, [1, 2, 1, 2].map(|l| (RetCode::Succ, Some(host(l)))));
    assert!(sim.events.contains(&AgentEvent::RouteCreated { modid: 1001, cmdid: 1 }));
    assert!(sim.events.contains(&AgentEvent::RouteUpdated { modid: 1001, cmdid: 1, hosts: 2 }));
}

#[test]
fn a_pull_without_answer_is_retried_with_backoff() {
    let mut sim = sim_with_route(&[1]);
    sim.dns.silent = true;
    assert_eq!(sim.get_host(ROUTE).0, RetCode::NoExist);
    sim.advance(Duration::from_secs(40));
    let times: Vec<u64> = sim.dns.pulls.iter().map(|(t, _)| t.as_millis()).collect();
    // Sent at 1 s, then after 1, 2, 4, 8, 16 s, then capped at 30 s.
    assert_eq!(times, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000]);
    assert_eq!(sim.get_host(ROUTE).0, RetCode::NoExist, "still pulling");
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Pulling));
    assert_eq!(sim.agent.stats().pull_timeouts, 5);
    sim.dns.silent = false;
    sim.advance(Duration::from_secs(30));
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))));
}

#[test]
fn an_old_route_is_refreshed_while_served_and_served_stale_while_dns_is_down() {
    let mut sim = sim_with_route(&[1]);
    sim.get_host(ROUTE);
    sim.advance(Duration::from_secs(16));
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))), "served while refreshed");
    assert_eq!(sim.dns.pulls.len(), 2, "re-pulled after update_timeout");
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Fresh), "the refresh came back");

    sim.dns_down();
    sim.advance(Duration::from_secs(16));
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))), "last known hosts keep serving");
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Stale));
    sim.advance(Duration::from_secs(60));
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))));
    assert_eq!(sim.dns.pulls.len(), 2, "nothing is sent while the link is down");

    sim.dns.routes.insert(ROUTE, weighted(&[2]));
    sim.dns_up();
    assert_eq!(sim.dns.pulls.len(), 3, "reconnecting re-pulls every route");
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Fresh));
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(2))));
    assert!(sim.dns.subscribed.contains(&ROUTE), "the new connection carries the subscription");
    sim.dns_set_route(ROUTE, &[3]);
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(3))), "pushes flow again");
}

#[test]
fn a_push_keeps_the_state_of_hosts_that_stay_and_an_empty_push_removes_the_route() {
    let mut sim = sim_with_route(&[1, 2, 3]);
    sim.get_host(ROUTE);
    for _ in 0..15 {
        sim.report(ROUTE, host(1), false);
    }
    assert!(sim.agent.is_overloaded(ROUTE.0, ROUTE.1, host(1)));
    sim.dns_set_route(ROUTE, &[1, 3, 4]);
    assert!(sim.agent.is_overloaded(ROUTE.0, ROUTE.1, host(1)), "host 1 stayed: still overloaded");
    let hosts: BTreeSet<_> = sim.agent.route_hosts(ROUTE.0, ROUTE.1).unwrap().map(|h| h.addr).collect();
    assert_eq!(hosts, [1, 3, 4].map(host).into());
    let picks = sim.calls(ROUTE, 30, &[], Duration::from_millis(10));
    assert!(!picks.contains_key(&host(2)), "a removed host is never handed out");

    sim.dns_set_route(ROUTE, &[]);
    assert_eq!(
        sim.agent.route_state(ROUTE.0, ROUTE.1),
        Some(RouteState::Missing),
        "an empty host list removes the route's hosts; the route is remembered as missing"
    );
    assert!(sim.events.contains(&AgentEvent::RouteRemoved { modid: 1001, cmdid: 1 }));
    let pulls = sim.dns.pulls.len();
    assert_eq!(sim.get_host(ROUTE), (RetCode::NoExist, None));
    assert_eq!(sim.dns.pulls.len(), pulls, "within missing_ttl the answer comes from the negative cache");
    sim.dns.routes.insert(ROUTE, weighted(&[5]));
    sim.advance(AgentConfig::default().missing_ttl + Duration::from_millis(1));
    assert_eq!(sim.get_host(ROUTE), (RetCode::NoExist, None), "after it, the request pulls it anew");
    assert_eq!(sim.dns.pulls.len(), pulls + 1);
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(5))));
}

/// A local process asking for random routes used to fill the table for good (512 routes, then
/// every new route refused). Routes dns says don't exist are now a negative cache that gives
/// way to any new route, routes in use are never evicted, and the log lines stay bounded.
#[test]
fn a_caller_asking_for_random_routes_never_pushes_out_a_route_in_use() {
    let mut sim = Sim::new(AgentConfig::default());
    for modid in 0..4 {
        sim.dns.routes.insert((modid, 1), weighted(&[1]));
        sim.get_host((modid, 1));
    }
    sim.events.clear();
    for (n, modid) in (1000..3000).enumerate() {
        assert_eq!(sim.get_host((modid, 1)).0, RetCode::NoExist, "a route dns doesn't have");
        if n % 50 == 0 {
            for real in 0..4 {
                assert_eq!(sim.get_host((real, 1)), (RetCode::Succ, Some(host(1))), "in use: kept");
            }
            sim.advance(Duration::from_millis(200));
        }
    }
    let stats = *sim.agent.stats();
    assert_eq!(stats.route_table_full, 0, "the missing routes gave way each time");
    assert_eq!(stats.routes_missing, 2000);
    assert_eq!(sim.agent.route_count(), 4);
    assert!(
        sim.agent.missing_routes() <= 2,
        "at most a quarter of the table: {}",
        sim.agent.missing_routes()
    );
    // A new real route still finds room during the flood.
    sim.dns.routes.insert((7, 1), weighted(&[2]));
    assert_eq!(sim.get_host((7, 1)).0, RetCode::NoExist);
    assert_eq!(sim.get_host((7, 1)), (RetCode::Succ, Some(host(2))));
    // 2000 routes created and 2000 found missing over 8 s of report intervals: a bounded
    // number of lines, and the rest counted.
    sim.advance(Duration::from_secs(2));
    let lifecycle = sim
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                AgentEvent::RouteCreated { .. }
                    | AgentEvent::RouteMissing { .. }
                    | AgentEvent::RouteEvicted { .. }
            )
        })
        .count();
    let suppressed: u32 = sim
        .events
        .iter()
        .map(|e| if let AgentEvent::RouteEventsSuppressed { count } = e { *count } else { 0 })
        .sum();
    assert!(lifecycle <= 16 * 12, "{lifecycle} lifecycle events logged");
    assert!(suppressed as usize + lifecycle >= 2 * 2000, "the rest are counted: {suppressed}");
}

/// A full table of routes in use refuses a new one; once a route has not been asked for in
/// `route_idle_evict`, it makes room (the one asked for longest ago).
#[test]
fn a_full_table_evicts_the_route_nobody_asked_for_longest() {
    let config = AgentConfig::default();
    let mut sim = Sim::new(config.clone());
    for modid in 0..8 {
        sim.dns.routes.insert((modid, 1), weighted(&[1]));
        sim.get_host((modid, 1));
    }
    sim.dns.routes.insert((99, 1), weighted(&[3]));
    assert_eq!(sim.get_host((99, 1)).0, RetCode::SystemError, "all in use: refused");
    sim.advance(Duration::from_secs(10));
    for modid in 1..8 {
        sim.get_host((modid, 1)); // route 0 is the one nobody asks for
    }
    sim.advance(Duration::from_secs(config.route_idle_evict.as_secs() - 5));
    for modid in 1..8 {
        sim.get_host((modid, 1));
    }
    assert_eq!(sim.get_host((99, 1)).0, RetCode::NoExist, "route 0 idle long enough: evicted, 99 pulled");
    assert!(sim.events.contains(&AgentEvent::RouteEvicted { modid: 0, cmdid: 1 }));
    assert_eq!(sim.agent.route_state(0, 1), None);
    assert_eq!(sim.get_host((99, 1)), (RetCode::Succ, Some(host(3))));
    assert_eq!(sim.agent.stats().routes_evicted, 1);
}

/// An original-protocol caller can only hold IPv4 addresses: on a route mixing IPv4 and IPv6
/// hosts it used to get a system error on half its picks. It is now given the IPv4 hosts,
/// with every policy; native callers get them all.
#[test]
fn a_lars_caller_on_a_mixed_route_gets_its_ipv4_hosts() {
    let v6 = |n: u16| {
        SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n)), 80)
    };
    for policy in
        [PolicyKind::Lars, PolicyKind::RoundRobin, PolicyKind::Weighted, PolicyKind::P2c, PolicyKind::Maglev]
    {
        let config = AgentConfig { default_policy: policy, ..AgentConfig::default() };
        let mut sim = Sim::new(config);
        let mut hosts = weighted(&[1, 2]);
        hosts.extend((1..=6).map(|n| WeightedHost { addr: v6(n), weight: 1 }));
        sim.dns.routes.insert(ROUTE, hosts);
        sim.get_host_native(ROUTE);
        let mut lars_picks = BTreeSet::new();
        for _ in 0..60 {
            let (code, addr) = sim.get_host(ROUTE);
            assert_eq!(code, RetCode::Succ, "{policy:?}");
            let addr = addr.unwrap();
            lars_picks.insert(addr);
            sim.report(ROUTE, addr, true);
        }
        let expected: BTreeSet<_> = [host(1), host(2)].into();
        if policy == PolicyKind::Maglev {
            assert!(lars_picks.is_subset(&expected), "{policy:?}: {lars_picks:?}");
        } else {
            assert_eq!(lars_picks, expected, "{policy:?}");
        }
        assert_eq!(sim.agent.stats().ipv6_not_representable, 0);
        let native_picks: BTreeSet<_> = (0..60).filter_map(|_| sim.get_host_native(ROUTE).1).collect();
        assert!(native_picks.iter().any(SocketAddr::is_ipv6), "{policy:?}: native callers get IPv6 hosts");
    }
}

#[test]
fn a_full_table_and_an_oversized_route_are_clear_errors() {
    let mut sim = Sim::new(AgentConfig::default());
    for modid in 0..8 {
        sim.dns.routes.insert((modid, 1), weighted(&[1]));
        assert_eq!(sim.get_host((modid, 1)).0, RetCode::NoExist);
    }
    assert_eq!(sim.get_host((99, 1)), (RetCode::SystemError, None), "table full: code 2");
    assert_eq!(sim.agent.stats().route_table_full, 1);
    assert_eq!(sim.get_host((0, 1)), (RetCode::Succ, Some(host(1))), "the others still serve");

    sim.dns_set_route((0, 1), &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(sim.agent.stats().route_over_capacity, 1);
    assert!(sim.events.contains(&AgentEvent::RouteTooLarge { modid: 0, cmdid: 1, hosts: 9 }));
    assert_eq!(held_hosts(&sim, (0, 1)).len(), 8, "a subset is served");
    assert_eq!(sim.get_host((0, 1)).0, RetCode::Succ);
}

/// A route with more hosts than the agent can hold is served, as a subset that stays the same
/// at every update and differs from agent to agent (by `caller`), so the route's load spreads.
#[test]
fn an_oversized_route_is_served_as_a_stable_subset() {
    let all: Vec<u8> = (1..=20).collect();
    let subset_for = |caller: u32| {
        let mut sim = Sim::new(AgentConfig { caller, ..AgentConfig::default() });
        sim.dns.routes.insert(ROUTE, weighted(&all));
        assert_eq!(sim.get_host(ROUTE).0, RetCode::NoExist, "pulling");
        assert_eq!(sim.get_host(ROUTE).0, RetCode::Succ, "served at once");
        assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Fresh));
        assert_eq!(sim.agent.stats().route_over_capacity, 1);
        assert!(sim.events.contains(&AgentEvent::RouteTooLarge {
            modid: ROUTE.0,
            cmdid: ROUTE.1,
            hosts: 20
        }));
        let first = held_hosts(&sim, ROUTE);
        assert_eq!(first.len(), 8, "as many as a route holds");
        assert!(first.iter().all(|h| all.iter().any(|&l| host(l) == *h)));
        // The same route pushed again, in another order: the same subset.
        let mut shuffled = all.clone();
        shuffled.reverse();
        sim.dns_set_route(ROUTE, &shuffled);
        assert_eq!(held_hosts(&sim, ROUTE), first);
        first
    };
    assert_ne!(subset_for(0x0a00_0001), subset_for(0x0a00_0002), "agents hold different subsets");
}

#[test]
fn per_route_policies_are_honoured() {
    let mut config = AgentConfig::default();
    config
        .route_policies
        .push(lars_core::agent::RoutePolicy { modid: 7, cmdid: 7, policy: PolicyKind::RoundRobin })
        .unwrap();
    let mut sim = Sim::new(config);
    sim.dns.routes.insert((7, 7), weighted(&[1, 2]));
    sim.get_host((7, 7));
    for _ in 0..20 {
        sim.report((7, 7), host(1), false);
    }
    assert!(!sim.agent.is_overloaded(7, 7, host(1)), "round robin does not overload hosts");
}
