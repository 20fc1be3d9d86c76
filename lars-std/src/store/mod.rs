//! Stores: where routes come from and where call statistics go.
//!
//! [`RouteStore`] is what lars-dns loads routes from: the route file (the embedded default),
//! MySQL (schema-compatible with the original `lars_dns` database), or memory (tests).
//! [`StatsStore`] is where lars-reporter writes call statistics, and [`history::HistoryStore`]
//! where it keeps per-minute call history and the agents' decisions.
//!
//! lars-dns works out which routes changed by comparing the old and the new [`RouteTable`], so
//! every store only has to say what the routes are now and cheaply whether that may have
//! changed ([`RouteStore::version`]). A store with a change log (MySQL's `RouteChange`) can
//! also say which routes changed ([`RouteStore::changes`]), so that a change costs lars-dns
//! a read of those routes rather than of every route.

#[cfg(feature = "mysql")]
pub mod console;
pub mod file;
pub mod history;
pub mod memory;
#[cfg(feature = "mysql")]
pub mod mysql;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use lars_core::wire::native::WeightedHost;

/// A route's key: `(modid, cmdid)`.
pub type RouteKey = (i32, i32);

/// Every route at one version of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// The store's version when this was read.
    pub version: u64,
    /// Hosts of each route, sorted by address, without duplicates. Shared, so that a table
    /// with a few routes changed costs a copy of the map, not of every host.
    pub routes: BTreeMap<RouteKey, Arc<Vec<WeightedHost>>>,
    /// Whether this is what the store holds: lars-dns sets it once a full load succeeded. A
    /// table that is not (the empty one lars-dns starts with) must not be taken for "these
    /// routes do not exist".
    pub loaded: bool,
}

/// A host of a route as the stores keep it, out of rotation included: what the console shows
/// and the route file's lines hold (lars-dns serves only the hosts in rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostEntry {
    /// The host.
    pub addr: SocketAddr,
    /// Its weight (1 where the store keeps none).
    pub weight: u32,
    /// Whether lars-dns serves it.
    pub in_rotation: bool,
}

/// Routes that changed, from a store's change log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteChanges {
    /// The store's version these changes bring a table to.
    pub version: u64,
    /// Each changed route with its hosts now, sorted by address (none: the route is gone).
    pub routes: Vec<(RouteKey, Vec<WeightedHost>)>,
}

impl RouteTable {
    /// Adds a host to a route (kept sorted, duplicates ignored).
    pub fn insert(&mut self, key: RouteKey, host: WeightedHost) {
        let hosts = Arc::make_mut(self.routes.entry(key).or_default());
        if let Err(at) = hosts.binary_search_by(|h| h.addr.cmp(&host.addr)) {
            hosts.insert(at, host);
        }
    }

    /// The hosts of `key` (empty if the route does not exist).
    pub fn hosts(&self, key: RouteKey) -> &[WeightedHost] {
        self.routes.get(&key).map_or(&[], |hosts| hosts.as_slice())
    }

    /// This table with `changes` applied, at their version.
    pub fn with_changes(&self, changes: RouteChanges) -> RouteTable {
        let mut table =
            RouteTable { version: changes.version, routes: self.routes.clone(), loaded: self.loaded };
        for (key, hosts) in changes.routes {
            if hosts.is_empty() {
                table.routes.remove(&key);
            } else {
                table.routes.insert(key, Arc::new(hosts));
            }
        }
        table
    }

    /// The routes whose hosts differ between `self` and `newer`, including routes that appeared
    /// or disappeared.
    pub fn changed_routes(&self, newer: &RouteTable) -> Vec<RouteKey> {
        let mut changed: Vec<RouteKey> = newer
            .routes
            .iter()
            .filter(|(key, hosts)| self.routes.get(key) != Some(hosts))
            .map(|(key, _)| *key)
            .collect();
        changed.extend(self.routes.keys().filter(|key| !newer.routes.contains_key(key)));
        changed.sort_unstable();
        changed
    }

