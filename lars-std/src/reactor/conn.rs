//! A framed, non-blocking TCP connection whose buffers come from the pool.
//!
//! Reading: one `read` per readiness event into a pooled input buffer (4 KiB, or 64 KiB when a
//! frame needs it), then every whole frame is split off in place and handed to the handler. The
//! buffer goes back to the pool as soon as it is empty, so idle connections hold none.
//!
//! Writing: a reply is written at once, encoded on the stack when it is small and nothing is
//! queued, otherwise into a pooled buffer. When one read brought several frames, their replies
//! are gathered on the stack (up to 4 KiB) and go out in one write after the last of them is
//! handled. Only what the socket does not take stays queued (in a pooled buffer), and the
//! connection asks for writability until it drains.
//!
//! Backpressure: while output is queued the connection stops reading (and stops handling frames
//! it has already read), so a peer that does not read its replies cannot make us queue without
//! bound. When the pool has no buffer for input, reading pauses until the owner retries
//! ([`FramedConn::is_starved`]). A frame with a bad header closes the connection, after the
//! replies to the frames before it.
//!
//! The large-block reserve: a frame too large for a small block needs a large one, and a peer
//! that sends only part of it would hold that block until the rest comes (or its body timeout).
//! Peers whose frame is still on its way hold at most half of the large class together
//! ([`SlowHold`]); a frame whose every byte has already reached the socket (`FIONREAD`) is
//! read at once and its block freed as soon as it is handled, so it may use the other half.
//! Slow peers then wait for each other, never for a whole frame, and never take the blocks
//! that output needs.
//!
//! Closing: a server connection that closes with output queued can drain it first
//! ([`FramedConn::start_drain`], then [`FramedConn::drain`]), so that a last reply is not cut
//! off mid-frame. When to drain is the server's close protocol (`server/state.rs`); this type
//! only moves the bytes.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};

use lars_core::pool::Buf;
use lars_core::wire::{Encode, Error, Frame, MsgId, frame};

use super::{Interest, Registered};
use crate::pool;

/// Frames up to this size (header included) are encoded on the stack when nothing is queued.
const INLINE_FRAME: usize = 512;
/// Replies to the frames of one read are gathered up to this many bytes per write.
const BATCH_BYTES: usize = 4096;
/// A whole frame of the largest size.
const LARGEST_FRAME: usize = frame::HEADER_LEN + frame::MAX_BODY as usize;

/// Large blocks held, in all connections of the process, by frames still on their way.
static SLOW_HOLDS: AtomicUsize = AtomicUsize::new(0);

/// Large pool blocks held now, by every connection of the process, for frames that have not
/// all arrived: at most half the large class.
pub fn slow_holds() -> usize {
    SLOW_HOLDS.load(Ordering::Relaxed)
}

/// A connection's right to hold a large input block for a frame that has not all arrived: at
/// most half the large class is held so. Given back when dropped.
#[derive(Debug)]
struct SlowHold(());

impl SlowHold {
    fn take() -> Option<SlowHold> {
        let limit = (pool::config().large_blocks / 2).max(1);
        SLOW_HOLDS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| (held < limit).then_some(held + 1))
            .ok()
            .map(|_| SlowHold(()))
    }
}

impl Drop for SlowHold {
    fn drop(&mut self) {
        SLOW_HOLDS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side.
    PeerClosed,
    /// A read or write failed (reset, broken pipe...).
    Io(io::ErrorKind),
    /// The peer sent a frame that does not decode.
    BadFrame(Error),
    /// Output could not be queued: the peer does not read fast enough.
    OutputFull,
    /// The handler asked for it.
    Handler,
    /// The peer took too long: a frame's header or body did not arrive in time, or it sent
    /// nothing for the idle timeout.
    TimedOut(Wait),
}

/// What a connection is waiting for from its peer, which says which timeout applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The next frame: nothing of it has arrived (or whole frames wait for output to drain).
    Idle,
    /// The rest of a frame's 8-byte header.
    Header,
    /// The rest of a frame's body.
    Body,
}

