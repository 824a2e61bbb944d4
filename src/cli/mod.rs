//! The command line: clap definitions, turning flags into library options, and printing
//! results; `report.rs` is the one place that reports errors and picks the exit code.

mod debuginfo;
mod report;
mod resolve;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::build::{Build, Error, ErrorKind, Outcome};
use crate::cache::BlobStore;
use crate::oci::Compression;
use crate::plan::BuildOptions;
use crate::platform::Platform;
use crate::publish::{self, Output};
use crate::reference::{Base, Reference};
use crate::registry::{Registry, RegistryError, RegistryOptions};
use crate::verify::Published;
use report::{init_logging, report, Bars, Exit};

#[derive(Debug, Parser)]
#[command(
    name = "cargo-stevedore",
    bin_name = "cargo stevedore",
    version,
    about = "Build OCI images of Rust services, no Docker daemon needed"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compile the project for musl and build an OCI image of it.
    Build(Box<BuildArgs>),
    /// Rebuild from the checkout and compare with a published image: exits 0 when the digests
    /// match, 3 naming the first differing file or field when they do not.
    Verify(Box<VerifyArgs>),
    /// Build and push every `stevedore://PACKAGE[/BIN]` in Kubernetes YAML and print the YAML
    /// with `REPO@sha256:…` in their place, every other byte as it was.
    Resolve(Box<resolve::ResolveArgs>),
    /// `resolve`, then `kubectl apply -f -` the result (kubectl's exit code is ours).
    Apply(Box<resolve::ApplyArgs>),
    /// Pin the base images by digest in stevedore.lock (beside Cargo.lock), resolving their
    /// tags again.
    Lock(LockArgs),
    /// Add a commented [package.metadata.stevedore] table to Cargo.toml and print an xtask snippet.
    Init(InitArgs),
    /// Fetch the debug symbols of an image built with --split-debuginfo (every platform's
    /// `.debug` file) into a `.build-id/xx/yyyy.debug` tree for gdb's `debug-file-directory`.
    /// Exits 4 when the image has none.
    Debuginfo(debuginfo::DebuginfoArgs),
    /// Work with multi-platform indexes in a registry.
    #[command(subcommand)]
    Index(IndexCommand),
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Path to Cargo.toml (default: the one in the current directory or above).
    #[arg(long, value_name = "PATH")]
    manifest_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct LockArgs {
    /// Path to Cargo.toml (default: the one in the current directory or above).
    #[arg(long, value_name = "PATH")]
    manifest_path: Option<PathBuf>,
    /// Pin only this package's base (default: the bases of every package with a binary).
    #[arg(short, long, value_name = "SPEC")]
    package: Option<String>,
    /// Pin this base instead of the one in Cargo.toml.
    #[arg(long, value_name = "REF")]
    base: Option<Base>,
    /// Change nothing: fail if the lock lacks a base or a base's tag has moved (for CI).
    #[arg(long)]
    locked: bool,
    /// Rustup toolchain to run `cargo metadata` with (default: the cargo running this command).
    #[arg(long, value_name = "NAME")]
    toolchain: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Merge per-platform images already in a registry (e.g. built on native runners) into one
    /// index, without pulling their layers.
    Create(IndexCreateArgs),
}

#[derive(Debug, Args)]
struct IndexCreateArgs {
    /// The index to create, e.g. registry.example.com/app:1.0.
    #[arg(value_name = "TARGET")]
    target: Reference,
    /// A single-platform image to include (repeat for each platform).
    #[arg(long = "from", value_name = "REF", required = true)]
    from: Vec<Reference>,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, Clone, Args)]
struct RegistryArgs {
    /// Extra CA certificate (PEM) to trust for registries (repeatable).
    #[arg(long, value_name = "FILE")]
    registry_ca: Vec<PathBuf>,
    /// Registry host[:port] to reach over plain HTTP (loopback registries need no flag).
    #[arg(long, value_name = "HOST")]
    insecure_registry: Vec<String>,
    /// Seconds a registry connection may stay silent (no answer, no bytes) before the request
    /// is given up and retried [default: 30].
    #[arg(long, value_name = "SECONDS", env = crate::env::TIMEOUT, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
}

