//! One lars-dns replica's place in `RouteChange`: the highest id applied and the recent ids below it.

use std::collections::BTreeSet;

use lars_core::time::Instant;

/// Rows below the cursor that are read again: ids are handed out when a transaction inserts,
/// but become visible when it commits, so two consoles writing at once can commit a lower id
/// after a higher one was read. Ids already applied are remembered and skipped.
pub(super) const LOOKBACK_IDS: u64 = 256;

/// One replica's position in `RouteChange`.
#[derive(Debug, Clone)]
pub(super) struct ChangeCursor {
    /// The highest id applied.
    pub(super) id: u64,
    /// The ids within [`LOOKBACK_IDS`] below `id` that were applied, to tell a late commit
    /// from a row already read.
    pub(super) recent: BTreeSet<u64>,
    /// The `RouteVersion` of the snapshot the log was last read in.
    pub(super) version: u64,
    /// When the log was last known complete: read successfully, or the version seen unchanged
    /// since (every writer bumps the version in the transaction that logs its change, so an
    /// unchanged version means nothing was logged that this replica would need).
    pub(super) read_at: Instant,
}

impl ChangeCursor {
    pub(super) fn at(id: u64, version: u64, now: Instant) -> Self {
        ChangeCursor { id, recent: BTreeSet::new(), version, read_at: now }
    }

    /// The store says `version` at `now`: if that is the version last read, the log holds
    /// nothing new, and the cursor is as good as read at `now`. A replica that only polls
    /// through a quiet half hour thus keeps reading changes from the log instead of loading
    /// everything.
    pub(super) fn confirm(&mut self, version: u64, now: Instant) {
        if version == self.version {
            self.read_at = now;
        }
    }

    /// Where to start reading: the look-back window below the cursor.
    pub(super) fn read_from(&self) -> u64 {
        self.id.saturating_sub(LOOKBACK_IDS)
    }

    /// Whether row `id` is new to this replica.
    pub(super) fn is_new(&self, id: u64) -> bool {
        id > self.id || (id > self.read_from() && !self.recent.contains(&id))
    }

    /// Records rows `ids` as applied, read at `now` in a snapshot at `version`.
    pub(super) fn advance(&mut self, ids: impl IntoIterator<Item = u64>, version: u64, now: Instant) {
        for id in ids {
            self.recent.insert(id);
            self.id = self.id.max(id);
        }
        let floor = self.read_from();
        self.recent = self.recent.split_off(&(floor + 1));
        self.version = version;
        self.read_at = now;
    }
}
