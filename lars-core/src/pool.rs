//! Fixed-capacity buffer pool over caller-provided storage (`pool` layer), with per-owner
//! magazines in front of it.
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
//! # Magazines
//!
//! Every [`BufPool::alloc`] and every drop of a [`Buf`] is one compare-and-swap on the class's
//! head word, which is cheap on one core and expensive when several cores take turns at it (the
//! word moves between their caches on every operation). A [`Magazine`] is a small cache of free
//! blocks per class that one owner holds (a worker thread, an event loop, a firmware's main
//! loop: the core has no thread-locals, the owner decides). [`Magazine::alloc`] and
//! [`Magazine::free`] work on the cache alone; only when it runs empty does it take a batch
//! from the free list, and only when it runs full does it give a batch back, each with one
//! compare-and-swap. This is Bonwick's magazine layer, DPDK's per-core mempool cache and
//! jemalloc's thread cache, without their allocation: the cache is an array inside the
//! magazine.
//!
//! What magazines may hold is bounded twice, so that no owner can strand a class:
//! - each holds at most the class's [`rounds`](Class::with_magazines) blocks (and `CAP`);
//! - those rounds are reserved from the class's magazine budget the first time a magazine
//!   uses the class, and given back when it drops. A magazine that finds the budget spent
//!   passes straight through to the free list, so all magazines together never hold more
//!   than the budget, however many there are.
//!
//! Dropping a magazine returns every block it holds. Exhaustion is unchanged: when the free
//! list is empty and the magazine too, `alloc` returns `None` and counts the failure, even if
//! another owner's magazine holds blocks (at most the budget).
//!
//! # Design
//!
//! Each class is `blocks` blocks of `block_size` bytes, a link word per block and one atomic
//! head word. Free blocks form a Treiber stack threaded through the links by index. The head
//! word packs the first free index, the number of blocks out of the free list and an ABA tag,
//! so every change of the free list is a single compare-and-swap (lock-free) and the count is
//! exact for free. A [`Slab`] is all zeros when new (a zero link means "the next block, alone"),
//! so a `static` slab sits in `.bss` and costs no flash; [`Class::over`] builds the same class
//! over storage chosen at run time (a daemon's configuration).
//!
//! A node of the stack is a *run*: a free block that carries the indexes of up to
//! `block_size / 2` further free blocks in its own (free, hence unused) bytes, as little-endian
//! `u16`s. Its link word says where the next node is and how long its run is. A magazine
//! gives a batch back as one run (one link written, the indexes in one cache line of the run's
//! first block), and takes one back by reading one link and that cache line, so that the batch
//! operations do not walk a chain of links that another core wrote (one cache miss per block).
//! A dropped [`Buf`] goes back as a run of one. Taking fewer blocks than the top run holds (a
//! plain [`BufPool::alloc`] that meets a run) splits it: the rest goes back as a shorter run
//! with a second compare-and-swap.
//!
//! Word layout: 64 bits where the target has 64-bit atomics (16-bit index, 16-bit count,
//! 32-bit tag); 32 bits elsewhere (8, 8, 16), which limits a class to 255 blocks on such
//! microcontrollers. A link is 32 bits: the next node's index (16 bits, stored as
//! `next - index - 1` so that zero means the next block) and the run's length minus one (16
//! bits). On targets without compare-and-swap (thumbv6m) `portable-atomic` runs the CAS inside a
//! critical section that the final binary provides.
//!
//! # Safety argument
//!
//! This is the only module of lars-core with `unsafe`. The invariant it keeps: **a block index
//! is owned by exactly one of: the free list, one [`Buf`], one [`Magazine`]'s cache, or the
//! operation that is moving it between them; never by two.**
//! - Blocks leave the free list only through a successful CAS of the head word from the state
//!   in which they were the top nodes (and the runs they carry), so two takers cannot both get
//!   them. The taker reads the links of the nodes it walks before the CAS; they may be stale
//!   (another thread took and gave back those nodes meanwhile), but then the head word changed
//!   and the CAS fails. If the CAS succeeds, no other CAS on the class happened since the
//!   taker's acquire load of the head, so the links it read are the ones the givers published
//!   (their writes precede their release CAS, which precedes that load), and no one has
//!   written them since (only an owner writes a link or a run, and no one owned those blocks).
//!   Every index read is clamped to the class, so a stale read cannot reach out of it either.
//! - The ABA problem (a thread reads head = X, sleeps while X is taken, other blocks come and
//!   go and X is given back) is defeated by the tag: every successful CAS increments it, so a
//!   stale CAS fails unless exactly 2^32 (2^16 on 32-bit targets) other operations happened on
//!   the same class in between, during which the stale thread did not run.
//! - A run's indexes are read from its first block only after the CAS that took it, when the
//!   taker owns every block of the run; they are written only by a giver that owns them, before
//!   the release CAS that gives them back.
//! - A block returns to the free list only when its [`Buf`] drops or a [`Magazine`] gives it
//!   back, and `Buf` is not `Clone`; a magazine takes a `Buf` by value and forgets it, so its
//!   drop does not also return the block. A magazine accepts only buffers of its own pool's
//!   classes (checked by address), so an index always goes back to the class it came from.
//! - Hence the `&mut [u8]` that a [`Buf`] holds over its block, and the bytes of a run its
//!   owner reads or writes, never alias another reference. Acquire on taking and Release on
//!   giving back order the previous owner's writes before the next owner's reads.
//! - [`Class::over`] takes its storage by exclusive reference for the class's whole life and
//!   resets the links and the head, so the free list starts as exactly the class's blocks.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::mem::ManuallyDrop;
use core::ptr;
use core::slice;
use core::sync::atomic::Ordering;

