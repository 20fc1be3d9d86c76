//! With the pool empty, a reply the socket takes only in part must close the connection rather
//! than leave half a frame on the wire (found in review). Own process: it empties the pool.

use std::io::Read;
use std::net::{TcpListener, TcpStream};

use lars_core::wire::{MsgId, Raw};
use lars_std::reactor::plumbing::{FramedConn, Registered};
use lars_std::reactor::{EventLoop, Interest, SendError};
use lars_std::time::Clock;

#[test]
fn a_partial_unpooled_write_breaks_the_connection_instead_of_desynchronising_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    ours.set_nonblocking(true).unwrap();
    let event_loop: EventLoop<()> = EventLoop::new(Clock::new(), 4).unwrap();
    let mut conn =
        FramedConn::new(Registered::new(&event_loop, ours, 1, Interest::READABLE).unwrap(), 65_000);
    let mut hoard = Vec::new();
    while let Some(buf) = lars_std::pool::alloc(1) {
        hoard.push(buf); // the small class runs dry; replies of 4 KB cannot be queued
    }
    let body = vec![7u8; 4000];
    const FRAME: u64 = 4008;
    let mut sent = 0u64;
    let error = loop {
        match conn.sender().send(MsgId::Heartbeat, &Raw(&body)) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
    };
    let broken = conn.after_send().is_err();
    peer.set_nonblocking(true).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut on_wire = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(n) = peer.read(&mut buf) {
        if n == 0 {
            break;
        }
        on_wire += n as u64;
    }
    assert_eq!(conn.frame_counts().1, sent, "only whole frames are counted");
    if !on_wire.is_multiple_of(FRAME) {
        assert_eq!(error, SendError::Broken);
        assert!(broken, "half a frame on the wire: the connection must close");
    } else {
        assert_eq!(on_wire / FRAME, sent);
    }
}
