//! The reactor through real sockets on loopback: framing edge cases, limits, bad peers,
//! backpressure, reconnects, UDP, timers and tasks.
// Test deadlines, not time the code under test sees.
#![allow(clippy::disallowed_methods)]

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lars_core::backoff::Backoff;
use lars_core::time::Duration as CoreDuration;
use lars_core::wire::MsgId;
use lars_std::reactor::{Control, EventLoop, LinkEvent, Ready, TcpClient, TcpClientConfig, UdpEndpoint};
use lars_std::time::Clock;
use lars_tests::{EchoTask, FrameClient, echo_server, eventually, frame_bytes};

const ECHO: u32 = 0x101; // Heartbeat: any known msgid will do, the reactor does not read bodies

#[test]
fn frames_split_at_every_byte_boundary() {
    let server = echo_server(2, 64);
    let stream: Vec<u8> =
        [frame_bytes(ECHO, b"first"), frame_bytes(ECHO, &[7; 300]), frame_bytes(ECHO, b"")].concat();
    for split in 0..=stream.len() {
        let mut client = FrameClient::connect(server.local_addr()).unwrap();
        client.write(&stream[..split]).unwrap();
        std::thread::sleep(Duration::from_micros(200));
        client.write(&stream[split..]).unwrap();
        assert_eq!(client.read_frame().unwrap(), (ECHO, b"first".to_vec()), "split {split}");
        assert_eq!(client.read_frame().unwrap(), (ECHO, vec![7; 300]), "split {split}");
        assert_eq!(
            client.read_frame().unwrap(),
            (ECHO, vec![]),
            "split {split}: zero-length body at the end"
        );
    }
    assert_eq!(server.stats().bad_frames.load(Ordering::Relaxed), 0);
}

#[test]
fn many_frames_in_one_read_and_a_zero_length_body_last() {
    let server = echo_server(1, 64);
    let mut client = FrameClient::connect(server.local_addr()).unwrap();
    let mut stream: Vec<u8> = (0..500u32).flat_map(|i| frame_bytes(ECHO, &i.to_le_bytes())).collect();
    stream.extend(frame_bytes(1, b"")); // GetRouteRequest for modid 0 / cmdid 0: an empty body (D-R-3)
    client.write(&stream).unwrap();
    for i in 0..500u32 {
        assert_eq!(client.read_frame().unwrap(), (ECHO, i.to_le_bytes().to_vec()));
    }
    assert_eq!(client.read_frame().unwrap(), (1, vec![]));
    eventually("every frame counted in and out", || {
        (server.stats().frames_in(), server.stats().frames_out()) == (501, 501)
    });
}

/// Echoes, and closes after echoing a frame whose body is `bye`.
struct EchoThenClose;

impl lars_std::reactor::Service for EchoThenClose {
    type Task = ();

    fn frame(
        &mut self,
        _conn: lars_std::reactor::ConnId,
        frame: lars_core::wire::Frame<'_>,
        reply: &mut lars_std::reactor::Sender<'_>,
    ) -> Control {
        match Control::after(reply.send(frame.msgid, &lars_core::wire::Raw(frame.body))) {
            Control::Continue if frame.body == b"bye" => Control::Close,
            control => control,
        }
    }
}

/// A server on a free loopback port with one worker, whose connections each get `service()`.
fn one_thread_server<S: lars_std::reactor::Service>(
    mut service: impl FnMut() -> S,
) -> lars_std::reactor::ServerHandle<S::Task> {
    let mut config = lars_std::reactor::ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 1;
    lars_std::reactor::TcpServer::start(config, |_| service()).unwrap()
}

#[test]
fn replies_gathered_from_one_read_go_out_before_a_close() {
    let server = one_thread_server(|| EchoThenClose);
    let mut client = FrameClient::connect(server.local_addr()).unwrap();
    let stream: Vec<u8> = [
        frame_bytes(ECHO, b"one"),
        frame_bytes(ECHO, b"two"),
        frame_bytes(ECHO, b"bye"),
        frame_bytes(ECHO, b"late"),
    ]
    .concat();
    client.write(&stream).unwrap();
    for body in [&b"one"[..], b"two", b"bye"] {
        assert_eq!(client.read_frame().unwrap(), (ECHO, body.to_vec()));
    }
    assert!(client.is_closed_by_server(), "nothing is handled after the close");
}

