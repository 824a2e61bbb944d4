//! Stage 1: turn the user's options and `cargo metadata` into a [`Plan`]: which package and
//! binary to build, for which platforms, on which base. No side effects beyond reading.

use std::path::PathBuf;

use std::sync::Arc;

use cargo_metadata::{Metadata, Package, PackageId};
use serde::Serialize;

mod cargo;
mod kept;
mod select;

pub use crate::config::{ExtraFile, Healthcheck, ImageSettings};
pub use cargo::manifest_path;
use cargo::{cargo_flags, compiles_c, git, resolve_flags, run_metadata, source_date_epoch};
pub(crate) use cargo::{target_cfg, uses_on};
use select::select;
pub(crate) use select::{binaries, workspace_bases, workspace_binaries};

use crate::config::{self, ConfigError, ImageFlags, Settings, Sources};
use crate::digest::Digest;
use crate::env;
use crate::oci::Compression;
use crate::platform::{GlibcVersion, Libc, Platform, PlatformError};
use crate::reference::{Base, Reference, ReferenceError};
use crate::toolchain::{Toolchain, ToolchainError};

/// What the user asked for, before anything is looked up.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The project's Cargo.toml; `None` looks in the current directory and above.
    pub manifest_path: Option<PathBuf>,
    /// Which workspace member (`-p`); `None`: the root package, else the only one with binaries.
    pub package: Option<String>,
    /// Which binary goes into the image; `None`: the only one, or `default-run`.
    pub bin: Option<String>,
    /// Cargo profile; `release` when `None`.
    pub profile: Option<String>,
    /// Features to activate, as for `cargo build --features`.
    pub features: Vec<String>,
    /// `cargo build --all-features`.
    pub all_features: bool,
    /// `cargo build --no-default-features`.
    pub no_default_features: bool,
    /// Empty means the host's platform.
    pub platforms: Vec<Platform>,
    /// `--platform all`: every platform of the base's index that stevedore builds (decided
    /// once the base is resolved; `platforms` is then ignored).
    pub all_platforms: bool,
    /// `None`: from the project's settings, else the distroless default for the C library
    /// (`static-debian12` for musl, `cc-debian12` for glibc).
    pub base: Option<Base>,
    /// The C library to build against (`--libc`); `None`: from the project's settings, else
    /// musl.
    pub libc: Option<Libc>,
    /// The glibc to link against in place of the version the base's dpkg records name
    /// (`--glibc`), for a base without them; `None`: from the settings, else the base's.
    pub glibc: Option<GlibcVersion>,
    /// Names for the image; empty: from the project's settings or `STEVEDORE_REPO`, else
    /// `BIN:latest`.
    pub tags: Vec<Reference>,
    /// Tag names for the project's repository (`repository` in its settings, or
    /// `STEVEDORE_REPO`), in place of the settings' `tags`, as ko's `--tags`; `{version}` and
    /// `{git_sha}` are filled in. Empty: the settings' tags.
    pub tag_names: Vec<String>,
    /// Rustup toolchain to compile with; `None`: the cargo running stevedore.
    pub toolchain: Option<String>,
    /// Cargo's target directory (default: what cargo would use).
    pub target_dir: Option<PathBuf>,
    /// One of several binaries built at once: each image name gets `/BIN` after its repository.
    pub name_per_bin: bool,
    /// Name the image `$STEVEDORE_REPO` itself rather than `$STEVEDORE_REPO/BIN`.
    pub bare: bool,
    /// Run cargo with `--offline` (the registry side is `RegistryOptions::offline`).
    pub offline: bool,
    /// Run cargo with `--locked`: Cargo.lock must be up to date (`stevedore.lock` is
    /// `Build::locked`'s, which sets this too).
    pub locked: bool,
    /// More arguments for `cargo build` (not `cargo metadata`): `--jobs N`, and what follows
    /// `--` on the command line (`--timings`, `--config …`, `-Z …`).
    pub cargo_args: Vec<String>,
    /// How the application layer is compressed; `None`: from the settings, else gzip.
    pub compression: Option<Compression>,
    /// Image settings given as flags, over Cargo.toml's.
    pub image: ImageFlags,
    /// `--no-auditable`: embed no dependency list in the binary.
    pub no_auditable: bool,
    /// `--sbom none`: attach no SBOM to the image.
    pub no_sbom: bool,
    /// `--split-debuginfo`: ship the binary stripped, its DWARF as a referrer beside it.
    pub split_debuginfo: bool,
    /// The key to sign with (`--sign-key`, `STEVEDORE_SIGN_KEY`); beats Cargo.toml's `sign-key`.
    pub sign_key: Option<PathBuf>,
}

