//! The library's front door, [`Build`]: describe a build in a few lines, run it, get digests
//! back.

mod checks;
mod debuginfo;
mod error;
mod names;
mod rebase;
mod stage;
mod workspace;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::assemble::Built;
use crate::attest::PublicKey;
use crate::cache::BlobStore;
use crate::compile;
use crate::digest::Digest;
use crate::lock::{self, Lockfile, Policy, Tools, ToolsChange};
use crate::oci::Compression;
use crate::pipeline;
use crate::plan::{self, BuildOptions, Plan, PlanError};
use crate::platform::Platform;
use crate::progress::Progress;
use crate::publish::{self, Engine, Loaded, Output, PushReport, Uploads};
use crate::reference::{Base, Reference};
use crate::registry::{Registry, RegistryError, RegistryOptions};
use crate::source::{ImageSource, Location};
use crate::toolchain::Toolchain;
use crate::verify::{self, PublishedImage, Verdict};
pub use error::{Error, ErrorKind};
use names::default_tags;

/// A build, described in a few calls and then run: the library's front door.
///
/// Each setter takes and returns the build, so a build reads as one expression; the ones
/// that parse (a base, a tag) return a `Result`. Nothing runs until [`Build::run`] (write the
/// outputs), [`Build::push`] (push to the tags) or [`Build::verify`] (rebuild and compare).
///
/// # Examples
///
/// Push a two-platform image, as `cargo stevedore build --push` does:
///
/// ```no_run
/// use stevedore::{Build, Platform};
///
/// # fn main() -> Result<(), stevedore::Error> {
/// let pushed = Build::from_manifest("Cargo.toml")?
///     .platforms([Platform::linux_amd64(), Platform::linux_arm64()])
///     .base("gcr.io/distroless/static-debian12:nonroot")?
///     .tag("ghcr.io/me/app:1.0")?
///     .push()?;
/// println!("{}", pushed[0]); // ghcr.io/me/app@sha256:…
/// # Ok(())
/// # }
/// ```
///
/// Write an OCI layout instead, with nothing pushed:
///
/// ```no_run
/// use stevedore::{Build, Output};
///
/// # fn main() -> Result<(), stevedore::Error> {
/// let outcome = Build::from_manifest("Cargo.toml")?
///     .output(Output::OciLayout("target/image".into()))
///     .run()?;
/// println!("target/image@{}", outcome.digest());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Build {
    options: BuildOptions,
    outputs: Vec<Output>,
    push: bool,
    load: Option<Engine>,
    registry: RegistryOptions,
    lock: Policy,
    progress: Option<Arc<dyn Progress>>,
    no_provenance: bool,
    verify_key: Option<PathBuf>,
    /// Shared by clones, so the images of one `--workspace` run share their uploads.
    uploads: Arc<Uploads>,
}

/// What a finished build produced.
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// What was built, resolved from the options and the project.
    pub plan: Plan,
    /// The images, their index and referrers, all in the blob store.
    pub built: Built,
    /// The names the image was given (the tags, or `BIN:latest`).
    pub tags: Vec<Reference>,
    /// Where the image was written.
    pub outputs: Vec<Output>,
    /// What the push did, when there was one.
    pub push: Option<PushReport>,
    /// Which engine the image was loaded into, and which platform, with `--load`.
    pub loaded: Option<Loaded>,
}

impl Outcome {
    /// The digest of what was built: the manifest for one platform, the index for several.
    pub fn digest(&self) -> Digest {
        self.built.top_digest()
    }

    /// `REPO@sha256:…` for every repository pushed to.
    pub fn pushed(&self) -> &[Reference] {
        self.push.as_ref().map_or(&[], |r| r.pushed.as_slice())
    }
}

impl Build {
    /// A build of the Cargo project at `path` (a Cargo.toml or its directory).
    pub fn from_manifest(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let manifest = if path.is_dir() {
            path.join("Cargo.toml")
        } else {
            path
        };
        if !manifest.is_file() {
            return Err(PlanError::NoManifest(manifest).into());
        }
        Ok(Build::from_options(BuildOptions {
            manifest_path: Some(manifest),
            ..BuildOptions::default()
        }))
    }

