//! The flag groups several commands share: what to build (`ProjectArgs`, `PackageArg`), how
//! the image is made and named (`ImageArgs`), and how registries are reached (`RegistryArgs`).

use std::path::PathBuf;

use clap::Args;

use stevedore::plan::BuildOptions;
use stevedore::registry::{Registry, RegistryError, RegistryOptions};
use stevedore::Build;
use stevedore::Compression;
use stevedore::{Base, Reference};
use stevedore::{GlibcVersion, Libc, Platform};

#[derive(Debug, Clone, Args)]
pub(super) struct RegistryArgs {
    /// Extra CA certificate (PEM) to trust for registries (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(super) registry_ca: Vec<PathBuf>,
    /// Registry host[:port] to reach over plain HTTP (loopback registries need no flag).
    #[arg(long, value_name = "HOST")]
    pub(super) insecure_registry: Vec<String>,
    /// Seconds a registry connection may stay silent (no answer, no bytes) before the request
    /// is given up and retried [default: 30].
    #[arg(long, value_name = "SECONDS", env = stevedore::env::TIMEOUT, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) timeout: Option<u64>,
}

impl RegistryArgs {
    pub(super) fn apply(self, mut build: Build) -> Build {
        for ca in self.registry_ca {
            build = build.registry_ca(ca);
        }
        for host in self.insecure_registry {
            build = build.insecure_registry(host);
        }
        if let Some(seconds) = self.timeout {
            build = build.registry_timeout(std::time::Duration::from_secs(seconds));
        }
        build
    }

    /// A client whose environment credential goes only to the registry written to.
    pub(super) fn client(self, target: &Reference) -> Result<Registry, RegistryError> {
        Registry::writing_to(self.options(), [target])
    }

    /// How to reach registries, as the flags say.
    pub(super) fn options(self) -> RegistryOptions {
        RegistryOptions {
            ca_files: self.registry_ca,
            insecure: self.insecure_registry,
            timeout: self.timeout.map(std::time::Duration::from_secs),
            ..RegistryOptions::default()
        }
    }
}

/// What to build: the flags `build` and `verify` share.
#[derive(Debug, Args)]
pub(super) struct ProjectArgs {
    /// Path to Cargo.toml (default: the one in the current directory or above).
    #[arg(long, value_name = "PATH")]
    pub(super) manifest_path: Option<PathBuf>,
    /// Binary target to put in the image (needed when the package has several).
    #[arg(long, value_name = "NAME")]
    pub(super) bin: Option<String>,
    /// Cargo profile to build with.
    #[arg(long, value_name = "NAME", default_value = "release")]
    pub(super) profile: String,
    /// Features to activate (comma or space separated; repeatable).
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub(super) features: Vec<String>,
    /// Activate all features.
    #[arg(long)]
    pub(super) all_features: bool,
    /// Do not activate the `default` feature.
    #[arg(long)]
    pub(super) no_default_features: bool,
    /// Base image reference, or `scratch` for none [default: Cargo.toml's
    /// `package.metadata.stevedore.base`, else gcr.io/distroless/static-debian12:nonroot]
    #[arg(long, value_name = "REF|scratch")]
    pub(super) base: Option<Base>,
    /// Rustup toolchain to compile with (default: the cargo running this command).
    #[arg(long, value_name = "NAME")]
    pub(super) toolchain: Option<String>,
    /// Cargo's target directory (default: what cargo would use).
    #[arg(long, value_name = "DIR")]
    pub(super) target_dir: Option<PathBuf>,
    /// How to compress the application layer: gzip (read by every engine) or zstd (smaller,
    /// faster; docker 23+, podman, containerd 1.5+) [default: Cargo.toml's `compression`, else
    /// gzip].
    #[arg(long, value_name = "gzip|zstd")]
    pub(super) compression: Option<Compression>,
    /// Embed no dependency list in the binary (the `.dep-v0` section scanners read, as
    /// cargo-auditable writes it) [default: embed it, unless Cargo.toml's
    /// `package.metadata.stevedore.auditable` is false]
    #[arg(long)]
    pub(super) no_auditable: bool,
    /// The SBOM attached to each image as a referrer: an SPDX 2.3 document, or none (ko's
    /// `--sbom none`).
    #[arg(long, value_name = "spdx|none", default_value = "spdx")]
    pub(super) sbom: SbomArg,
    /// Ship the binary stripped and its DWARF apart: a `.debug` file named by the binary's GNU
    /// build-id, attached to each platform's image as a referrer (`cargo stevedore debuginfo`
    /// fetches them) [default: Cargo.toml's `split-debuginfo`, else off]
    #[arg(long)]
    pub(super) split_debuginfo: bool,
}

