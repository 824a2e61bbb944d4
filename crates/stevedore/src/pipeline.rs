//! The pipeline end to end: plan → compile → layer → assemble, with the base pulled alongside.

use std::path::PathBuf;

use std::collections::BTreeMap;

use cargo_metadata::cargo_platform::Cfg;
use oci_spec::image::MediaType;

use crate::assemble::{self, AssembleError, Built, Image, OurLayers, Referrer};
use crate::cache::{BlobStore, CacheError};
use crate::compile::{self, Cancel, CompileError};
use crate::layer::{self, Layer, LayerError, LayerSpec};
use crate::oci::media::SPDX_JSON;
use crate::oci::{BaseImage, Descriptor};
use crate::plan::{self, Plan, PlanError};
use crate::platform::{Libc, Platform};
use crate::reference::Base;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError};
use crate::sbom::{self, SbomError, SbomInput};

/// Why the image cannot be built: the stage that failed, with its own error inside.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The binary cannot be compiled.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The base image cannot be pulled.
    #[error("cannot pull the base image {reference}")]
    Base {
        /// The base image.
        reference: String,
        /// Why the registry failed.
        #[source]
        source: RegistryError,
    },
    /// A repository to push to refused an upload (or could not be reached) when asked while
    /// the compile ran.
    #[error("cannot push to {repository} (checked before the compile finished, so nothing was built in vain)")]
    PushCheck {
        /// The repository, `REGISTRY/REPOSITORY`.
        repository: String,
        /// Why the registry refused.
        #[source]
        source: RegistryError,
    },
    /// The application layer cannot be written.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The image's config, manifest, index or a referrer cannot be made.
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    /// `rustc --print cfg` failed for a target, or printed something that is not a cfg value.
    #[error("cannot read the target's cfg, which picks the dependencies the binary embeds and the SBOM lists")]
    SbomMetadata(#[from] PlanError),
    /// The SBOM cannot be made.
    #[error("cannot write the SBOM")]
    Sbom(#[from] SbomError),
    /// The blob store failed, e.g. while storing the SBOM.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// `--libc gnu` on a base with no glibc for a platform (no `libc6` in its dpkg records),
    /// or on `scratch`, and no `--glibc`.
    #[error(
        "--libc gnu: the base {base} has no glibc for {platform} (no libc6 in its dpkg \
         records), and a glibc binary runs only where one is: use a base with glibc, such as \
         {} (--libc gnu's default), or build a static binary with --libc musl; for a base that \
         has glibc but no dpkg records, name its version with --glibc X.Y",
        crate::reference::DEFAULT_GNU_BASE
    )]
    NoGlibc {
        /// The base.
        base: String,
        /// The platform.
        platform: String,
    },
    /// A glibc binary needs a newer glibc than its base has; nothing was published.
    #[error(
        "the {platform} binary needs glibc {needs} (its symbol `{symbol}` is of version \
         GLIBC_{needs}), but the base {base} has glibc {has}: use a base with glibc {needs} or \
         newer, or build a static binary with --libc musl"
    )]
    GlibcTooNew {
        /// The platform.
        platform: String,
        /// A symbol of the newest version the binary needs.
        symbol: String,
        /// That version, `2.38`.
        needs: String,
        /// The base's glibc, `2.36`.
        has: String,
        /// The base.
        base: String,
    },
}

