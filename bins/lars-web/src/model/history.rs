//! Call history and problems as the pages show them: the ranges a history page offers, the
//! store's buckets turned into one series for a route and one per host (and which hosts a
//! page lists, and where a cut read stops), and the problems report that joins the live call
//! status with the history's conditions. Pure functions over plain data, like the rest of
//! `model`; the pages only write them as HTML.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use lars_std::store::RouteKey;
use lars_std::store::console::HostEntry;
use lars_std::store::history::{HistoryRow, Problem, ProblemRules, RouteBucket};

use super::{CallTable, HostCalls, ServiceList};

/// The time ranges of a history page, each with a bucket size that keeps a chart at 60 to 96
/// columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The last hour, by minute.
    Hour,
    /// The last 6 hours, by 5 minutes.
    SixHours,
    /// The last day, by 15 minutes.
    Day,
    /// The last week, by 2 hours.
    Week,
}

impl Range {
    /// Every range, shortest first.
    pub const ALL: [Range; 4] = [Range::Hour, Range::SixHours, Range::Day, Range::Week];

    /// The range a `range=` parameter names (`1h`, `6h`, `1d`, `7d`); the last hour otherwise.
    pub fn parse(text: Option<&str>) -> Range {
        Range::ALL.into_iter().find(|r| Some(r.param()) == text).unwrap_or(Range::Hour)
    }

    /// Its `range=` parameter.
    pub fn param(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::SixHours => "6h",
            Range::Day => "1d",
            Range::Week => "7d",
        }
    }

    /// Its name on the page.
    pub fn label(self) -> &'static str {
        match self {
            Range::Hour => "last hour",
            Range::SixHours => "last 6 hours",
            Range::Day => "last day",
            Range::Week => "last week",
        }
    }

    /// Its length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Range::Hour => 3600,
            Range::SixHours => 6 * 3600,
            Range::Day => 24 * 3600,
            Range::Week => 7 * 24 * 3600,
        }
    }

    /// Seconds per chart column (a multiple of the store's minute).
    pub fn bucket(self) -> u64 {
        match self {
            Range::Hour => 60,
            Range::SixHours => 300,
            Range::Day => 900,
            Range::Week => 7200,
        }
    }

    /// Chart columns.
    pub fn buckets(self) -> usize {
        (self.seconds() / self.bucket()) as usize
    }

    /// The range's seconds `(from, to)` at Unix time `now`: whole buckets, the last one the
    /// bucket under way.
    pub fn window(self, now: u64) -> (u64, u64) {
        let to = (now / self.bucket() + 1) * self.bucket();
        (to.saturating_sub(self.seconds()), to)
    }
}

/// One chart column: the calls in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    /// Successful calls.
    pub succ: u64,
    /// Failed calls (overloads included).
    pub err: u64,
    /// Calls refused as overloaded.
    pub overload: u64,
    /// Hosts held overloaded in some minute of the bucket (0 or 1 for one host).
    pub overloaded: u32,
}

/// Calls over time: `points[i]` is the bucket that starts at `from + i * bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// The first bucket's start, Unix seconds.
    pub from: u64,
    /// Seconds per bucket.
    pub bucket: u64,
    /// The buckets, oldest first, every one of the range (empty ones are zero).
    pub points: Vec<Point>,
}

impl Series {
    /// A series of `count` empty buckets.
    pub fn empty(from: u64, bucket: u64, count: usize) -> Series {
        Series { from, bucket, points: vec![Point::default(); count] }
    }

    /// Calls in all (successful and failed). The sums saturate: they are the database's.
    pub fn calls(&self) -> u64 {
        self.points.iter().fold(0u64, |sum, p| sum.saturating_add(p.calls()))
    }

    /// The sums over every bucket (`overloaded`: the buckets with an overloaded host).
    pub fn totals(&self) -> Point {
        let mut totals = Point::default();
        for point in &self.points {
            totals.add(Point { overloaded: u32::from(point.overloaded > 0), ..*point });
        }
        totals
    }

    /// A series of the same buckets, every one empty.
    fn empty_like(&self) -> Series {
        Series::empty(self.from, self.bucket, self.points.len())
    }

    fn add(&mut self, start: u64, calls: Point) {
        if start < self.from {
            return;
        }
        let index = ((start - self.from) / self.bucket) as usize;
        if let Some(point) = self.points.get_mut(index) {
            point.add(calls);
        }
    }
}

