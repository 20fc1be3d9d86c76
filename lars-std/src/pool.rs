//! The process-wide buffer pool: every connection's input and output buffers come from here.
//!
//! Two classes: 4 KiB blocks for the common case (requests, replies, small routes) and 64 KiB
//! blocks, enough for the largest frame (65535 bytes). The storage is static and zeroed, so it
//! costs address space, not memory, until used. When a class runs out, allocation fails and the
//! reactor stops reading from the connection that asked until buffers come back (backpressure),
//! and counts it in [`lars_core::pool::ClassStats::failed`].
//!
//! Each thread keeps one small block in reserve ([`recycle`]): a connection that reads, answers
//! and empties its input on every request would otherwise take a block from the shared free
//! list and give it back each time, and with several threads doing so the list's head moves
//! between cores on every request. The reserve counts as in use in [`stats`], and goes back
//! to the pool when its thread ends.

use lars_core::pool::{Buf, BufPool, ClassStats, Slab};

/// Bytes per small block.
pub const SMALL: usize = 4096;
/// Bytes per large block: a whole frame of the largest size fits.
pub const LARGE: usize = 65536;

static SMALL_SLAB: Slab<SMALL, 8192> = Slab::new();
static LARGE_SLAB: Slab<LARGE, 512> = Slab::new();
static POOL: BufPool<'static, 2> = BufPool::new([SMALL_SLAB.class(), LARGE_SLAB.class()]);

std::thread_local! {
    static RESERVE: std::cell::Cell<Option<Buf<'static>>> = const { std::cell::Cell::new(None) };
}

/// An empty buffer of at least `min_len` bytes, or `None` when that class is exhausted.
pub fn alloc(min_len: usize) -> Option<Buf<'static>> {
    if min_len <= SMALL
        && let Some(buf) = RESERVE.try_with(std::cell::Cell::take).ok().flatten()
    {
        return Some(buf);
    }
    POOL.alloc(min_len)
}

/// Gives back a buffer that is no longer needed: a small one becomes this thread's reserve if
/// it has none, and anything else goes back to the pool.
pub fn recycle(mut buf: Buf<'static>) {
    if buf.capacity() != SMALL {
        return;
    }
    buf.clear();
    // `try_with` fails only while the thread is ending; the buffer then drops into the pool.
    let _ = RESERVE.try_with(|reserve| {
        let previous = reserve.replace(Some(buf));
        drop(previous);
    });
}

/// Counters of both classes, small first.
pub fn stats() -> [ClassStats; 2] {
    POOL.stats()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_small_block_is_its_threads_next_small_buffer() {
        std::thread::spawn(|| {
            let mut buf = alloc(100).unwrap();
            buf.append(b"stale");
            let index = buf.block_index();
            recycle(buf);
            let large = alloc(SMALL + 1).unwrap();
            assert_eq!(large.capacity(), LARGE, "a large request never gets the reserve");
            let other_thread = std::thread::spawn(|| alloc(1).unwrap().block_index()).join().unwrap();
            assert_ne!(other_thread, index, "the reserve is this thread's alone");
            let again = alloc(1).unwrap();
            assert_eq!(again.block_index(), index);
            assert!(again.is_empty(), "a recycled block comes back empty");
            recycle(large);
            assert_eq!(alloc(1).unwrap().capacity(), SMALL, "only small blocks are kept in reserve");
        })
        .join()
        .unwrap();
    }
}