/// Everything later stages need, resolved and checked.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Plan {
    /// The package's Cargo.toml.
    pub manifest_path: PathBuf,
    /// The workspace's root directory, where Cargo.lock and `stevedore.lock` are.
    pub workspace_root: PathBuf,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
    /// The package's name.
    pub package: String,
    /// The package's version.
    pub version: String,
    /// The binary that goes into the image.
    pub bin: String,
    /// The cargo profile it is compiled with.
    pub profile: String,
    /// Features to activate.
    pub features: Vec<String>,
    /// `--all-features`.
    pub all_features: bool,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// One image per platform, in this order.
    pub platforms: Vec<Platform>,
    /// The C library the binaries are built against: musl (static) or the base's glibc.
    pub libc: Libc,
    /// With glibc: the version to link against in place of the base's (`--glibc`).
    pub glibc: Option<GlibcVersion>,
    /// The image to build on, or `scratch`.
    pub base: Base,
    /// The digest the base's tag is pinned to in `stevedore.lock` (`None` for `scratch`).
    #[serde(skip)]
    pub base_pin: Option<Digest>,
    /// The names the image is given.
    #[serde(serialize_with = "display_all")]
    pub tags: Vec<Reference>,
    /// The cargo and rustc that compile it.
    #[serde(skip)]
    pub(crate) toolchain: Toolchain,
    /// Whether some dependency compiles C code (so linking needs a C cross toolchain).
    pub has_c_code: bool,
    /// The package's `repository`, for the `org.opencontainers.image.source` annotation.
    pub source: Option<String>,
    /// The git commit of the workspace, when it is a git checkout.
    pub revision: Option<String>,
    /// Seconds since the epoch stamped on files and the image (`SOURCE_DATE_EPOCH`).
    pub created: i64,
    /// Runtime settings and extra files from `[package.metadata.stevedore]`.
    pub image: ImageSettings,
    /// Run cargo with `--offline`.
    pub offline: bool,
    /// Run cargo with `--locked`.
    pub locked: bool,
    /// More arguments for `cargo build`.
    pub cargo_args: Vec<String>,
    /// How the application layer is compressed.
    pub compression: Compression,
    /// Embed the dependency list in the binary, as cargo-auditable does (`.dep-v0`).
    pub auditable: bool,
    /// Attach an SPDX SBOM to each image as a referrer.
    pub sbom: bool,
    /// Strip the binary in the image and ship its DWARF as a `.debug` referrer, named by the
    /// binary's GNU build-id.
    pub split_debuginfo: bool,
    /// The key to sign the image with, if any.
    pub sign_key: Option<PathBuf>,
    /// `cargo metadata` of the workspace, resolved with the build's features for every
    /// platform; the SBOM keeps each platform's part of it (see [`target_cfg`]).
    #[serde(skip)]
    pub(crate) graph: Arc<Metadata>,
    /// The planned package's id in [`Plan::graph`].
    #[serde(skip)]
    pub(crate) package_id: PackageId,
}

