//! The byte-vector check shared by both codecs' tests.

use std::vec;

use super::{Decode, Encode, Error};

/// Parses `bytes` into `expected`, and emits `expected` back into exactly `bytes`: the same
/// length as `buffer_len`, nothing written past it, and `BufferTooSmall` one byte short.
pub(crate) fn check_quartet<'a, M>(bytes: &'a [u8], expected: M)
where
    M: Decode<'a> + Encode + PartialEq + core::fmt::Debug,
{
    assert_eq!(M::parse(bytes).unwrap(), expected);
    assert_eq!(expected.buffer_len(), bytes.len());
    let mut out = vec![0xa5; bytes.len() + 4];
    let n = expected.emit(&mut out).unwrap();
    assert_eq!(&out[..n], bytes);
    assert!(out[n..].iter().all(|&b| b == 0xa5), "wrote past its length");
    if !bytes.is_empty() {
        assert_eq!(expected.emit(&mut out[..bytes.len() - 1]), Err(Error::BufferTooSmall));
    }
}
