//! The framed TCP server: one acceptor thread and `threads` worker threads, each running an
//! [`EventLoop`] and its own instance of the application's [`Service`].
//!
//! New connections go to the workers round robin (the original sent them all to worker 0,
//! D-R-1). Frames, replies and tasks are handled on the worker that owns the connection; other
//! threads reach a worker with [`ServerHandle::post`].
//!
//! - `acceptor.rs`: the acceptor thread, `max_conns`, accept errors.
//! - `worker.rs`: a worker thread, its connections and [`Conns`].
//! - `state.rs`: a connection's close protocol, one state machine.
//! - `limits.rs`: what `max_conns` needs from the pool and the process, checked at start.

mod acceptor;
mod limits;
mod state;
mod worker;

pub use worker::Conns;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use lars_core::time::Duration;
use lars_core::wire::{Frame, frame};

use super::{CloseReason, Control, EventLoop, Sender, Waker};
use crate::time::Clock;
use acceptor::Acceptor;
use worker::Worker;

/// How a server listens and how much it holds.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free port (see [`ServerHandle::local_addr`]).
    pub addr: SocketAddr,
    /// Worker threads (the original's `threadNum`); at least one.
    pub threads: usize,
    /// Connections open at once (`maxConn`); more are closed at accept. [`TcpServer::start`]
    /// refuses more than the buffer pool can back (three eighths of its small blocks) and
    /// raises the soft `RLIMIT_NOFILE` if it is too low for them.
    pub max_conns: usize,
    /// The largest frame body accepted; larger frames close the connection.
    pub max_body: u32,
    /// Tasks a worker's queue holds before [`ServerHandle::post`] refuses more.
    pub task_capacity: usize,
    /// How long a connection closed by its service (after a reply, say) may take to drain
    /// its queued output before it is closed anyway.
    pub close_linger: Duration,
    /// The source addresses taken (`--allow`, `[reactor] allow`); a connection from anywhere
    /// else is closed at accept and counted in [`ServerStats::denied`]. Loopback by default.
    pub allow: Vec<lars_core::access::Cidr>,
    /// How long a frame's 8-byte header may take to arrive once its first byte has
    /// (`[reactor] headerTimeout`).
    pub header_timeout: Duration,
    /// How long a frame's body may take to arrive once its header has, in all: a peer that
    /// trickles a byte at a time gets no longer (`[reactor] bodyTimeout`).
    pub body_timeout: Duration,
    /// How long a connection may stay open without sending a frame (`[reactor] idleTimeout`);
    /// `None`, the default, keeps it open: agents are silent while they have nothing to ask.
    pub idle_timeout: Option<Duration>,
    /// The workers' adaptive wait ([`super::SpinPolicy`]): a worker serving callers with one
    /// request in flight keeps its core awake between requests while they come densely.
    /// `None` makes the workers sleep whenever they run out of work.
    pub spin: Option<super::SpinConfig>,
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
            allow: lars_core::access::Cidr::LOOPBACK.to_vec(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: None,
            spin: Some(super::SpinConfig::default()),
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
    /// The smallest id, where a range over ids starts.
    pub(crate) const MIN: ConnId = ConnId { worker: 0, slot: 0, generation: 0 };

    /// An id made up for a unit test.
    #[cfg(test)]
    pub(crate) fn for_tests(worker: u16, slot: u32) -> ConnId {
        ConnId { worker, slot, generation: 0 }
    }

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
    /// Connections closed at accept because their source is not in [`ServerConfig::allow`].
    pub denied: AtomicU64,
    /// Accept calls that failed.
    pub accept_errors: AtomicU64,
    /// Connections closed.
    pub closed: AtomicU64,
    /// Connections closed for a frame that does not decode.
    pub bad_frames: AtomicU64,
    /// Connections closed because their output queue was full.
    pub output_full: AtomicU64,
    /// Connections closed because a frame's header did not arrive within `header_timeout`.
    pub header_timeouts: AtomicU64,
    /// Connections closed because a frame's body did not arrive within `body_timeout`.
    pub body_timeouts: AtomicU64,
    /// Connections closed because they sent no frame for `idle_timeout`.
    pub idle_timeouts: AtomicU64,
    /// Frames in and out, per worker: each worker counts on a cache line of its own, so that
    /// workers on different cores do not contend for it on every frame.
    pub(super) frames: Box<[FrameCounters]>,
    /// Tasks refused because a worker's queue was full.
    pub tasks_refused: AtomicU64,
    /// Set once the server is shutting down.
    pub(super) shutting_down: AtomicU64,
}

/// One worker's frame counters. Only that worker writes them.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct FrameCounters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
}

impl FrameCounters {
    /// Adds to both counters. A plain load and store suffice for a single writer, and cost
    /// less than an atomic add.
    pub(super) fn add(&self, frames_in: u64, frames_out: u64) {
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
        counters![
            self;
            open, accepted, refused, denied, accept_errors, closed, bad_frames, output_full,
            header_timeouts, body_timeouts, idle_timeouts,
            "frames_in" => self.frames_in(),
            "frames_out" => self.frames_out(),
            tasks_refused,
        ]
    }
}

/// What a worker's queue carries.
pub(super) enum WorkerMsg<T> {
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
        limits::check_pool(config.max_conns, &crate::pool::config())?;
        limits::ensure_fds(config.max_conns, config.threads.max(1))?;
        let listener = acceptor::listen(config.addr)?;
        let local_addr = listener.local_addr()?;
        let clock = Clock::new();
        let stats = Arc::new(ServerStats::new(config.threads.max(1)));
        let mut threads = Vec::new();
        let mut workers = Vec::new();
        let alive: Arc<[AtomicBool]> = (0..config.threads.max(1)).map(|_| AtomicBool::new(true)).collect();
        for index in 0..config.threads.max(1) {
            let mut event_loop = EventLoop::new(clock, config.task_capacity)?;
            if let Some(spin) = config.spin {
                event_loop.spin_when_dense(spin);
            }
            workers.push(event_loop.waker());
            let worker =
                Worker::new(index, make(index), event_loop, &config, Arc::clone(&stats), Arc::clone(&alive));
            threads.push(
                std::thread::Builder::new()
                    .name(format!("lars-worker-{index}"))
                    .spawn(move || worker.run())?,
            );
        }
        let event_loop = EventLoop::new(clock, 16)?;
        let acceptor = Acceptor::new(
            listener,
            event_loop,
            workers.clone(),
            alive,
            config.max_conns,
            config.allow.clone(),
            Arc::clone(&stats),
        )?;
        let acceptor_waker = acceptor.stopper();
        threads.push(std::thread::Builder::new().name("lars-acceptor".into()).spawn(move || acceptor.run())?);
        let poster = Poster { workers, stats: Arc::clone(&stats) };
        Ok(ServerHandle { local_addr, acceptor: acceptor_waker, poster, threads, stats })
    }
}
