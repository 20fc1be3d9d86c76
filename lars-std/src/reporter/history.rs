//! lars-reporter's call history and decision log: per-host per-minute sums of the agents'
//! period counts, and the decisions agents send, written to a [`HistoryStore`] by one thread.
//!
//! The reactor's workers hand over what they decode through a bounded queue ([`HistorySender`];
//! full means dropped and counted, never a blocked worker). The writer sums calls per (route,
//! host, minute) in memory and writes a minute once it is over (5 s of grace for late
//! reports; a report later still adds to the stored row, as upserts add up). So the store sees
//! one row per host per minute whatever the number of agents and reports: 10,000 hosts cost
//! 10,000 / 60 ≈ 167 rows a second. What the writer holds is bounded too (`pending_max` rows,
//! `decisions_max` decisions; beyond, the oldest are dropped and counted), so a store outage
//! costs history, never memory. Every minute it prunes rows older than the retentions.
//!
//! The minute being over is judged by the later of the wall clock and the newest report's
//! time, so an agent whose clock runs ahead cannot keep minutes open for ever, and a replay of
//! old reports (the benchmark's) closes its minutes as it goes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::store::RouteKey;
use crate::store::history::{DecisionRow, HistoryRow, HistoryStore};
use crate::time::{Clock, Stopwatch};

/// How the history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Call history older than this is pruned (`[reporter] history_retention_hours`, 7 days).
    pub retention: Duration,
    /// Decisions older than this are pruned (`[reporter] decision_retention_hours`, 7 days).
    pub decision_retention: Duration,
    /// Inputs the queue from the workers holds.
    pub queue: usize,
    /// Rows (host-minutes) held before the oldest are dropped.
    pub pending_max: usize,
    /// Decisions held before the oldest are dropped.
    pub decisions_max: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            retention: Duration::from_secs(7 * 24 * 3600),
            decision_retention: Duration::from_secs(7 * 24 * 3600),
            queue: 100_000,
            pending_max: 200_000,
            decisions_max: 100_000,
        }
    }
}

/// Seconds after a minute ends before it is written.
const GRACE_SECS: u64 = 5;
/// How often the writer looks for minutes to write.
const TICK: Duration = Duration::from_secs(1);
/// How often it prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The history's counters.
#[derive(Debug, Default)]
pub struct HistoryStats {
    /// History rows (host-minutes) written.
    pub rows_written: AtomicU64,
    /// History rows dropped (queue or pending rows full).
    pub rows_dropped: AtomicU64,
    /// Rows held, not yet written.
    pub rows_pending: AtomicU64,
    /// Decisions stored.
    pub decisions_stored: AtomicU64,
    /// Decisions dropped (queue full, or too many held while the store failed).
    pub decisions_dropped: AtomicU64,
    /// Rows pruned by age.
    pub pruned: AtomicU64,
    /// Store calls that failed (and are retried).
    pub store_errors: AtomicU64,
}

impl HistoryStats {
    /// Every counter, named, for `lars stats` and the metrics page.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("history_rows_written", self.rows_written.load(Ordering::Relaxed)),
            ("history_rows_dropped", self.rows_dropped.load(Ordering::Relaxed)),
            ("history_rows_pending", self.rows_pending.load(Ordering::Relaxed)),
            ("decisions_stored", self.decisions_stored.load(Ordering::Relaxed)),
            ("decisions_dropped", self.decisions_dropped.load(Ordering::Relaxed)),
            ("history_pruned", self.pruned.load(Ordering::Relaxed)),
            ("history_store_errors", self.store_errors.load(Ordering::Relaxed)),
        ]
    }
}

/// What a worker hands to the writer.
enum Input {
    /// A period's calls, and the report's time.
    Calls(HistoryRow, u64),
    Decision(DecisionRow),
}

/// A worker's end of the queue.
#[derive(Clone)]
pub(crate) struct HistorySender {
    queue: SyncSender<Input>,
    stats: Arc<HistoryStats>,
}

