//! lars-reporter: receives call statistics from agents and stores them in batches.
//!
//! Worker threads decode `ReportStatusRequest` (Lars msgid 3), `StatusReport` (native 0x131)
//! and `CallStats` (native 0x130, from agents before `StatusReport`) into rows and put them on
//! bounded queues, one per writer thread (the original's `db_thread_cnt`); when a queue is full
//! the rows are dropped and counted, so the reactor never blocks on the store. A row's queue is
//! chosen by its key (route, host, caller), so the rows of one key are stored by one writer in
//! the order they came: a later count never loses to an earlier one that another writer
//! happened to commit last. Each writer takes up to `batch_max` rows at a time and stores them
//! in one call (one transaction of multi-row upserts on MySQL). A store outage is retried with backoff while new rows keep queueing, up to the limit.
//! Nothing is ever sent back to an agent, as in the original.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use lars_core::wire::native::{self, Role};
use lars_core::wire::{Decode, Frame, MsgId, lars};

use crate::reactor::{ConnId, Control, Sender, ServerConfig, ServerHandle, Service, TcpServer};
use crate::store::{StatRow, StatsStore};
use crate::time::Clock;

/// How lars-reporter runs.
#[derive(Debug, Clone)]
pub struct ReporterConfig {
    /// The TCP server (`[reactor]`).
    pub server: ServerConfig,
    /// Writer threads (`[reporter] db_thread_cnt`).
    pub writers: usize,
    /// Rows the queue holds before new ones are dropped.
    pub queue_capacity: usize,
    /// Rows per store call at most.
    pub batch_max: usize,
    /// The shared secret agents must prove, if any, and whether Lars-codec agents are served
    /// anyway (`[auth]`). An authenticated agent's rows are stored under the identity it
    /// proved, whatever `caller` its frames say.
    pub auth: crate::auth::AuthConfig,
}

impl ReporterConfig {
    /// Defaults on `server`: 3 writers, 100,000 queued rows, batches of 1,000.
    pub fn new(server: ServerConfig) -> Self {
        let auth = crate::auth::AuthConfig::default();
        ReporterConfig { server, writers: 3, queue_capacity: 100_000, batch_max: 1000, auth }
    }
}

/// lars-reporter's counters.
#[derive(Debug, Default)]
pub struct ReporterStats {
    /// Statistics frames received.
    pub frames: AtomicU64,
    /// Rows received.
    pub rows_received: AtomicU64,
    /// Rows stored.
    pub rows_stored: AtomicU64,
    /// Rows dropped because the queue was full.
    pub rows_dropped: AtomicU64,
    /// Store calls that failed (and were retried).
    pub store_errors: AtomicU64,
    /// Batches stored.
    pub batches: AtomicU64,
    /// Frames that do not decode or that lars-reporter does not take.
    pub bad_requests: AtomicU64,
    /// Frames from an authenticated agent whose `caller` was another identity: their rows
    /// were stored under the one it proved.
    pub callers_rewritten: AtomicU64,
    /// Handshakes: connections authenticated and refused.
    pub auth: Arc<crate::auth::AuthStats>,
}

impl ReporterStats {
    /// Every counter, named, for a `StatsResponse`.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("frames", self.frames.load(Ordering::Relaxed)),
            ("rows_received", self.rows_received.load(Ordering::Relaxed)),
            ("rows_stored", self.rows_stored.load(Ordering::Relaxed)),
            ("rows_dropped", self.rows_dropped.load(Ordering::Relaxed)),
            ("store_errors", self.store_errors.load(Ordering::Relaxed)),
            ("batches", self.batches.load(Ordering::Relaxed)),
            ("bad_requests", self.bad_requests.load(Ordering::Relaxed)),
            ("callers_rewritten", self.callers_rewritten.load(Ordering::Relaxed)),
        ]
        .into_iter()
        .chain(self.auth.counters())
        .collect()
    }
}

/// A running lars-reporter.
pub struct Reporter {
    server: Option<ServerHandle<()>>,
    stats: Arc<ReporterStats>,
    stop: Arc<AtomicBool>,
    writers: Vec<JoinHandle<()>>,
}

