//! What the plan asks cargo, rustc and git: `cargo metadata` (once per build), the flags every
//! cargo run shares, a target's `cfg` values, whether C is compiled, and the commit's time.

use std::path::{Path, PathBuf};
use std::process::Command;

use cargo_metadata::cargo_platform::Cfg;
use cargo_metadata::{DependencyKind, Metadata, NodeDep, Package};

use super::kept;
use super::{BuildOptions, Plan, PlanError};
use crate::env;
use crate::toolchain::{on_path, run_capture, Shim, Toolchain};

/// The Cargo.toml to use: the given one (or its directory's), else the nearest above.
pub fn manifest_path(given: Option<&Path>) -> Result<PathBuf, PlanError> {
    let path = match given {
        Some(p) if p.is_dir() => p.join("Cargo.toml"),
        Some(p) => p.to_path_buf(),
        None => find_manifest_upwards().unwrap_or_else(|| PathBuf::from("Cargo.toml")),
    };
    if !path.is_file() {
        return Err(PlanError::NoManifest(path));
    }
    Ok(path)
}

fn find_manifest_upwards() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|d| d.join("Cargo.toml"))
        .find(|p| p.is_file())
}

pub(super) fn run_metadata(
    toolchain: &Toolchain,
    manifest: &Path,
    flags: &[String],
) -> Result<Metadata, PlanError> {
    let mut cmd = toolchain.cargo();
    cmd.args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest)
        .args(flags);
    let parse =
        |json: &str| cargo_metadata::MetadataCommand::parse(json).map_err(PlanError::MetadataParse);
    let Some(cargo) = on_path(cmd.get_program()) else {
        return parse(&run(toolchain, &mut cmd, manifest)?);
    };
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    kept::metadata(&cargo, &args, || run(toolchain, &mut cmd, manifest), parse)
}

/// Runs `cargo metadata` through the rustc shim (written only now: a kept answer needs none).
fn run(toolchain: &Toolchain, cmd: &mut Command, manifest: &Path) -> Result<String, PlanError> {
    through_shim(toolchain, cmd);
    run_capture(cmd).map_err(|source| PlanError::Metadata {
        manifest: manifest.to_path_buf(),
        source,
    })
}

/// Gives `cargo metadata` the rustc shim the build runs, with cargo's own cache of rustc's
/// answers off. Cargo keeps that cache in the target dir's `.rustc_info.json`, valid for one
/// rustc and wrapper; the build's cargo (the shim, the workspace wrapper) and a metadata run
/// with another rustc would overwrite each other's each run, and the build would ask its six
/// questions every time. The shim answers metadata's two from its files instead. Without a
/// tools dir yet (one under the target dir), metadata runs as cargo would run it.
fn through_shim(toolchain: &Toolchain, cmd: &mut Command) {
    let Some(tools) = crate::toolchain::files::tools_dir(None) else {
        return;
    };
    let Ok(shim) = Shim::of(toolchain, &tools) else {
        return;
    };
    if shim.write().is_ok() {
        cmd.env("RUSTC", &shim.path)
            .env("CARGO_CACHE_RUSTC_INFO", "0");
    }
}

impl Plan {
    /// The Rust target that compiles `platform`'s binary: its musl or glibc triple, as
    /// [`Plan::libc`] says.
    pub fn rust_target(&self, platform: &crate::platform::Platform) -> &'static str {
        platform.rust_target_for(self.libc)
    }

    /// The flags every cargo run of the build shares: features, `--offline` and `--locked`, so
    /// the graph the SBOM describes is the one compiled.
    pub(crate) fn cargo_flags(&self) -> Vec<String> {
        let mut flags = resolve_flags(self.offline, self.locked);
        flags.extend(features(
            &self.features,
            self.all_features,
            self.no_default_features,
        ));
        flags
    }
}

pub(super) fn cargo_flags(opts: &BuildOptions) -> Vec<String> {
    let mut flags = resolve_flags(opts.offline, opts.locked);
    flags.extend(features(
        &opts.features,
        opts.all_features,
        opts.no_default_features,
    ));
    flags
}

