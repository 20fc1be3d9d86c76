//! The lars gateway agent as firmware for QEMU's mps2-an386 board: a Cortex-M4F with a LAN9118
//! Ethernet controller, 16 routes × 16 hosts, logging with defmt over semihosting.
//!
//! The addresses are fixed at build time and default to QEMU's user-mode network (the guest is
//! 10.0.2.15/24; 10.0.2.2 is the host's loopback): `LARS_FW_IP`, `LARS_FW_GATEWAY`,
//! `LARS_FW_DNS` and `LARS_FW_REPORTER` override them. With the `dhcp` feature the address
//! and gateway come from a DHCP server instead, and the leased address names the gateway in its
//! statistics. The loop polls the node, then sleeps in
//! `wfi` until the next 1 kHz SysTick: a busy loop would starve QEMU's own network thread.
#![no_std]
#![no_main]

mod lan9118;

use core::mem::MaybeUninit;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{ExceptionFrame, entry, exception};
use defmt_semihosting as _;
use lars_embedded::core::agent::AgentConfig;
use lars_embedded::core::time::{Duration, Instant};
use lars_embedded::{Ipv4Setup, Node, NodeConfig, NodeStorage};

use lan9118::Lan9118;

/// The core clock of mps2-an386, which SysTick counts.
const CORE_HZ: u32 = 25_000_000;
/// Routes and hosts per route the gateway holds.
const ROUTES: usize = 16;
const HOSTS: usize = 16;
/// A route of 16 hosts is about 200 bytes on the wire: 1 KiB frames leave room.
const TCP_BUFFER: usize = 1024;
/// Bytes of an API datagram (a 16-host route answer is well under this).
const API_BUFFER: usize = 1024;
/// The UDP port devices send agent API requests to.
const API_PORT: u16 = 8888;

/// Milliseconds since boot, counted by SysTick.
static MILLIS: AtomicU32 = AtomicU32::new(0);

defmt::timestamp!("{=u32:ms}", MILLIS.load(Ordering::Relaxed));

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// Widens the 32-bit millisecond counter (which wraps after 49 days) to the agent's clock.
struct Clock {
    last: u32,
    elapsed_ms: u64,
}

impl Clock {
    fn now(&mut self) -> Instant {
        let millis = MILLIS.load(Ordering::Relaxed);
        self.elapsed_ms += u64::from(millis.wrapping_sub(self.last));
        self.last = millis;
        Instant::from_micros(self.elapsed_ms * 1000)
    }
}

/// A build-time setting, or its default. A malformed value panics at boot, naming the variable
/// (so QEMU exits with an error at once).
macro_rules! setting {
    ($name:literal, $default:literal) => {
        match option_env!($name).unwrap_or($default).parse() {
            Ok(value) => value,
            Err(_) => panic!(concat!("malformed ", $name)),
        }
    };
}

// Unsafe: the controller at its address (the boot statics are the `entry` macro's).
#[allow(unsafe_code)]
#[entry]
fn main() -> ! {
    // Both statics are zero-filled at boot (.bss) and built here: as initialised data their
    // images would also take flash.
    static mut STORAGE: MaybeUninit<NodeStorage<'static, TCP_BUFFER, API_BUFFER>> = MaybeUninit::uninit();
    static mut NODE: MaybeUninit<Node<'static, Lan9118, ROUTES, HOSTS>> = MaybeUninit::uninit();

    let mut core = cortex_m::Peripherals::take().expect("peripherals are taken once, here");
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(CORE_HZ / 1000 - 1);
    core.SYST.clear_current();
    core.SYST.enable_counter();
    core.SYST.enable_interrupt();

    // SAFETY: mps2-an386 maps its only LAN9118 there, and nothing else in this program uses it.
    let device = match unsafe { Lan9118::new(lan9118::MPS2_BASE) } {
        Ok(device) => device,
        Err(error) => panic_with("no Ethernet controller", error),
    };
    let mac = device.mac();
    defmt::info!("lars-firmware: LAN9118 id {=u32:#x}, MAC {}", device.id(), mac);

    #[cfg(not(feature = "dhcp"))]
    let (ipv4, caller) = {
        let ip: Ipv4Addr = setting!("LARS_FW_IP", "10.0.2.15");
        let gateway = setting!("LARS_FW_GATEWAY", "10.0.2.2");
        (Ipv4Setup::Static { address: smoltcp::wire::Ipv4Cidr::new(ip, 24), gateway: Some(gateway) }, ip)
    };
    // Unnamed until the lease arrives; the node then names the agent by its address.
    #[cfg(feature = "dhcp")]
    let (ipv4, caller) = (Ipv4Setup::Dhcp, Ipv4Addr::UNSPECIFIED);
    let config = NodeConfig {
        hardware_addr: mac.into(),
        ipv4,
        dns: setting!("LARS_FW_DNS", "10.0.2.2:7778"),
        reporter: setting!("LARS_FW_REPORTER", "10.0.2.2:7779"),
        api_port: API_PORT,
        agent: AgentConfig {
            // A gateway's statistics are few: send them often so the console stays current.
            report_interval: Duration::from_secs(2),
            caller: u32::from(caller),
            ..AgentConfig::default()
        },
    };
    let (dns, reporter): (SocketAddrV4, SocketAddrV4) = (config.dns, config.reporter);
    let seed = u64::from(device.free_run())
        ^ u64::from_le_bytes([mac.0[0], mac.0[1], mac.0[2], mac.0[3], mac.0[4], mac.0[5], 0, 0]);
    let mut clock = Clock { last: 0, elapsed_ms: 0 };
    let storage = STORAGE.write(NodeStorage::new());
    let node = NODE.write(Node::new(device, config, storage, clock.now(), seed));
    defmt::info!(
        "lars-firmware: {} address, API on UDP {=u16}, lars-dns {}, lars-reporter {}",
        if cfg!(feature = "dhcp") { "DHCP" } else { "static" },
        API_PORT,
        dns,
        reporter
    );

    loop {
        let wait = node.poll(clock.now());
        if wait > Duration::ZERO {
            // SysTick wakes the core within a millisecond; so does nothing else here.
            cortex_m::asm::wfi();
        }
    }
}

fn panic_with(what: &str, error: impl defmt::Format) -> ! {
    defmt::error!("lars-firmware: {}: {}", what, error);
    semihosting::process::exit(2)
}

// Unsafe: cortex-m-rt requires the HardFault handler to be an `unsafe fn`.
#[allow(unsafe_code)]
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    semihosting::eprintln!("lars-firmware: hard fault at pc {:#x}", frame.pc());
    semihosting::process::exit(3)
}

/// Prints the panic as text on QEMU's stderr (the defmt stream may be what broke) and exits
/// QEMU with a failure status.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    semihosting::eprintln!("lars-firmware panicked: {}", info);
    semihosting::process::exit(101)
}
