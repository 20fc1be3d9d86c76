//! A client whose send breaks the link for want of pool buffers (the socket is full and there
//! is no block for the rest of a frame) reports the link down and reconnects, although its
//! healthy socket raises no event to notice it by (found in review). Own process: it empties
//! the pool.

use std::net::TcpListener;
use std::time::Duration;

use lars_core::backoff::Backoff;
use lars_core::time::Duration as CoreDuration;
use lars_core::wire::{MsgId, Raw};
use lars_std::reactor::{Control, EventLoop, LinkEvent, Ready, SendError, TcpClient, TcpClientConfig};
use lars_std::time::Clock;

/// Runs the client's loop once (20 ms at most) and returns its link events.
fn step(event_loop: &mut EventLoop<()>, client: &mut TcpClient) -> Vec<LinkEvent> {
    let mut ready = Vec::new();
    event_loop.poll(&mut ready, Some(Duration::from_millis(20))).unwrap();
    ready
        .into_iter()
        .filter_map(|item| match item {
            Ready::Io { readable, writable, .. } => {
                client.on_io(event_loop, readable, writable, |_, _| Control::Continue)
            }
            Ready::Timer(_) => client.on_timer(event_loop, |_, _| Control::Continue),
            Ready::Task(()) => None,
        })
        .collect()
}

#[test]
fn a_send_that_breaks_the_link_reports_it_down_and_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut event_loop = EventLoop::<()>::new(Clock::new(), 16).unwrap();
    let mut config = TcpClientConfig::new(vec![addr]);
    config.backoff = Backoff::new(CoreDuration::from_millis(10), CoreDuration::from_millis(100));
    let mut client = TcpClient::new(&mut event_loop, config, 7, 99);
    let up = |events: Vec<LinkEvent>| events.contains(&LinkEvent::Up(addr));
    assert!((0..100).any(|_| up(step(&mut event_loop, &mut client))));
    let (_never_reads, _) = listener.accept().unwrap();

    let mut hoard = Vec::new();
    for size in [lars_std::pool::LARGE, 1] {
        while let Some(buf) = lars_std::pool::alloc(size) {
            hoard.push(buf);
        }
    }
    let body = vec![7u8; 60_000];
    let error = (0..10_000)
        .find_map(|_| client.send(&mut event_loop, MsgId::Heartbeat, &Raw(&body)).err())
        .expect("the socket fills up");
    assert_eq!(error, SendError::Broken);
    assert_eq!(client.connected_to(), None, "a broken link is closed at once");
    let down = (0..50).any(|_| step(&mut event_loop, &mut client).contains(&LinkEvent::Down));
    assert!(down, "the broken link is reported down");

    drop(hoard);
    assert!((0..100).any(|_| up(step(&mut event_loop, &mut client))), "and reconnects");
    assert_eq!(client.connects(), 2);
}
