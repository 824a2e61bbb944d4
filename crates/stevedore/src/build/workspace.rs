//! Several images in one run (`--workspace`, `-p A -p B`, `--all-bins`, `resolve`'s
//! references, `rebase --workspace`, `rebase -f FILE`), the one way: each compiled (or
//! checked and assembled, for a rebase) in turn, since cargo holds the target dir while it
//! runs, and each published while the next one compiles, all pushes sharing one bound on
//! uploads and every blob one of them has sent.

use super::{Build, Error, ErrorKind, Outcome, Staged};
use crate::plan;
use crate::rebase;
use crate::reference::Reference;
use crate::source::Location;

impl Build {
    /// Builds an image of every binary of `packages`, or of every workspace member that has
    /// one when `packages` is empty, and publishes each as soon as it is built.
    ///
    /// Each image is the one a build of its package alone makes (features are not unified
    /// across packages, so its digest does not depend on what else was built). Images are named
    /// `$STEVEDORE_REPO/BIN` or by each package's `repository`; a package with several binaries
    /// gets one image each, `/BIN` after its repository. Every image is attempted; the error
    /// names each one that failed.
    pub fn run_workspace(&self, packages: &[String]) -> Result<Vec<Outcome>, Error> {
        Build::run_many(self.per_image(packages)?)
    }

    /// Builds and publishes several images, named for the error report (`PACKAGE/BIN`, a
    /// reference as written, …), in their order: each is compiled in turn, since cargo holds
    /// the target dir while it runs, and published while the next one compiles. Their pushes
    /// share the first build's bound on uploads and every blob one of them has sent. Every
    /// image is attempted; when any fails, the error ([`ErrorKind::Images`]) names each one
    /// that did. The outcomes are in the images' order.
    pub fn run_many(
        images: impl IntoIterator<Item = (String, Build)>,
    ) -> Result<Vec<Outcome>, Error> {
        let images = images.into_iter().map(|(name, build)| (name, build, ()));
        Build::stage_each(images, |build, ()| build.stage(true))
    }

    /// Stages each image in turn with `stage` and publishes it while the next one stages, as
    /// [`Build::run_many`] describes; logs one line per image published.
    fn stage_each<T>(
        images: impl IntoIterator<Item = (String, Build, T)>,
        stage: impl Fn(&Build, &T) -> Result<Staged, Error>,
    ) -> Result<Vec<Outcome>, Error> {
        let mut images: Vec<(String, Build, T)> = images.into_iter().collect();
        if let Some((_, first, _)) = images.first() {
            let first = first.clone();
            for (_, build, _) in &mut images {
                *build = build.clone().sharing_uploads_of(&first);
            }
        }
        let mut results: Vec<Option<Result<Outcome, Error>>> =
            images.iter().map(|_| None).collect();
        std::thread::scope(|s| {
            let mut publishing = Vec::new();
            for (i, (_, build, item)) in images.iter().enumerate() {
                match stage(build, item) {
                    Ok(staged) => publishing.push((i, s.spawn(move || build.publish(staged)))),
                    Err(e) => results[i] = Some(Err(e)),
                }
            }
            for (i, handle) in publishing {
                results[i] = Some(handle.join().expect("publishing does not panic"));
            }
        });
        let mut outcomes = Vec::new();
        let mut failures = Vec::new();
        for ((name, _, _), result) in images.into_iter().zip(results) {
            match result.expect("every image was attempted") {
                Ok(outcome) => {
                    tracing::info!("{name}: {}", outcome.digest());
                    outcomes.push(outcome);
                }
                Err(e) => failures.push((name, e)),
            }
        }
        match failures.is_empty() {
            true => Ok(outcomes),
            false => Err(ErrorKind::Images {
                total: outcomes.len() + failures.len(),
                failures,
            }
            .into()),
        }
    }

    /// Rebases (see [`Build::rebase`]) the published image of every binary of `packages`, or
    /// of every workspace member that has one when `packages` is empty: each read from its
    /// first name (`$STEVEDORE_REPO/BIN`, a package's `repository`), as `--workspace` names
    /// them, and published while the next one is checked and assembled. Every image is
    /// attempted; the error names each one that failed or was refused.
    pub fn rebase_workspace(&self, packages: &[String]) -> Result<Vec<Outcome>, Error> {
        let images = self.per_image(packages)?;
        let images = images.into_iter().map(|(name, build)| (name, build, ()));
        Build::stage_each(images, |build, ()| {
            let draft = plan::plan(&build.options)?;
            let Some(published) = draft.tags.first() else {
                return Err(ErrorKind::RebaseWithoutName.into());
            };
            build.staged_rebase(&Location::Registry(published.clone()))
        })
    }

    /// Rebases each image `listed` names (`rebase -f FILE`, e.g. what `--image-refs` wrote),
    /// as [`Build::rebase_workspace`] rebases the workspace's: each is the image of the binary
    /// its config's `org.opencontainers.image.title` label names, among those of `packages`
    /// (or of the workspace), and is published to that binary's names. A platform manifest of
    /// a listed index, and what is attached to an image (SBOMs, provenance, signatures, debug
    /// symbols), is passed over: rebasing the image redoes them.
    pub fn rebase_listed(
        &self,
        packages: &[String],
        listed: &[Location],
    ) -> Result<Vec<Outcome>, Error> {
        let own: Vec<Reference> = listed
            .iter()
            .filter_map(|l| l.reference().cloned())
            .collect();
        let registry = self.registry_client(&own)?;
        let store = crate::cache::BlobStore::open_default()?;
        let found = rebase::listed::images(listed, &registry, &store).map_err(ErrorKind::Rebase)?;
        if found.is_empty() {
            return Err(ErrorKind::NothingListed {
                listed: listed.len(),
            }
            .into());
        }
        let binaries = self.per_image(packages)?;
        let mut images = Vec::with_capacity(found.len());
        for image in found {
            let bin = Some(image.bin.as_str());
            let Some((name, build)) = binaries
                .iter()
                .find(|(_, b)| b.options.bin.as_deref() == bin)
            else {
                return Err(ErrorKind::ListedBinary {
                    image: image.location.to_string(),
                    bin: image.bin,
                    binaries: binaries.iter().map(|(name, _)| name.clone()).collect(),
                }
                .into());
            };
            let name = format!("{name} ({})", image.location);
            images.push((name, build.clone(), image.location));
        }
        Build::stage_each(images, |build, location| build.staged_rebase(location))
    }

    /// One build per image, named `PACKAGE/BIN`, each with its outputs under `/BIN`.
    fn per_image(&self, packages: &[String]) -> Result<Vec<(String, Build)>, Error> {
        let targets = plan::workspace_binaries(&self.options, packages)?;
        let count: usize = targets.iter().map(|(_, bins)| bins.len()).sum();
        if count > 1 && !self.options.tags.is_empty() {
            return Err(ErrorKind::TagForSeveral { count }.into());
        }
        let mut images = Vec::with_capacity(count);
        for (package, bins) in targets {
            for bin in &bins {
                let mut one = self.clone();
                one.options.package = Some(package.clone());
                one.options.bin = Some(bin.clone());
                one.options.name_per_bin = bins.len() > 1;
                if count > 1 {
                    one.outputs = self.outputs.iter().map(|o| o.for_bin(bin)).collect();
                }
                images.push((format!("{package}/{bin}"), one));
            }
        }
        Ok(images)
    }
}