// Counters are statistics: a loom model does not need to explore them.
use portable_atomic::AtomicU32 as CounterU32;

// The free list's words, which the loom model (`--cfg loom`) replaces with its own.
#[cfg(loom)]
use loom::sync::atomic::AtomicU32 as LinkWord;
#[cfg(not(loom))]
use portable_atomic::AtomicU32 as LinkWord;

#[cfg(target_has_atomic = "64")]
mod word {
    pub(super) type Word = u64;
    #[cfg(not(loom))]
    pub(super) type AtomicWord = portable_atomic::AtomicU64;
    #[cfg(loom)]
    pub(super) type AtomicWord = loom::sync::atomic::AtomicU64;
    pub(super) const INDEX_BITS: u32 = 16;
}

#[cfg(not(target_has_atomic = "64"))]
mod word {
    pub(super) type Word = u32;
    #[cfg(not(loom))]
    pub(super) type AtomicWord = portable_atomic::AtomicU32;
    #[cfg(loom)]
    pub(super) type AtomicWord = loom::sync::atomic::AtomicU32;
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
    #[inline]
    fn unpack(word: Word) -> Head {
        Head {
            first_free: (word & INDEX_MASK) as usize,
            in_use: ((word >> INDEX_BITS) & INDEX_MASK) as usize,
            tag: word >> (2 * INDEX_BITS),
        }
    }

    #[inline]
    fn pack(self) -> Word {
        (self.first_free as Word & INDEX_MASK)
            | ((self.in_use as Word & INDEX_MASK) << INDEX_BITS)
            | (self.tag << (2 * INDEX_BITS))
    }
}

const NEXT_MASK: u32 = 0xffff;

/// The link word of free node `index`: the next node and the length of `index`'s run.
#[inline]
fn link_word(index: usize, next: usize, run: usize) -> u32 {
    ((next as u32).wrapping_sub(index as u32 + 1) & NEXT_MASK) | (((run - 1) as u32) << 16)
}

/// `(next node, run length)` of free node `index`, the next node clamped to `blocks` (the end).
#[inline]
fn link_parts(index: usize, word: u32, blocks: usize) -> (usize, usize) {
    let next = ((word & NEXT_MASK).wrapping_add(index as u32 + 1) & NEXT_MASK) as usize;
    (next.min(blocks), (word >> 16) as usize + 1)
}

/// One block's link in the free list. A class over run-time storage ([`Class::over`]) needs
/// one per block.
pub struct Link(LinkWord);

impl Link {
    /// A link in its initial state (the next block, alone).
    #[cfg(not(loom))]
    pub const fn new() -> Link {
        Link(LinkWord::new(0))
    }

    /// A link in its initial state (the next block, alone).
    #[cfg(loom)]
    pub fn new() -> Link {
        Link(LinkWord::new(0))
    }