impl Reporter {
    /// Starts the server and `config.writers` writer threads, each with the store `make_store`
    /// builds for it.
    pub fn start(
        config: ReporterConfig,
        mut make_store: impl FnMut(usize) -> Box<dyn StatsStore>,
    ) -> io::Result<Reporter> {
        let stats = Arc::new(ReporterStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let count = config.writers.max(1);
        let mut writers = Vec::new();
        let mut queues = Vec::with_capacity(count);
        for index in 0..count {
            let (queue, rows) = sync_channel(config.queue_capacity.div_ceil(count).max(1));
            queues.push(queue);
            let writer = Writer {
                store: make_store(index),
                rows,
                stats: Arc::clone(&stats),
                stop: Arc::clone(&stop),
                batch_max: config.batch_max.max(1),
            };
            writers.push(
                std::thread::Builder::new()
                    .name(format!("lars-reporter-writer-{index}"))
                    .spawn(move || writer.run())?,
            );
        }
        let server_stats = crate::dns::ServerStatsCell::default();
        let auth = Arc::new(config.auth);
        let server = TcpServer::start(config.server, |_| ReporterWorker {
            gate: crate::auth::Gate::new(
                Arc::clone(&auth),
                Arc::clone(&stats.auth),
                Role::Reporter,
                "lars-reporter",
            ),
            queues: queues.clone(),
            stats: Arc::clone(&stats),
            server_stats: Arc::clone(&server_stats),
        })?;
        let _ = server_stats.set(server.shared_stats());
        Ok(Reporter { server: Some(server), stats, stop, writers })
    }

    /// Where lars-reporter listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.as_ref().map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), ServerHandle::local_addr)
    }

    /// lars-reporter's counters.
    pub fn stats(&self) -> &ReporterStats {
        &self.stats
    }

    /// The server's counters (connections, refusals, frames).
    pub fn server_stats(&self) -> Option<&crate::reactor::ServerStats> {
        self.server.as_ref().map(ServerHandle::stats)
    }

    /// Stops taking connections, stores what is queued, and stops the writers.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        // The server first: its workers hold the queue's senders, so once they are gone the
        // writers drain what is left and see the queue close.
        drop(self.server.take());
        self.stop.store(true, Ordering::Release);
        for writer in self.writers.drain(..) {
            let _ = writer.join();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop_all();
    }
}

struct ReporterWorker {
    gate: crate::auth::Gate,
    /// One per writer.
    queues: Vec<SyncSender<StatRow>>,
    stats: Arc<ReporterStats>,
    server_stats: crate::dns::ServerStatsCell,
}

impl ReporterWorker {
    fn enqueue(&self, row: StatRow) {
        self.stats.rows_received.fetch_add(1, Ordering::Relaxed);
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&row.key(), &mut hasher);
        let queue = &self.queues[std::hash::Hasher::finish(&hasher) as usize % self.queues.len()];
        match queue.try_send(row) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.rows_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn bad_request(&self) -> Control {
        self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
        Control::Close
    }

    /// The caller a report's rows are stored under: the identity its connection
    /// proved, if it did (a frame that claims another is counted), else what the frame says.
    fn caller(&self, proved: Option<u32>, claimed: u32) -> u32 {
        match proved {
            Some(node) if node != claimed => {
                let rewritten = self.stats.callers_rewritten.fetch_add(1, Ordering::Relaxed) + 1;
                if rewritten.is_power_of_two() {
                    let (node_ip, claimed_ip) =
                        (std::net::Ipv4Addr::from_bits(node), std::net::Ipv4Addr::from_bits(claimed));
                    eprintln!(
                        "lars-reporter: agent {node_ip} sent statistics as caller {claimed_ip}; stored as {node_ip} ({rewritten} such frames so far)"
                    );
                }
                node
            }
            Some(node) => node,
            None => claimed,
        }
    }
}

impl Service for ReporterWorker {
    type Task = ();

    fn connected(&mut self, conn: ConnId, peer: SocketAddr, _conns: &mut crate::reactor::Conns<'_>) {
        self.gate.connected(conn, peer);
    }

    fn closed(&mut self, conn: ConnId, _reason: crate::reactor::CloseReason) {
        self.gate.closed(conn);
    }

