//! lars-web: the web console. Routes, their hosts and descriptions, the audit log and call
//! status, in the browser, on the stores lars-dns reads (MySQL, or the route file).
//!
//! Layers, from the socket in: [`http`] (the seam over the HTTP crate), [`pages`] (the router
//! and one module per page), [`html`] and [`chart`] (markup and SVG), [`model`] (what the pages
//! compute from the store's data), [`auth`] (users, sessions, CSRF, login limits), and the
//! store itself, `lars_std::store::console`, where every query lives. [`stats`] counts what the
//! console does, for its Prometheus page and SIGUSR1.

pub mod auth;
pub mod chart;
pub mod html;
pub mod http;
pub mod model;
pub mod pages;
pub mod stats;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use lars_std::metrics::MetricsServer;
use lars_std::store::console::{Actor, ConsoleStore, Edit, Named, Overview};
use lars_std::store::history::{HistorySource, Problem, ProblemRules};
use lars_std::store::{RouteKey, StoreError};
use lars_std::time::Clock;

use crate::model::history::{PROBLEMS_SHOWN, ProblemReport};
use crate::model::{CallTable, ServiceList, call_table};
use crate::stats::WebStats;

/// How long the summed call status is reused: the status pages refresh every 500 ms, so any
/// number of open pages cost the store one read of `ServerCallStatus` per period.
pub const STATUS_TTL_NANOS: u64 = 500_000_000;

/// How long a problems report is reused: the history's conditions move by the minute, so
/// the problems page and the service list's marks cost the store one history read per period.
pub const PROBLEMS_TTL_NANOS: u64 = 5_000_000_000;

/// How the console runs.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Where it listens (loopback by default).
    pub listen: SocketAddr,
    /// The state directory: users and the signing key.
    pub state: PathBuf,
    /// Request threads.
    pub threads: usize,
    /// Marks the session cookie `Secure`, for a console reached through a TLS proxy.
    pub secure_cookies: bool,
    /// Where to serve the Prometheus page (`GET /metrics`), if anywhere (off by default).
    pub metrics: Option<SocketAddr>,
}

impl ConsoleConfig {
    /// Listens on `127.0.0.1:8080` with state in `state`.
    pub fn new(state: impl Into<PathBuf>) -> ConsoleConfig {
        ConsoleConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            state: state.into(),
            threads: 4,
            secure_cookies: false,
            metrics: None,
        }
    }
}

/// The console's shared state.
pub struct Console {
    store: Mutex<Box<dyn ConsoleStore>>,
    /// The call history, under a lock of its own: a history read (100 ms and more for a day
    /// of a large route) must not hold up the route pages and edits that wait for `store`.
    history: Mutex<Box<dyn HistorySource>>,
    auth: auth::Auth,
    cache: Mutex<Cache>,
    secure_cookies: bool,
    refresh: Refresh,
    stats: Arc<WebStats>,
}

/// Requests for the background rebuild of the service list.
#[derive(Default)]
struct Refresh {
    wanted: Mutex<bool>,
    wake: std::sync::Condvar,
}

impl Refresh {
    fn ask(&self) {
        *self.wanted.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_one();
    }

    /// Waits up to a second for a request; whether there was one.
    fn wait(&self) -> bool {
        let wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        let (mut wanted, _) = self
            .wake
            .wait_timeout_while(wanted, std::time::Duration::from_secs(1), |wanted| !*wanted)
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *wanted)
    }
}

/// Rebuilds the service list when a request found its call counts old, until the console is
/// gone (it holds the console weakly).
fn refresher(console: std::sync::Weak<Console>) {
    loop {
        let Some(strong) = console.upgrade() else { return };
        let refresh = &strong.refresh;
        if refresh.wait() {
            // A failed read leaves the old list; the next request asks again.
            // (The store's lock is let go before the rebuild takes it again.)
            let version = strong.store().version();
            if let Ok(version) = version {
                let _ = strong.rebuild(version);
            }
            if strong.history_problems_stale() {
                strong.read_history_problems();
            }
        }
    }
}

/// What the service list and the status page reuse between requests.
#[derive(Default)]
struct Cache {
    overview: Option<Arc<Overview>>,
    calls: Option<(u64, Arc<CallTable>)>,
    list: Option<(u64, u64, Arc<ServiceList>)>,
    history: Option<HistoryProblems>,
    report: Option<JoinedReport>,
}