impl Point {
    /// Successful and failed calls (saturating).
    pub fn calls(&self) -> u64 {
        self.succ.saturating_add(self.err)
    }

    /// Adds `other`'s counts to this point's. The sums saturate: they are the database's.
    fn add(&mut self, other: Point) {
        self.succ = self.succ.saturating_add(other.succ);
        self.err = self.err.saturating_add(other.err);
        self.overload = self.overload.saturating_add(other.overload);
        self.overloaded = self.overloaded.saturating_add(other.overloaded);
    }
}

/// A route's history: the route's series (every host summed) and each host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHistory {
    /// Every host summed.
    pub route: Series,
    /// Each host that has rows, by address.
    pub hosts: BTreeMap<SocketAddr, Series>,
}

impl RouteHistory {
    /// Sorts `route` (the route's buckets of `range`, from [`Range::window`] at `from`) and
    /// `rows` (each host's) into series. The route's series is `route`'s, whole even when
    /// `rows` were cut.
    pub fn build(route: &[RouteBucket], rows: &[HistoryRow], range: Range, from: u64) -> RouteHistory {
        let empty = || Series::empty(from, range.bucket(), range.buckets());
        let mut history = RouteHistory { route: empty(), hosts: BTreeMap::new() };
        for bucket in route {
            let overloaded = u32::try_from(bucket.overloaded_hosts).unwrap_or(u32::MAX);
            let calls = Point { succ: bucket.succ, err: bucket.err, overload: bucket.overload, overloaded };
            history.route.add(bucket.start, calls);
        }
        for row in rows {
            let calls = Point {
                succ: row.succ,
                err: row.err,
                overload: row.overload,
                overloaded: u32::from(row.overloaded),
            };
            history.hosts.entry(row.host).or_insert_with(empty).add(row.minute, calls);
        }
        history
    }

    /// A host's series: empty buckets for a host without rows.
    pub fn host(&self, addr: SocketAddr) -> Series {
        self.hosts.get(&addr).cloned().unwrap_or_else(|| self.route.empty_like())
    }

    /// The hosts a route's page lists: every host of the route (`route_hosts`), then the hosts
    /// with history that have left it.
    pub fn hosts_to_list(&self, route_hosts: &[HostEntry]) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = route_hosts.iter().map(|h| h.addr).collect();
        addrs.extend(self.hosts.keys().filter(|a| !route_hosts.iter().any(|h| h.addr == **a)));
        addrs
    }
}

/// Cuts host `rows` read with a limit of `max` + 1 (whole hosts in the order of their text,
/// the newest columns too) when there were more than `max`: keeps the first `max` and drops
/// the last host of those as well, which may have lost columns, so that every host charted
/// has every column. Returns the first host not kept (its text), where there was a cut.
pub fn cut_to_whole_hosts(rows: &mut Vec<HistoryRow>, max: usize) -> Option<String> {
    (rows.len() > max).then(|| {
        rows.truncate(max);
        let last = rows.last().map(|r| r.host);
        rows.retain(|r| Some(r.host) != last);
        last.map(|h| h.to_string()).unwrap_or_default()
    })
}

/// The most entries of each list a problems report keeps (the rest are counted).
pub const PROBLEMS_SHOWN: usize = 200;

/// A route that no caller can be given a healthy host of, by the latest call status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unhealthy {
    /// The route.
    pub key: RouteKey,
    /// Its hosts.
    pub hosts: u32,
    /// Hosts some agent reports overloaded.
    pub overloaded: u32,
    /// Hosts out of rotation.
    pub out_of_rotation: u32,
}

/// Everything the problems page shows, and what the service list marks.
#[derive(Debug, Clone, PartialEq)]
pub struct ProblemReport {
    /// When it was made, Unix seconds.
    pub at: u64,
    /// The rules the history was judged by.
    pub rules: ProblemRules,
    /// Routes without a healthy host by the latest status (at most [`PROBLEMS_SHOWN`]).
    pub unhealthy: Vec<Unhealthy>,
    /// All such routes.
    pub unhealthy_count: usize,
    /// Hosts some agent reports overloaded now (at most [`PROBLEMS_SHOWN`]).
    pub overloaded: Vec<(RouteKey, SocketAddr, HostCalls)>,
    /// All such hosts.
    pub overloaded_count: usize,
    /// The history's problems, or why there are none to judge.
    pub history: Result<Vec<Problem>, String>,
}

