//! A framed TCP client that keeps itself connected: asynchronous connect with a timeout,
//! reconnect with exponential backoff and jitter, and failover across a list of addresses (so
//! an agent can use several lars-dns or lars-reporter replicas).
//!
//! The client lives in its owner's [`EventLoop`]: the owner forwards the readiness of the
//! client's key to [`TcpClient::on_io`] and calls [`TcpClient::on_timer`] when the client's
//! timer token fires. Output is bounded by the connection's pooled buffer; sending while
//! disconnected, or faster than the peer reads, is an error to the caller rather than a silent
//! loss. A reconnect starts from empty buffers (the original resent stale bytes, D-R-14).

use std::io;
use std::net::{SocketAddr, TcpStream};

use lars_core::backoff::Backoff;
use lars_core::lb::Rng;
use lars_core::time::{Duration, Instant};
use lars_core::wire::{Encode, Frame, MsgId, frame};

use super::conn::Sender;
use super::{Control, EventLoop, FramedConn, Interest, Registered, SendError};

/// How a client connects.
#[derive(Debug, Clone)]
pub struct TcpClientConfig {
    /// Servers to try, in order; a failure moves on to the next.
    pub addrs: Vec<SocketAddr>,
    /// Retry delays; the longest is also how long a link must stay up for the backoff to start
    /// over.
    pub backoff: Backoff,
    /// How long a connect may take.
    pub connect_timeout: Duration,
    /// Largest frame body accepted from the server.
    pub max_body: u32,
    /// Seed of the jitter.
    pub seed: u64,
}

impl TcpClientConfig {
    /// Defaults for `addrs`: `Backoff::RECONNECT` (100 ms to 10 s), connect timeout 3 s.
    pub fn new(addrs: Vec<SocketAddr>) -> Self {
        TcpClientConfig {
            addrs,
            backoff: Backoff::RECONNECT,
            connect_timeout: Duration::from_secs(3),
            max_body: frame::MAX_BODY,
            seed: 1,
        }
    }
}

/// A change of the client's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// Connected to this server.
    Up(SocketAddr),
    /// The link went down (or a connect failed); a retry is scheduled.
    Down,
}

enum State {
    /// Waiting to retry at `at`.
    Waiting {
        at: Instant,
    },
    Connecting {
        stream: Registered<TcpStream>,
        addr: SocketAddr,
        deadline: Instant,
    },
    /// `retry_read` is set while the pool has no buffer for input: reading resumes then.
    Connected {
        conn: FramedConn,
        addr: SocketAddr,
        since: Instant,
        retry_read: Option<Instant>,
    },
    /// A send broke the link (the socket is closed): the timer, set for now, reports it down.
    Broken {
        since: Instant,
    },
}

/// How long a connection starved of pool buffers waits before reading is retried.
const STARVED_RETRY: Duration = Duration::from_millis(5);

/// A self-reconnecting framed TCP client.
pub struct TcpClient {
    config: TcpClientConfig,
    key: usize,
    timer_token: u64,
    state: State,
    backoff: Backoff,
    next_addr: usize,
    rng: Rng,
    connects: u64,
}

impl TcpClient {
    /// A client registered under `key`, using `timer_token` for its timer. It connects on the
    /// first [`TcpClient::on_timer`] (set for now).
    pub fn new<T>(
        event_loop: &mut EventLoop<T>,
        config: TcpClientConfig,
        key: usize,
        timer_token: u64,
    ) -> Self {
        let now = event_loop.now();
        event_loop.set_timer(now, timer_token);
        let rng = Rng::new(config.seed);
        let backoff = config.backoff;
        TcpClient {
            config,
            key,
            timer_token,
            state: State::Waiting { at: now },
            backoff,
            next_addr: 0,
            rng,
            connects: 0,
        }
    }

    /// The server connected to, if any.
    pub fn connected_to(&self) -> Option<SocketAddr> {
        match &self.state {
            State::Connected { addr, .. } => Some(*addr),
            _ => None,
        }
    }

