//! Minute rows summed into a chart's columns: per host ([`into_buckets`], what
//! `HistoryStore::history_buckets` returns) and per route ([`route_sums`], what
//! `HistoryStore::route_buckets` returns). The memory store sums its rows with these; the
//! MySQL store has the server sum them (`GROUP BY` over the primary key's range, so that one
//! row per column crosses the wire), into columns of the same `bucket_length`.

use std::collections::BTreeMap;

use super::HistoryRow;

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

/// The seconds of a bucket asked for as `bucket`: the rows are minutes, so one at least.
pub(super) fn bucket_length(bucket: u64) -> u64 {
    bucket.max(60)
}

/// Sums minute rows per host into buckets of `bucket` seconds, in the order of
/// [`HistoryStore::history_buckets`](super::HistoryStore::history_buckets) (host text, then bucket); at most `limit` rows.
pub fn into_buckets(rows: &[HistoryRow], bucket: u64, limit: usize) -> Vec<HistoryRow> {
    let bucket = bucket_length(bucket);
    let mut sums: BTreeMap<(String, u64), HistoryRow> = BTreeMap::new();
    for row in rows {
        let start = row.minute / bucket * bucket;
        sums.entry((row.host.to_string(), start))
            .and_modify(|sum| sum.add(row))
            .or_insert(HistoryRow { minute: start, ..*row });
    }
    sums.into_values().take(limit).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::tests::row;
    use crate::store::history::{HistoryStore, MemoryHistory};

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
}
