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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::{RouteKey, StoreError};

#[cfg(feature = "mysql")]
pub mod mysql;

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

/// A condition the console's problems page shows, the same as the shipped alert rules' on the
/// data the store has (the daemons' own conditions, links and stores, come from Prometheus).
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// Every host of the route was overloaded in the last complete minute.
    NoHealthyHost {
        /// The route.
        route: RouteKey,
        /// Its hosts.
        hosts: usize,
    },
    /// The host was overloaded in each of the last `minutes` minutes.
    OverloadedLong {
        /// The route.
        route: RouteKey,
        /// The host.
        host: SocketAddr,
        /// Minutes in a row.
        minutes: u64,
    },
    /// The route's calls failed at `rate` over the window.
    HighErrorRate {
        /// The route.
        route: RouteKey,
        /// Failed calls over all calls.
        rate: f64,
        /// Calls in the window.
        calls: u64,
    },
}

/// Thresholds of [`problems`], the alert rules' defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProblemRules {
    /// Minutes in a row that make a host "overloaded for long" (10).
    pub overloaded_minutes: u64,
    /// The error-rate window in minutes (5).
    pub error_window_minutes: u64,
    /// An error rate over this is a problem (0.1).
    pub error_rate: f64,
    /// Fewer calls in the window than this are not judged (60: the rules' one a second).
    pub min_calls: u64,
}

impl Default for ProblemRules {
    fn default() -> Self {
        ProblemRules { overloaded_minutes: 10, error_window_minutes: 5, error_rate: 0.1, min_calls: 60 }
    }
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

/// The problems in the history at Unix time `now`, by `rules`: routes whose hosts were all
/// overloaded in the last complete minute, hosts overloaded for `overloaded_minutes` in a row,
/// routes with an error rate over `error_rate` in the last `error_window_minutes`.
pub fn problems(
    store: &mut dyn HistoryStore,
    routes: &[RouteKey],
    now: u64,
    rules: ProblemRules,
) -> Result<Vec<Problem>, StoreError> {
    let (from, last) = problem_window(now, rules);
    let mut found = Vec::new();
    for &route in routes {
        let rows = store.history(route, None, from, last)?;
        route_problems(route, &rows, last, rules, &mut found);
    }
    Ok(found)
}

/// The minutes [`problems`] looks at: `from..last`, `last` the start of the minute under way
/// (which is not complete).
fn problem_window(now: u64, rules: ProblemRules) -> (u64, u64) {
    let last = now / 60 * 60;
    let span = rules.overloaded_minutes.max(rules.error_window_minutes).max(1);
    (last.saturating_sub(span * 60), last)
}

/// The problems of one route in its `rows` (the minutes of [`problem_window`]), in the order
/// no healthy host, hosts overloaded for long (by address; [`sort_problems`] orders them by
/// text), high error rate.
fn route_problems(
    route: RouteKey,
    rows: &[HistoryRow],
    last: u64,
    rules: ProblemRules,
    found: &mut Vec<Problem>,
) {
    let minute = last.saturating_sub(60);
    let latest = rows.iter().filter(|r| r.minute == minute);
    if latest.clone().next().is_some() && latest.clone().all(|r| r.overloaded) {
        found.push(Problem::NoHealthyHost { route, hosts: latest.count() });
    }
    let since = last.saturating_sub(rules.overloaded_minutes * 60);
    let mut overloaded: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.minute >= since && r.overloaded) {
        *overloaded.entry(row.host).or_default() += 1;
    }
    for (host, minutes) in overloaded {
        if rules.overloaded_minutes > 0 && minutes >= rules.overloaded_minutes {
            found.push(Problem::OverloadedLong { route, host, minutes });
        }
    }
    let window = last.saturating_sub(rules.error_window_minutes * 60);
    let (succ, err) = rows
        .iter()
        .filter(|r| r.minute >= window)
        .fold((0u64, 0u64), |(s, e), r| (s.saturating_add(r.succ), e.saturating_add(r.err)));
    if let Some(rate) = error_rate(succ, err, rules) {
        found.push(Problem::HighErrorRate { route, rate, calls: succ.saturating_add(err) });
    }
}

