//! The OCI vocabulary every stage shares: media types, canonical JSON, and the base image a
//! build starts from. It imports nothing of the pipeline, so any stage may use it.

pub mod base;
pub mod compression;
pub mod json;
pub mod media;

pub use base::BaseImage;
pub use compression::Compression;
pub use json::{canonical_json, rfc3339};
