//! The links to lars-dns and lars-reporter: codecs, greetings, replicas, restarts and the shared secret.

use crate::sim::*;

#[test]
fn both_codecs_on_the_api_and_on_the_links() {
    for codec in [Codec::Lars, Codec::Native] {
        let choice = CodecChoice::Fixed(codec);
        let config = AgentConfig { dns_codec: choice, reporter_codec: choice, ..AgentConfig::default() };
        let mut sim = Sim::new(config);
        sim.dns.routes.insert(ROUTE, weighted(&[1, 2]));
        assert_eq!(sim.get_host_native(ROUTE), (RetCode::NoExist, None));
        assert_eq!(sim.dns.codec, Some(codec));
        assert_eq!(sim.get_host_native(ROUTE), (RetCode::Succ, Some(host(1))));
        assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(2))));
        sim.report_native(ROUTE, host(1), Outcome::Ok, 250);
        sim.report(ROUTE, host(2), false);

        let route =
            sim.api(&Message::ApiGetRouteRequest(lars::GetRouteRequest { modid: ROUTE.0, cmdid: ROUTE.1 }));
        let Some(Message::ApiGetRouteResponse(r)) = route.unwrap() else { panic!("no Lars route answer") };
        assert_eq!((r.modid, r.cmdid, r.hosts.len()), (ROUTE.0, ROUTE.1, 2));
        let request = native::GetRouteRequest { seq: 77, modid: ROUTE.0, cmdid: ROUTE.1 };
        let Some(Message::NativeRouteResponse(r)) =
            sim.api(&Message::NativeGetRouteRequest(request)).unwrap()
        else {
            panic!("no native route answer")
        };
        assert_eq!((r.seq, r.code, r.hosts.len()), (77, RetCode::Succ, 2));

        sim.advance(Duration::from_secs(2));
        assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (1, 0), "{codec:?}");
        assert_eq!(sim.reporter.status[&(ROUTE, host(2))], (0, 1), "{codec:?}");
        assert!(sim.events.contains(&AgentEvent::CodecChosen { link: Link::Dns, codec }));
    }
}

#[test]
fn a_daemon_that_answers_the_hello_is_spoken_to_natively() {
    let mut sim = sim_with_route(&[1]);
    sim.get_host(ROUTE);
    assert_eq!(sim.agent.link_codec(Link::Dns), Some(Codec::Native));
    assert_eq!(sim.agent.link_codec(Link::Reporter), Some(Codec::Native));
    assert!(sim.events.contains(&AgentEvent::CodecChosen { link: Link::Dns, codec: Codec::Native }));
    assert_eq!(sim.dns.codec, Some(Codec::Native));
}

#[test]
fn an_original_dns_and_reporter_are_spoken_to_in_lars_once_the_hello_goes_unanswered() {
    let mut sim = Sim::new(AgentConfig::default());
    sim.dns.original = true;
    sim.reporter.original = true;
    sim.dns.routes.insert(ROUTE, weighted(&[1, 2]));
    assert_eq!(sim.get_host(ROUTE), (RetCode::NoExist, None));
    assert!(sim.dns.pulls.is_empty(), "no pull before the codec is known");
    assert_eq!(sim.agent.link_codec(Link::Dns), None);
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.agent.link_codec(Link::Dns), Some(Codec::Lars));
    assert_eq!(sim.agent.link_codec(Link::Reporter), Some(Codec::Lars));
    assert!(sim.events.contains(&AgentEvent::CodecChosen { link: Link::Dns, codec: Codec::Lars }));
    assert!(sim.events.contains(&AgentEvent::CodecChosen { link: Link::Reporter, codec: Codec::Lars }));
    assert_eq!(sim.dns.codec, Some(Codec::Lars), "the pull went out in the Lars codec");
    assert_eq!(sim.get_host(ROUTE), (RetCode::Succ, Some(host(1))));
    sim.report(ROUTE, host(1), true);
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.reporter.status[&(ROUTE, host(1))], (1, 0), "statistics reached the original");
}

