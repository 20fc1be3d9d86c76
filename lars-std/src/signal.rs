//! SIGINT and SIGTERM as something an event loop or a thread can wait on.
//!
//! The handler (from `signal-hook`) writes a byte into a socket pair; the read side can be
//! registered with an [`crate::reactor::EventLoop`], or waited on directly.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;

/// The read side of the signal pipe.
pub struct Shutdown {
    read: UnixStream,
}

impl Shutdown {
    /// Installs handlers for SIGINT and SIGTERM.
    pub fn install() -> io::Result<Shutdown> {
        let (read, write) = UnixStream::pair()?;
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
        }
        Ok(Shutdown { read })
    }

    /// Blocks until a signal arrives.
    pub fn wait(&mut self) -> io::Result<()> {
        let mut byte = [0u8; 1];
        self.read.set_nonblocking(false)?;
        loop {
            match self.read.read(&mut byte) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The socket to register with an event loop; readable once a signal arrived.
    pub fn as_socket(&self) -> &UnixStream {
        &self.read
    }
}
