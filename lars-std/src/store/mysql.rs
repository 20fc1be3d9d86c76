//! MySQL/MariaDB stores, schema-compatible with the original `lars_dns` database.
//!
//! The original tables are used unchanged (an existing Lars database and its web console keep
//! working). The extensions are additive and optional: `RouteData.weight` (default 1),
//! `RouteData.disabled` (a host the console took out of rotation, kept but not served), an
//! index on `RouteData (modid, cmdid)`, which lets lars-dns read only the routes `RouteChange`
//! names, and the console's `RouteAudit` table (`console.rs`). A database made by the original's
//! own SQL file has none of them: the stores find out which exist ([`Schema`]), say once what the
//! missing ones turn off, and work without them. Only [`init_schema`] (`lars db-init`) alters an
//! existing table.
//!
//! Every query is a prepared statement with parameters. A failed query drops the connection,
//! and the next call reconnects, so an outage costs errors (which lars-dns and lars-reporter
//! retry with backoff), never a crash. No call waits for ever: connecting gives up after
//! [`CONNECT_TIMEOUT`] and each read or write of the socket after [`IO_TIMEOUT`] (a hung
//! server becomes an error, so a daemon can stop), unless the URL says otherwise
//! (`tcp_connect_timeout_ms`, `read_timeout_ms`, `write_timeout_ms`).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use lars_core::time::Instant;

use mysql::prelude::Queryable;
use mysql::{AccessMode, Conn, Opts, TxOpts, Value};

use super::console::{Actor, Edit, has_audit_table, insert_audit};
use super::{RouteChanges, RouteKey, RouteStore, RouteTable, StatRow, StatsStore, StoreError};
use crate::time::{Clock, from_std};
use changes::{ChangeCursor, LOOKBACK_IDS};
use lars_core::wire::native::WeightedHost;

