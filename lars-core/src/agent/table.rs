//! The agent's route table (`agent` layer): the routes by slot, their index by `(modid,
//! cmdid)`, and each route's pull state with the count of pulls due.
//!
//! The count lets [`Agent::poll_transmit`](super::Agent::poll_transmit) skip the scan of the
//! table when no pull is due, which is every call but a few. It is right by construction: a
//! route's pull state lives in the table, out of reach of code that holds the route, and it
//! changes only through [`RouteTable::set_pull`], [`RouteTable::insert`] and
//! [`RouteTable::swap_remove`], the three places that keep the count.

use core::ops::{Index, IndexMut};

use super::route::{Route, route_key};
use crate::time::Instant;

/// The state of a route's pull request to lars-dns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pull {
    /// Nothing to send.
    Idle,
    /// To be sent when the dns link can take it.
    Due,
    /// Sent; if no answer comes by `deadline`, it is due again.
    InFlight { deadline: Instant },
}

/// A route and its pull state: kept apart so that only the table can change the pull.
struct Entry<const H: usize> {
    route: Route<H>,
    pull: Pull,
}

/// Up to `R` routes of up to `H` hosts. Slots are dense: removing a route moves the last one
/// into its slot.
pub(crate) struct RouteTable<const R: usize, const H: usize> {
    entries: heapless::Vec<Entry<H>, R>,
    /// `(route_key, slot)`, sorted by key.
    index: heapless::Vec<(u64, u16), R>,
    /// Entries whose pull is [`Pull::Due`].
    pulls_due: usize,
}

impl<const R: usize, const H: usize> RouteTable<R, H> {
    pub(crate) const fn new() -> Self {
        RouteTable { entries: heapless::Vec::new(), index: heapless::Vec::new(), pulls_due: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.is_full()
    }

    /// The route in `slot`, if there is one.
    pub(crate) fn get(&self, slot: usize) -> Option<&Route<H>> {
        self.entries.get(slot).map(|e| &e.route)
    }

    /// The routes, by slot.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Route<H>> + '_ {
        self.entries.iter().map(|e| &e.route)
    }

    /// The routes' pull states, by slot.
    pub(crate) fn pulls(&self) -> impl Iterator<Item = Pull> + '_ {
        self.entries.iter().map(|e| e.pull)
    }

    /// The slot of a route.
    pub(crate) fn find(&self, modid: i32, cmdid: i32) -> Option<usize> {
        let key = route_key(modid, cmdid);
        let pos = self.index.binary_search_by_key(&key, |&(k, _)| k).ok()?;
        Some(usize::from(self.index[pos].1))
    }

    /// The pull state of the route in `slot`.
    pub(crate) fn pull(&self, slot: usize) -> Pull {
        self.entries[slot].pull
    }

    /// The first slot whose pull is due.
    pub(crate) fn first_due(&self) -> Option<usize> {
        if self.pulls_due == 0 {
            return None;
        }
        self.entries.iter().position(|e| e.pull == Pull::Due)
    }

    /// Moves the pull of the route in `slot` to `pull`, counting a pull that becomes due or
    /// stops being due.
    pub(crate) fn set_pull(&mut self, slot: usize, pull: Pull) {
        let entry = &mut self.entries[slot];
        match (entry.pull == Pull::Due, pull == Pull::Due) {
            (false, true) => self.pulls_due += 1,
            (true, false) => self.pulls_due -= 1,
            _ => {}
        }
        entry.pull = pull;
    }

    /// Adds a route, not held yet, with its pull state; returns its slot, or gives the route
    /// back when the table is full.
    pub(crate) fn insert(&mut self, route: Route<H>, pull: Pull) -> Result<usize, Route<H>> {
        let key = route_key(route.modid, route.cmdid);
        let slot = self.entries.len();
        self.entries.push(Entry { route, pull }).map_err(|e| e.route)?;
        let pos = self.index.binary_search_by_key(&key, |&(k, _)| k).unwrap_or_else(|p| p);
        // Room: the index and the entries have the same capacity and length.
        let _ = self.index.insert(pos, (key, slot as u16));
        if pull == Pull::Due {
            self.pulls_due += 1;
        }
        Ok(slot)
    }

    /// Takes the route out of `slot`; the last route moves into it.
    pub(crate) fn swap_remove(&mut self, slot: usize) -> Route<H> {
        let Entry { route, pull } = self.entries.swap_remove(slot);
        if pull == Pull::Due {
            self.pulls_due -= 1;
        }
        let key = route_key(route.modid, route.cmdid);
        if let Ok(pos) = self.index.binary_search_by_key(&key, |&(k, _)| k) {
            self.index.remove(pos);
        }
        if let Some(moved) = self.entries.get(slot) {
            let key = route_key(moved.route.modid, moved.route.cmdid);
            if let Ok(pos) = self.index.binary_search_by_key(&key, |&(k, _)| k) {
                self.index[pos].1 = slot as u16;
            }
        }
        route
    }

    /// Panics unless the count and the index agree with the entries (tests only).
    #[cfg(test)]
    pub(crate) fn assert_consistent(&self) {
        let due = self.entries.iter().filter(|e| e.pull == Pull::Due).count();
        assert_eq!(self.pulls_due, due, "pulls_due against the routes whose pull is due");
        assert_eq!(self.index.len(), self.entries.len());
        assert!(self.index.windows(2).all(|w| w[0].0 < w[1].0), "index sorted, keys unique");
        for &(key, slot) in &self.index {
            let route = &self.entries[usize::from(slot)].route;
            assert_eq!(key, route_key(route.modid, route.cmdid));
        }
    }
}

impl<const R: usize, const H: usize> Index<usize> for RouteTable<R, H> {
    type Output = Route<H>;

    fn index(&self, slot: usize) -> &Route<H> {
        &self.entries[slot].route
    }
}

impl<const R: usize, const H: usize> IndexMut<usize> for RouteTable<R, H> {
    fn index_mut(&mut self, slot: usize) -> &mut Route<H> {
        &mut self.entries[slot].route
    }
}

#[cfg(test)]
mod tests;
