//! `cargo stevedore resolve` and `apply`: build and push every `stevedore://` reference in
//! Kubernetes YAML, then print the YAML with digests in their place, or hand it to kubectl.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use clap::Args;

use super::args::{ImageArgs, PackageArg, ProjectArgs, RegistryArgs};
use super::error::Error;
use stevedore::resolve::{self, Found, Target};
use stevedore::ErrorKind;
use stevedore::Reference;

#[derive(Debug, Args)]
pub(super) struct ResolveArgs {
    /// A YAML file, a directory (every *.yaml and *.yml under it, in path order), or `-` for
    /// stdin (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// What `stevedore://` means: `-p` is the package of a reference that names none,
    /// `--bin` its binary.
    #[command(flatten)]
    package: PackageArg,
    #[command(flatten)]
    project: ProjectArgs,
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub(super) struct ApplyArgs {
    #[command(flatten)]
    resolve: ResolveArgs,
    /// Arguments for `kubectl apply -f -`, after `--` (e.g. `-- -n prod --dry-run=server`).
    #[arg(last = true, value_name = "KUBECTL ARGS")]
    kubectl: Vec<OsString>,
}

/// Prints the resolved YAML, or nothing if any reference failed.
pub(super) fn resolve(args: ResolveArgs) -> Result<(), Error> {
    let yaml = resolved(args)?;
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is the reader's choice, not a failure worth a report.
    let _ = stdout
        .write_all(yaml.as_bytes())
        .and_then(|()| stdout.flush());
    Ok(())
}

/// Resolves, then runs `kubectl apply -f - ARGS` on the result; kubectl's exit code is ours.
pub(super) fn apply(args: ApplyArgs) -> Result<ExitCode, Error> {
    let yaml = resolved(args.resolve)?;
    let program = "kubectl";
    let kubectl_error = |source| Error::Kubectl {
        program: program.to_owned(),
        source,
    };
    let mut child = stevedore::env::without_secrets(&mut Command::new(program))
        .args(["apply", "-f", "-"])
        .args(&args.kubectl)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(kubectl_error)?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // kubectl may exit before reading everything (a bad flag); its exit code says why.
    let _ = stdin.write_all(yaml.as_bytes());
    drop(stdin);
    let status = child.wait().map_err(kubectl_error)?;
    let code = status.code().map_or(1, |c| c.clamp(0, 255) as u8);
    Ok(ExitCode::from(code))
}

/// The inputs with every reference replaced, in the order given.
fn resolved(args: ResolveArgs) -> Result<String, Error> {
    let inputs = read_inputs(&args.files)?;
    let mut found = Vec::new();
    for (path, text) in &inputs {
        let refs = resolve::find(text).map_err(|source| Error::BadReference {
            path: path.clone(),
            source,
        })?;
        found.push(refs);
    }
    let mut targets: Vec<Target> = found.iter().flatten().map(|f| f.target.clone()).collect();
    targets.sort();
    targets.dedup();
    if targets.len() > 1 && !args.image.tag.is_empty() {
        return Err(ErrorKind::TagForSeveral {
            count: targets.len(),
        }
        .into());
    }
    let pushed = build_all(&targets, args)?;
    let documents: Vec<String> = inputs
        .iter()
        .zip(&found)
        .map(|((_, text), refs): (&(PathBuf, String), &Vec<Found>)| {
            resolve::replace(text, refs, |t| pushed[t].to_string())
        })
        .collect();
    Ok(join(documents))
}

/// One input as it was; several joined as separate YAML documents, as kubectl reads them.
fn join(documents: Vec<String>) -> String {
    let mut out = String::new();
    for (i, doc) in documents.iter().enumerate() {
        if i > 0 {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("---\n");
        }
        out.push_str(doc);
    }
    out
}

/// Every file the paths name, read whole (YAML manifests are small): files as given, the YAML
/// files under a directory in path order, `-` as stdin.
fn read_inputs(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, Error> {
    let mut inputs = Vec::new();
    for path in paths {
        let read_error = |source| Error::ReadYaml {
            path: path.clone(),
            source,
        };
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(read_error)?;
            inputs.push((path.clone(), text));
        } else if path.is_dir() {
            let mut files = Vec::new();
            yaml_files(path, &mut files).map_err(read_error)?;
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file).map_err(|source| Error::ReadYaml {
                    path: file.clone(),
                    source,
                })?;
                inputs.push((file, text));
            }
        } else {
            inputs.push((
                path.clone(),
                std::fs::read_to_string(path).map_err(read_error)?,
            ));
        }
    }
    Ok(inputs)
}

/// The YAML files under `dir`. A symlink to a directory is not followed (as kubectl's `-R`
/// does not): a link to `.` or a parent would repeat files without end. A symlink to a file is
/// read; anything else that is no regular file (a FIFO, a socket) is left alone.
fn yaml_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            yaml_files(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") && path.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

/// Builds and pushes each target once (one image at a time, each published while the next
/// compiles); fails naming every target that failed.
fn build_all(targets: &[Target], args: ResolveArgs) -> Result<BTreeMap<Target, Reference>, Error> {
    let defaults = args.project.options(args.package.package);
    let builds = targets.iter().map(|target| {
        let mut options = defaults.clone();
        if target.package.is_some() {
            options.package = target.package.clone();
            options.bin = None;
        }
        options.bin = target.bin.clone().or(options.bin);
        let build = args.registry.clone().apply(args.image.build(options));
        (target.to_string(), build.with_push(true))
    });
    let outcomes = stevedore::Build::run_many(builds.collect::<Vec<_>>()).map_err(|e| {
        match e.into_kind() {
            ErrorKind::Images { failures, .. } => Error::Resolve {
                failures: failures.into_iter().map(|(t, e)| (t, e.into())).collect(),
            },
            other => other.into(),
        }
    })?;
    let mut pushed = BTreeMap::new();
    for (target, outcome) in targets.iter().zip(outcomes) {
        let reference = outcome.pushed().first().cloned();
        let reference = reference.expect("a push names what it pushed");
        tracing::info!("{target} is {reference}");
        pushed.insert(target.clone(), reference);
    }
    Ok(pushed)
}