    #[inline]
    fn load(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    #[inline]
    fn store(&self, word: u32) {
        self.0.store(word, Ordering::Relaxed);
    }
}

impl Default for Link {
    fn default() -> Link {
        Link::new()
    }
}

/// The head word and counters of one size class, kept apart from its blocks so that a
/// [`Class`] can point at them, and so that storage sized at run time can provide them.
pub struct ClassState {
    head: AtomicWord,
    high_water: CounterU32,
    failed: CounterU32,
    /// Magazine rounds handed out of the class's budget.
    reserved: CounterU32,
}

impl ClassState {
    /// A class with every block free and zero counters.
    #[cfg(not(loom))]
    pub const fn new() -> ClassState {
        ClassState {
            head: AtomicWord::new(0),
            high_water: CounterU32::new(0),
            failed: CounterU32::new(0),
            reserved: CounterU32::new(0),
        }
    }

    /// A class with every block free and zero counters.
    #[cfg(loom)]
    pub fn new() -> ClassState {
        ClassState {
            head: AtomicWord::new(0),
            high_water: CounterU32::new(0),
            failed: CounterU32::new(0),
            reserved: CounterU32::new(0),
        }
    }
}

impl Default for ClassState {
    fn default() -> ClassState {
        ClassState::new()
    }
}

/// Static storage for one size class: `COUNT` blocks of `SIZE` bytes. Declare it as a `static`.
#[cfg(not(loom))]
pub struct Slab<const SIZE: usize, const COUNT: usize> {
    state: ClassState,
    links: [Link; COUNT],
    blocks: [UnsafeCell<[u8; SIZE]>; COUNT],
}

// SAFETY: blocks are reached only by their owner (see the module docs); everything else in a
// slab is atomic.
#[cfg(not(loom))]
unsafe impl<const SIZE: usize, const COUNT: usize> Sync for Slab<SIZE, COUNT> {}

#[cfg(not(loom))]
impl<const SIZE: usize, const COUNT: usize> Slab<SIZE, COUNT> {
    /// An empty slab with every block free. Fails to compile in a `static` (and panics
    /// elsewhere) when `SIZE` is 0 or `COUNT` is 0 or over [`MAX_BLOCKS`].
    #[allow(clippy::new_without_default)] // a slab is meant to be a `static`, built in const
    pub const fn new() -> Self {
        assert!(SIZE > 0, "a slab's blocks must hold at least one byte");
        assert!(COUNT > 0 && COUNT <= MAX_BLOCKS, "a slab holds 1..=MAX_BLOCKS blocks");
        Slab {
            state: ClassState::new(),
            links: [const { Link::new() }; COUNT],
            blocks: [const { UnsafeCell::new([0; SIZE]) }; COUNT],
        }
    }

    /// This slab as a size class of a [`BufPool`], without magazines (see
    /// [`Class::with_magazines`]).
    pub const fn class(&self) -> Class<'_> {
        // SAFETY: `UnsafeCell<[u8; SIZE]>` is `repr(transparent)` over `[u8; SIZE]`, so the
        // blocks are `SIZE * COUNT` contiguous bytes with the layout of `[UnsafeCell<u8>]`. The
        // slice borrows `self`, so it cannot outlive the storage.
        let bytes =
            unsafe { slice::from_raw_parts(self.blocks.as_ptr().cast::<UnsafeCell<u8>>(), SIZE * COUNT) };
        Class { state: &self.state, links: &self.links, bytes, block_size: SIZE, rounds: 0, budget: 0 }
    }
}

/// One size class of a pool: a view of its storage (a [`Slab`], or run-time storage through
/// [`Class::over`]) and of how magazines may cache it.
#[derive(Clone, Copy)]
pub struct Class<'p> {
    state: &'p ClassState,
    links: &'p [Link],
    bytes: &'p [UnsafeCell<u8>],
    block_size: usize,
    rounds: usize,
    budget: usize,
}

// SAFETY: as for `Slab`: the bytes are reached only by their owner, the rest is atomic.
unsafe impl Sync for Class<'_> {}
// SAFETY: as for `Slab`: a `Class` is only shared references to a `Sync` slab's fields.
unsafe impl Send for Class<'_> {}

