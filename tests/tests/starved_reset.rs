//! A connection waiting for pool buffers whose peer resets must close, not wake the loop
//! forever: epoll reports errors even with no interest registered (found in review). Own
//! process: it empties the pool.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use lars_core::wire::Frame;
use lars_std::reactor::plumbing::{FramedConn, Registered};
use lars_std::reactor::{Control, EventLoop, Interest, Ready, Sender};
use lars_std::time::Clock;

#[test]
fn a_starved_connection_whose_peer_resets_is_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().unwrap();
    ours.set_nonblocking(true).unwrap();
    let mut event_loop: EventLoop<()> = EventLoop::new(Clock::new(), 4).unwrap();
    let mut conn =
        FramedConn::new(Registered::new(&event_loop, ours, 1, Interest::READABLE).unwrap(), 65_000);
    let mut hoard = Vec::new();
    while let Some(buf) = lars_std::pool::alloc(1) {
        hoard.push(buf);
    }
    peer.write_all(&[1, 2, 3]).unwrap();
    let mut ready = Vec::new();
    event_loop.poll(&mut ready, Some(Duration::from_secs(1))).unwrap();
    let handle = |_: Frame<'_>, _: &mut Sender<'_>| Control::Continue;
    conn.on_ready(false, true, handle).unwrap();
    assert!(conn.is_starved());
    rustix::net::sockopt::set_socket_linger(&peer, Some(Duration::ZERO)).unwrap();
    drop(peer); // RST
    let mut wakeups = 0;
    let mut closed = false;
    for _ in 0..100 {
        ready.clear();
        event_loop.poll(&mut ready, Some(Duration::from_millis(20))).unwrap();
        for item in ready.drain(..) {
            if let Ready::Io { readable, writable, .. } = item {
                wakeups += 1;
                if conn.on_ready(writable, readable, handle).is_err() {
                    closed = true;
                }
            }
        }
        if closed {
            break;
        }
    }
    assert!(closed, "the reset is noticed while starved");
    assert!(wakeups <= 2, "no busy loop: {wakeups} wake-ups");
}
