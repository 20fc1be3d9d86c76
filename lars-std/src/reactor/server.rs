//! The framed TCP server: one acceptor thread and `threads` worker threads, each running an
//! [`EventLoop`] and its own instance of the application's [`Service`].
//!
//! New connections go to the workers round robin (the original sent them all to worker 0,
//! D-R-1). `max_conns` is enforced at accept time: the excess connection is closed at once and
//! counted, never queued. An accept error never stops the server (D-R-9); running out of file
//! descriptors pauses accepting for a moment instead of spinning (D-R-8). Frames, replies and
//! tasks are handled on the worker that owns the connection; other threads reach a worker with
//! [`ServerHandle::post`].

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use lars_core::time::{Duration, Instant};
use lars_core::wire::{Encode, Frame, MsgId, frame};

use super::conn::Sender;
use super::{CloseReason, Control, EventLoop, FramedConn, Interest, Ready, Registered, SendError, Waker};
use crate::time::Clock;

/// How a server listens and how much it holds.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free port (see [`ServerHandle::local_addr`]).
    pub addr: SocketAddr,
    /// Worker threads (the original's `threadNum`); at least one.
    pub threads: usize,
    /// Connections open at once (`maxConn`); more are closed at accept.
    pub max_conns: usize,
    /// The largest frame body accepted; larger frames close the connection.
    pub max_body: u32,
    /// Tasks a worker's queue holds before [`ServerHandle::post`] refuses more.
    pub task_capacity: usize,
    /// How long a connection closed by its service (after a reply, say) may take to drain
    /// its queued output before it is closed anyway.
    pub close_linger: Duration,
}

impl ServerConfig {
    /// A config listening on `addr` with the original's shipped limits (5 threads, 1024
    /// connections).
    pub fn new(addr: SocketAddr) -> Self {
        ServerConfig {
            addr,
            threads: 5,
            max_conns: 1024,
            max_body: frame::MAX_BODY,
            task_capacity: 65_536,
            close_linger: Duration::from_secs(5),
        }
    }
}

/// A connection's identity: the worker that owns it, its slot and the slot's generation, so an
/// id outlives its connection without ever naming a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    worker: u16,
    slot: u32,
    generation: u32,
}

impl ConnId {
    /// The worker thread that owns the connection.
    pub fn worker(&self) -> usize {
        usize::from(self.worker)
    }
}

/// What a server does with its connections. Each worker thread has its own instance.
pub trait Service: Send + 'static {
    /// What other threads post to a worker through [`ServerHandle::post`].
    type Task: Send + 'static;

    /// A connection opened.
    fn connected(&mut self, _conn: ConnId, _peer: SocketAddr, _conns: &mut Conns<'_>) {}

    /// A frame arrived on `conn`; `reply` sends on the same connection.
    fn frame(&mut self, conn: ConnId, frame: Frame<'_>, reply: &mut Sender<'_>) -> Control;

    /// A connection closed (the id is dead from now on).
    fn closed(&mut self, _conn: ConnId, _reason: CloseReason) {}

    /// A task posted to this worker.
    fn task(&mut self, _task: Self::Task, _conns: &mut Conns<'_>) {}

    /// A timer set with [`Conns::set_timer`] fired.
    fn timer(&mut self, _token: u64, _conns: &mut Conns<'_>) {}
}

/// Counters of a server, shared by its threads.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed at accept because of `max_conns` (or a full worker queue).
    pub refused: AtomicU64,
    /// Accept calls that failed.
    pub accept_errors: AtomicU64,
    /// Connections closed.
    pub closed: AtomicU64,
    /// Connections closed for a frame that does not decode.
    pub bad_frames: AtomicU64,
    /// Connections closed because their output queue was full.
    pub output_full: AtomicU64,
    /// Frames in and out, per worker: each worker counts on a cache line of its own, so that
    /// workers on different cores do not contend for it on every frame.
    frames: Box<[FrameCounters]>,
    /// Tasks refused because a worker's queue was full.
    pub tasks_refused: AtomicU64,
    /// Set once the server is shutting down.
    shutting_down: AtomicU64,
}

/// One worker's frame counters. Only that worker writes them.
#[derive(Debug, Default)]
#[repr(align(128))]
struct FrameCounters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
}