    fn frame(&mut self, conn: ConnId, frame: Frame<'_>, reply: &mut Sender<'_>) -> Control {
        let proved = match self.gate.screen(conn, &frame, reply) {
            crate::auth::Screened::Done(control) => return control,
            crate::auth::Screened::Pass(proved) => proved,
        };
        // A report without a time is stamped on arrival (a gateway may have no clock).
        let arrival = Clock::unix_secs();
        match frame.msgid {
            MsgId::ReportStatusRequest => {
                let Ok(report) = lars::ReportStatusRequest::parse(frame.body) else {
                    return self.bad_request();
                };
                self.stats.frames.fetch_add(1, Ordering::Relaxed);
                let ts = if report.ts == 0 { arrival } else { u64::from(report.ts) };
                // An authenticated connection may speak Lars too: its identity still holds.
                let caller = self.caller(proved, report.caller as u32);
                for result in &report.results {
                    self.enqueue(StatRow {
                        modid: report.modid,
                        cmdid: report.cmdid,
                        host: SocketAddr::V4(result.host),
                        caller,
                        succ: result.succ,
                        err: result.err,
                        ts,
                        overload: result.overload,
                    });
                }
            }
            MsgId::StatusReport => {
                let Ok(report) = native::StatusReport::parse(frame.body) else { return self.bad_request() };
                self.stats.frames.fetch_add(1, Ordering::Relaxed);
                let caller = self.caller(proved, report.caller);
                let ts = if report.ts == 0 { arrival } else { u64::from(report.ts) };
                for entry in &report.entries {
                    // `ServerCallStatus` holds the host's calls since its last state change.
                    self.enqueue(StatRow {
                        modid: entry.stats.modid,
                        cmdid: entry.stats.cmdid,
                        host: entry.stats.host,
                        caller,
                        succ: entry.window_succ,
                        err: entry.window_err,
                        ts,
                        overload: entry.stats.overloaded,
                    });
                }
            }
            // From agents that predate `StatusReport`: the period's counts are all there is.
            MsgId::NativeCallStats => {
                let Ok(stats) = native::CallStats::parse(frame.body) else { return self.bad_request() };
                self.stats.frames.fetch_add(1, Ordering::Relaxed);
                let caller = self.caller(proved, stats.caller);
                let ts = if stats.ts == 0 { arrival } else { u64::from(stats.ts) };
                for entry in &stats.entries {
                    self.enqueue(StatRow {
                        modid: entry.modid,
                        cmdid: entry.cmdid,
                        host: entry.host,
                        caller,
                        succ: entry.succ,
                        err: entry.err,
                        ts,
                        overload: entry.overloaded,
                    });
                }
            }
            MsgId::StatsRequest => {
                let Ok(request) = native::StatsRequest::parse(frame.body) else { return self.bad_request() };
                return crate::dns::answer_stats(
                    request,
                    Role::Reporter,
                    self.stats.counters(),
                    &self.server_stats,
                    reply,
                );
            }
            MsgId::Hello => {
                if native::Hello::parse(frame.body).is_err() {
                    return self.bad_request();
                }
                let hello = native::Hello {
                    version: native::PROTOCOL_VERSION,
                    role: Role::Reporter,
                    node: 0,
                    max_body: lars_core::wire::frame::MAX_BODY,
                };
                if reply.send(MsgId::Hello, &hello).is_err() {
                    return Control::Close;
                }
            }
            // Echoed as the five bytes at most it decodes to, not as whatever body came.
            MsgId::Heartbeat => {
                let Ok(heartbeat) = native::Heartbeat::parse(frame.body) else { return self.bad_request() };
                if reply.send(MsgId::Heartbeat, &heartbeat).is_err() {
                    return Control::Close;
                }
            }
            _ => return self.bad_request(),
        }
        Control::Continue
    }
}

struct Writer {
    store: Box<dyn StatsStore>,
    rows: Receiver<StatRow>,
    stats: Arc<ReporterStats>,
    stop: Arc<AtomicBool>,
    batch_max: usize,
}

impl Writer {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.batch_max);
        loop {
            let closed = self.fill(&mut batch);
            let idle = batch.is_empty();
            if !idle {
                self.store_with_retry(&batch);
                batch.clear();
            }
            // Stopping: a wait that brought nothing means the queue is drained.
            if closed || (self.stop.load(Ordering::Acquire) && idle) {
                return;
            }
        }
    }

    /// Takes up to `batch_max` rows, waiting a little for the first. Returns whether the queue
    /// is closed.
    fn fill(&self, batch: &mut Vec<StatRow>) -> bool {
        let rows = &self.rows;
        match rows.recv_timeout(Duration::from_millis(50)) {
            Ok(row) => batch.push(row),
            Err(RecvTimeoutError::Timeout) => return false,
            Err(RecvTimeoutError::Disconnected) => return true,
        }
        while batch.len() < self.batch_max {
            match rows.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        false
    }

    /// Stores a batch, retrying with backoff while the store fails (but giving up at shutdown).
    fn store_with_retry(&mut self, batch: &[StatRow]) {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.store.store(batch) {
                Ok(()) => {
                    self.stats.rows_stored.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    if self.stats.store_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("lars-reporter: {e}; retrying");
                    }
                    if self.stop.load(Ordering::Acquire) {
                        self.stats.rows_dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        return;
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}
