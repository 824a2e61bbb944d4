//! The command line: clap definitions, turning flags into library options, and printing
//! results; `report.rs` is the one place that reports errors and picks the exit code.

mod args;
mod debuginfo;
mod error;
mod login;
mod rebase;
mod report;
mod resolve;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use args::{ImageArgs, PackageArg, ProjectArgs, RegistryArgs};
use error::Error;
use report::{init_logging, report, Bars, Exit};
use stevedore::cache::BlobStore;
use stevedore::plan::BuildOptions;
use stevedore::publish::{self, Output};
use stevedore::source::Location;
use stevedore::{Base, Reference};
use stevedore::{Build, ErrorKind, Outcome};

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
    /// Colour the log and cargo's output: auto (when stderr is a terminal and NO_COLOR is
    /// unset), always or never; as cargo's --color, and CARGO_TERM_COLOR sets it the same way.
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        global = true,
        env = "CARGO_TERM_COLOR"
    )]
    #[arg(default_value_t = report::Color::Auto, hide_env_values = true)]
    color: report::Color,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compile the project for musl and build an OCI image of it.
    Build(Box<BuildArgs>),
    /// Rebuild from the checkout and compare with a published image: exits 0 when the digests
    /// match, 3 naming the first differing file or field when they do not.
    Verify(Box<VerifyArgs>),
    /// Put a published image on a new base without compiling: the image `build --base NEW`
    /// writes from this checkout, byte for byte. Exits 5, writing nothing, when the image is
    /// not stevedore's, not on the base it records, or not what this checkout builds.
    Rebase(Box<rebase::RebaseArgs>),
    /// List the platforms of published images whose base tag now names another image than the
    /// one they were built on (manifests only, no layer), or, with no image given, the bases
    /// stevedore.lock pins whose tag has moved: exits 0 when none, 6 when some.
    Outdated(rebase::OutdatedArgs),
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
    /// Check a registry credential and keep it in podman's auth file (or the credential helper
    /// it names), for machines without docker or podman.
    Login(login::LoginArgs),
    /// Forget the credential `login` kept for a registry.
    Logout(login::LogoutArgs),
    /// Print a completion script for cargo-stevedore (e.g. `cargo stevedore completions bash >
    /// ~/.local/share/bash-completion/completions/cargo-stevedore`).
    Completions(CompletionsArgs),
    /// Print the manual page (roff: `cargo stevedore man | man -l -`), or with --dir write one
    /// page per command there (cargo-stevedore.1, cargo-stevedore-build.1, …).
    Man(ManArgs),
}

#[derive(Debug, Args)]
struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
struct ManArgs {
    /// Write a page for every command into this directory instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
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
    /// A single-platform image to include (repeat for each platform): REF in the index's
    /// registry (its blobs are mounted), or oci-layout=DIR / oci-archive=FILE.tar (its blobs
    /// are uploaded).
    #[arg(
        long = "from",
        value_name = "REF|oci-layout=DIR|oci-archive=FILE",
        required = true
    )]
    from: Vec<Location>,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// Package to build (repeatable: one image per package, built one after another and
    /// pushed side by side; needed in a workspace with several binary packages).
    #[arg(short, long = "package", value_name = "SPEC")]
    packages: Vec<String>,
    /// An image of every binary package of the workspace, as `-p` for each.
    #[arg(long, conflicts_with_all = ["packages", "bin", "all_bins"])]
    workspace: bool,
    #[command(flatten)]
    project: ProjectArgs,
    /// One image per binary of the package (names get `/BIN` after the repository).
    #[arg(long, conflicts_with = "bin")]
    all_bins: bool,
    /// Cargo's `--jobs`: parallel compile jobs.
    #[arg(short, long, value_name = "N", allow_negative_numbers = true)]
    jobs: Option<i32>,
    /// Blob uploads at once, across every image of the run [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    push_jobs: Option<u16>,
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
    load: Option<stevedore::publish::Engine>,
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
    /// `--locked` and `--offline`, as cargo's `--frozen`: Cargo.lock and stevedore.lock as
    /// they are, no network.
    #[arg(long, conflicts_with_all = ["push", "update_base"])]
    frozen: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Arguments for `cargo build`, after `--` (e.g. `-- --timings`, `-- --config …`).
    #[arg(last = true, value_name = "CARGO ARGS")]
    cargo_args: Vec<String>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The published image: REGISTRY/REPO:TAG (or @DIGEST), oci-layout=DIR or
    /// oci-archive=FILE.tar.
    #[arg(value_name = "REF|oci-layout=DIR|oci-archive=FILE")]
    published: Location,
    #[command(flatten)]
    package: PackageArg,
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

