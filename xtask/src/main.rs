//! xtask: the project tasks.
fn main() {}
