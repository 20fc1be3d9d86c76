//! The loader's decisions over the memory store, with the time as a parameter: full loads,
//! changes read from a change log, the shrink protection's hold and confirmation, and the
//! unready state of a store that has never loaded.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lars_core::time::Instant;
use lars_core::wire::native::WeightedHost;

use super::{Loader, Polled, current, shrinks_too_much};
use crate::dns::{DnsConfig, DnsStats};
use crate::reactor::ServerConfig;
use crate::store::memory::MemoryRoutes;
use crate::store::{RouteChanges, RouteStore, RouteTable, StoreError};

fn table(routes: usize, hosts_each: u16, loaded: bool) -> RouteTable {
    let mut table = RouteTable { loaded, ..RouteTable::default() };
    for route in 0..routes {
        for port in 0..hosts_each {
            let addr = SocketAddr::from(([10, 0, 0, 1], 1000 + port));
            table.insert((route as i32, 1), WeightedHost { addr, weight: 1 });
        }
    }
    table
}

#[test]
fn losing_more_than_the_limit_of_routes_or_hosts_is_too_much() {
    let served = table(10, 4, true);
    assert!(!shrinks_too_much(&served, &table(5, 4, false), 0.5), "half the routes is the limit");
    assert!(shrinks_too_much(&served, &table(4, 4, false), 0.5), "six of ten routes");
    assert!(shrinks_too_much(&served, &table(10, 1, false), 0.5), "three hosts of four in each route");
    assert!(shrinks_too_much(&served, &RouteTable::default(), 0.5), "an empty store");
    assert!(!shrinks_too_much(&served, &table(20, 8, false), 0.5), "growth");
    assert!(!shrinks_too_much(&served, &RouteTable::default(), 1.0), "1 turns it off");
    assert!(!shrinks_too_much(&table(10, 4, false), &table(1, 1, false), 0.5), "nothing loaded yet");
    assert!(!shrinks_too_much(&table(2, 1, true), &RouteTable::default(), 0.5), "too few to matter");
}

/// The memory store, with a change log a test writes and a switch that makes it fail.
#[derive(Clone, Default)]
struct Scripted {
    routes: MemoryRoutes,
    changes: Arc<Mutex<VecDeque<RouteChanges>>>,
    down: Arc<Mutex<bool>>,
}

impl Scripted {
    fn check(&self) -> Result<(), StoreError> {
        match *self.down.lock().unwrap() {
            true => Err(StoreError::Unavailable("switched off by the test".into())),
            false => Ok(()),
        }
    }

    fn set_down(&self, down: bool) {
        *self.down.lock().unwrap() = down;
    }

    /// Changes a route in the store and names it in the change log.
    fn change(&self, key: (i32, i32), hosts: &[SocketAddr]) {
        self.routes.set_route(key, hosts);
        let version = self.routes.clone().version().unwrap();
        let hosts = hosts.iter().map(|&addr| WeightedHost { addr, weight: 1 }).collect();
        self.changes.lock().unwrap().push_back(RouteChanges { version, routes: vec![(key, hosts)] });
    }
}

impl RouteStore for Scripted {
    fn version(&mut self) -> Result<u64, StoreError> {
        self.check()?;
        self.routes.version()
    }

    fn load(&mut self) -> Result<RouteTable, StoreError> {
        self.check()?;
        self.changes.lock().unwrap().clear();
        self.routes.load()
    }

    fn changes(&mut self) -> Result<Option<RouteChanges>, StoreError> {
        self.check()?;
        Ok(self.changes.lock().unwrap().pop_front())
    }

    fn describe(&self) -> String {
        "scripted memory".into()
    }
}

fn host(i: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 1, 1], 2000 + i))
}

fn hosts(n: u16) -> Vec<SocketAddr> {
    (0..n).map(host).collect()
}

const RELOAD: Duration = Duration::from_secs(10);

fn loader(store: &Scripted) -> (Loader, Arc<DnsStats>) {
    let mut config = DnsConfig::new(ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0))));
    config.reload_interval = RELOAD;
    let stats = Arc::new(DnsStats::default());
    (Loader::new(config, Box::new(store.clone()), Arc::clone(&stats), at(0)), stats)
}

fn at(secs: u64) -> Instant {
    Instant::from_millis(secs * 1000)
}

fn installed(polled: Polled) -> Vec<(i32, i32)> {
    match polled {
        Polled::Installed { changed, .. } => changed,
        other => panic!("expected an installed table, got {other:?}"),
    }
}

#[test]
fn a_full_load_installs_the_store_and_names_what_changed() {
    let store = Scripted::default();
    store.routes.set_route((1, 1), &hosts(2));
    let (mut loader, stats) = loader(&store);
    let served = current(&loader.snapshot());
    assert!(served.loaded);
    assert_eq!(served.hosts((1, 1)).len(), 2);
    assert_eq!(stats.ready.load(Ordering::Relaxed), 1);
    assert!(matches!(loader.poll(at(1)), Polled::Unchanged), "the version did not move");

    // The memory store keeps no change log: a moved version reads everything.
    store.routes.set_route((2, 1), &hosts(1));
    assert_eq!(installed(loader.poll(at(2))), vec![(2, 1)]);
    assert_eq!(current(&loader.snapshot()).hosts((2, 1)).len(), 1);
    assert_eq!(stats.change_reads.load(Ordering::Relaxed), 0);

    // The periodic reload reads everything though nothing moved, and changes nothing.
    assert!(matches!(loader.poll(at(5)), Polled::Unchanged));
    assert_eq!(installed(loader.poll(at(13))), Vec::<(i32, i32)>::new());
    assert_eq!(stats.loads.load(Ordering::Relaxed), 3);
}

