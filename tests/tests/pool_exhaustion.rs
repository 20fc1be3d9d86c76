//! Pool exhaustion and recovery, in its own process because the buffer pool is process-wide.
//!
//! 600 connections each send the first 5,000 bytes of a 60 KB frame, more than a 4 KiB block, so each needs a 64 KiB
//! buffer to hold it and the pool has 512, of which frames still on their way may hold half.
//! The others starve: the server stops reading them, without failing or closing them. When the
//! frames complete, buffers come back, the starved connections resume, and every echo arrives,
//! and every buffer comes back: the workers' magazines hold a bounded number meanwhile, and
//! give them back when the server stops.

use std::sync::atomic::Ordering;

use lars_tests::{FrameClient, echo_server, eventually, frame_bytes};

#[test]
fn exhausted_pool_pauses_reading_and_recovers() {
    let server = echo_server(2, 1000);
    let frame = frame_bytes(0x101, &[9u8; 60_000]);
    let mut clients: Vec<_> = (0..600).map(|_| FrameClient::connect(server.local_addr()).unwrap()).collect();
    for client in &mut clients {
        client.write(&frame[..5000]).unwrap();
    }
    eventually("the partial frames hold half the large class", || {
        lars_std::reactor::plumbing::slow_holds() == lars_std::pool::config().large_blocks / 2
    });
    let [_, large] = lars_std::pool::stats();
    assert_eq!(large.in_use, large.blocks / 2, "the other half is kept for frames that have arrived");
    // The acceptor may still be taking connections in: none is refused or closed, so all 600
    // are open once it has.
    eventually("starved connections stay open", || server.stats().open.load(Ordering::Relaxed) == 600);
    for client in &mut clients {
        client.write(&frame[5000..]).unwrap();
    }
    for client in &mut clients {
        assert_eq!(client.read_frame().unwrap(), (0x101, vec![9u8; 60_000]));
    }
    drop(clients);
    // The workers' magazines keep some blocks (a bounded number); no buffer stays out.
    eventually("every buffer back", || {
        let [small, large] = lars_std::pool::stats();
        small.in_use == 0 && large.in_use == 0
    });
    let [small, large] = lars_std::pool::stats();
    let config = lars_std::pool::config();
    assert!(small.cached <= 2 * config.small_magazine && large.cached <= 2 * config.large_magazine);
    assert!(large.cached <= large.blocks / 4, "the magazines hold at most their budget");
    assert_eq!(server.stats().bad_frames.load(Ordering::Relaxed), 0);
    server.shutdown();
    let [small, large] = lars_std::pool::stats();
    assert_eq!((small.in_use, large.in_use), (0, 0));
    assert_eq!((small.cached, large.cached), (0, 0), "the magazines go back when their threads end");
}