    /// Successful connects so far.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Sends a frame. Fails with [`SendError::Broken`] while disconnected and with
    /// [`SendError::Full`] when the output queue is full. A send that breaks the link (a write
    /// error, or part of a frame written with no buffer for the rest) closes it at once, and
    /// the client's timer, set for now, reports [`LinkEvent::Down`] and schedules a reconnect:
    /// a healthy socket would raise no event to notice it by.
    pub fn send<T>(
        &mut self,
        event_loop: &mut EventLoop<T>,
        msgid: MsgId,
        body: &impl Encode,
    ) -> Result<(), SendError> {
        self.send_with(event_loop, |sender| sender.send(msgid, body))
    }

    /// Sends a frame encoded already, as [`TcpClient::send`] does (see [`Sender::send_frame`]:
    /// `bytes` must be exactly one whole frame).
    pub fn send_frame<T>(&mut self, event_loop: &mut EventLoop<T>, bytes: &[u8]) -> Result<(), SendError> {
        self.send_with(event_loop, |sender| sender.send_frame(bytes))
    }

    fn send_with<T>(
        &mut self,
        event_loop: &mut EventLoop<T>,
        send: impl FnOnce(&mut Sender<'_>) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        let State::Connected { conn, since, .. } = &mut self.state else { return Err(SendError::Broken) };
        let sent = send(&mut conn.sender());
        match conn.after_send() {
            Ok(()) => sent,
            Err(_) => {
                self.state = State::Broken { since: *since };
                event_loop.set_timer(event_loop.now(), self.timer_token);
                Err(SendError::Broken)
            }
        }
    }

    /// Bytes queued for the server.
    pub fn queued_output(&self) -> usize {
        match &self.state {
            State::Connected { conn, .. } => conn.queued_output(),
            _ => 0,
        }
    }

    /// Handles readiness of the client's key; `handle` gets each frame from the server.
    pub fn on_io<T>(
        &mut self,
        event_loop: &mut EventLoop<T>,
        readable: bool,
        writable: bool,
        mut handle: impl FnMut(Frame<'_>, &mut Sender<'_>) -> Control,
    ) -> Option<LinkEvent> {
        match &mut self.state {
            State::Waiting { .. } | State::Broken { .. } => None,
            State::Connecting { stream, addr, .. } => {
                if !writable && !readable {
                    return None;
                }
                let addr = *addr;
                match rustix::net::sockopt::socket_error(stream.get()) {
                    Ok(Ok(())) => {
                        let State::Connecting { stream, .. } =
                            std::mem::replace(&mut self.state, State::Waiting { at: Instant::ZERO })
                        else {
                            unreachable!("matched Connecting above")
                        };
                        Some(self.established(event_loop, stream, addr))
                    }
                    _ => Some(self.fail(event_loop)),
                }
            }
            State::Connected { .. } => self.drive(event_loop, writable, readable, &mut handle),
        }
    }

    /// Runs the connection and, if the pool left it without an input buffer, schedules a retry.
    fn drive<T>(
        &mut self,
        event_loop: &mut EventLoop<T>,
        writable: bool,
        readable: bool,
        handle: &mut impl FnMut(Frame<'_>, &mut Sender<'_>) -> Control,
    ) -> Option<LinkEvent> {
        let State::Connected { conn, retry_read, .. } = &mut self.state else { return None };
        if conn.on_ready(writable, readable, handle).is_err() {
            return Some(self.fail(event_loop));
        }
        if conn.is_starved() && retry_read.is_none() {
            let at = event_loop.now() + STARVED_RETRY;
            *retry_read = Some(at);
            event_loop.set_timer(at, self.timer_token);
        }
        None
    }

    /// Handles the client's timer token: connects when a retry is due, gives up a connect that
    /// takes too long, or resumes reading once the pool may have buffers again (`handle` gets
    /// the frames, as in [`TcpClient::on_io`]).
    pub fn on_timer<T>(
        &mut self,
        event_loop: &mut EventLoop<T>,
        mut handle: impl FnMut(Frame<'_>, &mut Sender<'_>) -> Control,
    ) -> Option<LinkEvent> {
        let now = event_loop.now();
        match &mut self.state {
            State::Waiting { at } if now >= *at => self.connect(event_loop),
            State::Connecting { deadline, .. } if now >= *deadline => Some(self.fail(event_loop)),
            State::Broken { .. } => Some(self.fail(event_loop)),
            State::Connected { retry_read: Some(at), .. } if now >= *at => {
                if let State::Connected { retry_read, .. } = &mut self.state {
                    *retry_read = None;
                }
                self.drive(event_loop, false, false, &mut handle)
            }
            _ => None,
        }
    }

    /// Drops the link (for example after a bad frame) and schedules a reconnect.
    pub fn reset<T>(&mut self, event_loop: &mut EventLoop<T>) -> LinkEvent {
        self.fail(event_loop)
    }

    fn connect<T>(&mut self, event_loop: &mut EventLoop<T>) -> Option<LinkEvent> {
        let Some(&addr) = self.config.addrs.get(self.next_addr % self.config.addrs.len().max(1)) else {
            return None; // no server configured: stay waiting
        };
        match self.start_connect(event_loop, addr) {
            Ok(Some(stream)) => Some(self.established(event_loop, stream, addr)),
            Ok(None) => None,
            Err(_) => Some(self.fail(event_loop)),
        }
    }

    /// Starts a non-blocking connect: `Some` if it completed at once, `None` if in progress.
    fn start_connect<T>(
        &mut self,
        event_loop: &mut EventLoop<T>,
        addr: SocketAddr,
    ) -> io::Result<Option<Registered<TcpStream>>> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, socket_with};
        let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
        let fd = socket_with(family, SocketType::STREAM, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC, None)?;
        let stream = Registered::new(event_loop, TcpStream::from(fd), self.key, Interest::WRITABLE)?;
        match rustix::net::connect(stream.get(), &addr) {
            Ok(()) => Ok(Some(stream)),
            Err(rustix::io::Errno::INPROGRESS) => {
                let deadline = event_loop.now() + self.config.connect_timeout;
                event_loop.set_timer(deadline, self.timer_token);
                self.state = State::Connecting { stream, addr, deadline };
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn established<T>(
        &mut self,
        event_loop: &mut EventLoop<T>,
        stream: Registered<TcpStream>,
        addr: SocketAddr,
    ) -> LinkEvent {
        let _ = stream.get().set_nodelay(true);
        if stream.set_interest(Interest::READABLE).is_err() {
            return self.fail(event_loop);
        }
        let since = event_loop.now();
        self.state = State::Connected {
            conn: FramedConn::new(stream, self.config.max_body),
            addr,
            since,
            retry_read: None,
        };
        self.connects += 1;
        LinkEvent::Up(addr)
    }

    /// Closes whatever is open and schedules the next attempt, on the next address, after an
    /// exponential backoff with jitter (between half and all of the nominal delay). The backoff
    /// starts over only after a link that stayed up for the longest delay: a server that
    /// accepts and hangs up at once (full, or failing) is retried ever more slowly too.
    fn fail<T>(&mut self, event_loop: &mut EventLoop<T>) -> LinkEvent {
        let now = event_loop.now();
        if let State::Connected { since, .. } | State::Broken { since } = self.state
            && now.saturating_since(since) >= self.backoff.max()
        {
            self.backoff.reset();
        }
        let delay = self.backoff.fail(self.rng.next_u64());
        self.next_addr = self.next_addr.wrapping_add(1);
        let at = now + delay;
        self.state = State::Waiting { at };
        event_loop.set_timer(at, self.timer_token);
        LinkEvent::Down
    }
}