impl RegistryArgs {
    fn apply(self, mut build: Build) -> Build {
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
    fn client(self, target: &Reference) -> Result<Registry, RegistryError> {
        let opts = RegistryOptions {
            ca_files: self.registry_ca,
            insecure: self.insecure_registry,
            timeout: self.timeout.map(std::time::Duration::from_secs),
            ..RegistryOptions::default()
        };
        Registry::writing_to(opts, [target])
    }
}

/// What to build: the flags `build` and `verify` share.
#[derive(Debug, Args)]
struct ProjectArgs {
    /// Path to Cargo.toml (default: the one in the current directory or above).
    #[arg(long, value_name = "PATH")]
    manifest_path: Option<PathBuf>,
    /// Package to build (needed in a workspace with several binary packages).
    #[arg(short, long, value_name = "SPEC")]
    package: Option<String>,
    /// Binary target to put in the image (needed when the package has several).
    #[arg(long, value_name = "NAME")]
    bin: Option<String>,
    /// Cargo profile to build with.
    #[arg(long, value_name = "NAME", default_value = "release")]
    profile: String,
    /// Features to activate (comma or space separated; repeatable).
    #[arg(short = 'F', long, value_name = "FEATURES")]
    features: Vec<String>,
    /// Activate all features.
    #[arg(long)]
    all_features: bool,
    /// Do not activate the `default` feature.
    #[arg(long)]
    no_default_features: bool,
    /// Base image reference, or `scratch` for none [default: Cargo.toml's
    /// `package.metadata.stevedore.base`, else gcr.io/distroless/static-debian12:nonroot]
    #[arg(long, value_name = "REF|scratch")]
    base: Option<Base>,
    /// Rustup toolchain to compile with (default: the cargo running this command).
    #[arg(long, value_name = "NAME")]
    toolchain: Option<String>,
    /// Cargo's target directory (default: what cargo would use).
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// How to compress the application layer: gzip (read by every engine) or zstd (smaller,
    /// faster; docker 23+, podman, containerd 1.5+) [default: Cargo.toml's `compression`, else
    /// gzip].
    #[arg(long, value_name = "gzip|zstd")]
    compression: Option<Compression>,
    /// Embed no dependency list in the binary (the `.dep-v0` section scanners read, as
    /// cargo-auditable writes it) [default: embed it, unless Cargo.toml's
    /// `package.metadata.stevedore.auditable` is false]
    #[arg(long)]
    no_auditable: bool,
    /// Ship the binary stripped and its DWARF apart: a `.debug` file named by the binary's GNU
    /// build-id, attached to each platform's image as a referrer (`cargo stevedore debuginfo`
    /// fetches them) [default: Cargo.toml's `split-debuginfo`, else off]
    #[arg(long)]
    split_debuginfo: bool,
}

impl ProjectArgs {
    fn options(self) -> BuildOptions {
        BuildOptions {
            manifest_path: self.manifest_path,
            package: self.package,
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
            split_debuginfo: self.split_debuginfo,
            ..BuildOptions::default()
        }
    }
}

/// How the image is made and named: the flags `build`, `resolve` and `apply` share.
#[derive(Debug, Args)]
struct ImageArgs {
    /// Platforms to build for, comma separated: linux/amd64, linux/arm64, or `all` (every
    /// platform of the base's index that stevedore builds) [default: the host's].
    #[arg(long, value_name = "LIST|all", value_delimiter = ',')]
    platform: Vec<PlatformArg>,
    /// Name for the image (repeatable), e.g. `registry.example.com/app:1.2`.
    #[arg(short, long, value_name = "REF")]
    tag: Vec<Reference>,
    /// Name the image `$STEVEDORE_REPO` itself, not `$STEVEDORE_REPO/BIN`.
    #[arg(long)]
    bare: bool,
    /// Change nothing in stevedore.lock: fail if the base is not pinned there, or if its tag
    /// now names another digest in the registry.
    #[arg(long)]
    locked: bool,
    /// Resolve the base's tag again and pin what it names now in stevedore.lock.
    #[arg(long)]
    update_base: bool,
    /// Sign the image and its provenance with this EC P-256 key: PKCS#8 PEM (`openssl
    /// genpkey`), encrypted PKCS#8, or a cosign.key; the password from STEVEDORE_SIGN_PASSWORD
    /// or COSIGN_PASSWORD [default: `sign-key` in Cargo.toml]
    #[arg(long, value_name = "FILE", env = crate::env::SIGN_KEY)]
    sign_key: Option<PathBuf>,
    /// Attach no SLSA provenance (it is attached by default).
    #[arg(long)]
    no_provenance: bool,
    #[command(flatten)]
    settings: SettingsArgs,
}

/// Image settings as flags; each beats the same setting in Cargo.toml (README "Configuration").
#[derive(Debug, Clone, Args)]
struct SettingsArgs {
    /// A label in the image config, KEY=VALUE (repeatable; added to Cargo.toml's `labels`).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
    labels: Vec<(String, String)>,
    /// An annotation on the manifest, KEY=VALUE (repeatable; added to Cargo.toml's
    /// `annotations`).
    #[arg(long = "annotation", value_name = "KEY=VALUE", value_parser = key_value)]
    annotations: Vec<(String, String)>,
    /// An environment variable, KEY=VALUE (repeatable; added to Cargo.toml's `env`).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// The user the entrypoint runs as, UID[:GID] (replaces Cargo.toml's `user`).
    #[arg(long, value_name = "UID[:GID]")]
    user: Option<String>,
    /// A TCP port the service listens on (repeatable; replaces Cargo.toml's `ports`).
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<u16>,
    /// An argument after the entrypoint, the image's Cmd (repeatable; replaces Cargo.toml's
    /// `args`).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// The health check's command, 'PROGRAM ARG…' split on blanks and run without a shell
    /// (replaces Cargo.toml's `healthcheck.cmd`, keeping its timings).
    #[arg(long, value_name = "'PROGRAM ARG…'")]
    healthcheck: Option<String>,
}

impl SettingsArgs {
    fn flags(&self) -> crate::config::ImageFlags {
        crate::config::ImageFlags {
            labels: self.labels.iter().cloned().collect(),
            annotations: self.annotations.iter().cloned().collect(),
            env: self.env.iter().cloned().collect(),
            user: self.user.clone(),
            ports: self.ports.clone(),
            args: self.args.clone(),
            healthcheck: self
                .healthcheck
                .as_ref()
                .map(|c| c.split_whitespace().map(String::from).collect()),
        }
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

impl ImageArgs {
    /// A build of `options` with these flags applied.
    fn build(&self, mut options: BuildOptions) -> Build {
        options.all_platforms = self.platform.contains(&PlatformArg::All);
        options.platforms = self
            .platform
            .iter()
            .filter_map(|p| match p {
                PlatformArg::One(p) => Some(p.clone()),
                PlatformArg::All => None,
            })
            .collect();
        options.tags = self.tag.clone();
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
enum PlatformArg {
    All,
    One(Platform),
}

impl std::str::FromStr for PlatformArg {
    type Err = crate::platform::PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => Ok(PlatformArg::All),
            one => one.parse().map(PlatformArg::One),
        }
    }
}

#[derive(Debug, Args)]
struct BuildArgs {
    #[command(flatten)]
    project: ProjectArgs,
    /// One image per binary of the package (names get `/BIN` after the repository).
    #[arg(long, conflicts_with = "bin")]
    all_bins: bool,
    #[command(flatten)]
    image: ImageArgs,
    /// Where to write the image (repeatable): oci-layout=DIR, oci-archive=FILE.tar (every
    /// platform) or docker-archive=FILE.tar (one platform).
    /// Default: oci-layout=target/stevedore/BIN.
    #[arg(short, long, value_name = "KIND=PATH")]
    output: Vec<Output>,
    /// Push the image to the registry of each --tag (the last line printed is REPO@DIGEST).
    #[arg(long)]
    push: bool,
    /// Load the image (the host's platform) into a local engine: docker or podman [default:
    /// docker if its daemon answers, else podman]. It is named by the first tag.
    #[arg(long, value_name = "ENGINE", num_args = 0..=1, default_missing_value = "auto")]
    load: Option<crate::publish::Engine>,
    /// After pushing, write every reference pushed to FILE, one per line, by digest: the image
    /// (or index), each platform's manifest, the SBOMs, the provenance, the signatures.
    #[arg(long, value_name = "FILE", requires = "push")]
    image_refs: Option<PathBuf>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Use only local caches (cargo's and stevedore's): no network. The base must be pinned.
    #[arg(long, conflicts_with_all = ["push", "update_base"])]
    offline: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The published image: REGISTRY/REPO:TAG (or @DIGEST), or oci-layout=DIR.
    #[arg(value_name = "REF|oci-layout=DIR")]
    published: Published,
    #[command(flatten)]
    project: ProjectArgs,
    /// Rebuild from local caches only; the published image must be a layout then.
    #[arg(long)]
    offline: bool,
    /// Also check the image's cosign signatures (the index and each platform's manifest) and
    /// its signed provenance's subject with this EC P-256 public key (PEM).
    #[arg(long, value_name = "PUB.pem")]
    key: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs the command line with the process's arguments and returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(args()) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // `--help` and `--version` come this way too, and are no mistake.
            return match e.use_stderr() {
                true => Exit::Usage.into(),
                false => Exit::Success.into(),
            };
        }
    };
    init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Build(args) => build(*args),
        Command::Index(IndexCommand::Create(args)) => create_index(args),
        Command::Init(args) => init(args),
        Command::Lock(args) => lock(args),
        Command::Verify(args) => verify(*args),
        Command::Debuginfo(args) => debuginfo::run(args),
        Command::Resolve(args) => resolve::resolve(*args),
        Command::Apply(args) => match resolve::apply(*args) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => Exit::Success.into(),
        Err(e) => {
            report(&e);
            Exit::of(&e).into()
        }
    }
}

