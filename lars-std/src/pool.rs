//! The process-wide buffer pool: every connection's input and output buffers come from here.
//!
//! Two classes: by default 8,192 blocks of 4 KiB for the common case (requests, replies, small
//! routes) and 512 of 64 KiB, enough for the largest frame (65,535 bytes). A daemon sizes them
//! from its config's `[pool]` section ([`PoolConfig`], read by
//! [`crate::daemon::load_config`]) before anything allocates; a process that never configures
//! the pool gets the defaults on first use. The storage is allocated zeroed once, when the pool
//! is built, and never freed, so it costs address space, not memory, until used. When a class
//! runs out, allocation fails and the reactor stops reading from the connection that asked until
//! buffers come back (backpressure), and counts it in [`ClassUse::failed`].
//!
//! Each thread that uses the pool (a server's workers, the agent's loop) gets a
//! [`Magazine`] of its own, in a thread-local: [`alloc`] and
//! [`recycle`] work on it and touch the shared free list only once per batch (half the
//! magazine's rounds), so threads on different cores do not take turns at the free list's head
//! on every request. What the magazines may hold is bounded: 32 small and 8 large blocks per
//! thread by default, and a quarter of each class for all threads together (a thread that finds
//! that budget spent uses the free list directly). A thread's magazine goes back to the pool
//! when the thread ends. A buffer that is dropped rather than recycled goes straight back to the
//! free list.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use lars_core::pool::{Buf, BufPool, Class, ClassState, Link, MAX_BLOCKS, Magazine};

use crate::config::{ConfigError, Ini};

/// Bytes per small block by default; the reactor asks for a block of this size to read into,
/// so the small class is never smaller.
pub const SMALL: usize = 4096;
/// Bytes per large block by default: a whole frame of the largest size fits.
pub const LARGE: usize = 65536;
/// The most blocks a thread's magazine may cache of one class.
pub const MAGAZINE_CAP: usize = 64;
/// The most bytes of storage one class may take.
pub const MAX_CLASS_BYTES: usize = 16 << 30;

/// The pool's sizing: the `[pool]` section of a daemon's config.
///
/// ```ini
/// [pool]
/// # Bytes per small block (at least 4096) and how many (1 to 65535).
/// smallSize = 4096
/// smallBlocks = 8192
/// # Bytes per large block (more than smallSize, and room for the largest frame the daemon
/// # accepts, 65535 bytes) and how many.
/// largeSize = 65536
/// largeBlocks = 512
/// # Blocks of each class one thread may cache: 0 (none) or 2 to 64. All threads together
/// # cache at most a quarter of a class.
/// smallMagazine = 32
/// largeMagazine = 8
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// `smallSize`: bytes per small block.
    pub small_size: usize,
    /// `smallBlocks`: small blocks.
    pub small_blocks: usize,
    /// `largeSize`: bytes per large block.
    pub large_size: usize,
    /// `largeBlocks`: large blocks.
    pub large_blocks: usize,
    /// `smallMagazine`: small blocks each thread may cache.
    pub small_magazine: usize,
    /// `largeMagazine`: large blocks each thread may cache.
    pub large_magazine: usize,
}

impl Default for PoolConfig {
    /// The sizes the pool had before it was configurable.
    fn default() -> Self {
        PoolConfig {
            small_size: SMALL,
            small_blocks: 8192,
            large_size: LARGE,
            large_blocks: 512,
            small_magazine: 32,
            large_magazine: 8,
        }
    }
}

impl PoolConfig {
    /// The keys of `[pool]`, for [`Ini::apply_env`].
    pub const KEYS: [(&'static str, &'static str); 6] = [
        ("pool", "smallSize"),
        ("pool", "smallBlocks"),
        ("pool", "largeSize"),
        ("pool", "largeBlocks"),
        ("pool", "smallMagazine"),
        ("pool", "largeMagazine"),
    ];