impl FrameCounters {
    /// Adds to both counters. A plain load and store suffice for a single writer, and cost
    /// less than an atomic add.
    fn add(&self, frames_in: u64, frames_out: u64) {
        for (counter, n) in [(&self.frames_in, frames_in), (&self.frames_out, frames_out)] {
            if n > 0 {
                counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
            }
        }
    }
}

impl ServerStats {
    fn new(workers: usize) -> ServerStats {
        ServerStats { frames: (0..workers).map(|_| FrameCounters::default()).collect(), ..Default::default() }
    }

    /// Frames received, over all workers.
    pub fn frames_in(&self) -> u64 {
        self.frames.iter().map(|f| f.frames_in.load(Ordering::Relaxed)).sum()
    }

    /// Frames sent, over all workers.
    pub fn frames_out(&self) -> u64 {
        self.frames.iter().map(|f| f.frames_out.load(Ordering::Relaxed)).sum()
    }

    /// Every counter, named, for a `StatsResponse`.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("open", self.open.load(Ordering::Relaxed)),
            ("accepted", self.accepted.load(Ordering::Relaxed)),
            ("refused", self.refused.load(Ordering::Relaxed)),
            ("accept_errors", self.accept_errors.load(Ordering::Relaxed)),
            ("closed", self.closed.load(Ordering::Relaxed)),
            ("bad_frames", self.bad_frames.load(Ordering::Relaxed)),
            ("output_full", self.output_full.load(Ordering::Relaxed)),
            ("frames_in", self.frames_in()),
            ("frames_out", self.frames_out()),
            ("tasks_refused", self.tasks_refused.load(Ordering::Relaxed)),
        ]
    }
}

/// A worker's connections, for a [`Service`] to send to, close, or set timers on.
pub struct Conns<'a> {
    worker: u16,
    slots: &'a mut [Slot],
    timers: &'a mut Vec<(Instant, u64)>,
    to_close: &'a mut Vec<(ConnId, CloseReason)>,
    now: Instant,
}

struct Slot {
    generation: u32,
    conn: Option<FramedConn>,
    /// Listed in `Worker::starved`.
    starved: bool,
}

impl Conns<'_> {
    fn get(&mut self, id: ConnId) -> Option<&mut FramedConn> {
        if id.worker != self.worker {
            return None;
        }
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_mut().filter(|conn| !conn.is_closing())
    }

    /// Sends a frame to `id`. A connection whose output is full is closed (the peer does not
    /// keep up) and reported as [`SendError::Full`]; a closed one as [`SendError::Broken`].
    pub fn send(&mut self, id: ConnId, msgid: MsgId, body: &impl Encode) -> Result<(), SendError> {
        let Some(conn) = self.get(id) else { return Err(SendError::Broken) };
        let sent = conn.sender().send(msgid, body);
        let settled = conn.after_send();
        match (sent, settled) {
            (Err(SendError::Full), _) => {
                self.to_close.push((id, CloseReason::OutputFull));
                Err(SendError::Full)
            }
            (sent, Err(reason)) => {
                self.to_close.push((id, reason));
                sent.and(Err(SendError::Broken))
            }
            (sent, Ok(())) => sent,
        }
    }

    /// Closes `id` once the current callback returns, after its queued output drains (for
    /// [`ServerConfig::close_linger`] at most). It takes no more sends meanwhile.
    pub fn close(&mut self, id: ConnId) {
        self.to_close.push((id, CloseReason::Handler));
    }

    /// The ids of this worker's open connections.
    pub fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        let worker = self.worker;
        let open = |s: &Slot| s.conn.as_ref().is_some_and(|conn| !conn.is_closing());
        self.slots.iter().enumerate().filter(move |(_, s)| open(s)).map(move |(i, s)| ConnId {
            worker,
            slot: i as u32,
            generation: s.generation,
        })
    }

    /// Fires [`Service::timer`] with `token` at `deadline`. Tokens with the top bit set are
    /// reserved for the worker itself.
    pub fn set_timer(&mut self, deadline: Instant, token: u64) {
        self.timers.push((deadline, token & !INTERNAL));
    }

    /// Now, by the server's clock.
    pub fn now(&self) -> Instant {
        self.now
    }
}

