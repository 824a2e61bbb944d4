//! A CRC-32 and byte count of a stream, for checking that the compressing pass over a layer's
//! sources wrote the tar the hashing pass hashed; and a stop for the compressing pass. SHA-256
//! costs about 70 ms a 100 MB on this machine's cores; CRC-32 (crc32fast, with the CPU's
//! carry-less multiply) a tenth of that.
//! A CRC finds an accidental change (a binary rewritten between the passes), which is all the
//! second pass guards against: whoever can write the binary chooses the image anyway.

use std::io::{self, Write};
use std::sync::mpsc::Receiver;

/// Passes writes through to `inner`, tallying them.
pub(super) struct Tally<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

/// What went through a [`Tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sum {
    pub(super) crc: u32,
    pub(super) len: u64,
}

impl<W: Write> Tally<W> {
    pub(super) fn new(inner: W) -> Self {
        Tally {
            inner,
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    pub(super) fn finish(self) -> (W, Sum) {
        let sum = Sum {
            crc: self.crc.finalize(),
            len: self.len,
        };
        (self.inner, sum)
    }
}

impl<W: Write> Write for Tally<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Passes writes through to `inner` until the hashing pass, running beside this one, tells it
/// the store already holds the layer; then fails them, so a compression that is not needed ends
/// at its next write. [`Stoppable::finish`] waits for that word, so no such layer is filed.
pub(super) struct Stoppable<'a, W> {
    inner: W,
    told: &'a Receiver<bool>,
    held: Option<bool>,
}

impl<'a, W> Stoppable<'a, W> {
    pub(super) fn new(inner: W, told: &'a Receiver<bool>) -> Self {
        Stoppable {
            inner,
            told,
            held: None,
        }
    }

    /// After the last write: waits until the hashing pass has looked, and fails when the store
    /// holds the layer (or the hashing pass ended without a word, having failed itself).
    pub(super) fn finish(self) -> io::Result<W> {
        match self.held.or_else(|| self.told.recv().ok()) {
            Some(false) => Ok(self.inner),
            _ => Err(stopped()),
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("stopped: the store holds this layer")
}

impl<W: Write> Write for Stoppable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.held.is_none() {
            self.held = self.told.try_recv().ok();
        }
        if self.held == Some(true) {
            return Err(stopped());
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_byte_or_length_changes_the_sum() {
        let sum = |bytes: &[u8]| {
            let mut tally = Tally::new(Vec::new());
            tally.write_all(bytes).unwrap();
            let (out, sum) = tally.finish();
            assert_eq!(out, bytes);
            sum
        };
        let data = vec![7u8; 1 << 20];
        let mut changed = data.clone();
        changed[12345] = 8;
        assert_eq!(sum(&data), sum(&data.clone()));
        assert_ne!(sum(&data), sum(&changed));
        assert_ne!(sum(&data), sum(&data[1..]));
        assert_eq!(sum(&data).len, 1 << 20);
    }
}