/// What the handler wants after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep going.
    Continue,
    /// Close the connection (once the replies already sent have drained, on a server).
    Close,
}

impl Control {
    /// Go on after a reply that was sent; close after one that could not be (the peer does
    /// not keep up, or the reply does not encode).
    pub fn after(sent: Result<(), SendError>) -> Control {
        if sent.is_ok() { Control::Continue } else { Control::Close }
    }
}

/// Why a frame could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The output queue is full (or the pool has no buffer for it).
    Full,
    /// The message does not encode (too long for a frame).
    Encode(Error),
    /// The connection already failed.
    Broken,
}

/// Queues and writes frames on one connection; handed to handlers.
pub struct Sender<'a> {
    stream: &'a TcpStream,
    output: &'a mut Option<Buf<'static>>,
    broken: &'a mut Option<io::ErrorKind>,
    frames_out: &'a mut u64,
    /// Replies to frames that came in one read, gathered to go out in one write. Holds bytes
    /// only while nothing is queued in `output`.
    batch: Option<&'a mut Batch>,
}

/// Replies gathered on the stack while the frames of one read are handled.
struct Batch {
    bytes: [u8; BATCH_BYTES],
    len: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch { bytes: [0; BATCH_BYTES], len: 0 }
    }
}

/// A whole frame for [`Sender`] to write: encoded on the way out, or encoded already.
trait Outgoing {
    /// The frame's length, header included.
    fn frame_len(&self) -> usize;
    /// Writes the whole frame into `out` and returns its length.
    fn write(&self, out: &mut [u8]) -> Result<usize, Error>;
}

/// A body to frame under its msgid.
struct Encoding<'b, E>(MsgId, &'b E);

impl<E: Encode> Outgoing for Encoding<'_, E> {
    fn frame_len(&self) -> usize {
        frame::HEADER_LEN + self.1.buffer_len()
    }

    fn write(&self, out: &mut [u8]) -> Result<usize, Error> {
        frame::encode(self.0, self.1, out)
    }
}

/// The bytes of one whole frame, checked by [`Sender::send_frame`].
struct Encoded<'b>(&'b [u8]);

impl Outgoing for Encoded<'_> {
    fn frame_len(&self) -> usize {
        self.0.len()
    }

    fn write(&self, out: &mut [u8]) -> Result<usize, Error> {
        let out = out.get_mut(..self.0.len()).ok_or(Error::BufferTooSmall)?;
        out.copy_from_slice(self.0);
        Ok(self.0.len())
    }
}

