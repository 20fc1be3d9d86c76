//! lars-dns: serves routes from an immutable snapshot and pushes changes to the agents that
//! asked for them.
//!
//! Worker threads answer `GetRouteRequest` (Lars msgid 1, answered with msgid 2; native 0x120,
//! answered with 0x121) from the current [`RouteTable`] snapshot, and remember each connection's
//! subscriptions. A loader thread polls the store's version every `poll_interval` (1 s); when it
//! moves, it reads the routes the store's change log names (or everything, if the store cannot
//! name them), and it reloads everything every `reload_interval` (10 s). When the table changes
//! it swaps the snapshot (readers never wait for the loader) and sends each worker the changed
//! routes, which the worker pushes to their subscribers with the full new host list (empty: the
//! route is gone). If the store goes away, lars-dns keeps serving the last snapshot and retries with
//! backoff.
//!
//! The loader is `dns/loader.rs`, the workers `dns/worker.rs`. Subscriptions are bounded
//! (`dns/subscriptions.rs`): up to a cap per connection and a cap
//! over all connections, and of routes that do not exist at most [`UNKNOWN_PER_CONN`] per
//! connection, the oldest going first; past them a request is answered but not subscribed,
//! and counted.

mod loader;
mod subscriptions;
mod worker;

use loader::{Loader, Snapshot, current};
pub use subscriptions::{SubscriptionCaps, UNKNOWN_PER_CONN};
use worker::DnsWorker;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use lars_core::wire::native::Role;

use crate::daemon::ServerStatsCell;
use crate::reactor::{ServerConfig, ServerHandle, TcpServer};
use crate::store::{RouteKey, RouteStore, RouteTable};
use crate::time::Clock;

/// How lars-dns runs.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// The TCP server (`[reactor]`).
    pub server: ServerConfig,
    /// How often the store's version is checked.
    pub poll_interval: Duration,
    /// How often everything is reloaded regardless.
    pub reload_interval: Duration,
    /// The longest wait between retries while the store is unreachable.
    pub retry_max: Duration,
    /// A load that would remove more than this fraction of the routes, or of the hosts, at
    /// once is held (the last routes keep being served) until a later load says the same
    /// (`[dns] shrink_limit`; 1 turns the check off).
    pub shrink_limit: f64,
    /// The shared secret agents must prove, if any, and whether Lars-codec agents are served
    /// anyway (`[auth]`).
    pub auth: crate::auth::AuthConfig,
    /// Where to serve Prometheus metrics (`--metrics`), if anywhere.
    pub metrics: Option<SocketAddr>,
    /// The caps on subscriptions, per connection and in total.
    pub subscriptions: SubscriptionCaps,
}

impl DnsConfig {
    /// The original's intervals (1 s poll, 10 s reload) on `server`.
    pub fn new(server: ServerConfig) -> Self {
        DnsConfig {
            server,
            poll_interval: Duration::from_secs(1),
            reload_interval: Duration::from_secs(10),
            retry_max: Duration::from_secs(30),
            shrink_limit: 0.5,
            auth: crate::auth::AuthConfig::default(),
            metrics: None,
            subscriptions: SubscriptionCaps::default(),
        }
    }
}

/// lars-dns's counters.
#[derive(Debug, Default)]
pub struct DnsStats {
    /// Tables installed: full loads and change-log reads.
    pub loads: AtomicU64,
    /// Of those, the ones read from the store's change log (only the changed routes).
    pub change_reads: AtomicU64,
    /// Failed loads or version checks.
    pub load_errors: AtomicU64,
    /// Routes in the snapshot.
    pub routes: AtomicU64,
    /// Host entries in the snapshot.
    pub hosts: AtomicU64,
    /// Route requests answered.
    pub requests: AtomicU64,
    /// Route pushes sent.
    pub pushes: AtomicU64,
    /// Pushes that could not be sent (the agent's connection was full or gone).
    pub push_failures: AtomicU64,
    /// Routes too large to send in one frame.
    pub oversize_routes: AtomicU64,
    /// Route requests that came before the store was first loaded (answered "not ready", or
    /// not at all in the Lars codec).
    pub unready_answers: AtomicU64,
    /// 1 once a full load of the store succeeded.
    pub ready: AtomicU64,
    /// Loads held because they would have removed too much at once.
    pub held_loads: AtomicU64,
    /// Requests with a body that does not decode, or a msgid lars-dns does not serve.
    pub bad_requests: AtomicU64,
    /// Handshakes: connections authenticated and refused.
    pub auth: Arc<crate::auth::AuthStats>,
    /// 1 while the last access to the store succeeded (0 while it fails and is retried).
    pub store_up: AtomicU64,
    /// Subscriptions held now, over all connections.
    pub subscriptions: AtomicU64,
    /// Route requests answered but not subscribed: the connection's cap or the total was
    /// reached.
    pub subscriptions_refused: AtomicU64,
    /// Changes pushed (each to every subscriber of its routes), and the microseconds from
    /// noticing each to the end of its pushes, summed over the workers.
    pub push_rounds: AtomicU64,
    /// See `push_rounds`.
    pub push_latency_us: AtomicU64,
}

