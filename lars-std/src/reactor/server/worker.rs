//! A server's worker thread: its event loop, its connections' slots, and [`Conns`], the view of
//! them that its [`Service`] gets.
//!
//! Each connection's close protocol is its [`ConnState`] (`state.rs`); every close, drain and
//! linger deadline goes through [`Worker::transition`], the only place that acts on it.
//!
//! Each open connection also has a deadline for what it waits for from its peer
//! ([`Wait`]): the rest of a header (`header_timeout` from its first byte), the rest of a body
//! (`body_timeout` from the end of its header, however it trickles in) or, if configured, the
//! next frame (`idle_timeout` from the last one). [`Worker::watch`] notes the wait after every
//! read; one timer per connection is armed for the earliest deadline, and when it fires the
//! deadline is looked at again, so a connection that makes progress costs no timer per read.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lars_core::time::{Duration, Instant};
use lars_core::wire::{Encode, MsgId};

use super::state::{ConnState, Event};
use super::{ConnId, ServerConfig, ServerStats, Service, WorkerMsg};
use crate::reactor::{CloseReason, EventLoop, FramedConn, Interest, Ready, Registered, SendError, Wait};

/// Timer tokens the worker keeps for itself: the top bit, which [`Conns::set_timer`] clears.
const INTERNAL: u64 = 1 << 63;
const RETRY_STARVED: u64 = INTERNAL | 1;
/// A draining connection's deadline: this tag, or'ed with its slot.
const LINGER_DUE: u64 = INTERNAL | 1 << 62;
/// An open connection's wait deadline: this tag, or'ed with its slot.
const WAIT_DUE: u64 = INTERNAL | 1 << 61;

/// How long a connection starved of buffers waits before reading is retried.
const STARVED_RETRY: Duration = Duration::from_millis(5);
/// How long shutdown waits for a connection's queued output.
const FLUSH_ON_SHUTDOWN: std::time::Duration = std::time::Duration::from_millis(200);

/// A worker's connections, for a [`Service`] to send to, close, or set timers on.
pub struct Conns<'a> {
    worker: u16,
    slots: &'a mut [Slot],
    timers: &'a mut Vec<(Instant, u64)>,
    events: &'a mut Vec<(ConnId, Event)>,
    now: Instant,
}

/// One connection's place in a worker. `conn` is `Some` exactly while `state` is not `Closed`.
struct Slot {
    generation: u32,
    conn: Option<FramedConn>,
    state: ConnState,
    /// Listed in `Worker::starved`.
    starved: bool,
    /// What the connection waited for after its last read, since when, and the frames it had
    /// sent by then (a new frame starts a new wait, even of the same kind).
    wait: Wait,
    wait_since: Instant,
    frames_seen: u64,
    /// The earliest wait timer armed for this slot and not yet fired.
    wait_timer: Option<Instant>,
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            generation: 0,
            conn: None,
            state: ConnState::Closed,
            starved: false,
            wait: Wait::Idle,
            wait_since: Instant::ZERO,
            frames_seen: 0,
            wait_timer: None,
        }
    }
}

/// The timeouts of [`ServerConfig`], by what a connection waits for.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    body: Duration,
    idle: Option<Duration>,
}

impl Timeouts {
    fn of(&self, wait: Wait) -> Option<Duration> {
        match wait {
            Wait::Idle => self.idle,
            Wait::Header => Some(self.header),
            Wait::Body => Some(self.body),
        }
    }
}

