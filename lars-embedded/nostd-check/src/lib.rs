//! A `#![no_std]` static library that instantiates lars-core's agent and every load-balance
//! policy at the gateway's size (16 routes × 16 hosts).
//!
//! Generic code is only compiled where it is used, so building lars-core alone for an MCU
//! target proves little about `Agent<R, H>`. `cargo xtask test` builds this crate for
//! `thumbv6m-none-eabi` and `thumbv7em-none-eabihf`: if the agent or a policy needed `std`, an
//! allocator, or an operation the target lacks, that build fails.
#![no_std]

use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use lars_core::agent::{Agent, AgentConfig};
use lars_core::lb::{Balance, Balancer, LbConfig, Pick, PolicyKind, Rng};
use lars_core::time::Instant;
use lars_core::wire::native::{Outcome, WeightedHost};

/// Drives one agent and one balancer of each policy through their entry points. It exists to
/// be compiled, not called; the arguments keep the optimiser from folding it away.
#[unsafe(no_mangle)]
pub extern "C" fn lars_nostd_check(now_us: u64, datagram_len: usize) -> usize {
    let now = Instant::from_micros(now_us);
    let mut agent: Agent<16, 16> = Agent::new(AgentConfig::default(), now);
    agent.handle_dns_link(now, true);
    let datagram = [0u8; 64];
    let mut reply = [0u8; 512];
    let mut total =
        agent.handle_api_datagram(now, &datagram[..datagram_len.min(64)], &mut reply).unwrap_or(0);
    agent.handle_timeout(now);
    while let Some(transmit) = agent.poll_transmit(now, &mut reply) {
        total += transmit.len;
    }
    while agent.poll_event().is_some() {
        total += 1;
    }

    let host = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from_bits(now_us as u32), 80));
    let hosts = [WeightedHost { addr: host, weight: 1 }];
    let mut rng = Rng::new(now_us);
    for kind in
        [PolicyKind::Lars, PolicyKind::RoundRobin, PolicyKind::Weighted, PolicyKind::P2c, PolicyKind::Maglev]
    {
        let mut balancer: Balancer<16> = Balancer::new(kind, &LbConfig::default());
        if balancer.update(now, &hosts).is_ok()
            && let Pick::Host(addr) = balancer.pick(now, Some(now_us), &mut rng)
        {
            balancer.report(now, addr, Outcome::Ok, 100);
            total += balancer.len();
        }
    }
    total
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