impl DnsStats {
    /// Every counter, named, for a `StatsResponse`.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        counters![
            self;
            loads, change_reads, load_errors, routes, hosts, requests, pushes, push_failures,
            oversize_routes, unready_answers, ready, held_loads, bad_requests, store_up, subscriptions,
            subscriptions_refused, push_rounds, push_latency_us,
        ]
        .into_iter()
        .chain(self.auth.counters())
        .collect()
    }
}

/// A running lars-dns.
pub struct Dns {
    server: ServerHandle<Push>,
    snapshot: Snapshot,
    stats: Arc<DnsStats>,
    stop: Arc<AtomicBool>,
    loader: Option<JoinHandle<()>>,
    metrics: Option<crate::metrics::MetricsServer>,
}

impl Dns {
    /// Loads the routes (an unreachable store is retried in the background; lars-dns starts
    /// empty meanwhile), starts the server and the loader.
    pub fn start(config: DnsConfig, store: Box<dyn RouteStore>) -> io::Result<Dns> {
        let stats = Arc::new(DnsStats::default());
        let clock = Clock::new();
        let loader = Loader::new(config.clone(), store, Arc::clone(&stats), clock.now());
        let snapshot = loader.snapshot();
        let server_stats = ServerStatsCell::default();
        let auth = Arc::new(config.auth.clone());
        let server = TcpServer::start(config.server.clone(), |_| {
            let gate = crate::auth::Gate::new(Arc::clone(&auth), Arc::clone(&stats.auth), Role::Dns);
            let (snapshot, stats) = (Arc::clone(&snapshot), Arc::clone(&stats));
            DnsWorker::new(gate, snapshot, stats, Arc::clone(&server_stats), config.subscriptions)
        })?;
        let _ = server_stats.set(server.shared_stats());
        let (page_stats, page_server) = (Arc::clone(&stats), server.shared_stats());
        let metrics = crate::metrics::MetricsServer::start_if(config.metrics, move || {
            crate::metrics::dns_page(&page_stats, &page_server)
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let (poster, stopped) = (server.poster(), Arc::clone(&stop));
        let loader = std::thread::Builder::new()
            .name("lars-dns-loader".into())
            .spawn(move || loader.run(clock, poster, stopped))?;
        Ok(Dns { server, snapshot, stats, stop, loader: Some(loader), metrics })
    }

    /// Where lars-dns listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Where Prometheus metrics are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(crate::metrics::MetricsServer::local_addr)
    }

    /// lars-dns's counters.
    pub fn stats(&self) -> &DnsStats {
        &self.stats
    }

    /// The server's counters (connections, frames).
    pub fn server_stats(&self) -> &crate::reactor::ServerStats {
        self.server.stats()
    }

    /// The routes being served.
    pub fn snapshot(&self) -> Arc<RouteTable> {
        current(&self.snapshot)
    }

    /// Stops the loader and the server.
    pub fn shutdown(mut self) {
        self.stop_loader();
    }

    fn stop_loader(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(loader) = self.loader.take() {
            loader.thread().unpark();
            let _ = loader.join();
        }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop_loader();
    }
}

/// Changed routes, for each worker to push to its subscribers.
struct Push {
    table: Arc<RouteTable>,
    changed: Arc<Vec<RouteKey>>,
    /// Started when the loader noticed the change.
    noticed: crate::time::Stopwatch,
}
