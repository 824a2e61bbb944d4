//! Every error the library returns, by the stage that fails. [`Error`] is what the front door
//! ([`crate::Build`]) returns; [`ErrorKind`] says which stage failed, and each stage's own
//! error, reached through it or through [`std::error::Error::source`], says why and what to do.

pub use crate::assemble::AssembleError;
pub use crate::attest::keys::KeyError;
pub use crate::attest::AttestError;
pub use crate::build::{Error, ErrorKind};
pub use crate::compile::AuditableError;
pub use crate::compile::CompileError;
pub use crate::compile::DebuginfoError;
pub use crate::config::ConfigError;
pub use crate::diff::{DiffError, Side};
pub use crate::layer::LayerError;
pub use crate::lock::LockError;
pub use crate::pipeline::PipelineError;
pub use crate::plan::PlanError;
pub use crate::publish::PublishError;
pub use crate::rebase::RebaseError;
pub use crate::sbom::SbomError;
pub use crate::toolchain::ToolchainError;
pub use crate::verify::VerifyError;
pub use stevedore_oci::cache::CacheError;
pub use stevedore_oci::reference::ReferenceError;
pub use stevedore_oci::registry::RegistryError;