/// What `--sbom` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum SbomArg {
    /// An SPDX 2.3 JSON document per image.
    Spdx,
    /// No SBOM.
    None,
}

/// `-p` where one package is built.
#[derive(Debug, Args)]
pub(super) struct PackageArg {
    /// Package to build (needed in a workspace with several binary packages).
    #[arg(short, long, value_name = "SPEC")]
    pub(super) package: Option<String>,
}

impl ProjectArgs {
    pub(super) fn options(self, package: Option<String>) -> BuildOptions {
        BuildOptions {
            manifest_path: self.manifest_path,
            package,
            bin: self.bin,
            profile: Some(self.profile),
            features: self
                .features
                .iter()
                .flat_map(|f| f.split([',', ' ']))
                .filter(|f| !f.is_empty())
                .map(String::from)
                .collect(),
            all_features: self.all_features,
            no_default_features: self.no_default_features,
            base: self.base,
            toolchain: self.toolchain,
            target_dir: self.target_dir,
            compression: self.compression,
            no_auditable: self.no_auditable,
            no_sbom: self.sbom == SbomArg::None,
            split_debuginfo: self.split_debuginfo,
            ..BuildOptions::default()
        }
    }
}

/// How the image is made and named: the flags `build`, `resolve` and `apply` share.
#[derive(Debug, Args)]
pub(super) struct ImageArgs {
    /// Platforms to build for, comma separated: linux/amd64, linux/arm64, linux/arm/v7,
    /// linux/386, linux/ppc64le, linux/s390x, linux/riscv64, or `all` (every platform of the
    /// base's index that stevedore builds) [default: the host's].
    #[arg(long, value_name = "LIST|all", value_delimiter = ',')]
    pub(super) platform: Vec<PlatformArg>,
    /// The C library to build against: `musl` (a static binary, on any base) or `gnu` (glibc,
    /// linked against the base's own, which the base must have; default base
    /// gcr.io/distroless/cc-debian12:nonroot) [default: `libc` in Cargo.toml, else musl]
    #[arg(long, value_name = "musl|gnu")]
    pub(super) libc: Option<Libc>,
    /// With --libc gnu: the glibc to link against, MAJOR.MINOR, in place of the version the
    /// base's dpkg records name (for a base without them); the binary is still checked against
    /// the base's when it has them [default: `glibc` in Cargo.toml, else the base's]
    #[arg(long, value_name = "X.Y")]
    pub(super) glibc: Option<GlibcVersion>,
    /// Name for the image (repeatable), e.g. `registry.example.com/app:1.2`.
    #[arg(short, long, value_name = "REF")]
    pub(super) tag: Vec<Reference>,
    /// Tag names for the project's repository, comma separated, as ko's `--tags`: `--tags
    /// 1.2,latest` names `REPO:1.2` and `REPO:latest`, REPO being `repository` in Cargo.toml
    /// or `$STEVEDORE_REPO/BIN`; `{version}` and `{git_sha}` are filled in [default: Cargo.toml's
    /// `tags`, else latest]
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        conflicts_with = "tag"
    )]
    pub(super) tags: Vec<String>,
    /// Name the image `$STEVEDORE_REPO` itself, not `$STEVEDORE_REPO/BIN`.
    #[arg(long)]
    pub(super) bare: bool,
    /// Change nothing in stevedore.lock: fail if the base is not pinned there, or if its tag
    /// now names another digest in the registry.
    #[arg(long)]
    pub(super) locked: bool,
    /// Resolve the base's tag again and pin what it names now in stevedore.lock.
    #[arg(long)]
    pub(super) update_base: bool,
    /// Sign the image and its provenance with this EC P-256 key: PKCS#8 PEM (`openssl
    /// genpkey`), encrypted PKCS#8, or a cosign.key; the password from STEVEDORE_SIGN_PASSWORD
    /// or COSIGN_PASSWORD [default: `sign-key` in Cargo.toml]
    #[arg(long, value_name = "FILE", env = stevedore::env::SIGN_KEY)]
    pub(super) sign_key: Option<PathBuf>,
    /// Attach no SLSA provenance (it is attached by default).
    #[arg(long)]
    pub(super) no_provenance: bool,
    #[command(flatten)]
    pub(super) settings: SettingsArgs,
}