/// Answers any frame with as many 60 KB frames as the output queue takes, counting them in
/// `sent`, and closes.
struct FloodThenClose {
    sent: Arc<AtomicUsize>,
}

impl lars_std::reactor::Service for FloodThenClose {
    type Task = ();

    fn frame(
        &mut self,
        _conn: lars_std::reactor::ConnId,
        _frame: lars_core::wire::Frame<'_>,
        reply: &mut lars_std::reactor::Sender<'_>,
    ) -> Control {
        let body = vec![0x5a; 60_000];
        while reply.send(MsgId::Heartbeat, &lars_core::wire::Raw(&body)).is_ok() {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
        Control::Close
    }
}

fn flood_then_close_server(
    close_linger: CoreDuration,
) -> (lars_std::reactor::ServerHandle<()>, Arc<AtomicUsize>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let mut config = lars_std::reactor::ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 1;
    config.close_linger = close_linger;
    let counter = Arc::clone(&sent);
    let server =
        lars_std::reactor::TcpServer::start(config, move |_| FloodThenClose { sent: Arc::clone(&counter) })
            .unwrap();
    (server, sent)
}

#[test]
fn a_close_after_replies_lets_queued_output_drain_first() {
    let (server, sent) = flood_then_close_server(CoreDuration::from_secs(10));
    let mut client = FrameClient::connect(server.local_addr()).unwrap();
    client.write(&frame_bytes(ECHO, b"flood me")).unwrap();
    eventually("the service filled the output queue", || sent.load(Ordering::Relaxed) > 0);
    std::thread::sleep(Duration::from_millis(100)); // the socket is full, the rest is queued
    let mut received = 0;
    while let Ok((msgid, body)) = client.read_frame() {
        assert_eq!((msgid, body.len()), (MsgId::Heartbeat as u32, 60_000));
        assert!(body.iter().all(|b| *b == 0x5a), "frame {received} intact");
        received += 1;
    }
    assert_eq!(received, sent.load(Ordering::Relaxed), "every reply arrives whole, then the close");
    eventually("closed", || server.stats().open.load(Ordering::Relaxed) == 0);
}

#[test]
fn a_closing_connection_whose_peer_never_reads_is_closed_after_the_linger() {
    let (server, sent) = flood_then_close_server(CoreDuration::from_millis(100));
    let mut client = FrameClient::connect(server.local_addr()).unwrap();
    client.write(&frame_bytes(ECHO, b"flood me")).unwrap();
    eventually("the service filled the output queue", || sent.load(Ordering::Relaxed) > 0);
    eventually("closed though nothing was read", || {
        server.stats().open.load(Ordering::Relaxed) == 0 && server.stats().closed.load(Ordering::Relaxed) == 1
    });
    drop(client);
}

#[test]
fn bad_frames_close_only_their_connection() {
    let server = echo_server(2, 64);
    let mut good = FrameClient::connect(server.local_addr()).unwrap();
    let bad_headers = [
        [1u8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], // negative length
        [1, 0, 0, 0, 0xf8, 0xff, 0, 0],         // 65528 > 65527
        [9, 0, 0, 0, 0, 0, 0, 0],               // unknown msgid
    ];
    for header in bad_headers {
        let mut bad = FrameClient::connect(server.local_addr()).unwrap();
        bad.write(&header).unwrap();
        assert!(bad.is_closed_by_server(), "{header:?} closes the connection");
        good.write(&frame_bytes(ECHO, b"still here")).unwrap();
        assert_eq!(good.read_frame().unwrap(), (ECHO, b"still here".to_vec()));
    }
    eventually("three bad frames counted", || server.stats().bad_frames.load(Ordering::Relaxed) == 3);
}

#[test]
fn frames_before_a_bad_one_in_the_same_read_are_answered() {
    let server = echo_server(1, 64);
    let mut client = FrameClient::connect(server.local_addr()).unwrap();
    let stream: Vec<u8> = [
        frame_bytes(ECHO, b"one"),
        frame_bytes(ECHO, b"two"),
        vec![9, 0, 0, 0, 0, 0, 0, 0], // unknown msgid
    ]
    .concat();
    client.write(&stream).unwrap();
    for body in [&b"one"[..], b"two"] {
        assert_eq!(client.read_frame().unwrap(), (ECHO, body.to_vec()));
    }
    assert!(client.is_closed_by_server(), "the bad frame closes the connection");
    eventually("the bad frame counted", || server.stats().bad_frames.load(Ordering::Relaxed) == 1);
}

#[test]
fn a_thousand_concurrent_connections() {
    let server = echo_server(2, 2000);
    let mut clients: Vec<_> = (0..1000).map(|_| FrameClient::connect(server.local_addr()).unwrap()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.write(&frame_bytes(ECHO, &(i as u32).to_le_bytes())).unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(client.read_frame().unwrap(), (ECHO, (i as u32).to_le_bytes().to_vec()));
    }
    assert_eq!(server.stats().open.load(Ordering::Relaxed), 1000);
    assert_eq!(server.queue_depths(), [0, 0], "every connection handed over");
    eventually("both workers' frames counted", || {
        (server.stats().frames_in(), server.stats().frames_out()) == (1000, 1000)
    });
    drop(clients);
    eventually("all closed", || server.stats().open.load(Ordering::Relaxed) == 0);
}

#[test]
fn connections_over_max_conn_are_refused_at_once() {
    let server = echo_server(2, 8);
    let mut held: Vec<_> = (0..8).map(|_| FrameClient::connect(server.local_addr()).unwrap()).collect();
    for client in &mut held {
        client.write(&frame_bytes(ECHO, b"x")).unwrap();
        client.read_frame().unwrap();
    }
    for _ in 0..4 {
        let mut extra = FrameClient::connect(server.local_addr()).unwrap();
        assert!(extra.is_closed_by_server(), "the ninth connection is closed at accept");
    }
    assert_eq!(server.stats().refused.load(Ordering::Relaxed), 4);
    held.clear();
    eventually("the slots free up", || server.stats().open.load(Ordering::Relaxed) == 0);
    let mut again = FrameClient::connect(server.local_addr()).unwrap();
    again.write(&frame_bytes(ECHO, b"y")).unwrap();
    assert_eq!(again.read_frame().unwrap(), (ECHO, b"y".to_vec()));
}

#[test]
fn a_peer_that_resets_mid_frame() {
    let server = echo_server(1, 64);
    for _ in 0..20 {
        let client = TcpStream::connect(server.local_addr()).unwrap();
        let frame = frame_bytes(ECHO, &[1; 1000]);
        (&client).write_all_ok(&frame[..500]);
        set_linger_zero(&client);
        drop(client); // RST with half a frame buffered on the server
    }
    eventually("the reset connections are closed", || server.stats().open.load(Ordering::Relaxed) == 0);
    let mut good = FrameClient::connect(server.local_addr()).unwrap();
    good.write(&frame_bytes(ECHO, b"ok")).unwrap();
    assert_eq!(good.read_frame().unwrap(), (ECHO, b"ok".to_vec()));
}

trait WriteAllOk {
    fn write_all_ok(self, bytes: &[u8]);
}

impl WriteAllOk for &TcpStream {
    fn write_all_ok(mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self, bytes).unwrap();
    }
}

