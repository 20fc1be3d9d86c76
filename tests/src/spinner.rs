//! A thread that keeps one core busy, for the benchmarks' "one core busy" rows: these VMs
//! halt an idle core and make waking it expensive, so a closed loop's figure depends on whether
//! the other core is busy. Plain std, so that xtask (which depends on nothing of lars) includes
//! this file by path for its system benchmark, as the echo bench uses it from this crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Keeps one core busy while alive.
pub struct Spinner(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Spinner {
    /// Starts the spinning thread.
    pub fn start() -> Spinner {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        Spinner(stop, Some(thread))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(thread) = self.1.take() {
            let _ = thread.join();
        }
    }
}
