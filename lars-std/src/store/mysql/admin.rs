//! Route administration on MySQL (`lars route add`/`del`, and the pieces the web console's
//! store shares): each change in one transaction with its `RouteChange` row, the version
//! bump and, where the table exists, its audit record.

use super::*;

/// Changes to routes, as the web console makes them.
pub trait RouteAdmin {
    /// Adds `addr` to the route, recorded in the audit log as done by `actor` where the store
    /// keeps one.
    fn add_host(
        &mut self,
        key: RouteKey,
        addr: SocketAddr,
        weight: u32,
        actor: &Actor,
    ) -> Result<(), StoreError>;
    /// Removes `addr` from the route; returns whether it was there. Audited as [`add_host`](Self::add_host).
    fn remove_host(&mut self, key: RouteKey, addr: SocketAddr, actor: &Actor) -> Result<bool, StoreError>;
}

impl MysqlRoutes {
    /// Applies `change` in a transaction that also records a `RouteChange` row and bumps
    /// `RouteVersion`, exactly as the web console does, and, where the database has the
    /// console's `RouteAudit` table, the audit record of `edit` by `actor`.
    fn change(
        &mut self,
        key: RouteKey,
        (actor, edit): (&Actor, &Edit),
        change: impl FnOnce(&mut mysql::Transaction<'_>) -> mysql::Result<u64>,
    ) -> Result<u64, StoreError> {
        self.link.with(|conn| {
            let mut tx = conn.start_transaction(TxOpts::default())?;
            let affected = change(&mut tx)?;
            record_change(&mut tx, key)?;
            if affected > 0 && has_audit_table(&mut tx)? {
                insert_audit(&mut tx, actor, edit.action(), (key.0 as u32, key.1 as u32), &edit.detail())?;
            }
            tx.commit()?;
            Ok(affected)
        })
    }
}

/// Bumps `RouteVersion` and records a `RouteChange` row for `key`, inside the transaction that
/// changes the route, which is what lars-dns expects of every change (it then pushes `key`).
pub(in crate::store) fn record_change(tx: &mut mysql::Transaction<'_>, key: RouteKey) -> mysql::Result<()> {
    tx.exec_drop(
        "UPDATE RouteVersion SET version = GREATEST(version + 1, UNIX_TIMESTAMP()) WHERE id = ?",
        (1u32,),
    )?;
    let version: u64 = tx.exec_first("SELECT version FROM RouteVersion WHERE id = ?", (1u32,))?.unwrap_or(0);
    tx.exec_drop(
        "INSERT INTO RouteChange (modid, cmdid, version) VALUES (?, ?, ?)",
        (key.0 as u32, key.1 as u32, version),
    )
}

/// Why a weight other than 1 is refused on the original schema.
pub(in crate::store) const NEEDS_DB_INIT_WEIGHT: &str = "this database has no RouteData.weight column (the original schema), so every host weighs 1: run `lars db-init` to add it";

/// What adding a host that the route has already does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) enum IfPresent {
    /// Leaves it as it is (the console: "add" offers no other change).
    Keep,
    /// Gives it the weight and puts it back in rotation (`lars route add`, as on the route file).
    Replace,
}

/// The condition that picks one host of one route in `RouteData`.
pub(in crate::store) const WHERE_HOST: &str =
    "WHERE modid = ? AND cmdid = ? AND serverip = ? AND serverport = ?";

/// Adds a host to `RouteData` (in rotation, with its weight where the schema has the column;
/// the caller has refused weights other than 1 where it has not), or, if the route has it,
/// does what `if_present` says. Returns the rows changed. The one way both `lars route` and
/// the console add a host.
pub(in crate::store) fn add_host_row(
    tx: &mut mysql::Transaction<'_>,
    schema: Schema,
    key: RouteKey,
    (ip, port): (u32, u32),
    weight: u32,
    if_present: IfPresent,
) -> mysql::Result<u64> {
    let (modid, cmdid) = (key.0 as u32, key.1 as u32);
    let present: Option<u32> =
        tx.exec_first(format!("SELECT 1 FROM RouteData {WHERE_HOST}"), (modid, cmdid, ip, port))?;
    match (present, if_present) {
        (None, _) if schema.weight => tx.exec_drop(
            "INSERT INTO RouteData (modid, cmdid, serverip, serverport, weight) VALUES (?, ?, ?, ?, ?)",
            (modid, cmdid, ip, port, weight),
        )?,
        (None, _) => tx.exec_drop(
            "INSERT INTO RouteData (modid, cmdid, serverip, serverport) VALUES (?, ?, ?, ?)",
            (modid, cmdid, ip, port),
        )?,
        (Some(_), IfPresent::Keep) => return Ok(0),
        (Some(_), IfPresent::Replace) => {
            let set = match (schema.weight, schema.disabled) {
                (true, true) => "weight = ?, disabled = 0",
                (true, false) => "weight = ?",
                (false, true) => "disabled = 0",
                (false, false) => return Ok(0),
            };
            let mut params = vec![Value::from(modid), Value::from(cmdid), Value::from(ip), Value::from(port)];
            if schema.weight {
                params.insert(0, Value::from(weight));
            }
            tx.exec_drop(format!("UPDATE RouteData SET {set} {WHERE_HOST}"), params)?;
        }
    }
    Ok(tx.affected_rows())
}

pub(in crate::store) fn v4_parts(addr: SocketAddr) -> Result<(u32, u32), StoreError> {
    match addr.ip() {
        IpAddr::V4(ip) => Ok((ip.to_bits(), u32::from(addr.port()))),
        IpAddr::V6(_) => Err(StoreError::Invalid(format!("{addr}: the Lars schema holds IPv4 hosts only"))),
    }
}

impl RouteAdmin for MysqlRoutes {
    fn add_host(
        &mut self,
        key: RouteKey,
        addr: SocketAddr,
        weight: u32,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        if let Some(why) = crate::store::unreachable_host(addr) {
            return Err(StoreError::Invalid(format!("{addr}: host {why}")));
        }
        let (ip, port) = v4_parts(addr)?;
        self.link.recheck_schema();
        let schema = self.link.with_schema(|_, schema| Ok(schema))?;
        if !schema.weight && weight != 1 {
            return Err(StoreError::Invalid(format!("weight {weight}: {NEEDS_DB_INIT_WEIGHT}")));
        }
        let edit = Edit::AddHost { addr, weight };
        self.change(key, (actor, &edit), |tx| {
            add_host_row(tx, schema, key, (ip, port), weight, IfPresent::Replace)
        })
        .map(drop)
    }

    fn remove_host(&mut self, key: RouteKey, addr: SocketAddr, actor: &Actor) -> Result<bool, StoreError> {
        let (ip, port) = v4_parts(addr)?;
        let edit = Edit::RemoveHosts(vec![addr]);
        let removed = self.change(key, (actor, &edit), |tx| {
            tx.exec_drop(
                format!("DELETE FROM RouteData {WHERE_HOST}"),
                (key.0 as u32, key.1 as u32, ip, port),
            )?;
            Ok(tx.affected_rows())
        })?;
        Ok(removed > 0)
    }
}
