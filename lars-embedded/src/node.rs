//! The gateway node: `lars_core::agent` on a smoltcp interface.
//!
//! The node owns a smoltcp interface over any [`Device`], a UDP socket serving the agent API to
//! devices behind the gateway (both codecs), and TCP sockets to lars-dns and lars-reporter that
//! reconnect with backoff. [`Node::poll`] is the whole driver loop body: it feeds the agent
//! what arrived, sends what the agent produced, and says how long the caller may sleep. Memory is
//! bounded by the caller's [`NodeStorage`] and the agent's const capacities; nothing allocates.

use core::net::SocketAddrV4;

use lars_core::agent::{Agent, AgentConfig, Link};
use lars_core::backoff::Backoff;
use lars_core::time::{Duration, Instant};
use lars_core::wire::frame::FrameDecoder;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Device;
#[cfg(feature = "dhcp")]
use smoltcp::socket::dhcpv4;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::fmt::{info, warning};

/// Default bytes of the API socket's buffers (each way), and of the largest API datagram.
pub const API_BUFFER: usize = 2048;
/// Default bytes of the TCP buffers that carry route frames in and statistics frames out, and
/// of the largest route frame.
pub const TCP_BUFFER: usize = 4096;
/// Datagrams the API socket can hold each way.
const API_PACKETS: usize = 8;
/// The API socket, the two links, and the DHCP client if there is one.
const SOCKETS: usize = if cfg!(feature = "dhcp") { 4 } else { 3 };

/// Everything the node's sockets need, provided by the caller: a `static` on a board (so
/// `'a` is `'static`), leaked on the host.
///
/// `TCP` bounds a route frame from lars-dns (a route of `H` hosts must fit: about 10 bytes a
/// host natively) and each statistics frame; `API` bounds an API datagram. A gateway with
/// small routes sizes both down (the QEMU firmware uses 1024 each).
pub struct NodeStorage<'a, const TCP: usize = TCP_BUFFER, const API: usize = API_BUFFER> {
    sockets: [SocketStorage<'a>; SOCKETS],
    api_rx_meta: [udp::PacketMetadata; API_PACKETS],
    api_rx: [u8; API],
    api_tx_meta: [udp::PacketMetadata; API_PACKETS],
    api_tx: [u8; API],
    dns_rx: [u8; TCP],
    dns_tx: [u8; 512],
    reporter_rx: [u8; 256],
    reporter_tx: [u8; TCP],
    /// Reassembles frames from lars-dns that arrive in pieces.
    frame: [u8; TCP],
    /// One API datagram in.
    datagram: [u8; API],
    /// Its reply out, or one frame for a link.
    reply: [u8; TCP],
}

impl<const TCP: usize, const API: usize> NodeStorage<'_, TCP, API> {
    /// Empty storage, usable in a `static`.
    pub const fn new() -> Self {
        NodeStorage {
            sockets: [SocketStorage::EMPTY; SOCKETS],
            api_rx_meta: [udp::PacketMetadata::EMPTY; API_PACKETS],
            api_rx: [0; API],
            api_tx_meta: [udp::PacketMetadata::EMPTY; API_PACKETS],
            api_tx: [0; API],
            dns_rx: [0; TCP],
            dns_tx: [0; 512],
            reporter_rx: [0; 256],
            reporter_tx: [0; TCP],
            frame: [0; TCP],
            datagram: [0; API],
            reply: [0; TCP],
        }
    }
}

impl<const TCP: usize, const API: usize> Default for NodeStorage<'_, TCP, API> {
    fn default() -> Self {
        NodeStorage::new()
    }
}

/// How a node is addressed and whom it talks to.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The interface's hardware address.
    pub hardware_addr: HardwareAddress,
    /// How the node gets its IPv4 address.
    pub ipv4: Ipv4Setup,
    /// lars-dns.
    pub dns: SocketAddrV4,
    /// lars-reporter.
    pub reporter: SocketAddrV4,
    /// The UDP port devices send API requests to (8888 by convention).
    pub api_port: u16,
    /// The agent's own configuration.
    pub agent: AgentConfig,
}

