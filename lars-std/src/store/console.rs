//! What the web console (`lars-web`) reads and changes in a store, with an audit record of
//! every change.
//!
//! [`ConsoleStore`] is implemented for MySQL ([`MysqlConsole`], the original `lars_dns` schema
//! and lars's optional extensions) and for the route file ([`FileConsole`], lars-dns's embedded
//! default, with the audit log in a file beside it). Every route change runs in one transaction
//! that also bumps `RouteVersion`, writes a `RouteChange` row (through the same
//! `record_change` as `lars route`) and writes the audit row, so lars-dns pushes the route and
//! no change goes unrecorded. On an original database: without `RouteData.weight` every host
//! weighs 1 and other weights are refused; without `RouteData.disabled` no host can be taken out
//! of rotation (the route file marks such a host's line `out`); without the `RouteAudit` table (which `lars db-init` creates, and lars-web
//! creates at start when it may) a change fails and says so. Reading never needs an extension.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mysql::prelude::Queryable;
use mysql::{Opts, TxOpts};

pub use super::HostEntry;
use super::file::RouteFile;
use super::history::mysql::MysqlHistory;
use super::history::{HistorySource, NoHistory};
use super::mysql::{
    Hosts, IfPresent, Link, NEEDS_DB_INIT_WEIGHT, WHERE_HOST, add_host_row, read_hosts, record_change,
    status_rows, v4_parts,
};
use super::{RouteKey, RouteStore, StatRow, StoreError};
use crate::time::Clock;

/// The audit table, additive: the original tables are not touched.
pub const AUDIT_TABLE: &str = "CREATE TABLE IF NOT EXISTS RouteAudit (
    id bigint unsigned NOT NULL AUTO_INCREMENT,
    ts bigint unsigned NOT NULL,
    user varchar(64) NOT NULL,
    address varchar(64) NOT NULL,
    action varchar(32) NOT NULL,
    modid int unsigned NOT NULL,
    cmdid int unsigned NOT NULL,
    detail varchar(1024) NOT NULL,
    PRIMARY KEY (id),
    KEY route_audit (modid, cmdid, id)
 ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

/// Who makes a change and from where, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The console user.
    pub user: String,
    /// The address the request came from.
    pub address: String,
}

/// One change to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Adds a host (in rotation).
    AddHost {
        /// The host.
        addr: SocketAddr,
        /// Its weight.
        weight: u32,
    },
    /// Removes hosts.
    RemoveHosts(Vec<SocketAddr>),
    /// Gives hosts a weight.
    SetWeight {
        /// The hosts.
        addrs: Vec<SocketAddr>,
        /// The new weight.
        weight: u32,
    },
    /// Takes hosts out of rotation (kept, not served) or puts them back.
    SetInRotation {
        /// The hosts.
        addrs: Vec<SocketAddr>,
        /// In rotation (served) or not.
        in_rotation: bool,
    },
    /// Removes every host of the route.
    RemoveRoute,
}

impl Edit {
    /// The audit log's name for this kind of change.
    pub fn action(&self) -> &'static str {
        match self {
            Edit::AddHost { .. } => "add-host",
            Edit::RemoveHosts(_) => "remove-host",
            Edit::SetWeight { .. } => "set-weight",
            Edit::SetInRotation { in_rotation: true, .. } => "into-rotation",
            Edit::SetInRotation { in_rotation: false, .. } => "out-of-rotation",
            Edit::RemoveRoute => "remove-route",
        }
    }

    /// What changed, for the audit log.
    pub fn detail(&self) -> String {
        let list = |addrs: &[SocketAddr]| addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
        match self {
            Edit::AddHost { addr, weight } => format!("{addr} weight {weight}"),
            Edit::RemoveHosts(addrs) | Edit::SetInRotation { addrs, .. } => list(addrs),
            Edit::SetWeight { addrs, weight } => format!("{} weight {weight}", list(addrs)),
            Edit::RemoveRoute => "every host".into(),
        }
    }
}

/// Which description table an id's text lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// `ModIDConfig`: what a module is.
    Module,
    /// `CmdIDConfig`: what a command is.
    Command,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix time of the change.
    pub ts: u64,
    /// Who.
    pub user: String,
    /// From where.
    pub address: String,
    /// What kind of change ([`Edit::action`], `describe-module`, `describe-command`).
    pub action: String,
    /// The route (for descriptions, the id in `modid`, or in `cmdid`, the other 0).
    pub key: RouteKey,
    /// What changed.
    pub detail: String,
}

