//! Frame layer: the 8-byte header, datagram framing and a streaming decoder for byte streams.
//!
//! Layout (identical to the original Lars on little-endian machines):
//!
//! ```text
//! 0        4        8
//! +--------+--------+---------------------+
//! | msgid  |  len   | body (len bytes)    |
//! | u32 LE | u32 LE |                     |
//! +--------+--------+---------------------+
//! ```
//!
//! The body is at most [`MAX_BODY`] bytes; a receiver may set a lower limit. A header is checked
//! as soon as its 8 bytes are present, so a stream announcing a bad frame fails before its body
//! arrives. Nothing here panics on input.

use super::{Encode, Error, MsgId};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 8;

/// The largest body the protocol allows: a whole frame fits in 65535 bytes.
pub const MAX_BODY: u32 = 65535 - HEADER_LEN as u32;

mod field {
    use core::ops::Range;
    pub(super) const MSG_ID: Range<usize> = 0..4;
    pub(super) const LEN: Range<usize> = 4..8;
}

/// A validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the body holds.
    pub msgid: MsgId,
    /// Body length in bytes.
    pub len: u32,
}

impl Header {
    /// Parses and checks a header: the msgid must be known and `len` at most `max_body`.
    #[inline]
    pub fn parse(bytes: &[u8; HEADER_LEN], max_body: u32) -> Result<Header, Error> {
        let [a, b, c, d, e, f, g, h] = *bytes;
        let msgid = MsgId::from_u32(u32::from_le_bytes([a, b, c, d]))?;
        let len = u32::from_le_bytes([e, f, g, h]);
        if len > max_body {
            return Err(Error::TooLong { len, max: max_body });
        }
        Ok(Header { msgid, len })
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        let out = out.get_mut(..HEADER_LEN).ok_or(Error::BufferTooSmall)?;
        out[field::MSG_ID].copy_from_slice(&self.msgid.as_u32().to_le_bytes());
        out[field::LEN].copy_from_slice(&self.len.to_le_bytes());
        Ok(HEADER_LEN)
    }

    /// Header plus body length.
    pub const fn frame_len(&self) -> usize {
        HEADER_LEN + self.len as usize
    }
}

/// A whole frame, borrowed from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What the body holds.
    pub msgid: MsgId,
    /// The body, exactly as long as the header said.
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Splits the first whole frame off `input` and says how many bytes it took: `Ok(None)` when
    /// more bytes are needed. The header is checked as soon as its 8 bytes are there, so a bad
    /// frame fails before its body arrives. This is the zero-copy path for a reader that keeps
    /// its own buffer; [`FrameDecoder`] assembles frames for one that does not.
    #[inline]
    pub fn parse_prefix(input: &'a [u8], max_body: u32) -> Result<Option<(Frame<'a>, usize)>, Error> {
        let Some((head, rest)) = input.split_first_chunk::<HEADER_LEN>() else { return Ok(None) };
        let header = Header::parse(head, max_body)?;
        Ok(rest
            .get(..header.len as usize)
            .map(|body| (Frame { msgid: header.msgid, body }, header.frame_len())))
    }

    /// The header announced by the first 8 bytes of `input`, if they are there.
    pub fn peek_header(input: &[u8], max_body: u32) -> Result<Option<Header>, Error> {
        input.split_first_chunk::<HEADER_LEN>().map(|(head, _)| Header::parse(head, max_body)).transpose()
    }

    /// Decodes a datagram, which must hold exactly one frame: its length must equal `8 + len`.
    pub fn parse_datagram(datagram: &'a [u8], max_body: u32) -> Result<Frame<'a>, Error> {
        let (head, body) = datagram.split_first_chunk::<HEADER_LEN>().ok_or(Error::Truncated)?;
        let header = Header::parse(head, max_body)?;
        if body.len() != header.len as usize {
            return Err(Error::LengthMismatch {
                expected: header.frame_len() as u32,
                actual: u32::try_from(datagram.len()).unwrap_or(u32::MAX),
            });
        }
        Ok(Frame { msgid: header.msgid, body })
    }
}