fn set_linger_zero(stream: &TcpStream) {
    rustix::net::sockopt::set_socket_linger(stream, Some(Duration::ZERO)).unwrap();
}

#[test]
fn a_slow_reader_is_throttled_and_loses_nothing() {
    // 400 requests of 60 KB: each reply is queued in a pooled block.
    slow_reader_loses_nothing(60_000, 400);
}

#[test]
fn a_slow_reader_of_small_frames_loses_nothing() {
    // Small replies are written from the stack; the part a full socket does not take must be
    // queued whole, frame boundaries intact.
    slow_reader_loses_nothing(200, 120_000);
}

/// `count` requests of `body_len` bytes (24 MB of replies) while not reading: far more than the
/// socket buffers and our output block hold, so the server must stop reading from this peer.
fn slow_reader_loses_nothing(body_len: usize, count: usize) {
    let server = echo_server(1, 64);
    let slow = FrameClient::connect(server.local_addr()).unwrap();
    let body: Vec<u8> = (0..body_len).map(|i| i as u8).collect();
    let writer = slow.stream.try_clone().unwrap();
    let request = frame_bytes(ECHO, &body);
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let feeder_written = std::sync::Arc::clone(&written);
    let feeder = std::thread::spawn(move || {
        let mut writer = writer;
        for _ in 0..count {
            if std::io::Write::write_all(&mut writer, &request).is_err() {
                return false;
            }
            feeder_written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        true
    });
    // Until the writer makes no progress for 300 ms (or is done): a server that kept reading
    // would let it go on to the end, however slow the machine.
    let mut last = usize::MAX;
    let mut still = 0;
    while still < 3 && !feeder.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        let now = written.load(std::sync::atomic::Ordering::Relaxed);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    // Meanwhile another client is served at once.
    let mut other = FrameClient::connect(server.local_addr()).unwrap();
    other.write(&frame_bytes(ECHO, b"quick")).unwrap();
    assert_eq!(other.read_frame().unwrap(), (ECHO, b"quick".to_vec()));
    // 24 MB cannot all sit in socket buffers: the writer is still blocked, so the server has
    // stopped reading this peer instead of queueing its replies without bound.
    assert!(!feeder.is_finished(), "the server kept reading a peer that does not read its replies");
    // Now read everything: every reply arrives, in order, intact.
    let mut reader = std::io::BufReader::new(slow.stream.try_clone().unwrap());
    let mut reply = vec![0u8; 8 + body_len];
    for i in 0..count {
        std::io::Read::read_exact(&mut reader, &mut reply).unwrap();
        assert_eq!(reply, frame_bytes(ECHO, &body), "reply {i}");
    }
    assert!(feeder.join().unwrap());
    drop(slow);
}

#[test]
fn pushes_to_a_peer_that_never_reads_close_it() {
    let server = echo_server(1, 64);
    let client = FrameClient::connect(server.local_addr()).unwrap();
    eventually("connected", || server.stats().open.load(Ordering::Relaxed) == 1);
    for _ in 0..50 {
        if server.stats().output_full.load(Ordering::Relaxed) > 0 {
            break;
        }
        let _ = server.post(0, EchoTask::Push { count: 64, size: 60_000 });
        std::thread::sleep(Duration::from_millis(20));
    }
    eventually("the connection is closed for a full output queue", || {
        server.stats().output_full.load(Ordering::Relaxed) == 1
            && server.stats().open.load(Ordering::Relaxed) == 0
    });
    drop(client);
}

#[test]
fn a_client_reconnects_after_its_server_restarts() {
    let server = echo_server(1, 64);
    let addr = server.local_addr();
    let mut event_loop = EventLoop::<()>::new(Clock::new(), 16).unwrap();
    let mut config = TcpClientConfig::new(vec![addr]);
    config.backoff = Backoff::new(CoreDuration::from_millis(20), CoreDuration::from_millis(200));
    let mut client = TcpClient::new(&mut event_loop, config, 7, 99);
    let mut echoes = Vec::new();
    let mut links = Vec::new();
    let mut run = |event_loop: &mut EventLoop<()>, client: &mut TcpClient, until: &Until<'_>| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut ready = Vec::new();
        while !until(&links, &echoes) {
            assert!(std::time::Instant::now() < deadline, "client loop timed out: {links:?}");
            ready.clear();
            event_loop.poll(&mut ready, Some(Duration::from_millis(50))).unwrap();
            for item in ready.drain(..) {
                let event = match item {
                    Ready::Io { readable, writable, .. } => {
                        client.on_io(event_loop, readable, writable, |frame, _| {
                            echoes.push(frame.body.to_vec());
                            Control::Continue
                        })
                    }
                    Ready::Timer(_) => client.on_timer(event_loop, |frame, _| {
                        echoes.push(frame.body.to_vec());
                        Control::Continue
                    }),
                    Ready::Task(()) => None,
                };
                links.extend(event);
            }
        }
    };
    run(&mut event_loop, &mut client, &|links, _| links.contains(&LinkEvent::Up(addr)));
    assert_eq!(client.send(&mut event_loop, MsgId::Heartbeat, &lars_core::wire::Raw(b"one")), Ok(()));
    run(&mut event_loop, &mut client, &|_, echoes| echoes.len() == 1);

    server.shutdown();
    run(&mut event_loop, &mut client, &|links, _| links.last() == Some(&LinkEvent::Down));
    assert!(
        client.send(&mut event_loop, MsgId::Heartbeat, &lars_core::wire::Raw(b"lost")).is_err(),
        "sending while down is an error"
    );

    let restarted = restart_on(addr);
    run(&mut event_loop, &mut client, &|links, _| {
        links.iter().filter(|l| **l == LinkEvent::Up(addr)).count() == 2
    });
    assert_eq!(client.send(&mut event_loop, MsgId::Heartbeat, &lars_core::wire::Raw(b"two")), Ok(()));
    run(&mut event_loop, &mut client, &|_, echoes| echoes.len() == 2);
    assert_eq!(echoes, [b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(client.connects(), 2);
    drop(restarted);
}

#[test]
fn a_server_that_hangs_up_at_once_is_retried_ever_more_slowly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || listener.incoming().for_each(drop)); // accepts, then closes
    let mut event_loop = EventLoop::<()>::new(Clock::new(), 16).unwrap();
    let mut config = TcpClientConfig::new(vec![addr]);
    config.backoff = Backoff::new(CoreDuration::from_millis(5), CoreDuration::from_millis(80));
    let mut client = TcpClient::new(&mut event_loop, config, 7, 99);
    let mut ups = Vec::new();
    let mut ready = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ups.len() < 8 {
        assert!(std::time::Instant::now() < deadline, "{} connects", ups.len());
        ready.clear();
        event_loop.poll(&mut ready, Some(Duration::from_millis(50))).unwrap();
        for item in ready.drain(..) {
            let event = match item {
                Ready::Io { readable, writable, .. } => {
                    client.on_io(&mut event_loop, readable, writable, |_, _| Control::Continue)
                }
                Ready::Timer(_) => client.on_timer(&mut event_loop, |_, _| Control::Continue),
                Ready::Task(()) => None,
            };
            if event == Some(LinkEvent::Up(addr)) {
                ups.push(std::time::Instant::now());
            }
        }
    }
    // Nominal delays 5, 10, 20, 40, 80, 80... ms, each jittered down to half at most; a link
    // that never stays up must not reset the backoff to 5 ms.
    let last_gap = ups[7] - ups[6];
    assert!(last_gap >= Duration::from_millis(40), "the backoff grew: last gap {last_gap:?}");
}