    /// A build from options filled in by a caller (the command line does this).
    pub fn from_options(options: BuildOptions) -> Self {
        Build {
            options,
            ..Build::default()
        }
    }

    /// The workspace member to build (`-p`).
    pub fn package(mut self, name: impl Into<String>) -> Self {
        self.options.package = Some(name.into());
        self
    }

    /// The binary to put into the image (`--bin`).
    pub fn bin(mut self, name: impl Into<String>) -> Self {
        self.options.bin = Some(name.into());
        self
    }

    /// The cargo profile (default `release`).
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.options.profile = Some(name.into());
        self
    }

    /// Features to activate, added to those already given.
    pub fn features<S: Into<String>>(mut self, features: impl IntoIterator<Item = S>) -> Self {
        self.options
            .features
            .extend(features.into_iter().map(Into::into));
        self
    }

    /// Platforms to build for (default: the host's).
    pub fn platforms(mut self, platforms: impl IntoIterator<Item = Platform>) -> Self {
        self.options.platforms = platforms.into_iter().collect();
        self
    }

    /// The base image reference, or `scratch`.
    pub fn base(mut self, base: &str) -> Result<Self, Error> {
        self.options.base = Some(base.parse::<Base>()?);
        Ok(self)
    }

    /// A name for the image (repeatable); pushing goes to each tag's registry.
    pub fn tag(mut self, reference: &str) -> Result<Self, Error> {
        self.options.tags.push(reference.parse()?);
        Ok(self)
    }

    /// A tag name for the project's repository (repeatable), as ko's `--tags`: the
    /// repository is `repository` in the project's settings or `$STEVEDORE_REPO/BIN`, and the
    /// names replace the settings' `tags`.
    pub fn tag_name(mut self, name: impl Into<String>) -> Self {
        self.options.tag_names.push(name.into());
        self
    }

    /// A rustup toolchain to compile with.
    pub fn toolchain(mut self, name: impl Into<String>) -> Self {
        self.options.toolchain = Some(name.into());
        self
    }

    /// Cargo's target directory for the compile (default: what cargo would use).
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.target_dir = Some(dir.into());
        self
    }

    /// Also write the image to `output` (repeatable).
    pub fn output(mut self, output: Output) -> Self {
        self.outputs.push(output);
        self
    }

    /// Compress the application layer this way (default: Cargo.toml's `compression`, else
    /// gzip).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.options.compression = Some(compression);
        self
    }

    /// Name the image `$STEVEDORE_REPO` itself instead of `$STEVEDORE_REPO/BIN`.
    pub fn bare(mut self, bare: bool) -> Self {
        self.options.bare = bare;
        self
    }

    /// Also push to the tags' registries when the build runs.
    pub fn with_push(mut self, push: bool) -> Self {
        self.push = push;
        self
    }

    /// Also load the image (the host's platform) into a local engine when the build runs.
    pub fn load_into(mut self, engine: Engine) -> Self {
        self.load = Some(engine);
        self
    }

    /// Trust an extra CA (PEM) for registries.
    pub fn registry_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.registry.ca_files.push(path.into());
        self
    }

    /// Allow plain HTTP for this registry `host[:port]` (loopback always may).
    pub fn insecure_registry(mut self, host: impl Into<String>) -> Self {
        self.registry.insecure.push(host.into());
        self
    }

    /// How long a registry connection may stay silent before the request is given up and
    /// retried (default 30 s).
    pub fn registry_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.registry.timeout = Some(timeout);
        self
    }

    /// Fail instead of changing `stevedore.lock` or `Cargo.lock` (cargo runs with `--locked`),
    /// and fail when a pinned base tag has moved.
    pub fn locked(mut self, locked: bool) -> Self {
        self.lock.locked = locked;
        self.options.locked = locked;
        self
    }

    /// Resolve the base's tag again and pin what it names now.
    pub fn update_base(mut self, update: bool) -> Self {
        self.lock.update = update;
        self
    }

    /// Build from the local caches alone: cargo's and stevedore's. The base must be pinned.
    pub fn offline(mut self, offline: bool) -> Self {
        self.lock.offline = offline;
        self.options.offline = offline;
        self.registry.offline = offline;
        self
    }

    /// Sign the image (cosign's `.sig` tags) and its provenance with the EC P-256 key at `path`
    /// (PKCS#8 PEM, encrypted PKCS#8, or a cosign.key; the password from
    /// `STEVEDORE_SIGN_PASSWORD` or `COSIGN_PASSWORD`).
    pub fn sign_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.sign_key = Some(path.into());
        self
    }

    /// Attach SLSA provenance (on by default).
    pub fn provenance(mut self, on: bool) -> Self {
        self.no_provenance = !on;
        self
    }

    /// `verify` also checks the published image's signatures and provenance with this EC
    /// P-256 public key (PEM).
    pub fn verify_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.verify_key = Some(path.into());
        self
    }

    /// Upload at most `n` blobs at once (default 3), across every image of a
    /// [`Build::run_workspace`].
    pub fn jobs(mut self, n: usize) -> Self {
        self.uploads = Arc::new(Uploads::new(n));
        self
    }

    /// Share `other`'s uploads (their bound, and the blobs sent): for builds run side by side.
    fn sharing_uploads_of(mut self, other: &Build) -> Self {
        self.uploads = other.uploads.clone();
        self
    }

    /// Report blob transfers to `progress`.
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Builds every binary of the package, one image each: names get `/BIN` after their
    /// repository, a layout output becomes `DIR/BIN` and an archive `FILE-BIN.tar`. Every
    /// binary is attempted, as in [`Build::run_many`].
    pub fn run_all_bins(&self) -> Result<Vec<Outcome>, Error> {
        let bins = plan::binaries(&self.options)?;
        let images = bins.iter().map(|bin| {
            let mut one = self.clone();
            one.options.bin = Some(bin.clone());
            one.options.name_per_bin = true;
            one.outputs = self.outputs.iter().map(|o| o.for_bin(bin)).collect();
            (bin.clone(), one)
        });
        Build::run_many(images.collect::<Vec<_>>())
    }

    /// Builds and pushes; returns `REPO@sha256:…` for each repository.
    pub fn push(self) -> Result<Vec<Reference>, Error> {
        Ok(self
            .with_push(true)
            .run()?
            .push
            .map(|r| r.pushed)
            .unwrap_or_default())
    }

    /// Builds and writes every output (an OCI layout in `target/stevedore/BIN` when there is
    /// neither an output nor a push), then pushes if asked.
    pub fn run(&self) -> Result<Outcome, Error> {
        self.publish(self.stage(true)?)
    }

    /// Writes every output of a staged build, pushes and loads it.
    fn publish(&self, staged: Staged) -> Result<Outcome, Error> {
        let Staged {
            plan,
            built,
            store,
            registry,
        } = staged;
        let outputs = match self.outputs.is_empty() && !self.push && self.load.is_none() {
            true => vec![Output::OciLayout(pipeline::default_layout_dir(&plan))],
            false => self.outputs.clone(),
        };
        let tags = default_tags(&plan);
        for output in &outputs {
            publish::publish(&built, output, &tags, &store).map_err(|source| {
                ErrorKind::Publish {
                    output: output.to_string(),
                    source,
                }
            })?;
        }
        let push = match self.push {
            true => {
                let base = match &plan.base {
                    Base::Image(reference) => Some(reference),
                    Base::Scratch => None,
                };
                let to = publish::Target {
                    registry: &registry,
                    base,
                    uploads: &self.uploads,
                };
                let report = publish::push(&built, &tags, &store, &to).map_err(ErrorKind::Push)?;
                tracing::info!(
                    "{} blobs uploaded, {} mounted, {} already there",
                    report.uploaded,
                    report.mounted,
                    report.existing
                );
                Some(report)
            }
            false => None,
        };
        let loaded = match self.load {
            Some(engine) => Some(
                publish::load(
                    engine,
                    &built,
                    &tags,
                    &store,
                    &pipeline::default_layout_dir(&plan),
                )
                .map_err(|source| ErrorKind::Publish {
                    output: "--load".into(),
                    source,
                })?,
            ),
            None => None,
        };
        Ok(Outcome {
            plan,
            built,
            tags,
            outputs,
            push,
            loaded,
        })
    }

    /// Rebuilds for the platforms `published` has and compares digests, naming the first
    /// difference of each platform that differs. Publishes nothing.
    pub fn verify(&self, published: &Location) -> Result<Verdict, Error> {
        let key = self
            .verify_key
            .as_deref()
            .map(PublicKey::load)
            .transpose()?;
        self.reading(published, |source, image| {
            let signatures = match &key {
                Some(key) => {
                    verify::check_signatures(source, image, key).map_err(ErrorKind::Verify)?
                }
                None => Vec::new(),
            };
            let platforms = image.platforms.iter().map(|p| p.platform.clone());
            let recorded = verify::tools_of(source, image).map_err(ErrorKind::Verify)?;
            let staged = self.clone().platforms(platforms).stage(false)?;
            let mut verdict = verify::compare(&staged.built, image, source, &staged.store)
                .map_err(ErrorKind::Verify)?;
            verdict.signatures = signatures;
            verdict.toolchain = tool_differences(recorded, &staged.plan)?;
            Ok(verdict)
        })
    }

    /// Opens `published` (registry, layout or archive) and hands it and its top document to
    /// `read`: what `verify` and `debuginfo` start from.
    pub(crate) fn reading<T>(
        &self,
        published: &Location,
        read: impl FnOnce(&ImageSource<'_>, &PublishedImage) -> Result<T, Error>,
    ) -> Result<T, Error> {
        // The image read is the user's own, published with the credential of its registry.
        let own = published.reference().map(std::slice::from_ref);
        let registry = self.registry_client(own.unwrap_or_default())?;
        let store = BlobStore::open_default()?;
        let source = ImageSource::new(published.clone(), &registry, &store);
        let image = verify::read(&source).map_err(ErrorKind::Verify)?;
        read(&source, &image)
    }

    /// Pins the bases of the selected package (or of every package with a binary) in
    /// `stevedore.lock`, resolving their tags again; with [`Build::locked`], fails instead of
    /// changing the lock. Returns each base and its digest.
    pub fn lock(&self) -> Result<Vec<(Reference, Digest)>, Error> {
        let (root, bases) = plan::workspace_bases(&self.options)?;
        let registry = self.registry_client(&[])?;
        let mut lock = Lockfile::load(&root)?;
        let policy = Policy {
            update: true,
            ..self.lock
        };
        let mut pinned = Vec::new();
        for base in bases {
            if let Base::Image(reference) = base {
                let digest = lock.pin(&reference, policy, |b| registry.resolve(b))?;
                pinned.push((reference, digest));
            }
        }
        let toolchain = Toolchain::from_name(self.options.toolchain.as_deref());
        self.record_tools(&mut lock, &toolchain, &root)?;
        let in_use: Vec<Reference> = pinned.iter().map(|(r, _)| r.clone()).collect();
        if self.options.package.is_none() && !self.lock.locked {
            lock.retain(&in_use);
        }
        lock.save()?;
        Ok(pinned)
    }

    /// Records the tools this build runs in the lock, or with `--locked` checks them against
    /// it; says when the record changes, and when the project leaves rustc to chance.
    fn record_tools(
        &self,
        lock: &mut Lockfile,
        toolchain: &Toolchain,
        workspace_root: &Path,
    ) -> Result<(), Error> {
        let Some(now) = tools_of(toolchain) else {
            return Ok(());
        };
        let rustc = now.rustc.clone();
        let changes = match lock.record_tools(now, self.lock)? {
            ToolsChange::Same => return Ok(()),
            ToolsChange::Unchecked => {
                tracing::warn!(
                    "{} records no toolchain, so --locked cannot check this one: run `cargo \
                     stevedore lock` and commit the file",
                    lock::FILE_NAME
                );
                return Ok(());
            }
            ToolsChange::First => "it records the toolchain from now on".to_owned(),
            ToolsChange::Changed(differences) => differences.join("; "),
        };
        tracing::info!("{}: {changes}", lock::FILE_NAME);
        if toolchain.rustup_name().is_none() && !pins_rust(workspace_root) {
            tracing::warn!(
                "the project does not pin its Rust toolchain, so its images change with \
                 whichever rustc builds them (here {rustc}): add a rust-toolchain.toml beside \
                 Cargo.toml with `[toolchain] channel = \"{rustc}\"`, and rustup uses that \
                 release wherever the project is built"
            );
        }
        Ok(())
    }

    /// A client whose environment credential goes only to the registries of `own`: the ones
    /// a run pushes to, or reads its own published image from.
    fn registry_client(&self, own: &[Reference]) -> Result<Registry, RegistryError> {
        let registry = Registry::writing_to(self.registry.clone(), own)?;
        Ok(match &self.progress {
            Some(progress) => registry.with_progress(progress.clone()),
            None => registry,
        })
    }
}