/// The arguments without the `stevedore` that cargo inserts when run as `cargo stevedore`.
fn args() -> Vec<OsString> {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "stevedore") {
        args.remove(1);
    }
    args
}

fn build(args: BuildArgs) -> Result<(), Error> {
    let mut build = args
        .image
        .build(args.project.options())
        .with_push(args.push)
        .offline(args.offline);
    for output in args.output {
        build = build.output(output);
    }
    if let Some(engine) = args.load {
        build = build.load_into(engine);
    }
    build = args.registry.apply(build);
    if let Some(bars) = Bars::for_terminal(args.json) {
        build = build.progress(bars);
    }
    let outcomes = match args.all_bins {
        true => build.run_all_bins()?,
        false => vec![build.run()?],
    };
    if let Some(path) = &args.image_refs {
        let refs: Vec<Reference> = outcomes
            .iter()
            .filter_map(|o| o.push.as_ref())
            .flat_map(|r| r.refs.iter().cloned())
            .collect();
        crate::publish::write_refs(path, &refs).map_err(|source| ErrorKind::Publish {
            output: format!("--image-refs {}", path.display()),
            source,
        })?;
    }
    if args.json {
        let results: Vec<_> = outcomes.iter().map(outcome_json).collect();
        match (args.all_bins, results.as_slice()) {
            (false, [one]) => println!("{one:#}"),
            _ => println!("{:#}", serde_json::Value::Array(results)),
        }
        return Ok(());
    }
    for outcome in &outcomes {
        for output in &outcome.outputs {
            println!("{output}@{}", outcome.digest());
        }
        if let Some(loaded) = &outcome.loaded {
            println!(
                "{}:{} ({})",
                loaded.engine.name(),
                loaded.name,
                loaded.platform
            );
        }
        for reference in outcome.pushed() {
            println!("{reference}");
        }
    }
    Ok(())
}

