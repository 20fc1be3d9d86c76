//! The signals a Linux daemon answers, as something an event loop or a thread can wait on.
//!
//! - SIGINT and SIGTERM: stop cleanly ([`Signal::Stop`]).
//! - SIGHUP: read the configuration file again ([`Signal::Reload`]); what can change while
//!   running (the log level and format) takes effect, and a changed key that needs a restart
//!   is named in the log.
//! - SIGUSR1: write the daemon's counters to the log ([`Signal::Report`]).
//!
//! Each handler (from `signal-hook`) sets the flag of its kind and then writes a byte into a
//! socket pair; the read side can be registered with an [`crate::reactor::EventLoop`], or waited
//! on directly. Until [`Shutdown::install`] runs, SIGHUP and SIGUSR1 keep their default action
//! (the process ends), so a daemon installs it before it reads its configuration.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A signal a daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: stop.
    Stop,
    /// SIGHUP: read the configuration again.
    Reload,
    /// SIGUSR1: log the counters.
    Report,
}

/// The read side of the signal pipe, and which signals arrived.
pub struct Shutdown {
    read: UnixStream,
    /// Indexed like [`KINDS`].
    flags: [Arc<AtomicBool>; 3],
}

/// The signals behind each [`Signal`], in the order [`Shutdown::next`] reports them.
const KINDS: [(Signal, &[i32]); 3] = [
    (Signal::Stop, &[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]),
    (Signal::Reload, &[signal_hook::consts::SIGHUP]),
    (Signal::Report, &[signal_hook::consts::SIGUSR1]),
];

impl Shutdown {
    /// Installs handlers for SIGINT, SIGTERM, SIGHUP and SIGUSR1.
    pub fn install() -> io::Result<Shutdown> {
        let (read, write) = UnixStream::pair()?;
        let flags: [Arc<AtomicBool>; 3] = Default::default();
        for ((_, signals), flag) in KINDS.iter().zip(&flags) {
            for &signal in *signals {
                // The flag first: actions run in the order they were registered, so the
                // reader that the byte wakes finds the flag set.
                signal_hook::flag::register(signal, Arc::clone(flag))?;
                signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
            }
        }
        Ok(Shutdown { read, flags })
    }

    /// Blocks until SIGINT or SIGTERM arrives; other signals are taken and ignored.
    pub fn wait(&mut self) -> io::Result<()> {
        while self.next(None)? != Some(Signal::Stop) {}
        Ok(())
    }

    /// The next signal, waiting at most `timeout` (for ever with `None`); `None` when the
    /// time is up. A stop is reported before anything else that arrived with it.
    pub fn next(&mut self, timeout: Option<Duration>) -> io::Result<Option<Signal>> {
        loop {
            if let Some(signal) = self.take() {
                return Ok(Some(signal));
            }
            self.read.set_nonblocking(false)?;
            self.read.set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))?;
            let mut bytes = [0u8; 64];
            match self.read.read(&mut bytes) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(self.take());
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn take(&self) -> Option<Signal> {
        KINDS
            .iter()
            .zip(&self.flags)
            .find(|(_, flag)| flag.swap(false, Ordering::AcqRel))
            .map(|((s, _), _)| *s)
    }

    /// The socket to register with an event loop; readable once a signal arrived (then call
    /// [`Shutdown::next`] with a zero timeout to learn which).
    pub fn as_socket(&self) -> &UnixStream {
        &self.read
    }
}
