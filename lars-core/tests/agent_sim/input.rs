//! What callers send that the agent must refuse or answer: bad input and statistics requests.

use crate::sim::*;

#[test]
fn bad_input_is_refused_and_counted() {
    let mut sim = sim_with_route(&[1]);
    let mut reply = [0u8; 256];
    let now = sim.now;
    assert_eq!(
        sim.agent.handle_api_datagram(now, &[4, 0, 0], &mut reply),
        Err(ApiError::Malformed(Error::Truncated))
    );
    let wrong_len = [4, 0, 0, 0, 9, 0, 0, 0, 8, 1];
    assert!(matches!(
        sim.agent.handle_api_datagram(now, &wrong_len, &mut reply),
        Err(ApiError::Malformed(Error::LengthMismatch { .. }))
    ));
    let response_msgid = [5, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        sim.agent.handle_api_datagram(now, &response_msgid, &mut reply),
        Err(ApiError::Unexpected(MsgId::GetHostResponse))
    );
    let bad_body = [4, 0, 0, 0, 2, 0, 0, 0, 0x08, 0x80];
    assert_eq!(
        sim.agent.handle_api_datagram(now, &bad_body, &mut reply),
        Err(ApiError::Malformed(Error::Truncated))
    );
    assert_eq!(sim.agent.stats().api_errors, 4);
    let garbage = Frame { msgid: MsgId::NativeRouteResponse, body: &[0xff, 0xff] };
    assert!(sim.agent.handle_dns_frame(now, garbage).is_err());
    let unexpected = Frame { msgid: MsgId::GetHostRequest, body: &[] };
    assert!(sim.agent.handle_dns_frame(now, unexpected).is_err());
    assert_eq!(sim.agent.stats().dns_errors, 2);
    // The agent still serves.
    sim.get_host(ROUTE);
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))));
}

#[test]
fn a_stats_request_is_answered_with_the_agents_counters_and_the_drivers() {
    let mut sim = sim_with_route(&[1]);
    sim.get_host(ROUTE);
    let Ok(Some(Message::StatsResponse(answer))) = sim.api(&Message::StatsRequest(StatsRequest { seq: 77 }))
    else {
        panic!("a StatsRequest is answered with a StatsResponse");
    };
    assert_eq!((answer.seq, answer.role), (77, native::Role::Agent));
    let names: Vec<&str> = answer.counters.iter().map(|c| c.name).collect();
    let mut expected: Vec<&str> = sim.agent.stats().counters().iter().map(|&(name, _)| name).collect();
    expected.extend(["routes", "stats_waiting_calls", "routes_stale", "dns_ready"]);
    #[cfg(feature = "auth")]
    expected.push("auth_failures");
    expected.extend(["decisions", "decisions_dropped"]);
    assert_eq!(names, expected, "every counter, in order");
    let value = |name: &str| answer.counters.iter().find(|c| c.name == name).map(|c| c.value);
    // Taken once the request itself was counted.
    assert_eq!(value("api_requests"), Some(sim.agent.stats().api_requests));
    assert_eq!(value("get_host"), Some(sim.agent.stats().get_host));
    assert_eq!((value("routes"), value("routes_stale"), value("dns_ready")), (Some(1), Some(0), Some(1)));

    // A driver's counters follow the agent's.
    let mut datagram = [0u8; 16];
    let n = Message::StatsRequest(StatsRequest { seq: 5 }).emit_frame(&mut datagram).unwrap();
    let mut reply = vec![0u8; 4096];
    let now = sim.now;
    let len = sim
        .agent
        .handle_api_datagram_with(
            now,
            &datagram[..n],
            &mut reply,
            &[("pool_small_in_use", 3), ("udp_bad_framing", 2)],
        )
        .unwrap();
    let frame = Frame::parse_datagram(&reply[..len], MAX_BODY).unwrap();
    let Ok(Message::StatsResponse(answer)) = Message::from_frame(frame) else { panic!("{frame:?}") };
    let tail: Vec<(&str, u64)> =
        answer.counters.iter().skip(expected.len()).map(|c| (c.name, c.value)).collect();
    assert_eq!(tail, [("pool_small_in_use", 3), ("udp_bad_framing", 2)]);

    // One that does not decode is refused and counted, like any bad request.
    let errors = sim.agent.stats().api_errors;
    let bad = [0x40, 0x01, 0, 0, 1, 0, 0, 0, 0x80];
    assert_eq!(
        sim.agent.handle_api_datagram(now, &bad, &mut reply),
        Err(ApiError::Malformed(Error::Truncated))
    );
    assert_eq!(sim.agent.stats().api_errors, errors + 1);
}
