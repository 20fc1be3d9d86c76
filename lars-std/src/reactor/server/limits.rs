//! What a server's `max_conns` needs from the process, checked before it starts: pool buffers
//! for every connection, and file descriptors.
//!
//! Each open connection can hold two small blocks at once (its input, and output the peer has
//! not read yet), and the threads' magazines may keep a quarter of the class out of reach of
//! other threads, so `max_conns` may be at most three eighths of the small blocks: past that,
//! connections that each hold a few bytes of a header could take every block and stall the
//! others. Each connection is also a file descriptor: a soft `RLIMIT_NOFILE` too low is raised
//! (as far as the hard limit allows, and said on stderr); one the hard limit cannot back is
//! refused.

use std::io;

use crate::pool::PoolConfig;

/// Small blocks one connection can hold at once.
const BLOCKS_PER_CONN: usize = 2;
/// File descriptors a server and its process need besides their connections: the listener,
/// each worker's poller, notifier and timer, the store's connections, files and logs.
const SPARE_FDS: u64 = 64;
const FDS_PER_THREAD: u64 = 4;

/// The most connections `pool` can back.
pub(crate) fn conns_backed_by(pool: &PoolConfig) -> usize {
    let usable = pool.small_blocks - pool.small_blocks / 4;
    usable / BLOCKS_PER_CONN
}

/// Refuses a `max_conns` that the pool cannot back.
pub(super) fn check_pool(max_conns: usize, pool: &PoolConfig) -> io::Result<()> {
    let backed = conns_backed_by(pool);
    if max_conns <= backed {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "maxConn {max_conns} is more than the buffer pool can back ({backed} with [pool] \
             smallBlocks = {}: each connection may hold {BLOCKS_PER_CONN} small blocks and the \
             threads' magazines up to a quarter of them); raise [pool] smallBlocks to at least {} \
             or lower maxConn",
            pool.small_blocks,
            (max_conns * BLOCKS_PER_CONN).div_ceil(3) * 4,
        ),
    ))
}

/// Makes sure the process may open `max_conns` connections beside what `threads` workers and
/// the rest of the process need: raises the soft `RLIMIT_NOFILE` if it is lower (saying so),
/// and refuses a `max_conns` the hard limit cannot back.
pub(super) fn ensure_fds(max_conns: usize, threads: usize) -> io::Result<()> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let needed = max_conns as u64 + threads as u64 * FDS_PER_THREAD + SPARE_FDS;
    let limit = getrlimit(Resource::Nofile);
    let (soft, hard) = (limit.current.unwrap_or(u64::MAX), limit.maximum.unwrap_or(u64::MAX));
    if soft >= needed {
        return Ok(());
    }
    if hard < needed {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "maxConn {max_conns} needs {needed} file descriptors, more than this process's hard \
                 RLIMIT_NOFILE ({hard}); raise it (ulimit -Hn, LimitNOFILE= in systemd) or lower maxConn"
            ),
        ));
    }
    let raised = rustix::process::Rlimit { current: Some(needed), maximum: limit.maximum };
    setrlimit(Resource::Nofile, raised).map_err(io::Error::from)?;
    log::info!(
        "raised the soft RLIMIT_NOFILE from {soft} to {needed} for maxConn {max_conns} \
         (the hard limit is {hard})"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pool_backs_three_eighths_of_its_small_blocks() {
        let pool = PoolConfig::default();
        assert_eq!(conns_backed_by(&pool), 3072);
        assert!(check_pool(3072, &pool).is_ok());
        let error = check_pool(8400, &pool).unwrap_err().to_string();
        assert!(error.starts_with("maxConn 8400 is more than the buffer pool can back (3072"), "{error}");
        let suggested = PoolConfig { small_blocks: 22400, ..pool };
        assert!(error.contains("at least 22400"), "{error}");
        assert!(check_pool(8400, &suggested).is_ok());
    }
}