/// When the client loop of the reconnect test may stop, given the link events and echoes so far.
type Until<'a> = dyn Fn(&[LinkEvent], &[Vec<u8>]) -> bool + 'a;

/// Starts an echo server on exactly `addr` (retrying while the old socket lets go).
fn restart_on(addr: SocketAddr) -> lars_std::reactor::ServerHandle<EchoTask> {
    let mut config = lars_std::reactor::ServerConfig::new(addr);
    config.threads = 1;
    for _ in 0..100 {
        if let Ok(server) = lars_std::reactor::TcpServer::start(config.clone(), |_| lars_tests::Echo) {
            return server;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("could not listen on {addr} again");
}

#[test]
fn timers_fire_in_deadline_order() {
    let mut event_loop = EventLoop::<()>::new(Clock::new(), 4).unwrap();
    let now = event_loop.now();
    for (after_ms, token) in [(30, 3), (10, 1), (20, 2), (10, 11), (0, 0)] {
        event_loop.set_timer(now + CoreDuration::from_millis(after_ms), token);
    }
    let mut fired = Vec::new();
    let mut ready = Vec::new();
    while fired.len() < 5 {
        ready.clear();
        event_loop.poll(&mut ready, None).unwrap();
        fired.extend(ready.drain(..).filter_map(|r| if let Ready::Timer(t) = r { Some(t) } else { None }));
    }
    assert_eq!(fired, [0, 1, 11, 2, 3], "deadline order, ties in the order set");
    assert!(event_loop.now().saturating_since(now) >= CoreDuration::from_millis(30));
}

#[test]
fn tasks_wake_the_loop_and_the_queue_is_bounded() {
    let mut event_loop = EventLoop::<u32>::new(Clock::new(), 3).unwrap();
    let waker = event_loop.waker();
    // Bounded: with nobody draining it, a full queue refuses tasks.
    let accepted: Vec<bool> = (0..5).map(|i| waker.post(i).is_ok()).collect();
    assert_eq!(accepted, [true, true, true, false, false]);
    let mut ready = Vec::new();
    event_loop.poll(&mut ready, Some(Duration::from_secs(10))).unwrap();
    let tasks = |ready: &mut Vec<Ready<u32>>| -> Vec<u32> {
        ready.drain(..).filter_map(|r| if let Ready::Task(t) = r { Some(t) } else { None }).collect()
    };
    assert_eq!(tasks(&mut ready), [0, 1, 2]);
    // Woken: a post from another thread ends a wait that only a timer a minute away would
    // otherwise end. The timer guards against hanging: if it fires first, the post did not wake.
    const HANG_GUARD: u64 = 99;
    let guard_at = event_loop.now() + CoreDuration::from_secs(60);
    event_loop.set_timer(guard_at, HANG_GUARD);
    let poster = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50)); // lets the loop go to sleep first
        waker.post(7).is_ok()
    });
    while ready.is_empty() {
        event_loop.poll(&mut ready, None).unwrap();
    }
    assert!(poster.join().unwrap());
    assert!(
        !ready.iter().any(|r| matches!(r, Ready::Timer(HANG_GUARD))),
        "the loop hung until its guard timer: the post did not wake it"
    );
    assert_eq!(tasks(&mut ready), [7]);
    assert_eq!(event_loop.next_timer(), Some(guard_at), "the guard timer is still pending");
}