impl<'p> Class<'p> {
    /// A class of `links.len()` blocks over storage chosen at run time: `bytes` is split into
    /// that many blocks of equal size. The storage is borrowed for the class's whole life, and
    /// the state and links are reset, so any storage will do (a daemon leaks it once at start).
    /// `None` when there are no links or more than [`MAX_BLOCKS`], or `bytes` is not a whole,
    /// non-zero number of bytes per block.
    pub fn over(state: &'p mut ClassState, links: &'p mut [Link], bytes: &'p mut [u8]) -> Option<Class<'p>> {
        let blocks = links.len();
        if blocks == 0 || blocks > MAX_BLOCKS || bytes.is_empty() || !bytes.len().is_multiple_of(blocks) {
            return None;
        }
        *state = ClassState::new();
        for link in links.iter_mut() {
            *link = Link::new();
        }
        let block_size = bytes.len() / blocks;
        // SAFETY: `UnsafeCell<u8>` has the same layout as `u8` (`repr(transparent)`), and the
        // exclusive borrow for 'p means nothing else reaches these bytes while the class lives.
        let bytes: &'p [UnsafeCell<u8>] = unsafe { &*(ptr::from_mut(bytes) as *const [UnsafeCell<u8>]) };
        Some(Class { state, links, bytes, block_size, rounds: 0, budget: 0 })
    }

    /// This class with magazines allowed: each [`Magazine`] may cache up to `rounds` of its
    /// blocks, and all magazines together at most `budget`. A magazine that would go over the
    /// budget gets what is left of it, or passes through to the free list. `rounds` under 2
    /// (the default) turns magazines off for the class.
    pub const fn with_magazines(mut self, rounds: usize, budget: usize) -> Self {
        self.rounds = rounds;
        self.budget = budget;
        self
    }

    /// Bytes per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks in the class.
    pub fn blocks(&self) -> usize {
        self.links.len()
    }

    /// The most blocks one magazine may cache ([`Class::with_magazines`]).
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// The most blocks all magazines together may cache ([`Class::with_magazines`]).
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// The longest run a node of this class can carry: its first block holds the others'
    /// indexes, two bytes each.
    fn max_run(&self) -> usize {
        (self.block_size / 2 + 1).min(1 << 16)
    }

    /// The bytes of block `index`.
    ///
    /// # Safety
    ///
    /// The caller owns block `index` (took it from the free list and has not given it back),
    /// and holds no other reference to its bytes while the returned one lives.
    #[allow(clippy::mut_from_ref)] // the bytes are `UnsafeCell`s, handed out to their owner
    #[inline]
    unsafe fn block(&self, index: usize) -> &'p mut [u8] {
        let start = index * self.block_size;
        let cells = &self.bytes[start..start + self.block_size];
        // SAFETY: the caller owns the block, so no other reference to these bytes exists
        // (module docs); `UnsafeCell<u8>` has the layout of `u8`.
        unsafe { slice::from_raw_parts_mut(UnsafeCell::raw_get(cells.as_ptr()), cells.len()) }
    }

    /// Writes the indexes of `members` into the first bytes of block `first`, making it a run.
    /// The caller owns all of them and `members.len() < self.max_run()`.
    fn write_run(&self, first: u16, members: &[u16]) {
        // SAFETY: the caller owns `first` and holds no reference to its bytes (it is about to
        // give the run back).
        let bytes = unsafe { self.block(usize::from(first)) };
        for (slot, member) in bytes.chunks_exact_mut(2).zip(members) {
            slot.copy_from_slice(&member.to_le_bytes());
        }
    }