/// How the node gets its IPv4 address.
#[derive(Debug, Clone, Copy)]
pub enum Ipv4Setup {
    /// A fixed address and prefix, and the default gateway if lars-dns and lars-reporter are
    /// not on the link.
    Static {
        /// Address and prefix.
        address: Ipv4Cidr,
        /// Default gateway.
        gateway: Option<Ipv4Address>,
    },
    /// A lease from a DHCP server (feature `dhcp`). The links connect once the lease arrives;
    /// losing it closes them, and they reconnect with backoff when a new one comes.
    #[cfg(feature = "dhcp")]
    Dhcp,
}

/// A TCP link's reconnect state.
struct LinkState {
    handle: SocketHandle,
    remote: SocketAddrV4,
    up: bool,
    retry_at: Instant,
    backoff: Backoff,
    next_local_port: u16,
}

impl LinkState {
    /// The next attempt after a failure, with lars's reconnect backoff. The jitter comes from
    /// the local port, which differs between boots and gateways.
    fn failed(&mut self, now: Instant) {
        let jitter = u64::from(self.next_local_port).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.retry_at = now + self.backoff.fail(jitter);
    }
}

/// The gateway agent on smoltcp, for `R` routes of up to `H` hosts.
///
/// # Examples
///
/// A board's main loop: the node owns the device, and is polled with the time whenever a frame
/// arrives or the wait it asked for has passed.
///
/// ```no_run
/// use lars_embedded::core::agent::AgentConfig;
/// use lars_embedded::core::time::Instant;
/// use lars_embedded::{Ipv4Setup, Node, NodeConfig, NodeStorage};
/// use smoltcp::phy::Device;
/// use smoltcp::wire::{EthernetAddress, HardwareAddress, Ipv4Address, Ipv4Cidr};
///
/// fn run<D: Device>(device: D, storage: &'static mut NodeStorage<'static>, now: impl Fn() -> Instant) -> ! {
///     let config = NodeConfig {
///         hardware_addr: HardwareAddress::Ethernet(EthernetAddress([0x02, 0, 0, 0, 0, 1])),
///         ipv4: Ipv4Setup::Static { address: Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 2), 24), gateway: None },
///         dns: "10.0.0.1:7778".parse().unwrap(),
///         reporter: "10.0.0.1:7779".parse().unwrap(),
///         api_port: 8888,
///         agent: AgentConfig::default(),
///     };
///     let mut node: Node<'_, D, 16, 16> = Node::new(device, config, storage, now(), 0x5eed);
///     loop {
///         let _wait = node.poll(now());
///         // sleep until a frame arrives or `_wait` has passed (WFI on a board)
///     }
/// }
/// ```
pub struct Node<'a, D: Device, const R: usize, const H: usize> {
    device: D,
    iface: Interface,
    sockets: SocketSet<'a>,
    api: SocketHandle,
    dns: LinkState,
    reporter: LinkState,
    agent: Agent<R, H>,
    decoder: FrameDecoder<&'a mut [u8]>,
    datagram: &'a mut [u8],
    reply: &'a mut [u8],
    #[cfg(feature = "dhcp")]
    dhcp: Option<SocketHandle>,
}

/// Sets (or with `None` removes) the interface's IPv4 address and default gateway.
fn set_address(iface: &mut Interface, setup: Option<(Ipv4Cidr, Option<Ipv4Address>)>) {
    iface.update_ip_addrs(|addrs| {
        addrs.clear();
        if let Some((address, _)) = setup {
            let _ = addrs.push(IpCidr::Ipv4(address));
        }
    });
    match setup.and_then(|(_, gateway)| gateway) {
        Some(gateway) => {
            let _ = iface.routes_mut().add_default_ipv4_route(gateway);
        }
        None => {
            iface.routes_mut().remove_default_ipv4_route();
        }
    }
}

fn to_smoltcp(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(now.as_micros() as i64)
}