/// Why a plan cannot be made: the project, its settings or the options are wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The manifest path names no file.
    #[error(
        "no Cargo.toml at {0}: run in a Cargo project or pass --manifest-path PATH/Cargo.toml"
    )]
    NoManifest(PathBuf),
    /// `cargo metadata` could not run or failed.
    #[error("`cargo metadata` failed for {manifest}")]
    Metadata {
        /// The Cargo.toml it ran on.
        manifest: PathBuf,
        /// Why.
        #[source]
        source: ToolchainError,
    },
    /// `rustc --print cfg` failed for a target.
    #[error("cannot ask rustc for the cfg values of {target}")]
    TargetCfg {
        /// The Rust target.
        target: String,
        /// Why rustc failed.
        #[source]
        source: ToolchainError,
    },
    /// `rustc --print cfg` printed a line that is not a cfg value.
    #[error("`rustc --print cfg --target {target}` printed `{line}`, which is not a cfg value")]
    TargetCfgLine {
        /// The Rust target.
        target: String,
        /// The line.
        line: String,
    },
    /// `cargo metadata` printed something that is not its JSON.
    #[error("cannot read the output of `cargo metadata`")]
    MetadataParse(#[source] cargo_metadata::Error),
    #[error("the workspace has no package `{name}`; its packages are: {available}")]
    /// `-p NAME` names no member of the workspace.
    NoSuchPackage {
        /// The name asked for.
        name: String,
        /// The workspace's packages, comma separated.
        available: String,
    },
    #[error("package `{package}` has no binary named `{bin}`; its binaries are: {available}")]
    /// `--bin NAME` names no binary of the package.
    NoSuchBin {
        /// The package.
        package: String,
        /// The binary asked for.
        bin: String,
        /// The package's binaries, comma separated.
        available: String,
    },
    #[error("package `{package}` has no binary target; stevedore packages one binary per image")]
    /// The package has no binary target.
    NoBins {
        /// The package.
        package: String,
    },
    #[error("{what} has several binaries ({available}): choose one with --bin NAME")]
    /// Several binaries and no `--bin` to choose one.
    SeveralBins {
        /// The package (or workspace) that has them.
        what: String,
        /// Its binaries, comma separated.
        available: String,
    },
    #[error("no package in the workspace has a binary named `{bin}`")]
    /// `--bin NAME` without `-p` names no binary of any member.
    BinNotInWorkspace {
        /// The binary asked for.
        bin: String,
    },
    #[error("the workspace has several packages with binaries ({available}): choose one with -p/--package NAME")]
    /// Several members have binaries and no `-p` chooses one.
    SeveralPackages {
        /// Those members, comma separated.
        available: String,
    },
    #[error(
        "{} is `{value}`, not a whole number of seconds since 1970",
        env::SOURCE_DATE_EPOCH
    )]
    /// `SOURCE_DATE_EPOCH` is not a number of seconds.
    SourceDateEpoch {
        /// Its value.
        value: String,
    },
    /// `--tags` without a repository to put them on.
    #[error(
        "--tags {tags} names tags but no repository to put them on: set `repository` in \
         [package.metadata.stevedore] or STEVEDORE_REPO, or give whole names with -t"
    )]
    TagsWithoutRepository {
        /// The tag names, comma separated.
        tags: String,
    },
    /// A platform is malformed or not supported.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// `--glibc` for a musl build; it holds the version.
    #[error(
        "--glibc {0} names a glibc to link against, but the build is against musl: add \
         --libc gnu (or `libc = \"gnu\"` in Cargo.toml), or drop --glibc"
    )]
    GlibcWithMusl(String),
    /// `--platform all` on a base whose index has no platform stevedore builds.
    #[error(
        "--platform all: the base {base} has none of the platforms stevedore builds (it has \
         {listed}); use a base with one of {supported}, or `--base scratch`",
        supported = crate::platform::list(&Platform::supported())
    )]
    NoBuildablePlatform {
        /// The base.
        base: String,
        /// What its index lists.
        listed: String,
    },
    /// `[package.metadata.stevedore]` (or the workspace's) has a wrong key or value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A tag or base is not an image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

/// A plan before its base is pinned: everything but [`Plan::base_pin`], readable through
/// `Deref`. Pinning reads `stevedore.lock` and may ask the registry, both later stages than
/// this one, so the caller pins and [`Draft::pinned`] makes the finished, immutable [`Plan`].
#[derive(Debug, Clone)]
pub struct Draft(Plan);

impl Draft {
    /// The plan, with the base's tag pinned to `base_pin` (`None` for `scratch`).
    pub fn pinned(self, base_pin: Option<Digest>) -> Plan {
        Plan { base_pin, ..self.0 }
    }

    /// The draft for these platforms instead (`--platform all`, once the base's index is
    /// read); the graph already covers every platform.
    pub fn with_platforms(self, platforms: Vec<Platform>) -> Draft {
        Draft(Plan {
            platforms,
            ..self.0
        })
    }
}

impl std::ops::Deref for Draft {
    type Target = Plan;

    fn deref(&self) -> &Plan {
        &self.0
    }
}

