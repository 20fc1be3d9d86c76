//! lars-dns's subscriptions: which connections of a worker get pushes for which route, bounded
//! per connection and over all workers together.
//!
//! A subscription is one `(route, connection)` pair and the codec to push it in. They are held
//! in a B-tree ordered by route, so that a route's subscribers are one range and no route costs
//! an allocation of its own, and in a list per connection, so that a close removes exactly what
//! the connection held: a 20-byte key in the tree's nodes and 8 bytes in the list, about 40
//! bytes with the nodes' slack (a map of sets per route took about 170). Every subscription
//! is counted in a gauge shared by the workers.
//!
//! Subscriptions to routes that do not exist are kept for agents that remember a missing route
//! for a while (lars's agent does, and takes a push when it appears), but at most
//! [`UNKNOWN_PER_CONN`] per connection, oldest out first, and they give way to routes that
//! exist when the connection's cap is reached. Past the caps a request is answered but not
//! subscribed, and counted as refused.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use lars_core::wire::Codec;

use crate::config::{ConfigError, Ini};
use crate::reactor::ConnId;
use crate::store::RouteKey;

/// The caps: per connection and over the whole daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionCaps {
    /// The most routes one connection is subscribed to (`[dns] subscriptions_per_conn`).
    pub per_conn: usize,
    /// The most subscriptions of all connections together (`[dns] subscriptions_total`).
    pub total: usize,
}

impl Default for SubscriptionCaps {
    /// 4,096 per connection (an agent holds at most 512 routes) and 1,048,576 in all, about
    /// 40 MiB at the most.
    fn default() -> Self {
        SubscriptionCaps { per_conn: 4096, total: 1 << 20 }
    }
}

impl SubscriptionCaps {
    /// The keys of the caps in `[dns]`, for [`Ini::apply_env`].
    pub const KEYS: [(&'static str, &'static str); 2] =
        [("dns", "subscriptions_per_conn"), ("dns", "subscriptions_total")];

    /// Reads the caps from `[dns]`, each defaulting to [`SubscriptionCaps::default`]; 0
    /// subscribes nobody (agents then learn of changes only when they refresh).
    pub fn from_ini(ini: &Ini) -> Result<SubscriptionCaps, ConfigError> {
        let d = SubscriptionCaps::default();
        Ok(SubscriptionCaps {
            per_conn: ini.get("dns", "subscriptions_per_conn", d.per_conn)?,
            total: ini.get("dns", "subscriptions_total", d.total)?,
        })
    }
}

/// Subscriptions to routes that do not exist a connection may hold (or its cap, if lower):
/// twice what lars's agent remembers as missing (a quarter of its 512 routes). Past it the
/// oldest goes.
pub const UNKNOWN_PER_CONN: usize = 256;

/// What [`Subscriptions::subscribe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Subscribed {
    /// A new subscription.
    New,
    /// The connection was subscribed already (its codec is updated).
    Already,
    /// Refused: the connection's cap or the total was reached.
    Refused,
}

/// One connection's subscriptions.
#[derive(Debug, Default)]
struct ConnSubs {
    /// Every route it is subscribed to.
    routes: Vec<RouteKey>,
    /// Those whose route did not exist when last asked for or pushed, oldest first.
    unknown: VecDeque<RouteKey>,
}

/// One worker's subscriptions.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    by_route: BTreeMap<(RouteKey, ConnId), Codec>,
    by_conn: HashMap<ConnId, ConnSubs>,
}