impl<'a, D: Device, const R: usize, const H: usize> Node<'a, D, R, H> {
    /// A node on `device`, with its sockets in `storage`. `seed` varies the local ports and the
    /// agent's randomness between boots.
    pub fn new<const TCP: usize, const API: usize>(
        mut device: D,
        config: NodeConfig,
        storage: &'a mut NodeStorage<'a, TCP, API>,
        now: Instant,
        seed: u64,
    ) -> Self {
        let mut iface_config = Config::new(config.hardware_addr);
        iface_config.random_seed = seed;
        let mut iface = Interface::new(iface_config, &mut device, to_smoltcp(now));
        match config.ipv4 {
            Ipv4Setup::Static { address, gateway } => set_address(&mut iface, Some((address, gateway))),
            #[cfg(feature = "dhcp")]
            Ipv4Setup::Dhcp => {}
        }
        let NodeStorage {
            sockets,
            api_rx_meta,
            api_rx,
            api_tx_meta,
            api_tx,
            dns_rx,
            dns_tx,
            reporter_rx,
            reporter_tx,
            frame,
            datagram,
            reply,
        } = storage;
        let mut set = SocketSet::new(&mut sockets[..]);
        let mut api = udp::Socket::new(
            udp::PacketBuffer::new(&mut api_rx_meta[..], &mut api_rx[..]),
            udp::PacketBuffer::new(&mut api_tx_meta[..], &mut api_tx[..]),
        );
        if api.bind(config.api_port).is_err() {
            warning!("lars node: cannot bind the API port");
        }
        let api = set.add(api);
        let dns = set.add(tcp::Socket::new(
            tcp::SocketBuffer::new(&mut dns_rx[..]),
            tcp::SocketBuffer::new(&mut dns_tx[..]),
        ));
        let reporter = set.add(tcp::Socket::new(
            tcp::SocketBuffer::new(&mut reporter_rx[..]),
            tcp::SocketBuffer::new(&mut reporter_tx[..]),
        ));
        // Ephemeral ports differ between boots, so that a reconnect never meets the old
        // connection's TIME_WAIT on the server.
        let base = 49152 + (seed % 8192) as u16;
        let link = |handle, remote, offset| LinkState {
            handle,
            remote,
            up: false,
            retry_at: now,
            backoff: Backoff::RECONNECT,
            next_local_port: base + offset,
        };
        #[cfg(feature = "dhcp")]
        let dhcp = matches!(config.ipv4, Ipv4Setup::Dhcp).then(|| set.add(dhcpv4::Socket::new()));
        let mut agent_config = config.agent;
        agent_config.seed ^= seed;
        Node {
            device,
            iface,
            sockets: set,
            api,
            dns: link(dns, config.dns, 0),
            reporter: link(reporter, config.reporter, 4096),
            agent: Agent::new(agent_config, now),
            decoder: FrameDecoder::new(&mut frame[..]),
            datagram: &mut datagram[..],
            reply: &mut reply[..],
            #[cfg(feature = "dhcp")]
            dhcp,
        }
    }

    /// The agent, for its counters and routes.
    pub fn agent(&self) -> &Agent<R, H> {
        &self.agent
    }

    /// The device (for a driver that needs it between polls, such as to wait on its fd).
    pub fn device(&mut self) -> &mut D {
        &mut self.device
    }

    /// Runs everything that is due at `now` and returns how long the caller may sleep (until
    /// the next packet at the latest).
    pub fn poll(&mut self, now: Instant) -> Duration {
        let stamp = to_smoltcp(now);
        self.iface.poll(stamp, &mut self.device, &mut self.sockets);
        #[cfg(feature = "dhcp")]
        self.lease(now);
        self.links(now);
        self.receive_dns(now);
        self.receive_reporter(now);
        self.serve_api(now);
        if self.agent.poll_timeout().is_some_and(|at| at <= now) {
            self.agent.handle_timeout(now);
        }
        self.transmit(now);
        self.iface.poll(stamp, &mut self.device, &mut self.sockets);
        while let Some(event) = self.agent.poll_event() {
            info!("lars node: {:?}", event);
        }
        let mut wait = Duration::from_secs(1);
        if let Some(delay) = self.iface.poll_delay(stamp, &self.sockets) {
            wait = wait.min(Duration::from_micros(delay.total_micros()));
        }
        if let Some(at) = self.agent.poll_timeout() {
            wait = wait.min(at.saturating_since(now));
        }
        // Links wait for an address (from DHCP) before their retry time means anything.
        if self.iface.ipv4_addr().is_some() {
            for link in [&self.dns, &self.reporter] {
                if !link.up {
                    wait = wait.min(link.retry_at.saturating_since(now));
                }
            }
        }
        wait
    }

