//! The first difference between two images: between two layers (`layers.rs`), or two JSON
//! documents (`documents.rs`).
//!
//! `verify` uses this when a rebuilt image's digest differs from a published one, so the user
//! learns which file broke reproducibility instead of two digests. Layers stream: entries are
//! walked in lockstep and each entry's content is hashed as it is read, so a multi-gigabyte
//! layer costs a few buffers, not its size.

mod documents;
mod layers;

use std::fmt;
use std::io;

pub use documents::json;
pub use layers::layers;

/// Which image something belongs to: the one just rebuilt, or the published one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The image just rebuilt.
    Ours,
    /// The published image it is compared with.
    Theirs,
}

impl Side {
    fn possessive(self) -> &'static str {
        match self {
            Side::Ours => "our",
            Side::Theirs => "their",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Ours => "ours",
            Side::Theirs => "theirs",
        })
    }
}

/// Why two images cannot be compared: one side's layer or document cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// A layer cannot be decompressed or is not a valid tar archive.
    #[error("cannot read {} layer", .side.possessive())]
    Layer {
        /// Whose layer.
        side: Side,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A document (config, manifest or index) is not valid JSON.
    #[error("{} document is not valid JSON", .side.possessive())]
    Json {
        /// Whose document.
        side: Side,
        /// Where the JSON is broken.
        #[source]
        source: serde_json::Error,
    },
}
