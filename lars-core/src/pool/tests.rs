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

#[test]
fn link_words_round_trip() {
    for (index, next, run) in [(0, 1, 1), (5, 0, 3), (MAX_BLOCKS - 1, MAX_BLOCKS, 1 << 16), (7, 7 + 1, 2)] {
        assert_eq!(link_parts(index, link_word(index, next, run), MAX_BLOCKS), (next, run));
    }
    assert_eq!(link_parts(3, 0, 10), (4, 1), "a zero link is the next block, alone");
    assert_eq!(link_parts(9, 0, 10), (10, 1), "the last block's zero link is the end");
}

/// Marks blocks owned, failing on a block handed out twice.
struct Owners(Vec<AtomicBool>);

impl Owners {
    fn new(blocks: usize) -> Owners {
        Owners((0..blocks).map(|_| AtomicBool::new(false)).collect())
    }

    fn take(&self, buf: &Buf<'_>) {
        let was = self.0[buf.block_index()].swap(true, Ordering::AcqRel);
        assert!(!was, "block {} handed out twice", buf.block_index());
    }

    fn give(&self, buf: &Buf<'_>) {
        let was = self.0[buf.block_index()].swap(false, Ordering::AcqRel);
        assert!(was, "block {} given back twice", buf.block_index());
    }
}

/// Every block of class 0 of `pool` is free again: all of them can be taken, once each.
fn all_free<const N: usize>(pool: &BufPool<'_, N>) {
    let stats = pool.stats()[0];
    assert_eq!(stats.in_use, 0, "every block came back");
    let all: Vec<_> = (0..stats.blocks).map(|_| pool.alloc(1).expect("every block free")).collect();
    let mut indexes: Vec<_> = all.iter().map(Buf::block_index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..stats.blocks).collect::<Vec<_>>());
    assert!(pool.alloc(1).is_none());
}

#[test]
fn a_magazine_takes_and_gives_back_in_batches() {
    static SLAB: Slab<64, 32> = Slab::new();
    static POOL: BufPool<'static, 1> = BufPool::new([SLAB.class().with_magazines(8, 16)]);
    let mut magazine: Magazine<'_, 1, 8> = Magazine::new(&POOL);
    assert_eq!(magazine.rounds(), [0], "rounds are reserved on first use");

    let first = magazine.alloc(10).unwrap();
    assert_eq!(magazine.rounds(), [8]);
    assert_eq!(magazine.held(), [3], "a batch of half the rounds, one handed out");
    assert_eq!(POOL.stats()[0].in_use, 4);
    let mut bufs: Vec<_> = (0..3).map(|_| magazine.alloc(10).unwrap()).collect();
    assert_eq!(magazine.held(), [0]);
    assert_eq!(POOL.stats()[0].in_use, 4, "served from the magazine alone");
    bufs.push(magazine.alloc(10).unwrap());
    assert_eq!(POOL.stats()[0].in_use, 8, "a second batch");
    bufs.push(first);
    bufs.extend((0..3).map(|_| magazine.alloc(10).unwrap()));
    assert_eq!(bufs.len(), 8);
    let mut indexes: Vec<_> = bufs.iter().map(Buf::block_index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), 8, "no block twice");

    // Freeing fills the magazine up to its rounds, then its older half goes back as one run.
    for buf in bufs.drain(..) {
        magazine.free(buf);
    }
    assert_eq!(magazine.held(), [8]);
    assert_eq!(POOL.stats()[0].in_use, 8);
    let extra = POOL.alloc(1).unwrap();
    magazine.free(extra);
    assert_eq!(magazine.held(), [5], "4 given back, then the new one kept");
    assert_eq!(POOL.stats()[0].in_use, 5);

    magazine.flush();
    assert_eq!(magazine.held(), [0]);
    assert_eq!(magazine.rounds(), [8], "a flush keeps the rounds");
    assert_eq!(POOL.stats()[0].in_use, 0);
    drop(magazine);
    all_free(&POOL);
    assert_eq!(POOL.stats()[0].failed, 1, "all_free's last try");
}

