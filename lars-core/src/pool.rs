//! Fixed-capacity buffer pool over caller-provided static storage (`pool` layer).
//!
//! This replaces the original's `io_buf` + `buf_pool`, without its defects: the pool never grows,
//! never shrinks, never touches the heap and never exits the process. When a size class is
//! exhausted, [`BufPool::alloc`] returns `None` and counts the failure; the caller applies
//! backpressure.
//!
//! ```
//! use lars_core::pool::{BufPool, Slab};
//!
//! static SMALL: Slab<256, 4> = Slab::new();
//! static LARGE: Slab<4096, 2> = Slab::new();
//! static POOL: BufPool<'static, 2> = BufPool::new([SMALL.class(), LARGE.class()]);
//!
//! let mut buf = POOL.alloc(100).expect("a 256-byte buffer is free");
//! assert_eq!(buf.capacity(), 256);
//! buf.append(b"hello");
//! assert_eq!(buf.data(), b"hello");
//! buf.consume(2);
//! assert_eq!(buf.data(), b"llo");
//! assert_eq!(POOL.stats()[0].in_use, 1);
//! drop(buf); // back to the pool
//! assert_eq!(POOL.stats()[0].in_use, 0);
//! ```
//!
//! # Design
//!
//! Each [`Slab`] is one size class: `COUNT` blocks of `SIZE` bytes, a link per block and one
//! atomic head word. Free blocks form a Treiber stack threaded through the links by index. The
//! head word packs the first free index, the number of blocks in use and an ABA tag, so alloc and
//! free are each a single compare-and-swap (O(1), lock-free) and the in-use count is exact for
//! free. A slab is all zeros when new (a zero link means "the next block"), so a `static` slab
//! sits in `.bss` and costs no flash.
//!
//! Word layout: 64 bits where the target has 64-bit atomics (16-bit index, 16-bit in-use, 32-bit
//! tag); 32 bits elsewhere (8, 8, 16), which limits a class to 255 blocks on such
//! microcontrollers. On targets without compare-and-swap (thumbv6m) `portable-atomic` runs the
//! CAS inside a critical section that the final binary provides.
//!
//! # Safety argument
//!
//! This is the only module of lars-core with `unsafe`. The invariant it keeps: **a block index
//! is owned by at most one [`Buf`] at a time, or by the free list, never both.**
//! - A block leaves the free list only through a successful CAS of the head word from a state
//!   where it was the first free block, so two allocations cannot both take it.
//! - The ABA problem (a thread reads head = X, sleeps while X is popped, other blocks come and go
//!   and X is pushed back) is defeated by the tag: every successful CAS increments it, so a stale
//!   CAS fails unless exactly 2^32 (2^16 on 32-bit targets) other operations happened on the same
//!   class in between, during which the stale thread did not run.
//! - A block returns to the free list only when its [`Buf`] drops, and `Buf` is not `Clone`.
//! - Hence the `&mut [u8]` that [`Buf`] holds over its block never aliases another reference.
//!   Acquire on allocation and Release on free order the previous owner's writes before the
//!   next owner's reads.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::fmt;
use core::slice;

use portable_atomic::{AtomicU32, Ordering};

#[cfg(target_has_atomic = "64")]
mod word {
    pub(super) type Word = u64;
    pub(super) type AtomicWord = portable_atomic::AtomicU64;
    pub(super) const INDEX_BITS: u32 = 16;
}

#[cfg(not(target_has_atomic = "64"))]
mod word {
    pub(super) type Word = u32;
    pub(super) type AtomicWord = portable_atomic::AtomicU32;
    pub(super) const INDEX_BITS: u32 = 8;
}

use word::{AtomicWord, INDEX_BITS, Word};

/// The most blocks one size class can hold on this target.
pub const MAX_BLOCKS: usize = (1 << INDEX_BITS) - 1;

const INDEX_MASK: Word = (1 << INDEX_BITS) - 1;

#[derive(Clone, Copy)]
struct Head {
    first_free: usize,
    in_use: usize,
    tag: Word,
}

impl Head {
    fn unpack(word: Word) -> Head {
        Head {
            first_free: (word & INDEX_MASK) as usize,
            in_use: ((word >> INDEX_BITS) & INDEX_MASK) as usize,
            tag: word >> (2 * INDEX_BITS),
        }
    }

    fn pack(self) -> Word {
        (self.first_free as Word & INDEX_MASK)
            | ((self.in_use as Word & INDEX_MASK) << INDEX_BITS)
            | (self.tag << (2 * INDEX_BITS))
    }
}

/// Counters of one slab, kept apart from its blocks so that a [`Class`] can point at them.
struct Counters {
    head: AtomicWord,
    high_water: AtomicU32,
    failed: AtomicU32,
}

