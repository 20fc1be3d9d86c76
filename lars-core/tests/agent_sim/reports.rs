//! Statistics: what the agent reports to lars-reporter, when, and what it keeps while it cannot.

use crate::sim::*;

#[test]
fn reports_are_batched_and_sum_up_exactly() {
    let mut sim = sim_with_route(&[1, 2, 3]);
    sim.get_host(ROUTE);
    let picks = sim.calls(ROUTE, 900, &[host(3)], Duration::from_micros(900));
    sim.advance(Duration::from_secs(2));
    for (addr, n) in &picks {
        let (succ, err) = sim.reporter.totals[&(ROUTE, *addr)];
        assert_eq!(succ + err, *n as u64, "{addr}");
        assert_eq!(err > 0, *addr == host(3));
    }
    assert!(sim.reporter.frames <= 4, "900 results in {} frames, not one per call", sim.reporter.frames);
    assert_eq!(sim.reporter.overloaded.get(&(ROUTE, host(3))), Some(&true));
}

#[test]
fn a_leasing_clients_summary_merges_with_reports_and_leaves_the_balancer_alone() {
    let mut sim = sim_with_route(&[1, 2]);
    sim.get_host(ROUTE);
    sim.report_native(ROUTE, host(1), Outcome::Ok, 100);
    let entry = |key: Key, addr, succ, err, overload| native::HostStats {
        modid: key.0,
        cmdid: key.1,
        host: addr,
        succ,
        err,
        overload,
        overloaded: false,
        latency_sum_us: 1000,
        latency_max_us: 40,
    };
    let entries = [
        entry(ROUTE, host(1), 700, 0, 0),
        entry(ROUTE, host(2), 10, 300, 5),
        entry((9, 9), host(1), 1, 0, 0),
    ];
    let summary = native::CallStats { caller: 0, ts: 0, entries: List::from_slice(&entries) };
    assert_eq!(sim.api(&Message::NativeCallStats(summary)).unwrap(), None, "no answer");
    assert_eq!(sim.agent.stats().leased_calls, 1010);
    assert_eq!(sim.agent.stats().reports_unknown_route, 1);
    // 300 failures the agent did not balance do not overload host 2 for the agent's callers.
    assert_eq!(sim.calls(ROUTE, 4, &[], Duration::from_millis(1)).len(), 2);
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.reporter.totals[&(ROUTE, host(1))].0, 701 + 2);
    let (succ, err) = sim.reporter.totals[&(ROUTE, host(2))];
    assert_eq!((succ - 2, err), (10, 300));
}

#[test]
fn reports_go_out_early_after_report_after_results() {
    let config = AgentConfig {
        report_after: 50,
        report_interval: Duration::from_secs(3600),
        ..AgentConfig::default()
    };
    let mut sim = Sim::new(config);
    sim.dns.routes.insert(ROUTE, weighted(&[1]));
    sim.get_host(ROUTE);
    for _ in 0..49 {
        sim.report_native(ROUTE, host(1), Outcome::Ok, 100);
    }
    sim.advance(Duration::from_millis(1));
    assert_eq!(sim.reporter.frames, 0);
    sim.report_native(ROUTE, host(1), Outcome::Ok, 100);
    sim.advance(Duration::from_millis(1));
    assert_eq!(sim.reporter.totals[&(ROUTE, host(1))], (50, 0));
}

#[test]
fn statistics_are_kept_while_the_reporter_is_down_and_sent_when_it_is_back() {
    let mut sim = sim_with_route(&[1, 2]);
    sim.get_host(ROUTE);
    sim.reporter.up = false;
    sim.agent.handle_reporter_link(sim.now, false);
    // Ten flush intervals of outage, results coming in all along.
    for _ in 0..10 {
        for _ in 0..10 {
            sim.report(ROUTE, host(1), true);
        }
        sim.report(ROUTE, host(2), false);
        sim.report(ROUTE, host(2), false);
        sim.advance(Duration::from_secs(1));
    }
    assert_eq!(sim.reporter.frames, 0, "nothing sent to a link that is down");
    assert_eq!(sim.agent.stats().stats_flushes_held, 10, "each interval's flush held");
    assert_eq!(sim.agent.stats().stats_dropped_calls, 0, "nothing dropped");
    assert_eq!(sim.agent.unreported_calls(), 120, "every call held");
    assert!(!sim.events.iter().any(|e| matches!(e, AgentEvent::StatsDropped { .. })));
    sim.reporter.up = true;
    sim.agent.handle_reporter_link(sim.now, true);
    sim.report(ROUTE, host(1), true);
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.reporter.totals[&(ROUTE, host(1))], (101, 0), "the outage's calls, then the new one");
    assert_eq!(sim.reporter.totals[&(ROUTE, host(2))], (0, 20));
    assert_eq!(sim.agent.unreported_calls(), 0);
}