/// A restarted lars-dns, a replica that is behind, or another store gives a lower version: the
/// agent takes it all the same (versions order nothing across links), and a route removed
/// there is removed here.
#[test]
fn a_lower_version_on_a_new_link_is_taken() {
    let mut sim = sim_with_route(&[1, 2]);
    sim.dns.version = 1_764_000_000_000_000_000; // a file's mtime in nanoseconds
    sim.get_host(ROUTE);
    assert_eq!(sim.get_host(ROUTE).0, RetCode::Succ);
    // Fail over to a replica (or a restarted dns on MySQL) whose version is in seconds and
    // which no longer has host 2.
    sim.dns_down();
    sim.dns.version = 1_764_000_000;
    sim.dns.routes.insert(ROUTE, weighted(&[1]));
    sim.dns_up();
    let hosts: Vec<SocketAddr> = sim.agent.route_hosts(ROUTE.0, ROUTE.1).unwrap().map(|h| h.addr).collect();
    assert_eq!(hosts, [host(1)], "the removed host is gone at once");
    assert!(sim.agent.route_state(ROUTE.0, ROUTE.1) == Some(RouteState::Fresh));
    // And the same link's later push, with a version lower still, is taken too.
    sim.dns.version = 5;
    sim.dns_set_route(ROUTE, &[3]);
    let hosts: Vec<SocketAddr> = sim.agent.route_hosts(ROUTE.0, ROUTE.1).unwrap().map(|h| h.addr).collect();
    assert_eq!(hosts, [host(3)]);
    assert_eq!(sim.agent.stats().pull_timeouts, 0, "no pull was left in flight");
}

/// Failing over between replicas that are ahead and behind each other: the agent serves what
/// the replica it is linked to says, and nothing pins it.
#[test]
fn failing_over_between_replicas_ahead_and_behind_follows_the_current_one() {
    let mut sim = sim_with_route(&[1]);
    sim.dns.version = u64::MAX; // a peer that once said 2^64 - 1
    sim.get_host(ROUTE);
    for (version, lasts) in [(10u64, &[2u8][..]), (20, &[3]), (15, &[2, 3])] {
        sim.dns_down();
        sim.dns.version = version;
        sim.dns.routes.insert(ROUTE, weighted(lasts));
        sim.dns_up();
        let mut hosts: Vec<SocketAddr> =
            sim.agent.route_hosts(ROUTE.0, ROUTE.1).unwrap().map(|h| h.addr).collect();
        hosts.sort();
        let want: Vec<SocketAddr> = lasts.iter().map(|&l| host(l)).collect();
        assert_eq!(hosts, want, "replica at version {version}");
    }
}

/// A lars-dns restarted on a store it cannot read answers "not ready": the agent keeps serving
/// what it has, says so, asks again with backoff, and takes the routes once the dns has them.
#[test]
fn a_dns_that_has_not_loaded_its_store_does_not_wipe_the_agent() {
    let mut sim = sim_with_route(&[1, 2]);
    sim.get_host(ROUTE);
    assert_eq!(sim.get_host(ROUTE).0, RetCode::Succ);
    sim.dns_down();
    sim.dns.unready = true;
    sim.dns_up();
    assert_eq!(sim.agent.stats().dns_unready_answers, 1);
    assert!(!sim.agent.dns_ready());
    assert!(sim.events.contains(&AgentEvent::DnsUnready { modid: ROUTE.0, cmdid: ROUTE.1 }));
    for _ in 0..100 {
        assert_eq!(sim.get_host(ROUTE).0, RetCode::Succ, "still served");
    }
    // Past update_timeout the route is stale, and still served.
    sim.advance(Duration::from_secs(20));
    assert_eq!(sim.get_host(ROUTE).0, RetCode::Succ);
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Stale));
    assert_eq!(sim.agent.stale_routes(), 1);
    let asked = sim.dns.pulls.len();
    assert!(asked >= 3, "asked again with backoff ({asked} pulls)");
    // The dns loads its store: the next pull is answered and the route is fresh again.
    sim.dns.unready = false;
    sim.dns.routes.insert(ROUTE, weighted(&[2]));
    sim.advance(Duration::from_secs(30));
    assert!(sim.agent.dns_ready());
    assert_eq!(held_hosts(&sim, ROUTE), [host(2)]);
    assert_eq!(sim.agent.route_state(ROUTE.0, ROUTE.1), Some(RouteState::Fresh));
}