    /// Takes up to `out.len()` (at least 1) free blocks with one compare-and-swap (two when the
    /// top run must be split), writing their indexes into `out`; returns how many. 0 means the
    /// class is exhausted, which is counted.
    fn take(&self, out: &mut [u16]) -> usize {
        let want = out.len();
        debug_assert!(want > 0, "take at least one block");
        let blocks = self.blocks();
        let head = &self.state.head;
        let mut current = head.load(Ordering::Acquire);
        let (nodes, total, before) = loop {
            let state = Head::unpack(current);
            // Walk the top nodes whose runs fit in `out`; the first is taken whatever its length.
            let (mut node, mut nodes, mut total, mut after) = (state.first_free, 0, 0, state.first_free);
            while node < blocks && total < want {
                // If another thread takes `node` meanwhile, this read may be stale; the CAS
                // below then fails on the changed tag and we retry.
                let (next, run) = link_parts(node, self.links[node].load(), blocks);
                if nodes > 0 && total + run > want {
                    break;
                }
                out[nodes] = node as u16;
                nodes += 1;
                total += run;
                after = next;
                node = next;
            }
            if nodes == 0 {
                self.state.failed.fetch_add(1, Ordering::Relaxed);
                return 0;
            }
            let taken =
                Head { first_free: after, in_use: state.in_use + total, tag: state.tag.wrapping_add(1) };
            match head.compare_exchange_weak(current, taken.pack(), Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => break (nodes, total, state.in_use),
                Err(actual) => current = actual,
            }
        };
        // We own every block of the `nodes` runs now: spread each run's indexes into `out`,
        // from the last node back, so that no node's index is overwritten before it is read
        // (the blocks before node `j` number at least `j`).
        if total > want {
            // One run, longer than wanted: keep its first block and the first `want - 1` it
            // carries; the next one leads a run of the rest, which goes back.
            let first = out[0];
            self.read_run_at(first, 0, &mut out[1..want]);
            let mut lead = [0u16];
            self.read_run_at(first, want - 1, &mut lead);
            self.move_run(first, want, lead[0], total - want - 1);
            self.give_nodes(lead[0], lead[0], total - want, total - want);
        } else {
            let mut end = total;
            for j in (0..nodes).rev() {
                let first = out[j];
                let (_, run) = link_parts(usize::from(first), self.links[usize::from(first)].load(), blocks);
                let start = end - run;
                out[start] = first;
                self.read_run_at(first, 0, &mut out[start + 1..end]);
                end = start;
            }
        }
        let kept = total.min(want);
        let in_use = (before + kept) as u32;
        if in_use > self.state.high_water.load(Ordering::Relaxed) {
            self.state.high_water.fetch_max(in_use, Ordering::Relaxed);
        }
        kept
    }

    /// Reads the indexes run `first` carries from position `skip` on into `out`. The caller
    /// owns the run.
    fn read_run_at(&self, first: u16, skip: usize, out: &mut [u16]) {
        // SAFETY: the caller owns `first` (it took the run) and holds no reference to its bytes.
        let bytes = unsafe { self.block(usize::from(first)) };
        for (index, slot) in out.iter_mut().zip(bytes[2 * skip..].chunks_exact(2)) {
            // A run's indexes were written by an owner of the class's blocks; clamping keeps
            // even a corrupted one inside the class.
            *index = u16::from_le_bytes([slot[0], slot[1]]).min(self.blocks() as u16 - 1);
        }
    }

    /// Copies `count` indexes run `from` carries, from position `skip` on, to the start of
    /// block `to`'s bytes, making `to` a run of `count + 1`. The caller owns both (distinct)
    /// blocks.
    fn move_run(&self, from: u16, skip: usize, to: u16, count: usize) {
        if count == 0 {
            return;
        }
        // SAFETY: the caller owns both blocks, which are distinct (a run never holds its own
        // first block), and holds no other reference to their bytes.
        let (source, target) = unsafe { (self.block(usize::from(from)), self.block(usize::from(to))) };
        target[..2 * count].copy_from_slice(&source[2 * skip..2 * (skip + count)]);
    }

