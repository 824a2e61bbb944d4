//! Content digests and the streaming adapters that compute or check them.
//!
//! Every blob stevedore writes or reads passes through one of these adapters, so a digest is
//! always computed from the bytes that actually moved, never by reading a file back.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A `sha256:<64 lowercase hex>` content digest.
///
/// ```
/// use stevedore_oci::Digest;
///
/// let digest = Digest::of(b"hello");
/// assert_eq!(
///     digest.to_string(),
///     "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
/// );
/// assert_eq!(digest.to_string().parse::<Digest>().unwrap(), digest);
/// assert!("sha512:00".parse::<Digest>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

/// Text that is not a `sha256:<64 lowercase hex>` digest, refused when parsed as a [`Digest`]
/// (an `oci-spec` digest of another algorithm is refused the same way).
#[derive(Debug, thiserror::Error)]
#[error(
    "`{input}` is not a sha256 digest (expected `sha256:` followed by 64 lowercase hex characters)"
)]
pub struct ParseDigestError {
    input: String,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(hasher: Sha256) -> Self {
        Digest(format!("sha256:{:x}", hasher.finalize()))
    }

    /// The 64 hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The whole digest, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same digest as an `oci-spec` value, for descriptors.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        // A validated sha256 digest always parses.
        oci_spec::image::Digest::from_str(&self.0).expect("sha256 digest is a valid OCI digest")
    }
}

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if valid {
            Ok(Digest(s.to_owned()))
        } else {
            Err(ParseDigestError {
                input: s.to_owned(),
            })
        }
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = ParseDigestError;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        d.as_ref().parse()
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    /// `inner`, wrapped: every byte written from now on is hashed and counted.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The inner writer, the digest and the byte count of what went through.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.size)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that fails at end of stream unless the bytes read match the expected digest and size.
///
/// The failure is an `io::Error` of kind `InvalidData`, so whatever consumes the stream (a file
/// write, an upload) stops before committing corrupt content.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    expected: Digest,
    expected_size: Option<u64>,
}

impl<R: Read> VerifyingReader<R> {
    /// A reader of `inner` that fails at its end unless it held exactly the content of
    /// `expected` (and `expected_size` bytes, when given).
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
            expected,
            expected_size,
        }
    }

    fn check(&self) -> io::Result<()> {
        if let Some(size) = self.expected_size {
            if self.read != size {
                return Err(invalid(format!(
                    "blob {} is {} bytes, expected {size}",
                    self.expected, self.read
                )));
            }
        }
        let actual = Digest::from_hasher(self.hasher.clone());
        if actual != self.expected {
            return Err(invalid(format!(
                "content digest mismatch: expected {}, got {actual}",
                self.expected
            )));
        }
        Ok(())
    }
}

/// Content that is not what its digest or size says: the error inside the `io::Error` a
/// [`VerifyingReader`] fails with, so callers can tell it from a broken transfer by its type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ContentMismatch(String);

impl ContentMismatch {
    /// Whether `e` is a failed content check (and not, say, a broken connection or full disk).
    pub fn is(e: &io::Error) -> bool {
        e.get_ref()
            .is_some_and(|inner| inner.is::<ContentMismatch>())
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, ContentMismatch(msg))
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check()?;
        } else {
            self.hasher.update(&buf[..n]);
            self.read += n as u64;
            if self.expected_size.is_some_and(|size| self.read > size) {
                return Err(invalid(format!(
                    "blob {} is larger than its descriptor says ({} bytes)",
                    self.expected,
                    self.expected_size.unwrap_or_default()
                )));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_rejects() {
        assert_eq!(Digest::of(b"").as_str(), EMPTY);
        assert!(EMPTY.parse::<Digest>().is_ok());
        for bad in [
            "sha256:abc",
            "sha512:00",
            &EMPTY.to_uppercase(),
            "e3b0c442",
            "",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn hashing_writer_counts_and_hashes() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (buf, digest, size) = w.finish();
        assert_eq!(size, 11);
        assert_eq!(digest, Digest::of(&buf));
    }

    #[test]
    fn verifying_reader_rejects_wrong_content() {
        let good = Digest::of(b"abc");
        let mut out = Vec::new();
        VerifyingReader::new(&b"abc"[..], good.clone(), Some(3))
            .read_to_end(&mut out)
            .unwrap();
        let err = VerifyingReader::new(&b"abd"[..], good.clone(), Some(3))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let err = VerifyingReader::new(&b"abcd"[..], good, Some(3)).read_to_end(&mut Vec::new());
        assert!(err.is_err());
    }
}
