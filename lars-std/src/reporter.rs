//! lars-reporter: receives call statistics from agents and stores them in batches.
//!
//! Worker threads decode `ReportStatusRequest` (Lars msgid 3), `StatusReport` (native 0x131)
//! and `CallStats` (native 0x130, from agents before `StatusReport`) into rows and put them on
//! bounded queues, one per writer thread (the original's `db_thread_cnt`); when a queue is full
//! the rows are dropped and counted, so the reactor never blocks on the store. A row's queue is
//! chosen by its key (route, host, caller), so the rows of one key are stored by one writer in
//! the order they came: a later count never loses to an earlier one that another writer
//! happened to commit last. Each writer takes up to `batch_max` rows at a time and stores them
//! in one call (one transaction of multi-row upserts on MySQL). A store outage is retried with
//! backoff while new rows keep queueing, up to the limit.
//!
//! A stop stores everything accepted: the server goes first (its workers hold the queues'
//! senders), then each writer stores what its queue holds until the queue is empty and closed.
//! A store that fails while stopping is not waited for: that writer counts the batch and the
//! rest of its queue as `rows_unstored` and stops. A writer still busy after
//! [`ReporterConfig::stop_timeout`] (a hung store) is left behind, and the rows it had not
//! stored are counted the same way; [`Reporter::shutdown`] returns that count and logs it.
//! Nothing is ever sent back to an agent, as in the original.
//!
//! With a history store (`Reporter::start_with_history`; MySQL), the period counts of native
//! reports also become per-minute call history, and the agents' `DecisionReport`s are kept:
//! see `reporter/history.rs`.

mod history;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{ConfigError, Ini};

use lars_core::backoff::Backoff;
use lars_core::wire::native::{self, Role};
use lars_core::wire::{Decode, Frame, MsgId, lars};

use crate::reactor::{ConnId, Control, Sender, ServerConfig, ServerHandle, Service, TcpServer};
use crate::store::history::{DecisionRow, HistoryStore};
use crate::store::{StatRow, StatsStore};
use crate::time::Clock;
pub use history::{HistoryConfig, HistoryStats};

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
    /// Where to serve Prometheus metrics (`--metrics`), if anywhere.
    pub metrics: Option<SocketAddr>,
    /// The call history's retention and bounds (used with a history store).
    pub history: HistoryConfig,
    /// How long a stop waits for the writers to store what is queued.
    pub stop_timeout: Duration,
}

/// The most writer threads (`[reporter] db_thread_cnt`): each holds a store connection.
pub const MAX_WRITERS: usize = 64;

impl ReporterConfig {
    /// Defaults on `server`: 3 writers, 100,000 queued rows, batches of 1,000, a stop that
    /// waits 10 s at most.
    pub fn new(server: ServerConfig) -> Self {
        ReporterConfig {
            server,
            writers: 3,
            queue_capacity: 100_000,
            batch_max: 1000,
            stop_timeout: Duration::from_secs(10),
            auth: crate::auth::AuthConfig::default(),
            metrics: None,
            history: HistoryConfig::default(),
        }
    }

    /// Reads `[reporter] db_thread_cnt` (3 by default), which must be from 1 to
    /// [`MAX_WRITERS`]; an error names where the value came from.
    pub fn writers_from(ini: &Ini) -> Result<usize, ConfigError> {
        let writers = ini.get("reporter", "db_thread_cnt", 3usize)?;
        if (1..=MAX_WRITERS).contains(&writers) {
            Ok(writers)
        } else {
            Err(ini.error("reporter", "db_thread_cnt", format!("{writers} writers: give 1 to {MAX_WRITERS}")))
        }
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
    /// Rows accepted but not stored because the store failed or hung while stopping.
    pub rows_unstored: AtomicU64,
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
    /// Rows queued for the writers now.
    pub queued: AtomicU64,
    /// Writers whose last store call failed (they retry).
    pub failing_writers: AtomicU64,
    /// Decisions received from agents (kept only with a history store).
    pub decisions_received: AtomicU64,
}

impl ReporterStats {
    /// Every counter, named, for a `StatsResponse`.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        counters![
            self;
            frames, rows_received, rows_stored, rows_dropped, rows_unstored, store_errors, batches,
            bad_requests, callers_rewritten, queued,
            "store_up" => u64::from(self.failing_writers.load(Ordering::Relaxed) == 0),
            decisions_received,
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
    stop_timeout: Duration,
    writers: Vec<JoinHandle<()>>,
    metrics: Option<crate::metrics::MetricsServer>,
    history: Option<(history::HistoryWriter, history::HistorySender)>,
    /// Each writer says here that it has finished, so a stop can wait with a deadline (in a
    /// mutex only so that the reporter can be shared between threads).
    finished: std::sync::Mutex<Receiver<()>>,
}

impl Reporter {
    /// Starts the server and `config.writers` writer threads, each with the store `make_store`
    /// builds for it.
    pub fn start(
        config: ReporterConfig,
        make_store: impl FnMut(usize) -> Box<dyn StatsStore>,
    ) -> io::Result<Reporter> {
        let stores = (0..config.writers.max(1)).map(make_store).collect();
        Reporter::open(config, stores, None)
    }