/// A build in the blob store, before anything is published.
pub(crate) struct Staged {
    pub plan: Plan,
    pub built: Built,
    pub store: BlobStore,
    pub registry: Registry,
}

/// Whether rustup finds a toolchain file for the project: `rust-toolchain.toml` or
/// `rust-toolchain` in its root or a directory above, as rustup looks for them.
fn pins_rust(workspace_root: &Path) -> bool {
    workspace_root.ancestors().any(|dir| {
        ["rust-toolchain.toml", "rust-toolchain"]
            .iter()
            .any(|name| dir.join(name).is_file())
    })
}

/// What differs between the tools that built the published image (`from_provenance`, else
/// what the project's `stevedore.lock` records) and those of the rebuild.
fn tool_differences(from_provenance: Option<Tools>, plan: &Plan) -> Result<Vec<String>, Error> {
    let Some(here) = tools_of(&plan.toolchain) else {
        return Ok(Vec::new());
    };
    let (recorded, there) = match from_provenance {
        Some(tools) => (tools, "in the image's provenance"),
        None => match Lockfile::load(&plan.workspace_root)?.tools() {
            Some(tools) => (tools.clone(), "in stevedore.lock"),
            None => return Ok(Vec::new()),
        },
    };
    Ok(verify::tool_differences(&recorded, &here, there))
}