/// What a store lets the console do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Hosts can have weights other than 1.
    pub weights: bool,
    /// Hosts can be taken out of rotation.
    pub rotation: bool,
    /// Changes are recorded in the audit log (without it, changes are refused).
    pub audit: bool,
    /// Modules and commands have descriptions.
    pub descriptions: bool,
    /// IPv6 hosts can be stored.
    pub ipv6: bool,
}

/// Everything the service list needs, read in one go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    /// The store's route version.
    pub version: u64,
    /// Every route with every host (out of rotation included), sorted by address.
    pub routes: BTreeMap<RouteKey, Vec<HostEntry>>,
    /// Module descriptions by modid.
    pub modules: BTreeMap<u32, String>,
    /// Command descriptions by cmdid.
    pub commands: BTreeMap<u32, String>,
}

/// What the console reads and changes.
pub trait ConsoleStore: Send {
    /// What this store can do.
    fn capabilities(&mut self) -> Result<Capabilities, StoreError>;
    /// The store's route version (cheap).
    fn version(&mut self) -> Result<u64, StoreError>;
    /// Every route, host and description.
    fn overview(&mut self) -> Result<Overview, StoreError>;
    /// One route's hosts, sorted by address (empty if it does not exist).
    fn route(&mut self, key: RouteKey) -> Result<Vec<HostEntry>, StoreError>;
    /// The descriptions of a route's module and command (empty where there is none).
    fn names(&mut self, key: RouteKey) -> Result<(String, String), StoreError>;
    /// Call statistics (every row, or one route's), in key order.
    fn status(&mut self, key: Option<RouteKey>) -> Result<Vec<StatRow>, StoreError>;
    /// Applies `edit` with its version bump, change-log row and audit record, all or nothing.
    /// Returns the number of hosts it changed.
    fn apply(&mut self, key: RouteKey, edit: &Edit, actor: &Actor) -> Result<u64, StoreError>;
    /// Sets (or, with an empty `text`, removes) the description of a module or command.
    fn describe(&mut self, named: Named, id: u32, text: &str, actor: &Actor) -> Result<(), StoreError>;
    /// The latest `limit` audit records, newest first (all routes, or one route's).
    fn audit(&mut self, key: Option<RouteKey>, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// A short description for pages and logs.
    fn describe_store(&self) -> String;
    /// The call history and decision log this store keeps, as a handle of its own (its own
    /// connection), which the console keeps under its own lock: see [`HistorySource`]. The
    /// route file keeps none (the default here).
    fn history(&mut self) -> Box<dyn HistorySource> {
        Box::new(NoHistory::NotKept)
    }
}

/// The console's store over MySQL.
pub struct MysqlConsole {
    link: Link,
    /// Where the call history and decisions are, for their own connection.
    history_opts: Opts,
}

impl MysqlConsole {
    /// A store connecting with `opts` on first use.
    pub fn new(opts: Opts) -> Self {
        MysqlConsole { link: Link::new(opts.clone()), history_opts: opts }
    }

    /// Creates the audit table if it is missing (a new table: nothing the original reads
    /// changes). Errors say why, for instance a user without `CREATE`.
    pub fn ensure_audit_table(&mut self) -> Result<(), StoreError> {
        self.link.with(|conn| conn.query_drop(AUDIT_TABLE))
    }

    fn has_audit(&mut self) -> Result<bool, StoreError> {
        self.link.with(has_audit_table)
    }
}

/// Whether the database has the `RouteAudit` table (`lars db-init` makes it; an original
/// database has none).
pub(super) fn has_audit_table(conn: &mut impl Queryable) -> mysql::Result<bool> {
    let found: Option<u32> = conn.exec_first(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'RouteAudit'",
        (),
    )?;
    Ok(found.is_some())
}

fn refuse(why: &str) -> StoreError {
    StoreError::Invalid(why.to_string())
}

const NEEDS_DB_INIT_ROTATION: &str =
    "this database has no RouteData.disabled column (the original schema): run `lars db-init` to add it";
const NEEDS_AUDIT: &str = "this database has no RouteAudit table, so the change could not be recorded: run `lars db-init` (or give lars-web's MySQL user CREATE)";

impl ConsoleStore for MysqlConsole {
    fn capabilities(&mut self) -> Result<Capabilities, StoreError> {
        self.link.recheck_schema();
        let schema = self.link.with_schema(|_, schema| Ok(schema))?;
        let audit = self.has_audit()?;
        Ok(Capabilities {
            weights: schema.weight,
            rotation: schema.disabled,
            audit,
            descriptions: true,
            ipv6: false,
        })
    }

