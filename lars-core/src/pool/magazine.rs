//! [`Magazine`]: a cache of free blocks in front of every class of a pool, for one owner
//! (`pool` layer; safe code over the pool's own operations).

use core::fmt;

use super::*;

/// One class's cache inside a [`Magazine`].
struct Rack<const CAP: usize> {
    /// Whether the rounds were reserved yet (on first use).
    asked: bool,
    /// The most blocks this rack may hold, reserved from the class's budget; 0 passes through.
    rounds: usize,
    len: usize,
    /// `blocks[..len]`, oldest first.
    blocks: [u16; CAP],
}

impl<const CAP: usize> Rack<CAP> {
    const EMPTY: Rack<CAP> = Rack { asked: false, rounds: 0, len: 0, blocks: [0; CAP] };
}

/// A cache of free blocks in front of every class of a pool, for one owner: see the module
/// docs. `CAP` bounds what it holds per class (and so its size: `2 * CAP` bytes per class);
/// each class's [`rounds`](Class::with_magazines) and budget bound it further.
///
/// ```
/// use lars_core::pool::{BufPool, Magazine, Slab};
///
/// static SMALL: Slab<256, 64> = Slab::new();
/// static POOL: BufPool<'static, 1> = BufPool::new([SMALL.class().with_magazines(8, 16)]);
///
/// let mut magazine: Magazine<'_, 1, 8> = Magazine::new(&POOL);
/// let buf = magazine.alloc(100).unwrap(); // takes a batch of 4 from the free list
/// assert_eq!(magazine.held(), [3]);
/// magazine.free(buf); // back into the magazine, not the free list
/// assert_eq!(magazine.held(), [4]);
/// assert_eq!(POOL.stats()[0].in_use, 4, "out of the free list, in the magazine");
/// drop(magazine); // gives its blocks back
/// assert_eq!(POOL.stats()[0].in_use, 0);
/// ```
pub struct Magazine<'p, const N: usize, const CAP: usize> {
    pool: &'p BufPool<'p, N>,
    racks: [Rack<CAP>; N],
}

impl<'p, const N: usize, const CAP: usize> Magazine<'p, N, CAP> {
    /// An empty magazine in front of `pool`. It reserves its rounds of a class the first time
    /// it uses that class.
    pub const fn new(pool: &'p BufPool<'p, N>) -> Self {
        Magazine { pool, racks: [const { Rack::EMPTY }; N] }
    }

    /// The pool behind the magazine.
    pub fn pool(&self) -> &'p BufPool<'p, N> {
        self.pool
    }

    fn rack(&mut self, class: usize) -> &mut Rack<CAP> {
        let rack = &mut self.racks[class];
        if !rack.asked {
            rack.asked = true;
            rack.rounds = self.pool.classes[class].reserve(CAP);
        }
        rack
    }

    /// As [`BufPool::alloc`], from the magazine's cache, which takes a batch of half its rounds
    /// from the free list when it is empty. `None` (counted) when the class is exhausted.
    pub fn alloc(&mut self, min_len: usize) -> Option<Buf<'p>> {
        let pool = self.pool;
        let index = pool.class_for(min_len)?;
        let class = &pool.classes[index];
        let rack = self.rack(index);
        if rack.len == 0 {
            if rack.rounds == 0 {
                return class.alloc();
            }
            let batch = rack.rounds / 2;
            rack.len = class.take(&mut rack.blocks[..batch]);
            if rack.len == 0 {
                return None;
            }
        }
        rack.len -= 1;
        Some(class.buf(rack.blocks[rack.len]))
    }

    /// Takes `buf` back into the cache, which gives its older half back to the free list when
    /// it is full. A buffer of another pool just drops (back to its own).
    pub fn free(&mut self, buf: Buf<'p>) {
        let pool = self.pool;
        let Some(index) = pool.classes.iter().position(|c| ptr::eq(c, buf.class)) else {
            drop(buf);
            return;
        };
        let class = &pool.classes[index];
        let rack = self.rack(index);
        if rack.rounds == 0 {
            drop(buf);
            return;
        }
        if rack.len >= rack.rounds {
            let half = rack.rounds / 2;
            class.give(&rack.blocks[..half]);
            rack.blocks.copy_within(half..rack.len, 0);
            rack.len -= half;
        }
        // The block moves from the buffer to the rack: forget the buffer, whose drop would give
        // the block to the free list too.
        let buf = ManuallyDrop::new(buf);
        rack.blocks[rack.len] = buf.index as u16;
        rack.len += 1;
    }

    /// Blocks cached now, per class.
    #[inline]
    pub fn held(&self) -> [usize; N] {
        self.racks.each_ref().map(|rack| rack.len)
    }

    /// The rounds this magazine holds of each class's budget (0 before its first use of the
    /// class, or when the budget was spent).
    pub fn rounds(&self) -> [usize; N] {
        self.racks.each_ref().map(|rack| rack.rounds)
    }

    /// Gives every cached block back to the free list (one compare-and-swap per class); the
    /// magazine keeps its rounds and goes on caching.
    pub fn flush(&mut self) {
        for (rack, class) in self.racks.iter_mut().zip(&self.pool.classes) {
            class.give(&rack.blocks[..rack.len]);
            rack.len = 0;
        }
    }
}

impl<const N: usize, const CAP: usize> Drop for Magazine<'_, N, CAP> {
    /// Gives every cached block back, and the rounds back to the budgets.
    fn drop(&mut self) {
        self.flush();
        for (rack, class) in self.racks.iter_mut().zip(&self.pool.classes) {
            class.unreserve(rack.rounds);
            rack.rounds = 0;
        }
    }
}

impl<const N: usize, const CAP: usize> fmt::Debug for Magazine<'_, N, CAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Magazine").field("held", &self.held()).field("rounds", &self.rounds()).finish()
    }
}