    /// Reads `[pool]`, every key defaulting to [`PoolConfig::default`], and checks it:
    /// `largest_frame` is the largest frame (header included) the daemon accepts, which a large
    /// block must hold. An error names the file, the line and the key.
    pub fn from_ini(ini: &Ini, largest_frame: usize) -> Result<PoolConfig, ConfigError> {
        let d = PoolConfig::default();
        let config = PoolConfig {
            small_size: ini.get("pool", "smallSize", d.small_size)?,
            small_blocks: ini.get("pool", "smallBlocks", d.small_blocks)?,
            large_size: ini.get("pool", "largeSize", d.large_size)?,
            large_blocks: ini.get("pool", "largeBlocks", d.large_blocks)?,
            small_magazine: ini.get("pool", "smallMagazine", d.small_magazine)?,
            large_magazine: ini.get("pool", "largeMagazine", d.large_magazine)?,
        };
        config.check(largest_frame).map_err(|(keys, message)| {
            // Blame the first of the keys involved that the config sets.
            let key = keys.iter().find(|key| ini.get_str("pool", key).is_some()).unwrap_or(&keys[0]);
            ini.error("pool", key, message)
        })?;
        Ok(config)
    }

    /// What is wrong, as `(keys involved, message)`.
    fn check(&self, largest_frame: usize) -> Result<(), (&'static [&'static str], String)> {
        if self.small_size < SMALL {
            let message = format!("must be at least {SMALL}: the reactor reads into blocks of {SMALL} bytes");
            return Err((&["smallSize"], message));
        }
        if self.large_size <= self.small_size {
            let message = format!(
                "largeSize ({}) must be larger than smallSize ({})",
                self.large_size, self.small_size
            );
            return Err((&["largeSize", "smallSize"], message));
        }
        if self.large_size < largest_frame {
            let message = format!("must hold the largest frame the daemon accepts ({largest_frame} bytes)");
            return Err((&["largeSize"], message));
        }
        let classes: [(&'static [&'static str], usize, usize); 2] = [
            (&["smallBlocks", "smallSize"], self.small_size, self.small_blocks),
            (&["largeBlocks", "largeSize"], self.large_size, self.large_blocks),
        ];
        for (keys, size, blocks) in classes {
            if !(1..=MAX_BLOCKS).contains(&blocks) {
                return Err((&keys[..1], format!("must be from 1 to {MAX_BLOCKS}")));
            }
            if size.checked_mul(blocks).is_none_or(|bytes| bytes > MAX_CLASS_BYTES) {
                let message =
                    format!("{blocks} blocks of {size} bytes are more than {MAX_CLASS_BYTES} bytes");
                return Err((keys, message));
            }
        }
        let magazines: [(&'static [&'static str], usize); 2] =
            [(&["smallMagazine"], self.small_magazine), (&["largeMagazine"], self.large_magazine)];
        for (keys, rounds) in magazines {
            if rounds == 1 || rounds > MAGAZINE_CAP {
                return Err((keys, format!("must be 0 (no magazines) or from 2 to {MAGAZINE_CAP}")));
            }
        }
        Ok(())
    }
}

/// [`configure`] came after the pool was built with another sizing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadySized(pub PoolConfig);

impl fmt::Display for AlreadySized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the buffer pool was already in use, sized {:?}", self.0)
    }
}

impl std::error::Error for AlreadySized {}

struct Built {
    config: PoolConfig,
    pool: BufPool<'static, 2>,
}

static POOL: OnceLock<Built> = OnceLock::new();

/// Set by [`configure`]: the pool was sized from a configuration, not made on first use.
static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// Builds the pool over storage leaked once: `config` must have passed `check`.
fn build(config: PoolConfig) -> Built {
    fn class(size: usize, blocks: usize, rounds: usize) -> Class<'static> {
        let state = Box::leak(Box::new(ClassState::new()));
        let links = Box::leak((0..blocks).map(|_| Link::new()).collect::<Box<[Link]>>());
        // Zeroed by the allocator (fresh pages from the system), so untouched blocks cost no
        // memory.
        let bytes = Box::leak(vec![0u8; size * blocks].into_boxed_slice());
        let class = Class::over(state, links, bytes).expect("a checked pool config");
        class.with_magazines(rounds, blocks / 4)
    }
    let pool = BufPool::new([
        class(config.small_size, config.small_blocks, config.small_magazine),
        class(config.large_size, config.large_blocks, config.large_magazine),
    ]);
    Built { config, pool }
}

fn built() -> &'static Built {
    POOL.get_or_init(|| build(PoolConfig::default()))
}

/// Sizes the pool. It must come before the first allocation (a daemon calls it while it reads
/// its config); after it, only the same sizing is accepted.
pub fn configure(config: PoolConfig) -> Result<(), AlreadySized> {
    CONFIGURED.store(true, Ordering::Relaxed);
    let built = POOL.get_or_init(|| build(config));
    if built.config == config { Ok(()) } else { Err(AlreadySized(built.config)) }
}

