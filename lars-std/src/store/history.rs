//! Call history and the decision log in the store: what lars-reporter keeps besides
//! `ServerCallStatus`, and the queries the console and `lars events` read them with.
//!
//! Two additive tables, created by `db-init` (never by the daemons):
//! - `CallHistory`: one row per host per minute with the minute's successes, failures and
//!   overloads summed over every agent, and whether any agent held the host overloaded then.
//!   Rows are upserted by adding, so lars-reporter replicas that each saw part of a minute
//!   add up to the whole minute.
//! - `HostDecision`: one row per host state change an agent's balancer made, with the time,
//!   the agent, what changed and the reason in numbers.
//!
//! Both are pruned by age ([`HistoryStore::prune`]). History needs MySQL: the statistics file
//! (the embedded default) is one small file rewritten after every batch, which days of
//! per-minute rows would turn into a write of megabytes a second; the memory store has both
//! for tests.
//!
//! What the console reads is decided once for both stores: `history/buckets.rs` sums minutes
//! into a chart's columns, `history/problems.rs` holds the alert rules' conditions;
//! `history/mysql.rs` has the server do the same sums and the same tests, and decodes its rows.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::{RouteKey, StoreError};

mod buckets;
#[cfg(feature = "mysql")]
pub mod mysql;
mod problems;

pub use buckets::{RouteBucket, into_buckets, route_sums};
pub use problems::{Problem, ProblemRules, problems};
use problems::{ProblemWindow, in_report_order, route_problems};

/// One host's calls in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRow {
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// The host.
    pub host: SocketAddr,
    /// The minute's start, in Unix seconds (a multiple of 60).
    pub minute: u64,
    /// Successful calls.
    pub succ: u64,
    /// Failed calls (overloads included).
    pub err: u64,
    /// Calls the host refused as overloaded.
    pub overload: u64,
    /// Whether an agent held the host overloaded at the end of a period in the minute.
    pub overloaded: bool,
}

impl HistoryRow {
    /// A row of `route`'s `host` in `minute` with no calls yet.
    pub fn new(route: RouteKey, host: SocketAddr, minute: u64) -> HistoryRow {
        HistoryRow {
            modid: route.0,
            cmdid: route.1,
            host,
            minute,
            succ: 0,
            err: 0,
            overload: 0,
            overloaded: false,
        }
    }

    /// The row's key: route, host and minute.
    pub fn key(&self) -> (RouteKey, SocketAddr, u64) {
        ((self.modid, self.cmdid), self.host, self.minute)
    }

    /// Adds `other`'s counts (the same key) to this row.
    pub fn add(&mut self, other: &HistoryRow) {
        self.succ = self.succ.saturating_add(other.succ);
        self.err = self.err.saturating_add(other.err);
        self.overload = self.overload.saturating_add(other.overload);
        self.overloaded |= other.overloaded;
    }
}

/// One host state change, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRow {
    /// When, in Unix milliseconds.
    pub at_ms: u64,
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// The host.
    pub host: SocketAddr,
    /// The agent whose balancer decided.
    pub caller: u32,
    /// What changed (`overloaded`, `probed`, `readmitted`, `forgiven`, `slow_start_done`).
    pub change: String,
    /// Why, in numbers ("15 consecutive failures (limit 15)").
    pub reason: String,
}

/// Which decisions to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecisionFilter {
    /// One route only.
    pub route: Option<RouteKey>,
    /// One host only.
    pub host: Option<SocketAddr>,
    /// At or after this Unix millisecond.
    pub since_ms: u64,
    /// The newest this many (at most; 0 for all).
    pub limit: usize,
    /// Skips this many of the newest first: `limit` rows from here on are the next page.
    pub offset: usize,
}

/// Where lars-reporter keeps call history and decisions, and where the console reads them.
pub trait HistoryStore: Send {
    /// Adds each row's counts to the stored row of its key (created if missing).
    fn add_history(&mut self, rows: &[HistoryRow]) -> Result<(), StoreError>;

