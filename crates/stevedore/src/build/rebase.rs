//! [`Build::rebase`]: a published image on another base, with nothing compiled.

use super::stage::Pinned;
use super::{Build, Error, ErrorKind, Outcome, Staged};
use cargo_metadata::cargo_platform::Cfg;

use crate::assemble::{self, Built};
use crate::attest;
use crate::cache::BlobStore;
use crate::layer::Layer;
use crate::lock::{Lockfile, MovedPin, Policy};
use crate::pipeline::{self, PipelineError};
use crate::plan::{self, Plan};
use crate::platform::Platform;
use crate::rebase::{self, Outdated, RebaseError, Recorded};
use crate::source::{ImageSource, Location};
use crate::verify::{self, PublishedImage};

impl Build {
    /// Writes (and with [`Build::with_push`] pushes) the image `published` would be had it been
    /// built on the base this build names (its base tag resolved again, or [`Build::base`]):
    /// the same digests as a build of this checkout on that base, with nothing compiled. Each
    /// platform must be stevedore's, on the base its manifest records, and what this checkout
    /// assembles on that base; otherwise nothing is written and the first mismatch is named.
    pub fn rebase(&self, published: &Location) -> Result<Outcome, Error> {
        let staged = self.staged_rebase(published)?;
        self.publish(staged)
    }

    /// [`Build::rebase`] up to what is published: checked, assembled and attested.
    pub(super) fn staged_rebase(&self, published: &Location) -> Result<Staged, Error> {
        self.reading(published, |source, image| {
            let registry = self.registry_client(&[])?;
            let store = crate::cache::BlobStore::open_default()?;
            let recorded =
                rebase::recorded(source, image, &registry, &store).map_err(ErrorKind::Rebase)?;
            if let Some(repository) = published.reference() {
                // A push to another repository of that registry mounts the application layers
                // from there instead of uploading them again.
                for r in &recorded {
                    self.uploads.holds(repository, &r.application.digest);
                }
            }
            let platforms = recorded.iter().map(|r| r.platform.clone());
            // The published image's platforms, whatever `--platform` says.
            let mut these = self.clone().platforms(platforms);
            these.options.all_platforms = false;
            these.stage_rebase(source, image, &recorded)
        })
    }

    /// Each platform of `published` whose recorded base tag names another image now (the
    /// manifests are read, no layer): what [`Build::rebase`] would change. Fails on an image
    /// that records no base, as `rebase` does.
    pub fn outdated(&self, published: &Location) -> Result<Vec<Outdated>, Error> {
        self.reading(published, |source, image| {
            let registry = self.registry_client(&[])?;
            let store = crate::cache::BlobStore::open_default()?;
            Ok(rebase::outdated(source, image, &registry, &store).map_err(ErrorKind::Rebase)?)
        })
    }

    /// Each base pinned in the project's `stevedore.lock` whose tag names another digest now:
    /// the images a build would put on another base than the lock's.
    pub fn outdated_pins(&self) -> Result<Vec<MovedPin>, Error> {
        let (root, _) = plan::workspace_bases(&self.options)?;
        let registry = self.registry_client(&[])?;
        let lock = Lockfile::load(&root)?;
        Ok(lock.moved(|base| registry.resolve(base))?)
    }

    /// Pins the new base as a build does (the tag resolved again, unless `--offline`), checks
    /// that this checkout assembles `image` on its recorded base, then assembles it on the new
    /// one. cargo runs only for `cargo metadata` (the plan: the config's labels, the SBOM's
    /// crates) and rustc only for `--print cfg` (the SBOM's per-platform crates).
    fn stage_rebase(
        &self,
        source: &ImageSource,
        image: &PublishedImage,
        recorded: &[Recorded],
    ) -> Result<Staged, Error> {
        let policy = Policy {
            update: !self.lock.offline,
            ..self.lock
        };
        let Pinned {
            plan,
            key,
            registry,
            store,
            mut lock,
        } = self.pin(true, policy)?;
        let cfgs = pipeline::target_cfgs(&plan)?;
        let applications: Vec<_> = recorded
            .iter()
            .map(|r| (r.platform.clone(), r.application.clone()))
            .collect();
        assembles_published(&plan, &cfgs, recorded, &applications, source, image, &store)?;
        let bases = pipeline::pull_base(&plan, &store, &registry)?;
        let mut built = pipeline::assemble_all(&plan, &cfgs, &bases, &applications, &store)?;
        attach_debug_files(&plan, &mut built, recorded, &store)?;
        // Nothing ran but stevedore: the image rebased names, in its own provenance, the tools
        // that compiled it.
        let toolchain = attest::Toolchain {
            executable: crate::toolchain::own_digest(),
            ..attest::Toolchain::default()
        };
        let from = attest::Material {
            name: source.location().to_string(),
            digest: image.digest.clone(),
        };
        self.attest(
            &plan,
            &mut built,
            key.as_ref(),
            &toolchain,
            Some(&from),
            &store,
        )?;
        lock.save()?;
        Ok(Staged {
            plan,
            built,
            store,
            registry,
        })
    }
}

/// That this checkout, on each platform's recorded base and with its application layer, makes
/// the published manifests: else the image came from another revision, settings or stevedore,
/// and a rebase would not be what a build of this checkout writes.
fn assembles_published(
    plan: &Plan,
    cfgs: &[Vec<Cfg>],
    recorded: &[Recorded],
    applications: &[(Platform, Layer)],
    source: &ImageSource,
    image: &PublishedImage,
    store: &BlobStore,
) -> Result<(), Error> {
    let old_bases: Vec<_> = recorded.iter().map(|r| r.base.clone()).collect();
    // The SBOMs are no part of the manifests compared.
    let no_sbom = Plan {
        sbom: false,
        ..plan.clone()
    };
    tracing::info!(
        "checking that this checkout assembles {} on its recorded base",
        source.location()
    );
    let on_old = pipeline::assemble_all(&no_sbom, cfgs, &old_bases, applications, store)?;
    let verdict = verify::compare(&on_old, image, source, store).map_err(ErrorKind::Verify)?;
    let Some(p) = verdict.platforms.iter().find(|p| p.difference.is_some()) else {
        return Ok(());
    };
    Err(ErrorKind::Rebase(RebaseError::OtherCheckout {
        published: source.location().to_string(),
        platform: p.platform.to_string(),
        ours: p.ours.clone(),
        theirs: p
            .theirs
            .as_ref()
            .map_or_else(|| "none".to_owned(), ToString::to_string),
        difference: p.difference.clone().unwrap_or_default(),
    })
    .into())
}

/// The published `--split-debuginfo` files, attached where the build attaches them: after the
/// SBOMs, image by image.
fn attach_debug_files(
    plan: &Plan,
    built: &mut Built,
    recorded: &[Recorded],
    store: &BlobStore,
) -> Result<(), Error> {
    for (image, recorded) in built.images.iter().zip(recorded) {
        if let Some((digest, build_id)) = &recorded.debug {
            let referrer = assemble::debuginfo_referrer(
                &image.manifest,
                &store.path(digest),
                build_id,
                &plan.bin,
                plan.created,
                store,
            )
            .map_err(PipelineError::from)?;
            built.referrers.push(referrer);
        }
    }
    Ok(())
}