/// Whether this process sized its pool from a configuration (a daemon does as it reads its
/// configuration; lars-web, which frames nothing, never does). A pool made on first use, by
/// [`stats`] for instance, does not count.
pub fn configured() -> bool {
    CONFIGURED.load(Ordering::Relaxed)
}

/// The pool's sizing (the default until [`configure`]d).
pub fn config() -> PoolConfig {
    built().config
}

type ThreadMagazine = Magazine<'static, 2, MAGAZINE_CAP>;

/// What each thread's magazine holds, published for [`stats`] (only the thread writes it).
type Holdings = [AtomicUsize; 2];

/// Every live thread's holdings.
static HOLDINGS: Mutex<Vec<Arc<Holdings>>> = Mutex::new(Vec::new());

/// A thread's magazine, and where it publishes what it holds.
struct Local {
    magazine: ThreadMagazine,
    holdings: Arc<Holdings>,
}

impl Local {
    fn new() -> Local {
        let holdings = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        HOLDINGS.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::clone(&holdings));
        Local { magazine: Magazine::new(&built().pool), holdings }
    }

    fn publish(&self) {
        let [small, large] = self.magazine.held();
        self.holdings[0].store(small, Ordering::Relaxed);
        self.holdings[1].store(large, Ordering::Relaxed);
    }
}

impl Drop for Local {
    /// The thread is ending: its blocks go back to the pool (and its rounds to the budgets
    /// when the magazine drops next).
    fn drop(&mut self) {
        self.magazine.flush();
        self.publish();
        HOLDINGS.lock().unwrap_or_else(|e| e.into_inner()).retain(|h| !Arc::ptr_eq(h, &self.holdings));
    }
}

std::thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::new());
}

/// An empty buffer of at least `min_len` bytes, or `None` when that class is exhausted (or no
/// class is large enough).
pub fn alloc(min_len: usize) -> Option<Buf<'static>> {
    // `try_with` fails only while the thread is ending: the pool is then used directly.
    LOCAL
        .try_with(|local| {
            let mut local = local.borrow_mut();
            let buf = local.magazine.alloc(min_len);
            local.publish();
            buf
        })
        .unwrap_or_else(|_| built().pool.alloc(min_len))
}

/// Gives back a buffer that is no longer needed, into this thread's magazine (whose older half
/// goes back to the pool when it is full). Dropping a buffer gives it back too, straight to the
/// pool's free list.
pub fn recycle(buf: Buf<'static>) {
    // While the thread is ending the closure does not run, and the buffer drops into the pool.
    let _ = LOCAL.try_with(move |local| {
        let mut local = local.borrow_mut();
        local.magazine.free(buf);
        local.publish();
    });
}

/// The use of one class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassUse {
    /// Bytes per block.
    pub block_size: usize,
    /// Blocks in the class.
    pub blocks: usize,
    /// Blocks in buffers now.
    pub in_use: usize,
    /// Blocks cached in the threads' magazines now.
    pub cached: usize,
    /// The most blocks ever out of the free list at once (in buffers or magazines): how close
    /// the class came to running dry.
    pub high_water: usize,
    /// Allocations refused because every block was out of the free list.
    pub failed: u32,
}

