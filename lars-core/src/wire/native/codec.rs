//! The postcard primitives the native bodies are made of (`wire` layer), written by hand.
//!
//! - Unsigned integers are LEB128 varints: 7 bits a byte, low bits first, the top bit set on
//!   every byte but the last. A decoder refuses more bytes than the type needs (3 for `u16`, 5
//!   for `u32`, 10 for `u64`) and a last byte with bits the type does not have (`BadVarint`).
//! - `i32` is zigzag-encoded (0, -1, 1, -2 … become 0, 1, 2, 3 …) and then a `u32` varint.
//! - `bool` and an `Option`'s tag are one byte, 0 or 1; anything else is `BadValue`.
//! - An enum is its variant's index as a `u32` varint.
//! - A socket address is an enum: tag 0 and four address bytes, or tag 1 and sixteen, then the
//!   port as a `u16` varint. (IPv6 flow and scope ids are not carried.)
//! - A string and a list are a varint length, then the UTF-8 bytes or the items.
//!
//! Encoding goes through a [`Writer`] that remembers running out of room rather than panicking,
//! so `emit` never panics and fails only with `BufferTooSmall`.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::wire::{Error, List};

/// One value of a native body: its encoded length, its encoding and its decoding.
pub(super) trait Field<'a>: Sized {
    /// The exact number of bytes [`Field::put`] writes.
    fn encoded_len(&self) -> usize;
    /// Writes the value.
    fn put(&self, out: &mut Writer<'_>);
    /// Takes one value off the front of `input`.
    fn take(input: &mut &'a [u8]) -> Result<Self, Error>;
}

/// Writes into a caller's buffer, noting (instead of panicking) when it is too small.
pub(super) struct Writer<'b> {
    out: &'b mut [u8],
    len: usize,
    overflow: bool,
}

impl<'b> Writer<'b> {
    pub(super) fn new(out: &'b mut [u8]) -> Self {
        Writer { out, len: 0, overflow: false }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        match self.out.get_mut(self.len..self.len + bytes.len()) {
            Some(room) if !self.overflow => {
                room.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            _ => self.overflow = true,
        }
    }

    /// The length written, or `BufferTooSmall` if anything did not fit.
    pub(super) fn finish(self) -> Result<usize, Error> {
        if self.overflow { Err(Error::BufferTooSmall) } else { Ok(self.len) }
    }
}

/// Fails with `TrailingBytes` unless the body was used up.
pub(super) fn finish(rest: &[u8]) -> Result<(), Error> {
    if rest.is_empty() { Ok(()) } else { Err(Error::TrailingBytes) }
}

fn take_byte(input: &mut &[u8]) -> Result<u8, Error> {
    let (&first, rest) = input.split_first().ok_or(Error::Truncated)?;
    *input = rest;
    Ok(first)
}

fn take_bytes<'a>(input: &mut &'a [u8], len: usize) -> Result<&'a [u8], Error> {
    if input.len() < len {
        return Err(Error::Truncated);
    }
    let (taken, rest) = input.split_at(len);
    *input = rest;
    Ok(taken)
}

fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut Writer<'_>, mut value: u64) {
    let mut buf = [0u8; 10];
    let mut len = 0;
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            buf[len] = low;
            len += 1;
            break;
        }
        buf[len] = low | 0x80;
        len += 1;
    }
    out.bytes(&buf[..len]);
}

/// A varint of a type `bits` wide: at most `ceil(bits / 7)` bytes, the last holding only the
/// bits that remain.
fn take_varint(input: &mut &[u8], bits: u32) -> Result<u64, Error> {
    let max_bytes = bits.div_ceil(7);
    let last_bits = bits - 7 * (max_bytes - 1);
    let mut value = 0u64;
    for i in 0..max_bytes {
        let byte = take_byte(input)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i == max_bytes - 1 && u32::from(byte) >> last_bits != 0 {
                return Err(Error::BadVarint);
            }
            return Ok(value);
        }
    }
    Err(Error::BadVarint)
}