#[test]
fn udp_replies_go_to_each_datagrams_source_and_bad_datagrams_are_dropped() {
    let mut event_loop = EventLoop::<()>::new(Clock::new(), 4).unwrap();
    let mut endpoint = UdpEndpoint::bind(&event_loop, "127.0.0.1:0".parse().unwrap(), 0, true).unwrap();
    let server = endpoint.local_addr().unwrap();
    let clients: Vec<_> = (0..3).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    for (i, client) in clients.iter().enumerate() {
        client.send_to(&frame_bytes(ECHO, &[i as u8; 4]), server).unwrap();
    }
    let mut short = frame_bytes(ECHO, b"abcd");
    short.pop(); // length says 4, datagram holds 3
    clients[0].send_to(&short, server).unwrap();
    clients[0].send_to(&[1, 2, 3], server).unwrap();
    let mut handled = 0;
    let mut ready = Vec::new();
    while endpoint.stats().received < 5 {
        ready.clear();
        event_loop.poll(&mut ready, Some(Duration::from_secs(5))).unwrap();
        endpoint
            .serve(64, |frame, _raw, _from, reply| {
                handled += 1;
                let bytes = frame_bytes(frame.msgid.as_u32(), frame.body);
                reply[..bytes.len()].copy_from_slice(&bytes);
                bytes.len()
            })
            .unwrap();
    }
    assert_eq!((handled, endpoint.stats().malformed, endpoint.stats().replies), (3, 2, 3));
    for (i, client) in clients.iter().enumerate() {
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((from, &buf[..n]), (server, &frame_bytes(ECHO, &[i as u8; 4])[..]));
    }
}

