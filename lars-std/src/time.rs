//! The system clock, as the core sees it. This is the only file that reads `std::time::Instant`.
// This is the one module that reads the system clock.
#![allow(clippy::disallowed_methods)]

use lars_core::time::Instant;

/// A monotonic clock whose epoch is its creation. Cheap to copy; share one per process so that
/// every part agrees on what an [`Instant`] means.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: std::time::Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock { epoch: std::time::Instant::now() }
    }

    /// Now, for the core.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros().min(u128::from(u64::MAX)) as u64)
    }

    /// How long from now until `deadline`, for a poller's timeout (zero if it has passed).
    pub fn until(&self, deadline: Instant) -> std::time::Duration {
        std::time::Duration::from_micros(deadline.saturating_since(self.now()).as_micros())
    }

    /// Seconds since the Unix epoch, for timestamps that leave the process.
    pub fn unix_secs() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
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