    /// Number of host entries over all routes.
    pub fn host_count(&self) -> usize {
        self.routes.values().map(|hosts| hosts.len()).sum()
    }
}

/// Why no caller could reach `addr`, if none could: port 0, or an unspecified (`0.0.0.0`,
/// `::`), broadcast (`255.255.255.255`) or multicast address. A route store refuses such a
/// host with the place it came from.
pub fn unreachable_host(addr: SocketAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    if addr.port() == 0 {
        return Some("port is 0");
    }
    match addr.ip() {
        ip if ip.is_unspecified() => Some("address is unspecified (0.0.0.0 or ::)"),
        IpAddr::V4(ip) if ip.is_broadcast() => Some("address is the broadcast address"),
        ip if ip.is_multicast() => Some("address is multicast"),
        _ => None,
    }
}

/// One row of call statistics: what lars-reporter stores (the original's `ServerCallStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatRow {
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// The host.
    pub host: SocketAddr,
    /// The reporting agent.
    pub caller: u32,
    /// Successful calls in the period.
    pub succ: u32,
    /// Failed calls in the period.
    pub err: u32,
    /// Unix time of the report.
    pub ts: u64,
    /// Whether the agent considers the host overloaded.
    pub overload: bool,
}

/// What identifies a statistics row: a later row with the same key replaces it.
pub type StatKey = (RouteKey, SocketAddr, u32);

impl StatRow {
    /// The row's key: route, host and caller.
    pub fn key(&self) -> StatKey {
        ((self.modid, self.cmdid), self.host, self.caller)
    }
}

/// A store failed; the caller keeps what it has and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store cannot be reached (connection refused, file missing...).
    Unavailable(String),
    /// The store's contents are invalid; the message names where.
    Invalid(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(why) => write!(f, "store unavailable: {why}"),
            StoreError::Invalid(why) => write!(f, "invalid store contents: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Where lars-dns reads routes.
///
/// # Examples
///
/// A store only says what the routes are and cheaply whether they may have changed; lars-dns
/// works out the rest.
///
/// ```
/// use lars_std::store::memory::MemoryRoutes;
/// use lars_std::store::RouteStore;
///
/// let routes = MemoryRoutes::new();
/// let mut store = routes.clone(); // clones share one table
/// routes.set_route((1001, 1), &["10.0.0.7:80".parse().unwrap()]);
/// assert_eq!(store.version().unwrap(), 1);
/// let table = store.load().unwrap();
/// assert_eq!(table.hosts((1001, 1)).len(), 1);
/// ```
pub trait RouteStore: Send {
    /// A version that changes whenever the routes may have changed (the original's
    /// `RouteVersion`, a file's modification time...). Cheap: polled every second.
    fn version(&mut self) -> Result<u64, StoreError>;

    /// Every route, now.
    fn load(&mut self) -> Result<RouteTable, StoreError>;

    /// The routes changed since the last [`RouteStore::load`] or `changes`, with their hosts
    /// now. `Ok(None)` when the store cannot tell (it keeps no change log, the log names no
    /// change although the version moved, or it is too long to be worth it): lars-dns then
    /// loads everything. The store keeps its own place in its log, so that replicas sharing
    /// one store each read every change.
    fn changes(&mut self) -> Result<Option<RouteChanges>, StoreError> {
        Ok(None)
    }

    /// A short description for logs.
    fn describe(&self) -> String;
}

/// Where lars-reporter writes call statistics. Rows for the same (route, host, caller) replace
/// each other, as the original's `ON DUPLICATE KEY UPDATE` does.
pub trait StatsStore: Send {
    /// Stores a batch of rows.
    fn store(&mut self, rows: &[StatRow]) -> Result<(), StoreError>;

    /// A short description for logs.
    fn describe(&self) -> String;
}