/// The tools a build with `toolchain` runs, found without compiling or fetching anything;
/// `None` when rustc cannot say its release (the build then fails on its own).
fn tools_of(toolchain: &Toolchain) -> Option<Tools> {
    let (zig, zig_chosen_by, zig_sha256) = match compile::chosen_zig() {
        Some(version) => (
            version.unwrap_or_else(|| "unknown".to_owned()),
            Some(crate::env::ZIG.to_owned()),
            Default::default(),
        ),
        None => (
            compile::ZIG_VERSION.to_owned(),
            None,
            compile::pinned_zig_wheels(),
        ),
    };
    Some(Tools {
        stevedore: env!("CARGO_PKG_VERSION").to_owned(),
        rustc: toolchain.release()?,
        rustc_commit_hash: toolchain.commit_hash(),
        zig,
        zig_chosen_by,
        zig_sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rustup looks for the toolchain file in the project's directory and each one above.
    #[test]
    fn a_toolchain_file_pins_rust_from_the_root_or_above() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo/service");
        std::fs::create_dir_all(&root).unwrap();
        assert!(!pins_rust(&root));
        std::fs::write(dir.path().join("repo/rust-toolchain"), "1.95.0\n").unwrap();
        assert!(pins_rust(&root), "a file above counts");
        std::fs::remove_file(dir.path().join("repo/rust-toolchain")).unwrap();
        std::fs::write(root.join("rust-toolchain.toml"), "[toolchain]\n").unwrap();
        assert!(pins_rust(&root));
    }
}
