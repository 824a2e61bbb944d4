//! Several images in one run (`--workspace`, `-p A -p B`, `--all-bins`, `resolve`'s
//! references, `rebase --workspace`), the one way: each compiled in turn, since cargo holds the target dir while it
//! runs, and each published while the next one compiles, all pushes sharing one bound on
//! uploads and every blob one of them has sent.

use super::{Build, Error, ErrorKind, Outcome};
use crate::plan;
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
        let mut images: Vec<(String, Build)> = images.into_iter().collect();
        if let Some((_, first)) = images.first() {
            let first = first.clone();
            for (_, build) in &mut images {
                *build = build.clone().sharing_uploads_of(&first);
            }
        }
        let mut results: Vec<Option<Result<Outcome, Error>>> =
            images.iter().map(|_| None).collect();
        std::thread::scope(|s| {
            let mut publishing = Vec::new();
            for (i, (_, build)) in images.iter().enumerate() {
                match build.stage(true) {
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
        for ((name, _), result) in images.into_iter().zip(results) {
            match result.expect("every image was attempted") {
                Ok(outcome) => outcomes.push(outcome),
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
    /// them. Every image is attempted; the error names each one that failed or was refused.
    pub fn rebase_workspace(&self, packages: &[String]) -> Result<Vec<Outcome>, Error> {
        let mut outcomes = Vec::new();
        let mut failures = Vec::new();
        let images = self.per_image(packages)?;
        let total = images.len();
        for (name, build) in images {
            match build.rebase_own() {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => failures.push((name, e)),
            }
        }
        match failures.is_empty() {
            true => Ok(outcomes),
            false => Err(ErrorKind::Images { total, failures }.into()),
        }
    }

    /// Rebases the image this build's first tag names.
    fn rebase_own(&self) -> Result<Outcome, Error> {
        let draft = plan::plan(&self.options)?;
        let Some(published) = draft.tags.first() else {
            return Err(ErrorKind::RebaseWithoutName.into());
        };
        self.rebase(&Location::Registry(published.clone()))
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
