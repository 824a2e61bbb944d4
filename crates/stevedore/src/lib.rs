//! stevedore: build OCI images of Rust services with no Docker daemon.
//!
//! [`Build`] is the front door: describe the image in a few calls, run it, get digests back.
//! The pipeline behind it runs plan → compile → layer → assemble → publish (see
//! ARCHITECTURE.md); the public modules are the parts a caller may want on their own:
//! [`plan`] (what would be built, with no side effects), [`publish`] (outputs, pushes and
//! `index create`), [`verify`] (comparing a rebuild with a published image) and [`resolve`]
//! (`stevedore://` references in Kubernetes YAML). The vocabulary and the registry client come
//! from the `stevedore-oci` crate and are re-exported here: [`registry`], [`cache`] (the blob
//! store), [`progress`] (transfer reports), [`Digest`], [`Reference`], [`Platform`],
//! [`Descriptor`] (what [`Built`]'s documents say of each blob).

// Errors carry the context a user needs (URLs, digests, paths); they are built once, on the
// way out, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]
#![warn(missing_docs)]

pub mod error;
// Entry points for the fuzz targets in fuzz/; cargo-fuzz builds with `--cfg fuzzing`.
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
pub mod plan;
pub mod publish;
pub mod resolve;
pub mod verify;

mod assemble;
mod attest;
mod build;
mod build_id;
mod compile;
mod config;
mod diff;
mod layer;
mod lock;
mod pipeline;
mod rebase;
mod sbom;
mod toolchain;

// The vocabulary, under the names the stages have always used (`crate::digest::Digest`).
pub use stevedore_oci::{cache, env, progress, registry, source, text};
use stevedore_oci::{digest, oci, platform, reference};

pub use assemble::{Built, Image, Referrer, Tagged};
pub use build::{Build, Error, ErrorKind, Outcome};
pub use config::{HealthcheckFlag, ImageFlags};
pub use digest::Digest;
pub use layer::{ca_bundle, Layer};
pub use lock::MovedPin;
pub use oci::{Compression, Descriptor};
pub use platform::{GlibcVersion, Libc, Platform, PlatformError};
pub use publish::Output;
pub use rebase::Outdated;
pub use reference::{Base, Reference};

/// The layer writer, for `cargo xtask bench`'s packaging measurement. Not library API.
#[doc(hidden)]
pub use layer::LayerSpec;