impl ProblemReport {
    /// Joins the live service list and call status with the history's problems.
    pub fn build(
        list: &ServiceList,
        calls: &CallTable,
        history: Result<Vec<Problem>, String>,
        rules: ProblemRules,
        at: u64,
    ) -> ProblemReport {
        let unhealthy_rows = list.rows.iter().filter(|r| r.hosts > 0 && r.healthy == 0);
        let unhealthy_count = unhealthy_rows.clone().count();
        let unhealthy = unhealthy_rows
            .take(PROBLEMS_SHOWN)
            .map(|r| Unhealthy {
                key: r.key,
                hosts: r.hosts,
                overloaded: r.overloaded,
                out_of_rotation: r.out_of_rotation,
            })
            .collect();
        let overloaded_hosts = calls
            .iter()
            .flat_map(|(key, hosts)| hosts.iter().map(move |(addr, c)| (*key, *addr, *c)))
            .filter(|(_, _, c)| c.overloaded);
        let overloaded_count = overloaded_hosts.clone().count();
        let overloaded = overloaded_hosts.take(PROBLEMS_SHOWN).collect();
        ProblemReport { at, rules, unhealthy, unhealthy_count, overloaded, overloaded_count, history }
    }

    /// The routes with a problem and the first problem's name, for the service list.
    pub fn routes(&self) -> BTreeMap<RouteKey, &'static str> {
        let mut marks = BTreeMap::new();
        for problem in self.history.as_deref().unwrap_or_default() {
            let name = match problem {
                Problem::NoHealthyHost { .. } => "no healthy host",
                Problem::OverloadedLong { .. } => "host overloaded for long",
                Problem::HighErrorRate { .. } => "high error rate",
            };
            marks.entry(problem.route()).or_insert(name);
        }
        for (key, _, _) in &self.overloaded {
            marks.entry(*key).or_insert("host overloaded");
        }
        for route in &self.unhealthy {
            marks.insert(route.key, "no healthy host");
        }
        marks
    }

    /// Whether anything is wrong that the console can see.
    pub fn is_empty(&self) -> bool {
        self.unhealthy_count == 0
            && self.overloaded_count == 0
            && self.history.as_ref().is_ok_and(|found| found.is_empty())
    }
}

