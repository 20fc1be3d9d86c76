//! What the pages show, computed from the store's data: the service list with each route's
//! health, its search and paging, and per-host call status. Pure functions over plain data, so
//! the benchmark and the unit tests need no store.

pub mod history;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use lars_std::store::RouteKey;
use lars_std::store::StatRow;
use lars_std::store::console::{HostEntry, Overview};

/// Routes per page of the service list.
pub const PAGE_SIZE: usize = 50;

/// One route in the service list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    /// The route.
    pub key: RouteKey,
    /// The module's description (may be empty).
    pub module: String,
    /// The command's description (may be empty).
    pub command: String,
    /// Hosts, out of rotation included.
    pub hosts: u32,
    /// Hosts in rotation and not overloaded.
    pub healthy: u32,
    /// Hosts some agent reports overloaded.
    pub overloaded: u32,
    /// Hosts out of rotation.
    pub out_of_rotation: u32,
    /// What a search looks in: ids and descriptions, lower case.
    search: String,
}

/// Calls to one host of a route, summed over the agents that report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostCalls {
    /// Successful calls in the last reported period.
    pub succ: u64,
    /// Failed calls.
    pub err: u64,
    /// Whether any agent reports it overloaded.
    pub overloaded: bool,
    /// Agents reporting it.
    pub callers: u32,
    /// The latest report's Unix time.
    pub ts: u64,
}

/// Statistics rows summed per route and host.
pub type CallTable = BTreeMap<RouteKey, BTreeMap<SocketAddr, HostCalls>>;

/// Sums statistics rows per route and host.
pub fn call_table(rows: &[StatRow]) -> CallTable {
    let mut table = CallTable::new();
    for row in rows {
        let calls = table.entry((row.modid, row.cmdid)).or_default().entry(row.host).or_default();
        calls.succ += u64::from(row.succ);
        calls.err += u64::from(row.err);
        calls.overloaded |= row.overload;
        calls.callers += 1;
        calls.ts = calls.ts.max(row.ts);
    }
    table
}

/// A host's state as the pages show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Served, and no agent reports it overloaded.
    Healthy,
    /// Served, and some agent reports it overloaded.
    Overloaded,
    /// Taken out of rotation: kept in the store, not served.
    OutOfRotation,
}

/// The state of `host` given its calls.
pub fn host_state(host: &HostEntry, calls: Option<&HostCalls>) -> HostState {
    if !host.in_rotation {
        HostState::OutOfRotation
    } else if calls.is_some_and(|c| c.overloaded) {
        HostState::Overloaded
    } else {
        HostState::Healthy
    }
}

/// Every route with its counts, in key order.
#[derive(Debug, Clone, Default)]
pub struct ServiceList {
    /// The store version it was built from.
    pub version: u64,
    /// The routes.
    pub rows: Vec<ServiceRow>,
}

/// Which routes a service list page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceQuery {
    /// Words that must all appear in the ids or descriptions (case-insensitive).
    pub search: String,
    /// Only routes without a healthy host.
    pub unhealthy_only: bool,
    /// The page, from 0.
    pub page: usize,
}

/// One page of the service list.
#[derive(Debug)]
pub struct ServicePage<'a> {
    /// The routes on this page.
    pub rows: Vec<&'a ServiceRow>,
    /// Routes matching the query in all.
    pub matching: usize,
    /// Routes without a healthy host among those matching.
    pub unhealthy: usize,
}

impl ServiceList {
    /// Builds the list from the store's routes and the summed calls.
    pub fn build(overview: &Overview, calls: &CallTable) -> ServiceList {
        let rows = overview
            .routes
            .iter()
            .map(|(&key, hosts)| {
                let route_calls = calls.get(&key);
                let (mut healthy, mut overloaded, mut out) = (0, 0, 0);
                for host in hosts {
                    match host_state(host, route_calls.and_then(|c| c.get(&host.addr))) {
                        HostState::Healthy => healthy += 1,
                        HostState::Overloaded => overloaded += 1,
                        HostState::OutOfRotation => out += 1,
                    }
                }
                let module = overview.modules.get(&(key.0 as u32)).cloned().unwrap_or_default();
                let command = overview.commands.get(&(key.1 as u32)).cloned().unwrap_or_default();
                let search = format!("{} {} {module} {command}", key.0, key.1).to_lowercase();
                ServiceRow {
                    key,
                    module,
                    command,
                    hosts: hosts.len() as u32,
                    healthy,
                    overloaded,
                    out_of_rotation: out,
                    search,
                }
            })
            .collect();
        ServiceList { version: overview.version, rows }
    }

