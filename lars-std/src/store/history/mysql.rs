//! `CallHistory` and `HostDecision` on MySQL/MariaDB: additive tables that `db-init` creates
//! (`store::mysql::init_schema`, from `TABLES`); lars-reporter and the console only read and
//! write them.
//!
//! History rows are upserted by adding (`ON DUPLICATE KEY UPDATE succ_cnt = succ_cnt + ...`),
//! in primary-key order, in one transaction per batch, so replicas that saw parts of one minute
//! add up and concurrent writers lock rows in the same order. Hosts are stored as text
//! (`10.0.0.1:80`, `[2001:db8::1]:80`), so IPv6 hosts have history too. Pruning deletes in
//! bounded chunks, so it never holds locks for long.
//!
//! The store does the SQL and decodes the rows; what the sums and problems are is decided in
//! `buckets.rs` and `problems.rs`, which the grouped reads here state again in SQL (so that the
//! server sums, and `LIMIT` counts problems only) and whose rules judge what the server returns.

use std::net::SocketAddr;

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, TxOpts, Value};

use super::buckets::bucket_length;
use super::problems::{ProblemWindow, in_report_order};
use super::{DecisionFilter, DecisionRow, HistoryRow, HistoryStore, Problem, ProblemRules};
use crate::store::{RouteKey, StoreError};