/// History rows and the history built from them, for the tests of the model and of the pages
/// that show it.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use lars_std::store::history::route_sums;

    /// A row of host 10.0.0.1:`port` of route 7 1 in the minute that starts at Unix second
    /// `minute`, half its failures overloads.
    pub(crate) fn row(minute: u64, port: u16, succ: u64, err: u64, overloaded: bool) -> HistoryRow {
        let host = SocketAddr::from(([10, 0, 0, 1], port));
        HistoryRow { succ, err, overload: err / 2, overloaded, ..HistoryRow::new((7, 1), host, minute) }
    }

    /// The history of `rows` as a page builds it from the store's two reads: the route's
    /// buckets (summed from the same rows) and each host's.
    pub(crate) fn history(rows: &[HistoryRow], range: Range, from: u64) -> RouteHistory {
        RouteHistory::build(&route_sums(rows), rows, range, from)
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{history, row};
    use super::*;
    use crate::model::{ServiceList, call_table};
    use lars_std::store::StatRow;
    use lars_std::store::console::Overview;

    #[test]
    fn ranges_are_whole_buckets_ending_with_the_one_under_way() {
        assert_eq!(Range::parse(Some("6h")), Range::SixHours);
        assert_eq!(Range::parse(Some("<script>")), Range::Hour);
        for range in Range::ALL {
            assert_eq!(Range::parse(Some(range.param())), range);
            assert!((60..=96).contains(&range.buckets()), "{range:?}");
            assert_eq!(range.bucket() % 60, 0);
            let (from, to) = range.window(1_764_547_200 + 61);
            assert_eq!((to - from, from % range.bucket()), (range.seconds(), 0));
            assert!(to > 1_764_547_200 + 61 && to - range.bucket() <= 1_764_547_200 + 61);
        }
    }

    #[test]
    fn rows_become_a_route_series_and_one_per_host() {
        let range = Range::SixHours;
        let from = 3_000;
        let rows = [
            row(3_000, 80, 10, 2, false),
            row(3_000, 81, 5, 5, true),
            row(3_300, 80, 1, 0, false),
            row(2_700, 80, 99, 99, true), // before the range: ignored
        ];
        let history = history(&rows, range, from);
        assert_eq!(history.route.points.len(), 72);
        assert_eq!(history.route.points[0], Point { succ: 15, err: 7, overload: 3, overloaded: 1 });
        assert_eq!(history.route.points[1].succ, 1);
        assert_eq!(history.route.calls(), 23);
        let host = history.hosts[&SocketAddr::from(([10, 0, 0, 1], 81))].totals();
        assert_eq!(host, Point { succ: 5, err: 5, overload: 2, overloaded: 1 });
        assert!(RouteHistory::build(&[], &[], range, from).hosts.is_empty());
        assert_eq!(history.host(SocketAddr::from(([10, 0, 0, 2], 80))), history.route.empty_like());
    }

    #[test]
    fn a_cut_keeps_whole_hosts_and_names_the_first_left_out() {
        // As the store returns them with a limit of 3 + 1: by host text, then oldest first.
        let mut rows = vec![row(0, 80, 1, 0, false), row(60, 80, 1, 0, false), row(0, 81, 1, 0, false)];
        rows.push(row(60, 81, 1, 0, false));
        let cut = cut_to_whole_hosts(&mut rows, 3);
        assert_eq!(cut.as_deref(), Some("10.0.0.1:81"), "81 may have lost columns");
        assert_eq!(rows, [row(0, 80, 1, 0, false), row(60, 80, 1, 0, false)]);
        assert_eq!(cut_to_whole_hosts(&mut rows, 3), None, "no more than the limit: no cut");
        let history = history(&rows, Range::Hour, 0);
        let entry = HostEntry { addr: SocketAddr::from(([10, 0, 0, 1], 82)), weight: 1, in_rotation: true };
        let listed = history.hosts_to_list(&[entry]);
        assert_eq!(listed, [entry.addr, SocketAddr::from(([10, 0, 0, 1], 80))], "a host that left is listed");
    }

    #[test]
    fn sums_near_u64_max_saturate() {
        let huge = u64::MAX - 1;
        let rows = [
            row(3_000, 80, huge, huge, true),
            row(3_000, 81, huge, huge, true),
            row(3_300, 80, huge, 0, false),
        ];
        let history = history(&rows, Range::SixHours, 3_000);
        assert_eq!(history.route.calls(), u64::MAX);
        assert_eq!(history.route.totals().succ, u64::MAX);
        let chart = crate::chart::history::history_chart(
            "huge",
            &history.route,
            crate::chart::history::Frame::LARGE,
            &|ts| ts.to_string(),
        );
        assert!(chart.contains(&format!("data-calls=\"{}\"", u64::MAX)));
    }

    #[test]
    fn the_report_joins_live_status_and_history() {
        let host = |port, in_rotation| HostEntry {
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
            weight: 1,
            in_rotation,
        };
        let mut overview = Overview::default();
        overview.routes.insert((1, 1), vec![host(80, true), host(81, true)]);
        overview.routes.insert((2, 1), vec![host(80, true)]);
        overview.routes.insert((3, 1), vec![host(80, false)]);
        let stat = |key: RouteKey, port, overload| StatRow {
            modid: key.0,
            cmdid: key.1,
            host: SocketAddr::from(([10, 0, 0, 1], port)),
            caller: 1,
            succ: 1,
            err: 9,
            ts: 100,
            overload,
        };
        let calls = call_table(&[stat((1, 1), 81, true), stat((2, 1), 80, true)]);
        let list = ServiceList::build(&overview, &calls);
        let failing = Problem::HighErrorRate { route: (1, 1), rate: 0.9, calls: 100 };
        let report = ProblemReport::build(&list, &calls, Ok(vec![failing]), ProblemRules::default(), 9);
        assert_eq!(
            report.unhealthy.iter().map(|u| (u.key, u.overloaded, u.out_of_rotation)).collect::<Vec<_>>(),
            [((2, 1), 1, 0), ((3, 1), 0, 1)]
        );
        assert_eq!(report.overloaded_count, 2);
        let marks = report.routes();
        assert_eq!(marks[&(1, 1)], "high error rate");
        assert_eq!(marks[&(2, 1)], "no healthy host");
        assert_eq!(marks.len(), 3);
        assert!(!report.is_empty());
        let quiet = ProblemReport::build(
            &ServiceList::default(),
            &CallTable::new(),
            Ok(vec![]),
            ProblemRules::default(),
            9,
        );
        assert!(quiet.is_empty() && quiet.routes().is_empty());
        let no_history = ProblemReport::build(
            &ServiceList::default(),
            &CallTable::new(),
            Err("no history".into()),
            ProblemRules::default(),
            9,
        );
        assert!(!no_history.is_empty(), "not judged is not the same as fine");
    }
}
