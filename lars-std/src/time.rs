//! The system clock, as the core sees it. This is the only file that reads the clock.
// This is the one module that reads the system clock.
#![allow(clippy::disallowed_methods)]

use lars_core::time::Instant;

/// A monotonic clock whose epoch is its creation. Cheap to copy; share one per process so that
/// every part agrees on what an [`Instant`] means.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The epoch on `CLOCK_MONOTONIC` in nanoseconds. The fine and the coarse clock both count
    /// from it: one reading, so that neither can be offset from the other by a preemption
    /// between two.
    epoch_nanos: u64,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock { epoch_nanos: monotonic_nanos(rustix::time::ClockId::Monotonic) }
    }

    /// Now, for the core.
    pub fn now(&self) -> Instant {
        let nanos = monotonic_nanos(rustix::time::ClockId::Monotonic);
        Instant::from_micros(nanos.saturating_sub(self.epoch_nanos) / 1000)
    }

    /// Now to within the kernel's tick (a few milliseconds), at a fraction of the cost of
    /// [`Clock::now`]: for hot paths whose deadlines are tens of milliseconds or more.
    pub fn now_coarse(&self) -> Instant {
        let nanos = monotonic_nanos(rustix::time::ClockId::MonotonicCoarse);
        Instant::from_micros(nanos.saturating_sub(self.epoch_nanos) / 1000)
    }

    /// How long from now until `deadline`, for a poller's timeout (zero if it has passed).
    pub fn until(&self, deadline: Instant) -> std::time::Duration {
        std::time::Duration::from_micros(deadline.saturating_since(self.now()).as_micros())
    }

    /// Seconds since the Unix epoch, for timestamps that leave the process.
    pub fn unix_secs() -> u64 {
        Clock::unix_nanos() / 1_000_000_000
    }

    /// Nanoseconds since the Unix epoch, to compare with file modification times.
    pub fn unix_nanos() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

fn monotonic_nanos(clock: rustix::time::ClockId) -> u64 {
    let now = rustix::time::clock_gettime(clock);
    u64::try_from(now.tv_sec).unwrap_or(0).saturating_mul(1_000_000_000).saturating_add(now.tv_nsec as u64)
}

/// Times one call at the clock's full resolution, for the latency a `report` carries.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    started: std::time::Instant,
}

impl Stopwatch {
    /// A stopwatch started now.
    pub fn start() -> Stopwatch {
        Stopwatch { started: std::time::Instant::now() }
    }

    /// The time since `start`.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

/// Converts a core duration for std APIs.
pub fn to_std(duration: lars_core::time::Duration) -> std::time::Duration {
    std::time::Duration::from_micros(duration.as_micros())
}

/// Converts a std duration for the core (whole microseconds, saturating).
pub fn from_std(duration: std::time::Duration) -> lars_core::time::Duration {
    lars_core::time::Duration::from_micros(duration.as_micros().min(u128::from(u64::MAX)) as u64)
}

/// A Unix time as a UTC calendar date and time of day (proleptic Gregorian calendar): what the
/// log lines, `lars events` and the console's pages print, worked out in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// The year.
    pub year: i64,
    /// The month, 1 to 12.
    pub month: u32,
    /// The day of the month, from 1.
    pub day: u32,
    /// Seconds since midnight.
    pub second_of_day: u32,
    /// Microseconds into the second.
    pub micros: u32,
}

impl UtcTime {
    /// The UTC date and time `unix_micros` microseconds after the Unix epoch (the day count to
    /// a date is Howard Hinnant's `civil_from_days`).
    pub fn from_unix_micros(unix_micros: u64) -> UtcTime {
        let secs = unix_micros / 1_000_000;
        let z = (secs / 86_400) as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            second_of_day: (secs % 86_400) as u32,
            micros: (unix_micros % 1_000_000) as u32,
        }
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `hh:mm:ss`.
    pub fn time(&self) -> String {
        let s = self.second_of_day;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::{Clock, UtcTime, from_std, to_std};

    #[test]
    fn unix_times_read_as_utc_dates() {
        let at = |secs: u64| UtcTime::from_unix_micros(secs * 1_000_000 + 123_456);
        assert_eq!(
            (at(0).date(), at(0).time(), at(0).micros),
            ("1970-01-01".into(), "00:00:00".into(), 123_456)
        );
        assert_eq!(at(951_782_400).date(), "2000-02-29", "a leap day of a century");
        assert_eq!(
            (at(1_796_124_003).date(), at(1_796_124_003).time()),
            ("2026-12-01".into(), "11:20:03".into())
        );
        assert_eq!(at(1_709_251_199).time(), "23:59:59");
    }

    #[test]
    fn the_coarse_clock_shares_the_epoch_and_never_leads_the_fine_one() {
        let clock = Clock::new();
        std::thread::sleep(std::time::Duration::from_millis(30)); // the clock ages, so its epoch shows
        let passed = clock.now();
        // The coarse clock reaches a time the fine one has passed: it counts from the same epoch.
        // The 10,000 reads, a millisecond apart, only guard against waiting for ever.
        let mut previous = clock.now_coarse();
        for _ in 0..10_000 {
            let (coarse, fine) = (clock.now_coarse(), clock.now());
            assert!(coarse <= fine, "the coarse clock leads: {coarse:?} after {fine:?}");
            assert!(coarse >= previous, "the coarse clock goes back: {coarse:?} after {previous:?}");
            if coarse >= passed {
                return;
            }
            previous = coarse;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!(
            "the coarse clock stays at {previous:?}, short of {passed:?}: it does not count from the epoch"
        );
    }

    #[test]
    fn durations_convert_between_std_and_the_core_in_whole_microseconds() {
        for micros in [0, 1, 999, 1_000_000, u64::MAX] {
            let core = lars_core::time::Duration::from_micros(micros);
            assert_eq!(from_std(to_std(core)), core);
        }
        assert_eq!(from_std(std::time::Duration::from_nanos(1_999)).as_micros(), 1, "truncates to whole µs");
        assert_eq!(from_std(std::time::Duration::MAX), lars_core::time::Duration::MAX, "saturates");
        let clock = Clock::new();
        assert_eq!(clock.until(lars_core::time::Instant::ZERO), std::time::Duration::ZERO, "a past deadline");
    }
}
