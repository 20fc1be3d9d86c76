//! A server connection's close protocol as one state machine: [`ConnState`] and its one
//! transition function, [`ConnState::on`]. Pure: the worker does what the [`Step`] says.
//!
//! The rules, each of which a test in `tests/tests/reactor.rs` pins:
//! - The service hears of a close at once, whatever happens to the socket after.
//! - A close the service asks for, or one for a bad frame, lets output already queued drain
//!   first (for `close_linger` at most), so that replies given are not cut off; meanwhile the
//!   connection handles nothing, takes no sends, and discards its input so that the close is a
//!   FIN and not a reset. Any other close (the peer's, an IO error, output full, a peer past
//!   its header, body or idle deadline) is immediate.
//! - While draining, a repeated close waits for the drain, except an IO error, which ends it.
//! - A close the service asks for with nothing queued discards pending input first, for the
//!   same reason.

use lars_core::time::{Duration, Instant};

use crate::reactor::CloseReason;

/// Where a server connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnState {
    /// Reading, handling frames and taking sends.
    Open,
    /// Closed for `reason` (the service has been told), writing out its queued output until
    /// `until` at the latest.
    Draining {
        /// Why it is closing.
        reason: CloseReason,
        /// When it is closed even if output is left.
        until: Instant,
    },
    /// Done: the socket is to be dropped and the slot freed.
    Closed,
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// Something asks to close it: its service, a bad frame, an IO error, the peer.
    Close(CloseReason),
    /// Its queued output has all been written.
    Drained,
    /// A linger deadline has passed (perhaps another connection's, earlier in the slot).
    LingerDue,
}

/// What the worker must do after a transition, in this order: tell the service, discard input,
/// then enter `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    /// The state to enter.
    pub(super) next: ConnState,
    /// Tell the service the connection closed, for this reason (and count it).
    pub(super) tell: Option<CloseReason>,
    /// Read and drop what the peer sent before closing, so the close is not a reset.
    pub(super) discard_input: bool,
}

impl ConnState {
    /// The close protocol's one transition. `queued` says whether the connection has output
    /// queued that can still be written (it is not broken); `now` and `linger` set a drain's
    /// deadline.
    pub(super) fn on(self, event: Event, queued: bool, now: Instant, linger: Duration) -> Step {
        let stay = Step { next: self, tell: None, discard_input: false };
        let closed = Step { next: ConnState::Closed, tell: None, discard_input: false };
        match (self, event) {
            (ConnState::Open, Event::Close(reason)) => {
                let drains = matches!(reason, CloseReason::Handler | CloseReason::BadFrame(_));
                if drains && queued {
                    Step {
                        next: ConnState::Draining { reason, until: now + linger },
                        tell: Some(reason),
                        discard_input: false,
                    }
                } else {
                    Step { tell: Some(reason), discard_input: reason == CloseReason::Handler, ..closed }
                }
            }
            (ConnState::Open, Event::Drained | Event::LingerDue) => stay,
            (ConnState::Draining { .. }, Event::Close(CloseReason::Io(_)) | Event::Drained) => closed,
            (ConnState::Draining { .. }, Event::Close(_)) if !queued => closed,
            (ConnState::Draining { .. }, Event::Close(_)) => stay,
            (ConnState::Draining { until, .. }, Event::LingerDue) if now >= until => closed,
            (ConnState::Draining { .. }, Event::LingerDue) => stay,
            (ConnState::Closed, _) => stay,
        }
    }

    /// Whether it handles frames and takes sends.
    pub(super) fn is_open(self) -> bool {
        self == ConnState::Open
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use lars_core::wire::Error;

    use super::*;

    const LINGER: Duration = Duration::from_secs(5);

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn draining(reason: CloseReason) -> ConnState {
        ConnState::Draining { reason, until: at(1000) + LINGER }
    }

    #[test]
    fn a_close_with_output_queued_drains_only_for_the_service_or_a_bad_frame() {
        for reason in [CloseReason::Handler, CloseReason::BadFrame(Error::Truncated)] {
            let step = ConnState::Open.on(Event::Close(reason), true, at(1000), LINGER);
            assert_eq!(step, Step { next: draining(reason), tell: Some(reason), discard_input: false });
        }
        for reason in
            [CloseReason::PeerClosed, CloseReason::Io(ErrorKind::ConnectionReset), CloseReason::OutputFull]
        {
            let step = ConnState::Open.on(Event::Close(reason), true, at(1000), LINGER);
            assert_eq!(step, Step { next: ConnState::Closed, tell: Some(reason), discard_input: false });
        }
    }

    #[test]
    fn a_close_with_nothing_queued_is_immediate_and_the_services_discards_input() {
        let step = ConnState::Open.on(Event::Close(CloseReason::Handler), false, at(0), LINGER);
        assert_eq!(
            step,
            Step { next: ConnState::Closed, tell: Some(CloseReason::Handler), discard_input: true }
        );
        let bad = CloseReason::BadFrame(Error::Truncated);
        let step = ConnState::Open.on(Event::Close(bad), false, at(0), LINGER);
        assert_eq!(step, Step { next: ConnState::Closed, tell: Some(bad), discard_input: false });
    }

    #[test]
    fn a_drain_ends_when_written_broken_or_out_of_time_and_the_service_hears_once() {
        let state = draining(CloseReason::Handler);
        let end = |event, queued, now| state.on(event, queued, now, LINGER);
        let closed = Step { next: ConnState::Closed, tell: None, discard_input: false };
        let stays = Step { next: state, tell: None, discard_input: false };
        assert_eq!(end(Event::Drained, false, at(1001)), closed);
        assert_eq!(end(Event::Close(CloseReason::Io(ErrorKind::BrokenPipe)), true, at(1001)), closed);
        assert_eq!(end(Event::LingerDue, true, at(5999)), stays, "another connection's deadline");
        assert_eq!(end(Event::LingerDue, true, at(6000)), closed);
        // A repeated close waits for the drain, unless there is nothing left to drain.
        assert_eq!(end(Event::Close(CloseReason::Handler), true, at(1001)), stays);
        assert_eq!(end(Event::Close(CloseReason::Handler), false, at(1001)), closed);
    }

    #[test]
    fn an_open_or_closed_connection_ignores_drain_events() {
        for event in [Event::Drained, Event::LingerDue] {
            assert_eq!(ConnState::Open.on(event, true, at(0), LINGER).next, ConnState::Open);
        }
        let step = ConnState::Closed.on(Event::Close(CloseReason::Handler), true, at(0), LINGER);
        assert_eq!(step, Step { next: ConnState::Closed, tell: None, discard_input: false });
    }
}