#[test]
fn plain_allocations_split_the_runs_magazines_give_back() {
    static SLAB: Slab<64, 16> = Slab::new();
    static POOL: BufPool<'static, 1> = BufPool::new([SLAB.class().with_magazines(16, 16)]);
    let mut magazine: Magazine<'_, 1, 16> = Magazine::new(&POOL);
    let bufs: Vec<_> = (0..16).map(|_| magazine.alloc(1).unwrap()).collect();
    assert!(magazine.alloc(1).is_none(), "exhausted");
    assert_eq!(POOL.stats()[0].failed, 1);
    let mut written = Vec::new();
    for (i, mut buf) in bufs.into_iter().enumerate() {
        buf.append(&[i as u8; 64]);
        written.push(buf.block_index());
        magazine.free(buf);
    }
    // 16 frees into 16 rounds: nothing went back yet; a flush gives all 16 as one run.
    assert_eq!(magazine.held(), [16]);
    magazine.flush();
    // Plain allocations take the run apart one block at a time.
    let owners = Owners::new(16);
    let taken: Vec<_> = (0..16).map(|_| POOL.alloc(1).expect("the run is split")).collect();
    for buf in &taken {
        owners.take(buf);
    }
    assert!(POOL.alloc(1).is_none());
    assert_eq!(POOL.stats()[0].high_water, 16);
    drop(taken);
    drop(magazine);
    all_free(&POOL);
}

#[test]
fn the_budget_bounds_what_all_magazines_hold() {
    static SLAB: Slab<64, 40> = Slab::new();
    static POOL: BufPool<'static, 1> = BufPool::new([SLAB.class().with_magazines(8, 10)]);
    let mut a: Magazine<'_, 1, 8> = Magazine::new(&POOL);
    let mut b: Magazine<'_, 1, 8> = Magazine::new(&POOL);
    let mut c: Magazine<'_, 1, 8> = Magazine::new(&POOL);
    let bufs = [a.alloc(1).unwrap(), b.alloc(1).unwrap(), c.alloc(1).unwrap()];
    assert_eq!((a.rounds(), b.rounds(), c.rounds()), ([8], [2], [0]), "8 + 2 of a budget of 10");
    assert_eq!(c.held(), [0], "the third passes through");
    let [x, y, z] = bufs;
    c.free(z);
    assert_eq!(c.held(), [0]);
    assert_eq!(POOL.stats()[0].in_use, 4 + 1 + 1 - 1);
    // Fill every magazine: together they never hold more than the budget.
    let many: Vec<_> = (0..30).filter_map(|_| POOL.alloc(1)).collect();
    for (i, buf) in many.into_iter().enumerate() {
        match i % 3 {
            0 => a.free(buf),
            1 => b.free(buf),
            _ => c.free(buf),
        }
    }
    assert!(a.held()[0] <= 8 && b.held()[0] <= 2 && c.held()[0] == 0);
    drop(a);
    let mut d: Magazine<'_, 1, 8> = Magazine::new(&POOL);
    d.free(x);
    assert_eq!(d.rounds(), [8], "a dropped magazine's rounds go back to the budget");
    drop((y, b, c, d));
    all_free(&POOL);
}

#[test]
fn a_magazine_sends_other_pools_buffers_home() {
    static A: Slab<64, 4> = Slab::new();
    static B: Slab<64, 4> = Slab::new();
    static POOL_A: BufPool<'static, 1> = BufPool::new([A.class().with_magazines(4, 4)]);
    static POOL_B: BufPool<'static, 1> = BufPool::new([B.class().with_magazines(4, 4)]);
    let mut magazine: Magazine<'_, 1, 4> = Magazine::new(&POOL_A);
    magazine.free(POOL_B.alloc(1).unwrap());
    assert_eq!(magazine.held(), [0]);
    assert_eq!(POOL_B.stats()[0].in_use, 0, "back in its own pool");
    assert!(magazine.alloc(65).is_none());
    assert_eq!(POOL_A.oversize_requests(), 1);
}

#[test]
fn classes_over_run_time_storage() {
    let mut state = ClassState::new();
    let mut links: Vec<Link> = (0..3).map(|_| Link::new()).collect();
    let mut bytes = std::vec![0u8; 3 * 100];
    assert!(Class::over(&mut ClassState::new(), &mut [], &mut [0u8; 4]).is_none());
    assert!(Class::over(&mut ClassState::new(), &mut [Link::new(), Link::new()], &mut [0u8; 5]).is_none());
    assert!(Class::over(&mut ClassState::new(), &mut [Link::new()], &mut []).is_none());
    let class = Class::over(&mut state, &mut links, &mut bytes).unwrap().with_magazines(2, 2);
    assert_eq!((class.block_size(), class.blocks(), class.rounds(), class.budget()), (100, 3, 2, 2));
    let pool = BufPool::new([class]);
    {
        let mut magazine: Magazine<'_, 1, 2> = Magazine::new(&pool);
        let mut a = magazine.alloc(100).unwrap();
        a.append(b"run-time");
        let b = pool.alloc(1).unwrap();
        assert_eq!(a.data(), b"run-time");
        magazine.free(a);
        drop(b);
        let _hold = pool.alloc(1).unwrap();
    }
    all_free(&pool);
    // Reused storage starts over (the first pool's borrow ended with its last use): the links and the counters are reset.
    let class = Class::over(&mut state, &mut links, &mut bytes).unwrap();
    let pool = BufPool::new([class]);
    assert_eq!(
        pool.stats()[0],
        ClassStats { block_size: 100, blocks: 3, in_use: 0, high_water: 0, failed: 0 }
    );
    all_free(&pool);
}