fn outcome_json(outcome: &Outcome) -> serde_json::Value {
    let images: Vec<_> = outcome
        .built
        .images
        .iter()
        .map(|i| {
            json!({"platform": i.platform.to_string(), "digest": i.manifest.digest().to_string(),
                   "size": i.manifest.size(), "config": i.config.digest().to_string()})
        })
        .collect();
    let plan = &outcome.plan;
    let media_type = outcome.built.top().media_type().to_string();
    json!({
        "package": plan.package, "bin": plan.bin, "version": plan.version,
        "digest": outcome.digest().to_string(), "mediaType": media_type,
        "index": outcome.built.index.digest().to_string(),
        "images": images,
        "tags": outcome.tags.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "outputs": outcome.outputs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "pushed": outcome.pushed().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "push": outcome.push.as_ref().map(|r| json!({"uploaded": r.uploaded, "mounted": r.mounted, "existing": r.existing})),
        "loaded": outcome.loaded.as_ref().map(|l| json!({"engine": l.engine.name(), "name": l.name.to_string(), "platform": l.platform.to_string()})),
    })
}

fn init(args: InitArgs) -> Result<(), Error> {
    let manifest = crate::plan::manifest_path(args.manifest_path.as_deref())?;
    crate::init::init(&manifest)?;
    eprintln!(
        "added [package.metadata.stevedore] to {}",
        manifest.display()
    );
    println!("{}", crate::init::XTASK_SNIPPET);
    Ok(())
}