#[test]
fn calls_that_cannot_be_kept_are_counted_in_calls() {
    let mut sim = sim_with_route(&[1]);
    sim.get_host(ROUTE);
    sim.reporter.up = false;
    sim.agent.handle_reporter_link(sim.now, false);
    // The route's tally table holds 8 hosts (the agent's H): the ninth host's calls have no room.
    for last in 1..=9 {
        for _ in 0..5 {
            sim.report(ROUTE, host(last), true);
        }
    }
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.agent.stats().stats_dropped_calls, 5, "the ninth host's 5 calls, not 1 entry");
    assert_eq!(sim.agent.unreported_calls(), 40);
}

#[test]
fn a_shutdown_flushes_at_once_and_says_what_it_could_not_send() {
    let config = AgentConfig { report_interval: Duration::from_secs(3600), ..AgentConfig::default() };
    let mut sim = Sim::new(config);
    sim.dns.routes.insert(ROUTE, weighted(&[1]));
    sim.get_host(ROUTE);
    for _ in 0..7 {
        sim.report(ROUTE, host(1), true);
    }
    sim.advance(Duration::from_millis(10));
    assert_eq!(sim.reporter.frames, 0, "an hour until the next flush");
    assert!(sim.agent.handle_shutdown(sim.now));
    assert!(sim.agent.flushing());
    sim.drive();
    assert!(!sim.agent.flushing());
    assert_eq!(sim.reporter.totals[&(ROUTE, host(1))], (7, 0));
    assert_eq!(sim.agent.unreported_calls(), 0);

    // With lars-reporter down there is nothing to flush to: the driver learns what is left.
    sim.reporter.up = false;
    sim.agent.handle_reporter_link(sim.now, false);
    sim.report(ROUTE, host(1), false);
    assert!(!sim.agent.handle_shutdown(sim.now));
    assert_eq!(sim.agent.unreported_calls(), 1);
}

#[test]
fn results_reported_while_the_reporter_is_greeted_are_kept_for_the_next_flush() {
    let mut sim = Sim::new(AgentConfig::default());
    sim.reporter.original = true;
    sim.dns.routes.insert(ROUTE, weighted(&[1]));
    sim.get_host(ROUTE);
    sim.get_host(ROUTE);
    for _ in 0..3 {
        sim.report(ROUTE, host(1), true);
    }
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (3, 0));
    assert_eq!(sim.agent.stats().stats_dropped_calls, 0);
}

/// `ServerCallStatus` holds each host's calls since its last idle/overload change, as the
/// original's did, not the last second's: 100 calls over several flushes read 100.
#[test]
fn server_call_status_counts_since_the_last_state_change_in_both_codecs() {
    for codec in [Codec::Lars, Codec::Native] {
        let choice = CodecChoice::Fixed(codec);
        let config = AgentConfig { dns_codec: choice, reporter_codec: choice, ..AgentConfig::default() };
        let mut sim = Sim::new(config);
        sim.dns.routes.insert(ROUTE, weighted(&[1]));
        sim.get_host(ROUTE);
        sim.get_host(ROUTE);
        // One failure in five: neither 15 in a row nor over the 10 % error rate of the
        // virtual counters (which start at 180 successes), so the host stays idle.
        for _second in 0..5 {
            for call in 0..20 {
                sim.report(ROUTE, host(1), call % 5 != 4);
            }
            sim.advance(Duration::from_secs(1));
        }
        assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (80, 20), "{codec:?}");
        // The 9th failure in a row takes the virtual error rate over 10 % (29 of 289) and
        // overloads the host; its window starts again there, so 6 of the 15 are in it.
        for _ in 0..15 {
            sim.report(ROUTE, host(1), false);
        }
        sim.advance(Duration::from_secs(1));
        assert!(sim.agent.is_overloaded(ROUTE.0, ROUTE.1, host(1)));
        assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (0, 6), "{codec:?}: a fresh window");
        assert!(sim.reporter.overloaded[&(ROUTE, host(1))]);
    }
}