    fn version(&mut self) -> Result<u64, StoreError> {
        let version: Option<u64> = self
            .link
            .with(|conn| conn.exec_first("SELECT version FROM RouteVersion WHERE id = ?", (1u32,)))?;
        Ok(version.unwrap_or(0))
    }

    fn overview(&mut self) -> Result<Overview, StoreError> {
        let version = self.version()?;
        self.link.recheck_schema();
        let mut overview = Overview { version, ..Overview::default() };
        let (hosts, _) = self.link.with_schema(|conn, schema| read_hosts(conn, schema, Hosts::Every))?;
        for (key, host) in hosts {
            overview.routes.entry(key).or_default().push(host);
        }
        for hosts in overview.routes.values_mut() {
            hosts.sort_by_key(|h| h.addr);
            hosts.dedup_by_key(|h| h.addr);
        }
        self.link.with(|conn| {
            // The original keeps one row per id in principle, several in practice: the last wins.
            let modules: Vec<(u32, Option<String>)> =
                conn.exec("SELECT modid, content FROM ModIDConfig ORDER BY id", ())?;
            overview.modules = modules.into_iter().map(|(id, text)| (id, text.unwrap_or_default())).collect();
            let commands: Vec<(u32, Option<String>)> =
                conn.exec("SELECT cmdid, content FROM CmdIDConfig ORDER BY id", ())?;
            overview.commands =
                commands.into_iter().map(|(id, text)| (id, text.unwrap_or_default())).collect();
            Ok(())
        })?;
        Ok(overview)
    }

    fn route(&mut self, key: RouteKey) -> Result<Vec<HostEntry>, StoreError> {
        self.link.recheck_schema();
        let (hosts, _) =
            self.link.with_schema(|conn, schema| read_hosts(conn, schema, Hosts::OfRoute(key)))?;
        let mut hosts: Vec<HostEntry> = hosts.into_iter().map(|(_, host)| host).collect();
        hosts.sort_by_key(|h| h.addr);
        hosts.dedup_by_key(|h| h.addr);
        Ok(hosts)
    }

    fn names(&mut self, key: RouteKey) -> Result<(String, String), StoreError> {
        self.link.with(|conn| {
            // The last row of an id wins, as in `overview`.
            let module: Option<Option<String>> = conn.exec_first(
                "SELECT content FROM ModIDConfig WHERE modid = ? ORDER BY id DESC LIMIT 1",
                (key.0 as u32,),
            )?;
            let command: Option<Option<String>> = conn.exec_first(
                "SELECT content FROM CmdIDConfig WHERE cmdid = ? ORDER BY id DESC LIMIT 1",
                (key.1 as u32,),
            )?;
            Ok((module.flatten().unwrap_or_default(), command.flatten().unwrap_or_default()))
        })
    }

    fn status(&mut self, key: Option<RouteKey>) -> Result<Vec<StatRow>, StoreError> {
        self.link.with(|conn| status_rows(conn, key))
    }