/// Storage for one size class: `COUNT` blocks of `SIZE` bytes. Declare it as a `static`.
pub struct Slab<const SIZE: usize, const COUNT: usize> {
    counters: Counters,
    /// `links[i]` is the free block after block `i`, stored as `next - i - 1` so that the
    /// all-zero initial state is the chain 0 → 1 → … → COUNT (the end).
    links: [AtomicU32; COUNT],
    blocks: [UnsafeCell<[u8; SIZE]>; COUNT],
}

// SAFETY: blocks are reached only through `Buf`, which owns its block exclusively (see the module
// docs); everything else in a slab is atomic.
unsafe impl<const SIZE: usize, const COUNT: usize> Sync for Slab<SIZE, COUNT> {}

impl<const SIZE: usize, const COUNT: usize> Slab<SIZE, COUNT> {
    /// An empty slab with every block free. Fails to compile in a `static` (and panics
    /// elsewhere) when `SIZE` is 0 or `COUNT` is 0 or over [`MAX_BLOCKS`].
    #[allow(clippy::new_without_default)] // a slab is meant to be a `static`, built in const
    pub const fn new() -> Self {
        assert!(SIZE > 0, "a slab's blocks must hold at least one byte");
        assert!(COUNT > 0 && COUNT <= MAX_BLOCKS, "a slab holds 1..=MAX_BLOCKS blocks");
        Slab {
            counters: Counters {
                head: AtomicWord::new(0),
                high_water: AtomicU32::new(0),
                failed: AtomicU32::new(0),
            },
            links: [const { AtomicU32::new(0) }; COUNT],
            blocks: [const { UnsafeCell::new([0; SIZE]) }; COUNT],
        }
    }

    /// This slab as a size class of a [`BufPool`].
    pub const fn class(&self) -> Class<'_> {
        // SAFETY: `UnsafeCell<[u8; SIZE]>` is `repr(transparent)` over `[u8; SIZE]`, so the
        // blocks are `SIZE * COUNT` contiguous bytes with the layout of `[UnsafeCell<u8>]`. The
        // slice borrows `self`, so it cannot outlive the storage.
        let bytes =
            unsafe { slice::from_raw_parts(self.blocks.as_ptr().cast::<UnsafeCell<u8>>(), SIZE * COUNT) };
        Class { counters: &self.counters, links: &self.links, bytes, block_size: SIZE }
    }
}

/// One size class of a pool: a view of a [`Slab`] that forgets its const parameters.
#[derive(Clone, Copy)]
pub struct Class<'p> {
    counters: &'p Counters,
    links: &'p [AtomicU32],
    bytes: &'p [UnsafeCell<u8>],
    block_size: usize,
}

// SAFETY: as for `Slab`, whose fields these are.
unsafe impl Sync for Class<'_> {}
// SAFETY: as for `Slab`: a `Class` is only shared references to a `Sync` slab's fields.
unsafe impl Send for Class<'_> {}

impl<'p> Class<'p> {
    /// Bytes per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks in the class.
    pub fn blocks(&self) -> usize {
        self.links.len()
    }

