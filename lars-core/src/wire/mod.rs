//! Wire layer: frames and the two body codecs. Pure functions over caller-owned bytes.
//!
//! A frame is an 8-byte header (`msgid: u32`, `len: u32`, both little-endian) followed by `len`
//! body bytes; see [`frame`]. The msgid picks the body codec:
//! - `1..=8`: [`lars`], protobuf bodies byte-compatible with the original C++ Lars;
//! - `0x100..`: [`native`], postcard bodies that extend the protocol.
//!
//! Guarantees of every decoder in this module:
//! - it never panics, whatever the input bytes;
//! - it consumes the whole body or fails: trailing bytes are an error, not ignored;
//! - it borrows instead of copying: repeated fields come back as a [`List`] that walks the
//!   already-validated body bytes, so decoding needs no capacity and no allocator.
//!
//! Every encoder writes into a caller's slice, returns the number of bytes written, and fails only
//! with [`Error::BufferTooSmall`] when the slice is shorter than the message's `buffer_len()`.

use core::fmt;

pub mod frame;
pub mod lars;
mod message;
pub mod native;
mod proto;
#[cfg(test)]
mod testutil;

pub use frame::{Frame, FrameDecoder, Header};
pub use message::Message;

/// Why bytes could not be decoded or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The header names a msgid that neither codec knows.
    UnknownMsgId(u32),
    /// The header's body length is over the limit (a negative `i32` length reads as a huge one).
    TooLong {
        /// The length announced by the header.
        len: u32,
        /// The receiver's limit.
        max: u32,
    },
    /// A datagram's length differs from `8 + len`.
    LengthMismatch {
        /// The length announced by the header plus the header itself.
        expected: u32,
        /// The datagram's length.
        actual: u32,
    },
    /// The body ends in the middle of a field.
    Truncated,
    /// Bytes remain after the last field of the body.
    TrailingBytes,
    /// A varint is longer than 10 bytes, or longer than its type allows.
    BadVarint,
    /// A protobuf field has a wire type that the message does not allow for it.
    BadWireType {
        /// The field number.
        field: u32,
        /// The wire type found.
        wire_type: u8,
    },
    /// A field holds a value its type does not allow (an enum tag, a port over 65535, ...).
    BadValue,
    /// A list holds more items than the receiver can keep.
    OverCapacity {
        /// The receiver's capacity.
        capacity: u32,
    },
    /// The output slice is shorter than the encoded message.
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::UnknownMsgId(id) => write!(f, "unknown msgid {id:#x}"),
            Error::TooLong { len, max } => write!(f, "body length {len} is over the limit {max}"),
            Error::LengthMismatch { expected, actual } => {
                write!(f, "datagram is {actual} bytes but its header says {expected}")
            }
            Error::Truncated => f.write_str("body ends in the middle of a field"),
            Error::TrailingBytes => f.write_str("bytes remain after the last field"),
            Error::BadVarint => f.write_str("malformed varint"),
            Error::BadWireType { field, wire_type } => {
                write!(f, "field {field} has unexpected wire type {wire_type}")
            }
            Error::BadValue => f.write_str("field value out of range"),
            Error::OverCapacity { capacity } => {
                write!(f, "list has more items than the capacity of {capacity}")
            }
            Error::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for Error {}

/// The outcome of an agent request, as in the original's `LarsRetCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum RetCode {
    /// The request succeeded.
    Succ = 0,
    /// Every host of the route is overloaded and this was not a probe turn.
    Overload = 1,
    /// The agent could not serve the request.
    SystemError = 2,
    /// The route is unknown, or still being pulled from lars-dns.
    NoExist = 3,
}

impl RetCode {
    /// The code's numeric value on the Lars wire.
    pub const fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code for a Lars wire value, if it is one.
    pub const fn from_i32(value: i32) -> Option<RetCode> {
        match value {
            0 => Some(RetCode::Succ),
            1 => Some(RetCode::Overload),
            2 => Some(RetCode::SystemError),
            3 => Some(RetCode::NoExist),
            _ => None,
        }
    }
}

/// A message body that writes itself into a caller's buffer.
pub trait Encode {
    /// The exact number of bytes [`Encode::emit`] writes.
    fn buffer_len(&self) -> usize;

    /// Writes the body into the start of `out` and returns its length. Fails only with
    /// [`Error::BufferTooSmall`], when `out` is shorter than [`Encode::buffer_len`].
    fn emit(&self, out: &mut [u8]) -> Result<usize, Error>;
}

/// Which body codec a peer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Codec {
    /// The Lars-compatible protobuf bodies (msgids 1–8): what an original Lars lars_dns,
    /// lars_reporter, agent or API speaks. IPv4 only, no versions, weights or latencies.
    Lars,
    /// The native postcard bodies (msgids 0x100..).
    #[default]
    Native,
}

/// Which codec to speak to a peer: one of them, or whichever the peer turns out to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CodecChoice {
    /// Greet the peer with a native [`native::Hello`]: a peer that answers it is native, one
    /// that stays silent (as an original Lars part does with a msgid it does not know) or
    /// hangs up speaks Lars.
    #[default]
    Auto,
    /// Always this codec.
    Fixed(Codec),
}

