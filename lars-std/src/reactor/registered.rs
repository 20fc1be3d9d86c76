//! [`Registered`]: a source registered with a poller, and the reactor's one `unsafe` call.
//!
//! `polling` requires every source to be deleted from the poller before it is closed (epoll
//! would otherwise keep reporting a closed fd, or a later fd reusing its number). `Registered`
//! owns the source and makes that impossible to get wrong: it deletes the source in `Drop`,
//! before the source itself drops and closes, and never hands out `&mut S`, through which the
//! source could be replaced by another.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;

use polling::{PollMode, Poller};

use super::{EventLoop, Interest};

/// A source registered with a poller. Owns the source so that it is deleted from the poller
/// before it closes, and hands out only shared references so that it cannot be swapped out.
pub struct Registered<S: AsFd> {
    source: S,
    poller: Arc<Poller>,
    key: usize,
}

impl<S: AsFd> Registered<S> {
    /// Registers `source` under `key`, level-triggered.
    pub fn new(
        event_loop: &EventLoop<impl Sized>,
        source: S,
        key: usize,
        interest: Interest,
    ) -> io::Result<Self> {
        let poller = Arc::clone(event_loop.poller());
        // SAFETY: `polling` requires the source to be deleted from the poller before it is
        // closed. `Registered` owns `source`, never gives out `&mut S` (which could replace it),
        // and deletes it in `Drop` before the field itself is dropped and closed.
        unsafe { poller.add_with_mode(source.as_fd().as_raw_fd(), interest.event(key), PollMode::Level)? };
        Ok(Registered { source, poller, key })
    }

    /// Changes what the source is polled for.
    pub fn set_interest(&self, interest: Interest) -> io::Result<()> {
        self.poller.modify_with_mode(self.source.as_fd(), interest.event(self.key), PollMode::Level)
    }

    /// The source.
    pub fn get(&self) -> &S {
        &self.source
    }

    /// The key it is registered under.
    pub fn key(&self) -> usize {
        self.key
    }
}

impl<S: AsFd> Drop for Registered<S> {
    fn drop(&mut self) {
        // Nothing useful to do if the poller refuses: the fd closes right after either way.
        let _ = self.poller.delete(self.source.as_fd());
    }
}
