//! The pool's model test: loom explores every interleaving (up to a preemption bound) of
//! magazines refilling and flushing against the Treiber stack, plain allocations splitting the
//! runs they give back, and buffers handed between threads. Each checks that no block is ever
//! owned twice (an owner flag per block, and a stamp written by each owner and checked before it
//! lets go) and that every block is back at the end.
//!
//! Run by `cargo xtask test`; by hand:
//! `RUSTFLAGS="--cfg loom" cargo test -p lars-core --lib --release pool::loom_model`.

use std::boxed::Box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::vec::Vec;

use loom::sync::{Arc, Mutex};
use loom::thread;

use super::*;

/// A one-class pool of `blocks` blocks of 16 bytes, leaked (loom needs `'static` threads, and
/// the pool's atomics must be created inside each run of the model).
fn pool(blocks: usize, rounds: usize, budget: usize) -> &'static BufPool<'static, 1> {
    let state = Box::leak(Box::new(ClassState::new()));
    let links = Box::leak((0..blocks).map(|_| Link::new()).collect::<Vec<_>>().into_boxed_slice());
    let bytes = Box::leak(std::vec![0u8; blocks * 16].into_boxed_slice());
    let class = Class::over(state, links, bytes).unwrap().with_magazines(rounds, budget);
    Box::leak(Box::new(BufPool::new([class])))
}

/// Owner flags, one per block.
struct Owners(Vec<AtomicBool>);

impl Owners {
    fn new(blocks: usize) -> &'static Owners {
        Box::leak(Box::new(Owners((0..blocks).map(|_| AtomicBool::new(false)).collect())))
    }

    /// Takes ownership of `buf`'s block and stamps it with `stamp`.
    fn take(&self, buf: &mut Buf<'_>, stamp: u8) {
        assert!(
            !self.0[buf.block_index()].swap(true, Ordering::SeqCst),
            "block {} owned twice",
            buf.block_index()
        );
        buf.clear();
        buf.append(&[stamp; 4]);
    }

    /// Checks the stamp and gives ownership up.
    fn give(&self, buf: &Buf<'_>, stamp: u8) {
        assert_eq!(buf.data(), [stamp; 4], "block {} written by another owner", buf.block_index());
        assert!(
            self.0[buf.block_index()].swap(false, Ordering::SeqCst),
            "block {} not owned",
            buf.block_index()
        );
    }
}

/// Every block is back in the free list, and each can be taken exactly once.
fn all_back(pool: &BufPool<'_, 1>) {
    let stats = pool.stats()[0];
    assert_eq!(stats.in_use, 0, "every block came back");
    let all: Vec<_> = (0..stats.blocks).map(|_| pool.alloc(1).expect("every block free")).collect();
    let mut indexes: Vec<_> = all.iter().map(Buf::block_index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..stats.blocks).collect::<Vec<_>>());
    assert!(pool.alloc(1).is_none());
}

fn model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(test);
}

#[test]
fn a_magazine_refills_and_flushes_while_another_thread_allocates_plainly() {
    model(|| {
        let pool = pool(5, 4, 4);
        let owners = Owners::new(5);
        let plain = thread::spawn(move || {
            // Plain allocations: one may meet and split the run the magazine gives back.
            let mut a = pool.alloc(1).unwrap();
            owners.take(&mut a, 1);
            let mut b = pool.alloc(1);
            if let Some(b) = &mut b {
                owners.take(b, 2);
            }
            owners.give(&a, 1);
            drop(a);
            if let Some(b) = b {
                owners.give(&b, 2);
            }
        });
        let mut magazine: Magazine<'_, 1, 4> = Magazine::new(pool);
        // A batch of 2 from the free list, both handed out, both back in the cache, then
        // given back as one run, and a batch taken again.
        let mut x = magazine.alloc(1).unwrap();
        owners.take(&mut x, 3);
        let mut y = magazine.alloc(1);
        if let Some(y) = &mut y {
            owners.take(y, 4);
        }
        owners.give(&x, 3);
        magazine.free(x);
        if let Some(y) = y {
            owners.give(&y, 4);
            magazine.free(y);
        }
        magazine.flush();
        if let Some(mut z) = magazine.alloc(1) {
            owners.take(&mut z, 5);
            owners.give(&z, 5);
            magazine.free(z);
        }
        drop(magazine);
        plain.join().unwrap();
        all_back(pool);
    });
}

#[test]
fn two_magazines_take_and_give_back_batches_concurrently() {
    model(|| {
        let pool = pool(4, 2, 4);
        let owners = Owners::new(4);
        let other = thread::spawn(move || {
            let mut magazine: Magazine<'_, 1, 2> = Magazine::new(pool);
            if let Some(mut a) = magazine.alloc(1) {
                owners.take(&mut a, 1);
                owners.give(&a, 1);
                magazine.free(a);
            }
            // Over the rounds: the older block goes back to the free list.
            if let Some(mut b) = pool.alloc(1) {
                owners.take(&mut b, 2);
                owners.give(&b, 2);
                magazine.free(b);
            }
        });
        let mut magazine: Magazine<'_, 1, 2> = Magazine::new(pool);
        if let Some(mut c) = magazine.alloc(1) {
            owners.take(&mut c, 3);
            owners.give(&c, 3);
            magazine.free(c);
        }
        drop(magazine);
        other.join().unwrap();
        all_back(pool);
    });
}

#[test]
fn a_buffer_allocated_on_one_thread_is_freed_into_anothers_magazine() {
    model(|| {
        let pool = pool(3, 2, 4);
        let owners = Owners::new(3);
        let slot: Arc<Mutex<Option<Buf<'static>>>> = Arc::new(Mutex::new(None));
        let receiver = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || {
                let mut magazine: Magazine<'_, 1, 2> = Magazine::new(pool);
                let handed = slot.lock().unwrap().take();
                if let Some(buf) = handed {
                    owners.give(&buf, 1);
                    magazine.free(buf);
                }
                if let Some(mut own) = magazine.alloc(1) {
                    owners.take(&mut own, 2);
                    owners.give(&own, 2);
                    magazine.free(own);
                }
            })
        };
        let mut magazine: Magazine<'_, 1, 2> = Magazine::new(pool);
        let mut buf = magazine.alloc(1).unwrap();
        owners.take(&mut buf, 1);
        let left = slot.lock().unwrap().replace(buf);
        assert!(left.is_none());
        if let Some(mut again) = magazine.alloc(1) {
            owners.take(&mut again, 3);
            owners.give(&again, 3);
            drop(again);
        }
        drop(magazine);
        receiver.join().unwrap();
        // Not taken by the receiver: handed back here.
        if let Some(buf) = slot.lock().unwrap().take() {
            owners.give(&buf, 1);
        }
        all_back(pool);
    });
}