impl Sender<'_> {
    /// Sends a frame: written at once if nothing is queued and the socket takes it (a reply to
    /// one of several frames from one read goes out with the others' replies, once they are
    /// handled), queued otherwise.
    pub fn send(&mut self, msgid: MsgId, body: &impl Encode) -> Result<(), SendError> {
        self.send_outgoing(&Encoding(msgid, body))
    }

    /// Sends a frame encoded already (by `frame::encode`, as the core's `poll_*` calls write
    /// theirs), as [`Sender::send`] does. `bytes` must be exactly one whole frame, its header's
    /// length matching, and fails with [`SendError::Encode`] otherwise.
    pub fn send_frame(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        Frame::parse_datagram(bytes, frame::MAX_BODY).map_err(SendError::Encode)?;
        self.send_outgoing(&Encoded(bytes))
    }

    fn send_outgoing(&mut self, frame: &impl Outgoing) -> Result<(), SendError> {
        if self.broken.is_some() {
            return Err(SendError::Broken);
        }
        let len = frame.frame_len();
        if len > LARGEST_FRAME {
            return Err(SendError::Encode(Error::TooLong { len: len as u32, max: frame::MAX_BODY }));
        }
        if self.output.is_none()
            && let Some(batch) = self.batch.as_deref_mut()
        {
            if batch.len + len > BATCH_BYTES {
                self.flush_batch()?;
            }
            if let Some(batch) = self.batch.as_deref_mut()
                && self.output.is_none()
                && batch.len + len <= BATCH_BYTES
            {
                batch.len += frame.write(&mut batch.bytes[batch.len..]).map_err(SendError::Encode)?;
                *self.frames_out += 1;
                return Ok(());
            }
        }
        let out = match self.output.take() {
            None if len <= INLINE_FRAME => return self.send_from_stack::<INLINE_FRAME>(frame),
            None => match pool::alloc(len) {
                Some(buf) => buf,
                None => return self.send_from_stack::<LARGEST_FRAME>(frame),
            },
            Some(mut queued) => {
                if queued.spare_mut().len() < len {
                    queued.compact();
                }
                if queued.spare_mut().len() >= len {
                    queued
                } else {
                    // Grow into a large block if that is enough; otherwise the peer is too slow.
                    let needed = queued.len() + len;
                    let bigger = (needed <= pool::LARGE && queued.capacity() < pool::LARGE)
                        .then(|| pool::alloc(needed))
                        .flatten();
                    let Some(mut bigger) = bigger else {
                        *self.output = Some(queued);
                        return Err(SendError::Full);
                    };
                    bigger.append(queued.data());
                    bigger
                }
            }
        };
        let write_now = out.is_empty();
        let mut out = out;
        let written = match frame.write(out.spare_mut()) {
            Ok(written) => written,
            Err(e) => {
                // Keep what was already queued.
                if !out.is_empty() {
                    *self.output = Some(out);
                }
                return Err(SendError::Encode(e));
            }
        };
        out.commit(written);
        *self.frames_out += 1;
        if write_now {
            write_some(self.stream, &mut out, self.broken);
        }
        if out.is_empty() {
            pool::recycle(out);
        } else {
            *self.output = Some(out);
        }
        Ok(())
    }

    /// Sends with nothing queued by encoding on the stack and writing at once: small replies
    /// (the common case) then never touch the pool, and a reply is not lost because other
    /// connections hold every buffer. Only a remainder the socket does not take needs a block;
    /// without one the peer is both slow and unlucky, and the send fails.
    fn send_from_stack<const N: usize>(&mut self, frame: &impl Outgoing) -> Result<(), SendError> {
        let mut scratch = [0u8; N];
        let len = frame.write(&mut scratch).map_err(SendError::Encode)?;
        self.write_or_queue(&scratch[..len])?;
        *self.frames_out += 1;
        Ok(())
    }

    /// Writes the gathered replies.
    fn flush_batch(&mut self) -> Result<(), SendError> {
        let Some(batch) = self.batch.take() else { return Ok(()) };
        let len = std::mem::take(&mut batch.len);
        let result = self.write_or_queue(&batch.bytes[..len]);
        self.batch = Some(batch);
        result
    }

    /// Writes `bytes` (whole frames, with nothing queued) until the socket would block, and
    /// queues the rest in a pooled block.
    fn write_or_queue(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        let mut written = 0;
        while written < bytes.len() {
            match self.stream.write(&bytes[written..]) {
                Ok(0) => {
                    *self.broken = Some(io::ErrorKind::WriteZero);
                    return Err(SendError::Broken);
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    *self.broken = Some(e.kind());
                    return Err(SendError::Broken);
                }
            }
        }
        if written < bytes.len() {
            let Some(mut rest) = pool::alloc(bytes.len() - written) else {
                // Part of a frame is on the wire and the rest has nowhere to go: the stream
                // can no longer be framed, so the connection must close.
                *self.broken = Some(io::ErrorKind::OutOfMemory);
                return Err(SendError::Broken);
            };
            rest.append(&bytes[written..]);
            *self.output = Some(rest);
        }
        Ok(())
    }
}

/// Writes what `out` holds until the socket would block; records a hard error in `broken`.
fn write_some(mut stream: &TcpStream, out: &mut Buf<'static>, broken: &mut Option<io::ErrorKind>) {
    while !out.is_empty() {
        match stream.write(out.data()) {
            Ok(0) => {
                *broken = Some(io::ErrorKind::WriteZero);
                return;
            }
            Ok(n) => out.consume(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                *broken = Some(e.kind());
                return;
            }
        }
    }
}

