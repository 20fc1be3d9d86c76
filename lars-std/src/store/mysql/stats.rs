//! lars-reporter's `ServerCallStatus` on MySQL: the status rows as `lars status` and the
//! console read them, and the writer that stores each batch of them.

use super::*;

/// A `ServerCallStatus` row as stored: modid, cmdid, ip, port, caller, succ_cnt, err_cnt, ts,
/// overload.
type StatusRow = (i32, i32, u32, u32, u32, i64, i64, u64, String);

/// Every row of `ServerCallStatus` (IPv4 hosts, as the schema holds), in key order.
pub fn read_status(opts: &Opts) -> Result<Vec<StatRow>, StoreError> {
    let mut conn = Conn::new(opts.clone()).map_err(unavailable)?;
    status_rows(&mut conn, None).map_err(unavailable)
}

/// The `ServerCallStatus` rows of every route or of one, in key order: the one query that
/// `lars status` and the console's status pages share.
pub(in crate::store) fn status_rows(
    conn: &mut impl Queryable,
    key: Option<RouteKey>,
) -> mysql::Result<Vec<StatRow>> {
    let select =
        "SELECT modid, cmdid, ip, port, caller, succ_cnt, err_cnt, ts, overload FROM ServerCallStatus";
    let order = "ORDER BY modid, cmdid, ip, port, caller";
    let rows: Vec<StatusRow> = match key {
        Some((modid, cmdid)) => {
            conn.exec(format!("{select} WHERE modid = ? AND cmdid = ? {order}"), (modid, cmdid))?
        }
        None => conn.exec(format!("{select} {order}"), ())?,
    };
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
///
/// A batch is one transaction, written in primary-key order, so that concurrent writers take
/// row locks in the same order. When InnoDB still picks it as a deadlock victim (or a lock wait
/// times out), the whole transaction is rolled back and written again: a statement retried alone
/// would leave the rows before it uncommitted.
pub struct MysqlStats {
    link: Link,
    skipped_ipv6: u64,
    transaction_retries: u64,
}

/// Rows per statement: batches are split into these sizes so that a few prepared statements
/// serve every batch.
const CHUNKS: [usize; 3] = [256, 16, 1];
/// Attempts at one batch's transaction before the error goes to the caller (which backs off).
const TRANSACTION_ATTEMPTS: u32 = 8;

/// A `ServerCallStatus` row ready for its statement: the key, then succ, err, ts, overload.
type StatusValues = ((i32, i32, u32, u32, u32), i64, i64, u64, &'static str);

impl MysqlStats {
    /// A store connecting with `opts` on first use.
    pub fn new(opts: Opts) -> Self {
        MysqlStats { link: Link::new(opts), skipped_ipv6: 0, transaction_retries: 0 }
    }

    /// Transactions rolled back by a deadlock or lock wait timeout and written again.
    pub fn transaction_retries(&self) -> u64 {
        self.transaction_retries
    }

    fn upsert_sql(rows: usize) -> String {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ");
        format!(
            "INSERT INTO ServerCallStatus (modid, cmdid, ip, port, caller, succ_cnt, err_cnt, ts, overload) VALUES {values} \
             ON DUPLICATE KEY UPDATE succ_cnt = VALUES(succ_cnt), err_cnt = VALUES(err_cnt), ts = VALUES(ts), \
             overload = VALUES(overload)"
        )
    }

    /// The IPv4 rows of `rows` in key order, the last of each key only (a later row replaces
    /// an earlier one, as it would have in the table).
    fn ordered(rows: &[StatRow]) -> Vec<StatusValues> {
        let mut values: Vec<StatusValues> = rows
            .iter()
            .filter_map(|row| {
                let SocketAddr::V4(a) = row.host else { return None };
                let key = (row.modid, row.cmdid, a.ip().to_bits(), u32::from(a.port()), row.caller);
                let clamp = |n: u32| i64::from(n).min(i64::from(i32::MAX));
                Some((key, clamp(row.succ), clamp(row.err), row.ts, if row.overload { "1" } else { "0" }))
            })
            .collect();
        // Stable, so equal keys keep their arrival order and the last one wins below.
        values.sort_by_key(|v| v.0);
        let mut deduplicated: Vec<StatusValues> = Vec::with_capacity(values.len());
        for value in values {
            match deduplicated.last_mut() {
                Some(last) if last.0 == value.0 => *last = value,
                _ => deduplicated.push(value),
            }
        }
        deduplicated
    }

    fn write(tx: &mut mysql::Transaction<'_>, rows: &[StatusValues]) -> mysql::Result<()> {
        let mut rest = rows;
        while !rest.is_empty() {
            let size = CHUNKS.into_iter().find(|&c| c <= rest.len()).unwrap_or(1);
            let (chunk, tail) = rest.split_at(size);
            let mut params = Vec::with_capacity(size * 9);
            for &((modid, cmdid, ip, port, caller), succ, err, ts, overload) in chunk {
                params.extend([
                    Value::from(modid),
                    Value::from(cmdid),
                    Value::from(ip),
                    Value::from(port),
                    Value::from(caller),
                    Value::from(succ),
                    Value::from(err),
                    Value::from(ts),
                    Value::from(overload),
                ]);
            }
            tx.exec_drop(Self::upsert_sql(size), params)?;
            rest = tail;
        }
        Ok(())
    }
}

/// InnoDB chose this transaction as a deadlock victim (1213, the transaction was rolled back)
/// or gave up waiting for a lock (1205, only the statement was, unless
/// `innodb_rollback_on_timeout` is on). Either way the caller rolls the whole transaction back
/// and runs it again, the documented remedy.
fn is_lock_conflict(e: &mysql::Error) -> bool {
    matches!(e, mysql::Error::MySqlError(e) if e.code == 1213 || e.code == 1205)
}

impl StatsStore for MysqlStats {
    fn store(&mut self, rows: &[StatRow]) -> Result<(), StoreError> {
        let values = Self::ordered(rows);
        self.skipped_ipv6 += rows.iter().filter(|row| row.host.is_ipv6()).count() as u64;
        if values.is_empty() {
            return Ok(());
        }
        let mut retries = 0;
        let result = self.link.with(|conn| {
            let mut attempt = 1;
            loop {
                let mut tx = conn.start_transaction(TxOpts::default())?;
                match Self::write(&mut tx, &values).and_then(|()| tx.commit()) {
                    Ok(()) => return Ok(()),
                    // Dropping `tx` has rolled it back. A short, growing pause lets the other
                    // writer finish rather than meet it again at once.
                    Err(e) if is_lock_conflict(&e) && attempt < TRANSACTION_ATTEMPTS => {
                        std::thread::sleep(std::time::Duration::from_millis(2 * u64::from(attempt)));
                        attempt += 1;
                        retries += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        });
        self.transaction_retries += retries;
        result
    }

    fn describe(&self) -> String {
        self.link.describe()
    }
}