/// The error rate of `succ` and `err` calls if it is a problem by `rules`.
fn error_rate(succ: u64, err: u64, rules: ProblemRules) -> Option<f64> {
    let calls = succ.saturating_add(err);
    let rate = err as f64 / calls as f64;
    (calls >= rules.min_calls.max(1) && rate > rules.error_rate).then_some(rate)
}

impl Problem {
    /// The route the problem is on.
    pub fn route(&self) -> RouteKey {
        match self {
            Problem::NoHealthyHost { route, .. }
            | Problem::OverloadedLong { route, .. }
            | Problem::HighErrorRate { route, .. } => *route,
        }
    }

    /// The order [`HistoryStore::recent_problems`] lists problems in: route, then kind as
    /// [`problems`] finds them, then host by its text (the order MySQL cuts at `limit` in).
    fn order(&self) -> (RouteKey, u8, Option<String>) {
        match self {
            Problem::NoHealthyHost { route, .. } => (*route, 0, None),
            Problem::OverloadedLong { route, host, .. } => (*route, 1, Some(host.to_string())),
            Problem::HighErrorRate { route, .. } => (*route, 2, None),
        }
    }
}

/// Sorts problems as [`HistoryStore::recent_problems`] returns them.
fn sort_problems(found: &mut [Problem]) {
    found.sort_by_cached_key(Problem::order);
}

/// Keeps at most `limit` problems of each kind (the first by route).
fn limit_problems(found: Vec<Problem>, limit: usize) -> Vec<Problem> {
    let mut seen = [0usize; 3];
    found
        .into_iter()
        .filter(|p| {
            let kind = usize::from(p.order().1);
            seen[kind] += 1;
            seen[kind] <= limit
        })
        .collect()
}

/// Sums minute rows per host into buckets of `bucket` seconds, in the order of
/// [`HistoryStore::history_buckets`] (host text, then bucket); at most `limit` rows.
pub fn into_buckets(rows: &[HistoryRow], bucket: u64, limit: usize) -> Vec<HistoryRow> {
    let bucket = bucket.max(60);
    let mut sums: BTreeMap<(String, u64), HistoryRow> = BTreeMap::new();
    for row in rows {
        let start = row.minute / bucket * bucket;
        sums.entry((row.host.to_string(), start))
            .and_modify(|sum| sum.add(row))
            .or_insert(HistoryRow { minute: start, ..*row });
    }
    sums.into_values().take(limit).collect()
}

/// One bucket of a route's history, every host summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteBucket {
    /// The bucket's start, Unix seconds.
    pub start: u64,
    /// Successful calls.
    pub succ: u64,
    /// Failed calls (overloads included).
    pub err: u64,
    /// Calls refused as overloaded.
    pub overload: u64,
    /// Hosts held overloaded in some minute of the bucket.
    pub overloaded_hosts: u64,
}

