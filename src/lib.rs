//! stevedore: build OCI images of Rust services with no Docker daemon.
//!
//! The pipeline runs plan → compile → layer → assemble → publish; each stage is a module and
//! passes plain data to the next. See ARCHITECTURE.md.

// Errors carry the context a user needs (URLs, digests, paths); they are built once, on the
// way out, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]

pub mod assemble;
pub mod build;
pub mod cache;
pub mod cli;
pub mod compile;
pub mod config;
pub mod diff;
pub mod digest;
pub mod env;
// Entry points for the fuzz targets in fuzz/; cargo-fuzz builds with `--cfg fuzzing`.
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
pub mod init;
pub mod layer;
pub mod lock;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod progress;
pub mod publish;
pub mod reference;
pub mod registry;
pub mod sbom;
pub mod toolchain;
pub mod verify;

pub use build::{Build, Error, Outcome};
pub use platform::Platform;
pub use publish::Output;
pub use reference::Reference;
