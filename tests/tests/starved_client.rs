//! A client connection that ran out of pool buffers resumes reading once buffers come back
//! (found in review). Own process: it empties the pool.

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use lars_std::reactor::{Control, EventLoop, LinkEvent, Ready, TcpClient, TcpClientConfig};
use lars_std::time::Clock;
use lars_tests::frame_bytes;

#[test]
fn a_starved_client_reads_again_when_buffers_return() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut event_loop = EventLoop::<()>::new(Clock::new(), 16).unwrap();
    let mut client = TcpClient::new(&mut event_loop, TcpClientConfig::new(vec![addr]), 7, 99);
    let mut frames = 0usize;
    let mut ready = Vec::new();
    let mut step = |event_loop: &mut EventLoop<()>, client: &mut TcpClient, frames: &mut usize| {
        ready.clear();
        event_loop.poll(&mut ready, Some(Duration::from_millis(20))).unwrap();
        let mut links = Vec::new();
        let mut count = |_: lars_core::wire::Frame<'_>, _: &mut lars_std::reactor::Sender<'_>| {
            *frames += 1;
            Control::Continue
        };
        for item in ready.drain(..) {
            links.extend(match item {
                Ready::Io { readable, writable, .. } => {
                    client.on_io(event_loop, readable, writable, &mut count)
                }
                Ready::Timer(_) => client.on_timer(event_loop, &mut count),
                Ready::Task(()) => None,
            });
        }
        links
    };
    assert!((0..100).any(|_| step(&mut event_loop, &mut client, &mut frames).contains(&LinkEvent::Up(addr))));
    let (mut server_side, _) = listener.accept().unwrap();
    let mut hoard = Vec::new();
    while let Some(buf) = lars_std::pool::alloc(1) {
        hoard.push(buf);
    }
    server_side.write_all(&frame_bytes(0x101, b"push 1")).unwrap();
    for _ in 0..10 {
        step(&mut event_loop, &mut client, &mut frames);
    }
    assert_eq!(frames, 0, "no buffer, no reading");
    drop(hoard);
    server_side.write_all(&frame_bytes(0x101, b"push 2")).unwrap();
    for _ in 0..50 {
        step(&mut event_loop, &mut client, &mut frames);
        if frames == 2 {
            break;
        }
    }
    assert_eq!(frames, 2, "both pushes read once the pool recovered");
}