#[test]
fn tiny_blocks_give_back_several_short_runs() {
    // 2-byte blocks carry one index each: a run is at most 2 blocks.
    static SLAB: Slab<2, 12> = Slab::new();
    static POOL: BufPool<'static, 1> = BufPool::new([SLAB.class().with_magazines(12, 12)]);
    let mut magazine: Magazine<'_, 1, 12> = Magazine::new(&POOL);
    let bufs: Vec<_> = (0..12).map(|_| magazine.alloc(1).unwrap()).collect();
    for buf in bufs {
        magazine.free(buf);
    }
    magazine.flush();
    assert_eq!(POOL.stats()[0].in_use, 0);
    let again: Vec<_> = (0..12).map(|_| magazine.alloc(1).unwrap()).collect();
    let mut indexes: Vec<_> = again.iter().map(Buf::block_index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..12).collect::<Vec<_>>(), "one batch takes several runs");
    drop(again);
    drop(magazine);
    all_free(&POOL);
}

#[test]
fn threads_with_magazines_hand_buffers_over_and_return_every_one() {
    const BLOCKS: usize = 64;
    const ROUNDS: usize = 50_000;
    static SLAB: Slab<64, BLOCKS> = Slab::new();
    static POOL: BufPool<'static, 1> = BufPool::new([SLAB.class().with_magazines(8, 24)]);
    let owners = Owners::new(BLOCKS);
    let handed = std::sync::atomic::AtomicUsize::new(0);
    let start = std::sync::Barrier::new(4);
    let (to_next, from_prev): (Vec<_>, Vec<_>) =
        (0..4).map(|_| std::sync::mpsc::sync_channel::<Buf<'static>>(4)).unzip();
    let mut from_prev: Vec<_> = from_prev.into_iter().map(Some).collect();
    std::thread::scope(|scope| {
        for thread in 0..4usize {
            let to_next = to_next[(thread + 1) % 4].clone();
            let from_prev = from_prev[thread].take().unwrap();
            let (owners, handed, start) = (&owners, &handed, &start);
            scope.spawn(move || {
                start.wait();
                // Thread 3 allocates plainly. The budget covers three magazines: one of the
                // four passes through.
                let mut magazine: Magazine<'_, 1, 8> = Magazine::new(&POOL);
                let mut held: Vec<(Buf<'static>, [u8; 2])> = Vec::new();
                for round in 0..ROUNDS {
                    let buf = if thread == 3 { POOL.alloc(64) } else { magazine.alloc(64) };
                    if let Some(mut buf) = buf {
                        owners.take(&buf);
                        let stamp = [thread as u8, round as u8];
                        buf.append(&stamp);
                        held.push((buf, stamp));
                    }
                    while let Ok(mut buf) = from_prev.try_recv() {
                        // Handed over: the stamp stays the sender's.
                        assert_eq!(buf.len(), 2);
                        handed.fetch_add(1, Ordering::Relaxed);
                        buf.clear();
                        owners.give(&buf);
                        match round % 3 {
                            0 => drop(buf),
                            _ => magazine.free(buf),
                        }
                    }
                    if held.len() > 3 || (round % 5 == 0 && !held.is_empty()) {
                        let (buf, stamp) = held.remove(0);
                        assert_eq!(buf.data(), stamp, "someone else wrote into our block");
                        // Ownership passes with a buffer handed over: the receiver gives it up. A
                        // receiver that is not running (4 threads share 2 cores here) must not
                        // gather the whole pool in its queue, so the queue is short.
                        let buf = if round % 2 == 0 {
                            Err(buf)
                        } else {
                            to_next.try_send(buf).map_err(|e| match e {
                                std::sync::mpsc::TrySendError::Full(buf)
                                | std::sync::mpsc::TrySendError::Disconnected(buf) => buf,
                            })
                        };
                        if let Err(buf) = buf {
                            owners.give(&buf);
                            magazine.free(buf);
                        }
                    }
                }
                for (buf, stamp) in held {
                    assert_eq!(buf.data(), stamp);
                    owners.give(&buf);
                }
                drop(to_next);
                // Whatever is still in flight to us.
                for buf in from_prev.iter() {
                    handed.fetch_add(1, Ordering::Relaxed);
                    owners.give(&buf);
                }
            });
        }
        drop(to_next);
    });
    assert!(handed.load(Ordering::Relaxed) > 0, "buffers were handed over");
    assert_eq!(POOL.stats()[0].in_use, 0, "the magazines gave everything back as their threads ended");
    all_free(&POOL);
}