/// What `cargo build` gets besides stevedore's own flags: `--jobs`, then what followed `--`.
fn cargo_args(jobs: Option<i32>, rest: Vec<String>) -> Vec<String> {
    let jobs = jobs.map(|n| format!("--jobs={n}"));
    jobs.into_iter().chain(rest).collect()
}

/// Stops (exit 2, as for any other wrong flag) a push to a name without registry and
/// namespace: `-t v1.2` names Docker Hub's official image `docker.io/library/v1.2`, where no
/// user may push, and is meant as a tag far more often than as that.
fn refuse_official_names(tags: &[Reference]) {
    let Some(official) = tags
        .iter()
        .find(|t| t.registry() == "docker.io" && t.repository().starts_with("library/"))
    else {
        return;
    };
    // What the user most likely meant as a tag: the tag written, else the word (`-t v1.2`
    // parses as `library/v1.2:latest`).
    let word = official.repository().trim_start_matches("library/");
    let written = official.tag().filter(|t| *t != "latest");
    let meant = written.unwrap_or(word);
    let message = format!(
        "`-t` takes the whole name of the image, and `{word}{}` names Docker Hub's official \
         image {}, which no one outside Docker may push to: give the registry and repository \
         too, e.g. `-t ghcr.io/OWNER/APP:{meant}`, or give only the tag with `--tags {meant}` and \
         the repository in STEVEDORE_REPO or Cargo.toml's `repository`",
        written.map(|t| format!(":{t}")).unwrap_or_default(),
        official.name(),
    );
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("{message}\n"),
    )
    .exit()
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
    let colored = cli.color.on_stderr();
    init_logging(cli.verbose, cli.quiet, colored);
    // Cargo's own `-q` and `--color` (its `term.quiet` and `term.color`), for the cargo runs
    // stevedore starts, whose output goes where ours does: set while this process has one
    // thread, before any child starts.
    if cli.quiet {
        std::env::set_var("CARGO_TERM_QUIET", "true");
    }
    match (cli.color, colored) {
        // Cargo's auto also looks at each stream: a `cargo metadata` whose stderr stevedore
        // reads gets none.
        (report::Color::Auto, true) => std::env::remove_var("CARGO_TERM_COLOR"),
        (_, true) => std::env::set_var("CARGO_TERM_COLOR", "always"),
        (_, false) => std::env::set_var("CARGO_TERM_COLOR", "never"),
    }
    let result = match cli.command {
        Command::Build(args) => build(*args, cli.quiet),
        Command::Index(IndexCommand::Create(args)) => create_index(args),
        Command::Init(args) => init(args),
        Command::Lock(args) => lock(args),
        Command::Verify(args) => verify(*args),
        Command::Rebase(args) => rebase::rebase(*args),
        Command::Outdated(args) => rebase::outdated(args),
        Command::Debuginfo(args) => debuginfo::run(args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
        Command::Completions(args) => completions(args.shell),
        Command::Man(args) => man(args.dir),
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

/// The command line as the cargo-stevedore executable sees it, for the generators.
fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command()
        .name("cargo-stevedore")
        .bin_name("cargo-stevedore")
}

fn completions(shell: clap_complete::Shell) -> Result<(), Error> {
    clap_complete::generate(
        shell,
        &mut command(),
        "cargo-stevedore",
        &mut std::io::stdout(),
    );
    Ok(())
}

fn man(dir: Option<PathBuf>) -> Result<(), Error> {
    let written = match &dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command(), dir))
        }
        None => clap_mangen::Man::new(command()).render(&mut std::io::stdout()),
    };
    written.map_err(|source| Error::Man {
        dir: dir.unwrap_or_else(|| "-".into()),
        source,
    })
}