/// A framed connection registered with an event loop.
pub struct FramedConn {
    stream: Registered<TcpStream>,
    input: Option<Buf<'static>>,
    /// Held while `input` is a large block holding a frame that has not all arrived.
    slow: Option<SlowHold>,
    output: Option<Buf<'static>>,
    max_body: u32,
    interest: Interest,
    starved: bool,
    broken: Option<io::ErrorKind>,
    frames_in: u64,
    frames_out: u64,
}

impl FramedConn {
    /// Wraps a registered, non-blocking stream polled for reading; frames over `max_body`
    /// close it.
    pub fn new(stream: Registered<TcpStream>, max_body: u32) -> Self {
        FramedConn {
            stream,
            input: None,
            slow: None,
            output: None,
            max_body: max_body.min(frame::MAX_BODY),
            interest: Interest::READABLE,
            starved: false,
            broken: None,
            frames_in: 0,
            frames_out: 0,
        }
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        self.stream.get()
    }

    /// Frames received and sent so far.
    pub fn frame_counts(&self) -> (u64, u64) {
        (self.frames_in, self.frames_out)
    }

    /// Whether reading is paused because the pool had no buffer; call
    /// [`FramedConn::on_ready`] again later to retry.
    pub fn is_starved(&self) -> bool {
        self.starved
    }

    /// What the connection waits for from its peer, from the input it holds.
    pub fn waiting_for(&self) -> Wait {
        let Some(input) = &self.input else { return Wait::Idle };
        let data = input.data();
        if data.is_empty() {
            return Wait::Idle;
        }
        match Frame::peek_header(data, self.max_body) {
            Ok(None) => Wait::Header,
            Ok(Some(header)) if data.len() < header.frame_len() => Wait::Body,
            // A whole frame, held while output drains, or a bad header about to close it.
            _ => Wait::Idle,
        }
    }

    /// Bytes queued for the peer.
    pub fn queued_output(&self) -> usize {
        self.output.as_ref().map_or(0, Buf::len)
    }

    /// Whether output is queued that can still be written (the connection is not broken).
    pub fn has_output(&self) -> bool {
        self.output.is_some() && self.broken.is_none()
    }

    /// Stops reading for good, to write out what is queued before a close: input already read
    /// goes back to the pool, and from now on only [`FramedConn::drain`] drives the connection.
    pub fn start_drain(&mut self) -> Result<(), CloseReason> {
        self.release_input();
        // Readable too, to discard what the peer still sends.
        self.set_interest(Interest::BOTH)
    }

    /// Handles readiness while draining: writes queued output and discards input. Returns
    /// whether the output is all written; fails if the connection broke.
    pub fn drain(&mut self, readable: bool, writable: bool) -> Result<bool, CloseReason> {
        if writable {
            self.write_queued();
        }
        if let Some(kind) = self.broken {
            return Err(CloseReason::Io(kind));
        }
        if readable {
            self.discard_input();
        }
        Ok(self.output.is_none())
    }

    /// Reads and drops what the peer sent and we will not handle (up to 64 KB), so that the
    /// close that follows sends a FIN rather than a reset, which could make the peer's kernel
    /// drop replies it has not handed to the peer yet.
    pub fn discard_input(&mut self) {
        let mut scratch = [0u8; 4096];
        for _ in 0..16 {
            match self.stream.get().read(&mut scratch) {
                Ok(1..) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => return,
            }
        }
    }

