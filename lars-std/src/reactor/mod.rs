//! The reactor: an event loop on `polling`, with timers and a cross-thread task queue, and the
//! framed TCP server, TCP client and UDP endpoint built on it.
//!
//! # Model
//!
//! An [`EventLoop`] belongs to one thread. Sources (sockets) are registered under a `usize` key
//! with an [`Interest`]; [`EventLoop::poll`] waits for readiness, for the earliest timer, or for a
//! task posted from another thread through a [`Waker`], and returns what happened as [`Ready`]
//! items. The loop is **level-triggered**: a source that stays readable is reported again on the
//! next poll, so a handler may read one buffer per event and stay fair to other sources, and
//! turning interest off (backpressure) is just a change of interest.
//!
//! Timers are a deadline heap: [`EventLoop::set_timer`] returns nothing to cancel; a timer that
//! is no longer wanted is ignored by its owner when it fires (put a generation in the token).
//! Timers fire in deadline order, ties in the order they were set.
//!
//! Tasks are bounded: [`Waker::post`] refuses a task (handing it back) when the queue is full,
//! so a flood from one thread cannot grow another's memory without limit.
//!
//! A loop may busy-poll for a moment before it sleeps ([`EventLoop::spin_when_dense`]): on
//! machines where an idle core halts, a caller with one request in flight otherwise pays a
//! wake-up per request. When it does, and whether it pays, is [`SpinPolicy`]'s to decide.
//!
//! # Contract
//!
//! - `poll` returns after at least one item is ready, after `max_wait`, or spuriously with none.
//! - Every registered source is deleted from the poller before it is closed (`Registered`
//!   owns it and deletes on drop); this is what `polling` requires of its callers.
//! - Nothing here panics on what a peer sends; IO errors are returned to the caller.
//!
//! # Surface
//!
//! The loop ([`EventLoop`], [`Waker`], [`Interest`], [`Ready`]); the server ([`TcpServer`],
//! [`ServerConfig`], [`ServerHandle`], [`ServerStats`], and a [`Service`] with what it is
//! handed: [`ConnId`], [`Conns`], [`Sender`], [`Control`], [`CloseReason`], [`SendError`]); the
//! client ([`TcpClient`], [`TcpClientConfig`], [`LinkEvent`]); [`UdpEndpoint`]. `Conns` and
//! `Sender` exist only inside a callback and cannot be built outside. The connection and the
//! registration underneath (`FramedConn`, `Registered`) are the reactor's own: `plumbing`
//! exposes them, hidden, only for the tests that drive one connection by hand.

mod client;
mod conn;
mod registered;
mod server;
mod spin;
mod udp;

pub use client::{LinkEvent, TcpClient, TcpClientConfig};
pub use conn::{CloseReason, Control, SendError, Sender, Wait};
pub use server::{ConnId, Conns, ServerConfig, ServerHandle, ServerStats, Service, TcpServer};
pub use spin::{SpinConfig, SpinEnd, SpinPolicy, SpinStats};
pub use udp::{UdpEndpoint, UdpStats};

use conn::FramedConn;
pub(crate) use conn::slow_holds;
use registered::Registered;
pub(crate) use server::Poster;

/// The connection plumbing under [`TcpServer`] and [`TcpClient`], not part of lars-std's API:
/// public only so that the integration tests that must empty the process's buffer pool (each
/// in a process of its own) can drive one connection by hand, and see how many large blocks
/// partial frames hold.
#[doc(hidden)]
pub mod plumbing {
    pub use super::conn::{FramedConn, slow_holds};
    pub use super::registered::Registered;
}

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use lars_core::time::Instant;
use polling::{Event, Events, Poller};

use crate::time::Clock;

/// What a source should be polled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    /// Report when reading would not block.
    pub readable: bool,
    /// Report when writing would not block.
    pub writable: bool,
}

impl Interest {
    /// Readable only.
    pub const READABLE: Interest = Interest { readable: true, writable: false };
    /// Writable only.
    pub const WRITABLE: Interest = Interest { readable: false, writable: true };
    /// Both.
    pub const BOTH: Interest = Interest { readable: true, writable: true };
    /// Neither: registered but silent.
    pub const NONE: Interest = Interest { readable: false, writable: false };

    pub(crate) fn event(self, key: usize) -> Event {
        match (self.readable, self.writable) {
            (true, true) => Event::all(key),
            (true, false) => Event::readable(key),
            (false, true) => Event::writable(key),
            (false, false) => Event::none(key),
        }
    }
}

/// Something [`EventLoop::poll`] found ready.
#[derive(Debug)]
pub enum Ready<T> {
    /// The source registered under `key` is readable and/or writable (or has an error or hang-up
    /// pending, which the next read or write reports).
    Io {
        /// The source's key.
        key: usize,
        /// Reading would not block.
        readable: bool,
        /// Writing would not block.
        writable: bool,
    },
    /// A timer set with this token has fired.
    Timer(u64),
    /// A task posted through a [`Waker`].
    Task(T),
}

