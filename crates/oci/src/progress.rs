//! Progress of blob transfers, reported by the library and drawn (or not) by the caller.
//!
//! A [`Registry`](crate::registry::Registry) reports each blob it downloads to the [`Progress`]
//! given to its `with_progress` (to [`Silent`] without one); an uploader reports its pushes to
//! the same trait. Drawing bars is the caller's business, so this crate needs no terminal.

use crate::digest::Digest;

/// Receives byte counts of blob transfers; implementations must be cheap and thread-safe.
pub trait Progress: Send + Sync {
    /// A transfer of `total` bytes of `digest` begins (`verb`: "pull" or "push").
    fn start(&self, verb: &'static str, digest: &Digest, total: u64);
    /// `bytes` more of `digest` moved.
    fn advance(&self, digest: &Digest, bytes: u64);
    /// The transfer of `digest` ended, whether or not it succeeded.
    fn finish(&self, digest: &Digest);
}

/// Reports nothing: for scripts, CI logs and library users who do not care.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &'static str, _: &Digest, _: u64) {}
    fn advance(&self, _: &Digest, _: u64) {}
    fn finish(&self, _: &Digest) {}
}

/// A reader that reports what passes through it.
pub(crate) struct Counted<R> {
    pub(crate) inner: R,
    pub(crate) digest: Digest,
    pub(crate) progress: std::sync::Arc<dyn Progress>,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(&self.digest, n as u64);
        Ok(n)
    }
}