#[test]
fn a_change_log_is_applied_to_the_table_served() {
    let store = Scripted::default();
    store.routes.set_route((1, 1), &hosts(2));
    store.routes.set_route((2, 1), &hosts(3));
    let (mut loader, stats) = loader(&store);

    store.change((1, 1), &hosts(4));
    assert_eq!(installed(loader.poll(at(1))), vec![(1, 1)]);
    store.change((2, 1), &[]);
    assert_eq!(installed(loader.poll(at(2))), vec![(2, 1)], "a route gone is a change");
    let served = current(&loader.snapshot());
    assert_eq!(served.hosts((1, 1)).len(), 4);
    assert!(served.hosts((2, 1)).is_empty());
    assert_eq!(served.version, store.routes.clone().version().unwrap());
    assert_eq!(stats.change_reads.load(Ordering::Relaxed), 2);

    // A change log that names a route whose hosts are what they were: nothing to push.
    store.change((1, 1), &hosts(4));
    assert_eq!(installed(loader.poll(at(3))), Vec::<(i32, i32)>::new());
}

/// A store of twenty routes of one host each.
fn twenty_routes() -> Scripted {
    let store = Scripted::default();
    for route in 0..20 {
        store.routes.set_route((route, 1), &hosts(1));
    }
    store
}

fn remove(store: &Scripted, routes: std::ops::Range<i32>) {
    for route in routes {
        store.routes.set_route((route, 1), &[]);
    }
}

#[test]
fn a_load_that_removes_too_much_is_held_until_a_later_full_load_confirms_it() {
    let store = twenty_routes();
    let (mut loader, stats) = loader(&store);
    remove(&store, 0..15);
    // Fifteen of twenty routes gone at once: held, the twenty still served.
    assert!(matches!(loader.poll(at(1)), Polled::Held));
    assert_eq!(current(&loader.snapshot()).routes.len(), 20);
    // The store still says so, but sooner than a reload interval after the hold: still held.
    store.routes.set_route((19, 1), &hosts(2));
    assert!(matches!(loader.poll(at(5)), Polled::Held));
    assert_eq!(current(&loader.snapshot()).routes.len(), 20);
    // The next full load (a reload interval after the last), more than a reload interval after
    // the hold began, still says so: it is believed.
    let changed = installed(loader.poll(at(15)));
    assert_eq!(changed.len(), 16, "the fifteen routes gone and the one that grew");
    assert_eq!(current(&loader.snapshot()).routes.len(), 5);
    assert_eq!(stats.held_loads.load(Ordering::Relaxed), 2);
}

#[test]
fn a_hold_ends_when_the_store_comes_back() {
    let store = twenty_routes();
    let (mut loader, _stats) = loader(&store);
    let all = store.routes.clone().load().unwrap();
    remove(&store, 0..20);
    assert!(matches!(loader.poll(at(1)), Polled::Held), "an empty store");
    for (&key, hosts) in &all.routes {
        let addrs: Vec<SocketAddr> = hosts.iter().map(|h| h.addr).collect();
        store.routes.set_route(key, &addrs);
    }
    assert_eq!(installed(loader.poll(at(2))), Vec::<(i32, i32)>::new(), "back as it was");
    // The hold ended: the next shrink is held afresh, not confirmed by the old hold's age.
    remove(&store, 0..20);
    assert!(matches!(loader.poll(at(12)), Polled::Held));
}

#[test]
fn a_store_that_never_loaded_is_unready_until_it_does() {
    let store = Scripted::default();
    store.routes.set_route((1, 1), &hosts(2));
    store.set_down(true);
    let (mut loader, stats) = loader(&store);
    assert!(!current(&loader.snapshot()).loaded, "nothing read: not ready");
    assert_eq!(stats.ready.load(Ordering::Relaxed), 0);
    assert_eq!(stats.load_errors.load(Ordering::Relaxed), 1);

    // Failures back off: the poll interval doubled for each, at most retry_max.
    assert!(matches!(loader.poll(at(1)), Polled::Failed));
    assert!(matches!(loader.poll(at(2)), Polled::Failed));
    assert_eq!(loader.wait(), Duration::from_secs(4));
    assert_eq!(stats.store_up.load(Ordering::Relaxed), 0);

    store.set_down(false);
    store.routes.set_route((2, 1), &hosts(1));
    let changed = installed(loader.poll(at(3)));
    assert_eq!(changed, vec![(1, 1), (2, 1)]);
    let served = current(&loader.snapshot());
    assert!(served.loaded);
    assert_eq!(stats.ready.load(Ordering::Relaxed), 1);
    assert_eq!(stats.store_up.load(Ordering::Relaxed), 1);
    assert_eq!(loader.wait(), Duration::from_secs(1));
}