/// The original schema (`base/sql/lars_dns.sql`), made idempotent.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS RouteData (
        id int unsigned NOT NULL AUTO_INCREMENT,
        modid int unsigned NOT NULL,
        cmdid int unsigned NOT NULL,
        serverip int unsigned NOT NULL,
        serverport int unsigned NOT NULL,
        PRIMARY KEY (id)
     ) ENGINE=InnoDB AUTO_INCREMENT=116064 DEFAULT CHARSET=utf8",
    "CREATE TABLE IF NOT EXISTS RouteVersion (
        id int unsigned NOT NULL AUTO_INCREMENT,
        version int unsigned NOT NULL,
        PRIMARY KEY (id)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "INSERT IGNORE INTO RouteVersion (id, version) VALUES (1, 0)",
    "CREATE TABLE IF NOT EXISTS RouteChange (
        id int unsigned NOT NULL AUTO_INCREMENT,
        modid int unsigned NOT NULL,
        cmdid int unsigned NOT NULL,
        version bigint unsigned NOT NULL,
        PRIMARY KEY (id)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE IF NOT EXISTS ServerCallStatus (
        modid int NOT NULL,
        cmdid int NOT NULL,
        ip int unsigned NOT NULL,
        port int unsigned NOT NULL,
        caller int unsigned NOT NULL,
        succ_cnt int NOT NULL,
        err_cnt int NOT NULL,
        ts bigint unsigned NOT NULL,
        overload char(1) NOT NULL,
        PRIMARY KEY (modid, cmdid, ip, port, caller),
        KEY mlb_index (modid, cmdid, ip, port, caller)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE IF NOT EXISTS ModIDConfig (
        id int unsigned NOT NULL AUTO_INCREMENT,
        modid int unsigned NOT NULL,
        content char(255) DEFAULT NULL,
        PRIMARY KEY (id)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE IF NOT EXISTS CmdIDConfig (
        id int unsigned NOT NULL AUTO_INCREMENT,
        cmdid int unsigned NOT NULL,
        content char(255) DEFAULT NULL,
        PRIMARY KEY (id)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8",
];

/// How long connecting to MySQL may take, unless the URL's `tcp_connect_timeout_ms` says.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long one read or write of a MySQL connection may wait, unless the URL's
/// `read_timeout_ms` or `write_timeout_ms` says. A query's rows arriving in many reads are
/// not limited by it; a server that stops answering is.
pub const IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `opts` with the timeouts it does not set: [`CONNECT_TIMEOUT`] and [`IO_TIMEOUT`].
fn with_timeouts(opts: Opts) -> Opts {
    let connect = opts.get_tcp_connect_timeout().unwrap_or(CONNECT_TIMEOUT);
    let read = opts.get_read_timeout().copied().unwrap_or(IO_TIMEOUT);
    let write = opts.get_write_timeout().copied().unwrap_or(IO_TIMEOUT);
    mysql::OptsBuilder::from_opts(opts)
        .tcp_connect_timeout(Some(connect))
        .read_timeout(Some(read))
        .write_timeout(Some(write))
        .into()
}

/// One of lars's additive extensions of an original table: the statement that adds it, and how
/// [`Schema`] tells that a database has it.
struct Extension {
    ddl: &'static str,
    present: fn(&Schema) -> bool,
}

/// The extensions. [`init_schema`] applies the ones a database lacks; [`schema_sql`] writes
/// them all, so the packaged script and `db-init` make the same schema from this one list.
const EXTENSIONS: [Extension; 3] = [
    Extension {
        ddl: "ALTER TABLE RouteData ADD COLUMN weight int unsigned NOT NULL DEFAULT 1",
        present: |s| s.weight,
    },
    Extension {
        ddl: "ALTER TABLE RouteData ADD COLUMN disabled tinyint unsigned NOT NULL DEFAULT 0",
        present: |s| s.disabled,
    },
    // lars-dns reads a changed route by its key. (`CREATE INDEX IF NOT EXISTS` is MariaDB's
    // only: MySQL 8.0 refuses it, so the index is looked up first.)
    Extension { ddl: "CREATE INDEX route_key ON RouteData (modid, cmdid)", present: |s| s.route_index },
];

/// lars's additive tables (`CREATE TABLE IF NOT EXISTS`): the console's audit log, and
/// lars-reporter's call history and decision log (`store::history`).
fn additive_tables() -> impl Iterator<Item = &'static str> {
    std::iter::once(super::console::AUDIT_TABLE).chain(super::history::mysql::TABLES)
}

/// The schema [`init_schema`] makes in an empty database, as an SQL script (for
/// `lars db-init --print-sql` and the packages' `schema.sql`): the original tables, then every
/// extension and additive table, from the lists `init_schema` reads.
pub fn schema_sql() -> String {
    let mut sql = String::from(
        "-- The lars_dns schema: the original Lars tables and lars's additive extensions,\n\
         -- as `lars db-init` makes them in an empty database.\n",
    );
    let extensions = EXTENSIONS.iter().map(|extension| extension.ddl);
    for statement in SCHEMA.iter().copied().chain(extensions).chain(additive_tables()) {
        let lines: Vec<&str> = statement.lines().map(str::trim_end).collect();
        sql.push_str(&format!("\n{};\n", lines.join("\n")));
    }
    sql
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Connection options from a `mysql://user:password@host:port/database` URL (special
/// characters in the password percent-encoded), with the mysql crate's parameters and lars's
/// `read_timeout_ms` and `write_timeout_ms`. An error shows the URL without its password.
pub fn opts(url: &str) -> Result<Opts, StoreError> {
    let invalid = |e: &dyn std::fmt::Display| {
        StoreError::Invalid(format!("MySQL URL `{}`: {e}", without_password(url)))
    };
    // The mysql crate refuses parameters it does not know: take lars's own out first.
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let (mut read, mut write) = (None, None);
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let slot = match name {
            "read_timeout_ms" => &mut read,
            "write_timeout_ms" => &mut write,
            _ => {
                kept.push(param);
                continue;
            }
        };
        let ms: u64 = value.parse().map_err(|_| invalid(&format!("{name}={value} is not a number of ms")))?;
        *slot = Some(std::time::Duration::from_millis(ms));
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    let opts = Opts::from_url(&url).map_err(|e| invalid(&e))?;
    let opts = mysql::OptsBuilder::from_opts(opts).read_timeout(read).write_timeout(write).into();
    Ok(with_timeouts(opts))
}

/// `url` with the password, if any, replaced by `***`. The user part ends at the last `@`,
/// so a password typed with a raw `/` or `@` is hidden too.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some(at) = rest.rfind('@') else { return url.to_string() };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// Creates the database (if the URL names one that does not exist) and the schema, or upgrades
/// an existing Lars database by adding the extension columns. Safe to run again.
pub fn init_schema(opts: &Opts) -> Result<(), StoreError> {
    if let Some(name) = opts.get_db_name() {
        // A database name cannot be a statement parameter: accept plain identifiers only.
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::Invalid(format!("database name `{name}`: use letters, digits and _")));
        }
        let server: Opts = mysql::OptsBuilder::from_opts(opts.clone()).db_name(None::<String>).into();
        let mut conn = Conn::new(server).map_err(unavailable)?;
        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{name}`")).map_err(unavailable)?;
    }
    let mut conn = Conn::new(opts.clone()).map_err(unavailable)?;
    for statement in SCHEMA {
        conn.query_drop(statement).map_err(unavailable)?;
    }
    let schema = Schema::detect(&mut conn).map_err(unavailable)?;
    for extension in EXTENSIONS.iter().filter(|extension| !(extension.present)(&schema)) {
        conn.query_drop(extension.ddl).map_err(unavailable)?;
    }
    for table in additive_tables() {
        conn.query_drop(table).map_err(unavailable)?;
    }
    Ok(())
}

/// Which of lars's additive schema extensions a database has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// `RouteData.weight` exists; without it every host weighs 1 and `lars route add` takes
    /// no other weight.
    pub weight: bool,
    /// `RouteData.disabled` exists; without it no host can be taken out of rotation.
    pub disabled: bool,
    /// An index on `RouteData` starts with `(modid, cmdid)`; without it a change reloads every
    /// route, since reading one route would scan the table.
    pub route_index: bool,
}

impl Schema {
    /// Looks the extensions up in `information_schema` (of the connection's database).
    pub fn detect(conn: &mut Conn) -> mysql::Result<Schema> {
        let weight: Option<u32> = conn.exec_first(
            "SELECT 1 FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'RouteData' AND COLUMN_NAME = 'weight'",
            (),
        )?;
        let disabled: Option<u32> = conn.exec_first(
            "SELECT 1 FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'RouteData' AND COLUMN_NAME = 'disabled'",
            (),
        )?;
        // An index whose first two columns are modid and cmdid, whatever its name.
        let route_index: Option<u32> = conn.exec_first(
            "SELECT 1 FROM information_schema.STATISTICS a JOIN information_schema.STATISTICS b
               ON a.TABLE_SCHEMA = b.TABLE_SCHEMA AND a.TABLE_NAME = b.TABLE_NAME
              AND a.INDEX_NAME = b.INDEX_NAME
             WHERE a.TABLE_SCHEMA = DATABASE() AND a.TABLE_NAME = 'RouteData'
               AND a.SEQ_IN_INDEX = 1 AND a.COLUMN_NAME = 'modid'
               AND b.SEQ_IN_INDEX = 2 AND b.COLUMN_NAME = 'cmdid'
             LIMIT 1",
            (),
        )?;
        Ok(Schema {
            weight: weight.is_some(),
            disabled: disabled.is_some(),
            route_index: route_index.is_some(),
        })
    }

    /// What the missing extensions turn off, for the log; `None` when nothing is missing.
    pub fn missing(&self) -> Option<String> {
        let mut off = Vec::new();
        if !self.weight {
            off.push("RouteData has no `weight` column, so every host weighs 1");
        }
        if !self.route_index {
            off.push("RouteData has no (modid, cmdid) index, so each change reloads every route");
        }
        if !self.disabled {
            off.push("RouteData has no `disabled` column, so no host can be taken out of rotation");
        }
        (!off.is_empty()).then(|| format!("{} (`lars db-init` adds them)", off.join("; ")))
    }

    /// The `RouteData` columns to read: `modid, cmdid, serverip, serverport, weight`, with a
    /// constant weight of 1 where the column does not exist.
    pub(super) fn route_columns(&self) -> &'static str {
        if self.weight { "serverip, serverport, weight" } else { "serverip, serverport, 1" }
    }

    /// The condition that leaves out hosts taken out of rotation (`TRUE` without the column).
    fn served(&self) -> &'static str {
        if self.disabled { "disabled = 0" } else { "TRUE" }
    }
}

/// A connection that reconnects on the next use after any failure, and that knows the schema
/// of its database (looked up at each connect and each [`Link::recheck_schema`], so a
/// `db-init` while lars-dns runs is picked up at its next full load).
pub(super) struct Link {
    opts: Opts,
    conn: Option<Conn>,
    schema: Option<Schema>,
    /// The log line about missing extensions was written (once per process and link).
    told: bool,
}

impl Link {
    pub(super) fn new(opts: Opts) -> Self {
        Link { opts: with_timeouts(opts), conn: None, schema: None, told: false }
    }

    pub(super) fn with<T>(
        &mut self,
        query: impl FnOnce(&mut Conn) -> mysql::Result<T>,
    ) -> Result<T, StoreError> {
        if self.conn.is_none() {
            self.conn = Some(Conn::new(self.opts.clone()).map_err(unavailable)?);
            self.schema = None;
        }
        let Some(conn) = self.conn.as_mut() else { return Err(unavailable("no connection")) };
        query(conn).map_err(|e| {
            self.conn = None;
            unavailable(e)
        })
    }

    /// Like [`Link::with`], for queries on `RouteData`, which need to know its schema.
    pub(super) fn with_schema<T>(
        &mut self,
        query: impl FnOnce(&mut Conn, Schema) -> mysql::Result<T>,
    ) -> Result<T, StoreError> {
        let schema = match self.schema {
            Some(schema) if self.conn.is_some() => schema,
            _ => {
                let schema = self.with(Schema::detect)?;
                if let Some(missing) = schema.missing().filter(|_| !self.told) {
                    log::warn!("{}: {missing}", self.describe());
                    self.told = true;
                }
                self.schema = Some(schema);
                schema
            }
        };
        self.with(|conn| query(conn, schema))
    }

    /// Looks the schema up again before the next query.
    pub(super) fn recheck_schema(&mut self) {
        self.schema = None;
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "MySQL {}:{}/{}",
            self.opts.get_ip_or_hostname(),
            self.opts.get_tcp_port(),
            self.opts.get_db_name().unwrap_or("")
        )
    }
}

/// Routes in MySQL (`RouteData`, `RouteVersion`, `RouteChange`).
///
/// Several lars-dns replicas may share one database, so the change log is read, never consumed:
/// each replica follows `RouteChange` with its own cursor (`ChangeCursor`), and rows are
/// pruned by age, long after every live replica has read them ([`CHANGE_RETENTION`]).
pub struct MysqlRoutes {
    link: Link,
    /// Rows the last full load skipped, so that the log says it when it changes, not at every
    /// reload.
    skipped: usize,
    /// Where this replica is in `RouteChange` (none until the first full load).
    cursor: Option<ChangeCursor>,
    /// How long `RouteChange` rows are kept.
    retention: Duration,
    clock: Clock,
    /// The cursor's id at moments [`MysqlRoutes::prune_every`] apart, oldest first: the rows
    /// up to the id of a moment `retention` ago are old enough to delete. The log's own
    /// columns can't tell a row's age (its `version` is whatever the writer put there).
    checkpoints: VecDeque<(u64, Instant)>,
}

impl MysqlRoutes {
    /// A store connecting with `opts` on first use.
    pub fn new(opts: Opts) -> Self {
        MysqlRoutes {
            link: Link::new(opts),
            skipped: 0,
            cursor: None,
            retention: CHANGE_RETENTION,
            clock: Clock::new(),
            checkpoints: VecDeque::new(),
        }
    }

    /// Keeps `RouteChange` rows for `retention` (default [`CHANGE_RETENTION`]) instead.
    pub fn with_change_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    fn prune_every(&self) -> lars_core::time::Duration {
        from_std((self.retention / 10).min(Duration::from_secs(60)))
    }
}

/// More changed routes than this at once are read with a full load.
const MAX_CHANGED_ROUTES: usize = 1000;

/// How long `RouteChange` rows are kept by default: far longer than a live replica takes to
/// read a row (it polls every second). A replica that could not read for half of it loads
/// everything instead of trusting its cursor, so pruning never takes a row a replica needs.
pub const CHANGE_RETENTION: Duration = Duration::from_secs(3600);

/// A `RouteData` address: the host-order IPv4 integer and the port.
pub(super) fn host_of(ip: u32, port: u32) -> Option<SocketAddr> {
    let port = u16::try_from(port).ok()?;
    Some(SocketAddr::V4(SocketAddrV4::new(ip.into(), port)))
}

/// Which `RouteData` rows [`read_hosts`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hosts<'a> {
    /// The hosts lars-dns serves (out of rotation left out), of every route or of these.
    Served(Option<&'a [(u32, u32)]>),
    /// Every host of every route, out of rotation included (the console's list).
    Every,
    /// Every host of one route, out of rotation included.
    OfRoute(RouteKey),
}

/// The `RouteData` hosts `which` names, as `(route, host)`, and how many rows were skipped
/// for a port over 65535. The one query over `RouteData` that lars-dns, `lars route list` and
/// the console share, so that what is served, listed and shown cannot drift apart.
pub(super) fn read_hosts(
    conn: &mut impl Queryable,
    schema: Schema,
    which: Hosts<'_>,
) -> mysql::Result<(Vec<(RouteKey, super::HostEntry)>, usize)> {
    let columns = schema.route_columns();
    let disabled = if schema.disabled { "disabled" } else { "0" };
    let select = format!("SELECT modid, cmdid, {columns}, {disabled} FROM RouteData");
    let rows: Vec<(u32, u32, u32, u32, u32, u32)> = match which {
        Hosts::Served(None) => conn.exec(format!("{select} WHERE {}", schema.served()), ())?,
        Hosts::Served(Some(keys)) => {
            let wanted = vec!["(?, ?)"; keys.len()].join(", ");
            let params: Vec<Value> =
                keys.iter().flat_map(|&(m, c)| [Value::from(m), Value::from(c)]).collect();
            conn.exec(format!("{select} WHERE (modid, cmdid) IN ({wanted}) AND {}", schema.served()), params)?
        }
        Hosts::Every => conn.exec(select, ())?,
        Hosts::OfRoute((modid, cmdid)) => {
            conn.exec(format!("{select} WHERE modid = ? AND cmdid = ?"), (modid as u32, cmdid as u32))?
        }
    };
    let mut bad = 0;
    let hosts = rows
        .into_iter()
        .filter_map(|(modid, cmdid, ip, port, weight, disabled)| {
            let Some(addr) = host_of(ip, port) else {
                bad += 1;
                return None;
            };
            // modid and cmdid are signed in the protocol, unsigned in the table.
            Some((
                (modid as i32, cmdid as i32),
                super::HostEntry { addr, weight, in_rotation: disabled == 0 },
            ))
        })
        .collect();
    Ok((hosts, bad))
}

impl RouteStore for MysqlRoutes {
    fn version(&mut self) -> Result<u64, StoreError> {
        let version: Option<u64> = self
            .link
            .with(|conn| conn.exec_first("SELECT version FROM RouteVersion WHERE id = ?", (1u32,)))?;
        let version = version.unwrap_or(0);
        if let Some(cursor) = self.cursor.as_mut() {
            cursor.confirm(version, self.clock.now());
        }
        // Polled every second whatever changes: the moment to prune.
        self.prune();
        Ok(version)
    }

    fn load(&mut self) -> Result<RouteTable, StoreError> {
        self.link.recheck_schema();
        // One snapshot for the version, the log's end and the routes: every change after it
        // is read from the log later, every change before it is in the table.
        let now = self.clock.now();
        let (table, cursor, bad) = self.link.with_schema(|conn, schema| {
            let mut tx = conn.start_transaction(snapshot())?;
            let version: Option<u64> =
                tx.exec_first("SELECT version FROM RouteVersion WHERE id = ?", (1u32,))?;
            // The log's end, and the rows in the look-back window below it: all in this table.
            let last_change: Option<u64> = tx.query_first("SELECT COALESCE(MAX(id), 0) FROM RouteChange")?;
            let version = version.unwrap_or(0);
            let mut cursor = ChangeCursor::at(last_change.unwrap_or(0), version, now);
            let window: Vec<u64> =
                tx.exec("SELECT id FROM RouteChange WHERE id > ?", (cursor.read_from(),))?;
            cursor.advance(window, version, now);
            let mut table = RouteTable { version, ..RouteTable::default() };
            let (hosts, bad) = read_hosts(&mut tx, schema, Hosts::Served(None))?;
            tx.commit()?;
            for (key, host) in hosts {
                table.insert(key, WeightedHost { addr: host.addr, weight: host.weight });
            }
            Ok((table, cursor, bad))
        })?;
        if bad != self.skipped {
            log::warn!("skipping {bad} RouteData rows with a port over 65535");
            self.skipped = bad;
        }
        self.cursor = Some(cursor);
        Ok(table)
    }

    /// The `RouteChange` rows this replica has not applied, read from its cursor, and the
    /// changed routes' hosts in one query. `None` (lars-dns then loads everything) before the
    /// first load, when the cursor may have missed pruned rows, when the version moved but no
    /// row names a change (a tool that only bumps the version, or an original lars-dns that
    /// consumed the rows), when too many routes changed, or without the `(modid, cmdid)` index.
    fn changes(&mut self) -> Result<Option<RouteChanges>, StoreError> {
        let Some(cursor) = self.cursor.clone() else { return Ok(None) };
        if self.clock.now().saturating_since(cursor.read_at) > from_std(self.retention / 2) {
            return Ok(None);
        }
        let read = self.link.with_schema(|conn, schema| {
            let mut tx = conn.start_transaction(snapshot())?;
            let version: Option<u64> =
                tx.exec_first("SELECT version FROM RouteVersion WHERE id = ?", (1u32,))?;
            let rows: Vec<(u64, u32, u32)> = tx.exec(
                "SELECT id, modid, cmdid FROM RouteChange WHERE id > ? ORDER BY id LIMIT ?",
                (cursor.read_from(), LOOKBACK_IDS as usize + MAX_CHANGED_ROUTES + 1),
            )?;
            let fresh: Vec<(u64, u32, u32)> =
                rows.into_iter().filter(|&(id, _, _)| cursor.is_new(id)).collect();
            let mut keys: Vec<(u32, u32)> = fresh.iter().map(|&(_, modid, cmdid)| (modid, cmdid)).collect();
            keys.sort_unstable();
            keys.dedup();
            if !schema.route_index || keys.is_empty() || keys.len() > MAX_CHANGED_ROUTES {
                tx.commit()?;
                return Ok(None);
            }
            let (hosts, bad) = read_hosts(&mut tx, schema, Hosts::Served(Some(&keys)))?;
            tx.commit()?;
            Ok(Some((version.unwrap_or(0), fresh, keys, hosts, bad)))
        })?;
        let Some((version, fresh, keys, hosts, bad)) = read else { return Ok(None) };
        let mut table = RouteTable::default();
        for (key, host) in hosts {
            table.insert(key, WeightedHost { addr: host.addr, weight: host.weight });
        }
        if bad > 0 {
            log::warn!("skipped {bad} RouteData rows with a port over 65535");
        }
        let routes = keys
            .into_iter()
            .map(|(modid, cmdid)| {
                let key = (modid as i32, cmdid as i32);
                (key, table.hosts(key).to_vec())
            })
            .collect();
        if let Some(cursor) = self.cursor.as_mut() {
            cursor.advance(fresh.into_iter().map(|(id, _, _)| id), version, self.clock.now());
        }
        Ok(Some(RouteChanges { version, routes }))
    }

    fn describe(&self) -> String {
        self.link.describe()
    }
}

impl MysqlRoutes {
    /// Deletes the `RouteChange` rows this replica read more than `retention` ago. Every live
    /// replica has read them too; a failure is only logged (they go next time).
    fn prune(&mut self) {
        let Some(cursor) = &self.cursor else { return };
        let now = self.clock.now();
        if self.checkpoints.back().is_none_or(|&(_, at)| now.saturating_since(at) >= self.prune_every()) {
            self.checkpoints.push_back((cursor.id, now));
        }
        let mut old_enough = None;
        while let Some(&(id, at)) = self.checkpoints.front()
            && now.saturating_since(at) >= from_std(self.retention)
        {
            old_enough = Some(id);
            self.checkpoints.pop_front();
        }
        let Some(id) = old_enough.filter(|&id| id > 0) else { return };
        if let Err(e) = self.link.with(|conn| conn.exec_drop("DELETE FROM RouteChange WHERE id <= ?", (id,)))
        {
            log::warn!("could not prune the change log: {e}");
        }
    }
}

/// A read-only transaction on one consistent snapshot.
fn snapshot() -> TxOpts {
    TxOpts::default().set_with_consistent_snapshot(true).set_access_mode(Some(AccessMode::ReadOnly))
}

mod admin;
mod changes;
mod stats;

pub use admin::RouteAdmin;
pub(super) use admin::{IfPresent, NEEDS_DB_INIT_WEIGHT, WHERE_HOST, add_host_row, record_change, v4_parts};
pub(super) use stats::status_rows;
pub use stats::{MysqlStats, read_status};
#[cfg(test)]
mod tests;