/// Whether cargo may reach the network and write Cargo.lock: `--offline`, `--locked` (both are
/// `--frozen`), with cargo's meanings, for `cargo metadata` as for the build.
pub(super) fn resolve_flags(offline: bool, locked: bool) -> Vec<String> {
    switches(&[(offline, "--offline"), (locked, "--locked")])
}

fn features(features: &[String], all: bool, no_default: bool) -> Vec<String> {
    let mut flags = Vec::new();
    if !features.is_empty() {
        flags.extend(["--features".to_owned(), features.join(",")]);
    }
    flags.extend(switches(&[
        (all, "--all-features"),
        (no_default, "--no-default-features"),
    ]));
    flags
}

fn switches(switches: &[(bool, &str)]) -> Vec<String> {
    switches
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| (*f).to_owned())
        .collect()
}

/// The `cfg` values of a Rust target (`rustc --print cfg --target T`), which decide which
/// `[target.'cfg(..)'.dependencies]` of [`Plan::graph`] are compiled for it: the filter
/// `cargo metadata --filter-platform` applies, without running cargo again per platform.
pub(crate) fn target_cfg(plan: &Plan, target: &str) -> Result<Vec<Cfg>, PlanError> {
    let text = plan
        .toolchain
        .ask(&["--print", "cfg", "--target", target])
        .map_err(|source| PlanError::TargetCfg {
            target: target.to_owned(),
            source,
        })?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.parse().map_err(|_| PlanError::TargetCfgLine {
                target: target.to_owned(),
                line: line.to_owned(),
            })
        })
        .collect()
}

/// Whether `package` depends, at any depth, on a crate that drives a C compiler.
pub(super) fn compiles_c(metadata: &Metadata, package: &Package) -> bool {
    const C_BUILDERS: [&str; 2] = ["cc", "cmake"];
    let Some(resolve) = &metadata.resolve else {
        return false;
    };
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![&package.id];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if metadata
            .packages
            .iter()
            .any(|p| &p.id == id && C_BUILDERS.contains(&p.name.as_str()))
        {
            return true;
        }
        if let Some(node) = resolve.nodes.iter().find(|n| &n.id == id) {
            stack.extend(node.deps.iter().map(|d| &d.pkg));
        }
    }
    false
}

/// `SOURCE_DATE_EPOCH` if set, else the last commit's time, else 0: never the clock.
pub(super) fn source_date_epoch(workspace: &Path) -> Result<i64, PlanError> {
    if let Ok(value) = std::env::var(env::SOURCE_DATE_EPOCH) {
        return value
            .trim()
            .parse()
            .map_err(|_| PlanError::SourceDateEpoch { value });
    }
    Ok(git(workspace, &["log", "-1", "--format=%ct"])
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

pub(super) fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("git");
    env::without_secrets(&mut cmd).arg("-C").arg(dir).args(args);
    let out = run_capture(&mut cmd).ok()?;
    Some(out.trim().to_owned()).filter(|s| !s.is_empty())
}

/// How `dep` is used on `target` (its name and `cfg`), as `cargo metadata --filter-platform`
/// keeps it: uses on other platforms and dev-dependency uses dropped (they never reach the
/// binary; a platform-specific build-dependency is matched against the target too). No kinds at
/// all (cargo before 1.41) counts as a normal use: a crate too many beats one missing.
pub(crate) fn uses_on(dep: &NodeDep, (name, cfg): (&str, &[Cfg])) -> Vec<DependencyKind> {
    if dep.dep_kinds.is_empty() {
        return vec![DependencyKind::Normal];
    }
    dep.dep_kinds
        .iter()
        .filter(|k| k.target.as_ref().is_none_or(|p| p.matches(name, cfg)))
        .map(|k| k.kind)
        .filter(|k| *k != DependencyKind::Development)
        .collect()
}
