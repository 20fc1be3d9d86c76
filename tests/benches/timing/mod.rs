//! What the console's benchmarks (`web.rs`, `web_history.rs`) share: the median of timed runs.
//! Their figures are pages of milliseconds through HTTP and MariaDB, a few runs each, so
//! `lars-core/benches/harness` (nanoseconds per operation over samples of about 100 ms) does
//! not fit them.

/// The median of `values` (milliseconds of each run).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