/// The arguments without the `stevedore` that cargo inserts when run as `cargo stevedore`.
fn args() -> Vec<OsString> {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "stevedore") {
        args.remove(1);
    }
    args
}

fn build(args: BuildArgs, quiet: bool) -> Result<(), Error> {
    if args.push {
        refuse_official_names(&args.image.tag);
    }
    let several = args.workspace || args.packages.len() > 1;
    let package = match several {
        true => None,
        false => args.packages.first().cloned(),
    };
    let mut options = args.project.options(package);
    options.cargo_args = cargo_args(args.jobs, args.cargo_args);
    let mut build = args
        .image
        .build(options)
        .with_push(args.push)
        .offline(args.offline || args.frozen);
    if args.frozen {
        build = build.locked(true);
    }
    for output in args.output {
        build = build.output(output);
    }
    if let Some(engine) = args.load {
        build = build.load_into(engine);
    }
    if let Some(jobs) = args.push_jobs {
        build = build.jobs(usize::from(jobs));
    }
    build = args.registry.apply(build);
    if let Some(bars) = Bars::for_terminal(args.json, quiet) {
        build = build.progress(bars);
    }
    let outcomes = match (several, args.all_bins) {
        (true, _) => build.run_workspace(&args.packages)?,
        (false, true) => build.run_all_bins()?,
        (false, false) => vec![build.run()?],
    };
    if let Some(path) = &args.image_refs {
        let refs: Vec<Reference> = outcomes
            .iter()
            .filter_map(|o| o.push.as_ref())
            .flat_map(|r| r.refs.iter().cloned())
            .collect();
        stevedore::publish::write_refs(path, &refs).map_err(|source| ErrorKind::Publish {
            output: format!("--image-refs {}", path.display()),
            source,
        })?;
    }
    if args.json {
        let results: Vec<_> = outcomes.iter().map(outcome_json).collect();
        match (args.all_bins || several, results.as_slice()) {
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
    let manifest = stevedore::plan::manifest_path(args.manifest_path.as_deref())?;
    crate::init::init(&manifest)?;
    eprintln!(
        "added [package.metadata.stevedore] to {}",
        manifest.display()
    );
    println!("{}", crate::init::XTASK_SNIPPET);
    Ok(())
}

fn verify(args: VerifyArgs) -> Result<(), Error> {
    let mut build =
        Build::from_options(args.project.options(args.package.package)).offline(args.offline);
    if let Some(key) = args.key {
        build = build.verify_key(key);
    }
    let build = args.registry.apply(build);
    let verdict = build.verify(&args.published)?;
    // Said first: with other tools every binary differs, and the byte diff below then only
    // shows where.
    for difference in &verdict.toolchain {
        println!("toolchain differs: {difference}");
    }
    if !verdict.toolchain.is_empty() {
        println!(
            "  verify with the same tools to compare like with like: rustc through --toolchain \
             or a rust-toolchain.toml naming its release, cargo-stevedore through `cargo install \
             cargo-stevedore --locked --version V`"
        );
    }
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
        false if verdict.ours == verdict.theirs => Err(Error::Unsigned {
            published: args.published.to_string(),
        }),
        false => Err(Error::Mismatch {
            published: args.published.to_string(),
            ours: verdict.ours,
            theirs: verdict.theirs,
        }),
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
