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
//! Subscriptions are bounded (`dns/subscriptions.rs`): up to a cap per connection and a cap
//! over all connections, and of routes that do not exist at most [`UNKNOWN_PER_CONN`] per
//! connection, the oldest going first; past them a request is answered but not subscribed,
//! and counted.

mod subscriptions;

use subscriptions::{Subscribed, Subscriptions};
pub use subscriptions::{SubscriptionCaps, UNKNOWN_PER_CONN};

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use lars_core::wire::native::{self, Role};
use lars_core::wire::{Codec, Decode, Frame, List, MsgId, RetCode, lars};

use crate::reactor::{
    CloseReason, ConnId, Conns, Control, Poster, Sender, ServerConfig, ServerHandle, Service, TcpServer,
};
use crate::store::{RouteKey, RouteStore, RouteTable};
use crate::time::Clock;
use lars_core::time::Instant;

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
        vec![
            ("loads", self.loads.load(Ordering::Relaxed)),
            ("change_reads", self.change_reads.load(Ordering::Relaxed)),
            ("load_errors", self.load_errors.load(Ordering::Relaxed)),
            ("routes", self.routes.load(Ordering::Relaxed)),
            ("hosts", self.hosts.load(Ordering::Relaxed)),
            ("requests", self.requests.load(Ordering::Relaxed)),
            ("pushes", self.pushes.load(Ordering::Relaxed)),
            ("push_failures", self.push_failures.load(Ordering::Relaxed)),
            ("oversize_routes", self.oversize_routes.load(Ordering::Relaxed)),
            ("unready_answers", self.unready_answers.load(Ordering::Relaxed)),
            ("ready", self.ready.load(Ordering::Relaxed)),
            ("held_loads", self.held_loads.load(Ordering::Relaxed)),
            ("bad_requests", self.bad_requests.load(Ordering::Relaxed)),
            ("store_up", self.store_up.load(Ordering::Relaxed)),
            ("subscriptions", self.subscriptions.load(Ordering::Relaxed)),
            ("subscriptions_refused", self.subscriptions_refused.load(Ordering::Relaxed)),
            ("push_rounds", self.push_rounds.load(Ordering::Relaxed)),
            ("push_latency_us", self.push_latency_us.load(Ordering::Relaxed)),
        ]
        .into_iter()
        .chain(self.auth.counters())
        .collect()
    }
}

type Snapshot = Arc<RwLock<Arc<RouteTable>>>;

/// The server's counters, set once the server has started (its workers are built before).
pub(crate) type ServerStatsCell = Arc<std::sync::OnceLock<Arc<crate::reactor::ServerStats>>>;

