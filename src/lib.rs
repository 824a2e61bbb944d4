//! stevedore: build OCI images of Rust services with no Docker daemon.
//!
//! [`Build`] is the front door: describe the image in a few calls, run it, get digests back.
//! The pipeline behind it runs plan → compile → layer → assemble → publish (see
//! ARCHITECTURE.md); the public modules are the parts a caller may want on their own:
//! [`plan`] (what would be built, with no side effects), [`publish`] (outputs, pushes and
//! `index create`), [`verify`] (comparing a rebuild with a published image), [`registry`] and
//! [`cache`] (the registry client and the blob store), and [`progress`] (transfer reports).

// Errors carry the context a user needs (URLs, digests, paths); they are built once, on the
// way out, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]
#![warn(missing_docs)]

pub mod cache;
// Entry points for the fuzz targets in fuzz/; cargo-fuzz builds with `--cfg fuzzing`.
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod verify;

mod assemble;
mod attest;
mod build;
mod build_id;
mod cli;
mod compile;
mod config;
mod diff;
mod digest;
mod env;
mod init;
mod layer;
mod lock;
mod oci;
mod pipeline;
mod platform;
mod reference;
mod resolve;
mod sbom;
mod text;
mod toolchain;

pub use assemble::{Built, Image, Referrer};
pub use build::{Build, Error, ErrorKind, Outcome};
pub use digest::Digest;
pub use layer::ca_bundle;
pub use oci::Compression;
pub use platform::Platform;
pub use publish::Output;
pub use reference::{Base, Reference};

/// The layer writer, for `cargo xtask bench`'s packaging measurement. Not library API.
#[doc(hidden)]
pub use layer::LayerSpec;

/// The `cargo-stevedore` command line, for its `main`: runs with the process's arguments and
/// returns the exit code (README's "Exit codes"). Not library API.
#[doc(hidden)]
pub fn cli_main() -> std::process::ExitCode {
    cli::main()
}
