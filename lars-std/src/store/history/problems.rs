//! The problems the console shows from the call history, the shipped alert rules' conditions
//! on the store's data: each rule written once, as the minutes it looks at
//! ([`ProblemWindow`]) and a constructor that decides it (`Problem::no_healthy_host`,
//! `overloaded_long`, `high_error_rate`). The memory store judges its rows with them; the
//! MySQL store states the same conditions in its grouped reads' `HAVING` (so that `LIMIT`
//! counts problems only) and passes what the server returns through the same constructors.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::{HistoryRow, HistoryStore};
use crate::store::{RouteKey, StoreError};

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

impl ProblemRules {
    /// The fewest calls an error rate is judged on: `min_calls`, and one at least (no calls
    /// have no rate).
    pub(super) fn calls_to_judge(&self) -> u64 {
        self.min_calls.max(1)
    }
}

/// The minutes the rules look at, at Unix time `now`: each rule's first minute, and `end`, the
/// start of the minute under way (which is not complete), before which every minute read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProblemWindow {
    /// The first minute any rule looks at.
    pub(super) from: u64,
    /// The last complete minute, the one "no healthy host" is judged on.
    pub(super) latest: u64,
    /// The first minute "overloaded for long" counts.
    pub(super) overloaded_since: u64,
    /// The first minute of the error rate's window.
    pub(super) errors_since: u64,
    /// The start of the minute under way.
    pub(super) end: u64,
}

impl ProblemWindow {
    /// The window at Unix time `now` by `rules`.
    pub(super) fn at(now: u64, rules: ProblemRules) -> ProblemWindow {
        let end = now / 60 * 60;
        let span = rules.overloaded_minutes.max(rules.error_window_minutes).max(1);
        ProblemWindow {
            from: end.saturating_sub(span * 60),
            latest: end.saturating_sub(60),
            overloaded_since: end.saturating_sub(rules.overloaded_minutes * 60),
            errors_since: end.saturating_sub(rules.error_window_minutes * 60),
            end,
        }
    }
}

impl Problem {
    /// The route had `hosts` in the last complete minute and all of them (`overloaded`) were
    /// held overloaded.
    pub(super) fn no_healthy_host(route: RouteKey, hosts: usize, overloaded: usize) -> Option<Problem> {
        (hosts > 0 && overloaded == hosts).then_some(Problem::NoHealthyHost { route, hosts })
    }

    /// The host was held overloaded in `minutes` of the window: a problem from
    /// `overloaded_minutes` on (0 turns the rule off).
    pub(super) fn overloaded_long(
        route: RouteKey,
        host: SocketAddr,
        minutes: u64,
        rules: ProblemRules,
    ) -> Option<Problem> {
        (rules.overloaded_minutes > 0 && minutes >= rules.overloaded_minutes)
            .then_some(Problem::OverloadedLong { route, host, minutes })
    }

    /// The route's `succ` and `err` calls in the error rate's window, a problem if there are
    /// enough of them and too many failed. The sums saturate: they are the database's.
    pub(super) fn high_error_rate(
        route: RouteKey,
        succ: u64,
        err: u64,
        rules: ProblemRules,
    ) -> Option<Problem> {
        let calls = succ.saturating_add(err);
        let rate = err as f64 / calls as f64;
        let problem = Problem::HighErrorRate { route, rate, calls };
        (calls >= rules.calls_to_judge() && rate > rules.error_rate).then_some(problem)
    }

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

/// The problems in the history at Unix time `now`, by `rules`: routes whose hosts were all
/// overloaded in the last complete minute, hosts overloaded for `overloaded_minutes` in a row,
/// routes with an error rate over `error_rate` in the last `error_window_minutes`.
pub fn problems(
    store: &mut dyn HistoryStore,
    routes: &[RouteKey],
    now: u64,
    rules: ProblemRules,
) -> Result<Vec<Problem>, StoreError> {
    let window = ProblemWindow::at(now, rules);
    let mut found = Vec::new();
    for &route in routes {
        let rows = store.history(route, None, window.from, window.end)?;
        route_problems(route, &rows, window, rules, &mut found);
    }
    Ok(found)
}

/// The problems of one route in its `rows` (the minutes of `window`), in the order no healthy
/// host, hosts overloaded for long (by address; [`in_report_order`] orders them by text), high
/// error rate.
pub(super) fn route_problems(
    route: RouteKey,
    rows: &[HistoryRow],
    window: ProblemWindow,
    rules: ProblemRules,
    found: &mut Vec<Problem>,
) {
    let latest = rows.iter().filter(|r| r.minute == window.latest);
    let overloaded_now = latest.clone().filter(|r| r.overloaded).count();
    found.extend(Problem::no_healthy_host(route, latest.count(), overloaded_now));
    let mut overloaded: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.minute >= window.overloaded_since && r.overloaded) {
        *overloaded.entry(row.host).or_default() += 1;
    }
    found.extend(
        overloaded
            .into_iter()
            .filter_map(|(host, minutes)| Problem::overloaded_long(route, host, minutes, rules)),
    );
    let (succ, err) = rows
        .iter()
        .filter(|r| r.minute >= window.errors_since)
        .fold((0u64, 0u64), |(s, e), r| (s.saturating_add(r.succ), e.saturating_add(r.err)));
    found.extend(Problem::high_error_rate(route, succ, err, rules));
}

/// `found` as [`HistoryStore::recent_problems`] returns it: sorted, and at most `limit` of each
/// kind (the first by route).
pub(super) fn in_report_order(mut found: Vec<Problem>, limit: usize) -> Vec<Problem> {
    found.sort_by_cached_key(Problem::order);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::MemoryHistory;
    use crate::store::history::tests::row;

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
}
