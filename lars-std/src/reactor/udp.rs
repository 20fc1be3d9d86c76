//! A UDP endpoint for framed datagrams: one frame per datagram, whose length must be exactly
//! `8 + len`; anything else is dropped and counted. A handler's reply goes back to the source of
//! the datagram it answers (the original replied to whoever sent last, D-R-16's neighbour).
//!
//! With `reuse_port`, several endpoints (one per thread) can bind the same port and the kernel
//! spreads datagrams across them.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;

use lars_core::wire::{Frame, frame};

use super::{EventLoop, Interest, Registered};

/// Counters of an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams dropped for bad framing.
    pub malformed: u64,
    /// Replies sent.
    pub replies: u64,
    /// Replies the socket refused (buffer full, unreachable...).
    pub send_errors: u64,
}

/// A registered, non-blocking UDP socket that serves framed datagrams.
pub struct UdpEndpoint {
    socket: Registered<UdpSocket>,
    recv_buf: Box<[u8]>,
    reply_buf: Box<[u8]>,
    max_body: u32,
    stats: UdpStats,
}

impl UdpEndpoint {
    /// Binds `addr` (port 0 picks one) and registers it with `event_loop` under `key`.
    pub fn bind<T>(
        event_loop: &EventLoop<T>,
        addr: SocketAddr,
        key: usize,
        reuse_port: bool,
    ) -> io::Result<Self> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, bind, socket_with, sockopt};
        let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
        let fd: OwnedFd =
            socket_with(family, SocketType::DGRAM, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC, None)?;
        if reuse_port {
            sockopt::set_socket_reuseport(&fd, true)?;
        }
        bind(&fd, &addr)?;
        let socket = Registered::new(event_loop, UdpSocket::from(fd), key, Interest::READABLE)?;
        let big = || vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize].into_boxed_slice();
        Ok(UdpEndpoint {
            socket,
            recv_buf: big(),
            reply_buf: big(),
            max_body: frame::MAX_BODY,
            stats: UdpStats::default(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get().local_addr()
    }

    /// The counters.
    pub fn stats(&self) -> UdpStats {
        self.stats
    }

    /// Receives up to `budget` datagrams (or until none are waiting) and calls `handle` with
    /// each well-framed one, its raw bytes, its source and a reply buffer. A non-zero length
    /// returned by `handle` is sent back to the source. Returns how many datagrams were read.
    pub fn serve(
        &mut self,
        budget: usize,
        mut handle: impl FnMut(Frame<'_>, &[u8], SocketAddr, &mut [u8]) -> usize,
    ) -> io::Result<usize> {
        let mut served = 0;
        while served < budget {
            let (len, from) = match self.socket.get().recv_from(&mut self.recv_buf) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors from earlier sends surface here; they concern that peer only.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            };
            served += 1;
            self.stats.received += 1;
            let datagram = &self.recv_buf[..len];
            let Ok(frame) = Frame::parse_datagram(datagram, self.max_body) else {
                self.stats.malformed += 1;
                continue;
            };
            let reply_len = handle(frame, datagram, from, &mut self.reply_buf);
            if reply_len > 0 {
                match self.socket.get().send_to(&self.reply_buf[..reply_len.min(self.reply_buf.len())], from)
                {
                    Ok(_) => self.stats.replies += 1,
                    Err(_) => self.stats.send_errors += 1,
                }
            }
        }
        Ok(served)
    }
}