#[test]
fn shutdown_stops_accepting_and_closes_everything() {
    let server = echo_server(2, 64);
    let addr = server.local_addr();
    let mut client = FrameClient::connect(addr).unwrap();
    client.write(&frame_bytes(ECHO, b"before")).unwrap();
    client.read_frame().unwrap();
    server.shutdown();
    assert!(client.is_closed_by_server(), "open connections are closed");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "nothing listens any more");
}

#[test]
fn sigterm_is_delivered_as_a_shutdown() {
    let mut shutdown = lars_std::signal::Shutdown::install().unwrap();
    let waiter = std::thread::spawn(move || shutdown.wait().is_ok());
    std::thread::sleep(Duration::from_millis(50));
    signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
    assert!(waiter.join().unwrap());
}

/// Echoes, except that msgid 1 makes it panic: a bug in a service.
struct Fragile;

impl lars_std::reactor::Service for Fragile {
    type Task = ();

    fn frame(
        &mut self,
        _: lars_std::reactor::ConnId,
        frame: lars_core::wire::Frame<'_>,
        reply: &mut lars_std::reactor::Sender<'_>,
    ) -> Control {
        assert!(frame.msgid != MsgId::GetRouteRequest, "a service bug");
        let _ = reply.send(frame.msgid, &lars_core::wire::Raw(frame.body));
        Control::Continue
    }
}

