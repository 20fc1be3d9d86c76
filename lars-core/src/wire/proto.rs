//! A minimal protobuf (proto3) reader and writer: just what the Lars bodies need.
//!
//! Reading: varints (at most 10 bytes, the 10th at most 1), length-delimited fields, and skipping
//! unknown fields of wire types 0, 1, 2 and 5. Groups (3, 4) are refused. `int32` and `uint32`
//! keep the low 32 bits of the varint, as protobuf parsers do.
//!
//! Writing follows proto3 and protoc: scalar fields equal to zero are omitted, a present
//! sub-message is always written (even when empty), and a negative `int32` is sign-extended to a
//! 10-byte varint.

use super::Error;

pub(crate) const VARINT: u8 = 0;
pub(crate) const I64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const I32: u8 = 5;

/// Cursor over protobuf bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// The bytes not read yet.
    pub(crate) fn bytes_left(&self) -> &'a [u8] {
        self.bytes
    }

    /// Reads a varint. One- and two-byte varints (keys, and values under 16384 such as most
    /// ids) take the fast path.
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, Error> {
        match self.bytes {
            [low @ 0..0x80, rest @ ..] => {
                self.bytes = rest;
                Ok(u64::from(*low))
            }
            [low, high @ 0..0x80, rest @ ..] => {
                self.bytes = rest;
                Ok(u64::from(*low & 0x7f) | u64::from(*high) << 7)
            }
            _ => self.varint_multi_byte(),
        }
    }

    fn varint_multi_byte(&mut self) -> Result<u64, Error> {
        let mut value = 0u64;
        for (i, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                // The tenth byte may only carry the 64th bit.
                if i == 9 && byte > 1 {
                    return Err(Error::BadVarint);
                }
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.bytes.len() < 10 { Error::Truncated } else { Error::BadVarint })
    }

    /// Reads the next field's key (`field << 3 | wire_type`), or `None` at the end of the body.
    #[inline]
    pub(crate) fn next_key(&mut self) -> Result<Option<u64>, Error> {
        if self.bytes.is_empty() { Ok(None) } else { self.varint().map(Some) }
    }

    /// Reads an `int32` value: the low 32 bits of the varint.
    #[inline]
    pub(crate) fn int32(&mut self) -> Result<i32, Error> {
        Ok(self.varint()? as u32 as i32)
    }

    /// Reads a `uint32` value: the low 32 bits of the varint.
    #[inline]
    pub(crate) fn uint32(&mut self) -> Result<u32, Error> {
        Ok(self.varint()? as u32)
    }

    /// Reads a `bool` value: any non-zero varint is true.
    #[inline]
    pub(crate) fn bool(&mut self) -> Result<bool, Error> {
        Ok(self.varint()? != 0)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.bytes.len() {
            return Err(Error::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// Reads a length-delimited field's bytes (after its key).
    #[inline]
    pub(crate) fn len_delimited(&mut self) -> Result<&'a [u8], Error> {
        let len = usize::try_from(self.varint()?).map_err(|_| Error::Truncated)?;
        self.take(len)
    }

    /// Skips a field that the message did not match. Messages number their fields `1..=known`,
    /// so a field in that range reaching here has the wrong wire type: an error, not a skip.
    pub(crate) fn skip(&mut self, key: u64, known: u32) -> Result<(), Error> {
        let field = u32::try_from(key >> 3).map_err(|_| Error::BadValue)?;
        let wire_type = (key & 7) as u8;
        if field == 0 {
            return Err(Error::BadValue);
        }
        if field <= known {
            return Err(Error::BadWireType { field, wire_type });
        }
        match wire_type {
            VARINT => self.varint().map(drop),
            I64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            I32 => self.take(4).map(drop),
            _ => Err(Error::BadWireType { field, wire_type }),
        }
    }
}

/// The key of a varint field.
pub(crate) const fn varint_key(field: u32) -> u64 {
    (field as u64) << 3 | VARINT as u64
}

/// The key of a length-delimited field.
pub(crate) const fn len_key(field: u32) -> u64 {
    (field as u64) << 3 | LEN as u64
}

/// Cursor writing protobuf into a caller's slice.
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        Writer { out, pos: 0 }
    }

    #[cfg(test)]
    pub(crate) fn finish(self) -> usize {
        self.pos
    }

    /// Finishes a frame body. One that would be empty (every field at its default) gets its
    /// field 1 written as 0, which decodes the same: the original Lars aborts on a frame with
    /// an empty body (LARS-REFERENCE D-R-3), so a `{0, 0}` pull would kill an original lars_dns.
    pub(crate) fn finish_body(mut self) -> Result<usize, Error> {
        if self.pos == 0 {
            self.key(1, VARINT)?;
            self.varint(0)?;
        }
        Ok(self.pos)
    }

    pub(crate) fn varint(&mut self, mut value: u64) -> Result<(), Error> {
        loop {
            let slot = self.out.get_mut(self.pos).ok_or(Error::BufferTooSmall)?;
            self.pos += 1;
            if value < 0x80 {
                *slot = value as u8;
                return Ok(());
            }
            *slot = (value as u8) | 0x80;
            value >>= 7;
        }
    }

    fn key(&mut self, field: u32, wire_type: u8) -> Result<(), Error> {
        self.varint(u64::from(field) << 3 | u64::from(wire_type))
    }

    pub(crate) fn int32(&mut self, field: u32, value: i32) -> Result<(), Error> {
        if value == 0 {
            return Ok(());
        }
        self.key(field, VARINT)?;
        self.varint(value as i64 as u64)
    }

    pub(crate) fn uint32(&mut self, field: u32, value: u32) -> Result<(), Error> {
        if value == 0 {
            return Ok(());
        }
        self.key(field, VARINT)?;
        self.varint(u64::from(value))
    }

    pub(crate) fn bool(&mut self, field: u32, value: bool) -> Result<(), Error> {
        if !value {
            return Ok(());
        }
        self.key(field, VARINT)?;
        self.varint(1)
    }

    /// Writes a sub-message of `len` bytes whose fields `body` writes.
    pub(crate) fn message(
        &mut self,
        field: u32,
        len: usize,
        body: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.key(field, LEN)?;
        self.varint(len as u64)?;
        let start = self.pos;
        body(self)?;
        debug_assert_eq!(self.pos - start, len, "sub-message length disagrees with its body");
        Ok(())
    }
}