/// With a secret, the agent's first frame on a link is its `AuthHello`, nothing from the dns is
/// taken before the dns proved the secret, a push before that closes the link, and once the
/// proof checks out the agent proves itself and only then pulls.
#[test]
fn with_a_secret_nothing_from_the_dns_is_taken_before_it_proved_it() {
    use lars_core::auth::{Responder, Secret};
    let secret = Secret::new(b"the fleet's shared secret").unwrap();
    let config = AgentConfig { secret: Some(secret.clone()), caller: 7, ..AgentConfig::default() };
    let now = Instant::from_millis(1_000);
    let mut agent: Agent<8, 8> = Agent::new(config, now);
    let mut buf = vec![0u8; 70_000];
    fn frame_of(bytes: &[u8]) -> Frame<'_> {
        Frame::parse_datagram(bytes, MAX_BODY).unwrap()
    }
    fn encode(msgid: MsgId, body: &dyn lars_core::wire::Encode) -> Vec<u8> {
        let mut raw = vec![0u8; body.buffer_len()];
        body.emit(&mut raw).unwrap();
        let mut out = vec![0u8; 256];
        let len = frame::encode(msgid, &lars_core::wire::Raw(&raw), &mut out).unwrap();
        out.truncate(len);
        out
    }
    // A caller asks for route 5/5, so the agent wants to pull it.
    let request = encode(
        MsgId::NativeGetHostRequest,
        &native::GetHostRequest { seq: 1, modid: 5, cmdid: 5, key: None },
    );
    let mut reply = [0u8; 512];
    let _ = agent.handle_api_datagram(now, &request, &mut reply);

    agent.handle_link_nonce(Link::Dns, [1; 16]);
    agent.handle_dns_link(now, true);
    let tx = agent.poll_transmit(now, &mut buf).expect("the hello");
    assert_eq!((tx.link, frame_of(&buf[..tx.len]).msgid), (Link::Dns, MsgId::AuthHello));
    assert!(
        agent.poll_transmit(now, &mut buf).is_none_or(|tx| tx.link != Link::Dns),
        "no pull before the proof"
    );
    // An impostor pushes a route without answering the challenge: refused, and the link closes.
    let hosts = weighted(&[66]);
    let push = native::RouteResponse {
        seq: 0,
        modid: 5,
        cmdid: 5,
        code: RetCode::Succ,
        version: 1,
        hosts: List::from_slice(&hosts),
    };
    let pushed = encode(MsgId::NativeRouteResponse, &push);
    assert!(agent.handle_dns_frame(now, frame_of(&pushed)).is_err());
    assert_eq!(agent.route_hosts(5, 5).map(|h| h.count()), Some(0), "the impostor's host was not taken");
    assert_eq!(agent.poll_link_close(), Some(Link::Dns));
    assert_eq!(agent.poll_link_close(), None);
    agent.handle_dns_link(now, false);

    // The real dns: a new link, a new nonce, a challenge that checks out.
    agent.handle_link_nonce(Link::Dns, [2; 16]);
    agent.handle_dns_link(now, true);
    let tx = agent.poll_transmit(now, &mut buf).unwrap();
    let hello = native::AuthHello::parse(frame_of(&buf[..tx.len]).body).unwrap();
    assert_eq!((hello.node, hello.nonce), (7, [2; 16]));
    let mut dns = Responder::new();
    let challenge = dns.handle_hello(Some(&secret), &hello, native::Role::Dns, 0, MAX_BODY, [3; 16]).unwrap();
    agent.handle_dns_frame(now, frame_of(&encode(MsgId::AuthChallenge, &challenge))).unwrap();
    let tx = agent.poll_transmit(now, &mut buf).unwrap();
    let proof = native::AuthProof::parse(frame_of(&buf[..tx.len]).body).expect("the proof comes first");
    assert_eq!(dns.handle_proof(Some(&secret), &proof), Ok(7));
    let tx = agent.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(frame_of(&buf[..tx.len]).msgid, MsgId::NativeGetRouteRequest, "then the pull");
    agent.handle_dns_frame(now, frame_of(&pushed)).unwrap();
    assert_eq!(agent.route_hosts(5, 5).map(|h| h.count()), Some(1), "the proven dns's route is taken");
}