/// Builds the image for every planned platform. Blobs land in `store`; nothing is published.
/// `push_to` are the repositories the image will be pushed to: checked while cargo compiles.
/// Also says what the compile ran besides rustc (zig, std's sources), for the provenance.
pub fn build(
    plan: &Plan,
    store: &BlobStore,
    registry: &Registry,
    push_to: &[Reference],
) -> Result<(Built, compile::Ran), PipelineError> {
    let cfgs = target_cfgs(plan)?;
    // Until every binary is in its layer: another build in this target dir waits.
    let _target = compile::lock_target_dir(&plan.target_dir)?;
    let (bases, binaries, base_glibc) = match plan.libc {
        Libc::Musl => {
            let (bases, binaries) = compile_while_pulling(plan, &cfgs, store, registry, push_to)?;
            (bases, binaries, compile::GlibcVersions::new())
        }
        // zig links against the base's glibc, so the base is read before the compile.
        Libc::Gnu => {
            let bases = pull_base(plan, store, registry)?;
            check_push(registry, push_to)?;
            let (link, base_has) = glibc_of_bases(plan, &bases, store)?;
            let binaries = compile::compile(plan, &cfgs, &link, &Cancel::default());
            (bases, binaries, base_has)
        }
    };
    let compile::Compiled { binaries, ran } = binaries?;
    check_glibc_needs(plan, &binaries, &base_glibc)?;
    let mtime = u64::try_from(plan.created).unwrap_or(0);
    let mut applications = Vec::with_capacity(binaries.len());
    for binary in &binaries {
        let mut spec = LayerSpec::application(&binary.path, &plan.bin)?;
        for file in &plan.image.files {
            spec.file(&file.dst, &file.src, file.mode)?;
        }
        let layer = spec.write(store, mtime, plan.compression)?;
        applications.push((binary.platform.clone(), layer));
    }
    let mut built = assemble_all(plan, &cfgs, &bases, &applications, store)?;
    // With --split-debuginfo, each image's symbols, after the SBOMs.
    for (image, binary) in built.images.iter().zip(&binaries) {
        if let Some(debug) = &binary.debug {
            built.referrers.push(assemble::debuginfo_referrer(
                &image.manifest,
                &debug.path,
                &debug.build_id,
                &plan.bin,
                plan.created,
                store,
            )?);
        }
    }
    Ok((built, ran))
}

/// Pulls the base and checks the push targets, which are network-bound, while cargo compiles,
/// which is CPU-bound; stops the compile as soon as the network side fails.
fn compile_while_pulling(
    plan: &Plan,
    cfgs: &[Vec<Cfg>],
    store: &BlobStore,
    registry: &Registry,
    push_to: &[Reference],
) -> Result<(Vec<BaseImage>, Result<compile::Compiled, CompileError>), PipelineError> {
    let cancel = Cancel::default();
    let (bases, binaries) = std::thread::scope(|s| {
        let network = s.spawn(|| {
            let ready = pull_base(plan, store, registry).and_then(|bases| {
                check_push(registry, push_to)?;
                Ok(bases)
            });
            if ready.is_err() {
                cancel.cancel();
            }
            ready
        });
        let binaries = compile::compile(plan, cfgs, &compile::GlibcVersions::new(), &cancel);
        (
            network.join().expect("the base pull does not panic"),
            binaries,
        )
    });
    // The network side's failure first: a cancelled compile is its consequence.
    Ok((bases?, binaries))
}

