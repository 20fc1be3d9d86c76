//! Call counts of one host (`tally`): what the agent keeps per host until it reports to
//! lars-reporter, and what a lease keeps per host until it sends the agent a summary. One
//! type, so that both count a call the same way (an overload is also an error) and saturate
//! the same way.

use crate::wire::native::{HostStats, Outcome};

/// Calls to one host since the counts were last sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CallCounts {
    pub(crate) succ: u32,
    /// Failed calls, overloads included.
    pub(crate) err: u32,
    pub(crate) overload: u32,
    pub(crate) latency_sum_us: u64,
    pub(crate) latency_max_us: u32,
}

impl CallCounts {
    pub(crate) const ZERO: CallCounts =
        CallCounts { succ: 0, err: 0, overload: 0, latency_sum_us: 0, latency_max_us: 0 };

    /// One call.
    pub(crate) fn one(outcome: Outcome, latency_us: u32) -> CallCounts {
        CallCounts {
            succ: u32::from(outcome == Outcome::Ok),
            err: u32::from(outcome != Outcome::Ok),
            overload: u32::from(outcome == Outcome::Overload),
            latency_sum_us: latency_us.into(),
            latency_max_us: latency_us,
        }
    }

    /// The counts of a summary entry (a leasing client's), its overloads no more than its
    /// errors.
    pub(crate) fn of(stats: &HostStats) -> CallCounts {
        CallCounts {
            succ: stats.succ,
            err: stats.err,
            overload: stats.overload.min(stats.err),
            latency_sum_us: stats.latency_sum_us,
            latency_max_us: stats.latency_max_us,
        }
    }

    /// The calls counted.
    pub(crate) fn calls(&self) -> u64 {
        u64::from(self.succ) + u64::from(self.err)
    }

    /// Adds `other`, saturating; returns the calls that did not fit (past 2^32 − 1).
    pub(crate) fn add(&mut self, other: &CallCounts) -> u64 {
        let before = self.calls();
        self.succ = self.succ.saturating_add(other.succ);
        self.err = self.err.saturating_add(other.err);
        self.overload = self.overload.saturating_add(other.overload);
        self.latency_sum_us = self.latency_sum_us.saturating_add(other.latency_sum_us);
        self.latency_max_us = self.latency_max_us.max(other.latency_max_us);
        other.calls() - (self.calls() - before)
    }

    /// Writes the counts into a report entry's fields.
    pub(crate) fn write_into(&self, stats: &mut HostStats) {
        stats.succ = self.succ;
        stats.err = self.err;
        stats.overload = self.overload;
        stats.latency_sum_us = self.latency_sum_us;
        stats.latency_max_us = self.latency_max_us;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overload_is_an_error_and_counts_saturate() {
        let mut counts = CallCounts::ZERO;
        for (outcome, latency) in [(Outcome::Ok, 10), (Outcome::Fail, 30), (Outcome::Overload, 20)] {
            assert_eq!(counts.add(&CallCounts::one(outcome, latency)), 0);
        }
        let expected = CallCounts { succ: 1, err: 2, overload: 1, latency_sum_us: 60, latency_max_us: 30 };
        assert_eq!(counts, expected);
        assert_eq!(counts.calls(), 3);
        let huge = CallCounts { succ: u32::MAX, ..CallCounts::ZERO };
        assert_eq!(counts.add(&huge), 1, "one call past 2^32 - 1 does not fit");
        assert_eq!(counts.succ, u32::MAX);
    }
}