/// The history's problems as last read.
#[derive(Clone)]
struct HistoryProblems {
    /// When, Unix nanoseconds.
    at: u64,
    found: Arc<Result<Vec<Problem>, String>>,
    /// A change made here since: to be read again in the background.
    stale: bool,
}

impl HistoryProblems {
    fn is_fresh(&self) -> bool {
        !self.stale && Clock::unix_nanos().saturating_sub(self.at) < PROBLEMS_TTL_NANOS
    }
}

/// A problems report and what it was joined from.
struct JoinedReport {
    list: Arc<ServiceList>,
    calls: Arc<CallTable>,
    history: Arc<Result<Vec<Problem>, String>>,
    report: Arc<ProblemReport>,
}

impl Console {
    /// A console over `store` with the state in `state`.
    pub fn new(
        mut store: Box<dyn ConsoleStore>,
        state: &std::path::Path,
    ) -> Result<Console, auth::AuthError> {
        Ok(Console {
            history: Mutex::new(store.history()),
            store: Mutex::new(store),
            auth: auth::Auth::open(state)?,
            cache: Mutex::new(Cache::default()),
            secure_cookies: false,
            refresh: Refresh::default(),
            stats: Arc::default(),
        })
    }

    /// The store, locked (one request at a time talks to it).
    pub fn store(&self) -> MutexGuard<'_, Box<dyn ConsoleStore>> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The call history, locked apart from the store (see [`HistorySource`]). Never take the
    /// store while holding it.
    pub fn history(&self) -> MutexGuard<'_, Box<dyn HistorySource>> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The attributes every cookie gets besides its value and age.
    pub fn cookie_attributes(&self, path: &str) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!("Path={path}; HttpOnly; SameSite=Strict{secure}")
    }

    /// The users and sessions.
    pub fn auth(&self) -> &auth::Auth {
        &self.auth
    }

    /// What the console counts.
    pub fn stats(&self) -> &WebStats {
        &self.stats
    }

    /// Applies `edit` to route `key` in the store (see [`ConsoleStore::apply`]), counts it if
    /// it changed a host (an edit that finds everything as asked writes nothing), and forgets
    /// the cached routes so that the next list shows it.
    pub fn apply(&self, key: RouteKey, edit: &Edit, actor: &Actor) -> Result<u64, StoreError> {
        let result = self.store().apply(key, edit, actor);
        self.after_change(matches!(result, Ok(changed) if changed > 0));
        result
    }

    /// Sets or removes a description (see [`ConsoleStore::describe`]), as [`Console::apply`]
    /// applies an edit.
    pub fn describe(&self, named: Named, id: u32, text: &str, actor: &Actor) -> Result<(), StoreError> {
        let result = self.store().describe(named, id, text, actor);
        self.after_change(result.is_ok());
        result
    }

    fn after_change(&self, written: bool) {
        if written {
            self.stats.change_written();
        }
        self.changed();
    }

    /// Every route's summed calls, read at most once per [`STATUS_TTL_NANOS`].
    pub fn calls(&self) -> Result<Arc<CallTable>, StoreError> {
        let now = Clock::unix_nanos();
        if let Some((at, calls)) = &self.cache().calls
            && now.saturating_sub(*at) < STATUS_TTL_NANOS
        {
            return Ok(Arc::clone(calls));
        }
        let rows = self.store().status(None)?;
        let calls = Arc::new(call_table(&rows));
        self.cache().calls = Some((now, Arc::clone(&calls)));
        Ok(calls)
    }

    /// The service list. Routes are read again only when the store's version moved (then the
    /// request waits for them: a route just added must show). Call counts older than
    /// [`STATUS_TTL_NANOS`] are brought up to date in the background, by the thread
    /// [`start`] runs, while the request is answered from the list as it is, so a page never
    /// waits for `ServerCallStatus` once the list exists.
    pub fn services(&self) -> Result<Arc<ServiceList>, StoreError> {
        let version = self.store().version()?;
        let cached = self.cache().list.clone();
        match cached {
            Some((v, at, list)) if v == version => {
                if Clock::unix_nanos().saturating_sub(at) >= STATUS_TTL_NANOS {
                    self.refresh.ask();
                }
                Ok(list)
            }
            _ => self.rebuild(version),
        }
    }

    /// Builds the service list at `version` with the calls as they are now.
    fn rebuild(&self, version: u64) -> Result<Arc<ServiceList>, StoreError> {
        let calls = self.calls()?;
        let calls_at = self.cache().calls.as_ref().map_or(0, |(at, _)| *at);
        let overview = self.overview_at(version)?;
        let list = Arc::new(ServiceList::build(&overview, &calls));
        self.cache().list = Some((overview.version, calls_at, Arc::clone(&list)));
        Ok(list)
    }

    /// Every route and description, read again only when the store's version moved.
    pub fn overview(&self) -> Result<Arc<Overview>, StoreError> {
        let version = self.store().version()?;
        self.overview_at(version)
    }

    fn overview_at(&self, version: u64) -> Result<Arc<Overview>, StoreError> {
        if let Some(overview) = self.cache().overview.clone().filter(|o| o.version == version) {
            return Ok(overview);
        }
        let overview = Arc::new(self.store().overview()?);
        self.cache().overview = Some(Arc::clone(&overview));
        Ok(overview)
    }

    /// The problems: the live status's and the call history's (by the alert rules' defaults).
    /// The history's are read at most once per [`PROBLEMS_TTL_NANOS`] (this page waits for
    /// them when they are older); the live part is joined with the list and calls as they
    /// are now, which costs no store read.
    pub fn problems(&self) -> Result<Arc<ProblemReport>, StoreError> {
        let cached = self.cache().history.clone();
        let history = match cached {
            Some(history) if history.is_fresh() => history,
            _ => self.read_history_problems(),
        };
        let calls = self.calls()?;
        self.report(history, calls)
    }

    /// The routes with a problem and its name, for the service list: the history's problems
    /// as last read (older ones, or ones a change made here marked stale, are read again in
    /// the background, as the list's call counts are), joined with the live list and calls,
    /// so the list waits for the history only the first time.
    pub fn problem_marks(&self) -> Result<BTreeMap<RouteKey, &'static str>, StoreError> {
        let cached = self.cache().history.clone();
        let history = match cached {
            Some(history) => {
                if !history.is_fresh() {
                    self.refresh.ask();
                }
                history
            }
            None => self.read_history_problems(),
        };
        let calls = self.cache().calls.as_ref().map(|(_, calls)| Arc::clone(calls));
        let calls = match calls {
            Some(calls) => calls,
            None => self.calls()?,
        };
        Ok(self.report(history, calls)?.routes())
    }

    fn history_problems_stale(&self) -> bool {
        self.cache().history.as_ref().is_some_and(|history| !history.is_fresh())
    }

    /// Reads the history's problems (three grouped reads) and keeps them.
    fn read_history_problems(&self) -> HistoryProblems {
        let at = Clock::unix_nanos();
        let secs = at / 1_000_000_000;
        let found = match self.history().open() {
            Ok(history) => history
                .recent_problems(secs, ProblemRules::default(), PROBLEMS_SHOWN)
                .map_err(|e| e.to_string()),
            Err(why) => Err(why.to_string()),
        };
        let history = HistoryProblems { at, found: Arc::new(found), stale: false };
        self.cache().history = Some(history.clone());
        history
    }

    /// The report of `history` joined with the current list and `calls`, made again only when
    /// one of them moved.
    fn report(
        &self,
        history: HistoryProblems,
        calls: Arc<CallTable>,
    ) -> Result<Arc<ProblemReport>, StoreError> {
        let list = self.services()?;
        if let Some(cached) = &self.cache().report
            && Arc::ptr_eq(&cached.list, &list)
            && Arc::ptr_eq(&cached.calls, &calls)
            && Arc::ptr_eq(&cached.history, &history.found)
        {
            return Ok(Arc::clone(&cached.report));
        }
        let at = history.at / 1_000_000_000;
        let report = Arc::new(ProblemReport::build(
            &list,
            &calls,
            (*history.found).clone(),
            ProblemRules::default(),
            at,
        ));
        self.cache().report =
            Some(JoinedReport { list, calls, history: history.found, report: Arc::clone(&report) });
        Ok(report)
    }

    /// Forgets cached routes after a change made here, so the next list shows it.
    /// The history's problems are only marked stale, for the background refresh: they come
    /// from `CallHistory`, which an edit does not touch, and the list must not wait for them.
    pub fn changed(&self) {
        let mut cache = self.cache();
        cache.overview = None;
        cache.list = None;
        if let Some(history) = &mut cache.history {
            history.stale = true;
        }
        drop(cache);
        self.refresh.ask();
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running console: its pages, its metrics page if asked for, and its counters. Dropping it
/// stops both.
pub struct Running {
    http: http::Running,
    metrics: Option<MetricsServer>,
    stats: Arc<WebStats>,
}

impl Running {
    /// The address the pages are served on.
    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// The address of the metrics page, if it is served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::local_addr)
    }

    /// What the console counts.
    pub fn stats(&self) -> &WebStats {
        &self.stats
    }
}

