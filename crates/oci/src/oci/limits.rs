//! How much of a document from elsewhere stevedore reads whole. A descriptor's size is what a
//! stranger declares; read up to it, a base whose config claims 64 MiB costs 64 MiB. Each kind
//! of document has its cap here, checked against the declared size before a byte is fetched.
//! containers/image caps manifests, configs and signatures at 4 MiB; so does stevedore, and
//! every other document it reads whole gets the same.

use std::io::{self, Read};

/// A kind of document read whole, and the most of it that is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// What it is, in words: `config`, `signature payload`.
    pub what: &'static str,
    /// The most of it that is read, in bytes.
    pub max: u64,
}

const FOUR_MIB: u64 = 4 << 20;

/// An image manifest or index (a base's, a published image's, a cosign tag's).
pub const MANIFEST: Cap = Cap {
    what: "manifest",
    max: FOUR_MIB,
};
/// An image config.
pub const CONFIG: Cap = Cap {
    what: "config",
    max: FOUR_MIB,
};
/// The referrers API's index of what refers to an image.
pub const REFERRERS: Cap = Cap {
    what: "referrers index",
    max: FOUR_MIB,
};
/// An OCI layout's `index.json`.
pub const LAYOUT_INDEX: Cap = Cap {
    what: "layout's index.json",
    max: FOUR_MIB,
};
/// A cosign signature's payload (simple signing JSON).
pub const SIGNATURE: Cap = Cap {
    what: "signature payload",
    max: FOUR_MIB,
};
/// A provenance attestation's DSSE envelope.
pub const PROVENANCE: Cap = Cap {
    what: "provenance envelope",
    max: FOUR_MIB,
};

/// A document refused before it was read: too large, or of no declared size.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Its descriptor declares more than the cap.
    #[error(
        "the {what} of {whose} is {size} bytes, more than the {max} bytes stevedore reads of \
         one (containers/image's cap too), so it was not downloaded. No tool that builds images \
         writes one that large: use another image, or ask its publisher what it holds"
    )]
    TooLarge {
        /// The kind of document, as its [`Cap`] names it.
        what: &'static str,
        /// The image (or other source) the document belongs to, for the message.
        whose: String,
        /// The size in bytes its descriptor declares.
        size: u64,
        /// The cap in bytes.
        max: u64,
    },
    /// Its descriptor has no size (or 0), which a valid descriptor always has.
    #[error(
        "the descriptor of the {what} of {whose} declares no size, so stevedore cannot bound \
         what it reads (at most {max} bytes) and refuses it. Every OCI descriptor has a size; \
         republish the image with a tool that writes it"
    )]
    NoSize {
        /// The kind of document, as its [`Cap`] names it.
        what: &'static str,
        /// The image (or other source) the document belongs to, for the message.
        whose: String,
        /// The cap in bytes.
        max: u64,
    },
    /// It turned out larger than the cap while read.
    #[error(
        "the {what} of {whose} is more than the {max} bytes stevedore reads of one \
         (containers/image's cap too), so reading it stopped there. No tool that builds images \
         writes one that large: use another image, or ask its publisher what it holds"
    )]
    Overran {
        /// The kind of document, as its [`Cap`] names it.
        what: &'static str,
        /// The image (or other source) the document belongs to, for the message.
        whose: String,
        /// The cap in bytes, where reading stopped.
        max: u64,
    },
}

impl Cap {
    /// The declared `size` when it is within the cap; `whose` names the image for the error.
    pub fn check(self, size: Option<u64>, whose: &str) -> Result<u64, Refused> {
        match size {
            None | Some(0) => Err(Refused::NoSize {
                what: self.what,
                whose: whose.to_owned(),
                max: self.max,
            }),
            Some(size) if size > self.max => Err(Refused::TooLarge {
                what: self.what,
                whose: whose.to_owned(),
                size,
                max: self.max,
            }),
            Some(size) => Ok(size),
        }
    }

    /// `reader` whole, or `None` when it holds more than the cap (reading stops just past it).
    pub fn read(self, reader: impl Read) -> io::Result<Option<Vec<u8>>> {
        let mut bytes = Vec::new();
        reader.take(self.max + 1).read_to_end(&mut bytes)?;
        Ok((bytes.len() as u64 <= self.max).then_some(bytes))
    }

    /// The error for a document that ran past the cap while read (where no size was declared
    /// beforehand: a file of a layout).
    pub fn overran(self, whose: &str) -> Refused {
        Refused::Overran {
            what: self.what,
            whose: whose.to_owned(),
            max: self.max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_size_is_checked_before_reading() {
        assert_eq!(CONFIG.check(Some(1234), "base").unwrap(), 1234);
        assert_eq!(CONFIG.check(Some(4 << 20), "base").unwrap(), 4 << 20);
        let err = CONFIG
            .check(Some(64 << 20), "docker.io/library/x")
            .unwrap_err();
        assert!(
            matches!(err, Refused::TooLarge { size, max, .. } if size == 64 << 20 && max == 4 << 20)
        );
        assert!(
            err.to_string().starts_with(
                "the config of docker.io/library/x is 67108864 bytes, more than the 4194304"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_missing_or_zero_size_is_refused() {
        for size in [None, Some(0)] {
            let err = SIGNATURE.check(size, "r/x@sha256:ab").unwrap_err();
            assert!(matches!(
                err,
                Refused::NoSize {
                    what: "signature payload",
                    ..
                }
            ));
            assert!(err
                .to_string()
                .contains("signature payload of r/x@sha256:ab declares no size"));
        }
    }

    #[test]
    fn a_stream_is_read_up_to_the_cap() {
        let cap = Cap {
            what: "test",
            max: 4,
        };
        assert_eq!(cap.read(&b"abcd"[..]).unwrap(), Some(b"abcd".to_vec()));
        assert_eq!(cap.read(&b"abcde"[..]).unwrap(), None);
        // An endless stream costs the cap and a byte, then stops.
        assert_eq!(cap.read(std::io::repeat(b'x')).unwrap(), None);
    }

    #[test]
    fn every_document_is_capped_at_four_mib() {
        for cap in [
            MANIFEST,
            CONFIG,
            REFERRERS,
            LAYOUT_INDEX,
            SIGNATURE,
            PROVENANCE,
        ] {
            assert_eq!(cap.max, 4 << 20, "{}", cap.what);
            assert!(cap.check(Some(cap.max + 1), "x").is_err());
        }
    }
}