fn verify(args: VerifyArgs) -> Result<(), Error> {
    let mut build = Build::from_options(args.project.options()).offline(args.offline);
    if let Some(key) = args.key {
        build = build.verify_key(key);
    }
    let build = args.registry.apply(build);
    let verdict = build.verify(&args.published)?;
    for finding in &verdict.signatures {
        let mark = if finding.ok { "ok" } else { "FAILED" };
        println!("signature {mark}: {}", finding.message);
    }
    for p in &verdict.platforms {
        match (&p.difference, &p.theirs) {
            (None, _) => println!("{}: identical {}", p.platform, p.ours),
            (Some(why), Some(theirs)) => println!(
                "{}: differs (rebuilt {}, published {theirs})\n  {why}",
                p.platform, p.ours
            ),
            (Some(why), None) => println!("{}: {why}", p.platform),
        }
    }
    if let Some(why) = &verdict.top_difference {
        println!("{why}");
    }
    match verdict.matches() {
        true => {
            println!("{} matches {}", args.published, verdict.ours);
            Ok(())
        }
        false if verdict.ours == verdict.theirs => Err(ErrorKind::Unsigned {
            published: args.published.to_string(),
        }
        .into()),
        false => Err(ErrorKind::Mismatch {
            published: args.published.to_string(),
            ours: verdict.ours,
            theirs: verdict.theirs,
        }
        .into()),
    }
}

fn lock(args: LockArgs) -> Result<(), Error> {
    let options = BuildOptions {
        manifest_path: args.manifest_path,
        package: args.package,
        base: args.base,
        toolchain: args.toolchain,
        ..BuildOptions::default()
    };
    let build = args
        .registry
        .apply(Build::from_options(options).locked(args.locked));
    for (reference, digest) in build.lock()? {
        println!("{reference}@{digest}");
    }
    Ok(())
}

fn create_index(args: IndexCreateArgs) -> Result<(), Error> {
    let registry = args.registry.client(&args.target)?;
    let store = BlobStore::open_default()?;
    let pushed = publish::create_index(&args.target, &args.from, &registry, &store)
        .map_err(ErrorKind::Push)?;
    println!("{pushed}");
    Ok(())
}
