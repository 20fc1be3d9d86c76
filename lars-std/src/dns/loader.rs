//! lars-dns's loader: reads the store into the snapshot the workers answer from.
//!
//! Every `poll_interval` it checks the store's version; when the version moves it reads the
//! routes the store's change log names (or everything, when the store cannot name them), and
//! every `reload_interval` it reads everything regardless. A load that would remove too much
//! at once is held (the shrink protection) until a later full load says the same. Until a full
//! load has succeeded the snapshot says it is not loaded, which the workers answer as "not
//! ready". A failing store is retried with backoff while the last snapshot keeps being served.
//!
//! [`Loader::poll`] is one such round with the time as a parameter, so that its decisions are
//! tested over a memory store without a thread; [`Loader::run`] is the thread's loop around it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use lars_core::backoff::Backoff;
use lars_core::time::Instant;

use super::{DnsConfig, DnsStats, Push};
use crate::reactor::Poster;
use crate::store::{RouteKey, RouteStore, RouteTable, StoreError};
use crate::time::{Clock, Stopwatch, from_std, to_std};

/// The table the workers answer from, swapped whole by the loader (readers never wait for it).
pub(super) type Snapshot = Arc<RwLock<Arc<RouteTable>>>;

/// The table being served now.
pub(super) fn current(snapshot: &Snapshot) -> Arc<RouteTable> {
    Arc::clone(&snapshot.read().unwrap_or_else(|p| p.into_inner()))
}

/// Removing fewer routes or hosts than this at once is never held: a console deleting a
/// small table's routes is not an accident worth a 10 s delay.
const SHRINK_MIN: usize = 10;

/// Whether going from `served` to `table` removes more than `limit` of the routes or of the
/// hosts, and at least [`SHRINK_MIN`] of them (only once `served` is a real load: the first
/// load is never held).
fn shrinks_too_much(served: &RouteTable, table: &RouteTable, limit: f64) -> bool {
    if !served.loaded || limit >= 1.0 {
        return false;
    }
    let lost = |before: usize, after: usize| {
        let removed = before.saturating_sub(after);
        removed >= SHRINK_MIN && removed as f64 > limit * before as f64
    };
    lost(served.routes.len(), table.routes.len()) || lost(served.host_count(), table.host_count())
}

/// What one round of the loader did.
#[derive(Debug)]
pub(super) enum Polled {
    /// The store's version has not moved (and no reload was due).
    Unchanged,
    /// The store failed; the last snapshot is still served.
    Failed,
    /// A load that removes too much was read and held.
    Held,
    /// A table was installed; `changed` are the routes that differ from the one before.
    Installed { table: Arc<RouteTable>, changed: Vec<RouteKey> },
}

pub(super) struct Loader {
    store: Box<dyn RouteStore>,
    snapshot: Snapshot,
    stats: Arc<DnsStats>,
    config: DnsConfig,
    /// Whether the snapshot holds a full load of the store, which changes can patch.
    loaded: bool,
    /// When the shrink protection first held a load, if it holds one now.
    held_since: Option<Instant>,
    /// The store's version at the last load, to notice changes.
    store_version: u64,
    /// When everything was last read (or the loader started).
    last_load: Instant,
    /// The failures in a row and the retry delays they make: `poll_interval` doubled for each,
    /// up to `retry_max`.
    backoff: Backoff,
}

impl Loader {
    /// Loads the routes once (a store that fails leaves lars-dns empty and not ready, to be
    /// retried by [`Loader::poll`]); `now` starts the reload interval.
    pub(super) fn new(
        config: DnsConfig,
        mut store: Box<dyn RouteStore>,
        stats: Arc<DnsStats>,
        now: Instant,
    ) -> Loader {
        let mut loaded = true;
        let initial = match store.load() {
            Ok(mut table) => {
                table.loaded = true;
                stats.loads.fetch_add(1, Ordering::Relaxed);
                stats.ready.store(1, Ordering::Relaxed);
                stats.store_up.store(1, Ordering::Relaxed);
                log::info!(
                    "loaded {} routes, {} hosts from {}",
                    table.routes.len(),
                    table.host_count(),
                    store.describe()
                );
                table
            }
            Err(e) => {
                stats.load_errors.fetch_add(1, Ordering::Relaxed);
                log::error!("{e}; not ready (agents keep their routes) until a load succeeds");
                loaded = false;
                RouteTable::default()
            }
        };
        stats.routes.store(initial.routes.len() as u64, Ordering::Relaxed);
        stats.hosts.store(initial.host_count() as u64, Ordering::Relaxed);
        let store_version = initial.version;
        let backoff = Backoff::new(from_std(config.poll_interval), from_std(config.retry_max));
        Loader {
            store,
            snapshot: Arc::new(RwLock::new(Arc::new(initial))),
            stats,
            config,
            loaded,
            held_since: None,
            store_version,
            last_load: now,
            backoff,
        }
    }

    /// The snapshot this loader installs tables into.
    pub(super) fn snapshot(&self) -> Snapshot {
        Arc::clone(&self.snapshot)
    }

    /// How long to wait before the next [`Loader::poll`]: `poll_interval`, doubled for each
    /// failure in a row up to `retry_max` (which caps retries only, not the usual round).
    pub(super) fn wait(&self) -> Duration {
        if self.backoff.failures() == 0 { self.config.poll_interval } else { to_std(self.backoff.nominal()) }
    }