macro_rules! unsigned {
    ($($ty:ty),*) => {$(
        impl<'a> Field<'a> for $ty {
            fn encoded_len(&self) -> usize {
                varint_len(u64::from(*self))
            }

            fn put(&self, out: &mut Writer<'_>) {
                put_varint(out, u64::from(*self))
            }

            fn take(input: &mut &'a [u8]) -> Result<Self, Error> {
                // `take_varint` refuses values wider than the type, so this cannot truncate.
                take_varint(input, <$ty>::BITS).map(|value| value as $ty)
            }
        }
    )*};
}

unsigned!(u16, u32, u64);

impl<'a> Field<'a> for i32 {
    fn encoded_len(&self) -> usize {
        zigzag(*self).encoded_len()
    }

    fn put(&self, out: &mut Writer<'_>) {
        zigzag(*self).put(out)
    }

    fn take(input: &mut &'a [u8]) -> Result<Self, Error> {
        let n = u32::take(input)?;
        Ok(((n >> 1) as i32) ^ -((n & 1) as i32))
    }
}

fn zigzag(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

impl<'a> Field<'a> for bool {
    fn encoded_len(&self) -> usize {
        1
    }

    fn put(&self, out: &mut Writer<'_>) {
        out.bytes(&[u8::from(*self)])
    }

    fn take(input: &mut &'a [u8]) -> Result<Self, Error> {
        match take_byte(input)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::BadValue),
        }
    }
}

/// A fixed-size byte array (a nonce, a MAC): its bytes as they are, no length, as postcard
/// writes a `[u8; N]` (a tuple of `u8`s).
impl<'a, const N: usize> Field<'a> for [u8; N] {
    fn encoded_len(&self) -> usize {
        N
    }

    fn put(&self, out: &mut Writer<'_>) {
        out.bytes(self)
    }

    fn take(input: &mut &'a [u8]) -> Result<Self, Error> {
        let mut value = [0u8; N];
        value.copy_from_slice(take_bytes(input, N)?);
        Ok(value)
    }
}

impl<'a, T: Field<'a>> Field<'a> for Option<T> {
    fn encoded_len(&self) -> usize {
        1 + self.as_ref().map_or(0, T::encoded_len)
    }

    fn put(&self, out: &mut Writer<'_>) {
        out.bytes(&[u8::from(self.is_some())]);
        if let Some(value) = self {
            value.put(out);
        }
    }

    fn take(input: &mut &'a [u8]) -> Result<Self, Error> {
        match take_byte(input)? {
            0 => Ok(None),
            1 => T::take(input).map(Some),
            _ => Err(Error::BadValue),
        }
    }
}

impl<'a> Field<'a> for SocketAddr {
    fn encoded_len(&self) -> usize {
        match self {
            SocketAddr::V4(_) => 1 + 4 + self.port().encoded_len(),
            SocketAddr::V6(_) => 1 + 16 + self.port().encoded_len(),
        }
    }

    fn put(&self, out: &mut Writer<'_>) {
        match self {
            SocketAddr::V4(addr) => {
                out.bytes(&[0]);
                out.bytes(&addr.ip().octets());
            }
            SocketAddr::V6(addr) => {
                out.bytes(&[1]);
                out.bytes(&addr.ip().octets());
            }
        }
        self.port().put(out);
    }

    fn take(input: &mut &'a [u8]) -> Result<Self, Error> {
        match u32::take(input)? {
            0 => {
                let mut octets = [0u8; 4];
                octets.copy_from_slice(take_bytes(input, 4)?);
                let port = u16::take(input)?;
                Ok(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(octets), port)))
            }
            1 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(take_bytes(input, 16)?);
                let port = u16::take(input)?;
                Ok(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(octets), port, 0, 0)))
            }
            _ => Err(Error::BadValue),
        }
    }
}

/// A length: a varint as wide as the platform's `usize`.
fn take_len(input: &mut &[u8]) -> Result<usize, Error> {
    take_varint(input, usize::BITS).map(|len| len as usize)
}

