//! Which packages and binaries a build is of (as `cargo run` picks them, never guessing
//! between several), and the bases a workspace's images build on.

use std::path::PathBuf;

use cargo_metadata::{Metadata, Package, TargetKind};

use super::cargo::{git, manifest_path, resolve_flags, run_metadata};
use super::{project_settings, BuildOptions, PlanError};
use crate::reference::Base;
use crate::toolchain::Toolchain;

/// Picks the package and binary the way `cargo run` would, but never guesses between several.
pub(super) fn select<'m>(
    metadata: &'m Metadata,
    opts: &BuildOptions,
) -> Result<(&'m Package, String), PlanError> {
    let package = select_package(metadata, opts)?;
    let bins: Vec<&str> = bin_names(package).collect();
    let bin = match &opts.bin {
        Some(bin) if bins.contains(&bin.as_str()) => bin.clone(),
        Some(bin) => {
            return Err(PlanError::NoSuchBin {
                package: package.name.to_string(),
                bin: bin.clone(),
                available: list(bins),
            })
        }
        None => match (bins.as_slice(), &package.default_run) {
            ([], _) => {
                return Err(PlanError::NoBins {
                    package: package.name.to_string(),
                })
            }
            ([only], _) => (*only).to_owned(),
            (_, Some(default)) => default.clone(),
            _ => {
                return Err(PlanError::SeveralBins {
                    what: format!("package `{}`", package.name),
                    available: list(bins),
                })
            }
        },
    };
    Ok((package, bin))
}

/// `cargo metadata` of the project the options name, resolved as every build resolves it.
fn metadata_of(opts: &BuildOptions) -> Result<Metadata, PlanError> {
    let manifest = manifest_path(opts.manifest_path.as_deref())?;
    let toolchain = Toolchain::from_name(opts.toolchain.as_deref());
    let flags = resolve_flags(opts.offline, opts.locked);
    run_metadata(&toolchain, &manifest, &flags)
}

/// Every binary of the package the options select (for `--all-bins`).
pub(crate) fn binaries(opts: &BuildOptions) -> Result<Vec<String>, PlanError> {
    let metadata = metadata_of(opts)?;
    let package = select_package(&metadata, opts)?;
    let bins: Vec<String> = bin_names(package).map(str::to_owned).collect();
    match bins.is_empty() {
        true => Err(PlanError::NoBins {
            package: package.name.to_string(),
        }),
        false => Ok(bins),
    }
}

/// The binaries of each package named, or of every workspace member that has one when
/// `packages` is empty (`--workspace`), in the order given (members in the workspace's order).
pub(crate) fn workspace_binaries(
    opts: &BuildOptions,
    packages: &[String],
) -> Result<Vec<(String, Vec<String>)>, PlanError> {
    let metadata = metadata_of(opts)?;
    let members = metadata.workspace_packages();
    let mut chosen = Vec::new();
    for name in packages {
        let package = member(&members, name)?;
        if bin_names(package).next().is_none() {
            return Err(PlanError::NoBins {
                package: name.clone(),
            });
        }
        if !chosen.iter().any(|c: &&Package| c.id == package.id) {
            chosen.push(package);
        }
    }
    if packages.is_empty() {
        chosen.extend(members.iter().filter(|p| bin_names(p).next().is_some()));
    }
    if chosen.is_empty() {
        return Err(PlanError::NoBins {
            package: "(workspace)".into(),
        });
    }
    Ok(chosen
        .into_iter()
        .map(|p| {
            (
                p.name.to_string(),
                bin_names(p).map(str::to_owned).collect(),
            )
        })
        .collect())
}

/// The workspace root and the bases its images build on: the selected package's, or with no
/// package selected every package with a binary (what `cargo stevedore lock` pins).
pub(crate) fn workspace_bases(opts: &BuildOptions) -> Result<(PathBuf, Vec<Base>), PlanError> {
    let metadata = metadata_of(opts)?;
    let packages = match &opts.package {
        Some(_) => vec![select_package(&metadata, opts)?],
        None => metadata
            .workspace_packages()
            .into_iter()
            .filter(|p| bin_names(p).next().is_some())
            .collect(),
    };
    let root = metadata.workspace_root.clone().into_std_path_buf();
    // Tags may name the commit; they are not used here, so any commit will do for them.
    let revision = git(&root, &["rev-parse", "HEAD"]).unwrap_or_else(|| "0".repeat(40));
    let mut bases: Vec<Base> = Vec::new();
    for package in packages {
        let settings = project_settings(&metadata, package, Some(&revision), None, &[])?;
        let base = opts.base.clone().or(settings.base).unwrap_or_default();
        if !bases.contains(&base) {
            bases.push(base);
        }
    }
    Ok((root, bases))
}

fn select_package<'m>(
    metadata: &'m Metadata,
    opts: &BuildOptions,
) -> Result<&'m Package, PlanError> {
    let members = metadata.workspace_packages();
    let package = match (&opts.package, metadata.root_package()) {
        (Some(name), _) => member(&members, name)?,
        (None, Some(root)) => root,
        (None, None) => package_in_virtual_workspace(&members, opts.bin.as_deref())?,
    };
    Ok(package)
}

/// The workspace member called `name`, or an error listing the members.
fn member<'m>(members: &[&'m Package], name: &str) -> Result<&'m Package, PlanError> {
    members
        .iter()
        .copied()
        .find(|p| p.name.as_str() == name)
        .ok_or_else(|| PlanError::NoSuchPackage {
            name: name.to_owned(),
            available: list(members.iter().map(|p| p.name.as_str())),
        })
}

fn package_in_virtual_workspace<'m>(
    members: &[&'m Package],
    bin: Option<&str>,
) -> Result<&'m Package, PlanError> {
    let with_bins: Vec<&Package> = members
        .iter()
        .copied()
        .filter(|p| bin_names(p).next().is_some())
        .collect();
    if let Some(bin) = bin {
        return with_bins
            .into_iter()
            .find(|p| bin_names(p).any(|b| b == bin))
            .ok_or_else(|| PlanError::BinNotInWorkspace {
                bin: bin.to_owned(),
            });
    }
    match with_bins.as_slice() {
        [] => Err(PlanError::NoBins {
            package: "(workspace)".into(),
        }),
        [only] => Ok(only),
        _ => Err(PlanError::SeveralPackages {
            available: list(with_bins.iter().map(|p| p.name.as_str())),
        }),
    }
}

fn bin_names(package: &Package) -> impl Iterator<Item = &str> {
    package
        .targets
        .iter()
        .filter(|t| t.kind.contains(&TargetKind::Bin))
        .map(|t| t.name.as_str())
}

fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
