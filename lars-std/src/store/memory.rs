//! In-memory stores, for tests and for running without a database.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{RouteKey, RouteStore, RouteTable, StatKey, StatRow, StatsStore, StoreError};
use lars_core::wire::native::WeightedHost;

/// A route store held in memory; clones share the same table, so a test can change routes
/// while lars-dns reads them.
#[derive(Debug, Clone, Default)]
pub struct MemoryRoutes {
    table: Arc<Mutex<RouteTable>>,
}

impl MemoryRoutes {
    /// An empty store at version 0.
    pub fn new() -> Self {
        MemoryRoutes::default()
    }

    fn lock(&self) -> MutexGuard<'_, RouteTable> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the hosts of a route (empty removes it) and bumps the version.
    pub fn set_route(&self, key: RouteKey, hosts: &[SocketAddr]) {
        let weighted: Vec<(SocketAddr, u32)> = hosts.iter().map(|&addr| (addr, 1)).collect();
        self.set_weighted_route(key, &weighted);
    }

    /// Replaces the hosts of a route, each with its weight, and bumps the version.
    pub fn set_weighted_route(&self, key: RouteKey, hosts: &[(SocketAddr, u32)]) {
        let mut table = self.lock();
        table.routes.remove(&key);
        for &(addr, weight) in hosts {
            table.insert(key, WeightedHost { addr, weight });
        }
        table.version += 1;
    }
}

impl RouteStore for MemoryRoutes {
    fn version(&mut self) -> Result<u64, StoreError> {
        Ok(self.lock().version)
    }

    fn load(&mut self) -> Result<RouteTable, StoreError> {
        Ok(self.lock().clone())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Statistics kept in memory, latest row per (route, host, caller); clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryStats {
    rows: Arc<Mutex<BTreeMap<StatKey, StatRow>>>,
}

impl MemoryStats {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStats::default()
    }

    /// Every row, in key order.
    pub fn rows(&self) -> Vec<StatRow> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).values().copied().collect()
    }
}

impl StatsStore for MemoryStats {
    fn store(&mut self, rows: &[StatRow]) -> Result<(), StoreError> {
        let mut stored = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        for row in rows {
            stored.insert(row.key(), *row);
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