impl CodecChoice {
    /// Parses `auto`, `native` or `lars`, as configuration files and flags spell them.
    pub fn parse(text: &str) -> Option<CodecChoice> {
        match text {
            "auto" => Some(CodecChoice::Auto),
            "native" => Some(CodecChoice::Fixed(Codec::Native)),
            "lars" => Some(CodecChoice::Fixed(Codec::Lars)),
            _ => None,
        }
    }

    /// The spelling [`CodecChoice::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            CodecChoice::Auto => "auto",
            CodecChoice::Fixed(Codec::Native) => "native",
            CodecChoice::Fixed(Codec::Lars) => "lars",
        }
    }
}

/// Bytes sent as a body as they are: for relays, echo servers and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(pub &'a [u8]);

impl Encode for Raw<'_> {
    fn buffer_len(&self) -> usize {
        self.0.len()
    }

    fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        out.get_mut(..self.0.len()).ok_or(Error::BufferTooSmall)?.copy_from_slice(self.0);
        Ok(self.0.len())
    }
}

/// A message body decoded from (and borrowing) a frame body.
pub trait Decode<'a>: Sized {
    /// Decodes the whole of `body`, or says precisely why it cannot.
    fn parse(body: &'a [u8]) -> Result<Self, Error>;
}

macro_rules! msg_ids {
    (
        $( $(#[$doc:meta])* $name:ident = $value:literal, )*
        @only_if($cfg:meta) { $( $(#[$cdoc:meta])* $cname:ident = $cvalue:literal, )* }
    ) => {
        /// Every message id lars understands.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum MsgId {
            $( $(#[$doc])* $name = $value, )*
            $( #[cfg($cfg)] $(#[$cdoc])* $cname = $cvalue, )*
        }

        impl MsgId {
            /// All message ids, in numeric order, then the handshake's (feature `auth`).
            #[cfg($cfg)]
            pub const ALL: &'static [MsgId] = &[$(MsgId::$name,)* $(MsgId::$cname,)*];
            /// All message ids, in numeric order.
            #[cfg(not($cfg))]
            pub const ALL: &'static [MsgId] = &[$(MsgId::$name,)*];

            /// The id for `value`, or [`Error::UnknownMsgId`]. Without the `auth` feature the
            /// handshake's ids are unknown: such a build never takes part in one.
            #[inline]
            pub const fn from_u32(value: u32) -> Result<MsgId, Error> {
                match value {
                    $( $value => Ok(MsgId::$name), )*
                    $( #[cfg($cfg)] $cvalue => Ok(MsgId::$cname), )*
                    other => Err(Error::UnknownMsgId(other)),
                }
            }
        }
    };
}

msg_ids! {
    /// Lars: agent → dns, protobuf `GetRouteRequest`; subscribes the agent to the route.
    GetRouteRequest = 1,
    /// Lars: dns → agent, protobuf `GetRouteResponse`; the reply and every later push.
    GetRouteResponse = 2,
    /// Lars: agent → reporter, protobuf `ReportStatusRequest`; no reply.
    ReportStatusRequest = 3,
    /// Lars: API → agent, protobuf `GetHostRequest`.
    GetHostRequest = 4,
    /// Lars: agent → API, protobuf `GetHostResponse`.
    GetHostResponse = 5,
    /// Lars: API → agent, protobuf `ReportRequest`; no reply.
    ReportRequest = 6,
    /// Lars: API → agent, protobuf `GetRouteRequest`.
    ApiGetRouteRequest = 7,
    /// Lars: agent → API, protobuf `GetRouteResponse`.
    ApiGetRouteResponse = 8,
    /// Native: either side opens a link with its version and role, and the peer answers in kind.
    Hello = 0x100,
    /// Native: a keep-alive, echoed by the peer.
    Heartbeat = 0x101,
    /// Native: API → agent, [`native::GetHostRequest`].
    NativeGetHostRequest = 0x110,
    /// Native: agent → API, [`native::GetHostResponse`].
    NativeGetHostResponse = 0x111,
    /// Native: API → agent, one [`native::Report`].
    NativeReport = 0x112,
    /// Native: API → agent, a [`native::ReportBatch`].
    NativeReportBatch = 0x113,
    /// Native: API → agent or agent → dns, [`native::GetRouteRequest`].
    NativeGetRouteRequest = 0x120,
    /// Native: agent → API or dns → agent (reply and push), [`native::RouteResponse`].
    NativeRouteResponse = 0x121,
    /// Native: agent → reporter, [`native::CallStats`] (agents before [`MsgId::StatusReport`]),
    /// and leasing API → agent.
    NativeCallStats = 0x130,
    /// Native: agent → reporter, [`native::StatusReport`]: the period's calls and each host's
    /// counts since its last idle/overload change.
    StatusReport = 0x131,
    /// Native: agent → reporter, [`native::DecisionReport`]: the host state changes its
    /// balancers made, with their reasons.
    DecisionReport = 0x132,
    /// Native: anyone → any daemon, [`native::StatsRequest`].
    StatsRequest = 0x140,
    /// Native: a daemon's counters, [`native::StatsResponse`].
    StatsResponse = 0x141,
    /// Native: API → agent, [`native::DecisionsRequest`]: a page of its decision log.
    DecisionsRequest = 0x142,
    /// Native: agent → API, [`native::DecisionsResponse`].
    DecisionsResponse = 0x143,
    // The handshake's ids cost the gateway's flash (about 300 bytes of decoder tables) and it
    // never authenticates, so they exist with the `auth` feature only.
    @only_if(feature = "auth") {
        /// Native: agent → daemon, [`native::AuthHello`]: a hello that starts proving a shared
        /// secret.
        AuthHello = 0x102,
        /// Native: daemon → agent, [`native::AuthChallenge`]: the daemon's nonce and proof.
        AuthChallenge = 0x103,
        /// Native: agent → daemon, [`native::AuthProof`]: the agent's proof.
        AuthProof = 0x104,
    }
}

impl MsgId {
    /// The id's numeric value.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }

    /// Whether the body is a Lars-compatible protobuf (as opposed to a native postcard body).
    pub const fn is_lars(self) -> bool {
        (self as u32) < 0x100
    }
}

/// A repeated field: a slice when building a message, a walk over validated body bytes when
/// decoding one. Both iterate the same way, so code that consumes a list never cares which.
#[derive(Clone, Copy)]
pub struct List<'a, T> {
    repr: ListRepr<'a, T>,
}

#[derive(Clone, Copy)]
enum ListRepr<'a, T> {
    Slice(&'a [T]),
    /// `bytes` holds exactly `len` items that `next` decodes one by one. The bytes were validated
    /// when the message was parsed, so `next` cannot fail part way.
    Encoded {
        bytes: &'a [u8],
        len: usize,
        next: fn(&mut &'a [u8]) -> Option<T>,
    },
}

impl<'a, T: Copy> List<'a, T> {
    /// A list over `items`.
    pub const fn from_slice(items: &'a [T]) -> Self {
        List { repr: ListRepr::Slice(items) }
    }

    /// A list over `len` items encoded in `bytes`, which a decoder has already validated.
    pub(crate) fn encoded(bytes: &'a [u8], len: usize, next: fn(&mut &'a [u8]) -> Option<T>) -> Self {
        List { repr: ListRepr::Encoded { bytes, len, next } }
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        match self.repr {
            ListRepr::Slice(items) => items.len(),
            ListRepr::Encoded { len, .. } => len,
        }
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items in order.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter { repr: self.repr }
    }

    /// Copies the items into `out`, or fails with [`Error::OverCapacity`] (leaving `out` holding
    /// the first `out.len()` items) when there are more items than `out` can hold.
    pub fn copy_into(&self, out: &mut [T]) -> Result<usize, Error> {
        if self.len() > out.len() {
            return Err(Error::OverCapacity { capacity: u32::try_from(out.len()).unwrap_or(u32::MAX) });
        }
        for (slot, item) in out.iter_mut().zip(self.iter()) {
            *slot = item;
        }
        Ok(self.len())
    }
}

/// Iterator over a [`List`].
pub struct ListIter<'a, T> {
    repr: ListRepr<'a, T>,
}

impl<T: Copy> Iterator for ListIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.repr {
            ListRepr::Slice(items) => {
                let (first, rest) = items.split_first()?;
                *items = rest;
                Some(*first)
            }
            ListRepr::Encoded { bytes, len, next } => {
                if *len == 0 {
                    return None;
                }
                *len -= 1;
                next(bytes)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = match self.repr {
            ListRepr::Slice(items) => items.len(),
            ListRepr::Encoded { len, .. } => len,
        };
        (len, Some(len))
    }
}

impl<T: Copy> ExactSizeIterator for ListIter<'_, T> {}

impl<'a, T: Copy> IntoIterator for &List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;
    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

impl<T: Copy + PartialEq> PartialEq for List<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: Copy + Eq> Eq for List<'_, T> {}

impl<T: Copy + fmt::Debug> fmt::Debug for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Copy> Default for List<'_, T> {
    fn default() -> Self {
        List::from_slice(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgid_round_trips_and_rejects_unknown() {
        for &id in MsgId::ALL {
            assert_eq!(MsgId::from_u32(id.as_u32()), Ok(id));
        }
        assert_eq!(MsgId::from_u32(0), Err(Error::UnknownMsgId(0)));
        assert_eq!(MsgId::from_u32(9), Err(Error::UnknownMsgId(9)));
        assert!(MsgId::ReportRequest.is_lars());
        assert!(!MsgId::Hello.is_lars());
    }

    #[test]
    fn list_copy_into_reports_capacity() {
        let list = List::from_slice(&[1u8, 2, 3]);
        let mut small = [0u8; 2];
        assert_eq!(list.copy_into(&mut small), Err(Error::OverCapacity { capacity: 2 }));
        let mut big = [0u8; 4];
        assert_eq!(list.copy_into(&mut big), Ok(3));
        assert_eq!(big, [1, 2, 3, 0]);
    }
}