#[test]
fn a_worker_that_dies_gives_back_its_connections_and_gets_no_more() {
    let mut config = lars_std::reactor::ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 2;
    let server = lars_std::reactor::TcpServer::start(config, |_| Fragile).unwrap();
    let mut victim = FrameClient::connect(server.local_addr()).unwrap();
    let mut bystander = FrameClient::connect(server.local_addr()).unwrap();
    eventually("both connected", || server.stats().open.load(Ordering::Relaxed) == 2);
    victim.write(&frame_bytes(1, b"")).unwrap();
    assert!(victim.is_closed_by_server(), "the dead worker's connection is closed");
    eventually("its connection left the count", || server.stats().open.load(Ordering::Relaxed) == 1);
    bystander.write(&frame_bytes(ECHO, b"alive")).unwrap();
    assert_eq!(bystander.read_frame().unwrap(), (ECHO, b"alive".to_vec()), "the other worker carries on");
    for i in 0..6u8 {
        let mut client = FrameClient::connect(server.local_addr()).unwrap();
        client.write(&frame_bytes(ECHO, &[i])).unwrap();
        assert_eq!(client.read_frame().unwrap(), (ECHO, vec![i]), "new connections go to the live worker");
    }
}

/// Answers each frame with its own bytes, encoded again and sent as they are, after trying
/// two that are not one whole frame (a byte short, a byte over), which must be refused.
struct SendsEncoded;

impl lars_std::reactor::Service for SendsEncoded {
    type Task = ();

    fn frame(
        &mut self,
        _: lars_std::reactor::ConnId,
        frame: lars_core::wire::Frame<'_>,
        reply: &mut lars_std::reactor::Sender<'_>,
    ) -> Control {
        let mut bytes = vec![0u8; 8 + frame.body.len() + 1];
        let len = lars_core::wire::frame::encode(frame.msgid, &lars_core::wire::Raw(frame.body), &mut bytes)
            .expect("room for the frame");
        let refused = |result| matches!(result, Err(lars_std::reactor::SendError::Encode(_)));
        assert!(refused(reply.send_frame(&bytes[..len - 1])), "a byte short of its header's length");
        assert!(refused(reply.send_frame(&bytes[..len + 1])), "a byte past it");
        Control::after(reply.send_frame(&bytes[..len]))
    }
}

#[test]
fn encoded_frames_go_out_as_they_are_and_only_whole_ones() {
    let server = one_thread_server(|| SendsEncoded);
    let mut client = FrameClient::connect(server.local_addr()).unwrap();
    // Small frames gathered from one read, and one too large to go out from the stack.
    let bodies = [b"one".to_vec(), vec![], vec![9; 20_000], b"last".to_vec()];
    let stream: Vec<u8> = bodies.iter().flat_map(|body| frame_bytes(ECHO, body)).collect();
    client.write(&stream).unwrap();
    for body in &bodies {
        assert_eq!(client.read_frame().unwrap(), (ECHO, body.clone()));
    }
    eventually("one frame out for each in", || server.stats().frames_out() == 4);
}
