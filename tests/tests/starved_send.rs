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
    assert_eq!(conn.frame_counts().1, sent, "only whole frames are counted");
    drop(conn); // closes our end: the peer reads all that reached the wire, then its end
    // A guard against hanging, should our end stay open.
    peer.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut wire = Vec::new();
    peer.read_to_end(&mut wire).expect("the peer reads to the end (a timeout: our end never closed)");
    let on_wire = wire.len() as u64;
    if !on_wire.is_multiple_of(FRAME) {
        assert_eq!(error, SendError::Broken);
        assert!(broken, "half a frame on the wire: the connection must close");
    } else {
        assert_eq!(on_wire / FRAME, sent);
    }
}