/// Each planned platform's `rustc --print cfg` (index for index with `plan.platforms`): it
/// picks that platform's part of the plan's dependency graph, for the list the binary embeds
/// and for the SBOM. rustc answers; cargo does not run.
pub fn target_cfgs(plan: &Plan) -> Result<Vec<Vec<Cfg>>, PipelineError> {
    let cfgs = std::thread::scope(|s| {
        let asks: Vec<_> = plan
            .platforms
            .iter()
            .map(|p| s.spawn(|| plan::target_cfg(plan, plan.rust_target(p))))
            .collect();
        asks.into_iter()
            .map(|ask| ask.join().expect("asking rustc does not panic"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(cfgs)
}

/// The images a build writes from each platform's application layer on `bases`: the accounts
/// layer where a base lacks them, configs, manifests, the index and (when planned) the SBOMs.
/// A build's layers come from its binaries, a rebase's from the image it rebases: one code
/// path, so both give the same digests.
pub fn assemble_all(
    plan: &Plan,
    cfgs: &[Vec<Cfg>],
    bases: &[BaseImage],
    applications: &[(Platform, Layer)],
    store: &BlobStore,
) -> Result<Built, PipelineError> {
    let mtime = u64::try_from(plan.created).unwrap_or(0);
    let mut images = Vec::with_capacity(applications.len());
    let mut contents = Vec::with_capacity(applications.len());
    for (platform, application) in applications {
        let base = bases.iter().find(|b| b.platform == *platform);
        let base_contents = match base {
            Some(base) => sbom::read_base(store, &base.layers)?,
            None => sbom::BaseContents::default(),
        };
        let accounts = match LayerSpec::accounts(&base_contents.files)? {
            Some(spec) => Some(spec.write(store, mtime, plan.compression)?),
            None => None,
        };
        let ours = OurLayers {
            accounts: accounts.as_ref(),
            application,
            ca_bundle: base_contents.files.ca_bundle_path(),
        };
        tracing::info!("assembling {} image for {platform}", plan.bin);
        images.push(assemble::assemble(plan, platform, base, ours, store)?);
        contents.push(base_contents);
    }
    let index = assemble::index(&images, store)?;
    let with_sbom = if plan.sbom { &images[..] } else { &[] };
    let referrers: Vec<Referrer> = with_sbom
        .iter()
        .zip(&contents)
        .map(|(image, base_contents)| {
            let base = bases.iter().find(|b| b.platform == image.platform);
            let cfg = plan
                .platforms
                .iter()
                .position(|p| *p == image.platform)
                .map(|i| &cfgs[i][..])
                .expect("one image per planned platform");
            sbom(plan, cfg, image, base, base_contents, store)
        })
        .collect::<Result<_, _>>()?;
    Ok(Built {
        images,
        index,
        referrers,
        tagged: Vec::new(),
    })
}

/// The image's SPDX SBOM, stored and attached to it as a referrer.
fn sbom(
    plan: &Plan,
    cfg: &[Cfg],
    image: &Image,
    base: Option<&BaseImage>,
    base_contents: &sbom::BaseContents,
    store: &BlobStore,
) -> Result<Referrer, PipelineError> {
    let target = plan.rust_target(&image.platform);
    let cargo_lock = std::fs::read_to_string(plan.workspace_root.join("Cargo.lock")).ok();
    let name = plan
        .tags
        .first()
        .map_or_else(|| plan.bin.clone(), |t| t.name());
    let (ca_crate, ca_version) = layer::CA_BUNDLE_CRATE;
    let ca_comment = format!("the CA certificates at /{}", layer::CA_BUNDLE_PATH);
    // The pinned bundle is in the image only where the base has none.
    let extra: &[(&str, &str, &str)] = match base_contents.files.ca_bundle {
        None => &[(ca_crate, ca_version, &ca_comment)],
        Some(_) => &[],
    };
    let document = sbom::spdx_json(&SbomInput {
        metadata: &plan.graph,
        root: &plan.package_id,
        target,
        cfg,
        bin: &plan.bin,
        platform: &image.platform,
        cargo_lock: cargo_lock.as_deref(),
        base: base.map(|b| (&b.reference, &b.manifest_digest)),
        base_contents,
        image_name: &name,
        image_digest: &image.manifest_digest(),
        extra,
        created: plan.created,
    })?;
    let digest = store.put_bytes(&document)?;
    let descriptor = Descriptor::new(
        MediaType::Other(SPDX_JSON.to_owned()),
        digest,
        document.len() as u64,
    )
    .with_annotations(BTreeMap::from([(
        "org.opencontainers.image.title".to_owned(),
        format!("{}.spdx.json", plan.bin),
    )]));
    Ok(assemble::referrer(
        &image.manifest,
        SPDX_JSON,
        descriptor,
        plan.created,
        store,
    )?)
}

/// Asks each distinct repository to be pushed to for an upload session (then cancels it): the
/// registry answers, takes the credentials, and allows pushing there.
fn check_push(registry: &Registry, push_to: &[Reference]) -> Result<(), PipelineError> {
    let mut checked: Vec<String> = Vec::new();
    for repo in push_to {
        if checked.contains(&repo.name()) {
            continue;
        }
        tracing::debug!("checking that {} takes a push", repo.name());
        registry
            .check_push(repo)
            .map_err(|source| PipelineError::PushCheck {
                repository: repo.name(),
                source,
            })?;
        checked.push(repo.name());
    }
    Ok(())
}

/// The plan's base, pulled at its pin for every planned platform (none for `scratch`).
pub fn pull_base(
    plan: &Plan,
    store: &BlobStore,
    registry: &Registry,
) -> Result<Vec<BaseImage>, PipelineError> {
    let Base::Image(reference) = &plan.base else {
        return Ok(Vec::new());
    };
    tracing::info!("pulling base {reference}");
    registry
        .pull(reference, plan.base_pin.as_ref(), &plan.platforms, store)
        .map_err(|source| PipelineError::Base {
            reference: reference.to_string(),
            source,
        })
}

/// The base as messages name it.
fn base_name(base: &Base) -> String {
    match base {
        Base::Image(reference) => reference.to_string(),
        Base::Scratch => "scratch".into(),
    }
}

/// The glibc each planned platform's binary links against, and the one its base has, from
/// the base's dpkg records. `--glibc` overrides the first; without it, a base without records
/// is refused.
fn glibc_of_bases(
    plan: &Plan,
    bases: &[BaseImage],
    store: &BlobStore,
) -> Result<(compile::GlibcVersions, compile::GlibcVersions), PipelineError> {
    let (mut link, mut has) = (compile::GlibcVersions::new(), compile::GlibcVersions::new());
    for platform in &plan.platforms {
        let contents = match bases.iter().find(|b| b.platform == *platform) {
            Some(base) => sbom::read_base(store, &base.layers)?,
            None => sbom::BaseContents::default(),
        };
        let packages = contents
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()));
        let base_has = compile::glibc_of_packages(packages);
        let version = plan
            .glibc
            .or(base_has)
            .ok_or_else(|| PipelineError::NoGlibc {
                base: base_name(&plan.base),
                platform: platform.to_string(),
            })?;
        tracing::info!(
            "linking the {platform} binary against glibc {version} ({})",
            match plan.glibc {
                Some(_) => "--glibc",
                None => "the base's",
            }
        );
        link.insert(platform.clone(), version);
        if let Some(base_has) = base_has {
            has.insert(platform.clone(), base_has);
        }
    }
    Ok((link, has))
}

/// Refuses, before anything is written or pushed, a glibc binary that needs a newer glibc
/// symbol version than its base has (`base_has`, where its records say). zig links against
/// the base's, so only a `--glibc` newer than the base's or an object linked from elsewhere
/// gets here.
fn check_glibc_needs(
    plan: &Plan,
    binaries: &[compile::Binary],
    base_has: &compile::GlibcVersions,
) -> Result<(), PipelineError> {
    for binary in binaries {
        let Some(has) = base_has.get(&binary.platform) else {
            continue;
        };
        let bytes = std::fs::read(&binary.path).map_err(|source| LayerError::Source {
            path: binary.path.clone(),
            source,
        })?;
        if let Some(need) = compile::newest_glibc_need(&bytes).filter(|n| n.version > *has) {
            return Err(PipelineError::GlibcTooNew {
                platform: binary.platform.to_string(),
                symbol: need.symbol,
                needs: need.version.to_string(),
                has: has.to_string(),
                base: base_name(&plan.base),
            });
        }
    }
    Ok(())
}

/// Where `cargo stevedore build` writes when no output is given: `target/stevedore/BIN`.
pub fn default_layout_dir(plan: &Plan) -> PathBuf {
    plan.target_dir.join("stevedore").join(&plan.bin)
}
