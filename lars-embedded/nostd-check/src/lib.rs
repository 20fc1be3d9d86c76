//! A `#![no_std]` static library that instantiates lars-core's agent, every load-balance policy,
//! a leased route, the buffer pool with a magazine, and the lars-embedded node at the gateway's
//! size (16 routes × 16 hosts).
//!
//! Generic code is only compiled where it is used, so building lars-core alone for an MCU
//! target proves little about `Agent<R, H>`. `cargo xtask test` builds this crate for
//! `thumbv6m-none-eabi` and `thumbv7em-none-eabihf`: if the agent or a policy needed `std`, an
//! allocator, or an operation the target lacks, that build fails.
#![no_std]

use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use lars_core::agent::{Agent, AgentConfig};
use lars_core::lb::{Balance, Balancer, LbConfig, Pick, PolicyKind, Rng};
use lars_core::lease::{Lease, LeaseParams};
use lars_core::pool::{BufPool, Magazine, Slab};
use lars_core::time::Instant;
use lars_core::wire::native::{Outcome, WeightedHost};

/// Drives one agent and one balancer of each policy through their entry points. It exists to
/// be compiled, not called; the arguments keep the optimiser from folding it away.
// Unsafe: an unmangled export (the compiler counts it as unsafe code), so the build keeps it.
#[allow(unsafe_code)]
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

    if let Ok(mut lease) = Lease::<16>::new(now, 1, 1, 0, &hosts, LeaseParams::default(), now_us) {
        if let Pick::Host(addr) = lease.get_host(now, None) {
            lease.report(now, addr, Outcome::Ok, 100);
        }
        lease.handle_datagram(now, &datagram[..datagram_len.min(64)]);
        while let Some(len) = lease.poll_transmit(now, &mut reply) {
            total += len;
        }
    }

    // The pool with a magazine: on thumbv6m its compare-and-swap is a critical section.
    static SLAB: Slab<64, 8> = Slab::new();
    static POOL: BufPool<'static, 1> = BufPool::new([SLAB.class().with_magazines(4, 4)]);
    let mut magazine: Magazine<'_, 1, 4> = Magazine::new(&POOL);
    if let Some(mut buf) = magazine.alloc(datagram_len) {
        total += buf.append(&datagram);
        magazine.free(buf);
    }
    total
}

/// A device that never has a packet: enough to compile the node for a target.
struct NullDevice;

/// A token over nothing.
struct NullToken;

impl smoltcp::phy::RxToken for NullToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&[])
    }
}

impl smoltcp::phy::TxToken for NullToken {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = [0u8; 1514];
        f(&mut frame[..len.min(1514)])
    }
}

impl smoltcp::phy::Device for NullDevice {
    type RxToken<'a> = NullToken;
    type TxToken<'a> = NullToken;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(NullToken, NullToken)> {
        None
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<NullToken> {
        None
    }

    fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
        let mut capabilities = smoltcp::phy::DeviceCapabilities::default();
        capabilities.medium = smoltcp::phy::Medium::Ethernet;
        capabilities.max_transmission_unit = 1514;
        capabilities
    }
}

/// Builds a gateway node and polls it once.
// Unsafe: an unmangled export, as `lars_nostd_check`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_nostd_check_node(now_us: u64) -> u64 {
    use lars_embedded::{Ipv4Setup, Node, NodeConfig, NodeStorage};
    use smoltcp::wire::{EthernetAddress, Ipv4Cidr};
    let mut storage: NodeStorage<'_> = NodeStorage::new();
    let config = NodeConfig {
        hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]).into(),
        ipv4: Ipv4Setup::Static {
            address: Ipv4Cidr::new(Ipv4Addr::new(10, 0, 2, 15), 24),
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
        },
        dns: core::net::SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7778),
        reporter: core::net::SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7779),
        api_port: 8888,
        agent: AgentConfig::default(),
    };
    let now = Instant::from_micros(now_us);
    let mut node: Node<'_, NullDevice, 16, 16> = Node::new(NullDevice, config, &mut storage, now, now_us);
    node.poll(now).as_micros()
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
