//! The process-wide pool as the reactor uses it: `pool::alloc` and `pool::recycle` through the
//! thread's magazine (a thread-local) over storage leaked at start. Run by `cargo xtask bench
//! core`, beside lars-core's pool figures (the same operations on a `Magazine` held directly),
//! which writes the figures to `target/bench/pool.json`.
//!
//! Single-thread figures are the median of 7 samples of about 100 ms (wall time); figures with
//! several threads are each thread's own CPU time per operation, the median of 5 runs.

use std::hint::black_box;

use lars_std::pool;

#[path = "../../lars-core/benches/harness/mod.rs"]
mod harness;
use harness::Runner;

fn main() {
    let mut runner = Runner::from_args();
    let recycle = || pool::recycle(black_box(pool::alloc(black_box(1000)).unwrap()));
    let drop_it = || drop(black_box(pool::alloc(black_box(1000)).unwrap()));

    runner.bench("std pool::alloc + pool::recycle, 1 thread (its magazine)", None, recycle);
    runner.bench("std pool::alloc + drop, 1 thread (the drop goes to the free list)", None, drop_it);
    for threads in [1, 2, 4] {
        let name = format!("std pool::alloc + pool::recycle, {threads} threads contending (CPU/op)");
        // No target here: the 25 ns target at 2 threads is the magazine's, in lars-core's
        // benchmark; this adds the thread-local and the stats publication to it.
        runner.threaded(&name, None, threads, 2_000_000, |_| {
            recycle(); // the thread's magazine is set up before the clock starts
            recycle
        });
    }
    runner.finish();
}
