//! The large-block reserve through a real daemon sized by its config file: lars-dns with a
//! `[pool]` of 8 large blocks, read through `daemon::load_config` as the binary reads it. 20
//! connections each send the first 5,000 bytes of a 60 KB route request, so each needs a large
//! block to hold it: 4 get one (frames still on their way hold at most half the class), the
//! rest wait without being closed, and `lars stats` (the daemon's `StatsResponse`) shows it.
//! A whole 60 KB request from another peer is answered meanwhile (before the reserve, the slow
//! peers held every block and it waited for them), and so is a small one. When the frames
//! complete, every request gets its route and every block comes back. Own process: the pool is
//! process-wide, and this test sizes it.

use std::net::SocketAddr;
use std::time::Duration;

use lars_core::wire::{Message, MsgId};
use lars_std::config::ReactorConfig;
use lars_std::daemon::{self, Args};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::store::memory::MemoryRoutes;
use lars_tests::{FrameClient, eventually, frame_bytes};

/// A Lars `GetRouteRequest` for (1, 1), padded to `len` bytes with an unknown protobuf field
/// (which a decoder skips).
fn padded_route_request(len: usize) -> Vec<u8> {
    let mut body = vec![0x08, 1, 0x10, 1, 0x7a];
    let pad = len - body.len() - 3;
    body.extend_from_slice(&[(pad as u8) | 0x80, ((pad >> 7) as u8) | 0x80, (pad >> 14) as u8]);
    body.resize(len, 0);
    frame_bytes(MsgId::GetRouteRequest.as_u32(), &body)
}

fn counter(addr: SocketAddr, name: &str) -> u64 {
    let counters = lars_std::client::daemon_stats(addr, Duration::from_secs(2)).unwrap();
    counters.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no counter {name}")).1
}

fn expect_route(client: &mut FrameClient) {
    let (msgid, body) = client.read_frame().unwrap();
    assert_eq!(msgid, MsgId::GetRouteResponse.as_u32());
    let Ok(Message::GetRouteResponse(route)) = Message::parse(MsgId::GetRouteResponse, &body) else {
        panic!("not a route response")
    };
    assert_eq!((route.modid, route.cmdid, route.hosts.len()), (1, 1, 1));
}

#[test]
fn a_daemon_sized_by_its_config_pauses_what_it_cannot_buffer_and_recovers() {
    let dir = std::env::temp_dir().join(format!("lars-pool-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("lars_dns.conf");
    std::fs::write(
        &conf,
        "[reactor]\nthreadNum = 2\nmaxConn = 64\n\n[pool]\nsmallBlocks = 256\nlargeBlocks = 8\nlargeMagazine = 2\n",
    )
    .unwrap();
    let args = Args::parse(["--config".to_string(), conf.display().to_string()], &["config"], &[]).unwrap();
    let mut ini = daemon::load_config(&args, &ReactorConfig::KEYS).unwrap();
    let sized = lars_std::pool::config();
    assert_eq!((sized.small_blocks, sized.large_blocks, sized.large_magazine), (256, 8, 2));
    let mut server = daemon::server_config(&mut ini, &args, 0).unwrap();
    server.addr = "127.0.0.1:0".parse().unwrap();
    assert_eq!(server.threads, 2);
    let routes = MemoryRoutes::new();
    routes.set_route((1, 1), &["10.0.0.1:80".parse().unwrap()]);
    let dns = Dns::start(DnsConfig::new(server), Box::new(routes)).unwrap();
    let addr = dns.local_addr();
    assert_eq!(counter(addr, "pool_large_blocks"), 8);
    assert_eq!(counter(addr, "pool_small_block_size"), 4096);

    let request = padded_route_request(60_000);
    let mut clients: Vec<_> = (0..20).map(|_| FrameClient::connect(addr).unwrap()).collect();
    for client in &mut clients {
        client.write(&request[..5000]).unwrap();
    }
    eventually("the slow peers hold half the large class", || {
        counter(addr, "pool_large_held_by_partial_frames") == 4 && counter(addr, "pool_large_in_use") == 4
    });
    // The other half serves frames that have arrived whole: a peer's 60 KB request is answered
    // while the slow ones wait, and again (its block came back).
    let mut whole = FrameClient::connect(addr).unwrap();
    for _ in 0..3 {
        whole.write(&request).unwrap();
        expect_route(&mut whole);
    }
    assert_eq!(counter(addr, "pool_large_held_by_partial_frames"), 4);
    // Only the connections that need a large block wait: a small request is answered.
    let mut small = FrameClient::connect(addr).unwrap();
    small.write(&padded_route_request(200)).unwrap();
    expect_route(&mut small);

    for client in &mut clients {
        client.write(&request[5000..]).unwrap();
    }
    for client in &mut clients {
        expect_route(client);
    }
    drop(clients);
    eventually("every block back from the buffers", || {
        counter(addr, "pool_large_in_use") == 0
            && counter(addr, "pool_small_in_use") <= 1
            && counter(addr, "pool_large_held_by_partial_frames") == 0
    });
    assert!(counter(addr, "pool_large_in_magazines") <= 2, "the budget: a quarter of the class");
    dns.shutdown();
    let [small, large] = lars_std::pool::stats();
    assert_eq!((small.in_use, large.in_use, small.cached, large.cached), (0, 0, 0, 0));
    std::fs::remove_dir_all(&dir).unwrap();
}