    /// The page `query` asks for. A word that is a number matches an id exactly; other words
    /// match inside the descriptions.
    pub fn page(&self, query: &ServiceQuery) -> ServicePage<'_> {
        let words: Vec<String> = query.search.split_whitespace().map(str::to_lowercase).collect();
        let matches = |row: &ServiceRow| {
            words.iter().all(|word| match word.parse::<i64>() {
                Ok(id) => i64::from(row.key.0) == id || i64::from(row.key.1) == id,
                Err(_) => row.search.contains(word.as_str()),
            })
        };
        let (mut matching, mut unhealthy) = (0, 0);
        let first = query.page.saturating_mul(PAGE_SIZE);
        let mut rows = Vec::with_capacity(PAGE_SIZE);
        for row in &self.rows {
            if !matches(row) {
                continue;
            }
            let bad = row.healthy == 0;
            unhealthy += usize::from(bad);
            if query.unhealthy_only && !bad {
                continue;
            }
            if matching >= first && rows.len() < PAGE_SIZE {
                rows.push(row);
            }
            matching += 1;
        }
        ServicePage { rows, matching, unhealthy }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overview() -> Overview {
        let host = |port, in_rotation| HostEntry {
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
            weight: 1,
            in_rotation,
        };
        let mut overview = Overview::default();
        overview.routes.insert((1, 1), vec![host(1, true), host(2, true), host(3, false)]);
        overview.routes.insert((2, 7), vec![host(1, true)]);
        overview.routes.insert((3, 1), vec![host(1, false)]);
        overview.modules.insert(1, "Payments".into());
        overview.commands.insert(7, "Refund lookup".into());
        overview
    }

    fn stat(key: RouteKey, port: u16, caller: u32, overload: bool) -> StatRow {
        StatRow {
            modid: key.0,
            cmdid: key.1,
            host: SocketAddr::from(([10, 0, 0, 1], port)),
            caller,
            succ: 10,
            err: 2,
            ts: 100 + u64::from(caller),
            overload,
        }
    }

    #[test]
    fn counts_hosts_by_state_and_sums_callers() {
        let calls =
            call_table(&[stat((1, 1), 2, 1, false), stat((1, 1), 2, 2, true), stat((2, 7), 1, 1, true)]);
        assert_eq!(
            calls[&(1, 1)][&SocketAddr::from(([10, 0, 0, 1], 2))],
            HostCalls { succ: 20, err: 4, overloaded: true, callers: 2, ts: 102 }
        );
        let list = ServiceList::build(&overview(), &calls);
        let row = |key| list.rows.iter().find(|r| r.key == key).unwrap();
        assert_eq!(
            (row((1, 1)).hosts, row((1, 1)).healthy, row((1, 1)).overloaded, row((1, 1)).out_of_rotation),
            (3, 1, 1, 1)
        );
        assert_eq!(row((2, 7)).healthy, 0, "its only host is overloaded");
        assert_eq!(row((3, 1)).healthy, 0, "its only host is out of rotation");
        assert_eq!(row((1, 1)).module, "Payments");
    }

    #[test]
    fn searches_ids_and_descriptions_and_pages() {
        let list = ServiceList::build(&overview(), &CallTable::new());
        let keys = |query: ServiceQuery| list.page(&query).rows.iter().map(|r| r.key).collect::<Vec<_>>();
        let search = |text: &str| ServiceQuery { search: text.into(), ..ServiceQuery::default() };
        assert_eq!(keys(search("payments")), [(1, 1)]);
        assert_eq!(keys(search("REFUND")), [(2, 7)]);
        assert_eq!(keys(search("7")), [(2, 7)], "a number matches an id, not a digit inside one");
        assert_eq!(keys(search("1")), [(1, 1), (3, 1)]);
        assert_eq!(keys(ServiceQuery { unhealthy_only: true, ..ServiceQuery::default() }), [(3, 1)]);
        let mut big = Overview::default();
        for modid in 0..(PAGE_SIZE as i32 * 2 + 5) {
            big.routes.insert((modid, 1), overview().routes[&(1, 1)].clone());
        }
        let list = ServiceList::build(&big, &CallTable::new());
        let third = list.page(&ServiceQuery { page: 2, ..ServiceQuery::default() });
        assert_eq!((third.rows.len(), third.matching), (5, PAGE_SIZE * 2 + 5));
        assert_eq!(third.rows[0].key, (PAGE_SIZE as i32 * 2, 1));
    }
}
