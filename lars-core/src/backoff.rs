//! Exponential backoff, for whatever retries: the std reactor's TCP clients and the gateway
//! node's links reconnect with it (jittered, so that a fleet of them spreads out), and
//! lars-reporter's writers retry a failing store with it and lars-dns's loader a failing load
//! (unjittered: a few threads of one daemon, not a fleet).

use crate::time::Duration;

/// Retry delays that double from `min` to `max` with each failure, jittered down to between
/// half and all of the nominal delay so that many clients of one server spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// The reconnect delays of lars's links: 100 ms doubling to 10 s.
    pub const RECONNECT: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    /// lars-reporter's retries of a batch its store refused: 100 ms doubling to 10 s, the same
    /// numbers as [`Backoff::RECONNECT`] but a decision of its own (a store, not a link).
    /// lars-dns's loader has no constant: its delays are its settings, `poll_interval` doubling
    /// to `retry_max`.
    pub const STORE_RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));

    /// Delays from `min` doubling up to `max`.
    pub const fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, failures: 0 }
    }

    /// The longest delay (also how long a link must stay up before it counts as healthy).
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// Failures since the last [`Backoff::reset`].
    pub const fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay before the next attempt, unjittered: `min · 2^failures`, at most `max` (so
    /// `min` before any failure).
    pub fn nominal(&self) -> Duration {
        self.min.saturating_mul(1 << self.failures.min(16)).min(self.max)
    }

    /// Counts a failure: the next [`Backoff::nominal`] doubles (up to `max`).
    pub fn record_failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// Records a failure and returns how long to wait before the next attempt: the
    /// [`Backoff::nominal`] delay scaled into its upper half by `jitter`, any random number (0
    /// gives half the nominal delay).
    pub fn fail(&mut self, jitter: u64) -> Duration {
        let nominal = self.nominal();
        self.record_failure();
        let half = nominal.as_micros() / 2;
        Duration::from_micros(half + jitter % (nominal.as_micros() - half + 1))
    }

    /// The link is healthy again: the next failure waits `min`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_their_upper_half() {
        let peek = |mut backoff: Backoff, jitter: u64| backoff.fail(jitter);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for ms in [100, 200, 400, 800, 1000, 1000] {
            let (low, high) = (Duration::from_millis(ms / 2), Duration::from_millis(ms));
            assert_eq!(peek(backoff, 0), low, "no jitter: half the nominal delay");
            assert_eq!(peek(backoff, high.as_micros() - low.as_micros()), high, "the most jitter");
            let delay = backoff.fail(0x1234_5678_9abc);
            assert!(delay >= low && delay <= high, "{ms} ms: {delay:?}");
        }
        assert_eq!(backoff.failures(), 6);
        backoff.reset();
        assert!(backoff.fail(u64::MAX) <= Duration::from_millis(100), "starts over");
        let mut huge = Backoff::new(Duration::from_secs(1), Duration::from_secs(3600));
        for _ in 0..100 {
            assert!(huge.fail(u64::MAX) <= Duration::from_secs(3600), "never past the cap");
        }
    }

    #[test]
    fn the_nominal_delay_is_min_before_a_failure_and_doubles_with_each() {
        let mut backoff = Backoff::STORE_RETRY;
        for ms in [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000] {
            assert_eq!(backoff.nominal(), Duration::from_millis(ms));
            backoff.record_failure();
        }
        backoff.reset();
        assert_eq!(backoff.nominal(), Duration::from_millis(100), "starts over");
    }
}