/// Timer tokens the server keeps for itself.
const INTERNAL: u64 = 1 << 63;
const RETRY_STARVED: u64 = INTERNAL | 1;
const RESUME_ACCEPT: u64 = INTERNAL | 2;
const LINGER_EXPIRED: u64 = INTERNAL | 3;

/// How long a connection starved of buffers waits before reading is retried.
const STARVED_RETRY: Duration = Duration::from_millis(5);
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long shutdown waits for a connection's queued output.
const FLUSH_ON_SHUTDOWN: std::time::Duration = std::time::Duration::from_millis(200);

enum WorkerMsg<T> {
    Conn(TcpStream, SocketAddr),
    Task(T),
    Shutdown,
}

/// A running server. Dropping it shuts the server down, as [`ServerHandle::shutdown`] does.
pub struct ServerHandle<T: Send + 'static> {
    local_addr: SocketAddr,
    acceptor: Waker<()>,
    poster: Poster<T>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<ServerStats>,
}

/// Posts tasks to a server's workers from anywhere, including from inside a [`Service`]
/// (hand it over in a task, or through a `OnceLock` filled after [`TcpServer::start`]).
pub(crate) struct Poster<T> {
    workers: Vec<Waker<WorkerMsg<T>>>,
    stats: Arc<ServerStats>,
}

impl<T> Clone for Poster<T> {
    fn clone(&self) -> Self {
        Poster { workers: self.workers.clone(), stats: Arc::clone(&self.stats) }
    }
}

impl<T: Send + 'static> Poster<T> {
    /// Posts `task` to worker `worker`; gives it back if that worker's queue is full (counted in
    /// [`ServerStats::tasks_refused`]) or there is no such worker.
    pub(crate) fn post(&self, worker: usize, task: T) -> Result<(), T> {
        let Some(waker) = self.workers.get(worker) else { return Err(task) };
        waker.post(WorkerMsg::Task(task)).map_err(|msg| {
            self.stats.tasks_refused.fetch_add(1, Ordering::Relaxed);
            match msg {
                WorkerMsg::Task(task) => task,
                WorkerMsg::Conn(..) | WorkerMsg::Shutdown => {
                    unreachable!("post gives back what it was given")
                }
            }
        })
    }

    /// The number of workers.
    pub(crate) fn workers(&self) -> usize {
        self.workers.len()
    }
}

