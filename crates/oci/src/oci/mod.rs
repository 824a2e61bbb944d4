//! The OCI vocabulary every stage shares: media types, descriptors, canonical JSON, the base
//! image a build starts from, the caps on documents read whole, and reading a layer's tar with
//! bounded memory. It imports nothing of the pipeline, so any stage may use it.

pub mod base;
pub mod compression;
pub mod descriptor;
pub mod entries;
pub mod json;
pub mod limits;
pub mod media;

pub use base::BaseImage;
pub use compression::{decompress, Compression};
pub use descriptor::Descriptor;
pub use json::{canonical_json, rfc3339};
