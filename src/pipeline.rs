//! The pipeline end to end: plan → compile → layer → assemble, with the base pulled alongside.

use std::path::PathBuf;

use crate::assemble::{self, AssembleError, Built};
use crate::cache::BlobStore;
use crate::compile::{self, CompileError};
use crate::layer::{LayerError, LayerSpec};
use crate::plan::{Base, Plan};
use crate::registry::{BaseImage, Registry, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("cannot pull the base image {reference}")]
    Base {
        reference: String,
        #[source]
        source: RegistryError,
    },
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Assemble(#[from] AssembleError),
}

/// Builds the image for every planned platform. Blobs land in `store`; nothing is published.
pub fn build(plan: &Plan, store: &BlobStore, registry: &Registry) -> Result<Built, BuildError> {
    // Pulling the base is network-bound and compiling is CPU-bound: do both at once.
    let (bases, binaries) = std::thread::scope(|s| {
        let pull = s.spawn(|| pull_base(plan, store, registry));
        let binaries = compile::compile(plan);
        (pull.join().expect("the base pull does not panic"), binaries)
    });
    let binaries = binaries?;
    let bases = bases?;
    let mtime = u64::try_from(plan.created).unwrap_or(0);
    let mut images = Vec::with_capacity(binaries.len());
    for binary in &binaries {
        let mut spec = LayerSpec::application(&binary.path, &plan.bin)?;
        for file in &plan.image.files {
            spec.file(&file.dst, &file.src, file.mode)?;
        }
        let layer = spec.write(store, mtime)?;
        let base = bases.iter().find(|b| b.platform == binary.platform);
        tracing::info!("assembling {} image for {}", plan.bin, binary.platform);
        images.push(assemble::assemble(
            plan,
            &binary.platform,
            base,
            &layer,
            store,
        )?);
    }
    let index = assemble::index(&images, store)?;
    Ok(Built { images, index })
}

fn pull_base(
    plan: &Plan,
    store: &BlobStore,
    registry: &Registry,
) -> Result<Vec<BaseImage>, BuildError> {
    let Base::Image(reference) = &plan.base else {
        return Ok(Vec::new());
    };
    tracing::info!("pulling base {reference}");
    registry
        .pull(reference, plan.base_pin.as_ref(), &plan.platforms, store)
        .map_err(|source| BuildError::Base {
            reference: reference.to_string(),
            source,
        })
}

/// Where `cargo stevedore build` writes when no output is given: `target/stevedore/BIN`.
pub fn default_layout_dir(plan: &Plan) -> PathBuf {
    plan.target_dir.join("stevedore").join(&plan.bin)
}
