//! [`Buf`]: one block of the pool with its cursors, returned on drop (`pool` layer; safe code).

use core::fmt;

use super::*;

/// A block from a [`BufPool`], returned to it on drop: the original's `io_buf`.
///
/// The valid bytes are `data()`, a window `[head, head + len)` of the block. Readers
/// [`consume`](Buf::consume) from the front; writers fill [`spare_mut`](Buf::spare_mut) and
/// [`commit`](Buf::commit), or [`append`](Buf::append). Every method clamps instead of panicking.
pub struct Buf<'p> {
    pub(super) class: &'p Class<'p>,
    pub(super) index: usize,
    pub(super) block: &'p mut [u8],
    pub(super) head: usize,
    pub(super) len: usize,
}

impl Buf<'_> {
    /// Bytes the block holds.
    pub fn capacity(&self) -> usize {
        self.block.len()
    }

    /// Valid bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no valid bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Which block of its class this is; unique among the class's live buffers.
    pub fn block_index(&self) -> usize {
        self.index
    }

    /// The valid bytes.
    pub fn data(&self) -> &[u8] {
        &self.block[self.head..self.head + self.len]
    }

    /// The valid bytes, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.block[self.head..self.head + self.len]
    }

    /// Drops up to `n` valid bytes from the front. When none remain, the window moves back to the
    /// start of the block.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head += n;
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }

    /// Moves the valid bytes to the start of the block, making all free space contiguous.
    pub fn compact(&mut self) {
        if self.head != 0 {
            self.block.copy_within(self.head..self.head + self.len, 0);
            self.head = 0;
        }
    }

    /// The free space after the valid bytes, to be filled and then [`commit`](Buf::commit)ted.
    pub fn spare_mut(&mut self) -> &mut [u8] {
        &mut self.block[self.head + self.len..]
    }

    /// Marks up to `n` bytes of the spare space as valid.
    pub fn commit(&mut self, n: usize) {
        self.len += n.min(self.block.len() - self.head - self.len);
    }

    /// Copies as much of `bytes` as fits after the valid bytes (compacting first if that makes
    /// room) and returns how many were copied.
    pub fn append(&mut self, bytes: &[u8]) -> usize {
        if self.spare_mut().len() < bytes.len() {
            self.compact();
        }
        let spare = self.spare_mut();
        let n = bytes.len().min(spare.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }

    /// Drops every valid byte.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

impl Drop for Buf<'_> {
    fn drop(&mut self) {
        let index = self.index as u16;
        self.class.give_nodes(index, index, 1, 1);
    }
}

impl fmt::Debug for Buf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buf")
            .field("capacity", &self.capacity())
            .field("block", &self.index)
            .field("head", &self.head)
            .field("len", &self.len)
            .finish()
    }
}