    /// Stores decisions.
    fn add_decisions(&mut self, rows: &[DecisionRow]) -> Result<(), StoreError>;

    /// Deletes history rows of minutes before `history_before` (Unix seconds) and decisions
    /// before `decisions_before_ms`; returns how many rows went.
    fn prune(&mut self, history_before: u64, decisions_before_ms: u64) -> Result<u64, StoreError>;

    /// A route's history (one host's, with `host`) for the minutes `from..to` (Unix seconds),
    /// oldest first, hosts in address order within a minute.
    fn history(
        &mut self,
        route: RouteKey,
        host: Option<SocketAddr>,
        from: u64,
        to: u64,
    ) -> Result<Vec<HistoryRow>, StoreError>;

    /// Decisions that `filter` selects, oldest first.
    fn decisions(&mut self, filter: DecisionFilter) -> Result<Vec<DecisionRow>, StoreError>;

    /// A route's history (one host's, with `host`) for the minutes `from..to`, summed per host
    /// into buckets of `bucket` seconds (a multiple of 60) that start at multiples of `bucket`:
    /// each row's `minute` is its bucket's start, `overloaded` whether the host was held
    /// overloaded in any minute of it. By host (in the order of its text, `10.0.0.10:80`
    /// before `10.0.0.2:80`, as MySQL keeps it), oldest first within a host, at most `limit`
    /// rows: a cut keeps whole hosts with every column, never the oldest columns of all.
    /// What the console's charts read: a week of a route with 100 hosts is 1,008,000 minute
    /// rows but 16,800 bucket ones.
    fn history_buckets(
        &mut self,
        route: RouteKey,
        host: Option<SocketAddr>,
        range: (u64, u64),
        bucket: u64,
        limit: usize,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let rows = self.history(route, host, range.0, range.1)?;
        Ok(into_buckets(&rows, bucket, limit))
    }

    /// A route's history for the minutes `from..to` summed over every host into buckets of
    /// `bucket` seconds, as [`HistoryStore::history_buckets`] sums each host's; oldest first.
    /// One row per bucket (96 at most for the console's ranges), so never cut.
    fn route_buckets(
        &mut self,
        route: RouteKey,
        range: (u64, u64),
        bucket: u64,
    ) -> Result<Vec<RouteBucket>, StoreError> {
        let rows = self.history(route, None, range.0, range.1)?;
        Ok(route_sums(&into_buckets(&rows, bucket, usize::MAX)))
    }

    /// The problems of every route in the history at Unix time `now`, by `rules` (what
    /// [`problems`] finds route by route, in one pass over the recent minutes), sorted by
    /// route; at most `limit` of each kind.
    fn recent_problems(
        &mut self,
        now: u64,
        rules: ProblemRules,
        limit: usize,
    ) -> Result<Vec<Problem>, StoreError>;

    /// A short description for logs.
    fn describe(&self) -> String;
}

/// Why a store has no call history for the console to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoHistory {
    /// The store is the route file (the embedded default): history needs MySQL.
    NotKept,
    /// The database has no `CallHistory` and `HostDecision` tables (`lars db-init` makes them).
    NoTables,
    /// The database could not be asked.
    Unavailable(String),
}

impl std::fmt::Display for NoHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoHistory::NotKept => f.write_str(
                "this console runs on the route file, which keeps no call history: history and the \
                 decision log need MySQL (lars-reporter with --mysql and `lars db-init`)",
            ),
            NoHistory::NoTables => f.write_str(
                "this database has no CallHistory and HostDecision tables: run `lars db-init` on it, \
                 then lars-reporter keeps call history and decisions",
            ),
            NoHistory::Unavailable(why) => write!(f, "the store could not be reached ({why})"),
        }
    }
}

/// Where a console finds its call history: a handle apart from its route store, with a
/// connection of its own, so that the console keeps it under a lock of its own and a long
/// history read (a week of a large route) holds up no route page or edit. Asked at every
/// read, because `lars db-init` may make the tables after the console started.
pub trait HistorySource: Send {
    /// The history, or why there is none now.
    fn open(&mut self) -> Result<&mut dyn HistoryStore, NoHistory>;
}