struct TaskQueue<T> {
    tasks: Mutex<VecDeque<T>>,
    /// The queue's length, kept under the lock, so that the loop can see an empty queue
    /// without taking the lock on every poll.
    queued: AtomicUsize,
    capacity: usize,
    poller: Arc<Poller>,
}

/// Posts tasks to an [`EventLoop`] from any thread, waking it.
pub struct Waker<T> {
    queue: Arc<TaskQueue<T>>,
}

impl<T> Clone for Waker<T> {
    fn clone(&self) -> Self {
        Waker { queue: Arc::clone(&self.queue) }
    }
}

impl<T> Waker<T> {
    /// Queues `task` for the loop and wakes it. Gives the task back when the queue is full.
    pub fn post(&self, task: T) -> Result<(), T> {
        {
            let mut tasks = self.queue.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if tasks.len() >= self.queue.capacity {
                return Err(task);
            }
            tasks.push_back(task);
            self.queue.queued.store(tasks.len(), Ordering::Release);
        }
        // A failed notify means the poller is gone with its loop: the task will never run,
        // which is what posting to a finished loop means.
        let _ = self.queue.poller.notify();
        Ok(())
    }

    /// Tasks waiting.
    pub fn queued(&self) -> usize {
        self.queue.queued.load(Ordering::Acquire)
    }

    /// Takes every queued task back (for tasks posted to a loop that has ended, or is ending).
    pub fn take_all(&self) -> Vec<T> {
        let mut tasks = self.queue.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.queue.queued.store(0, Ordering::Release);
        tasks.drain(..).collect()
    }
}

/// One thread's event loop; `T` is the type of the tasks other threads post to it.
pub struct EventLoop<T> {
    poller: Arc<Poller>,
    events: Events,
    timers: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    timer_seq: u64,
    queue: Arc<TaskQueue<T>>,
    clock: Clock,
    /// The adaptive wait, if this loop busy-polls before sleeping (see `spin`).
    spin: Option<SpinPolicy>,
    /// Where the adaptive wait reads how many threads are runnable.
    load: Option<LoadProbe>,
}

/// Reads how many threads are runnable on the machine, from `/proc/loadavg` (its fourth field,
/// `running/total`), kept open and read with `pread` so that a sample is one system call.
struct LoadProbe {
    file: std::fs::File,
    cpus: u64,
}

impl LoadProbe {
    fn open() -> Option<LoadProbe> {
        let file = std::fs::File::open("/proc/loadavg").ok()?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        Some(LoadProbe { file, cpus })
    }

    /// Runnable threads besides the caller, which is running as it reads.
    fn others_runnable(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut text = [0u8; 128];
        let len = self.file.read_at(&mut text, 0).ok()?;
        let field = text[..len].split(|&b| b == b' ').nth(3)?;
        let running = field.split(|&b| b == b'/').next()?;
        let running: u64 = std::str::from_utf8(running).ok()?.parse().ok()?;
        Some(running.saturating_sub(1))
    }
}

impl<T> EventLoop<T> {
    /// A loop whose task queue holds at most `task_capacity` tasks.
    pub fn new(clock: Clock, task_capacity: usize) -> io::Result<Self> {
        let poller = Arc::new(Poller::new()?);
        let queue = Arc::new(TaskQueue {
            tasks: Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
            capacity: task_capacity,
            poller: Arc::clone(&poller),
        });
        Ok(EventLoop {
            poller,
            events: Events::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            queue,
            clock,
            spin: None,
            load: None,
        })
    }

    /// Makes the loop busy-poll for a moment before it sleeps, while work arrives densely, by
    /// the rules of [`SpinPolicy`]: a loop that serves callers with one request in flight then
    /// keeps its core awake between a reply and the next request instead of paying a wake-up
    /// for each. Off by default. Report the requests served with [`EventLoop::handled`].
    pub fn spin_when_dense(&mut self, config: SpinConfig) {
        self.spin = Some(SpinPolicy::new(config));
        self.load = LoadProbe::open();
    }

    /// Tells the adaptive wait that `requests` were served since the last poll: its trials
    /// compare the two ways of waiting by wall time per request, so a loop that spins calls
    /// this after handling what a poll returned (one that never does never spins).
    pub fn handled(&mut self, requests: usize) {
        if requests > 0
            && let Some(policy) = self.spin.as_mut()
        {
            policy.handle_work(self.clock.now(), requests);
        }
    }

    /// What the adaptive wait has done (`None` if it is off).
    pub fn spin_stats(&self) -> Option<SpinStats> {
        self.spin.as_ref().map(SpinPolicy::stats)
    }

    /// The poller, for [`Registered`] to register sources with.
    fn poller(&self) -> &Arc<Poller> {
        &self.poller
    }

    /// A handle for posting tasks to this loop from other threads.
    pub fn waker(&self) -> Waker<T> {
        Waker { queue: Arc::clone(&self.queue) }
    }

