//! MySQL/MariaDB stores, schema-compatible with the original `lars_dns` database.
//!
//! The original tables are used unchanged (an existing Lars database and its web console keep
//! working); the one extension is additive: `RouteData.weight` (default 1). Every query is a
//! prepared statement with parameters. A failed query drops the connection, and the next call
//! reconnects, so an outage costs errors (which lars-dns and lars-reporter retry with backoff),
//! never a crash.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, TxOpts, Value};

use super::{RouteChanges, RouteKey, RouteStore, RouteTable, StatRow, StatsStore, StoreError};
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

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Connection options from a `mysql://user:password@host:port/database` URL (special
/// characters in the password percent-encoded). An error shows the URL without its password.
pub fn opts(url: &str) -> Result<Opts, StoreError> {
    Opts::from_url(url)
        .map_err(|e| StoreError::Invalid(format!("MySQL URL `{}`: {e}", without_password(url))))
}

/// `url` with the password, if any, replaced by `***`. The user part ends at the last `@`,
/// so a password typed with a raw `/` or `@` is hidden too.
fn without_password(url: &str) -> String {
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
    let has_weight: Option<u32> = conn
        .exec_first(
            "SELECT 1 FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'RouteData' AND COLUMN_NAME = 'weight'",
            (),
        )
        .map_err(unavailable)?;
    if has_weight.is_none() {
        conn.query_drop("ALTER TABLE RouteData ADD COLUMN weight int unsigned NOT NULL DEFAULT 1")
            .map_err(unavailable)?;
    }
    // lars-dns reads a changed route by its key.
    conn.query_drop("CREATE INDEX IF NOT EXISTS route_key ON RouteData (modid, cmdid)")
        .map_err(unavailable)?;
    Ok(())
}

/// A connection that reconnects on the next use after any failure.
struct Link {
    opts: Opts,
    conn: Option<Conn>,
}

impl Link {
    fn new(opts: Opts) -> Self {
        Link { opts, conn: None }
    }

    fn with<T>(&mut self, query: impl FnOnce(&mut Conn) -> mysql::Result<T>) -> Result<T, StoreError> {
        if self.conn.is_none() {
            self.conn = Some(Conn::new(self.opts.clone()).map_err(unavailable)?);
        }
        let Some(conn) = self.conn.as_mut() else { return Err(unavailable("no connection")) };
        query(conn).map_err(|e| {
            self.conn = None;
            unavailable(e)
        })
    }

    fn describe(&self) -> String {
        format!(
            "MySQL {}:{}/{}",
            self.opts.get_ip_or_hostname(),
            self.opts.get_tcp_port(),
            self.opts.get_db_name().unwrap_or("")
        )
    }
}

/// Routes in MySQL (`RouteData`, `RouteVersion`, `RouteChange`).
pub struct MysqlRoutes {
    link: Link,
}

impl MysqlRoutes {
    /// A store connecting with `opts` on first use.
    pub fn new(opts: Opts) -> Self {
        MysqlRoutes { link: Link::new(opts) }
    }
}

/// More changed routes than this at once are read with a full load.
const MAX_CHANGED_ROUTES: usize = 1000;

/// A `RouteData` address: the host-order IPv4 integer and the port.
fn host_of(ip: u32, port: u32) -> Option<SocketAddr> {
    let port = u16::try_from(port).ok()?;
    Some(SocketAddr::V4(SocketAddrV4::new(ip.into(), port)))
}

impl RouteStore for MysqlRoutes {
    fn version(&mut self) -> Result<u64, StoreError> {
        let version: Option<u64> = self
            .link
            .with(|conn| conn.exec_first("SELECT version FROM RouteVersion WHERE id = ?", (1u32,)))?;
        Ok(version.unwrap_or(0))
    }

    fn load(&mut self) -> Result<RouteTable, StoreError> {
        let version = self.version()?;
        let mut table = RouteTable { version, ..RouteTable::default() };
        let mut bad = 0usize;
        self.link.with(|conn| {
            let rows =
                conn.exec_iter("SELECT modid, cmdid, serverip, serverport, weight FROM RouteData", ())?;
            for row in rows {
                let (modid, cmdid, ip, port, weight): (u32, u32, u32, u32, u32) =
                    mysql::from_row_opt(row?).map_err(|e| mysql::Error::FromRowError(e.0))?;
                match host_of(ip, port) {
                    // modid and cmdid are signed in the protocol, unsigned in the table.
                    Some(addr) => table.insert((modid as i32, cmdid as i32), WeightedHost { addr, weight }),
                    None => bad += 1,
                }
            }
            Ok(())
        })?;
        if bad > 0 {
            eprintln!("lars-dns: skipped {bad} RouteData rows with a port over 65535");
        }
        Ok(table)
    }

    /// Every `RouteChange` row up to the current version, as the original lars-dns read them:
    /// lars-dns deletes the rows it has applied (`changes_applied`), so what is left is new,
    /// whatever version the web console stamped on it.
    fn changes_since(&mut self, _since: u64) -> Result<Option<RouteChanges>, StoreError> {
        let version = self.version()?;
        let keys: Vec<(u32, u32)> = self.link.with(|conn| {
            conn.exec(
                "SELECT DISTINCT modid, cmdid FROM RouteChange WHERE version <= ? LIMIT ?",
                (version, MAX_CHANGED_ROUTES + 1),
            )
        })?;
        if keys.is_empty() || keys.len() > MAX_CHANGED_ROUTES {
            return Ok(None);
        }
        let mut routes = Vec::with_capacity(keys.len());
        let mut bad = 0usize;
        for (modid, cmdid) in keys {
            let rows: Vec<(u32, u32, u32)> = self.link.with(|conn| {
                conn.exec(
                    "SELECT serverip, serverport, weight FROM RouteData WHERE modid = ? AND cmdid = ?",
                    (modid, cmdid),
                )
            })?;
            let mut route = RouteTable::default();
            let key = (modid as i32, cmdid as i32);
            for (ip, port, weight) in rows {
                match host_of(ip, port) {
                    Some(addr) => route.insert(key, WeightedHost { addr, weight }),
                    None => bad += 1,
                }
            }
            routes.push((key, route.hosts(key).to_vec()));
        }
        if bad > 0 {
            eprintln!("lars-dns: skipped {bad} RouteData rows with a port over 65535");
        }
        Ok(Some(RouteChanges { version, routes }))
    }

    fn changes_applied(&mut self, version: u64) -> Result<(), StoreError> {
        self.link.with(|conn| conn.exec_drop("DELETE FROM RouteChange WHERE version <= ?", (version,)))
    }

    fn describe(&self) -> String {
        self.link.describe()
    }
}

/// Changes to routes, as the web console makes them.
pub trait RouteAdmin {
    /// Adds `addr` to the route.
    fn add_host(&mut self, key: RouteKey, addr: SocketAddr, weight: u32) -> Result<(), StoreError>;
    /// Removes `addr` from the route; returns whether it was there.
    fn remove_host(&mut self, key: RouteKey, addr: SocketAddr) -> Result<bool, StoreError>;
}

impl MysqlRoutes {
    /// Applies `change` in a transaction that also records a `RouteChange` row and bumps
    /// `RouteVersion`, exactly as the web console does.
    fn change(
        &mut self,
        key: RouteKey,
        change: impl FnOnce(&mut mysql::Transaction<'_>) -> mysql::Result<u64>,
    ) -> Result<u64, StoreError> {
        self.link.with(|conn| {
            let mut tx = conn.start_transaction(TxOpts::default())?;
            let affected = change(&mut tx)?;
            tx.exec_drop(
                "UPDATE RouteVersion SET version = GREATEST(version + 1, UNIX_TIMESTAMP()) WHERE id = ?",
                (1u32,),
            )?;
            let version: u64 =
                tx.exec_first("SELECT version FROM RouteVersion WHERE id = ?", (1u32,))?.unwrap_or(0);
            tx.exec_drop(
                "INSERT INTO RouteChange (modid, cmdid, version) VALUES (?, ?, ?)",
                (key.0 as u32, key.1 as u32, version),
            )?;
            tx.commit()?;
            Ok(affected)
        })
    }
}

fn v4_parts(addr: SocketAddr) -> Result<(u32, u32), StoreError> {
    match addr.ip() {
        IpAddr::V4(ip) => Ok((ip.to_bits(), u32::from(addr.port()))),
        IpAddr::V6(_) => Err(StoreError::Invalid(format!("{addr}: the Lars schema holds IPv4 hosts only"))),
    }
}

impl RouteAdmin for MysqlRoutes {
    fn add_host(&mut self, key: RouteKey, addr: SocketAddr, weight: u32) -> Result<(), StoreError> {
        let (ip, port) = v4_parts(addr)?;
        self.change(key, |tx| {
            tx.exec_drop(
                "INSERT INTO RouteData (modid, cmdid, serverip, serverport, weight) VALUES (?, ?, ?, ?, ?)",
                (key.0 as u32, key.1 as u32, ip, port, weight),
            )?;
            Ok(1)
        })
        .map(drop)
    }

    fn remove_host(&mut self, key: RouteKey, addr: SocketAddr) -> Result<bool, StoreError> {
        let (ip, port) = v4_parts(addr)?;
        let removed = self.change(key, |tx| {
            tx.exec_drop(
                "DELETE FROM RouteData WHERE modid = ? AND cmdid = ? AND serverip = ? AND serverport = ?",
                (key.0 as u32, key.1 as u32, ip, port),
            )?;
            Ok(tx.affected_rows())
        })?;
        Ok(removed > 0)
    }
}

/// A `ServerCallStatus` row as stored: modid, cmdid, ip, port, caller, succ_cnt, err_cnt, ts,
/// overload.
type StatusRow = (i32, i32, u32, u32, u32, i64, i64, u64, String);

/// Every row of `ServerCallStatus` (IPv4 hosts, as the schema holds), in key order.
pub fn read_status(opts: &Opts) -> Result<Vec<StatRow>, StoreError> {
    let mut conn = Conn::new(opts.clone()).map_err(unavailable)?;
    let rows: Vec<StatusRow> = conn
        .exec(
            "SELECT modid, cmdid, ip, port, caller, succ_cnt, err_cnt, ts, overload FROM ServerCallStatus
             ORDER BY modid, cmdid, ip, port, caller",
            (),
        )
        .map_err(unavailable)?;
    Ok(rows
        .into_iter()
        .filter_map(|(modid, cmdid, ip, port, caller, succ, err, ts, overload)| {
            Some(StatRow {
                modid,
                cmdid,
                host: host_of(ip, port)?,
                caller,
                succ: u32::try_from(succ).unwrap_or(0),
                err: u32::try_from(err).unwrap_or(0),
                ts,
                overload: overload == "1",
            })
        })
        .collect())
}

/// Statistics in `ServerCallStatus`, written with multi-row upserts that replace the previous
/// counts of each (route, host, caller), as the original's `ON DUPLICATE KEY UPDATE` did.
pub struct MysqlStats {
    link: Link,
    skipped_ipv6: u64,
}

/// Rows per statement: batches are split into these sizes so that a few prepared statements
/// serve every batch.
const CHUNKS: [usize; 3] = [256, 16, 1];

impl MysqlStats {
    /// A store connecting with `opts` on first use.
    pub fn new(opts: Opts) -> Self {
        MysqlStats { link: Link::new(opts), skipped_ipv6: 0 }
    }

    fn upsert_sql(rows: usize) -> String {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ");
        format!(
            "INSERT INTO ServerCallStatus (modid, cmdid, ip, port, caller, succ_cnt, err_cnt, ts, overload) VALUES {values} \
             ON DUPLICATE KEY UPDATE succ_cnt = VALUES(succ_cnt), err_cnt = VALUES(err_cnt), ts = VALUES(ts), \
             overload = VALUES(overload)"
        )
    }
}

impl StatsStore for MysqlStats {
    fn store(&mut self, rows: &[StatRow]) -> Result<(), StoreError> {
        let v4: Vec<(&StatRow, u32, u32)> = rows
            .iter()
            .filter_map(|row| match row.host {
                SocketAddr::V4(a) => Some((row, a.ip().to_bits(), u32::from(a.port()))),
                SocketAddr::V6(_) => None,
            })
            .collect();
        self.skipped_ipv6 += (rows.len() - v4.len()) as u64;
        self.link.with(|conn| {
            let mut rest = &v4[..];
            while !rest.is_empty() {
                let size = CHUNKS.into_iter().find(|&c| c <= rest.len()).unwrap_or(1);
                let (chunk, tail) = rest.split_at(size);
                let mut params = Vec::with_capacity(size * 9);
                for (row, ip, port) in chunk {
                    params.extend([
                        Value::from(row.modid),
                        Value::from(row.cmdid),
                        Value::from(*ip),
                        Value::from(*port),
                        Value::from(row.caller),
                        Value::from(i64::from(row.succ).min(i64::from(i32::MAX))),
                        Value::from(i64::from(row.err).min(i64::from(i32::MAX))),
                        Value::from(row.ts),
                        Value::from(if row.overload { "1" } else { "0" }),
                    ]);
                }
                conn.exec_drop(Self::upsert_sql(size), params)?;
                rest = tail;
            }
            Ok(())
        })
    }

    fn describe(&self) -> String {
        self.link.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_reported_without_its_password() {
        let error = opts("mysql://lars:s3cret@db.example:port/lars_dns").unwrap_err().to_string();
        assert!(error.contains("mysql://lars:***@db.example:port/lars_dns"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        assert_eq!(without_password("mysql://root@h/db"), "mysql://root@h/db");
        let error = opts("mysql://u:pa/ss@db/x").unwrap_err().to_string();
        assert!(!error.contains("ss"), "a raw / in the password: {error}");
    }
}