    fn apply(&mut self, key: RouteKey, edit: &Edit, actor: &Actor) -> Result<u64, StoreError> {
        let caps = self.capabilities()?;
        check_edit(edit, &caps)?;
        let (modid, cmdid) = (key.0 as u32, key.1 as u32);
        let (action, detail) = (edit.action(), edit.detail());
        let parts = |addrs: &[SocketAddr]| addrs.iter().map(|a| v4_parts(*a)).collect::<Result<Vec<_>, _>>();
        let hosts = match edit {
            Edit::AddHost { addr, .. } => parts(std::slice::from_ref(addr))?,
            Edit::RemoveHosts(addrs) | Edit::SetWeight { addrs, .. } | Edit::SetInRotation { addrs, .. } => {
                parts(addrs)?
            }
            Edit::RemoveRoute => Vec::new(),
        };
        // The schema `capabilities` just looked up: `check_edit` decided on it.
        self.link.with_schema(|conn, schema| {
            let mut tx = conn.start_transaction(TxOpts::default())?;
            let mut changed = 0;
            match edit {
                Edit::AddHost { weight, .. } => {
                    changed = add_host_row(&mut tx, schema, key, hosts[0], *weight, IfPresent::Keep)?;
                }
                Edit::RemoveHosts(_) => {
                    for &(ip, port) in &hosts {
                        tx.exec_drop(
                            format!("DELETE FROM RouteData {WHERE_HOST}"),
                            (modid, cmdid, ip, port),
                        )?;
                        changed += tx.affected_rows();
                    }
                }
                Edit::SetWeight { weight, .. } => {
                    for &(ip, port) in &hosts {
                        tx.exec_drop(
                            format!("UPDATE RouteData SET weight = ? {WHERE_HOST}"),
                            (weight, modid, cmdid, ip, port),
                        )?;
                        changed += tx.affected_rows();
                    }
                }
                Edit::SetInRotation { in_rotation, .. } => {
                    for &(ip, port) in &hosts {
                        tx.exec_drop(
                            format!("UPDATE RouteData SET disabled = ? {WHERE_HOST}"),
                            (u8::from(!in_rotation), modid, cmdid, ip, port),
                        )?;
                        changed += tx.affected_rows();
                    }
                }
                Edit::RemoveRoute => {
                    tx.exec_drop("DELETE FROM RouteData WHERE modid = ? AND cmdid = ?", (modid, cmdid))?;
                    changed = tx.affected_rows();
                }
            }
            if changed == 0 {
                // Nothing to tell lars-dns or the log; dropping the transaction rolls it back.
                return Ok(0);
            }
            record_change(&mut tx, key)?;
            insert_audit(&mut tx, actor, action, (modid, cmdid), &detail)?;
            tx.commit()?;
            Ok(changed)
        })
    }

    fn describe(&mut self, named: Named, id: u32, text: &str, actor: &Actor) -> Result<(), StoreError> {
        if !self.has_audit()? {
            return Err(refuse(NEEDS_AUDIT));
        }
        let (table, column, action, key) = match named {
            Named::Module => ("ModIDConfig", "modid", "describe-module", (id, 0)),
            Named::Command => ("CmdIDConfig", "cmdid", "describe-command", (0, id)),
        };
        self.link.with(|conn| {
            let mut tx = conn.start_transaction(TxOpts::default())?;
            // One row per id from now on (the original console updated every row with the id).
            tx.exec_drop(format!("DELETE FROM {table} WHERE {column} = ?"), (id,))?;
            if !text.is_empty() {
                tx.exec_drop(format!("INSERT INTO {table} ({column}, content) VALUES (?, ?)"), (id, text))?;
            }
            insert_audit(&mut tx, actor, action, key, text)?;
            tx.commit()
        })
    }

    fn audit(&mut self, key: Option<RouteKey>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        if !self.has_audit()? {
            return Ok(Vec::new());
        }
        type Row = (u64, String, String, String, u32, u32, String);
        let select = "SELECT ts, user, address, action, modid, cmdid, detail FROM RouteAudit";
        let rows: Vec<Row> = self.link.with(|conn| match key {
            Some((modid, cmdid)) => conn.exec(
                format!("{select} WHERE modid = ? AND cmdid = ? ORDER BY id DESC LIMIT ?"),
                (modid as u32, cmdid as u32, limit as u64),
            ),
            None => conn.exec(format!("{select} ORDER BY id DESC LIMIT ?"), (limit as u64,)),
        })?;
        Ok(rows
            .into_iter()
            .map(|(ts, user, address, action, modid, cmdid, detail)| AuditEntry {
                ts,
                user,
                address,
                action,
                key: (modid as i32, cmdid as i32),
                detail,
            })
            .collect())
    }

    fn describe_store(&self) -> String {
        self.link.describe()
    }

