//! Host health: overload, probing back, and pushes under load.

use crate::sim::*;

#[test]
fn a_failing_host_is_overloaded_then_probed_back() {
    let mut sim = sim_with_route(&[1, 2, 3]);
    sim.get_host(ROUTE);
    // Host 2 fails every call: after 15 failures in a row it only gets probes.
    let picks = sim.calls(ROUTE, 600, &[host(2)], Duration::from_millis(5));
    assert!(sim.agent.is_overloaded(ROUTE.0, ROUTE.1, host(2)));
    let bad_share = picks[&host(2)] as f64 / 600.0;
    assert!(bad_share < 0.15, "an overloaded host gets about one call in 11: {bad_share}");
    // Host 2 heals: its next probes succeed and bring it back.
    let picks = sim.calls(ROUTE, 300, &[], Duration::from_millis(5));
    assert!(!sim.agent.is_overloaded(ROUTE.0, ROUTE.1, host(2)), "probed back");
    assert!(picks[&host(2)] > 60, "back in rotation: {}", picks[&host(2)]);
    // The decision log says what happened to host 2, and why.
    let log: Vec<String> = sim.agent.decisions().map(|d| d.to_string()).collect();
    assert_eq!(
        log,
        [
            "1001/1 10.0.0.2:8002 overloaded: 15 consecutive failures (limit 15)",
            "1001/1 10.0.0.2:8002 probed: probe failed after 0 s overloaded",
            // Its later probes failed too, until it healed: 15 successes in a row.
            "1001/1 10.0.0.2:8002 readmitted: 15 consecutive successes (limit 15)",
        ]
    );
    assert_eq!(sim.agent.decision_counts(), (3, 0));
    // They went to lars-reporter with the statistics.
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.reporter.decisions, log);
}

#[test]
fn every_host_overloaded_answers_overload_except_probe_turns() {
    let mut sim = sim_with_route(&[1]);
    sim.get_host(ROUTE);
    for _ in 0..15 {
        sim.report(ROUTE, host(1), false);
    }
    let codes: Vec<_> = (0..11).map(|_| sim.get_host(ROUTE).0).collect();
    assert_eq!(codes[..10], [RetCode::Overload; 10]);
    assert_eq!(codes[10], RetCode::Succ);
}

#[test]
fn a_route_push_during_load_takes_effect_at_once() {
    let mut sim = sim_with_route(&[1, 2]);
    sim.get_host(ROUTE);
    let mut after_push = BTreeMap::new();
    for i in 0..400 {
        if i == 200 {
            sim.dns_set_route(ROUTE, &[2, 3]);
        }
        let (code, addr) = sim.get_host(ROUTE);
        assert_eq!(code, RetCode::Succ);
        let addr = addr.unwrap();
        sim.report(ROUTE, addr, true);
        if i >= 200 {
            *after_push.entry(addr).or_insert(0) += 1;
        }
        sim.advance(Duration::from_millis(2));
    }
    assert_eq!(after_push.keys().copied().collect::<Vec<_>>(), [host(2), host(3)]);
    sim.advance(Duration::from_secs(2));
    let total: u64 = sim.reporter.totals.values().map(|(s, _)| s).sum();
    assert_eq!(total, 400, "every report reached the reporter");
}