    /// A sender for frames not prompted by the peer (pushes). Call [`FramedConn::after_send`]
    /// when done.
    pub fn sender(&mut self) -> Sender<'_> {
        Sender {
            stream: self.stream.get(),
            output: &mut self.output,
            broken: &mut self.broken,
            frames_out: &mut self.frames_out,
            batch: None,
        }
    }

    /// Settles the connection after [`FramedConn::sender`] was used: fails if a write broke it,
    /// and polls for writability if output is queued.
    pub fn after_send(&mut self) -> Result<(), CloseReason> {
        self.update_interest()
    }

    /// Handles readiness: flushes queued output, handles frames already read, then reads once
    /// more if nothing is queued, and handles the new frames. `handle` gets each whole frame.
    pub fn on_ready(
        &mut self,
        writable: bool,
        readable: bool,
        mut handle: impl FnMut(Frame<'_>, &mut Sender<'_>) -> Control,
    ) -> Result<(), CloseReason> {
        if writable {
            self.write_queued();
        }
        if let Some(kind) = self.broken {
            return Err(CloseReason::Io(kind));
        }
        self.handle_buffered(&mut handle)?;
        if (readable || self.starved) && self.output.is_none() {
            self.read_once()?;
            self.handle_buffered(&mut handle)?;
        }
        self.update_interest()
    }

    /// Writes queued output until the socket would block; the buffer goes back to the pool once
    /// empty. A hard error is recorded in `broken`.
    fn write_queued(&mut self) {
        if let Some(out) = &mut self.output {
            write_some(self.stream.get(), out, &mut self.broken);
            if out.is_empty()
                && let Some(out) = self.output.take()
            {
                pool::recycle(out);
            }
        }
    }

    /// Reads once into the input buffer, growing it when a frame needs more room.
    fn read_once(&mut self) -> Result<(), CloseReason> {
        let input = match self.input.take() {
            Some(buf) => buf,
            None => match pool::alloc(pool::SMALL) {
                Some(buf) => buf,
                None => {
                    self.starved = true;
                    return self.check_alive();
                }
            },
        };
        let mut input = input;
        let needed = Frame::peek_header(input.data(), self.max_body)
            .map_err(CloseReason::BadFrame)?
            .map(|h| h.frame_len());
        if let Some(needed) = needed
            && needed > input.capacity()
        {
            // The reserve: a frame that has not all reached the socket needs a slow hold.
            let arrived = input.len() as u64 + rustix::io::ioctl_fionread(self.stream.get()).unwrap_or(0);
            let slow = if arrived >= needed as u64 { None } else { SlowHold::take() };
            let bigger = if arrived >= needed as u64 || slow.is_some() { pool::alloc(needed) } else { None };
            let Some(mut bigger) = bigger else {
                self.input = Some(input);
                self.starved = true;
                return self.check_alive();
            };
            bigger.append(input.data());
            pool::recycle(std::mem::replace(&mut input, bigger));
            self.slow = slow;
        }
        if input.spare_mut().is_empty() {
            input.compact();
        }
        self.starved = false;
        let result = loop {
            match self.stream.get().read(input.spare_mut()) {
                Ok(0) => break Err(CloseReason::PeerClosed),
                Ok(n) => {
                    input.commit(n);
                    break Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) => break Err(CloseReason::Io(e.kind())),
            }
        };
        self.input = Some(input);
        if self.input.as_ref().is_some_and(Buf::is_empty) {
            self.release_input();
        }
        result
    }

    /// Gives the input buffer back to the pool, and its slow hold if it had one.
    fn release_input(&mut self) {
        if let Some(input) = self.input.take() {
            pool::recycle(input);
        }
        self.slow = None;
    }

    /// After frames were handled: a large input block that still holds part of a frame and
    /// has no slow hold (it came for a whole frame, and the next one began behind it) takes
    /// one, or moves what it holds to a small block when that is enough, so that no large
    /// block waits on a slow peer outside the reserve's half.
    fn settle_large_input(&mut self) {
        let Some(input) = &self.input else { return };
        if self.slow.is_some() || input.capacity() <= pool::SMALL || self.waiting_for() == Wait::Idle {
            return;
        }
        if let Some(slow) = SlowHold::take() {
            self.slow = Some(slow);
        } else if input.len() <= pool::SMALL
            && let Some(mut small) = pool::alloc(input.len().max(1))
            && small.capacity() <= pool::SMALL
        {
            small.append(input.data());
            if let Some(large) = self.input.replace(small) {
                pool::recycle(large);
            }
        }
    }

    /// While starved, epoll still reports errors and hang-ups (they cannot be masked), so a
    /// peer that resets would wake us forever: check for a pending error and peek one byte to
    /// tell a live peer from a gone one.
    fn check_alive(&self) -> Result<(), CloseReason> {
        // A reset leaves unread data readable, so ask for the pending error first.
        if let Ok(Err(errno)) = rustix::net::sockopt::socket_error(self.stream.get()) {
            return Err(CloseReason::Io(io::Error::from(errno).kind()));
        }
        match self.stream.get().peek(&mut [0u8; 1]) {
            Ok(0) => Err(CloseReason::PeerClosed),
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(()),
            Err(e) => Err(CloseReason::Io(e.kind())),
        }
    }

    /// Hands every whole buffered frame to `handle`, stopping while output is queued.
    fn handle_buffered(
        &mut self,
        handle: &mut impl FnMut(Frame<'_>, &mut Sender<'_>) -> Control,
    ) -> Result<(), CloseReason> {
        let Some(input) = &mut self.input else { return Ok(()) };
        // Replies are gathered only when the read brought more than one frame.
        let mut batch: Option<Batch> = None;
        let mut control = Control::Continue;
        let mut bad_frame = None;
        while self.output.is_none() && control == Control::Continue {
            let (frame, used) = match Frame::parse_prefix(input.data(), self.max_body) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => break,
                // The frames before it were handled: their replies still go out.
                Err(e) => {
                    bad_frame = Some(e);
                    break;
                }
            };
            self.frames_in += 1;
            let more = used < input.len();
            let mut sender = Sender {
                stream: self.stream.get(),
                output: &mut self.output,
                broken: &mut self.broken,
                frames_out: &mut self.frames_out,
                batch: if more || batch.is_some() {
                    Some(batch.get_or_insert_with(Batch::new))
                } else {
                    None
                },
            };
            control = handle(frame, &mut sender);
            input.consume(used);
            if let Some(kind) = self.broken {
                return Err(CloseReason::Io(kind));
            }
        }
        if let Some(batch) = &mut batch
            && batch.len > 0
        {
            let mut sender = Sender {
                stream: self.stream.get(),
                output: &mut self.output,
                broken: &mut self.broken,
                frames_out: &mut self.frames_out,
                batch: Some(batch),
            };
            // A failed write is recorded in `broken`.
            let _ = sender.flush_batch();
            if let Some(kind) = self.broken {
                return Err(CloseReason::Io(kind));
            }
        }
        if let Some(e) = bad_frame {
            return Err(CloseReason::BadFrame(e));
        }
        if control == Control::Close {
            return Err(CloseReason::Handler);
        }
        if input.is_empty() {
            self.release_input();
        } else {
            self.settle_large_input();
        }
        Ok(())
    }

    /// Writes queued output with the socket made blocking, while `time_left` gives time (it is
    /// asked before every write, so a peer that reads slowly cannot stretch the wait): used on
    /// shutdown, where a last reply is worth a short wait.
    pub fn flush_blocking(&mut self, mut time_left: impl FnMut() -> std::time::Duration) {
        let Some(out) = &mut self.output else { return };
        let mut stream = self.stream.get();
        if stream.set_nonblocking(false).is_ok() {
            while !out.is_empty() {
                let left = time_left();
                if left.is_zero() || stream.set_write_timeout(Some(left)).is_err() {
                    break;
                }
                match stream.write(out.data()) {
                    Ok(0) => break,
                    Ok(n) => out.consume(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            // Whatever reads from it next must not block.
            let _ = stream.set_nonblocking(true);
        }
        if let Some(out) = self.output.take() {
            pool::recycle(out);
        }
    }

    fn update_interest(&mut self) -> Result<(), CloseReason> {
        if let Some(kind) = self.broken {
            return Err(CloseReason::Io(kind));
        }
        let wanted = if self.output.is_some() {
            Interest::WRITABLE
        } else if self.starved {
            Interest::NONE
        } else {
            Interest::READABLE
        };
        self.set_interest(wanted)
    }

    fn set_interest(&mut self, wanted: Interest) -> Result<(), CloseReason> {
        if wanted != self.interest {
            self.stream.set_interest(wanted).map_err(|e| CloseReason::Io(e.kind()))?;
            self.interest = wanted;
        }
        Ok(())
    }
}