/// Image settings as flags; each beats the same setting in Cargo.toml (README "Configuration").
#[derive(Debug, Clone, Args)]
pub(super) struct SettingsArgs {
    /// A label in the image config, KEY=VALUE (repeatable; added to Cargo.toml's `labels`).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
    pub(super) labels: Vec<(String, String)>,
    /// An annotation on the manifest, KEY=VALUE (repeatable; added to Cargo.toml's
    /// `annotations`).
    #[arg(long = "annotation", value_name = "KEY=VALUE", value_parser = key_value)]
    pub(super) annotations: Vec<(String, String)>,
    /// An environment variable, KEY=VALUE (repeatable; added to Cargo.toml's `env`).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
    pub(super) env: Vec<(String, String)>,
    /// The user the entrypoint runs as, UID[:GID] (replaces Cargo.toml's `user`).
    #[arg(long, value_name = "UID[:GID]")]
    pub(super) user: Option<String>,
    /// A TCP port the service listens on (repeatable; replaces Cargo.toml's `ports`).
    #[arg(long = "port", value_name = "PORT")]
    pub(super) ports: Vec<u16>,
    /// An argument after the entrypoint, the image's Cmd (repeatable; replaces Cargo.toml's
    /// `args`).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub(super) args: Vec<String>,
    /// The health check's command, 'PROGRAM ARG…' split on blanks and run without a shell
    /// (replaces Cargo.toml's `healthcheck.cmd`, keeping its timings); `none`: no health check.
    #[arg(long, value_name = "'PROGRAM ARG…'|none")]
    pub(super) healthcheck: Option<stevedore::HealthcheckFlag>,
}

impl SettingsArgs {
    pub(super) fn flags(&self) -> stevedore::ImageFlags {
        let mut flags = stevedore::ImageFlags::default();
        flags.labels = self.labels.iter().cloned().collect();
        flags.annotations = self.annotations.iter().cloned().collect();
        flags.env = self.env.iter().cloned().collect();
        flags.user = self.user.clone();
        flags.ports = self.ports.clone();
        flags.args = self.args.clone();
        flags.healthcheck = self.healthcheck.clone();
        flags
    }
}

pub(super) fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

impl ImageArgs {
    /// A build of `options` with these flags applied.
    pub(super) fn build(&self, mut options: BuildOptions) -> Build {
        options.all_platforms = self.platform.contains(&PlatformArg::All);
        options.platforms = self
            .platform
            .iter()
            .filter_map(|p| match p {
                PlatformArg::One(p) => Some(p.clone()),
                PlatformArg::All => None,
            })
            .collect();
        options.libc = self.libc;
        options.glibc = self.glibc;
        options.tags = self.tag.clone();
        options.tag_names = self.tags.clone();
        options.image = self.settings.flags();
        options.sign_key = self.sign_key.clone();
        Build::from_options(options)
            .provenance(!self.no_provenance)
            .bare(self.bare)
            .locked(self.locked)
            .update_base(self.update_base)
    }
}

/// A `--platform` value: one platform, or `all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PlatformArg {
    All,
    One(Platform),
}

impl std::str::FromStr for PlatformArg {
    type Err = stevedore::PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => Ok(PlatformArg::All),
            one => one.parse().map(PlatformArg::One),
        }
    }
}
