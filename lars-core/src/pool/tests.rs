//! Pool tests: cursors, exhaustion and recovery, counters, and a multi-threaded stress run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::vec::Vec;

use super::*;

#[test]
fn picks_the_smallest_class_that_fits_and_never_falls_back() {
    static SMALL: Slab<64, 2> = Slab::new();
    static LARGE: Slab<1024, 1> = Slab::new();
    static POOL: BufPool<'static, 2> = BufPool::new([SMALL.class(), LARGE.class()]);

    let a = POOL.alloc(1).unwrap();
    let b = POOL.alloc(64).unwrap();
    assert_eq!((a.capacity(), b.capacity()), (64, 64));
    assert_ne!(a.block_index(), b.block_index());
    assert!(POOL.alloc(10).is_none(), "small class exhausted: no fallback to the large class");
    let c = POOL.alloc(65).unwrap();
    assert_eq!(c.capacity(), 1024);
    assert!(POOL.alloc(65).is_none());
    assert!(POOL.alloc(1025).is_none());

    let [small, large] = POOL.stats();
    assert_eq!(small, ClassStats { block_size: 64, blocks: 2, in_use: 2, high_water: 2, failed: 1 });
    assert_eq!(large, ClassStats { block_size: 1024, blocks: 1, in_use: 1, high_water: 1, failed: 1 });
    assert_eq!(POOL.oversize_requests(), 1);

    drop((a, b, c));
    let [small, large] = POOL.stats();
    assert_eq!((small.in_use, small.high_water, large.in_use), (0, 2, 0));
    // Recovery: the freed blocks come back.
    let again: Vec<_> = (0..2).map(|_| POOL.alloc(8).unwrap()).collect();
    assert_eq!(again.len(), 2);
}

#[test]
fn cursors_consume_compact_and_append() {
    static SLAB: Slab<8, 1> = Slab::new();
    static POOL: BufPool<'static, 1> = BufPool::new([SLAB.class()]);
    let mut buf = POOL.alloc(8).unwrap();
    assert_eq!(buf.append(b"abcdef"), 6);
    buf.consume(4);
    assert_eq!(buf.data(), b"ef");
    assert_eq!(buf.spare_mut().len(), 2);
    // Appending more than the spare space compacts first.
    assert_eq!(buf.append(b"ghijklmn"), 6);
    assert_eq!(buf.data(), b"efghijkl");
    assert_eq!(buf.append(b"x"), 0);
    buf.consume(100);
    assert!(buf.is_empty());
    assert_eq!(buf.spare_mut().len(), 8, "an emptied buffer restarts at the front");
    buf.spare_mut()[..3].copy_from_slice(b"xyz");
    buf.commit(100);
    assert_eq!(buf.len(), 8, "commit clamps to the block");
    buf.clear();
    buf.commit(3);
    assert_eq!(buf.data(), b"xyz");
    buf.data_mut()[0] = b'X';
    assert_eq!(buf.data(), b"Xyz");
}

#[test]
fn reused_blocks_come_back_in_lifo_order() {
    static SLAB: Slab<16, 3> = Slab::new();
    static POOL: BufPool<'static, 1> = BufPool::new([SLAB.class()]);
    let bufs: Vec<_> = (0..3).map(|_| POOL.alloc(1).unwrap()).collect();
    assert_eq!(bufs.iter().map(Buf::block_index).collect::<Vec<_>>(), [0, 1, 2]);
    drop(bufs);
    // Freed in order 0, 1, 2: block 2 is now first.
    assert_eq!(POOL.alloc(1).unwrap().block_index(), 2);
}

#[test]
fn four_threads_never_share_a_block_and_return_every_one() {
    const BLOCKS: usize = 8;
    const ROUNDS: usize = 100_000;
    static SLAB: Slab<64, BLOCKS> = Slab::new();
    static POOL: BufPool<'static, 1> = BufPool::new([SLAB.class()]);
    static OWNED: [AtomicBool; BLOCKS] = [const { AtomicBool::new(false) }; BLOCKS];

    std::thread::scope(|scope| {
        for thread in 0..4u8 {
            scope.spawn(move || {
                let mut held = Vec::new();
                for round in 0..ROUNDS {
                    if let Some(mut buf) = POOL.alloc(64) {
                        let was_owned = OWNED[buf.block_index()].swap(true, Ordering::AcqRel);
                        assert!(!was_owned, "block {} handed out twice", buf.block_index());
                        let stamp = [thread, round as u8];
                        buf.append(&stamp);
                        held.push((buf, stamp));
                    }
                    // Hold up to two blocks, so that the pool runs dry now and then.
                    if held.len() > 2 || (round % 3 == 0 && !held.is_empty()) {
                        let (buf, stamp) = held.remove(0);
                        assert_eq!(buf.data(), stamp, "someone else wrote into our block");
                        OWNED[buf.block_index()].store(false, Ordering::Release);
                        drop(buf);
                    }
                }
                for (buf, stamp) in held {
                    assert_eq!(buf.data(), stamp);
                    OWNED[buf.block_index()].store(false, Ordering::Release);
                }
            });
        }
    });

    let [stats] = POOL.stats();
    assert_eq!(stats.in_use, 0, "every block came back");
    assert!(stats.high_water <= BLOCKS);
    let all: Vec<_> = (0..BLOCKS).map(|_| POOL.alloc(1).expect("all blocks free again")).collect();
    let mut indexes: Vec<_> = all.iter().map(Buf::block_index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..BLOCKS).collect::<Vec<_>>());
    assert!(POOL.alloc(1).is_none());
}

#[test]
fn head_word_round_trips() {
    let head = Head { first_free: MAX_BLOCKS, in_use: 3, tag: 12345 };
    let back = Head::unpack(head.pack());
    assert_eq!((back.first_free, back.in_use, back.tag), (MAX_BLOCKS, 3, 12345));
}
