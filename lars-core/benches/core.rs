//! Core micro benchmarks.
fn main() {}