    /// Starts the server and one writer thread per store (`config.writers` is not looked at).
    pub fn start_with_stores(
        config: ReporterConfig,
        stores: Vec<Box<dyn StatsStore>>,
    ) -> io::Result<Reporter> {
        Reporter::open(config, stores, None)
    }

    /// [`Reporter::start`], also keeping call history and the agents' decisions in `history`.
    pub fn start_with_history(
        config: ReporterConfig,
        make_store: impl FnMut(usize) -> Box<dyn StatsStore>,
        history: Option<Box<dyn HistoryStore>>,
    ) -> io::Result<Reporter> {
        let stores = (0..config.writers.max(1)).map(make_store).collect();
        Reporter::open(config, stores, history)
    }

    fn open(
        config: ReporterConfig,
        stores: Vec<Box<dyn StatsStore>>,
        history: Option<Box<dyn HistoryStore>>,
    ) -> io::Result<Reporter> {
        if stores.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "lars-reporter needs a store"));
        }
        let history =
            history.map(|store| history::HistoryWriter::start(config.history, store)).transpose()?;
        let history_sender = history.as_ref().map(|(_, sender)| sender.clone());
        let stats = Arc::new(ReporterStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let count = stores.len();
        let (finish, finished) = std::sync::mpsc::channel();
        let mut writers = Vec::new();
        let mut queues = Vec::with_capacity(count);
        for (index, store) in stores.into_iter().enumerate() {
            let (queue, rows) = sync_channel(config.queue_capacity.div_ceil(count).max(1));
            queues.push(queue);
            let writer = Writer {
                store,
                rows,
                stats: Arc::clone(&stats),
                stop: Arc::clone(&stop),
                batch_max: config.batch_max.max(1),
                finish: finish.clone(),
            };
            writers.push(
                std::thread::Builder::new()
                    .name(format!("lars-reporter-writer-{index}"))
                    .spawn(move || writer.run())?,
            );
        }
        let server_stats = crate::daemon::ServerStatsCell::default();
        let auth = Arc::new(config.auth);
        let server = TcpServer::start(config.server, |_| ReporterWorker {
            gate: crate::auth::Gate::new(Arc::clone(&auth), Arc::clone(&stats.auth), Role::Reporter),
            queues: queues.clone(),
            stats: Arc::clone(&stats),
            server_stats: Arc::clone(&server_stats),
            history: history_sender.clone(),
        })?;
        let _ = server_stats.set(server.shared_stats());
        let (page_stats, page_server) = (Arc::clone(&stats), server.shared_stats());
        let metrics = crate::metrics::MetricsServer::start_if(config.metrics, move || {
            let history = history_sender.as_ref().map(|h| h.stats());
            crate::metrics::reporter_page(&page_stats, &page_server, history)
        })?;
        Ok(Reporter {
            server: Some(server),
            stats,
            stop,
            stop_timeout: config.stop_timeout,
            writers,
            finished: std::sync::Mutex::new(finished),
            metrics,
            history,
        })
    }

    /// Where lars-reporter listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.as_ref().map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), ServerHandle::local_addr)
    }

    /// Where Prometheus metrics are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(crate::metrics::MetricsServer::local_addr)
    }

    /// lars-reporter's counters.
    pub fn stats(&self) -> &Arc<ReporterStats> {
        &self.stats
    }

    /// The server's counters (connections, refusals, frames).
    pub fn server_stats(&self) -> Option<&crate::reactor::ServerStats> {
        self.server.as_ref().map(ServerHandle::stats)
    }

    /// The call history's counters, when it keeps one.
    pub fn history_stats(&self) -> Option<&HistoryStats> {
        self.history.as_ref().map(|(_, sender)| sender.stats())
    }

    /// Stops taking connections, stores what is queued (waiting `stop_timeout` at most), and
    /// stops the writers. Returns the rows accepted that were not stored, which it also logs.
    pub fn shutdown(mut self) -> u64 {
        self.stop_all()
    }

    fn stop_all(&mut self) -> u64 {
        if self.writers.is_empty() {
            return 0;
        }
        // The server first: its workers hold the queue's senders, so once they are gone the
        // writers drain what is left and see the queue close.
        drop(self.server.take());
        self.stop.store(true, Ordering::Release);
        let clock = Clock::new();
        let deadline =
            clock.now() + lars_core::time::Duration::from_micros(self.stop_timeout.as_micros() as u64);
        let mut finished = 0;
        while finished < self.writers.len() {
            let left = clock.until(deadline);
            let finished_writers = self.finished.get_mut().unwrap_or_else(|p| p.into_inner());
            match finished_writers.recv_timeout(left) {
                Ok(()) => finished += 1,
                Err(_) => break,
            }
        }
        if let Some((mut writer, _)) = self.history.take() {
            writer.shutdown();
        }
        let stuck = self.writers.len() - finished;
        for writer in std::mem::take(&mut self.writers) {
            // A writer stuck in its store is left behind (it ends with the process).
            if writer.is_finished() {
                let _ = writer.join();
            }
        }
        let stats = &self.stats;
        let load = |counter: &AtomicU64| counter.load(Ordering::Acquire);
        if stuck > 0 {
            // What the stuck writers still hold: everything accepted that no one accounted for.
            let accounted = load(&stats.rows_stored) + load(&stats.rows_dropped) + load(&stats.rows_unstored);
            let held = load(&stats.rows_received).saturating_sub(accounted);
            stats.rows_unstored.fetch_add(held, Ordering::AcqRel);
            log::warn!(
                "{stuck} writer(s) still waiting on the store after {} ms; giving up on them",
                self.stop_timeout.as_millis()
            );
        }
        let unstored = load(&stats.rows_unstored);
        if unstored > 0 {
            log::warn!("{unstored} rows received could not be stored before the stop");
        }
        unstored
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
    server_stats: crate::daemon::ServerStatsCell,
    history: Option<history::HistorySender>,
}

