//! The process-wide buffer pool: every connection's input and output buffers come from here.
//!
//! Two classes: 4 KiB blocks for the common case (requests, replies, small routes) and 64 KiB
//! blocks, enough for the largest frame (65535 bytes). The storage is static and zeroed, so it
//! costs address space, not memory, until used. When a class runs out, allocation fails and the
//! reactor stops reading from the connection that asked until buffers come back (backpressure),
//! and counts it in [`lars_core::pool::ClassStats::failed`].

use lars_core::pool::{Buf, BufPool, ClassStats, Slab};

/// Bytes per small block.
pub const SMALL: usize = 4096;
/// Bytes per large block: a whole frame of the largest size fits.
pub const LARGE: usize = 65536;

static SMALL_SLAB: Slab<SMALL, 8192> = Slab::new();
static LARGE_SLAB: Slab<LARGE, 512> = Slab::new();
static POOL: BufPool<'static, 2> = BufPool::new([SMALL_SLAB.class(), LARGE_SLAB.class()]);

/// A buffer of at least `min_len` bytes, or `None` when that class is exhausted.
pub fn alloc(min_len: usize) -> Option<Buf<'static>> {
    POOL.alloc(min_len)
}

/// Counters of both classes, small first.
pub fn stats() -> [ClassStats; 2] {
    POOL.stats()
}