impl Subscriptions {
    /// Subscribes `conn` to `key`, within `caps`; `exists` says whether the route exists
    /// (an unknown one is held among the connection's bounded unknown ones); `held` is the
    /// gauge of every worker's subscriptions together.
    pub(super) fn subscribe(
        &mut self,
        conn: ConnId,
        key: RouteKey,
        codec: Codec,
        exists: bool,
        caps: SubscriptionCaps,
        held: &AtomicU64,
    ) -> Subscribed {
        if let Some(existing) = self.by_route.get_mut(&(key, conn)) {
            *existing = codec;
            self.mark(conn, key, exists);
            return Subscribed::Already;
        }
        let unknown_cap = UNKNOWN_PER_CONN.min(caps.per_conn);
        let subs = self.by_conn.entry(conn).or_default();
        // Make room: an unknown route replaces the connection's oldest unknown one; a route
        // that exists replaces one when the connection is at its cap.
        let full =
            if exists { subs.routes.len() >= caps.per_conn } else { subs.unknown.len() >= unknown_cap };
        if full && let Some(oldest) = subs.unknown.pop_front() {
            self.unsubscribe(conn, oldest, held);
        }
        let routes = self.by_conn.get(&conn).map_or(0, |subs| subs.routes.len());
        if routes >= caps.per_conn || unknown_cap == 0 && !exists {
            self.forget_if_empty(conn);
            return Subscribed::Refused;
        }
        let total = caps.total as u64;
        if held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < total).then_some(n + 1)).is_err() {
            self.forget_if_empty(conn);
            return Subscribed::Refused;
        }
        self.by_route.insert((key, conn), codec);
        let subs = self.by_conn.entry(conn).or_default();
        subs.routes.push(key);
        if !exists {
            subs.unknown.push_back(key);
        }
        Subscribed::New
    }

    /// Notes whether the route of `conn`'s subscription `key` exists now.
    fn mark(&mut self, conn: ConnId, key: RouteKey, exists: bool) {
        let Some(subs) = self.by_conn.get_mut(&conn) else { return };
        let pos = subs.unknown.iter().position(|&k| k == key);
        match (exists, pos) {
            (true, Some(pos)) => {
                subs.unknown.remove(pos);
            }
            (false, None) => subs.unknown.push_back(key),
            _ => {}
        }
    }

    fn forget_if_empty(&mut self, conn: ConnId) {
        if self.by_conn.get(&conn).is_some_and(|subs| subs.routes.is_empty()) {
            self.by_conn.remove(&conn);
        }
    }

    /// Ends `conn`'s subscription to `key`, if it has one.
    fn unsubscribe(&mut self, conn: ConnId, key: RouteKey, held: &AtomicU64) {
        if self.by_route.remove(&(key, conn)).is_none() {
            return;
        }
        held.fetch_sub(1, Ordering::AcqRel);
        if let Some(subs) = self.by_conn.get_mut(&conn) {
            if let Some(pos) = subs.routes.iter().position(|&k| k == key) {
                subs.routes.swap_remove(pos);
            }
            if let Some(pos) = subs.unknown.iter().position(|&k| k == key) {
                subs.unknown.remove(pos);
            }
        }
    }

    /// Ends every subscription of `conn` (it closed) and gives their memory back.
    pub(super) fn remove_conn(&mut self, conn: ConnId, held: &AtomicU64) {
        let Some(subs) = self.by_conn.remove(&conn) else { return };
        for key in &subs.routes {
            self.by_route.remove(&(*key, conn));
        }
        held.fetch_sub(subs.routes.len() as u64, Ordering::AcqRel);
        // A map emptied by closes keeps its table unless told otherwise.
        if self.by_conn.capacity() > 64 && self.by_conn.len() < self.by_conn.capacity() / 4 {
            self.by_conn.shrink_to_fit();
        }
    }

    /// The route `key` is gone: its subscriptions count among their connections' unknown
    /// ones from now on (each connection's oldest unknown ones making room).
    pub(super) fn route_gone(&mut self, key: RouteKey, caps: SubscriptionCaps, held: &AtomicU64) {
        let unknown_cap = UNKNOWN_PER_CONN.min(caps.per_conn);
        let conns: Vec<ConnId> = self.subscribers(key).map(|(conn, _)| conn).collect();
        for conn in conns {
            let Some(subs) = self.by_conn.get_mut(&conn) else { continue };
            if subs.unknown.contains(&key) {
                continue;
            }
            let evicted = if subs.unknown.len() >= unknown_cap { subs.unknown.pop_front() } else { None };
            subs.unknown.push_back(key);
            if let Some(oldest) = evicted {
                self.unsubscribe(conn, oldest, held);
            }
            if unknown_cap == 0 {
                self.unsubscribe(conn, key, held);
            }
        }
    }

    /// The connections subscribed to `key`, with the codec each asked in.
    pub(super) fn subscribers(&self, key: RouteKey) -> impl Iterator<Item = (ConnId, Codec)> + '_ {
        self.by_route
            .range((key, ConnId::MIN)..)
            .take_while(move |((k, _), _)| *k == key)
            .map(|((_, conn), codec)| (*conn, *codec))
    }

    /// Subscriptions this worker holds.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_route.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(slot: u32) -> ConnId {
        ConnId::for_tests(0, slot)
    }

    #[test]
    fn caps_per_connection_and_in_total_refuse_and_closes_give_back() {
        let caps = SubscriptionCaps { per_conn: 3, total: 5 };
        let held = AtomicU64::new(0);
        let mut subs = Subscriptions::default();
        let sub = |subs: &mut Subscriptions, c, k: i32| {
            subs.subscribe(conn(c), (k, 1), Codec::Native, true, caps, &held)
        };
        assert_eq!(sub(&mut subs, 1, 1), Subscribed::New);
        assert_eq!(sub(&mut subs, 1, 1), Subscribed::Already);
        assert_eq!(sub(&mut subs, 1, 2), Subscribed::New);
        assert_eq!(sub(&mut subs, 1, 3), Subscribed::New);
        assert_eq!(sub(&mut subs, 1, 4), Subscribed::Refused, "the connection's cap");
        assert_eq!(sub(&mut subs, 2, 1), Subscribed::New);
        assert_eq!(sub(&mut subs, 2, 2), Subscribed::New);
        assert_eq!(sub(&mut subs, 3, 1), Subscribed::Refused, "the total");
        assert_eq!(held.load(Ordering::Relaxed), 5);
        let of_route_1: Vec<ConnId> = subs.subscribers((1, 1)).map(|(c, _)| c).collect();
        assert_eq!(of_route_1, [conn(1), conn(2)]);
        subs.remove_conn(conn(1), &held);
        subs.remove_conn(conn(2), &held);
        assert_eq!((subs.len(), held.load(Ordering::Relaxed)), (0, 0));
        assert!(subs.by_conn.is_empty());
    }

    #[test]
    fn unknown_routes_are_bounded_oldest_out_and_give_way_to_routes_that_exist() {
        let caps = SubscriptionCaps { per_conn: 300, total: 10_000 };
        let held = AtomicU64::new(0);
        let mut subs = Subscriptions::default();
        for k in 0..1000 {
            assert_eq!(subs.subscribe(conn(1), (k, 9), Codec::Lars, false, caps, &held), Subscribed::New);
        }
        assert_eq!(held.load(Ordering::Relaxed), UNKNOWN_PER_CONN as u64);
        assert_eq!(subs.subscribers((999, 9)).count(), 1, "the newest are kept");
        assert_eq!(subs.subscribers((0, 9)).count(), 0, "the oldest went");
        for k in 0..300 {
            assert_eq!(subs.subscribe(conn(1), (k, 1), Codec::Lars, true, caps, &held), Subscribed::New);
        }
        assert_eq!(held.load(Ordering::Relaxed), 300, "the unknown ones made room");
        assert_eq!(subs.subscribe(conn(1), (300, 1), Codec::Lars, true, caps, &held), Subscribed::Refused);
        // A route that goes is held as unknown, and pushes still reach it if it comes back.
        subs.route_gone((5, 1), caps, &held);
        assert_eq!(subs.subscribers((5, 1)).count(), 1);
        assert_eq!(subs.by_conn[&conn(1)].unknown, [(5, 1)]);
        assert_eq!(subs.subscribe(conn(1), (5, 1), Codec::Lars, true, caps, &held), Subscribed::Already);
        assert!(subs.by_conn[&conn(1)].unknown.is_empty());
        subs.remove_conn(conn(1), &held);
        assert_eq!((subs.len(), held.load(Ordering::Relaxed)), (0, 0));
    }
}