    /// Gives back the nodes `first` .. `last`, already linked from one to the next, holding
    /// `count` blocks in all, with `last` leading a run of `last_run`.
    fn give_nodes(&self, first: u16, last: u16, last_run: usize, count: usize) {
        let (first, last) = (usize::from(first), usize::from(last));
        let head = &self.state.head;
        let mut current = head.load(Ordering::Relaxed);
        loop {
            let state = Head::unpack(current);
            self.links[last].store(link_word(last, state.first_free, last_run));
            let given =
                Head { first_free: first, in_use: state.in_use - count, tag: state.tag.wrapping_add(1) };
            match head.compare_exchange_weak(current, given.pack(), Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back the blocks `indexes` (owned by the caller) as runs, with one compare-and-swap.
    fn give(&self, indexes: &[u16]) {
        let Some(&first) = indexes.first() else { return };
        let mut runs = indexes.chunks(self.max_run()).peekable();
        let mut last = (first, 1);
        while let Some(run) = runs.next() {
            self.write_run(run[0], &run[1..]);
            match runs.peek() {
                Some(next) => {
                    let index = usize::from(run[0]);
                    self.links[index].store(link_word(index, usize::from(next[0]), run.len()));
                }
                None => last = (run[0], run.len()),
            }
        }
        self.give_nodes(first, last.0, last.1, indexes.len());
    }

    /// One block, or `None` when the class is exhausted (counted).
    #[inline]
    fn alloc(&'p self) -> Option<Buf<'p>> {
        let index = self.take_one()?;
        Some(self.buf(index))
    }

    /// `take` for one block, without its walk when the top node is a single block.
    fn take_one(&self) -> Option<u16> {
        let head = &self.state.head;
        let blocks = self.blocks();
        let mut current = head.load(Ordering::Acquire);
        loop {
            let state = Head::unpack(current);
            let index = state.first_free;
            if index >= blocks {
                self.state.failed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            // If another thread takes `index` meanwhile, this read may be stale; the CAS below
            // then fails on the changed tag and we retry.
            let (next, run) = link_parts(index, self.links[index].load(), blocks);
            if run > 1 {
                let mut one = [0u16];
                return (self.take(&mut one) == 1).then_some(one[0]);
            }
            let taken = Head { first_free: next, in_use: state.in_use + 1, tag: state.tag.wrapping_add(1) };
            match head.compare_exchange_weak(current, taken.pack(), Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => {
                    let in_use = taken.in_use as u32;
                    if in_use > self.state.high_water.load(Ordering::Relaxed) {
                        self.state.high_water.fetch_max(in_use, Ordering::Relaxed);
                    }
                    return Some(index as u16);
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// The buffer over block `index`, which the caller owns and hands over to it.
    #[inline]
    fn buf(&'p self, index: u16) -> Buf<'p> {
        let index = usize::from(index);
        // SAFETY: the caller owns block `index` and gives it to the `Buf`, which becomes its
        // only owner.
        let block = unsafe { self.block(index) };
        Buf { class: self, index, block, head: 0, len: 0 }
    }

    fn stats(&self) -> ClassStats {
        ClassStats {
            block_size: self.block_size,
            blocks: self.blocks(),
            in_use: Head::unpack(self.state.head.load(Ordering::Relaxed)).in_use,
            high_water: self.state.high_water.load(Ordering::Relaxed) as usize,
            failed: self.state.failed.load(Ordering::Relaxed),
        }
    }

    /// Reserves up to `cap` rounds for a new magazine from the budget; 0 when magazines are off
    /// or the budget is spent.
    fn reserve(&self, cap: usize) -> usize {
        let want = self.rounds.min(cap);
        if want < 2 {
            return 0;
        }
        let mut got = 0;
        let _ = self.state.reserved.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |reserved| {
            got = want.min(self.budget.saturating_sub(reserved as usize));
            if got < 2 {
                got = 0;
                return None;
            }
            Some(reserved + got as u32)
        });
        got
    }

    fn unreserve(&self, rounds: usize) {
        if rounds > 0 {
            self.state.reserved.fetch_sub(rounds as u32, Ordering::Relaxed);
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
    /// Blocks out of the free list now: in buffers, or cached by magazines (which only their
    /// owners can count: [`Magazine::held`]).
    pub in_use: usize,
    /// The most blocks ever out of the free list at once: how close the class came to
    /// running dry.
    pub high_water: usize,
    /// Allocations refused because every block was out of the free list.
    pub failed: u32,
}

/// A pool of `N` size classes, smallest first.
pub struct BufPool<'p, const N: usize> {
    classes: [Class<'p>; N],
    oversize: CounterU32,
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
        BufPool { classes, oversize: CounterU32::new(0) }
    }

    /// The smallest class that fits `min_len`, or `None` (counted) when none does.
    fn class_for(&self, min_len: usize) -> Option<usize> {
        let found = self.classes.iter().position(|c| c.block_size >= min_len);
        if found.is_none() {
            self.oversize.fetch_add(1, Ordering::Relaxed);
        }
        found
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
        class.alloc()
    }

    /// The classes, smallest first.
    pub fn classes(&self) -> &[Class<'p>; N] {
        &self.classes
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

mod buf;
mod magazine;

pub use buf::Buf;
pub use magazine::Magazine;

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_model;