/// Writes a frame holding `body` under `msgid` into `out` and returns the frame's length.
///
/// Fails with [`Error::TooLong`] when the body is over [`MAX_BODY`], and with
/// [`Error::BufferTooSmall`] when `out` is shorter than the frame.
pub fn encode(msgid: MsgId, body: &impl Encode, out: &mut [u8]) -> Result<usize, Error> {
    // Emit first and take the length from it: one pass over the message instead of two.
    let (head, rest) = out.split_at_mut_checked(HEADER_LEN).ok_or(Error::BufferTooSmall)?;
    let written = body.emit(rest)?;
    let len = u32::try_from(written).unwrap_or(u32::MAX);
    if len > MAX_BODY {
        return Err(Error::TooLong { len, max: MAX_BODY });
    }
    Header { msgid, len }.emit(head)?;
    Ok(HEADER_LEN + written)
}

/// The result of one [`FrameDecoder::decode`] call.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// How many input bytes were used. The caller drops them and passes the rest next time.
    pub consumed: usize,
    /// A complete frame, if one was finished by this call.
    pub frame: Option<Frame<'a>>,
}

/// Streaming decoder for a byte stream of frames (a TCP connection).
///
/// Feed it input in chunks of any size, down to one byte. When a chunk holds a whole frame and
/// no partial frame is pending, the frame is returned borrowed from the chunk with no copy.
/// Otherwise the decoder copies the frame's bytes into `buf` (caller-provided: an array, a slice
/// or a pool buffer) until it is complete. The body limit is the smaller of the configured
/// limit and `buf`'s length, so a frame the decoder accepts always fits in `buf`.
///
/// After an error the stream is out of sync: close the connection, or call
/// [`FrameDecoder::reset`] if the transport resynchronises some other way.
///
/// ```
/// # use lars_core::wire::{frame::FrameDecoder, MsgId};
/// let mut decoder = FrameDecoder::new([0u8; 64]);
/// let stream = [4, 0, 0, 0, 2, 0, 0, 0, 0x10, 0x07];
/// let mut rest = &stream[..];
/// let mut bodies = 0;
/// for chunk in [&stream[..3], &stream[3..]] {
///     let mut chunk = chunk;
///     while !chunk.is_empty() {
///         let decoded = decoder.decode(chunk).unwrap();
///         if let Some(frame) = decoded.frame {
///             assert_eq!((frame.msgid, frame.body), (MsgId::GetHostRequest, &[0x10, 0x07][..]));
///             bodies += 1;
///         }
///         chunk = &chunk[decoded.consumed..];
///     }
/// }
/// assert_eq!(bodies, 1);
/// ```
pub struct FrameDecoder<B> {
    buf: B,
    max_body: u32,
    head: [u8; HEADER_LEN],
    head_filled: usize,
    header: Option<Header>,
    body_filled: usize,
    /// A frame was handed out from `buf`; clear the state on the next call.
    delivered: bool,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> FrameDecoder<B> {
    /// A decoder assembling partial frames in `buf`, with the protocol's body limit.
    pub fn new(buf: B) -> Self {
        Self::with_max_body(buf, MAX_BODY)
    }

    /// A decoder with a body limit of `max_body` (capped by `buf`'s length and [`MAX_BODY`]).
    pub fn with_max_body(buf: B, max_body: u32) -> Self {
        let cap = u32::try_from(buf.as_ref().len()).unwrap_or(u32::MAX);
        FrameDecoder {
            buf,
            max_body: max_body.min(cap).min(MAX_BODY),
            head: [0; HEADER_LEN],
            head_filled: 0,
            header: None,
            body_filled: 0,
            delivered: false,
        }
    }

    /// The largest body this decoder accepts.
    pub fn max_body(&self) -> u32 {
        self.max_body
    }

    /// Bytes of an unfinished frame held in the decoder.
    pub fn pending(&self) -> usize {
        if self.delivered { 0 } else { self.head_filled + self.body_filled }
    }

    /// Forgets any partial frame.
    pub fn reset(&mut self) {
        self.head_filled = 0;
        self.header = None;
        self.body_filled = 0;
        self.delivered = false;
    }

    /// Consumes bytes from `input`: at most one frame's worth. Returns how many bytes were used
    /// and the frame, if this call completed one. Call again with the unused rest.
    pub fn decode<'a>(&'a mut self, input: &'a [u8]) -> Result<Decoded<'a>, Error> {
        if self.delivered {
            self.reset();
        }
        // Fast path: a whole frame in the input and nothing pending, so no copy.
        if self.head_filled == 0
            && let Some((frame, consumed)) = Frame::parse_prefix(input, self.max_body)?
        {
            return Ok(Decoded { consumed, frame: Some(frame) });
        }

        let mut consumed = 0;
        let header = match self.header {
            Some(header) => header,
            None => {
                let take = (HEADER_LEN - self.head_filled).min(input.len());
                self.head[self.head_filled..self.head_filled + take].copy_from_slice(&input[..take]);
                self.head_filled += take;
                consumed = take;
                if self.head_filled < HEADER_LEN {
                    return Ok(Decoded { consumed, frame: None });
                }
                let header = Header::parse(&self.head, self.max_body)?;
                self.header = Some(header);
                header
            }
        };

        let len = header.len as usize;
        let take = (len - self.body_filled).min(input.len() - consumed);
        let buf = self.buf.as_mut();
        buf[self.body_filled..self.body_filled + take].copy_from_slice(&input[consumed..consumed + take]);
        self.body_filled += take;
        consumed += take;
        if self.body_filled < len {
            return Ok(Decoded { consumed, frame: None });
        }
        self.delivered = true;
        let frame = Frame { msgid: header.msgid, body: &self.buf.as_ref()[..len] };
        Ok(Decoded { consumed, frame: Some(frame) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// GetHostRequest { seq: 1, modid: 2, cmdid: 3 } in a frame.
    static GET_HOST_FRAME: [u8; 14] = [4, 0, 0, 0, 6, 0, 0, 0, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03];

    fn decode_all(
        decoder: &mut FrameDecoder<[u8; 128]>,
        chunks: &[&[u8]],
    ) -> Result<Vec<(MsgId, Vec<u8>)>, Error> {
        let mut frames = Vec::new();
        for chunk in chunks {
            let mut rest = *chunk;
            while !rest.is_empty() {
                let decoded = decoder.decode(rest)?;
                assert!(decoded.consumed > 0, "no progress on {} bytes", rest.len());
                if let Some(frame) = decoded.frame {
                    frames.push((frame.msgid, frame.body.to_vec()));
                }
                rest = &rest[decoded.consumed..];
            }
        }
        Ok(frames)
    }

    #[test]
    fn parse_header() {
        let header = Header::parse(GET_HOST_FRAME[..8].try_into().unwrap(), MAX_BODY).unwrap();
        assert_eq!(header, Header { msgid: MsgId::GetHostRequest, len: 6 });
    }

    #[test]
    fn emit_header() {
        let mut bytes = [0xa5; 8];
        Header { msgid: MsgId::GetHostRequest, len: 6 }.emit(&mut bytes).unwrap();
        assert_eq!(bytes, GET_HOST_FRAME[..8]);
    }

    #[test]
    fn header_errors() {
        let negative = [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(Header::parse(&negative, MAX_BODY), Err(Error::TooLong { len: u32::MAX, max: MAX_BODY }));
        let oversize = [1, 0, 0, 0, 0xf8, 0xff, 0, 0];
        assert_eq!(Header::parse(&oversize, MAX_BODY), Err(Error::TooLong { len: 65528, max: MAX_BODY }));
        let unknown = [9, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Header::parse(&unknown, MAX_BODY), Err(Error::UnknownMsgId(9)));
        assert_eq!(Header::parse(&[2, 0, 0, 0, 11, 0, 0, 0], 10), Err(Error::TooLong { len: 11, max: 10 }));
    }

    #[test]
    fn datagram_length_must_match() {
        let frame = Frame::parse_datagram(&GET_HOST_FRAME, MAX_BODY).unwrap();
        assert_eq!(frame.body, &GET_HOST_FRAME[8..]);
        assert_eq!(
            Frame::parse_datagram(&GET_HOST_FRAME[..13], MAX_BODY),
            Err(Error::LengthMismatch { expected: 14, actual: 13 })
        );
        let mut long = GET_HOST_FRAME.to_vec();
        long.push(0);
        assert_eq!(
            Frame::parse_datagram(&long, MAX_BODY),
            Err(Error::LengthMismatch { expected: 14, actual: 15 })
        );
        assert_eq!(Frame::parse_datagram(&GET_HOST_FRAME[..7], MAX_BODY), Err(Error::Truncated));
    }

    #[test]
    fn stream_split_at_every_boundary_and_one_byte_at_a_time() {
        let zero_body = [1u8, 0, 0, 0, 0, 0, 0, 0];
        let stream: Vec<u8> = [&GET_HOST_FRAME[..], &zero_body, &GET_HOST_FRAME].concat();
        let expected = decode_all(&mut FrameDecoder::new([0; 128]), &[&stream]).unwrap();
        assert_eq!(expected.len(), 3);
        assert_eq!(expected[1], (MsgId::GetRouteRequest, Vec::new()));
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(
                decode_all(&mut FrameDecoder::new([0; 128]), &[a, b]).unwrap(),
                expected,
                "split {split}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&mut FrameDecoder::new([0; 128]), &bytes).unwrap(), expected);
    }

    #[test]
    fn zero_length_body_at_the_very_end() {
        let mut decoder = FrameDecoder::new([0; 128]);
        let zero_body = [1u8, 0, 0, 0, 0, 0, 0, 0];
        let decoded = decoder.decode(&zero_body).unwrap();
        assert_eq!(decoded.consumed, 8);
        assert_eq!(decoded.frame, Some(Frame { msgid: MsgId::GetRouteRequest, body: &[] }));
        // The same frame arriving one byte at a time.
        let frames = decode_all(&mut decoder, &zero_body.chunks(1).collect::<Vec<_>>()).unwrap();
        assert_eq!(frames, [(MsgId::GetRouteRequest, Vec::new())]);
    }

    #[test]
    fn stream_limit_is_the_buffer() {
        let mut decoder = FrameDecoder::new([0u8; 4]);
        assert_eq!(decoder.max_body(), 4);
        assert!(matches!(decoder.decode(&GET_HOST_FRAME), Err(Error::TooLong { len: 6, max: 4 })));
        let mut decoder = FrameDecoder::new([0u8; 4]);
        assert_eq!(decoder.decode(&GET_HOST_FRAME[..5]).unwrap().consumed, 5);
        assert!(matches!(decoder.decode(&GET_HOST_FRAME[5..]), Err(Error::TooLong { len: 6, max: 4 })));
    }

    #[test]
    fn parse_prefix_splits_whole_frames_only() {
        let two = [&GET_HOST_FRAME[..], &GET_HOST_FRAME[..]].concat();
        let (frame, used) = Frame::parse_prefix(&two, MAX_BODY).unwrap().unwrap();
        assert_eq!((frame.msgid, frame.body, used), (MsgId::GetHostRequest, &GET_HOST_FRAME[8..], 14));
        assert_eq!(Frame::parse_prefix(&GET_HOST_FRAME[..13], MAX_BODY), Ok(None));
        assert_eq!(Frame::parse_prefix(&GET_HOST_FRAME[..7], MAX_BODY), Ok(None));
        assert_eq!(Frame::parse_prefix(&[9, 0, 0, 0, 0, 0, 0, 0], MAX_BODY), Err(Error::UnknownMsgId(9)));
        assert_eq!(Frame::peek_header(&GET_HOST_FRAME[..8], 4), Err(Error::TooLong { len: 6, max: 4 }));
        assert_eq!(Frame::peek_header(&GET_HOST_FRAME[..3], 4), Ok(None));
    }

    #[test]
    fn pending_counts_partial_frames() {
        let mut decoder = FrameDecoder::new([0; 128]);
        assert_eq!(decoder.decode(&GET_HOST_FRAME[..10]).unwrap().consumed, 10);
        assert_eq!(decoder.pending(), 10);
        assert!(decoder.decode(&GET_HOST_FRAME[10..]).unwrap().frame.is_some());
        assert_eq!(decoder.pending(), 0);
    }

    #[test]
    fn encode_writes_header_and_body() {
        let mut out = [0xa5; 16];
        assert_eq!(encode(MsgId::GetHostRequest, &crate::wire::Raw(&GET_HOST_FRAME[8..]), &mut out), Ok(14));
        assert_eq!(out[..14], GET_HOST_FRAME);
        let short = encode(MsgId::GetHostRequest, &crate::wire::Raw(&GET_HOST_FRAME[8..]), &mut out[..13]);
        assert_eq!(short, Err(Error::BufferTooSmall));
    }
}