/// Starts the console on `config.listen` over `store`, and its metrics page on
/// `config.metrics`.
pub fn start(config: &ConsoleConfig, store: Box<dyn ConsoleStore>) -> Result<Running, String> {
    let mut console = Console::new(store, &config.state).map_err(|e| e.to_string())?;
    console.secure_cookies = config.secure_cookies;
    let console = Arc::new(console);
    let stats = Arc::clone(&console.stats);
    let page = Arc::clone(&stats);
    let metrics = MetricsServer::start_if(config.metrics, move || page.page()).map_err(|e| {
        let addr = config.metrics.map(|a| a.to_string()).unwrap_or_default();
        format!("serve metrics on {addr}: {e}")
    })?;
    let weak = Arc::downgrade(&console);
    std::thread::Builder::new()
        .name("lars-web-refresh".into())
        .spawn(move || refresher(weak))
        .map_err(|e| format!("start the refresh thread: {e}"))?;
    let handler: Arc<http::Handler> = Arc::new(move |request: &http::Request| {
        let response = pages::handle(&console, request);
        console.stats.answered(response.status);
        response
    });
    let http = http::serve(config.listen, config.threads, handler)
        .map_err(|e| format!("listen on {}: {e}", config.listen))?;
    Ok(Running { http, metrics, stats })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lars_std::store::StatRow;
    use lars_std::store::console::{AuditEntry, Capabilities, FileConsole, HostEntry};
    use lars_std::store::history::{HistoryStore, MemoryHistory, NoHistory};
    use std::sync::mpsc;

    /// A fresh folder for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lars-web-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A route file of one host, as if written a while ago: one changed just now in place is
    /// not read twice until it has settled.
    fn route_file(dir: &std::path::Path) -> PathBuf {
        let routes = dir.join("routes.conf");
        std::fs::write(&routes, "1001 1 10.0.0.1:1\n").unwrap();
        let an_hour_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(Clock::unix_secs() - 3600);
        std::fs::File::options().write(true).open(&routes).unwrap().set_modified(an_hour_ago).unwrap();
        routes
    }

    fn file_console(dir: &std::path::Path) -> Console {
        Console::new(Box::new(FileConsole::new(route_file(dir), None)), &dir.join("state")).unwrap()
    }

    fn actor() -> Actor {
        Actor { user: "admin".into(), address: "127.0.0.1".into() }
    }

    /// A history whose every read waits until the test lets it go, saying when it started.
    struct GatedHistory {
        history: MemoryHistory,
        entered: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
    }

    impl HistorySource for GatedHistory {
        fn open(&mut self) -> Result<&mut dyn HistoryStore, NoHistory> {
            let _ = self.entered.send(());
            let _ = self.release.recv();
            Ok(&mut self.history)
        }
    }

    /// The route file, with a [`GatedHistory`].
    struct GatedStore {
        routes: FileConsole,
        history: Option<GatedHistory>,
    }

    impl ConsoleStore for GatedStore {
        fn capabilities(&mut self) -> Result<Capabilities, StoreError> {
            self.routes.capabilities()
        }
        fn version(&mut self) -> Result<u64, StoreError> {
            self.routes.version()
        }
        fn overview(&mut self) -> Result<Overview, StoreError> {
            self.routes.overview()
        }
        fn route(&mut self, key: RouteKey) -> Result<Vec<HostEntry>, StoreError> {
            self.routes.route(key)
        }
        fn names(&mut self, key: RouteKey) -> Result<(String, String), StoreError> {
            self.routes.names(key)
        }
        fn status(&mut self, key: Option<RouteKey>) -> Result<Vec<StatRow>, StoreError> {
            self.routes.status(key)
        }
        fn apply(&mut self, key: RouteKey, edit: &Edit, actor: &Actor) -> Result<u64, StoreError> {
            self.routes.apply(key, edit, actor)
        }
        fn describe(&mut self, named: Named, id: u32, text: &str, actor: &Actor) -> Result<(), StoreError> {
            self.routes.describe(named, id, text, actor)
        }
        fn audit(&mut self, key: Option<RouteKey>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
            self.routes.audit(key, limit)
        }
        fn describe_store(&self) -> String {
            self.routes.describe_store()
        }
        fn history(&mut self) -> Box<dyn HistorySource> {
            Box::new(self.history.take().expect("asked once"))
        }
    }

    /// While a history read is under way (held here until the test lets it go), the routes
    /// are read and changed: were the history under the store's lock, this test would hang.
    #[test]
    fn a_history_read_holds_up_no_route_read_or_edit() {
        let dir = scratch("history-apart");
        let routes = route_file(&dir);
        let (entered, started) = mpsc::channel();
        let (release, held) = mpsc::channel();
        let history = GatedHistory { history: MemoryHistory::new(), entered, release: held };
        let store = GatedStore { routes: FileConsole::new(&routes, None), history: Some(history) };
        let console = Arc::new(Console::new(Box::new(store), &dir.join("state")).unwrap());
        let reading = {
            let console = Arc::clone(&console);
            std::thread::spawn(move || console.problems().map(|report| report.history.is_ok()))
        };
        started.recv().unwrap();
        assert_eq!(console.store().route((1001, 1)).unwrap().len(), 1);
        assert_eq!(console.services().unwrap().rows.len(), 1);
        let add = Edit::AddHost { addr: SocketAddr::from(([10, 0, 0, 1], 2)), weight: 1 };
        assert_eq!(console.apply((1001, 1), &add, &actor()).unwrap(), 1);
        release.send(()).unwrap();
        assert_eq!(reading.join().unwrap(), Ok(true), "the history read ends once let go");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The console over the route file with a history that counts its reads (each is sent
    /// on the channel returned; none waits).
    fn counted_console(dir: &std::path::Path) -> (Console, mpsc::Receiver<()>) {
        let (entered, reads) = mpsc::channel();
        let (_, never_held) = mpsc::channel();
        let history = GatedHistory { history: MemoryHistory::new(), entered, release: never_held };
        let store = GatedStore { routes: FileConsole::new(route_file(dir), None), history: Some(history) };
        (Console::new(Box::new(store), &dir.join("state")).unwrap(), reads)
    }

    /// After an edit the service list's marks come from the history's problems as last read,
    /// which the background refresh is asked to read again, not from a read in the request.
    #[test]
    fn after_an_edit_the_list_does_not_read_the_history() {
        let dir = scratch("marks-after-edit");
        let (console, reads) = counted_console(&dir);
        assert!(console.problem_marks().unwrap().is_empty());
        assert_eq!(reads.try_iter().count(), 1, "the first list reads the history");
        let add = Edit::AddHost { addr: SocketAddr::from(([10, 0, 0, 1], 2)), weight: 1 };
        assert_eq!(console.apply((1001, 1), &add, &actor()).unwrap(), 1);
        assert!(console.problem_marks().unwrap().is_empty());
        assert_eq!(console.services().unwrap().rows[0].hosts, 2, "the list shows the edit");
        assert_eq!(reads.try_iter().count(), 0, "no history read in the request after the edit");
        assert!(console.history_problems_stale() && console.refresh.wait(), "the refresh is asked for");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn only_edits_that_changed_a_host_count_as_written() {
        let dir = scratch("changes-written");
        let console = file_console(&dir);
        let add = Edit::AddHost { addr: SocketAddr::from(([10, 0, 0, 1], 2)), weight: 1 };
        assert_eq!(console.apply((1001, 1), &add, &actor()).unwrap(), 1);
        assert_eq!(console.apply((1001, 1), &add, &actor()).unwrap(), 0, "the host is there already");
        assert!(
            console.stats().page().contains("lars_web_changes_written_total 1\n"),
            "{}",
            console.stats().page()
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