    /// The loader thread: a round every [`Loader::wait`] until `stop`, each installed change
    /// posted to every worker.
    pub(super) fn run(mut self, clock: Clock, poster: Poster<Push>, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Acquire) {
            std::thread::park_timeout(self.wait());
            if stop.load(Ordering::Acquire) {
                return;
            }
            let noticed = Stopwatch::start();
            if let Polled::Installed { table, changed } = self.poll(clock.now())
                && !changed.is_empty()
            {
                let changed = Arc::new(changed);
                for worker in 0..poster.workers() {
                    let push = Push { table: Arc::clone(&table), changed: Arc::clone(&changed), noticed };
                    if poster.post(worker, push).is_err() {
                        log::warn!(
                            "worker {worker}'s queue is full; its agents get this change at their next refresh"
                        );
                    }
                }
            }
        }
    }

    /// One round: checks the store's version and, when it moved or a reload is due, reads the
    /// changes or everything, and installs the result unless the shrink protection holds it.
    pub(super) fn poll(&mut self, now: Instant) -> Polled {
        let served = current(&self.snapshot);
        let reload = to_std(now.saturating_since(self.last_load)) >= self.config.reload_interval;
        match self.store.version() {
            Ok(version) if version == self.store_version && !reload => {
                self.stats.store_up.store(1, Ordering::Relaxed);
                return Polled::Unchanged;
            }
            Ok(_) => {}
            Err(e) => {
                self.failed(&e);
                return Polled::Failed;
            }
        }
        // A change the store can name costs a read of the changed routes; the periodic
        // reload (and any change it cannot name) reads everything.
        let changes = if reload || !self.loaded { Ok(None) } else { self.store.changes() };
        let full = !matches!(changes, Ok(Some(_)));
        let table = match changes {
            Ok(Some(changes)) => {
                self.stats.change_reads.fetch_add(1, Ordering::Relaxed);
                let named: Vec<RouteKey> = changes.routes.iter().map(|(key, _)| *key).collect();
                let table = served.with_changes(changes);
                // Only the named routes can differ: no need to compare every route.
                let changed =
                    named.into_iter().filter(|&key| served.hosts(key) != table.hosts(key)).collect();
                Ok((table, changed))
            }
            Ok(None) => self.store.load().map(|mut table| {
                self.last_load = now;
                self.loaded = true;
                table.loaded = true;
                let changed = served.changed_routes(&table);
                (table, changed)
            }),
            Err(e) => Err(e),
        };
        let (table, changed) = match table {
            Ok(loaded) => loaded,
            Err(e) => {
                self.failed(&e);
                return Polled::Failed;
            }
        };
        if self.backoff.failures() > 0 {
            log::info!("{} is back", self.store.describe());
        }
        self.backoff.reset();
        self.stats.store_up.store(1, Ordering::Relaxed);
        self.store_version = table.version;
        // A held table is looked at again at the next load: a full load at least
        // `reload_interval` later that still removes as much confirms it.
        if self.hold(&served, &table, full, now) {
            return Polled::Held;
        }
        let (table, changed) = self.install(table, changed);
        Polled::Installed { table, changed }
    }

    /// The shrink protection: whether to hold `table`, which removes too much of `served`.
    /// A hold ends when a full load no longer removes too much (the store came back), or when
    /// a full load at least `reload_interval` after the first hold still does (the store
    /// confirms it). Change-log loads in between are installed when they shrink nothing, but
    /// neither end nor confirm a hold: they patch the table served, not the store's.
    fn hold(&mut self, served: &RouteTable, table: &RouteTable, full: bool, now: Instant) -> bool {
        if !shrinks_too_much(served, table, self.config.shrink_limit) {
            if full {
                self.held_since = None;
            }
            return false;
        }
        let (routes, hosts) = (table.routes.len(), table.host_count());
        let (served_routes, served_hosts) = (served.routes.len(), served.host_count());
        if let Some(since) = self.held_since
            && full
            && now.saturating_since(since) >= from_std(self.config.reload_interval)
        {
            log::warn!(
                "a later full load confirms {routes} routes, {hosts} hosts \
                 (down from {served_routes}, {served_hosts}); serving it"
            );
            self.held_since = None;
            return false;
        }
        self.stats.held_loads.fetch_add(1, Ordering::Relaxed);
        if self.held_since.is_none() {
            log::warn!(
                "held a load of {routes} routes, {hosts} hosts (serving {served_routes}, \
                 {served_hosts}): it removes more than {:.0} % at once; serving the last routes until \
                 a full load {} s later says the same",
                self.config.shrink_limit * 100.0,
                self.config.reload_interval.as_secs()
            );
            self.held_since = Some(now);
        }
        true
    }

    fn failed(&mut self, error: &StoreError) {
        self.stats.load_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.store_up.store(0, Ordering::Relaxed);
        if self.backoff.failures() == 0 {
            log::error!("{error}; serving the last routes and retrying");
        }
        self.backoff.record_failure();
    }

    /// Swaps in `table`; returns it with the `changed` routes (those that differ from the table
    /// served before), sorted and once each.
    /// The published version is the store's: lars-dns keeps nothing the store does not have,
    /// so a restart, a replica or another store says the same (agents order answers by their
    /// link, not by version).
    fn install(&mut self, table: RouteTable, mut changed: Vec<RouteKey>) -> (Arc<RouteTable>, Vec<RouteKey>) {
        self.stats.loads.fetch_add(1, Ordering::Relaxed);
        changed.sort_unstable();
        changed.dedup();
        self.stats.ready.store(u64::from(table.loaded), Ordering::Relaxed);
        self.stats.routes.store(table.routes.len() as u64, Ordering::Relaxed);
        self.stats.hosts.store(table.host_count() as u64, Ordering::Relaxed);
        let table = Arc::new(table);
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&table);
        (table, changed)
    }
}

#[cfg(test)]
mod tests;