impl<T: Send + 'static> ServerHandle<T> {
    /// A cloneable handle for posting tasks to the workers.
    pub(crate) fn poster(&self) -> Poster<T> {
        self.poster.clone()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.poster.workers()
    }

    /// Posts `task` to worker `worker`; gives it back if that worker's queue is full.
    pub fn post(&self, worker: usize, task: T) -> Result<(), T> {
        self.poster.post(worker, task)
    }

    /// The server's counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// The server's counters, shared (for a service that reports them).
    pub fn shared_stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// Tasks waiting in each worker's queue.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.poster.workers.iter().map(Waker::queued).collect()
    }

    /// Stops accepting, flushes what connections have queued (briefly), closes them and waits
    /// for every thread to finish.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl<T: Send + 'static> Drop for ServerHandle<T> {
    fn drop(&mut self) {
        // The flag first: a worker whose queue is full refuses the message below, but it is
        // awake with work to do and checks the flag after every batch.
        self.stats.shutting_down.store(1, Ordering::Release);
        let _ = self.acceptor.post(());
        for worker in &self.poster.workers {
            let _ = worker.post(WorkerMsg::Shutdown);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The server itself; see [`TcpServer::start`].
pub struct TcpServer;

impl TcpServer {
    /// Binds, starts the workers (each with the `Service` that `make` builds for its index) and
    /// the acceptor, and returns a handle.
    pub fn start<S: Service>(
        config: ServerConfig,
        mut make: impl FnMut(usize) -> S,
    ) -> io::Result<ServerHandle<S::Task>> {
        let listener = listen(config.addr)?;
        let local_addr = listener.local_addr()?;
        let clock = Clock::new();
        let stats = Arc::new(ServerStats::new(config.threads.max(1)));
        let mut threads = Vec::new();
        let mut workers = Vec::new();
        let alive: Arc<[AtomicBool]> = (0..config.threads.max(1)).map(|_| AtomicBool::new(true)).collect();
        for index in 0..config.threads.max(1) {
            let event_loop = EventLoop::new(clock, config.task_capacity)?;
            workers.push(event_loop.waker());
            let worker = Worker {
                index: index as u16,
                service: make(index),
                event_loop,
                slots: Vec::new(),
                free: Vec::new(),
                stats: Arc::clone(&stats),
                max_body: config.max_body,
                starved: Vec::new(),
                starved_retry_set: false,
                lingering: Vec::new(),
                close_linger: config.close_linger,
                alive: Arc::clone(&alive),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("lars-worker-{index}"))
                    .spawn(move || worker.run())?,
            );
        }
        let event_loop = EventLoop::new(clock, 16)?;
        let acceptor = Acceptor {
            listener: Registered::new(&event_loop, listener, 0, Interest::READABLE)?,
            event_loop,
            workers: workers.clone(),
            alive,
            next: 0,
            max_conns: config.max_conns as u64,
            stats: Arc::clone(&stats),
        };
        let acceptor_waker = acceptor.event_loop.waker();
        threads.push(std::thread::Builder::new().name("lars-acceptor".into()).spawn(move || acceptor.run())?);
        let poster = Poster { workers, stats: Arc::clone(&stats) };
        Ok(ServerHandle { local_addr, acceptor: acceptor_waker, poster, threads, stats })
    }
}

/// A non-blocking listener with a deep backlog (std's 128 drops bursts of connects).
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, bind, listen, socket_with, sockopt};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd: OwnedFd =
        socket_with(family, SocketType::STREAM, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    bind(&fd, &addr)?;
    listen(&fd, 1024)?;
    Ok(TcpListener::from(fd))
}

struct Acceptor<T: Send + 'static> {
    listener: Registered<TcpListener>,
    event_loop: EventLoop<()>,
    workers: Vec<Waker<WorkerMsg<T>>>,
    alive: Arc<[AtomicBool]>,
    next: usize,
    max_conns: u64,
    stats: Arc<ServerStats>,
}