    /// Applies what the DHCP client learnt: a new lease sets the address and gateway, a lost
    /// one removes them and closes the links (their address is gone).
    #[cfg(feature = "dhcp")]
    fn lease(&mut self, now: Instant) {
        let Some(handle) = self.dhcp else { return };
        match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            None => {}
            Some(dhcpv4::Event::Configured(lease)) => {
                info!("lars node: DHCP lease {}", lease.address);
                set_address(&mut self.iface, Some((lease.address, lease.router)));
                // The original's agents named themselves by their IPv4 address.
                self.agent.set_caller(u32::from(lease.address.address()));
                // Connect now: attempts without an address were not real failures.
                for link in [&mut self.dns, &mut self.reporter] {
                    link.backoff.reset();
                    link.retry_at = now;
                }
            }
            Some(dhcpv4::Event::Deconfigured) => {
                // The client also says so once at start, before it ever had a lease.
                if self.iface.ipv4_addr().is_some() {
                    warning!("lars node: DHCP lease lost");
                }
                set_address(&mut self.iface, None);
                for link in [&self.dns, &self.reporter] {
                    self.sockets.get_mut::<tcp::Socket>(link.handle).abort();
                }
            }
        }
    }

    /// Notices links coming up or going down, and reconnects with backoff.
    fn links(&mut self, now: Instant) {
        // Without an address (DHCP not yet leased) a connect cannot even start.
        let addressed = self.iface.ipv4_addr().is_some();
        for which in [Link::Dns, Link::Reporter] {
            let link = match which {
                Link::Dns => &mut self.dns,
                Link::Reporter => &mut self.reporter,
            };
            let socket = self.sockets.get_mut::<tcp::Socket>(link.handle);
            let established = socket.state() == tcp::State::Established;
            if link.up && !established {
                link.up = false;
                socket.abort();
                link.failed(now);
                warning!("lars node: link to {:?} lost", which);
                if which == Link::Dns {
                    self.decoder.reset();
                }
                self.agent_link(which, now, false);
                continue;
            }
            if !link.up && established {
                link.up = true;
                link.backoff.reset();
                info!("lars node: connected to {:?}", which);
                self.agent_link(which, now, true);
                continue;
            }
            if !link.up && !socket.is_open() && now >= link.retry_at && addressed {
                let local = link.next_local_port;
                link.next_local_port = if local >= 65000 { 49152 } else { local + 1 };
                // Either way the next retry time is set: a connect that has not completed by then
                // is aborted below and tried again, each time with a longer wait.
                let _ = socket.connect(self.iface.context(), link.remote, local);
                link.failed(now);
            } else if !link.up && socket.is_open() && now >= link.retry_at {
                socket.abort();
            }
        }
    }

    fn agent_link(&mut self, which: Link, now: Instant, up: bool) {
        match which {
            Link::Dns => self.agent.handle_dns_link(now, up),
            Link::Reporter => self.agent.handle_reporter_link(now, up),
        }
    }

    /// Feeds what lars-dns sent to the agent, frame by frame.
    fn receive_dns(&mut self, now: Instant) {
        let socket = self.sockets.get_mut::<tcp::Socket>(self.dns.handle);
        let (agent, decoder) = (&mut self.agent, &mut self.decoder);
        let mut broken = false;
        while socket.can_recv() && !broken {
            let taken = socket.recv(|chunk| {
                let mut used = 0;
                while used < chunk.len() {
                    match decoder.decode(&chunk[used..]) {
                        Ok(step) => {
                            used += step.consumed;
                            if let Some(frame) = step.frame
                                && agent.handle_dns_frame(now, frame).is_err()
                            {
                                broken = true;
                                break;
                            }
                        }
                        Err(_) => {
                            broken = true;
                            break;
                        }
                    }
                }
                // A broken stream is dropped whole; the link is reset below.
                (if broken { chunk.len() } else { used }, ())
            });
            if taken.is_err() {
                break;
            }
        }
        if broken {
            warning!("lars node: bad frame from lars-dns; reconnecting");
            socket.abort();
        }
    }

    /// Feeds what lars-reporter sent (its answer to the agent's Hello, which tells the agent
    /// that it speaks the native protocol) to the agent. Such frames are tiny: one is copied
    /// whole out of the socket (across the ring buffer's end if need be) once all of it is
    /// there, so no assembly buffer is kept. Anything larger is not a lars-reporter's.
    fn receive_reporter(&mut self, now: Instant) {
        use lars_core::wire::frame::{self, Frame, HEADER_LEN};
        const LARGEST: usize = 64;
        let socket = self.sockets.get_mut::<tcp::Socket>(self.reporter.handle);
        let mut bytes = [0u8; LARGEST];
        let broken = loop {
            let Ok(have) = socket.peek_slice(&mut bytes) else { break false };
            if have < HEADER_LEN {
                break false;
            }
            let mut header = [0u8; HEADER_LEN];
            header.copy_from_slice(&bytes[..HEADER_LEN]);
            let Ok(header) = frame::Header::parse(&header, (LARGEST - HEADER_LEN) as u32) else { break true };
            let total = HEADER_LEN + header.len as usize;
            if have < total {
                break false; // the rest is on its way
            }
            if socket.recv_slice(&mut bytes[..total]).is_err() {
                break true;
            }
            match Frame::parse_datagram(&bytes[..total], (LARGEST - HEADER_LEN) as u32) {
                Ok(frame) if self.agent.handle_reporter_frame(now, frame).is_ok() => {}
                _ => break true,
            }
        };
        if broken {
            warning!("lars node: bad frame from lars-reporter; reconnecting");
            socket.abort();
        }
    }

    /// Answers every waiting API datagram.
    fn serve_api(&mut self, now: Instant) {
        let socket = self.sockets.get_mut::<udp::Socket>(self.api);
        while let Ok((len, meta)) = socket.recv_slice(self.datagram) {
            let answer = self.agent.handle_api_datagram(now, &self.datagram[..len], self.reply);
            if let Ok(reply_len) = answer
                && reply_len > 0
                && socket.send_slice(&self.reply[..reply_len], meta.endpoint).is_err()
            {
                warning!("lars node: API reply dropped (send buffer full)");
            }
        }
    }

    /// Sends what the agent produced. It is offered only as much buffer as both links can take
    /// now: statistics frames are sized to it (what does not fit waits for the next flush),
    /// and a pull that does not fit stays due. So no frame is cut or dropped for lack of room.
    fn transmit(&mut self, now: Instant) {
        let room = |link: &LinkState, sockets: &SocketSet<'_>| {
            let socket = sockets.get::<tcp::Socket>(link.handle);
            socket.send_capacity() - socket.send_queue()
        };
        loop {
            let limit = room(&self.dns, &self.sockets).min(room(&self.reporter, &self.sockets));
            let limit = limit.min(self.reply.len());
            let Some(transmit) = self.agent.poll_transmit(now, &mut self.reply[..limit]) else { break };
            let link = match transmit.link {
                Link::Dns => &self.dns,
                Link::Reporter => &self.reporter,
            };
            let socket = self.sockets.get_mut::<tcp::Socket>(link.handle);
            if !link.up || socket.send_slice(&self.reply[..transmit.len]).is_err() {
                warning!("lars node: frame for {:?} dropped (link down)", transmit.link);
            }
        }
    }
}