/// Bytes taken by `value` as a varint.
pub(crate) const fn varint_len(value: u64) -> usize {
    // One byte per started group of 7 bits; zero still takes a byte.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn key_len(field: u32) -> usize {
    varint_len(u64::from(field) << 3)
}

/// The length of a frame body whose fields take `len` bytes (see [`Writer::finish_body`]).
pub(crate) const fn body_len(len: usize) -> usize {
    if len == 0 { 2 } else { len }
}

pub(crate) fn int32_len(field: u32, value: i32) -> usize {
    if value == 0 { 0 } else { key_len(field) + varint_len(value as i64 as u64) }
}

pub(crate) fn uint32_len(field: u32, value: u32) -> usize {
    if value == 0 { 0 } else { key_len(field) + varint_len(u64::from(value)) }
}

pub(crate) fn bool_len(field: u32, value: bool) -> usize {
    if value { key_len(field) + 1 } else { 0 }
}

pub(crate) fn message_len(field: u32, len: usize) -> usize {
    key_len(field) + varint_len(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths() {
        for (value, len) in [(0, 1), (1, 1), (127, 1), (128, 2), (16383, 2), (16384, 3), (u64::MAX, 10)] {
            assert_eq!(varint_len(value), len, "{value}");
            let mut buf = [0xa5; 10];
            let mut w = Writer::new(&mut buf);
            w.varint(value).unwrap();
            assert_eq!(w.finish(), len);
            assert_eq!(Reader::new(&buf[..len]).varint(), Ok(value));
        }
    }

    #[test]
    fn negative_int32_takes_ten_bytes() {
        let mut buf = [0xa5; 11];
        let mut w = Writer::new(&mut buf);
        w.int32(1, -1).unwrap();
        assert_eq!(w.finish(), 11);
        assert_eq!(buf, [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(int32_len(1, -1), 11);
        let mut r = Reader::new(&buf);
        assert_eq!(r.next_key(), Ok(Some(varint_key(1))));
        assert_eq!(r.varint().map(|v| v as i32), Ok(-1));
        assert_eq!(r.next_key(), Ok(None));
    }

    #[test]
    fn malformed_varints() {
        assert_eq!(Reader::new(&[0x80, 0x80]).varint(), Err(Error::Truncated));
        assert_eq!(Reader::new(&[0xff; 10]).varint(), Err(Error::BadVarint));
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).varint(),
            Err(Error::BadVarint)
        );
        assert_eq!(Reader::new(&[]).skip(0x00, 0), Err(Error::BadValue));
    }

    #[test]
    fn skips_every_known_wire_type_and_refuses_groups() {
        let bytes = [0x08, 0x96, 0x01, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1a, 2, 9, 9, 0x25, 1, 2, 3, 4];
        let mut r = Reader::new(&bytes);
        while let Some(key) = r.next_key().unwrap() {
            r.skip(key, 0).unwrap();
        }
        assert_eq!(Reader::new(&[]).skip(0x0b, 0), Err(Error::BadWireType { field: 1, wire_type: 3 }));
        assert_eq!(
            Reader::new(&[1]).skip(varint_key(2), 2),
            Err(Error::BadWireType { field: 2, wire_type: 0 })
        );
        assert_eq!(Reader::new(&[5, 1]).skip(len_key(3), 0), Err(Error::Truncated));
    }
}