impl<T: Send + 'static> Acceptor<T> {
    fn run(mut self) {
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

    fn hand_over(&mut self, stream: TcpStream, peer: SocketAddr) {
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

/// A [`Conns`] over a worker's fields, borrowing them apart from its service.
macro_rules! conns {
    ($worker:expr, $timers:expr, $to_close:expr) => {
        Conns {
            worker: $worker.index,
            slots: &mut $worker.slots,
            timers: $timers,
            to_close: $to_close,
            now: $worker.event_loop.now(),
        }
    };
}

struct Worker<S: Service> {
    index: u16,
    service: S,
    event_loop: EventLoop<WorkerMsg<S::Task>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    stats: Arc<ServerStats>,
    max_body: u32,
    /// Connections waiting for pool buffers, retried on a timer.
    starved: Vec<usize>,
    starved_retry_set: bool,
    /// Connections draining their output before a close, with the time they have.
    lingering: Vec<(Instant, ConnId)>,
    close_linger: Duration,
    alive: Arc<[AtomicBool]>,
}

impl<S: Service> Drop for Worker<S> {
    /// Runs however the worker ends, panics included: the acceptor stops sending it
    /// connections, and every connection it held or had queued leaves the open count.
    fn drop(&mut self) {
        self.alive[usize::from(self.index)].store(false, Ordering::SeqCst);
        let held = self.slots.iter().filter(|s| s.conn.is_some()).count();
        let queued =
            self.event_loop.drain_tasks().into_iter().filter(|t| matches!(t, WorkerMsg::Conn(..))).count();
        let lost = (held + queued) as u64;
        if lost > 0 {
            self.stats.open.fetch_sub(lost, Ordering::AcqRel);
            self.stats.closed.fetch_add(lost, Ordering::Relaxed);
        }
    }
}

impl<S: Service> Worker<S> {
    fn run(mut self) {
        let mut ready = Vec::new();
        let mut timers = Vec::new();
        let mut to_close = Vec::new();
        loop {
            ready.clear();
            if self.event_loop.poll(&mut ready, None).is_err() {
                return;
            }
            let mut items = ready.drain(..);
            while let Some(item) = items.next() {
                match item {
                    Ready::Io { key, readable, writable } => {
                        self.on_io(key, readable, writable, &mut to_close)
                    }
                    Ready::Task(WorkerMsg::Conn(stream, peer)) => {
                        self.open(stream, peer, &mut timers, &mut to_close)
                    }
                    Ready::Task(WorkerMsg::Task(task)) => {
                        let mut conns = conns!(self, &mut timers, &mut to_close);
                        self.service.task(task, &mut conns);
                    }
                    Ready::Task(WorkerMsg::Shutdown) => {
                        // Connections handed over in the same batch are closed unopened.
                        let unopened =
                            items.filter(|r| matches!(r, Ready::Task(WorkerMsg::Conn(..)))).count();
                        self.stats.open.fetch_sub(unopened as u64, Ordering::AcqRel);
                        self.stats.closed.fetch_add(unopened as u64, Ordering::Relaxed);
                        return self.shut_down();
                    }
                    Ready::Timer(RETRY_STARVED) => self.retry_starved(&mut to_close),
                    Ready::Timer(LINGER_EXPIRED) => self.expire_lingering(),
                    Ready::Timer(token) => {
                        let mut conns = conns!(self, &mut timers, &mut to_close);
                        self.service.timer(token, &mut conns);
                    }
                }
                self.settle(&mut timers, &mut to_close);
            }
            if self.stats.shutting_down.load(Ordering::Acquire) != 0 {
                return self.shut_down();
            }
        }
    }

    /// Applies what callbacks asked for: timers and closes.
    fn settle(&mut self, timers: &mut Vec<(Instant, u64)>, to_close: &mut Vec<(ConnId, CloseReason)>) {
        for (deadline, token) in timers.drain(..) {
            self.event_loop.set_timer(deadline, token);
        }
        while let Some((id, reason)) = to_close.pop() {
            self.close(id, reason);
        }
        if !self.starved_retry_set && !self.starved.is_empty() {
            self.starved_retry_set = true;
            let at = self.event_loop.now() + STARVED_RETRY;
            self.event_loop.set_timer(at, RETRY_STARVED);
        }
    }

    fn id(&self, slot: usize) -> ConnId {
        ConnId { worker: self.index, slot: slot as u32, generation: self.slots[slot].generation }
    }

    fn open(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        timers: &mut Vec<(Instant, u64)>,
        to_close: &mut Vec<(ConnId, CloseReason)>,
    ) {
        let slot = match self.free.pop() {
            Some(slot) => slot as usize,
            None => {
                self.slots.push(Slot { generation: 0, conn: None, starved: false });
                self.slots.len() - 1
            }
        };
        let registered = stream
            .set_nonblocking(true)
            .and_then(|()| stream.set_nodelay(true))
            .and_then(|()| Registered::new(&self.event_loop, stream, slot, Interest::READABLE));
        match registered {
            Ok(stream) => {
                self.slots[slot].conn = Some(FramedConn::new(stream, self.max_body));
                let id = self.id(slot);
                let mut conns = conns!(self, timers, to_close);
                self.service.connected(id, peer, &mut conns);
            }
            Err(_) => {
                self.free.push(slot as u32);
                self.stats.open.fetch_sub(1, Ordering::AcqRel);
                self.stats.closed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn on_io(
        &mut self,
        slot: usize,
        readable: bool,
        writable: bool,
        to_close: &mut Vec<(ConnId, CloseReason)>,
    ) {
        let id = match self.slots.get(slot) {
            Some(s) if s.conn.is_some() => self.id(slot),
            _ => return, // closed earlier in this batch
        };
        let entry = &mut self.slots[slot];
        let Some(conn) = entry.conn.as_mut() else { return };
        let service = &mut self.service;
        let before = conn.frame_counts();
        let result = conn.on_ready(writable, readable, |frame, reply| service.frame(id, frame, reply));
        let after = conn.frame_counts();
        self.stats.frames[usize::from(self.index)].add(after.0 - before.0, after.1 - before.1);
        if conn.is_starved() && !entry.starved {
            entry.starved = true;
            self.starved.push(slot);
        }
        if let Err(reason) = result {
            to_close.push((id, reason));
        }
    }

    fn retry_starved(&mut self, to_close: &mut Vec<(ConnId, CloseReason)>) {
        self.starved_retry_set = false;
        for slot in std::mem::take(&mut self.starved) {
            self.slots[slot].starved = false;
            self.on_io(slot, false, false, to_close);
        }
    }

    /// Closes `id` for `reason`. The service hears of it at once; but a connection closed by
    /// its service or for a bad frame, with output still queued, drains it first (for
    /// `close_linger` at most), so that replies already given are not cut off.
    fn close(&mut self, id: ConnId, reason: CloseReason) {
        let Some(conn) = self.conn_mut(id) else { return };
        if conn.is_closing() {
            // Lingering: it ends once drained or broken; another request to close it waits.
            if conn.queued_output() == 0 || matches!(reason, CloseReason::Io(_)) {
                self.close_now(id);
            }
            return;
        }
        match reason {
            CloseReason::BadFrame(_) => self.stats.bad_frames.fetch_add(1, Ordering::Relaxed),
            CloseReason::OutputFull => self.stats.output_full.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        self.service.closed(id, reason);
        let Some(conn) = self.conn_mut(id) else { return };
        let drains = matches!(reason, CloseReason::Handler | CloseReason::BadFrame(_));
        if drains && conn.close_after_flush(reason) {
            let deadline = self.event_loop.now() + self.close_linger;
            self.lingering.push((deadline, id));
            self.event_loop.set_timer(deadline, LINGER_EXPIRED);
            return;
        }
        if reason == CloseReason::Handler {
            conn.discard_input();
        }
        self.close_now(id);
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut FramedConn> {
        let slot = self.slots.get_mut(id.slot as usize).filter(|s| s.generation == id.generation)?;
        slot.conn.as_mut()
    }

    /// Closes the lingering connections whose time is up (those that drained are gone already).
    fn expire_lingering(&mut self) {
        let now = self.event_loop.now();
        let (due, rest) = std::mem::take(&mut self.lingering).into_iter().partition(|(at, _)| *at <= now);
        self.lingering = rest;
        for (_, id) in due {
            self.close_now(id);
        }
    }

    /// Closes the socket and frees the slot; the service has been told already.
    fn close_now(&mut self, id: ConnId) {
        let Some(slot) = self.slots.get_mut(id.slot as usize).filter(|s| s.generation == id.generation)
        else {
            return;
        };
        let Some(conn) = slot.conn.take() else { return };
        drop(conn); // deregisters and closes the socket; its buffers go back to the pool
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.slot);
        self.stats.open.fetch_sub(1, Ordering::AcqRel);
        self.stats.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Flushes queued output for a moment (`FLUSH_ON_SHUTDOWN` for all connections together),
    /// then closes everything.
    fn shut_down(&mut self) {
        let clock = self.event_loop.clock();
        let deadline = clock.now() + crate::time::from_std(FLUSH_ON_SHUTDOWN);
        for slot in 0..self.slots.len() {
            if let Some(conn) = self.slots[slot].conn.as_mut() {
                conn.flush_blocking(|| clock.until(deadline));
            }
            if self.slots[slot].conn.is_some() {
                // Flushed (or out of time): nothing is left to drain.
                let id = self.id(slot);
                let was_closing = self.slots[slot].conn.as_ref().is_some_and(FramedConn::is_closing);
                if was_closing { self.close_now(id) } else { self.close(id, CloseReason::Handler) }
            }
        }
    }
}