/// The use of both classes, small first. Taken while other threads allocate, the figures are
/// a moment's and may be off by what moved meanwhile; they are exact when the pool is still.
pub fn stats() -> [ClassUse; 2] {
    let pool = &built().pool;
    let mut cached = [0usize; 2];
    for holdings in HOLDINGS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        for (total, held) in cached.iter_mut().zip(holdings.iter()) {
            *total += held.load(Ordering::Relaxed);
        }
    }
    let classes = pool.stats();
    [0, 1].map(|i| {
        let class = classes[i];
        ClassUse {
            block_size: class.block_size,
            blocks: class.blocks,
            in_use: class.in_use.saturating_sub(cached[i]),
            cached: cached[i].min(class.in_use),
            high_water: class.high_water,
            failed: class.failed,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_threads_magazine_serves_it_and_goes_back_when_it_ends() {
        std::thread::spawn(|| {
            let mut buf = alloc(100).unwrap();
            buf.append(b"stale");
            let index = buf.block_index();
            recycle(buf);
            let large = alloc(SMALL + 1).unwrap();
            assert_eq!(large.capacity(), LARGE, "a large request gets a large block");
            let (other_thread, cached_there) = std::thread::spawn(|| {
                let buf = alloc(1).unwrap();
                (buf.block_index(), stats()[0].cached)
            })
            .join()
            .unwrap();
            assert_ne!(other_thread, index, "a magazine's blocks are its thread's alone");
            assert!(cached_there >= 31, "both threads' magazines are counted: {cached_there}");
            let again = alloc(1).unwrap();
            assert_eq!(again.block_index(), index, "the recycled block comes back first");
            assert!(again.is_empty(), "a recycled block comes back empty");
            recycle(large);
            assert!(stats()[1].cached >= 1);
            let mine = stats();
            assert!(mine[0].in_use >= 1 && mine[0].cached >= 15, "{mine:?}");
        })
        .join()
        .unwrap();
    }

    fn parse(text: &str) -> Result<PoolConfig, ConfigError> {
        PoolConfig::from_ini(&Ini::parse(text, Path::new("lars_dns.conf")).unwrap(), 65535)
    }

    #[test]
    fn the_pool_section_defaults_to_the_old_sizes_and_is_checked() {
        assert_eq!(parse("[reactor]\nport = 1\n"), Ok(PoolConfig::default()));
        assert_eq!(
            PoolConfig::default(),
            PoolConfig {
                small_size: 4096,
                small_blocks: 8192,
                large_size: 65536,
                large_blocks: 512,
                small_magazine: 32,
                large_magazine: 8
            }
        );
        let custom =
            parse("[pool]\nsmallSize = 8192\nsmallBlocks = 100\nlargeBlocks = 10\nlargeMagazine = 0\n");
        assert_eq!(
            custom,
            Ok(PoolConfig {
                small_size: 8192,
                small_blocks: 100,
                large_blocks: 10,
                large_magazine: 0,
                ..PoolConfig::default()
            })
        );
        let error = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            error("[pool]\n\nsmallSize = 1024\n"),
            "lars_dns.conf:3: key `pool.smallSize`: must be at least 4096: the reactor reads into blocks of 4096 bytes"
        );
        assert_eq!(
            error("[pool]\nlargeSize = 60000\n"),
            "lars_dns.conf:2: key `pool.largeSize`: must hold the largest frame the daemon accepts (65535 bytes)"
        );
        assert_eq!(
            error("[pool]\nsmallSize = 131072\nlargeSize = 131072\n"),
            "lars_dns.conf:3: key `pool.largeSize`: largeSize (131072) must be larger than smallSize (131072)"
        );
        assert_eq!(
            error("[pool]\nlargeBlocks = 0\n"),
            "lars_dns.conf:2: key `pool.largeBlocks`: must be from 1 to 65535"
        );
        assert_eq!(
            error("[pool]\nsmallBlocks = 70000\n"),
            "lars_dns.conf:2: key `pool.smallBlocks`: must be from 1 to 65535"
        );
        assert_eq!(
            error("[pool]\nlargeSize = 16777216\nlargeBlocks = 2048\n"),
            "lars_dns.conf:3: key `pool.largeBlocks`: 2048 blocks of 16777216 bytes are more than 17179869184 bytes"
        );
        assert_eq!(
            error("[pool]\nsmallMagazine = 65\n"),
            "lars_dns.conf:2: key `pool.smallMagazine`: must be 0 (no magazines) or from 2 to 64"
        );
        assert_eq!(
            error("[pool]\nsmallBlocks = many\n"),
            "lars_dns.conf:2: key `pool.smallBlocks`: `many` is not a number in the range of usize"
        );
        // A key left at its default that fails a check against one that is set: the error
        // names the one that is set.
        let mut ini = Ini::parse("[pool]\nsmallSize = 65536\n", Path::new("a.conf")).unwrap();
        assert_eq!(
            PoolConfig::from_ini(&ini, 65535).unwrap_err().to_string(),
            "a.conf:2: key `pool.smallSize`: largeSize (65536) must be larger than smallSize (65536)"
        );
        ini.apply_env([("LARS_POOL_LARGESIZE".into(), "131072".into())], &PoolConfig::KEYS).unwrap();
        assert_eq!(PoolConfig::from_ini(&ini, 65535).unwrap().large_size, 131072);
    }

    #[test]
    fn configuring_after_first_use_takes_only_the_same_sizing() {
        let current = config();
        assert_eq!(configure(current), Ok(()));
        let other = PoolConfig { small_blocks: current.small_blocks - 1, ..current };
        assert_eq!(configure(other), Err(AlreadySized(current)));
    }
}