    fn history(&mut self) -> Box<dyn HistorySource> {
        Box::new(MysqlHistory::new(self.history_opts.clone()))
    }
}

pub(super) fn insert_audit(
    tx: &mut mysql::Transaction<'_>,
    actor: &Actor,
    action: &str,
    (modid, cmdid): (u32, u32),
    detail: &str,
) -> mysql::Result<()> {
    tx.exec_drop(
        "INSERT INTO RouteAudit (ts, user, address, action, modid, cmdid, detail) VALUES (UNIX_TIMESTAMP(), ?, ?, ?, ?, ?, ?)",
        (&actor.user, &actor.address, action, modid, cmdid, detail),
    )
}

/// Refuses an edit the store cannot record or hold, before anything is written.
fn check_edit(edit: &Edit, caps: &Capabilities) -> Result<(), StoreError> {
    if !caps.audit {
        return Err(refuse(NEEDS_AUDIT));
    }
    if let Edit::AddHost { addr, .. } = edit
        && let Some(why) = super::unreachable_host(*addr)
    {
        // In the route file such a host would fail lars-dns's whole load.
        return Err(StoreError::Invalid(format!("{addr}: host {why}")));
    }
    match edit {
        Edit::AddHost { weight, .. } | Edit::SetWeight { weight, .. } if !caps.weights && *weight != 1 => {
            Err(refuse(NEEDS_DB_INIT_WEIGHT))
        }
        Edit::SetWeight { .. } if !caps.weights => Err(refuse(NEEDS_DB_INIT_WEIGHT)),
        Edit::SetInRotation { .. } if !caps.rotation => Err(refuse(NEEDS_DB_INIT_ROTATION)),
        _ => Ok(()),
    }
}

/// The console's store over the route file, with its audit log in `FILE.audit` and call
/// statistics read from lars-reporter's statistics file, if one is given. A host taken out of
/// rotation keeps its line, marked `out` (see [`super::file`]).
pub struct FileConsole {
    routes: RouteFile,
    path: PathBuf,
    audit: PathBuf,
    stats: Option<PathBuf>,
}

impl FileConsole {
    /// A store over the route file `path`, and lars-reporter's statistics file `stats`.
    pub fn new(path: impl Into<PathBuf>, stats: Option<PathBuf>) -> Self {
        let path = path.into();
        FileConsole { routes: RouteFile::new(&path), audit: file_audit_path(&path), path, stats }
    }
}

/// An audit field in the file: tabs and line ends would break the line.
fn audit_field(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

impl ConsoleStore for FileConsole {
    fn capabilities(&mut self) -> Result<Capabilities, StoreError> {
        Ok(Capabilities { weights: true, rotation: true, audit: true, descriptions: false, ipv6: true })
    }

    fn version(&mut self) -> Result<u64, StoreError> {
        if self.path.exists() { self.routes.version() } else { Ok(0) }
    }

    fn overview(&mut self) -> Result<Overview, StoreError> {
        let (routes, version) = self.routes.read_lines()?;
        Ok(Overview { version, routes, ..Overview::default() })
    }

    fn route(&mut self, key: RouteKey) -> Result<Vec<HostEntry>, StoreError> {
        Ok(self.overview()?.routes.remove(&key).unwrap_or_default())
    }

    fn names(&mut self, _: RouteKey) -> Result<(String, String), StoreError> {
        Ok((String::new(), String::new()))
    }

    fn status(&mut self, key: Option<RouteKey>) -> Result<Vec<StatRow>, StoreError> {
        let Some(path) = &self.stats else { return Ok(Vec::new()) };
        if !path.exists() {
            return Ok(Vec::new());
        }
        // The file is a log: `read` gives the last line of each key, as MySQL holds them.
        let mut rows = super::file::StatsFile::read(path)?;
        rows.retain(|row| key.is_none_or(|key| (row.modid, row.cmdid) == key));
        Ok(rows)
    }

    fn apply(&mut self, key: RouteKey, edit: &Edit, actor: &Actor) -> Result<u64, StoreError> {
        check_edit(edit, &self.capabilities()?)?;
        let (mut routes, _) = self.routes.read_lines()?;
        let hosts = routes.entry(key).or_default();
        let mut changed = 0u64;
        match edit {
            Edit::AddHost { addr, weight } => {
                if let Err(at) = hosts.binary_search_by(|h| h.addr.cmp(addr)) {
                    hosts.insert(at, HostEntry { addr: *addr, weight: *weight, in_rotation: true });
                    changed = 1;
                }
            }
            Edit::RemoveHosts(addrs) => {
                let count = hosts.len();
                hosts.retain(|h| !addrs.contains(&h.addr));
                changed = (count - hosts.len()) as u64;
            }
            Edit::SetWeight { addrs, weight } => {
                for host in hosts.iter_mut().filter(|h| addrs.contains(&h.addr) && h.weight != *weight) {
                    host.weight = *weight;
                    changed += 1;
                }
            }
            Edit::SetInRotation { addrs, in_rotation } => {
                for host in
                    hosts.iter_mut().filter(|h| addrs.contains(&h.addr) && h.in_rotation != *in_rotation)
                {
                    host.in_rotation = *in_rotation;
                    changed += 1;
                }
            }
            Edit::RemoveRoute => {
                changed = hosts.len() as u64;
                hosts.clear();
            }
        }
        if hosts.is_empty() {
            routes.remove(&key);
        }
        if changed == 0 {
            return Ok(0);
        }
        // The audit line first: a change that could not be recorded is not made. A save that
        // fails after it says so in a second line, so the log never claims a change that is
        // not in the file.
        append_file_audit(&self.audit, actor, edit.action(), key, &edit.detail())?;
        if let Err(e) = self.routes.save_lines(&routes) {
            let _ = append_file_audit(&self.audit, actor, edit.action(), key, &format!("not made: {e}"));
            return Err(e);
        }
        Ok(changed)
    }

    fn describe(&mut self, _: Named, _: u32, _: &str, _: &Actor) -> Result<(), StoreError> {
        Err(refuse("the route file keeps no descriptions; they live in MySQL's ModIDConfig and CmdIDConfig"))
    }

    fn audit(&mut self, key: Option<RouteKey>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let text = match std::fs::read_to_string(&self.audit) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::Unavailable(format!("{}: {e}", self.audit.display()))),
        };
        let mut entries: Vec<AuditEntry> = text
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                let [ts, user, address, action, modid, cmdid, detail] = f[..] else { return None };
                Some(AuditEntry {
                    ts: ts.parse().ok()?,
                    user: user.into(),
                    address: address.into(),
                    action: action.into(),
                    key: (modid.parse().ok()?, cmdid.parse().ok()?),
                    detail: detail.into(),
                })
            })
            .filter(|entry| key.is_none_or(|key| entry.key == key))
            .collect();
        entries.reverse();
        entries.truncate(limit);
        Ok(entries)
    }

    fn describe_store(&self) -> String {
        format!("route file {}", self.path.display())
    }
}