    fn alloc(&self) -> Option<(usize, &'p mut [u8])> {
        let head = &self.counters.head;
        let mut current = head.load(Ordering::Acquire);
        loop {
            let state = Head::unpack(current);
            let index = state.first_free;
            let Some(link) = self.links.get(index) else {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            // If another thread takes `index` meanwhile, this read may be stale; the CAS below
            // then fails on the changed tag and we retry.
            let next =
                (link.load(Ordering::Relaxed).wrapping_add(index as u32 + 1) as usize).min(self.blocks());
            let taken = Head { first_free: next, in_use: state.in_use + 1, tag: state.tag.wrapping_add(1) };
            match head.compare_exchange_weak(current, taken.pack(), Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => {
                    let in_use = taken.in_use as u32;
                    if in_use > self.counters.high_water.load(Ordering::Relaxed) {
                        self.counters.high_water.fetch_max(in_use, Ordering::Relaxed);
                    }
                    let start = index * self.block_size;
                    let cells = &self.bytes[start..start + self.block_size];
                    // SAFETY: the CAS moved block `index` from the free list to us, so no other
                    // reference to these bytes exists until `free(index)` (module docs).
                    let block = unsafe {
                        slice::from_raw_parts_mut(UnsafeCell::raw_get(cells.as_ptr()), cells.len())
                    };
                    return Some((index, block));
                }
                Err(actual) => current = actual,
            }
        }
    }

    fn free(&self, index: usize) {
        let head = &self.counters.head;
        let mut current = head.load(Ordering::Relaxed);
        loop {
            let state = Head::unpack(current);
            self.links[index]
                .store((state.first_free as u32).wrapping_sub(index as u32 + 1), Ordering::Relaxed);
            let freed = Head { first_free: index, in_use: state.in_use - 1, tag: state.tag.wrapping_add(1) };
            match head.compare_exchange_weak(current, freed.pack(), Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn stats(&self) -> ClassStats {
        ClassStats {
            block_size: self.block_size,
            blocks: self.blocks(),
            in_use: Head::unpack(self.counters.head.load(Ordering::Relaxed)).in_use,
            high_water: self.counters.high_water.load(Ordering::Relaxed) as usize,
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }
}

/// Counters of one size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassStats {
    /// Bytes per block.
    pub block_size: usize,
    /// Blocks in the class.
    pub blocks: usize,
    /// Blocks handed out now.
    pub in_use: usize,
    /// The most blocks ever handed out at once.
    pub high_water: usize,
    /// Allocations refused because every block was in use.
    pub failed: u32,
}

/// A pool of `N` size classes, smallest first.
pub struct BufPool<'p, const N: usize> {
    classes: [Class<'p>; N],
    oversize: AtomicU32,
}

impl<'p, const N: usize> BufPool<'p, N> {
    /// A pool over `classes`, which must be in strictly increasing block size (checked at
    /// compile time for a `static` pool).
    pub const fn new(classes: [Class<'p>; N]) -> Self {
        let mut i = 1;
        while i < N {
            assert!(classes[i - 1].block_size < classes[i].block_size, "classes must grow strictly");
            i += 1;
        }
        BufPool { classes, oversize: AtomicU32::new(0) }
    }

    /// A buffer of at least `min_len` bytes from the smallest class that fits, or `None` when
    /// that class is exhausted (counted in its [`ClassStats::failed`]) or no class is big enough
    /// (counted in [`BufPool::oversize_requests`]). It never falls back to a larger class, so
    /// small requests cannot starve large ones.
    pub fn alloc(&self, min_len: usize) -> Option<Buf<'_>> {
        let Some(class) = self.classes.iter().find(|c| c.block_size >= min_len) else {
            self.oversize.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let (index, block) = class.alloc()?;
        Some(Buf { class, index, block, head: 0, len: 0 })
    }

    /// Counters of every class, smallest first.
    pub fn stats(&self) -> [ClassStats; N] {
        self.classes.each_ref().map(Class::stats)
    }

    /// Requests larger than the largest class.
    pub fn oversize_requests(&self) -> u32 {
        self.oversize.load(Ordering::Relaxed)
    }
}

/// A block from a [`BufPool`], returned to it on drop: the original's `io_buf`.
///
/// The valid bytes are `data()`, a window `[head, head + len)` of the block. Readers
/// [`consume`](Buf::consume) from the front; writers fill [`spare_mut`](Buf::spare_mut) and
/// [`commit`](Buf::commit), or [`append`](Buf::append). Every method clamps instead of panicking.
pub struct Buf<'p> {
    class: &'p Class<'p>,
    index: usize,
    block: &'p mut [u8],
    head: usize,
    len: usize,
}

impl Buf<'_> {
    /// Bytes the block holds.
    pub fn capacity(&self) -> usize {
        self.block.len()
    }

    /// Valid bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no valid bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Which block of its class this is; unique among the class's live buffers.
    pub fn block_index(&self) -> usize {
        self.index
    }

    /// The valid bytes.
    pub fn data(&self) -> &[u8] {
        &self.block[self.head..self.head + self.len]
    }

    /// The valid bytes, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.block[self.head..self.head + self.len]
    }

    /// Drops up to `n` valid bytes from the front. When none remain, the window moves back to the
    /// start of the block.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head += n;
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }

    /// Moves the valid bytes to the start of the block, making all free space contiguous.
    pub fn compact(&mut self) {
        if self.head != 0 {
            self.block.copy_within(self.head..self.head + self.len, 0);
            self.head = 0;
        }
    }

    /// The free space after the valid bytes, to be filled and then [`commit`](Buf::commit)ted.
    pub fn spare_mut(&mut self) -> &mut [u8] {
        &mut self.block[self.head + self.len..]
    }

    /// Marks up to `n` bytes of the spare space as valid.
    pub fn commit(&mut self, n: usize) {
        self.len += n.min(self.block.len() - self.head - self.len);
    }

    /// Copies as much of `bytes` as fits after the valid bytes (compacting first if that makes
    /// room) and returns how many were copied.
    pub fn append(&mut self, bytes: &[u8]) -> usize {
        if self.spare_mut().len() < bytes.len() {
            self.compact();
        }
        let spare = self.spare_mut();
        let n = bytes.len().min(spare.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }

    /// Drops every valid byte.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

impl Drop for Buf<'_> {
    fn drop(&mut self) {
        self.class.free(self.index);
    }
}

impl fmt::Debug for Buf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buf")
            .field("capacity", &self.capacity())
            .field("block", &self.index)
            .field("head", &self.head)
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests;
