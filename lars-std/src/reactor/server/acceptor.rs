//! A server's acceptor thread: accepts connections and hands them to the workers round robin.
//!
//! `max_conns` and the allowlist are enforced here: the excess connection, and one from a
//! source the allowlist does not hold, is closed at once and counted, never queued. An accept error never stops the server (D-R-9); running out of file descriptors
//! pauses accepting for a moment instead of spinning (D-R-8).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lars_core::time::Duration;

use super::{ServerStats, WorkerMsg};
use crate::reactor::{EventLoop, Interest, Ready, Registered, Waker};

/// The acceptor's one timer.
const RESUME_ACCEPT: u64 = 1;
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// A non-blocking listener with a deep backlog (std's 128 drops bursts of connects).
pub(super) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, bind, listen, socket_with, sockopt};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd: OwnedFd =
        socket_with(family, SocketType::STREAM, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    bind(&fd, &addr)?;
    listen(&fd, 1024)?;
    Ok(TcpListener::from(fd))
}

pub(super) struct Acceptor<T: Send + 'static> {
    listener: Registered<TcpListener>,
    event_loop: EventLoop<()>,
    workers: Vec<Waker<WorkerMsg<T>>>,
    alive: Arc<[AtomicBool]>,
    next: usize,
    max_conns: u64,
    allow: Vec<lars_core::access::Cidr>,
    stats: Arc<ServerStats>,
}

impl<T: Send + 'static> Acceptor<T> {
    /// An acceptor for `listener` on its own `event_loop`, handing connections to `workers`.
    pub(super) fn new(
        listener: TcpListener,
        event_loop: EventLoop<()>,
        workers: Vec<Waker<WorkerMsg<T>>>,
        alive: Arc<[AtomicBool]>,
        max_conns: usize,
        allow: Vec<lars_core::access::Cidr>,
        stats: Arc<ServerStats>,
    ) -> io::Result<Self> {
        let listener = Registered::new(&event_loop, listener, 0, Interest::READABLE)?;
        let max_conns = max_conns as u64;
        Ok(Acceptor { listener, event_loop, workers, alive, next: 0, max_conns, allow, stats })
    }

    /// A handle that stops the acceptor.
    pub(super) fn stopper(&self) -> Waker<()> {
        self.event_loop.waker()
    }

    pub(super) fn run(mut self) {
        let mut ready = Vec::new();
        loop {
            ready.clear();
            if self.event_loop.poll(&mut ready, None).is_err() {
                return;
            }
            for item in ready.drain(..) {
                match item {
                    Ready::Task(()) => return,
                    Ready::Timer(RESUME_ACCEPT) => {
                        let _ = self.listener.set_interest(Interest::READABLE);
                    }
                    Ready::Timer(_) => {}
                    Ready::Io { .. } => self.accept_all(),
                }
            }
        }
    }

    /// Accepts until the listener would block (at most a batch, to stay responsive).
    fn accept_all(&mut self) {
        for _ in 0..256 {
            match self.listener.get().accept() {
                Ok((stream, peer)) => self.hand_over(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    // Out of file descriptors: pause rather than spin on a ready listener.
                    let out_of_fds = [rustix::io::Errno::MFILE, rustix::io::Errno::NFILE]
                        .iter()
                        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()));
                    if out_of_fds {
                        let _ = self.listener.set_interest(Interest::NONE);
                        let resume = self.event_loop.now() + ACCEPT_PAUSE;
                        self.event_loop.set_timer(resume, RESUME_ACCEPT);
                        return;
                    }
                    // Anything else (a peer that reset during the handshake...) concerns that
                    // connection alone.
                }
            }
        }
    }

    /// Whether `peer` may connect. One that may not is closed before any worker sees it
    /// (dropping the stream), counted, and logged: the first few, then every power of two, so
    /// that a scan cannot flood the log.
    fn admitted(&self, peer: SocketAddr) -> bool {
        if lars_core::access::admits(&self.allow, peer.ip()) {
            return true;
        }
        let denied = self.stats.denied.fetch_add(1, Ordering::Relaxed) + 1;
        if denied.is_power_of_two() {
            let local = self.listener.get().local_addr().map_or_else(|_| "?".into(), |a| a.to_string());
            log::warn!(
                "{local}: refused a connection from {peer}: not in the allowlist (--allow; {denied} refused so far)"
            );
        }
        false
    }

    fn hand_over(&mut self, stream: TcpStream, peer: SocketAddr) {
        if !self.admitted(peer) {
            return; // dropping the stream closes it at once
        }
        if self.stats.open.load(Ordering::Acquire) >= self.max_conns {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return; // dropping the stream closes it at once
        }
        // Round robin over the workers still running.
        let count = self.workers.len();
        let Some(worker) = (1..=count)
            .map(|step| (self.next + step) % count)
            .find(|&w| self.alive[w].load(Ordering::Acquire))
        else {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.next = worker;
        self.stats.open.fetch_add(1, Ordering::AcqRel);
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        if self.workers[worker].post(WorkerMsg::Conn(stream, peer)).is_err() {
            self.stats.open.fetch_sub(1, Ordering::AcqRel);
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // The worker may have ended between the check above and the post, after it emptied
        // its queue for the last time: then nobody else will, so take the connections back.
        // (The worker clears `alive` before that last drain, and both sides use SeqCst, so
        // the connection is taken back by exactly one of them.)
        if !self.alive[worker].load(Ordering::SeqCst) {
            let orphans = self.workers[worker].take_all();
            let conns = orphans.iter().filter(|task| matches!(task, WorkerMsg::Conn(..))).count() as u64;
            if conns > 0 {
                self.stats.open.fetch_sub(conns, Ordering::AcqRel);
                self.stats.closed.fetch_add(conns, Ordering::Relaxed);
            }
        }
    }
}