    /// The loop's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Now, by the loop's clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Fires `token` at `deadline` (or on the next poll if it has passed).
    pub fn set_timer(&mut self, deadline: Instant, token: u64) {
        self.timer_seq += 1;
        self.timers.push(Reverse((deadline, self.timer_seq, token)));
    }

    /// The earliest timer's deadline.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((deadline, _, _))| *deadline)
    }

    /// Takes every queued task without waiting (for a loop that is going away).
    pub fn drain_tasks(&mut self) -> Vec<T> {
        self.waker().take_all()
    }

    /// Waits for readiness, a timer or a task (at most `max_wait`, or until the next timer), and
    /// appends what is ready to `out`: IO first, then tasks, then due timers in deadline order.
    pub fn poll(&mut self, out: &mut Vec<Ready<T>>, max_wait: Option<std::time::Duration>) -> io::Result<()> {
        let until_timer = self.next_timer().map(|deadline| self.clock.until(deadline));
        let timeout = match (max_wait, until_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let has_tasks = self.queue.queued.load(Ordering::Acquire) > 0;
        if has_tasks || timeout == Some(std::time::Duration::ZERO) {
            self.wait(out, Some(std::time::Duration::ZERO))?;
        } else {
            self.idle(out, timeout)?;
        }
        // A task posted after this check wakes the next poll through the notifier.
        if self.queue.queued.load(Ordering::Acquire) > 0 {
            let mut tasks = self.queue.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            self.queue.queued.store(0, Ordering::Release);
            out.extend(tasks.drain(..).map(Ready::Task));
        }
        if self.timers.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        while let Some(Reverse((deadline, _, token))) = self.timers.peek().copied() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            out.push(Ready::Timer(token));
        }
        Ok(())
    }

    /// An empty list for [`EventLoop::poll`] with room for what one poll returns in steady
    /// state (a wait's events, polling's 1024 at most, and the timers and tasks due), so that
    /// a loop that reuses it does not allocate.
    pub fn ready_list(&self) -> Vec<Ready<T>> {
        Vec::with_capacity(1024 + 64)
    }

    /// The loop has run out of work: waits (at most `timeout`) for more, spinning first if the
    /// adaptive wait says so. A spin probes with zero-timeout waits, yielding the core between
    /// them, and ends when something is ready, at the end of its window or the timeout, or
    /// when a step between two probes shows that another thread had the core.
    fn idle(&mut self, out: &mut Vec<Ready<T>>, timeout: Option<std::time::Duration>) -> io::Result<()> {
        let Some(mut policy) = self.spin.take() else { return self.wait(out, timeout) };
        let result = self.idle_with(&mut policy, out, timeout);
        self.spin = Some(policy);
        result
    }

    fn idle_with(
        &mut self,
        policy: &mut SpinPolicy,
        out: &mut Vec<Ready<T>>,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<()> {
        let before = out.len();
        let started = self.clock.now();
        let deadline = timeout.map(|t| started + crate::time::from_std(t));
        if policy.load_due(started) {
            let (others, cpus) =
                self.load.as_ref().map_or((None, 1), |probe| (probe.others_runnable(), probe.cpus));
            policy.handle_load(started, others, cpus);
        }
        if let Some(window) = policy.poll_spin(started) {
            let window_end = started + window;
            let (stop, cut) = match deadline {
                Some(deadline) if deadline < window_end => (deadline, true),
                _ => (window_end, false),
            };
            let mut probed = started;
            let end = loop {
                self.wait(out, Some(std::time::Duration::ZERO))?;
                let now = self.clock.now();
                let step = now.saturating_since(probed);
                probed = now;
                if out.len() > before || self.queue.queued.load(Ordering::Acquire) > 0 {
                    break SpinEnd::Caught;
                }
                if policy.is_preempted(step) {
                    break SpinEnd::Preempted;
                }
                if now >= stop {
                    break if cut { SpinEnd::Cut } else { SpinEnd::Missed };
                }
                // A thread that is runnable on this core (the caller, often) goes first.
                std::thread::yield_now();
            };
            policy.handle_spin(started, probed, end);
            if end == SpinEnd::Caught || end == SpinEnd::Cut {
                policy.handle_idle_end(probed);
                return Ok(());
            }
        }
        let timeout = deadline.map(|deadline| self.clock.until(deadline));
        self.wait(out, timeout)?;
        let woke = self.clock.now();
        if out.len() > before {
            policy.handle_woken(started, woke);
        }
        policy.handle_idle_end(woke);
        Ok(())
    }

    /// One `Poller::wait`, its events appended to `out`. An interrupted wait returns nothing,
    /// like a spurious wake-up.
    fn wait(&mut self, out: &mut Vec<Ready<T>>, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.events.clear();
        match self.poller.wait(&mut self.events, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        out.extend(self.events.iter().map(|event| Ready::Io {
            key: event.key,
            readable: event.readable,
            writable: event.writable,
        }));
        Ok(())
    }
}