/// Resolves the options against the project on disk; the caller pins the base.
pub fn plan(opts: &BuildOptions) -> Result<Draft, PlanError> {
    let manifest = manifest_path(opts.manifest_path.as_deref())?;
    let toolchain = Toolchain::from_name(opts.toolchain.as_deref());
    // Later stages need the sysroot and `rustc -vV`: asked beside `cargo metadata`, they
    // cost no time of their own.
    let metadata = std::thread::scope(|s| {
        s.spawn(|| toolchain.prefetch());
        run_metadata(
            &toolchain,
            &manifest,
            &resolve_flags(opts.offline, opts.locked),
        )
    })?;
    let (package, bin) = select(&metadata, opts)?;
    let flags = cargo_flags(opts);
    // Features change the resolved graph, and `--features` applies to the package of the
    // manifest cargo is given, which is only now known: resolve again for it. Without feature
    // flags the first answer is already the build's graph (one `cargo metadata` per build).
    let graph = match flags == resolve_flags(opts.offline, opts.locked) {
        true => None,
        false => Some(run_metadata(
            &toolchain,
            package.manifest_path.as_std_path(),
            &flags,
        )?),
    };
    let workspace_root = metadata.workspace_root.clone().into_std_path_buf();
    let revision = git(&workspace_root, &["rev-parse", "HEAD"]);
    let repo_prefix = std::env::var(env::REPO).ok().filter(|r| !r.is_empty());
    // Like KO_DOCKER_REPO: a prefix that one CI variable can give every service of a workspace.
    let repository_override = repo_prefix.as_ref().map(|prefix| match opts.bare {
        true => prefix.clone(),
        false => format!("{}/{bin}", prefix.trim_end_matches('/')),
    });
    let settings = project_settings(
        &metadata,
        package,
        revision.as_deref(),
        repository_override.as_deref(),
        &opts.tag_names,
    )?;
    if !opts.tag_names.is_empty() && settings.tags.is_empty() {
        return Err(PlanError::TagsWithoutRepository {
            tags: opts.tag_names.join(","),
        });
    }
    // Flags first, then the project's settings, then defaults.
    let platforms = match (opts.platforms.is_empty(), settings.platforms.is_empty()) {
        (false, _) => dedup(&opts.platforms),
        (true, false) => dedup(&settings.platforms),
        (true, true) => vec![Platform::host()?],
    };
    let libc = opts.libc.or(settings.libc).unwrap_or_default();
    // The setting is a default for glibc builds (a workspace may mix both); the flag on a
    // musl build is a mistake.
    if let (Some(version), Libc::Musl) = (opts.glibc, libc) {
        return Err(PlanError::GlibcWithMusl(version.to_string()));
    }
    let glibc = match libc {
        Libc::Gnu => opts.glibc.or(settings.glibc),
        Libc::Musl => None,
    };
    let base = opts
        .base
        .clone()
        .or(settings.base)
        .unwrap_or_else(|| default_base(libc));
    let tags = if opts.tags.is_empty() {
        settings.tags
    } else {
        opts.tags.clone()
    };
    // `$STEVEDORE_REPO/BIN` names are per binary already.
    let named_per_bin = opts.tags.is_empty() && repo_prefix.is_some() && !opts.bare;
    let tags = match opts.name_per_bin && !named_per_bin {
        true => tags
            .iter()
            .map(|t| t.child(&bin))
            .collect::<Result<_, _>>()?,
        false => tags,
    };
    Ok(Draft(Plan {
        manifest_path: package.manifest_path.clone().into_std_path_buf(),
        target_dir: opts
            .target_dir
            .clone()
            .unwrap_or_else(|| metadata.target_directory.clone().into_std_path_buf()),
        package: package.name.to_string(),
        version: package.version.to_string(),
        bin,
        profile: opts.profile.clone().unwrap_or_else(|| "release".into()),
        features: opts.features.clone(),
        all_features: opts.all_features,
        no_default_features: opts.no_default_features,
        platforms,
        libc,
        glibc,
        base,
        base_pin: None,
        tags,
        has_c_code: compiles_c(&metadata, package),
        source: package.repository.clone(),
        revision,
        created: source_date_epoch(&workspace_root)?,
        image: settings.image.with_flags(&opts.image),
        workspace_root,
        toolchain,
        offline: opts.offline,
        locked: opts.locked,
        cargo_args: opts.cargo_args.clone(),
        compression: opts
            .compression
            .or(settings.compression)
            .unwrap_or_default(),
        auditable: !opts.no_auditable && settings.auditable.unwrap_or(true),
        sbom: !opts.no_sbom,
        split_debuginfo: opts.split_debuginfo || settings.split_debuginfo.unwrap_or(false),
        sign_key: opts.sign_key.clone().or(settings.sign_key),
        package_id: package.id.clone(),
        graph: Arc::new(graph.unwrap_or(metadata)),
    }))
}

fn project_settings(
    metadata: &Metadata,
    package: &Package,
    revision: Option<&str>,
    repository_override: Option<&str>,
    tag_names: &[String],
) -> Result<Settings, ConfigError> {
    let workspace_manifest = metadata
        .workspace_root
        .join("Cargo.toml")
        .into_std_path_buf();
    config::settings(&Sources {
        package: package
            .metadata
            .get("stevedore")
            .map(|v| (v, package.manifest_path.as_std_path())),
        workspace: metadata
            .workspace_metadata
            .get("stevedore")
            .map(|v| (v, workspace_manifest.as_path())),
        version: &package.version.to_string(),
        revision,
        repository_override,
        tags_override: (!tag_names.is_empty()).then_some(tag_names),
    })
}

/// The base when neither a flag nor Cargo.toml names one: distroless, static for musl, `cc`
/// (with glibc) for glibc.
fn default_base(libc: Libc) -> Base {
    match libc {
        Libc::Musl => Base::default(),
        Libc::Gnu => crate::reference::DEFAULT_GNU_BASE
            .parse()
            .expect("the default base is a valid reference"),
    }
}

fn dedup(platforms: &[Platform]) -> Vec<Platform> {
    let mut out: Vec<Platform> = Vec::new();
    for p in platforms {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

fn display_all<S: serde::Serializer>(v: &[Reference], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}
