//! The benchmark harness shared by lars-core's and lars-std's micro benchmarks (`benches/core.rs`
//! and `lars-std/benches/pool.rs`, which includes this file by path): timing by median of
//! samples, threads timed by their own CPU time, name filters, and the figures printed as a
//! table and written as JSON to `LARS_BENCH_OUT`.
// Measuring wall time is the point here; not every bench uses every part.
#![allow(clippy::disallowed_methods, dead_code)]

use std::time::{Duration, Instant};

/// One benchmark's result.
pub(crate) struct Figure {
    pub(crate) name: String,
    pub(crate) ns_per_op: f64,
    pub(crate) target_ns: Option<f64>,
}

/// Median ns per call of `op` over 7 samples of about 100 ms.
pub(crate) fn measure(mut op: impl FnMut()) -> f64 {
    let mut batch = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            op();
        }
        if start.elapsed() > Duration::from_millis(10) {
            break;
        }
        batch *= 2;
    }
    batch *= 10;
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                op();
            }
            start.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Runs the benchmarks whose names contain one of the filters (all when there is none).
pub(crate) struct Runner {
    filters: Vec<String>,
    pub(crate) figures: Vec<Figure>,
}

impl Runner {
    /// A runner for the filters on the command line (`cargo bench` passes `--bench`; anything
    /// else is a name filter).
    pub(crate) fn from_args() -> Runner {
        let filters = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
        Runner { filters, figures: Vec::new() }
    }

    pub(crate) fn wants(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }

    pub(crate) fn bench(&mut self, name: &str, target_ns: Option<f64>, op: impl FnMut()) {
        if self.wants(name) {
            let ns_per_op = measure(op);
            self.figures.push(Figure { name: name.to_string(), ns_per_op, target_ns });
        }
    }

    /// `threads` threads, started together, each running the op that `make` builds for it
    /// `ops` times: the median over 5 runs of their CPU time per op.
    pub(crate) fn threaded<F: FnMut()>(
        &mut self,
        name: &str,
        target_ns: Option<f64>,
        threads: usize,
        ops: u64,
        make: impl Fn(usize) -> F + Sync,
    ) {
        if !self.wants(name) {
            return;
        }
        let mut samples: Vec<f64> = (0..5)
            .map(|_| {
                let start = std::sync::Barrier::new(threads);
                let cpu: u64 = std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..threads)
                        .map(|thread| {
                            let (start, make) = (&start, &make);
                            scope.spawn(move || {
                                let mut op = make(thread);
                                start.wait();
                                let before = thread_cpu_ns();
                                for _ in 0..ops {
                                    op();
                                }
                                thread_cpu_ns() - before
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).sum()
                });
                cpu as f64 / (ops * threads as u64) as f64
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let ns_per_op = samples[samples.len() / 2];
        self.figures.push(Figure { name: name.to_string(), ns_per_op, target_ns });
    }
}

/// This thread's CPU time so far, in nanoseconds (the first field of its schedstat).
pub(crate) fn thread_cpu_ns() -> u64 {
    let stat =
        std::fs::read_to_string("/proc/thread-self/schedstat").expect("read /proc/thread-self/schedstat");
    stat.split_whitespace().next().and_then(|ns| ns.parse().ok()).expect("schedstat starts with CPU ns")
}

impl Runner {
    /// Prints the figures and writes them to `LARS_BENCH_OUT`, if set.
    pub(crate) fn finish(&self) {
        print_and_save(&self.figures);
    }
}

fn print_and_save(figures: &[Figure]) {
    println!("{:<96} {:>10} {:>10}", "benchmark", "ns/op", "target");
    let mut json = String::from("[\n");
    for (i, f) in figures.iter().enumerate() {
        let target = f.target_ns.map_or(String::from("-"), |t| {
            let verdict = if f.ns_per_op <= t { "met" } else { "MISSED" };
            format!("<{t:.0} {verdict}")
        });
        println!("{:<96} {:>10.1} {:>10}", f.name, f.ns_per_op, target);
        let target_json = f.target_ns.map_or(String::from("null"), |t| format!("{t}"));
        json.push_str(&format!(
            "  {{\"name\": \"{}\", \"ns_per_op\": {:.2}, \"target_ns\": {}}}{}\n",
            f.name,
            f.ns_per_op,
            target_json,
            if i + 1 < figures.len() { "," } else { "" }
        ));
    }
    json.push(']');
    if let Some(path) = std::env::var_os("LARS_BENCH_OUT") {
        let path = std::path::PathBuf::from(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the bench output folder");
        }
        std::fs::write(&path, json).expect("write the bench figures");
        println!("wrote {}", path.display());
    }
}