/// The audit log kept beside route file `path`: `FILE.audit`.
pub(super) fn file_audit_path(path: &Path) -> PathBuf {
    let mut audit = path.as_os_str().to_os_string();
    audit.push(".audit");
    audit.into()
}

/// Appends one record to a route file's audit log (`audit`), on disk before it returns.
pub(super) fn append_file_audit(
    audit: &Path,
    actor: &Actor,
    action: &str,
    key: RouteKey,
    detail: &str,
) -> Result<(), StoreError> {
    use std::io::Write as _;
    let mut line = String::new();
    let _ = writeln!(
        line,
        "{}\t{}\t{}\t{action}\t{}\t{}\t{}",
        Clock::unix_secs(),
        audit_field(&actor.user),
        audit_field(&actor.address),
        key.0,
        key.1,
        audit_field(detail)
    );
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(audit)
        .and_then(|mut file| file.write_all(line.as_bytes()).and_then(|()| file.sync_data()))
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", audit.display())))
}

/// Opens the console's store: MySQL when `mysql` is a URL, else the route file.
pub fn open(
    mysql: Option<&str>,
    routes: Option<&Path>,
    stats: Option<&Path>,
) -> Result<Box<dyn ConsoleStore>, StoreError> {
    match (mysql, routes) {
        (Some(url), None) => Ok(open_mysql(super::mysql::opts(url)?)),
        (None, Some(path)) => Ok(Box::new(FileConsole::new(path, stats.map(Path::to_path_buf)))),
        _ => Err(StoreError::Invalid("give either a MySQL URL or a route file".into())),
    }
}

/// The console's store on MySQL with `opts` (from a URL or an original `[mysql]` section),
/// with its audit table made if it is missing.
pub fn open_mysql(opts: Opts) -> Box<dyn ConsoleStore> {
    let mut store = MysqlConsole::new(opts);
    if let Err(e) = store.ensure_audit_table() {
        log::warn!(
            "could not create the RouteAudit table ({e}); changes are refused until `lars db-init` makes it"
        );
    }
    Box::new(store)
}

#[cfg(test)]
mod tests;