impl HistorySender {
    /// A host's calls in one period that ended at Unix time `ts`.
    #[allow(clippy::too_many_arguments)] // the fields of one row, named at the call
    pub(crate) fn calls(
        &self,
        route: RouteKey,
        host: SocketAddr,
        ts: u64,
        succ: u32,
        err: u32,
        overload: u32,
        overloaded: bool,
    ) {
        let row = HistoryRow {
            succ: u64::from(succ),
            err: u64::from(err),
            overload: u64::from(overload),
            overloaded,
            ..HistoryRow::new(route, host, ts / 60 * 60)
        };
        if self.queue.try_send(Input::Calls(row, ts)).is_err() {
            self.stats.rows_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A decision an agent sent.
    pub(crate) fn decision(&self, row: DecisionRow) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(Input::Decision(row))
        {
            self.stats.decisions_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn stats(&self) -> &HistoryStats {
        &self.stats
    }
}

/// The running writer. Dropping it (after every sender is gone) writes what it holds.
pub(crate) struct HistoryWriter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HistoryWriter {
    /// Starts the writer thread on `store`.
    pub(crate) fn start(
        config: HistoryConfig,
        store: Box<dyn HistoryStore>,
    ) -> std::io::Result<(HistoryWriter, HistorySender)> {
        let (queue, inputs) = sync_channel(config.queue.max(1));
        let stats = Arc::new(HistoryStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut state = State {
            config,
            store,
            stats: Arc::clone(&stats),
            pending: BTreeMap::new(),
            decisions: Vec::new(),
            newest: 0,
        };
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("lars-reporter-history".into())
            .spawn(move || state.run(&inputs, &thread_stop))?;
        Ok((HistoryWriter { stop, thread: Some(thread) }, HistorySender { queue, stats }))
    }

    /// Writes what is held (the minute under way too) and stops.
    pub(crate) fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HistoryWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct State {
    config: HistoryConfig,
    store: Box<dyn HistoryStore>,
    stats: Arc<HistoryStats>,
    /// Rows being summed, by minute first so that the oldest are written (or dropped) first.
    pending: BTreeMap<(u64, RouteKey, SocketAddr), HistoryRow>,
    decisions: Vec<DecisionRow>,
    /// The newest report's time seen, in Unix seconds.
    newest: u64,
}

impl State {
    fn run(&mut self, inputs: &Receiver<Input>, stop: &AtomicBool) {
        let mut since_tick = Stopwatch::start();
        let mut since_prune: Option<Stopwatch> = None;
        loop {
            let closed = match inputs.recv_timeout(TICK) {
                Ok(input) => {
                    self.take(input);
                    // Everything queued now, without waiting.
                    while let Ok(input) = inputs.try_recv() {
                        self.take(input);
                    }
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            let stopping = closed || stop.load(Ordering::Acquire);
            if since_tick.elapsed() >= TICK || stopping {
                since_tick = Stopwatch::start();
                let ok = self.write(stopping);
                if ok && since_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                    self.prune();
                    since_prune = Some(Stopwatch::start());
                }
            }
            if stopping {
                if !self.pending.is_empty() || !self.decisions.is_empty() {
                    // The store failed at shutdown: what it could not take is lost, and said.
                    self.stats.rows_dropped.fetch_add(self.pending.len() as u64, Ordering::Relaxed);
                    self.stats.decisions_dropped.fetch_add(self.decisions.len() as u64, Ordering::Relaxed);
                }
                return;
            }
        }
    }

    fn take(&mut self, input: Input) {
        match input {
            Input::Calls(row, ts) => {
                self.newest = self.newest.max(ts);
                let key = (row.minute, (row.modid, row.cmdid), row.host);
                if let Some(held) = self.pending.get_mut(&key) {
                    held.add(&row);
                    return;
                }
                if self.pending.len() >= self.config.pending_max {
                    // The oldest minute's rows go first: they are the most likely written already
                    // by a replica, and the least looked at.
                    self.pending.pop_first();
                    self.stats.rows_dropped.fetch_add(1, Ordering::Relaxed);
                }
                self.pending.insert(key, row);
            }
            Input::Decision(row) => {
                if self.decisions.len() >= self.config.decisions_max {
                    self.decisions.remove(0);
                    self.stats.decisions_dropped.fetch_add(1, Ordering::Relaxed);
                }
                self.decisions.push(row);
            }
        }
        self.stats.rows_pending.store(self.pending.len() as u64, Ordering::Relaxed);
    }

    /// Writes the minutes that are over (all of them with `everything`) and the decisions;
    /// returns whether the store took them.
    fn write(&mut self, everything: bool) -> bool {
        let now = Clock::unix_secs().max(self.newest);
        let mut ok = true;
        if !self.decisions.is_empty() {
            match self.store.add_decisions(&self.decisions) {
                Ok(()) => {
                    self.stats.decisions_stored.fetch_add(self.decisions.len() as u64, Ordering::Relaxed);
                    self.decisions.clear();
                }
                Err(e) => ok = self.failed(&e),
            }
        }
        // A minute is over once `GRACE_SECS` have passed since its end.
        let open_from =
            if everything { u64::MAX } else { now.saturating_sub(60 + GRACE_SECS) / 60 * 60 + 60 };
        let due: Vec<HistoryRow> = self
            .pending
            .range(..(open_from, (i32::MIN, i32::MIN), SocketAddr::from(([0; 4], 0))))
            .map(|(_, row)| *row)
            .collect();
        if !due.is_empty() {
            match self.store.add_history(&due) {
                Ok(()) => {
                    self.stats.rows_written.fetch_add(due.len() as u64, Ordering::Relaxed);
                    for row in &due {
                        self.pending.remove(&(row.minute, (row.modid, row.cmdid), row.host));
                    }
                }
                Err(e) => ok = self.failed(&e) && ok,
            }
        }
        self.stats.rows_pending.store(self.pending.len() as u64, Ordering::Relaxed);
        ok
    }

    fn failed(&self, error: &crate::store::StoreError) -> bool {
        if self.stats.store_errors.fetch_add(1, Ordering::Relaxed) == 0 {
            log::warn!("call history: {error}; keeping it and retrying");
        }
        false
    }

    fn prune(&mut self) {
        let now = Clock::unix_secs();
        let history_before = now.saturating_sub(self.config.retention.as_secs());
        let decisions_before_ms = now.saturating_sub(self.config.decision_retention.as_secs()) * 1000;
        match self.store.prune(history_before, decisions_before_ms) {
            Ok(n) => {
                self.stats.pruned.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed(&e);
            }
        }
    }
}
