//! Checks a build makes before it compiles for minutes, and `--platform all`'s choice: what
//! the outputs can hold, and which platforms the base offers.

use super::{Build, Error, ErrorKind};
use crate::cache::BlobStore;
use crate::digest::Digest;
use crate::oci::Compression;
use crate::plan::{Plan, PlanError};
use crate::platform::Platform;
use crate::publish::{Output, PublishError};
use crate::reference::Base;
use crate::registry::Registry;

impl Build {
    /// Says before compiling that docker archives (also how `--load` hands an image over) hold
    /// gzip layers only: docker before 23 cannot read zstd.
    pub(super) fn check_docker_compression(&self, plan: &Plan) -> Result<(), Error> {
        let archive = self
            .outputs
            .iter()
            .any(|o| matches!(o, Output::DockerArchive(_)));
        let output = match (archive, &self.load) {
            _ if plan.compression == Compression::Gzip => return Ok(()),
            (true, _) => "the docker archive",
            (false, Some(_)) => "--load",
            (false, None) => return Ok(()),
        };
        Err(Error::from(ErrorKind::Publish {
            output: output.into(),
            source: PublishError::DockerNeedsGzip,
        }))
    }
}

/// `--platform all`: what the base's index has that stevedore builds, warning about the rest;
/// `scratch` has every platform, and a base that is one image (no index) gives the host's.
pub(super) fn all_platforms(
    plan: &Plan,
    pin: Option<&Digest>,
    registry: &Registry,
    store: &BlobStore,
) -> Result<Vec<Platform>, Error> {
    let Base::Image(base) = &plan.base else {
        return Ok(Platform::supported());
    };
    let Some(listed) = registry.index_platforms(base, pin, store)? else {
        tracing::warn!("--platform all: the base {base} is one image, not an index: building for the host's platform only");
        return Ok(vec![Platform::host().map_err(PlanError::Platform)?]);
    };
    let (ours, skipped) = crate::platform::buildable(&listed);
    if !skipped.is_empty() {
        tracing::warn!(
            "--platform all: skipping {} of the base {base}: stevedore builds only {}",
            skipped.join(", "),
            crate::platform::list(&Platform::supported())
        );
    }
    match ours.is_empty() {
        true => Err(PlanError::NoBuildablePlatform {
            base: base.to_string(),
            listed: skipped.join(", "),
        }
        .into()),
        false => Ok(ours),
    }
}

/// Says before compiling for minutes that a docker archive cannot hold an index.
pub(super) fn check_archive_platforms(plan: &Plan, outputs: &[Output]) -> Result<(), Error> {
    if plan.platforms.len() > 1
        && outputs
            .iter()
            .any(|o| matches!(o, Output::DockerArchive(_)))
    {
        let platforms = crate::platform::list(&plan.platforms);
        let source = PublishError::ArchiveMultiPlatform {
            count: plan.platforms.len(),
            platforms,
        };
        return Err(Error::from(ErrorKind::Publish {
            output: "the docker archive".into(),
            source,
        }));
    }
    Ok(())
}