impl ReporterWorker {
    fn enqueue(&self, row: StatRow) {
        self.stats.rows_received.fetch_add(1, Ordering::Relaxed);
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&row.key(), &mut hasher);
        let queue = &self.queues[std::hash::Hasher::finish(&hasher) as usize % self.queues.len()];
        match queue.try_send(row) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.rows_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One host of a native report: its period's calls go to the call history (if kept), and
    /// `stored` (successes, failures) to `ServerCallStatus` under `caller`.
    fn take_host(&self, host: &native::HostStats, stored: (u32, u32), caller: u32, ts: u64) {
        if let Some(history) = &self.history {
            history.calls(
                (host.modid, host.cmdid),
                host.host,
                ts,
                host.succ,
                host.err,
                host.overload,
                host.overloaded,
            );
        }
        let (succ, err) = stored;
        self.enqueue(StatRow {
            modid: host.modid,
            cmdid: host.cmdid,
            host: host.host,
            caller,
            succ,
            err,
            ts,
            overload: host.overloaded,
        });
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
                    log::warn!(
                        "agent {node_ip} sent statistics as caller {claimed_ip}; stored as {node_ip} ({rewritten} such frames so far)"
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
        let stamped = |ts: u32| if ts == 0 { arrival } else { u64::from(ts) };
        match frame.msgid {
            MsgId::ReportStatusRequest => {
                let Ok(report) = lars::ReportStatusRequest::parse(frame.body) else {
                    return self.bad_request();
                };
                self.stats.frames.fetch_add(1, Ordering::Relaxed);
                let ts = stamped(report.ts);
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
                let ts = stamped(report.ts);
                for entry in &report.entries {
                    // `ServerCallStatus` holds the host's calls since its last state change.
                    self.take_host(&entry.stats, (entry.window_succ, entry.window_err), caller, ts);
                }
            }
            // From agents that predate `StatusReport`: the period's counts are all there is.
            MsgId::NativeCallStats => {
                let Ok(stats) = native::CallStats::parse(frame.body) else { return self.bad_request() };
                self.stats.frames.fetch_add(1, Ordering::Relaxed);
                let caller = self.caller(proved, stats.caller);
                let ts = stamped(stats.ts);
                for entry in &stats.entries {
                    self.take_host(&entry, (entry.succ, entry.err), caller, ts);
                }
            }
            MsgId::DecisionReport => {
                let Ok(report) = native::DecisionReport::parse(frame.body) else { return self.bad_request() };
                self.stats.frames.fetch_add(1, Ordering::Relaxed);
                let ts_ms = stamped(report.ts) * 1000;
                for d in &report.entries {
                    self.stats.decisions_received.fetch_add(1, Ordering::Relaxed);
                    if let Some(history) = &self.history {
                        history.decision(DecisionRow {
                            at_ms: ts_ms.saturating_sub(u64::from(d.age_ms)),
                            modid: d.modid,
                            cmdid: d.cmdid,
                            host: d.host,
                            caller: report.caller,
                            change: d.change.as_str().to_string(),
                            reason: d.reason.to_string(),
                        });
                    }
                }
            }
            MsgId::StatsRequest => {
                let Ok(request) = native::StatsRequest::parse(frame.body) else { return self.bad_request() };
                let mut counters = self.stats.counters();
                if let Some(history) = &self.history {
                    counters.extend(history.stats().counters());
                }
                return crate::daemon::answer_stats(
                    request,
                    Role::Reporter,
                    counters,
                    &self.server_stats,
                    reply,
                );
            }
            MsgId::Hello | MsgId::Heartbeat => {
                return match crate::daemon::answer_control(&frame, Role::Reporter, reply) {
                    Some(Ok(control)) => control,
                    _ => self.bad_request(),
                };
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
    finish: std::sync::mpsc::Sender<()>,
}

impl Writer {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.batch_max);
        loop {
            let closed = self.fill(&mut batch);
            self.stats.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
            let idle = batch.is_empty();
            if !idle {
                let stored = self.store_with_retry(&batch);
                batch.clear();
                if !stored {
                    // Stopping, and the store failed: what is queued cannot be stored either.
                    self.give_up();
                    break;
                }
            }
            // Stopping: a wait that brought nothing means the queue is drained.
            if closed || (self.stop.load(Ordering::Acquire) && idle) {
                break;
            }
        }
        let _ = self.finish.send(());
    }

    /// Counts what the queue holds as not stored, up to its close.
    fn give_up(&self) {
        let mut left = 0u64;
        while let Ok(_row) = self.rows.recv_timeout(Duration::from_millis(50)) {
            left += 1;
        }
        self.stats.rows_unstored.fetch_add(left, Ordering::AcqRel);
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

    /// Stores a batch, retrying with backoff while the store fails. Returns false when it
    /// gave up because the reporter is stopping (the batch is counted as not stored).
    fn store_with_retry(&mut self, batch: &[StatRow]) -> bool {
        let mut backoff = Backoff::STORE_RETRY;
        let mut failing = false;
        loop {
            let result = self.store.store(batch);
            if result.is_ok() == failing {
                // Counted while this writer is failing, so `store_up` is 0 while any writer is.
                let failing_writers = &self.stats.failing_writers;
                if failing {
                    failing_writers.fetch_sub(1, Ordering::Relaxed)
                } else {
                    failing_writers.fetch_add(1, Ordering::Relaxed)
                };
                failing = !failing;
            }
            match result {
                Ok(()) => {
                    self.stats.rows_stored.fetch_add(batch.len() as u64, Ordering::AcqRel);
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(e) => {
                    if self.stats.store_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        log::error!("{e}; retrying");
                    }
                    if self.stop.load(Ordering::Acquire) {
                        log::warn!("stopping: {e}");
                        self.stats.rows_unstored.fetch_add(batch.len() as u64, Ordering::AcqRel);
                        self.stats.failing_writers.fetch_sub(1, Ordering::Relaxed);
                        return false;
                    }
                    let delay = crate::time::to_std(backoff.nominal());
                    backoff.record_failure();
                    // In steps, so that a stop does not wait out the backoff.
                    let mut slept = Duration::ZERO;
                    while slept < delay && !self.stop.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(50));
                        slept += Duration::from_millis(50);
                    }
                }
            }
        }
    }
}