/// The tables, as `db-init` creates them (`store::mysql::init_schema` and its script).
pub(crate) const TABLES: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS CallHistory (
        modid int NOT NULL,
        cmdid int NOT NULL,
        minute bigint unsigned NOT NULL,
        host varchar(64) NOT NULL,
        succ_cnt bigint unsigned NOT NULL,
        err_cnt bigint unsigned NOT NULL,
        overload_cnt bigint unsigned NOT NULL,
        overloaded tinyint NOT NULL,
        PRIMARY KEY (modid, cmdid, minute, host),
        KEY minute_index (minute)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE IF NOT EXISTS HostDecision (
        id bigint unsigned NOT NULL AUTO_INCREMENT,
        at_ms bigint unsigned NOT NULL,
        modid int NOT NULL,
        cmdid int NOT NULL,
        host varchar(64) NOT NULL,
        caller int unsigned NOT NULL,
        decision varchar(32) NOT NULL,
        reason varchar(255) NOT NULL,
        PRIMARY KEY (id),
        KEY route_time (modid, cmdid, at_ms),
        KEY time_index (at_ms)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8",
];

/// Rows per statement.
const CHUNK: usize = 500;
/// Rows deleted per statement when pruning, and statements per prune at most.
const PRUNE_CHUNK: u64 = 10_000;
const PRUNE_ROUNDS: usize = 20;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Call history and decisions in MySQL.
pub struct MysqlHistory {
    opts: Opts,
    conn: Option<Conn>,
    /// Whether both tables were found (once found, they stay).
    tables_found: bool,
}

impl MysqlHistory {
    /// A store that connects on first use and again after an error.
    pub fn new(opts: Opts) -> Self {
        MysqlHistory { opts, conn: None, tables_found: false }
    }

    /// Whether the database has both tables (`db-init` makes them); `Err` when it cannot be
    /// asked now.
    pub fn tables_exist(&mut self) -> Result<bool, StoreError> {
        let count: Option<u64> = self.with(|conn| {
            conn.query_first(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() \
                 AND table_name IN ('CallHistory', 'HostDecision')",
            )
        })?;
        self.tables_found = count == Some(2);
        Ok(self.tables_found)
    }

    fn with<T>(&mut self, query: impl FnOnce(&mut Conn) -> mysql::Result<T>) -> Result<T, StoreError> {
        if self.conn.is_none() {
            self.conn = Some(Conn::new(self.opts.clone()).map_err(unavailable)?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        query(conn).map_err(|e| {
            // A failed query may have left the connection unusable: reconnect next time.
            self.conn = None;
            unavailable(e)
        })
    }
}

fn host_of(text: &str) -> Option<SocketAddr> {
    text.parse().ok()
}

/// A `CallHistory` row of a route as read: minute (or bucket), host, succ, err, overload,
/// overloaded.
type StoredRow = (u64, String, u64, u64, u64, u8);

/// `route`'s rows as read, in the order read; a host that is not an address is passed over.
fn decode_rows(route: RouteKey, rows: Vec<StoredRow>) -> impl Iterator<Item = HistoryRow> {
    rows.into_iter().filter_map(move |(minute, host, succ, err, overload, overloaded)| {
        let (host, overloaded) = (host_of(&host)?, overloaded != 0);
        Some(HistoryRow { succ, err, overload, overloaded, ..HistoryRow::new(route, host, minute) })
    })
}

/// The console's history on MySQL: there once `db-init` has made the tables.
impl super::HistorySource for MysqlHistory {
    fn open(&mut self) -> Result<&mut dyn HistoryStore, super::NoHistory> {
        let found = self.tables_found
            || self.tables_exist().map_err(|e| super::NoHistory::Unavailable(e.to_string()))?;
        if found { Ok(self) } else { Err(super::NoHistory::NoTables) }
    }
}

/// Inserts `rows` in one transaction, `CHUNK` rows a statement: `insert` is the statement up
/// to `VALUES`, `tail` what follows the values, and `values` one row's parameters.
fn insert_in_chunks<R, const N: usize>(
    conn: &mut Conn,
    rows: &[R],
    insert: &str,
    tail: &str,
    values: impl Fn(&R) -> [Value; N],
) -> mysql::Result<()> {
    let row = format!("({})", vec!["?"; N].join(", "));
    let mut tx = conn.start_transaction(TxOpts::default())?;
    for chunk in rows.chunks(CHUNK) {
        let sql = format!("{insert} VALUES {}{tail}", vec![row.as_str(); chunk.len()].join(", "));
        let params: Vec<Value> = chunk.iter().flat_map(&values).collect();
        tx.exec_drop(sql, params)?;
    }
    tx.commit()
}

impl HistoryStore for MysqlHistory {
    fn add_history(&mut self, rows: &[HistoryRow]) -> Result<(), StoreError> {
        let mut rows = rows.to_vec();
        rows.sort_by_key(|r| (r.modid, r.cmdid, r.minute, r.host.to_string()));
        self.with(|conn| {
            insert_in_chunks(
                conn,
                &rows,
                "INSERT INTO CallHistory (modid, cmdid, minute, host, succ_cnt, err_cnt, overload_cnt, overloaded)",
                " ON DUPLICATE KEY UPDATE succ_cnt = succ_cnt + VALUES(succ_cnt), \
                 err_cnt = err_cnt + VALUES(err_cnt), overload_cnt = overload_cnt + VALUES(overload_cnt), \
                 overloaded = GREATEST(overloaded, VALUES(overloaded))",
                |r| {
                    [
                        Value::from(r.modid),
                        Value::from(r.cmdid),
                        Value::from(r.minute),
                        Value::from(r.host.to_string()),
                        Value::from(r.succ),
                        Value::from(r.err),
                        Value::from(r.overload),
                        Value::from(u8::from(r.overloaded)),
                    ]
                },
            )
        })
    }

    fn add_decisions(&mut self, rows: &[DecisionRow]) -> Result<(), StoreError> {
        self.with(|conn| {
            insert_in_chunks(
                conn,
                rows,
                "INSERT INTO HostDecision (at_ms, modid, cmdid, host, caller, decision, reason)",
                "",
                |d| {
                    [
                        Value::from(d.at_ms),
                        Value::from(d.modid),
                        Value::from(d.cmdid),
                        Value::from(d.host.to_string()),
                        Value::from(d.caller),
                        Value::from(d.change.as_str()),
                        Value::from(d.reason.chars().take(255).collect::<String>()),
                    ]
                },
            )
        })
    }

    fn prune(&mut self, history_before: u64, decisions_before_ms: u64) -> Result<u64, StoreError> {
        self.with(|conn| {
            let mut pruned = 0;
            for (sql, before) in [
                ("DELETE FROM CallHistory WHERE minute < ? LIMIT ?", history_before),
                ("DELETE FROM HostDecision WHERE at_ms < ? LIMIT ?", decisions_before_ms),
            ] {
                for _ in 0..PRUNE_ROUNDS {
                    conn.exec_drop(sql, (before, PRUNE_CHUNK))?;
                    let deleted = conn.affected_rows();
                    pruned += deleted;
                    if deleted < PRUNE_CHUNK {
                        break;
                    }
                }
            }
            Ok(pruned)
        })
    }

    fn history(
        &mut self,
        route: RouteKey,
        host: Option<SocketAddr>,
        from: u64,
        to: u64,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let host_text = host.map(|h| h.to_string());
        let rows: Vec<StoredRow> = self.with(|conn| {
            conn.exec(
                "SELECT minute, host, succ_cnt, err_cnt, overload_cnt, overloaded FROM CallHistory \
                 WHERE modid = ? AND cmdid = ? AND minute >= ? AND minute < ? AND (? IS NULL OR host = ?) \
                 ORDER BY minute, host",
                (route.0, route.1, from, to, host_text.clone(), host_text),
            )
        })?;
        // In minute and address order (text order is not address order: 10.0.0.10 sorts
        // before 10.0.0.2).
        let mut out: Vec<HistoryRow> = decode_rows(route, rows).collect();
        out.sort_by_key(|r| (r.minute, r.host));
        Ok(out)
    }

    fn decisions(&mut self, filter: DecisionFilter) -> Result<Vec<DecisionRow>, StoreError> {
        // One statement per filter, so that each can use its index: `route_time` for a route
        // (and a host of it), `time_index` for every route.
        let mut sql = String::from(
            "SELECT at_ms, modid, cmdid, host, caller, decision, reason FROM HostDecision WHERE at_ms >= ?",
        );
        let mut params = vec![Value::from(filter.since_ms)];
        if let Some((modid, cmdid)) = filter.route {
            sql.push_str(" AND modid = ? AND cmdid = ?");
            params.extend([Value::from(modid), Value::from(cmdid)]);
        }
        if let Some(host) = filter.host {
            sql.push_str(" AND host = ?");
            params.push(Value::from(host.to_string()));
        }
        sql.push_str(" ORDER BY at_ms DESC, id DESC LIMIT ? OFFSET ?");
        let limit = if filter.limit == 0 { u64::MAX } else { filter.limit as u64 };
        params.extend([Value::from(limit), Value::from(filter.offset as u64)]);
        type Row = (u64, i32, i32, String, u32, String, String);
        let rows: Vec<Row> = self.with(|conn| conn.exec(sql, params))?;
        let mut out: Vec<DecisionRow> = rows
            .into_iter()
            .filter_map(|(at_ms, modid, cmdid, host, caller, change, reason)| {
                Some(DecisionRow { at_ms, modid, cmdid, host: host_of(&host)?, caller, change, reason })
            })
            .collect();
        out.reverse();
        Ok(out)
    }

    fn history_buckets(
        &mut self,
        route: RouteKey,
        host: Option<SocketAddr>,
        (from, to): (u64, u64),
        bucket: u64,
        limit: usize,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        // Summed by the server through the primary key's (modid, cmdid, minute) range: the
        // rows that cross the wire are one per host per bucket, at most `limit`.
        let bucket = bucket_length(bucket);
        let mut sql = String::from(
            "SELECT minute - minute % ? AS bucket, host, SUM(succ_cnt), SUM(err_cnt), SUM(overload_cnt), \
             MAX(overloaded) FROM CallHistory WHERE modid = ? AND cmdid = ? AND minute >= ? AND minute < ?",
        );
        let mut params = vec![
            Value::from(bucket),
            Value::from(route.0),
            Value::from(route.1),
            Value::from(from),
            Value::from(to),
        ];
        if let Some(host) = host {
            sql.push_str(" AND host = ?");
            params.push(Value::from(host.to_string()));
        }
        // By host and then time, so that a cut keeps whole hosts (the newest columns too); by
        // the host's bytes, as the memory store orders its text, not by the collation's order.
        sql.push_str(" GROUP BY bucket, host ORDER BY CAST(host AS BINARY), bucket LIMIT ?");
        params.push(Value::from(limit as u64));
        let rows: Vec<StoredRow> = self.with(|conn| conn.exec(sql, params))?;
        Ok(decode_rows(route, rows).collect())
    }

    fn route_buckets(
        &mut self,
        route: RouteKey,
        (from, to): (u64, u64),
        bucket: u64,
    ) -> Result<Vec<super::RouteBucket>, StoreError> {
        // One row per bucket, summed by the server: never cut, whatever the hosts.
        let bucket = bucket_length(bucket);
        let rows: Vec<(u64, u64, u64, u64, u64)> = self.with(|conn| {
            conn.exec(
                "SELECT minute - minute % ? AS bucket, SUM(succ_cnt), SUM(err_cnt), SUM(overload_cnt), \
                 COUNT(DISTINCT IF(overloaded = 1, host, NULL)) FROM CallHistory \
                 WHERE modid = ? AND cmdid = ? AND minute >= ? AND minute < ? GROUP BY bucket ORDER BY bucket",
                (bucket, route.0, route.1, from, to),
            )
        })?;
        Ok(rows
            .into_iter()
            .map(|(start, succ, err, overload, overloaded_hosts)| super::RouteBucket {
                start,
                succ,
                err,
                overload,
                overloaded_hosts,
            })
            .collect())
    }

    fn recent_problems(
        &mut self,
        now: u64,
        rules: ProblemRules,
        limit: usize,
    ) -> Result<Vec<Problem>, StoreError> {
        // Three grouped reads over `minute_index`, each of the few recent minutes only, and
        // each bounded: a fleet's problems cost the same as one route's. Each `HAVING` is its
        // rule in SQL, so that `LIMIT` counts problems; the rule itself then judges each row.
        // With `overloaded_minutes` 0 the second read's minutes are none.
        let window = ProblemWindow::at(now, rules);
        let most = limit as u64;
        let (no_healthy, long, failing) = self.with(|conn| {
            let no_healthy: Vec<(i32, i32, u64, u64)> = conn.exec(
                "SELECT modid, cmdid, COUNT(*), SUM(overloaded) FROM CallHistory WHERE minute = ? \
                 GROUP BY modid, cmdid HAVING MIN(overloaded) = 1 ORDER BY modid, cmdid LIMIT ?",
                (window.latest, most),
            )?;
            let long: Vec<(i32, i32, String, u64)> = conn.exec(
                "SELECT modid, cmdid, host, COUNT(*) FROM CallHistory WHERE minute >= ? AND minute < ? \
                 AND overloaded = 1 GROUP BY modid, cmdid, host HAVING COUNT(*) >= ? \
                 ORDER BY modid, cmdid, CAST(host AS BINARY) LIMIT ?",
                (window.overloaded_since, window.end, rules.overloaded_minutes, most),
            )?;
            let failing: Vec<(i32, i32, u64, u64)> = conn.exec(
                "SELECT modid, cmdid, SUM(succ_cnt) AS s, SUM(err_cnt) AS e FROM CallHistory \
                 WHERE minute >= ? AND minute < ? GROUP BY modid, cmdid \
                 HAVING s + e >= ? AND e > ? * (s + e) ORDER BY modid, cmdid LIMIT ?",
                (window.errors_since, window.end, rules.calls_to_judge(), rules.error_rate, most),
            )?;
            Ok((no_healthy, long, failing))
        })?;
        let mut found: Vec<Problem> = no_healthy
            .into_iter()
            .filter_map(|(modid, cmdid, hosts, overloaded)| {
                Problem::no_healthy_host((modid, cmdid), hosts as usize, overloaded as usize)
            })
            .collect();
        found.extend(long.into_iter().filter_map(|(modid, cmdid, host, minutes)| {
            Problem::overloaded_long((modid, cmdid), host_of(&host)?, minutes, rules)
        }));
        found.extend(failing.into_iter().filter_map(|(modid, cmdid, succ, err)| {
            Problem::high_error_rate((modid, cmdid), succ, err, rules)
        }));
        // Each read is already at most `limit` long: this only sorts.
        Ok(in_report_order(found, limit))
    }

    fn describe(&self) -> String {
        format!(
            "MySQL CallHistory and HostDecision at {}:{}",
            self.opts.get_ip_or_hostname(),
            self.opts.get_tcp_port()
        )
    }
}
