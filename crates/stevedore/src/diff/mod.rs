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
    Ours,
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

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("cannot read {} layer", .side.possessive())]
    Layer {
        side: Side,
        #[source]
        source: io::Error,
    },
    #[error("{} document is not valid JSON", .side.possessive())]
    Json {
        side: Side,
        #[source]
        source: serde_json::Error,
    },
}
