//! stevedore-oci: the words OCI images are spoken in, and a registry client that speaks them.
//!
//! The vocabulary: [`Digest`] (`sha256:<hex>`, checked while streaming), [`Reference`]
//! (`registry/repository:tag@digest` with docker's defaults), [`Platform`], [`Descriptor`], the
//! media types and documents in [`oci`], and [`cache::BlobStore`], the content-addressed store
//! blobs enter by rename. The client: [`registry::Registry`] pulls, resolves and pushes over the
//! distribution API with auth (basic, bearer tokens, docker's and podman's credential files and
//! helpers), bounded retries and a trust boundary (a credential goes only to its own origin). It
//! is blocking and needs no async runtime. [`source::ImageSource`] reads a published image the
//! same way from a registry, an OCI layout or an OCI archive.
//!
//! This crate is the bottom of stevedore's stack (ARCHITECTURE.md) and knows nothing of Cargo:
//! use it alone to read or write images in a registry.

// Errors carry the context a user needs (URLs, digests, paths); they are built once, on the
// way out, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]
#![warn(missing_docs)]

pub mod cache;
pub mod digest;
pub mod env;
// Entry points for the fuzz targets in fuzz/; cargo-fuzz builds with `--cfg fuzzing`.
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
pub mod oci;
pub mod platform;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod source;
pub mod text;

pub use digest::Digest;
pub use oci::{Compression, Descriptor};
pub use platform::{GlibcVersion, Libc, Platform};
pub use reference::{Base, Reference};