impl<'a> Field<'a> for &'a str {
    fn encoded_len(&self) -> usize {
        varint_len(self.len() as u64) + self.len()
    }

    fn put(&self, out: &mut Writer<'_>) {
        put_varint(out, self.len() as u64);
        out.bytes(self.as_bytes());
    }

    fn take(input: &mut &'a [u8]) -> Result<Self, Error> {
        let len = take_len(input)?;
        core::str::from_utf8(take_bytes(input, len)?).map_err(|_| Error::BadValue)
    }
}

impl<'a, T: Field<'a> + Copy> Field<'a> for List<'a, T> {
    fn encoded_len(&self) -> usize {
        varint_len(self.len() as u64) + self.iter().map(|item| item.encoded_len()).sum::<usize>()
    }

    fn put(&self, out: &mut Writer<'_>) {
        put_varint(out, self.len() as u64);
        for item in self.iter() {
            item.put(out);
        }
    }

    /// Validates every item once; the list then walks the validated bytes in place.
    fn take(input: &mut &'a [u8]) -> Result<Self, Error> {
        let len = take_len(input)?;
        // Every item type here encodes to at least one byte, so a count above the bytes left is
        // truncated; checking first bounds the loop by the input size, not by the claimed count.
        if len > input.len() {
            return Err(Error::Truncated);
        }
        let items = *input;
        for _ in 0..len {
            T::take(input)?;
        }
        Ok(List::encoded(items, len, |bytes| T::take(bytes).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode<'a>(value: &impl Field<'a>) -> ([u8; 16], usize) {
        let mut buf = [0xa5; 16];
        let mut writer = Writer::new(&mut buf);
        value.put(&mut writer);
        let len = writer.finish().unwrap();
        assert_eq!(len, value.encoded_len());
        (buf, len)
    }

    #[test]
    fn varints_and_zigzag() {
        let cases: [(u64, &[u8]); 5] =
            [(0, &[0]), (127, &[0x7f]), (128, &[0x80, 0x01]), (300, &[0xac, 0x02]), (u64::MAX, &[0xff; 9])];
        for (value, bytes) in cases {
            let (buf, len) = encode(&value);
            assert_eq!(&buf[..bytes.len()], bytes, "{value}");
            if value == u64::MAX {
                assert_eq!((len, buf[9]), (10, 0x01));
            } else {
                assert_eq!(len, bytes.len());
            }
            let mut input = &buf[..len];
            assert_eq!(u64::take(&mut input), Ok(value));
        }
        for (value, zigzagged) in
            [(0, 0u32), (-1, 1), (1, 2), (-2, 3), (i32::MIN, u32::MAX), (i32::MAX, u32::MAX - 1)]
        {
            assert_eq!(zigzag(value), zigzagged);
            let (buf, len) = encode(&value);
            assert_eq!(i32::take(&mut &buf[..len]), Ok(value));
        }
    }

    #[test]
    fn a_varint_wider_than_its_type_is_refused() {
        assert_eq!(u16::take(&mut &[0xff, 0xff, 0x03][..]), Ok(u16::MAX));
        assert_eq!(u16::take(&mut &[0xff, 0xff, 0x04][..]), Err(Error::BadVarint));
        assert_eq!(u16::take(&mut &[0x80, 0x80, 0x80, 0x00][..]), Err(Error::BadVarint));
        assert_eq!(u32::take(&mut &[0xff, 0xff, 0xff, 0xff, 0x0f][..]), Ok(u32::MAX));
        assert_eq!(u32::take(&mut &[0xff, 0xff, 0xff, 0xff, 0x10][..]), Err(Error::BadVarint));
        assert_eq!(u32::take(&mut &[0x80][..]), Err(Error::Truncated));
    }

    #[test]
    fn a_short_buffer_is_an_error_not_a_panic() {
        let mut buf = [0u8; 2];
        let mut writer = Writer::new(&mut buf);
        "abc".put(&mut writer);
        assert_eq!(writer.finish(), Err(Error::BufferTooSmall));
    }
}
