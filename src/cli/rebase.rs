//! `rebase` and `outdated`: a published image put on a new base without compiling, and the
//! images (or `stevedore.lock` pins) whose base tag has moved.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::{ImageArgs, PackageArg, ProjectArgs, RegistryArgs};
use super::error::Error;
use super::{outcome_json, refuse_official_names};
use stevedore::plan::BuildOptions;
use stevedore::publish::Output;
use stevedore::source::Location;
use stevedore::Build;

#[derive(Debug, Args)]
pub(super) struct RebaseArgs {
    /// The published image: REGISTRY/REPO:TAG (or @DIGEST), oci-layout=DIR or
    /// oci-archive=FILE.tar. Its platforms are the ones rebased (`--platform` is not used).
    #[arg(
        value_name = "REF|oci-layout=DIR|oci-archive=FILE",
        required_unless_present_any = ["workspace", "file"]
    )]
    published: Option<Location>,
    /// Rebase each image FILE lists, one reference per line (`-` reads stdin; blank lines and
    /// `#` comments are skipped), e.g. what `build --image-refs` wrote: platform manifests and
    /// attached SBOMs, provenance and signatures are passed over. Each is pushed to the names
    /// of the binary it holds, as --workspace names them.
    #[arg(
        short = 'f',
        long,
        value_name = "FILE",
        conflicts_with_all = ["published", "workspace", "tag"]
    )]
    file: Option<PathBuf>,
    /// Rebase the image of every binary package of the workspace (or of `-p`), each read from
    /// and pushed to its own name ($STEVEDORE_REPO/BIN or the package's `repository`).
    #[arg(long, conflicts_with_all = ["published", "tag"])]
    workspace: bool,
    #[command(flatten)]
    package: PackageArg,
    #[command(flatten)]
    project: ProjectArgs,
    #[command(flatten)]
    image: ImageArgs,
    /// Where to write the rebased image (repeatable): oci-layout=DIR, oci-archive=FILE.tar or
    /// docker-archive=FILE.tar (one platform). Default: oci-layout=target/stevedore/BIN.
    #[arg(short, long, value_name = "KIND=PATH")]
    output: Vec<Output>,
    /// Push the rebased image to the registry of each --tag.
    #[arg(long)]
    push: bool,
    /// Use only local caches: the new base must be pinned in stevedore.lock and cached.
    #[arg(long, conflicts_with = "push")]
    offline: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub(super) struct OutdatedArgs {
    /// The published images: REGISTRY/REPO:TAG (or @DIGEST), oci-layout=DIR or
    /// oci-archive=FILE.tar [default: the bases pinned in the project's stevedore.lock].
    #[arg(value_name = "REF|oci-layout=DIR|oci-archive=FILE")]
    published: Vec<Location>,
    /// Path to Cargo.toml, whose stevedore.lock is read when no image is given (default: the
    /// one in the current directory or above).
    #[arg(long, value_name = "PATH", conflicts_with = "published")]
    manifest_path: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub(super) fn rebase(args: RebaseArgs) -> Result<(), Error> {
    if args.push {
        refuse_official_names(&args.image.tag);
    }
    let package = args.package.package;
    let packages: Vec<String> = package.iter().cloned().collect();
    let options = args.project.options(package);
    let mut build = args
        .image
        .build(options)
        .with_push(args.push)
        .offline(args.offline);
    for output in args.output {
        build = build.output(output);
    }
    let build = args.registry.apply(build);
    let outcomes = match (&args.published, &args.file) {
        (Some(published), _) => vec![build.rebase(published)?],
        (None, Some(file)) => build.rebase_listed(&packages, &listed(file)?)?,
        (None, None) => build.rebase_workspace(&packages)?,
    };
    if args.json {
        let results: Vec<_> = outcomes.iter().map(outcome_json).collect();
        match (args.published.is_some(), results.as_slice()) {
            (true, [one]) => println!("{one:#}"),
            _ => println!("{:#}", serde_json::Value::Array(results)),
        }
        return Ok(());
    }
    for outcome in &outcomes {
        for output in &outcome.outputs {
            println!("{output}@{}", outcome.digest());
        }
        for reference in outcome.pushed() {
            println!("{reference}");
        }
    }
    Ok(())
}

/// The references `rebase -f FILE` lists, one per line.
fn listed(file: &Path) -> Result<Vec<Location>, Error> {
    let text = match file == Path::new("-") {
        true => std::io::read_to_string(std::io::stdin()),
        false => std::fs::read_to_string(file),
    };
    let text = text.map_err(|source| Error::ReadList {
        path: file.to_path_buf(),
        source,
    })?;
    let mut listed = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let location = line
            .parse::<Location>()
            .map_err(|e| Error::ListedReference {
                path: file.to_path_buf(),
                line: n + 1,
                message: e.to_string(),
            })?;
        listed.push(location);
    }
    Ok(listed)
}

pub(super) fn outdated(args: OutdatedArgs) -> Result<(), Error> {
    let options = BuildOptions {
        manifest_path: args.manifest_path,
        ..BuildOptions::default()
    };
    let build = args.registry.apply(Build::from_options(options));
    let platforms = match args.published.is_empty() {
        true => outdated_pins(&build)?,
        false => outdated_images(&build, &args.published)?,
    };
    match platforms {
        0 => Ok(()),
        platforms => Err(Error::Outdated { platforms }),
    }
}

/// Prints each platform of `published` whose base tag has moved; returns how many.
fn outdated_images(build: &Build, published: &[Location]) -> Result<usize, Error> {
    let mut count = 0;
    for image in published {
        let outdated = build.outdated(image)?;
        if outdated.is_empty() {
            println!("{image}: up to date");
        }
        for o in &outdated {
            let now = o.now.as_ref().map_or_else(
                || "has no image for the platform".to_owned(),
                |d| format!("names {d}"),
            );
            println!(
                "{image} ({}): {} {now}, built on {}",
                o.platform, o.base, o.built_on
            );
        }
        count += outdated.len();
    }
    Ok(count)
}

/// Prints each base of stevedore.lock whose tag has moved; returns how many.
fn outdated_pins(build: &Build) -> Result<usize, Error> {
    let moved = build.outdated_pins()?;
    if moved.is_empty() {
        println!("stevedore.lock: up to date");
    }
    for m in &moved {
        println!(
            "stevedore.lock: {} names {}, pinned {}",
            m.base, m.now, m.pinned
        );
    }
    Ok(moved.len())
}