/// A store that keeps no history says why, every time.
impl HistorySource for NoHistory {
    fn open(&mut self) -> Result<&mut dyn HistoryStore, NoHistory> {
        Err(self.clone())
    }
}

impl HistorySource for MemoryHistory {
    fn open(&mut self) -> Result<&mut dyn HistoryStore, NoHistory> {
        Ok(self)
    }
}

/// Call history and decisions in memory, shared by its clones (tests, and a reporter with no
/// store for them).
#[derive(Debug, Clone, Default)]
pub struct MemoryHistory {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    history: BTreeMap<(u64, RouteKey, SocketAddr), HistoryRow>,
    decisions: Vec<DecisionRow>,
}

impl MemoryHistory {
    /// An empty store.
    pub fn new() -> Self {
        MemoryHistory::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl HistoryStore for MemoryHistory {
    fn add_history(&mut self, rows: &[HistoryRow]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for row in rows {
            let key = (row.minute, (row.modid, row.cmdid), row.host);
            inner.history.entry(key).and_modify(|stored| stored.add(row)).or_insert(*row);
        }
        Ok(())
    }

    fn add_decisions(&mut self, rows: &[DecisionRow]) -> Result<(), StoreError> {
        self.lock().decisions.extend_from_slice(rows);
        Ok(())
    }

    fn prune(&mut self, history_before: u64, decisions_before_ms: u64) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let before = inner.history.len() + inner.decisions.len();
        inner.history.retain(|&(minute, _, _), _| minute >= history_before);
        inner.decisions.retain(|d| d.at_ms >= decisions_before_ms);
        Ok((before - inner.history.len() - inner.decisions.len()) as u64)
    }

    fn history(
        &mut self,
        route: RouteKey,
        host: Option<SocketAddr>,
        from: u64,
        to: u64,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .history
            .range((from, (i32::MIN, i32::MIN), SocketAddr::from(([0; 4], 0)))..)
            .take_while(|((minute, _, _), _)| *minute < to)
            .filter(|((_, key, addr), _)| *key == route && host.is_none_or(|h| h == *addr))
            .map(|(_, row)| *row)
            .collect())
    }

    fn decisions(&mut self, filter: DecisionFilter) -> Result<Vec<DecisionRow>, StoreError> {
        let inner = self.lock();
        let mut rows: Vec<DecisionRow> = inner
            .decisions
            .iter()
            .filter(|d| d.at_ms >= filter.since_ms)
            .filter(|d| filter.route.is_none_or(|r| r == (d.modid, d.cmdid)))
            .filter(|d| filter.host.is_none_or(|h| h == d.host))
            .cloned()
            .collect();
        rows.sort_by_key(|d| d.at_ms);
        let limit = if filter.limit == 0 { usize::MAX } else { filter.limit };
        rows.truncate(rows.len().saturating_sub(filter.offset));
        let skip = rows.len().saturating_sub(limit);
        Ok(rows.split_off(skip))
    }

    fn recent_problems(
        &mut self,
        now: u64,
        rules: ProblemRules,
        limit: usize,
    ) -> Result<Vec<Problem>, StoreError> {
        let window = ProblemWindow::at(now, rules);
        let mut by_route: BTreeMap<RouteKey, Vec<HistoryRow>> = BTreeMap::new();
        {
            let inner = self.lock();
            let first = (window.from, (i32::MIN, i32::MIN), SocketAddr::from(([0; 4], 0)));
            let recent = inner.history.range(first..).take_while(|((m, _, _), _)| *m < window.end);
            for ((_, key, _), row) in recent {
                by_route.entry(*key).or_default().push(*row);
            }
        }
        let mut found = Vec::new();
        for (route, rows) in &by_route {
            route_problems(*route, rows, window, rules, &mut found);
        }
        Ok(in_report_order(found, limit))
    }