#[test]
fn report_after_zero_means_interval_only() {
    let config = AgentConfig { report_after: 0, ..AgentConfig::default() };
    let mut sim = Sim::new(config);
    sim.dns.routes.insert(ROUTE, weighted(&[1]));
    sim.get_host(ROUTE);
    sim.report(ROUTE, host(1), true);
    assert!(sim.agent.poll_timeout().unwrap() > sim.now, "no spin: the next deadline is the interval");
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.reporter.totals[&(ROUTE, host(1))], (1, 0));
}

/// As the original did, a route with results is reported whole, every host in it (those not
/// called with no calls), and a route without any is not reported.
#[test]
fn a_flush_reports_every_host_of_an_active_route_and_no_idle_route() {
    let mut sim = sim_with_route(&[1, 2, 3]);
    sim.dns.routes.insert((7, 7), weighted(&[4]));
    sim.get_host(ROUTE);
    sim.get_host((7, 7));
    sim.get_host(ROUTE);
    sim.report(ROUTE, host(1), true);
    sim.advance(Duration::from_secs(2));
    let reported: Vec<(Key, SocketAddr)> = sim.reporter.status.keys().copied().collect();
    assert_eq!(reported, [(ROUTE, host(1)), (ROUTE, host(2)), (ROUTE, host(3))]);
    assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (1, 0));
    assert_eq!(sim.reporter.status[&(ROUTE, host(2))], (0, 0));
    let frames = sim.reporter.frames;
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.reporter.frames, frames, "nothing new, nothing sent");
}

/// Results recorded between the frames of a flush (a driver may interleave them) neither stall
/// the flush on one route nor get lost: every route is reported, and the new results go out.
#[test]
fn results_recorded_during_a_flush_do_not_stall_it() {
    for codec in [Codec::Lars, Codec::Native] {
        let choice = CodecChoice::Fixed(codec);
        let config = AgentConfig { dns_codec: choice, reporter_codec: choice, ..AgentConfig::default() };
        let mut sim = Sim::new(config);
        let other = (9, 9);
        sim.dns.routes.insert(ROUTE, weighted(&[1]));
        sim.dns.routes.insert(other, weighted(&[2]));
        for key in [ROUTE, other, ROUTE, other] {
            sim.get_host(key);
        }
        sim.report(ROUTE, host(1), true);
        sim.report(other, host(2), true);
        // To the flush, then one frame at a time with a new result of the first route between.
        sim.now = sim.agent.poll_timeout().unwrap();
        sim.agent.handle_timeout(sim.now);
        let mut frames = 0u32;
        while let Some(tx) = sim.agent.poll_transmit(sim.now, &mut sim.buf) {
            let bytes = sim.buf[..tx.len].to_vec();
            sim.reporter_receive(&bytes);
            frames += 1;
            assert!(frames < 10, "{codec:?}: the flush keeps going back to the same route");
            sim.agent.report(sim.now, ROUTE.0, ROUTE.1, host(1), Outcome::Ok, 10);
        }
        assert!(sim.reporter.status.contains_key(&(other, host(2))), "{codec:?}: the second route");
        sim.advance(Duration::from_secs(2));
        // The window (both codecs) and the sum of the periods' counts (native) hold every call.
        assert_eq!(sim.reporter.status[&(ROUTE, host(1))].0, 1 + frames, "{codec:?}");
        if codec == Codec::Native {
            assert_eq!(sim.reporter.totals[&(ROUTE, host(1))].0, u64::from(1 + frames), "nothing lost");
        }
    }
}