/// Answers a `StatsRequest` (already decoded: one that does not decode is the caller's bad
/// request) with a service's counters, the server's and the pool's.
pub(crate) fn answer_stats(
    request: native::StatsRequest,
    role: Role,
    own: Vec<(&'static str, u64)>,
    server: &ServerStatsCell,
    reply: &mut Sender<'_>,
) -> Control {
    let mut counters = own;
    if let Some(server) = server.get() {
        counters.extend(server.counters());
    }
    counters.extend(crate::daemon::pool_counters());
    let mut out = vec![0u8; 8192];
    match crate::daemon::stats_response(request.seq, role, &counters, &mut out) {
        Ok(len) => match Frame::parse_datagram(&out[..len], lars_core::wire::frame::MAX_BODY) {
            Ok(frame) if reply.send(frame.msgid, &lars_core::wire::Raw(frame.body)).is_ok() => {
                Control::Continue
            }
            _ => Control::Close,
        },
        Err(_) => Control::Close,
    }
}

fn current(snapshot: &Snapshot) -> Arc<RouteTable> {
    Arc::clone(&snapshot.read().unwrap_or_else(|p| p.into_inner()))
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
    pub fn start(config: DnsConfig, mut store: Box<dyn RouteStore>) -> io::Result<Dns> {
        let stats = Arc::new(DnsStats::default());
        let mut loaded = true;
        let initial = match store.load() {
            Ok(mut table) => {
                table.loaded = true;
                stats.loads.fetch_add(1, Ordering::Relaxed);
                stats.ready.store(1, Ordering::Relaxed);
                stats.store_up.store(1, Ordering::Relaxed);
                log::info!(
                    "loaded {} routes, {} hosts from {}",
                    table.routes.len(),
                    table.host_count(),
                    store.describe()
                );
                table
            }
            Err(e) => {
                stats.load_errors.fetch_add(1, Ordering::Relaxed);
                log::error!("{e}; not ready (agents keep their routes) until a load succeeds");
                loaded = false;
                RouteTable::default()
            }
        };
        stats.routes.store(initial.routes.len() as u64, Ordering::Relaxed);
        stats.hosts.store(initial.host_count() as u64, Ordering::Relaxed);
        let snapshot: Snapshot = Arc::new(RwLock::new(Arc::new(initial)));
        let server_stats = ServerStatsCell::default();
        let auth = Arc::new(config.auth.clone());
        let server = TcpServer::start(config.server.clone(), |_| DnsWorker {
            gate: crate::auth::Gate::new(Arc::clone(&auth), Arc::clone(&stats.auth), Role::Dns),
            snapshot: Arc::clone(&snapshot),
            stats: Arc::clone(&stats),
            server_stats: Arc::clone(&server_stats),
            caps: config.subscriptions,
            subscriptions: Subscriptions::default(),
        })?;
        let _ = server_stats.set(server.shared_stats());
        let metrics = match config.metrics {
            Some(addr) => {
                let (stats, server) = (Arc::clone(&stats), server.shared_stats());
                Some(crate::metrics::MetricsServer::start(addr, move || {
                    crate::metrics::dns_page(&stats, &server)
                })?)
            }
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let loader = Loader {
            store,
            snapshot: Arc::clone(&snapshot),
            poster: server.poster(),
            stats: Arc::clone(&stats),
            stop: Arc::clone(&stop),
            config,
            loaded,
            held_since: None,
        };
        let loader =
            std::thread::Builder::new().name("lars-dns-loader".into()).spawn(move || loader.run())?;
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

struct Loader {
    store: Box<dyn RouteStore>,
    snapshot: Snapshot,
    poster: Poster<Push>,
    stats: Arc<DnsStats>,
    stop: Arc<AtomicBool>,
    config: DnsConfig,
    /// Whether the snapshot holds a full load of the store, which changes can patch.
    loaded: bool,
    /// When the shrink protection first held a load, if it holds one now.
    held_since: Option<Instant>,
}

/// Removing fewer routes or hosts than this at once is never held: a console deleting a
/// small table's routes is not an accident worth a 10 s delay.
const SHRINK_MIN: usize = 10;

/// Whether going from `served` to `table` removes more than `limit` of the routes or of the
/// hosts, and at least [`SHRINK_MIN`] of them (only once `served` is a real load: the first
/// load is never held).
fn shrinks_too_much(served: &RouteTable, table: &RouteTable, limit: f64) -> bool {
    if !served.loaded || limit >= 1.0 {
        return false;
    }
    let lost = |before: usize, after: usize| {
        let removed = before.saturating_sub(after);
        removed >= SHRINK_MIN && removed as f64 > limit * before as f64
    };
    lost(served.routes.len(), table.routes.len()) || lost(served.host_count(), table.host_count())
}

impl Loader {
    fn run(mut self) {
        let clock = Clock::new();
        let mut last_load = clock.now();
        // The store's version at the last load, to notice changes.
        let mut store_version = current(&self.snapshot).version;
        let mut failures = 0u32;
        while !self.stop.load(Ordering::Acquire) {
            let wait = if failures == 0 {
                self.config.poll_interval
            } else {
                (self.config.poll_interval * 2u32.saturating_pow(failures.min(10))).min(self.config.retry_max)
            };
            std::thread::park_timeout(wait);
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let served = current(&self.snapshot);
            let reload =
                crate::time::to_std(clock.now().saturating_since(last_load)) >= self.config.reload_interval;
            let noticed = crate::time::Stopwatch::start();
            match self.store.version() {
                Ok(version) if version == store_version && !reload => {
                    self.stats.store_up.store(1, Ordering::Relaxed);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    self.failed(&mut failures, &e);
                    continue;
                }
            }
            // A change the store can name costs a read of the changed routes; the periodic
            // reload (and any change it cannot name) reads everything.
            let changes = if reload || !self.loaded { Ok(None) } else { self.store.changes() };
            let full = !matches!(changes, Ok(Some(_)));
            let table = match changes {
                Ok(Some(changes)) => {
                    self.stats.change_reads.fetch_add(1, Ordering::Relaxed);
                    let named: Vec<RouteKey> = changes.routes.iter().map(|(key, _)| *key).collect();
                    let table = served.with_changes(changes);
                    // Only the named routes can differ: no need to compare every route.
                    let changed =
                        named.into_iter().filter(|&key| served.hosts(key) != table.hosts(key)).collect();
                    Ok((table, changed))
                }
                Ok(None) => self.store.load().map(|mut table| {
                    last_load = clock.now();
                    self.loaded = true;
                    table.loaded = true;
                    let changed = served.changed_routes(&table);
                    (table, changed)
                }),
                Err(e) => Err(e),
            };
            match table {
                Ok((table, changed)) => {
                    if failures > 0 {
                        log::info!("{} is back", self.store.describe());
                    }
                    failures = 0;
                    self.stats.store_up.store(1, Ordering::Relaxed);
                    store_version = table.version;
                    // A held table is looked at again at the next load: a full load at least
                    // `reload_interval` later that still removes as much confirms it.
                    if !self.hold(&served, &table, full, clock.now()) {
                        self.install(&served, table, changed, noticed);
                    }
                }
                Err(e) => self.failed(&mut failures, &e),
            }
        }
    }

    /// The shrink protection: whether to hold `table`, which removes too much of `served`.
    /// A hold ends when a full load no longer removes too much (the store came back), or when
    /// a full load at least `reload_interval` after the first hold still does (the store
    /// confirms it). Change-log loads in between are installed when they shrink nothing, but
    /// neither end nor confirm a hold: they patch the table served, not the store's.
    fn hold(&mut self, served: &RouteTable, table: &RouteTable, full: bool, now: Instant) -> bool {
        if !shrinks_too_much(served, table, self.config.shrink_limit) {
            if full {
                self.held_since = None;
            }
            return false;
        }
        let (routes, hosts) = (table.routes.len(), table.host_count());
        let (served_routes, served_hosts) = (served.routes.len(), served.host_count());
        if let Some(since) = self.held_since
            && full
            && now.saturating_since(since) >= crate::time::from_std(self.config.reload_interval)
        {
            log::warn!(
                "a later full load confirms {routes} routes, {hosts} hosts \
                 (down from {served_routes}, {served_hosts}); serving it"
            );
            self.held_since = None;
            return false;
        }
        self.stats.held_loads.fetch_add(1, Ordering::Relaxed);
        if self.held_since.is_none() {
            log::warn!(
                "held a load of {routes} routes, {hosts} hosts (serving {served_routes}, \
                 {served_hosts}): it removes more than {:.0} % at once; serving the last routes until \
                 a full load {} s later says the same",
                self.config.shrink_limit * 100.0,
                self.config.reload_interval.as_secs()
            );
            self.held_since = Some(now);
        }
        true
    }

    fn failed(&self, failures: &mut u32, error: &crate::store::StoreError) {
        self.stats.load_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.store_up.store(0, Ordering::Relaxed);
        if *failures == 0 {
            log::error!("{error}; serving the last routes and retrying");
        }
        *failures += 1;
    }

    /// Swaps in `table` and sends the `changed` routes (those that differ from `served`) to
    /// every worker.
    /// The published version is the store's: lars-dns keeps nothing the store does not have,
    /// so a restart, a replica or another store says the same (agents order answers by their
    /// link, not by version).
    fn install(
        &mut self,
        _served: &RouteTable,
        table: RouteTable,
        mut changed: Vec<RouteKey>,
        noticed: crate::time::Stopwatch,
    ) {
        self.stats.loads.fetch_add(1, Ordering::Relaxed);
        changed.sort_unstable();
        changed.dedup();
        self.stats.ready.store(u64::from(table.loaded), Ordering::Relaxed);
        self.stats.routes.store(table.routes.len() as u64, Ordering::Relaxed);
        self.stats.hosts.store(table.host_count() as u64, Ordering::Relaxed);
        let table = Arc::new(table);
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&table);
        if !changed.is_empty() {
            let changed = Arc::new(changed);
            for worker in 0..self.poster.workers() {
                let push = Push { table: Arc::clone(&table), changed: Arc::clone(&changed), noticed };
                if self.poster.post(worker, push).is_err() {
                    log::warn!(
                        "worker {worker}'s queue is full; its agents get this change at their next refresh"
                    );
                }
            }
        }
    }
}

struct DnsWorker {
    gate: crate::auth::Gate,
    snapshot: Snapshot,
    stats: Arc<DnsStats>,
    server_stats: ServerStatsCell,
    caps: SubscriptionCaps,
    /// Who gets pushes for what, and in which codec.
    subscriptions: Subscriptions,
}

/// Set once the total cap has been reached, so that the log says it once.
static TOTAL_CAP_LOGGED: AtomicBool = AtomicBool::new(false);

impl DnsWorker {
    /// Subscribes `conn` to `key` within the caps: a route that does not exist (the store not
    /// loaded yet counts as existing, since nothing can be told apart) among the connection's
    /// bounded unknown ones.
    fn subscribe(&mut self, conn: ConnId, key: RouteKey, codec: Codec, table: &RouteTable) {
        let held = &self.stats.subscriptions;
        let exists = !table.loaded || !table.hosts(key).is_empty();
        if self.subscriptions.subscribe(conn, key, codec, exists, self.caps, held) == Subscribed::Refused {
            self.stats.subscriptions_refused.fetch_add(1, Ordering::Relaxed);
            if held.load(Ordering::Relaxed) >= self.caps.total as u64
                && !TOTAL_CAP_LOGGED.swap(true, Ordering::Relaxed)
            {
                log::warn!(
                    "{} subscriptions held, the total cap ([dns] subscriptions_total); \
                     further routes are answered without pushes (counted in subscriptions_refused)",
                    self.caps.total
                );
            }
        }
    }
}

/// Writes the Lars or native answer for `key` from `table` through `send`.
fn send_route(
    table: &RouteTable,
    key: RouteKey,
    codec: Codec,
    seq: u32,
    stats: &DnsStats,
    send: impl FnOnce(MsgId, &dyn lars_core::wire::Encode) -> bool,
) -> bool {
    let hosts = table.hosts(key);
    let (modid, cmdid) = key;
    let fits = match codec {
        Codec::Lars => {
            // The Lars message carries IPv4 hosts only.
            let v4: Vec<SocketAddrV4> = hosts
                .iter()
                .filter_map(|h| if let SocketAddr::V4(a) = h.addr { Some(a) } else { None })
                .collect();
            let body = lars::GetRouteResponse { modid, cmdid, hosts: List::from_slice(&v4) };
            fits_frame(&body) && send(MsgId::GetRouteResponse, &body)
        }
        Codec::Native => {
            let code = if hosts.is_empty() { RetCode::NoExist } else { RetCode::Succ };
            let body = native::RouteResponse {
                seq,
                modid,
                cmdid,
                code,
                version: table.version,
                hosts: List::from_slice(hosts),
            };
            fits_frame(&body) && send(MsgId::NativeRouteResponse, &body)
        }
    };
    if !fits {
        stats.oversize_routes.fetch_add(1, Ordering::Relaxed);
    }
    fits
}

fn fits_frame(body: &dyn lars_core::wire::Encode) -> bool {
    body.buffer_len() <= lars_core::wire::frame::MAX_BODY as usize
}

/// Lets a `&dyn Encode` be passed where `&impl Encode` is wanted.
struct Dyn<'a>(&'a dyn lars_core::wire::Encode);

impl lars_core::wire::Encode for Dyn<'_> {
    fn buffer_len(&self) -> usize {
        self.0.buffer_len()
    }
    fn emit(&self, out: &mut [u8]) -> Result<usize, lars_core::wire::Error> {
        self.0.emit(out)
    }
}

impl Service for DnsWorker {
    type Task = Push;

    fn connected(&mut self, conn: ConnId, peer: SocketAddr, _conns: &mut Conns<'_>) {
        self.gate.connected(conn, peer);
    }

    fn frame(&mut self, conn: ConnId, frame: Frame<'_>, reply: &mut Sender<'_>) -> Control {
        if let crate::auth::Screened::Done(control) = self.gate.screen(conn, &frame, reply) {
            return control;
        }
        let (key, codec, seq) = match frame.msgid {
            MsgId::GetRouteRequest => match lars::GetRouteRequest::parse(frame.body) {
                Ok(r) => ((r.modid, r.cmdid), Codec::Lars, 0),
                Err(_) => return self.bad_request(),
            },
            MsgId::NativeGetRouteRequest => match native::GetRouteRequest::parse(frame.body) {
                Ok(r) => ((r.modid, r.cmdid), Codec::Native, r.seq),
                Err(_) => return self.bad_request(),
            },
            MsgId::StatsRequest => {
                let Ok(request) = native::StatsRequest::parse(frame.body) else { return self.bad_request() };
                return answer_stats(request, Role::Dns, self.stats.counters(), &self.server_stats, reply);
            }
            MsgId::Hello => {
                if native::Hello::parse(frame.body).is_err() {
                    return self.bad_request();
                }
                let hello = native::Hello {
                    version: native::PROTOCOL_VERSION,
                    role: Role::Dns,
                    node: 0,
                    max_body: lars_core::wire::frame::MAX_BODY,
                };
                return if reply.send(MsgId::Hello, &hello).is_ok() {
                    Control::Continue
                } else {
                    Control::Close
                };
            }
            // Echoed as the five bytes at most it decodes to, not as whatever body came.
            MsgId::Heartbeat => {
                let Ok(heartbeat) = native::Heartbeat::parse(frame.body) else { return self.bad_request() };
                return if reply.send(MsgId::Heartbeat, &heartbeat).is_ok() {
                    Control::Continue
                } else {
                    Control::Close
                };
            }
            _ => return self.bad_request(),
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let table = current(&self.snapshot);
        self.subscribe(conn, key, codec, &table);
        if !table.loaded {
            // Nothing read from the store yet: saying "no such route" would wipe the agent's
            // copy. A native agent is told the dns is not ready; an original one, which has no
            // word for it, gets no answer. Both are subscribed, so the first load pushes to them.
            self.stats.unready_answers.fetch_add(1, Ordering::Relaxed);
            if codec == Codec::Lars {
                return Control::Continue;
            }
            let body = native::RouteResponse {
                seq,
                modid: key.0,
                cmdid: key.1,
                code: RetCode::SystemError,
                version: 0,
                hosts: List::from_slice(&[]),
            };
            return if reply.send(MsgId::NativeRouteResponse, &body).is_ok() {
                Control::Continue
            } else {
                Control::Close
            };
        }
        let mut failed = false;
        send_route(&table, key, codec, seq, &self.stats, |msgid, body| {
            failed = reply.send(msgid, &Dyn(body)).is_err();
            !failed
        });
        if failed { Control::Close } else { Control::Continue }
    }

    fn closed(&mut self, conn: ConnId, _reason: CloseReason) {
        self.gate.closed(conn);
        self.subscriptions.remove_conn(conn, &self.stats.subscriptions);
    }

    fn task(&mut self, push: Push, conns: &mut Conns<'_>) {
        let mut pushed = false;
        for &key in push.changed.iter() {
            for (conn, codec) in self.subscriptions.subscribers(key) {
                let stats = &self.stats;
                send_route(&push.table, key, codec, 0, stats, |msgid, body| {
                    let sent = conns.send(conn, msgid, &Dyn(body)).is_ok();
                    let counter = if sent { &stats.pushes } else { &stats.push_failures };
                    counter.fetch_add(1, Ordering::Relaxed);
                    pushed |= sent;
                    sent
                });
            }
            // A route that is gone: its subscriptions are among the bounded unknown ones now.
            if push.table.loaded && push.table.hosts(key).is_empty() {
                self.subscriptions.route_gone(key, self.caps, &self.stats.subscriptions);
            }
        }
        if pushed {
            let latency = push.noticed.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
            self.stats.push_rounds.fetch_add(1, Ordering::Relaxed);
            self.stats.push_latency_us.fetch_add(latency, Ordering::Relaxed);
        }
    }
}

impl DnsWorker {
    fn bad_request(&self) -> Control {
        self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
        Control::Close
    }
}

#[cfg(test)]
mod shrink_tests {
    use super::*;
    use lars_core::wire::native::WeightedHost;

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
}