    fn describe(&self) -> String {
        "call history in memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of host 10.0.0.1:`port` of route 1001 1 in the `minute`th minute of 1970, the
    /// history tests' one shape of row.
    pub(super) fn row(minute: u64, port: u16, succ: u64, err: u64, overloaded: bool) -> HistoryRow {
        let host = SocketAddr::from(([10, 0, 0, 1], port));
        HistoryRow { succ, err, overloaded, ..HistoryRow::new((1001, 1), host, minute * 60) }
    }

    #[test]
    fn history_adds_up_and_is_pruned_by_age() {
        let mut store = MemoryHistory::new();
        store.add_history(&[row(1, 80, 10, 1, false), row(2, 80, 5, 0, false)]).unwrap();
        store.add_history(&[row(1, 80, 3, 2, true)]).unwrap();
        let rows = store.history((1001, 1), None, 0, 10 * 60).unwrap();
        assert_eq!(rows, [row(1, 80, 13, 3, true), row(2, 80, 5, 0, false)]);
        assert!(store.history((1001, 2), None, 0, 600).unwrap().is_empty());
        assert_eq!(store.history((1001, 1), None, 120, 600).unwrap(), [row(2, 80, 5, 0, false)]);
        assert_eq!(store.prune(120, 0).unwrap(), 1);
        assert_eq!(store.history((1001, 1), None, 0, 600).unwrap().len(), 1);
    }

    #[test]
    fn decisions_filter_and_keep_the_newest() {
        let mut store = MemoryHistory::new();
        let decision = |at_ms, port| DecisionRow {
            at_ms,
            modid: 1001,
            cmdid: 1,
            host: SocketAddr::from(([10, 0, 0, 1], port)),
            caller: 7,
            change: "overloaded".into(),
            reason: "15 consecutive failures (limit 15)".into(),
        };
        store.add_decisions(&[decision(3, 80), decision(1, 81), decision(2, 80)]).unwrap();
        let all = store.decisions(DecisionFilter::default()).unwrap();
        assert_eq!(all.iter().map(|d| d.at_ms).collect::<Vec<_>>(), [1, 2, 3]);
        let host = Some(SocketAddr::from(([10, 0, 0, 1], 80)));
        let one = store.decisions(DecisionFilter { host, limit: 1, ..DecisionFilter::default() }).unwrap();
        assert_eq!(one, [decision(3, 80)]);
        assert!(
            store.decisions(DecisionFilter { route: Some((1, 1)), ..Default::default() }).unwrap().is_empty()
        );
        assert_eq!(store.prune(0, 2).unwrap(), 1);
    }

    #[test]
    fn sums_near_u64_max_saturate() {
        let mut store = MemoryHistory::new();
        let huge = u64::MAX - 1;
        store.add_history(&[row(0, 80, huge, huge, false), row(0, 81, huge, 2, false)]).unwrap();
        store.add_history(&[row(0, 80, huge, huge, false)]).unwrap();
        let route = store.route_buckets((1001, 1), (0, 600), 300).unwrap();
        assert_eq!((route[0].succ, route[0].err), (u64::MAX, u64::MAX));
        let found = store.recent_problems(90, ProblemRules::default(), 100).unwrap();
        assert!(matches!(found[..], [Problem::HighErrorRate { calls: u64::MAX, .. }]), "{found:?}");
    }

    #[test]
    fn decisions_page_back_from_the_newest() {
        let mut store = MemoryHistory::new();
        let decision = |at_ms| DecisionRow {
            at_ms,
            modid: 1001,
            cmdid: 1,
            host: SocketAddr::from(([10, 0, 0, 1], 80)),
            caller: 7,
            change: "overloaded".into(),
            reason: String::new(),
        };
        store.add_decisions(&(1..=5).map(decision).collect::<Vec<_>>()).unwrap();
        let page = |offset| {
            let filter = DecisionFilter { limit: 2, offset, ..DecisionFilter::default() };
            store.clone().decisions(filter).unwrap().iter().map(|d| d.at_ms).collect::<Vec<_>>()
        };
        assert_eq!(page(0), [4, 5]);
        assert_eq!(page(2), [2, 3]);
        assert_eq!(page(4), [1]);
        assert!(page(6).is_empty());
    }
}