impl Conns<'_> {
    /// An open connection: one that is draining takes no more sends.
    fn get(&mut self, id: ConnId) -> Option<&mut FramedConn> {
        if id.worker != self.worker {
            return None;
        }
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.generation != id.generation || !slot.state.is_open() {
            return None;
        }
        slot.conn.as_mut()
    }

    /// Sends a frame to `id`. A connection whose output is full is closed (the peer does not
    /// keep up) and reported as [`SendError::Full`]; a closed one as [`SendError::Broken`].
    pub fn send(&mut self, id: ConnId, msgid: MsgId, body: &impl Encode) -> Result<(), SendError> {
        let Some(conn) = self.get(id) else { return Err(SendError::Broken) };
        let sent = conn.sender().send(msgid, body);
        let settled = conn.after_send();
        match (sent, settled) {
            (Err(SendError::Full), _) => {
                self.events.push((id, Event::Close(CloseReason::OutputFull)));
                Err(SendError::Full)
            }
            (sent, Err(reason)) => {
                self.events.push((id, Event::Close(reason)));
                sent.and(Err(SendError::Broken))
            }
            (sent, Ok(())) => sent,
        }
    }

    /// Closes `id` once the current callback returns, after its queued output drains (for
    /// [`ServerConfig::close_linger`] at most). It takes no more sends meanwhile.
    pub fn close(&mut self, id: ConnId) {
        self.events.push((id, Event::Close(CloseReason::Handler)));
    }

    /// The ids of this worker's open connections.
    pub fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        let worker = self.worker;
        self.slots.iter().enumerate().filter(|(_, s)| s.state.is_open()).map(move |(i, s)| ConnId {
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

/// A [`Conns`] over a worker's fields, borrowing them apart from its service.
macro_rules! conns {
    ($worker:expr, $timers:expr, $events:expr) => {
        Conns {
            worker: $worker.index,
            slots: &mut $worker.slots,
            timers: $timers,
            events: $events,
            now: $worker.event_loop.now(),
        }
    };
}

/// Timers and connection events that callbacks asked for, applied after each callback.
type Timers = Vec<(Instant, u64)>;
type Events = Vec<(ConnId, Event)>;

pub(super) struct Worker<S: Service> {
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
    close_linger: Duration,
    timeouts: Timeouts,
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
    /// Worker `index` of a server configured by `config`, running `service` on `event_loop`.
    pub(super) fn new(
        index: usize,
        service: S,
        event_loop: EventLoop<WorkerMsg<S::Task>>,
        config: &ServerConfig,
        stats: Arc<ServerStats>,
        alive: Arc<[AtomicBool]>,
    ) -> Self {
        Worker {
            index: index as u16,
            service,
            event_loop,
            slots: Vec::new(),
            free: Vec::new(),
            stats,
            max_body: config.max_body,
            starved: Vec::new(),
            starved_retry_set: false,
            close_linger: config.close_linger,
            timeouts: Timeouts {
                header: config.header_timeout,
                body: config.body_timeout,
                idle: config.idle_timeout,
            },
            alive,
        }
    }

    pub(super) fn run(mut self) {
        let mut ready = self.event_loop.ready_list();
        let mut timers = Timers::new();
        let mut events = Events::new();
        loop {
            ready.clear();
            if self.event_loop.poll(&mut ready, None).is_err() {
                return;
            }
            let mut items = ready.drain(..);
            while let Some(item) = items.next() {
                match item {
                    Ready::Io { key, readable, writable } => self.on_io(key, readable, writable, &mut events),
                    Ready::Task(WorkerMsg::Conn(stream, peer)) => {
                        self.open(stream, peer, &mut timers, &mut events)
                    }
                    Ready::Task(WorkerMsg::Task(task)) => {
                        let mut conns = conns!(self, &mut timers, &mut events);
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
                    Ready::Timer(RETRY_STARVED) => self.retry_starved(&mut events),
                    Ready::Timer(token) if token & LINGER_DUE == LINGER_DUE => {
                        let slot = (token & !LINGER_DUE) as usize;
                        if self.slots.get(slot).is_some_and(|s| s.conn.is_some()) {
                            events.push((self.id(slot), Event::LingerDue));
                        }
                    }
                    Ready::Timer(token) if token & WAIT_DUE == WAIT_DUE => {
                        self.wait_due((token & !WAIT_DUE) as usize, &mut events)
                    }
                    Ready::Timer(token) => {
                        let mut conns = conns!(self, &mut timers, &mut events);
                        self.service.timer(token, &mut conns);
                    }
                }
                self.settle(&mut timers, &mut events);
            }
            if self.stats.shutting_down.load(Ordering::Acquire) != 0 {
                return self.shut_down();
            }
        }
    }

    /// Applies what callbacks and IO asked for: timers and connection events.
    fn settle(&mut self, timers: &mut Timers, events: &mut Events) {
        for (deadline, token) in timers.drain(..) {
            self.event_loop.set_timer(deadline, token);
        }
        while let Some((id, event)) = events.pop() {
            self.transition(id, event);
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

    fn open(&mut self, stream: TcpStream, peer: SocketAddr, timers: &mut Timers, events: &mut Events) {
        let slot = match self.free.pop() {
            Some(slot) => slot as usize,
            None => {
                self.slots.push(Slot::empty());
                self.slots.len() - 1
            }
        };
        let registered = stream
            .set_nonblocking(true)
            .and_then(|()| stream.set_nodelay(true))
            .and_then(|()| Registered::new(&self.event_loop, stream, slot, Interest::READABLE));
        match registered {
            Ok(stream) => {
                let entry = &mut self.slots[slot];
                entry.conn = Some(FramedConn::new(stream, self.max_body));
                entry.state = ConnState::Open;
                entry.wait = Wait::Idle;
                entry.wait_since = self.event_loop.now();
                entry.frames_seen = 0;
                entry.wait_timer = None;
                self.arm_wait(slot);
                let id = self.id(slot);
                let mut conns = conns!(self, timers, events);
                self.service.connected(id, peer, &mut conns);
            }
            Err(_) => {
                self.free.push(slot as u32);
                self.stats.open.fetch_sub(1, Ordering::AcqRel);
                self.stats.closed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn on_io(&mut self, slot: usize, readable: bool, writable: bool, events: &mut Events) {
        let id = match self.slots.get(slot) {
            Some(s) if s.conn.is_some() => self.id(slot),
            _ => return, // closed earlier in this batch
        };
        let entry = &mut self.slots[slot];
        let Some(conn) = entry.conn.as_mut() else { return };
        if !entry.state.is_open() {
            match conn.drain(readable, writable) {
                Ok(true) => events.push((id, Event::Drained)),
                Ok(false) => {}
                Err(reason) => events.push((id, Event::Close(reason))),
            }
            return;
        }
        let service = &mut self.service;
        let before = conn.frame_counts();
        let result = conn.on_ready(writable, readable, |frame, reply| service.frame(id, frame, reply));
        let after = conn.frame_counts();
        self.stats.frames[usize::from(self.index)].add(after.0 - before.0, after.1 - before.1);
        self.event_loop.handled((after.0 - before.0) as usize);
        if conn.is_starved() && !entry.starved {
            entry.starved = true;
            self.starved.push(slot);
        }
        match result {
            Err(reason) => events.push((id, Event::Close(reason))),
            Ok(()) => self.watch(slot),
        }
    }

    /// Notes what an open connection waits for after a read: a new wait (another kind, or
    /// the same after a frame) starts its clock, and its deadline gets a timer unless an
    /// earlier one is armed.
    fn watch(&mut self, slot: usize) {
        let entry = &mut self.slots[slot];
        let Some(conn) = &entry.conn else { return };
        let (wait, frames) = (conn.waiting_for(), conn.frame_counts().0);
        if wait == entry.wait && frames == entry.frames_seen {
            return;
        }
        entry.wait = wait;
        entry.frames_seen = frames;
        // Only a wait with a deadline needs the time (the common case, whole frames and no
        // idle timeout, reads no clock).
        if self.timeouts.of(wait).is_some() {
            entry.wait_since = self.event_loop.now();
            self.arm_wait(slot);
        }
    }

    /// The deadline of the slot's current wait, if it has one.
    fn wait_deadline(&self, slot: usize) -> Option<Instant> {
        let entry = &self.slots[slot];
        self.timeouts.of(entry.wait).map(|timeout| entry.wait_since + timeout)
    }

    /// Arms a timer for the slot's wait deadline unless one at or before it is armed.
    fn arm_wait(&mut self, slot: usize) {
        let Some(deadline) = self.wait_deadline(slot) else { return };
        let entry = &mut self.slots[slot];
        if entry.wait_timer.is_none_or(|armed| deadline < armed) {
            entry.wait_timer = Some(deadline);
            self.event_loop.set_timer(deadline, WAIT_DUE | slot as u64);
        }
    }

    /// A wait timer fired for `slot` (perhaps an earlier connection's): closes the connection
    /// if its current wait is past its deadline, or arms the timer again for it.
    fn wait_due(&mut self, slot: usize, events: &mut Events) {
        let now = self.event_loop.now();
        let Some(entry) = self.slots.get_mut(slot) else { return };
        if entry.wait_timer.is_some_and(|armed| armed <= now) {
            entry.wait_timer = None;
        }
        if entry.conn.is_none() || !entry.state.is_open() {
            return;
        }
        match self.wait_deadline(slot) {
            Some(deadline) if deadline <= now => {
                let wait = self.slots[slot].wait;
                events.push((self.id(slot), Event::Close(CloseReason::TimedOut(wait))));
            }
            Some(_) => self.arm_wait(slot),
            None => {}
        }
    }

    fn retry_starved(&mut self, events: &mut Events) {
        self.starved_retry_set = false;
        for slot in std::mem::take(&mut self.starved) {
            self.slots[slot].starved = false;
            self.on_io(slot, false, false, events);
        }
    }

    /// Feeds `event` to `id`'s close protocol ([`ConnState::on`]) and does what it says: tells
    /// the service and counts the close, discards input, starts a drain with its deadline, or
    /// closes the socket.
    fn transition(&mut self, id: ConnId, event: Event) {
        let now = self.event_loop.now();
        let Some(slot) = self.slots.get(id.slot as usize).filter(|s| s.generation == id.generation) else {
            return;
        };
        let Some(conn) = &slot.conn else { return };
        let step = slot.state.on(event, conn.has_output(), now, self.close_linger);
        if let Some(reason) = step.tell {
            match reason {
                CloseReason::BadFrame(_) => self.stats.bad_frames.fetch_add(1, Ordering::Relaxed),
                CloseReason::OutputFull => self.stats.output_full.fetch_add(1, Ordering::Relaxed),
                CloseReason::TimedOut(Wait::Header) => {
                    self.stats.header_timeouts.fetch_add(1, Ordering::Relaxed)
                }
                CloseReason::TimedOut(Wait::Body) => self.stats.body_timeouts.fetch_add(1, Ordering::Relaxed),
                CloseReason::TimedOut(Wait::Idle) => self.stats.idle_timeouts.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
            self.service.closed(id, reason);
        }
        let slot = &mut self.slots[id.slot as usize];
        let Some(conn) = slot.conn.as_mut() else { return };
        if step.discard_input {
            conn.discard_input();
        }
        let starts_drain = slot.state.is_open() && !step.next.is_open();
        slot.state = step.next;
        match step.next {
            ConnState::Closed => self.close_now(id),
            ConnState::Draining { until, .. } if starts_drain => {
                if conn.start_drain().is_ok() {
                    self.event_loop.set_timer(until, LINGER_DUE | u64::from(id.slot));
                } else {
                    // It cannot be polled for writing: nothing would ever drain it.
                    self.close_now(id);
                }
            }
            ConnState::Open | ConnState::Draining { .. } => {}
        }
    }

    /// Closes the socket and frees the slot; the service has been told already.
    fn close_now(&mut self, id: ConnId) {
        let Some(slot) = self.slots.get_mut(id.slot as usize).filter(|s| s.generation == id.generation)
        else {
            return;
        };
        slot.state = ConnState::Closed;
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
            let Some(conn) = self.slots[slot].conn.as_mut() else { continue };
            conn.flush_blocking(|| clock.until(deadline));
            // Flushed (or out of time): nothing is left to drain.
            let id = self.id(slot);
            self.transition(id, Event::Close(CloseReason::Handler));
        }
    }
}