/// The route's buckets of per-host `buckets`, oldest first (sums saturate: they are the
/// database's, not ours to trust).
pub fn route_sums(buckets: &[HistoryRow]) -> Vec<RouteBucket> {
    let mut sums: BTreeMap<u64, RouteBucket> = BTreeMap::new();
    for row in buckets {
        let sum =
            sums.entry(row.minute).or_insert(RouteBucket { start: row.minute, ..RouteBucket::default() });
        sum.succ = sum.succ.saturating_add(row.succ);
        sum.err = sum.err.saturating_add(row.err);
        sum.overload = sum.overload.saturating_add(row.overload);
        sum.overloaded_hosts += u64::from(row.overloaded);
    }
    sums.into_values().collect()
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
        let (from, last) = problem_window(now, rules);
        let mut by_route: BTreeMap<RouteKey, Vec<HistoryRow>> = BTreeMap::new();
        {
            let inner = self.lock();
            let first = (from, (i32::MIN, i32::MIN), SocketAddr::from(([0; 4], 0)));
            for ((_, key, _), row) in inner.history.range(first..).take_while(|((m, _, _), _)| *m < last) {
                by_route.entry(*key).or_default().push(*row);
            }
        }
        let mut found = Vec::new();
        for (route, rows) in &by_route {
            route_problems(*route, rows, last, rules, &mut found);
        }
        sort_problems(&mut found);
        Ok(limit_problems(found, limit))
    }

    fn describe(&self) -> String {
        "call history in memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(minute: u64, port: u16, succ: u64, err: u64, overloaded: bool) -> HistoryRow {
        HistoryRow {
            modid: 1001,
            cmdid: 1,
            host: SocketAddr::from(([10, 0, 0, 1], port)),
            minute: minute * 60,
            succ,
            err,
            overload: 0,
            overloaded,
        }
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
    fn problems_match_the_alert_rules() {
        let mut store = MemoryHistory::new();
        // Minutes 0..=11 complete at now = 12 min 30 s. Host 80 overloaded throughout and failing;
        // host 81 overloaded only in the last minute.
        for minute in 0..12 {
            store
                .add_history(&[row(minute, 80, 10, 90, true), row(minute, 81, 100, 0, minute == 11)])
                .unwrap();
        }
        let now = 12 * 60 + 30;
        let found = problems(&mut store, &[(1001, 1)], now, ProblemRules::default()).unwrap();
        let host = SocketAddr::from(([10, 0, 0, 1], 80));
        assert_eq!(
            found,
            [
                Problem::NoHealthyHost { route: (1001, 1), hosts: 2 },
                Problem::OverloadedLong { route: (1001, 1), host, minutes: 10 },
                Problem::HighErrorRate { route: (1001, 1), rate: 450.0 / 1000.0, calls: 1000 },
            ]
        );
        let quiet = problems(&mut store, &[(1001, 2)], now, ProblemRules::default()).unwrap();
        assert!(quiet.is_empty());
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
    fn buckets_sum_minutes_per_host() {
        let mut store = MemoryHistory::new();
        store
            .add_history(&[
                row(0, 80, 1, 0, false),
                row(4, 80, 2, 1, true),
                row(5, 80, 4, 0, false),
                row(3, 81, 8, 0, false),
            ])
            .unwrap();
        let buckets = store.history_buckets((1001, 1), None, (0, 600), 300, 10).unwrap();
        let mut first = row(0, 80, 3, 1, true);
        first.minute = 0;
        let mut second = row(0, 81, 8, 0, false);
        second.minute = 0;
        let mut third = row(5, 80, 4, 0, false);
        third.minute = 300;
        assert_eq!(buckets, [first, third, second], "by host, then oldest first");
        let cut = store.history_buckets((1001, 1), None, (0, 600), 300, 2).unwrap();
        assert_eq!(cut, [first, third], "the limit keeps whole hosts, the newest column too");
        let one = store.history_buckets((1001, 1), Some(first.host), (0, 600), 300, 10).unwrap();
        assert_eq!(one, [first, third]);
        let route = store.route_buckets((1001, 1), (0, 600), 300).unwrap();
        assert_eq!(
            route,
            [
                RouteBucket { start: 0, succ: 11, err: 1, overload: 0, overloaded_hosts: 1 },
                RouteBucket { start: 300, succ: 4, err: 0, overload: 0, overloaded_hosts: 0 },
            ]
        );
    }

    #[test]
    fn recent_problems_of_every_route_are_each_routes_problems() {
        let mut store = MemoryHistory::new();
        for minute in 0..12 {
            let mut other = row(minute, 90, 0, 100, true);
            other.cmdid = 2;
            store
                .add_history(&[row(minute, 80, 10, 90, true), row(minute, 81, 100, 0, false), other])
                .unwrap();
        }
        let now = 12 * 60 + 30;
        let rules = ProblemRules::default();
        let each = problems(&mut store, &[(1001, 1), (1001, 2)], now, rules).unwrap();
        let all = store.recent_problems(now, rules, 100).unwrap();
        assert_eq!(all, each);
        assert_eq!(all.len(), 5, "{all:?}");
        let limited = store.recent_problems(now, rules, 1).unwrap();
        assert_eq!(limited.len(), 3, "one of each kind: {limited:?}");
        assert!(store.recent_problems(30, rules, 100).unwrap().is_empty(), "no minute complete yet");
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
