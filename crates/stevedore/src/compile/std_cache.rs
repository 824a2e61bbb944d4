//! The standard library built from source once per toolchain, not once per target dir.
//!
//! With `-Zbuild-std` cargo compiles std (about 30 crates, minutes) into every new target dir.
//! Cargo names each unit by a hash of what it is built from (toolchain, target, profile,
//! flags, linker), so std built for one project is, unit for unit, what another project's
//! cargo would build. stevedore keeps one small project per toolchain in its tools dir, builds
//! std there with the same settings the real build gets, and copies those units (outputs,
//! build-script results and fingerprints) into a target dir that has none. Cargo then finds
//! them fresh and compiles no std unit; where anything differs it rebuilds them as it always
//! did. The image does not change: the project's own build is the same cargo run as before.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use super::{build_std, content_name, finish, start, write_file, Cancel, CompileError};
use crate::plan::Plan;

/// The project std is built in; named so its own units are told apart from std's.
const PROJECT: &str = "stevedore-std";
/// Where its units land in cargo's dirs (crate names take `_` for `-`).
const OWN_PREFIXES: [&str; 2] = ["stevedore-std-", "stevedore_std-"];
/// The dirs of `target/TRIPLE/PROFILE` that hold units, by cargo's hash-suffixed names; `deps`
/// last, as a target dir with std's rlib in it is taken to have std (a killed copy may leave
/// some units out, which cargo then compiles).
const UNIT_DIRS: [&str; 3] = [".fingerprint", "build", "deps"];
/// How long a std cache (a toolchain's, or one target dir of it) is kept unused.
const UNUSED_FOR: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The file whose time says when a std cache was last used.
const USED: &str = ".used";
/// What a std cache being removed is renamed to first.
const SWEPT: &str = ".swept-";

/// Copies std's units from the std cache into the target dir of each target that has none,
/// building them there first (every missing target at once) when the cache has none either.
/// `apply` gives cargo the same settings the project's build gets. A cache that cannot be
/// built is not an error: the project's build then compiles std itself, as without a cache.
pub(super) fn seed(
    plan: &Plan,
    targets: &[&str],
    tools: &Path,
    cancel: &Cancel,
    apply: impl Fn(&mut Command) -> Result<(), CompileError>,
) -> Result<(), CompileError> {
    if std::env::var_os(crate::env::STD_CACHE).is_some_and(|v| v == "off") {
        return Ok(());
    }
    let profile = profile_dir(&plan.profile);
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !has_std(&plan.target_dir.join(t).join(profile).join("deps")))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let Some(version) = plan.toolchain.verbose_version() else {
        return Ok(());
    };
    let dir = tools
        .join("std")
        .join(content_name("toolchain", &[version]));
    mark_used_and_sweep(&dir, "toolchain-");
    let profiles = workspace_profiles(&plan.workspace_root.join("Cargo.toml"));
    // One project per profile table: two builds with different profiles at once then never
    // rewrite each other's manifest.
    let project = dir.join(content_name("project", &[&profiles]));
    let manifest = write_project(&project, &profiles)?;
    let mut builds = Vec::with_capacity(missing.len());
    for target in missing {
        let mut cmd = cargo(plan, &manifest, target);
        apply(&mut cmd)?;
        // One target dir per target, linker and flags, which cargo's fingerprints hold but
        // its unit names do not: machines (or test beds) with another zig would otherwise
        // rebuild each other's std in one shared dir, each time it is used.
        let cache_target = dir
            .join(target)
            .join(content_name("target", &[&settings(&cmd, target)]));
        mark_used_and_sweep(&cache_target, "target-");
        cmd.arg("--target-dir")
            .arg(&cache_target)
            .env(crate::env::REMAP_TARGET_DIR, &cache_target);
        builds.push((target, cmd, cache_target));
    }
    // Each target's std at once, in its own target dir: std's crates build mostly one after
    // another, so two targets side by side keep the cores busy that one leaves idle. The
    // copies come after, one at a time (see `copy_tree` on why the order of files matters).
    let built: Vec<_> = std::thread::scope(|s| {
        let running: Vec<_> = builds
            .into_iter()
            .map(|(target, mut cmd, cache_target)| {
                s.spawn(move || {
                    build(plan, target, &mut cmd, &cache_target, cancel)
                        .map(|ok| ok.then_some((target, cache_target)))
                })
            })
            .collect();
        running
            .into_iter()
            .map(|build| build.join().expect("a std build does not panic"))
            .collect::<Result<_, _>>()
    })?;
    for (target, cache_target) in built.into_iter().flatten() {
        // std's build scripts are compiled for the host, into the host's profile dir.
        let host = copy_units(&cache_target.join(profile), &plan.target_dir.join(profile))?;
        let to = plan.target_dir.join(target).join(profile);
        let files = copy_units(&cache_target.join(target).join(profile), &to)?;
        tracing::info!(
            "copied the standard library for {target} from stevedore's std cache into {} \
             ({} files): cargo will not compile it again",
            to.display(),
            files + host
        );
    }
    Ok(())
}

/// Builds std for `target` with `cmd` into `cache_target`; whether it could.
fn build(
    plan: &Plan,
    target: &str,
    cmd: &mut Command,
    cache_target: &Path,
    cancel: &Cancel,
) -> Result<bool, CompileError> {
    tracing::info!(
        "preparing the standard library for {target} in stevedore's std cache ({}): built \
         once per toolchain, profile and linker, then copied into each new target dir",
        cache_target.display()
    );
    let built = run(cmd, cancel)?;
    if !built {
        tracing::warn!(
            "could not build the standard library for {target} in stevedore's std cache \
             (its messages are above); cargo will build it in {} instead",
            plan.target_dir.display()
        );
    }
    Ok(built)
}

/// Marks the std cache `dir` used now, and removes its siblings named `prefix…` unused for
/// [`UNUSED_FOR`]: the caches of older toolchains (about 200 MB a target) and of settings no
/// longer given. A cache in use is never that old; one being removed is renamed first, so no
/// build ever copies from half of one, and a removal cut short is finished by the next sweep.
fn mark_used_and_sweep(dir: &Path, prefix: &str) {
    if std::fs::create_dir_all(dir).is_ok() {
        // Losing the mark costs a rebuild of this cache in 30 days at worst.
        let _ = touch(&dir.join(USED));
    }
    let Some(Ok(entries)) = dir.parent().map(std::fs::read_dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let (path, name) = (
            entry.path(),
            entry.file_name().to_string_lossy().into_owned(),
        );
        if name.starts_with(SWEPT) {
            let _ = std::fs::remove_dir_all(&path);
            continue;
        }
        let used = std::fs::metadata(path.join(USED))
            .or_else(|_| entry.metadata())
            .and_then(|m| m.modified());
        let unused = used
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > UNUSED_FOR);
        if path == dir || !name.starts_with(prefix) || !unused {
            continue;
        }
        let trash = path.with_file_name(format!("{SWEPT}{name}-{}", std::process::id()));
        if std::fs::rename(&path, &trash).is_ok() {
            tracing::info!("removed {}: a std cache unused for 30 days", path.display());
            let _ = std::fs::remove_dir_all(&trash);
        }
    }
}

fn touch(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    file.set_modified(SystemTime::now())
}

/// cargo's output dir for a profile: `dev` and `test` share `debug`, `bench` uses `release`.
fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// Whether a `deps` dir holds a compiled std, which means cargo has built std there before
/// (for this profile or another of the same name): then it is left to cargo.
fn has_std(deps: &Path) -> bool {
    std::fs::read_dir(deps).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".rlib")
        })
    })
}

/// Writes (or keeps) the cache's project in `dir`, carrying the workspace's `[profile]`
/// table; returns its manifest.
fn write_project(dir: &Path, profiles: &str) -> Result<PathBuf, CompileError> {
    let manifest = dir.join("Cargo.toml");
    let text = format!(
        "# Written by stevedore: the standard library for this toolchain is built here.\n\
         [package]\nname = \"{PROJECT}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [[bin]]\nname = \"{PROJECT}\"\npath = \"main.rs\"\n\n[workspace]\n\n{profiles}"
    );
    for (path, bytes) in [
        (&manifest, text.as_bytes()),
        (&dir.join("main.rs"), b"fn main() {}\n".as_slice()),
    ] {
        write_file(path, bytes, 0o644).map_err(|source| CompileError::Wrapper {
            path: path.clone(),
            source,
        })?;
    }
    Ok(manifest)
}

/// The cargo run that builds std for `target` in the cache's project. Cargo runs in the same
/// directory as the project's build, so both see the same profile and config files.
fn cargo(plan: &Plan, manifest: &Path, target: &str) -> Command {
    let mut cmd = plan.toolchain.cargo();
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(manifest)
        .env_remove("CARGO_TARGET_DIR")
        .args(["--profile", &plan.profile, "--target", target]);
    if plan.offline {
        cmd.arg("--offline");
    }
    build_std(&mut cmd);
    cmd
}

/// What, of the settings a compile gives cargo, goes into the fingerprints of std for
/// `target`: its linker and rustflags (variables and `--config` arguments), and whether the
/// host's units take them (`target-applies-to-host`). Not the rustc
/// shim's path (cargo fingerprints rustc by its `-vV`, so a new shim keeps the cache), another
/// target's settings, nor the project's own (the workspace wrapper and its PATH, the remaps of
/// the workspace and target dir, C flags naming them), which std never sees.
fn settings(cmd: &Command, target: &str) -> String {
    let upper = format!("_{}_", super::target_var(target));
    let mut lines: Vec<String> = cmd
        .get_envs()
        .filter(|(name, _)| {
            let name = name.to_string_lossy();
            name == "CARGO_ENCODED_RUSTFLAGS"
                || (name.starts_with("CARGO_TARGET_") && name.contains(&upper))
        })
        .map(|(name, value)| format!("{}={value:?}", name.to_string_lossy()))
        .collect();
    lines.sort();
    let own = format!("target.{target}.");
    let mut args = cmd.get_args().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        if arg == "--config" {
            // Whether the host's units take the target's settings decides how std's build
            // scripts are linked.
            lines.extend(args.next().filter(|value| {
                value.starts_with(&own) || value.starts_with("target-applies-to-host")
            }));
        }
    }
    lines.join("\n")
}

/// The workspace manifest's `[profile]` table as TOML, or nothing.
fn workspace_profiles(manifest: &Path) -> String {
    let profile = std::fs::read_to_string(manifest)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|mut table| table.remove("profile"));
    match profile {
        Some(profile) => {
            let mut table = toml::Table::new();
            table.insert("profile".into(), profile);
            toml::to_string(&table).unwrap_or_default()
        }
        None => String::new(),
    }
}

/// Runs the cache's cargo with its progress on our stderr; whether it succeeded.
fn run(cmd: &mut Command, cancel: &Cancel) -> Result<bool, CompileError> {
    // Cargo's messages (and any diagnostics) are on stderr; stdout has nothing for us.
    let mut child = start(cmd, Stdio::null(), cancel)?;
    Ok(finish(&mut child, cancel)?.success())
}

/// Copies every unit of `from` but the cache project's own into `to`, file by file (each by
/// temp file and rename, so a killed run leaves whole files only) and keeping modification
/// times, which cargo compares to decide freshness. Files already in `to` stay, unless the
/// copy is older (`copy_tree`). Returns how many were copied.
fn copy_units(from: &Path, to: &Path) -> Result<u64, CompileError> {
    copy_unit_dirs(from, to).map_err(|source| CompileError::StdCache {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    })
}

fn copy_unit_dirs(from: &Path, to: &Path) -> std::io::Result<u64> {
    let mut copied = 0;
    for dir in UNIT_DIRS {
        let Ok(entries) = std::fs::read_dir(from.join(dir)) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if OWN_PREFIXES
                .iter()
                .any(|p| name.to_string_lossy().starts_with(p))
            {
                continue;
            }
            copied += copy_tree(&entry.path(), &to.join(dir).join(&name))?;
        }
    }
    Ok(copied)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        let mut copied = 0;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copied += copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(copied);
    }
    if !meta.is_file() {
        return Ok(0);
    }
    // A file that is there already stays, unless this one is older. Two targets' caches share
    // the host's units (std's build scripts); cargo takes a target unit built before the host
    // unit it depends on for stale, so the host's files are the oldest of the caches': older
    // than every target unit built from any of them.
    if let Ok(there) = to.symlink_metadata() {
        if !(there.is_file() && meta.modified()? < there.modified()?) {
            return Ok(0);
        }
    }
    copy_file(from, to, &meta)?;
    Ok(1)
}

fn copy_file(from: &Path, to: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::copy(from, tmp.path())?;
    let times = std::fs::FileTimes::new()
        .set_accessed(meta.accessed()?)
        .set_modified(meta.modified()?);
    tmp.as_file().set_times(times)?;
    std::fs::set_permissions(tmp.path(), meta.permissions())?;
    tmp.persist(to).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_caches_unused_for_30_days_are_removed_when_another_is_used() {
        let std = tempfile::tempdir().unwrap();
        let days_ago = |days: u64| SystemTime::now() - Duration::from_secs(days * 24 * 60 * 60);
        let cache = |name: &str, used: Option<SystemTime>| {
            let dir = std.path().join(name);
            std::fs::create_dir_all(dir.join("x86_64-unknown-linux-musl")).unwrap();
            if let Some(time) = used {
                touch(&dir.join(USED)).unwrap();
                let file = std::fs::File::options()
                    .write(true)
                    .open(dir.join(USED))
                    .unwrap();
                file.set_modified(time).unwrap();
            } else {
                // No mark (an older stevedore's cache): the directory's own time counts.
                std::fs::File::open(&dir)
                    .unwrap()
                    .set_modified(days_ago(40))
                    .unwrap();
            }
            dir
        };
        let old = cache("toolchain-old", Some(days_ago(31)));
        let unmarked = cache("toolchain-unmarked", None);
        let recent = cache("toolchain-recent", Some(days_ago(29)));
        let current = cache("toolchain-current", Some(days_ago(90)));
        let other = cache("answers", Some(days_ago(90)));
        let cut_short = std.path().join(".swept-toolchain-gone-1");
        std::fs::create_dir_all(cut_short.join("deps")).unwrap();

        mark_used_and_sweep(&current, "toolchain-");

        for (dir, kept) in [
            (&old, false),
            (&unmarked, false),
            (&cut_short, false),
            (&recent, true),
            (&current, true),
            (&other, true),
        ] {
            assert_eq!(dir.exists(), kept, "{}", dir.display());
        }
        let used = std::fs::metadata(current.join(USED))
            .unwrap()
            .modified()
            .unwrap();
        assert!(used > days_ago(1), "the cache in use is marked used now");
        let left: Vec<_> = std::fs::read_dir(std.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 3, "nothing left half-removed: {left:?}");
    }

    #[test]
    fn units_are_copied_with_their_times_but_not_the_cache_projects_own() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("cache/x86_64-unknown-linux-musl/release");
        let to = dir.path().join("project/x86_64-unknown-linux-musl/release");
        let files = [
            "deps/libstd-0123.rlib",
            "deps/libstd-0123.rmeta",
            "deps/std-0123.d",
            "build/std-4567/out/generated.rs",
            ".fingerprint/std-0123/lib-std",
            "deps/stevedore_std-89ab",
            ".fingerprint/stevedore-std-89ab/bin-stevedore-std",
        ];
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        for file in files {
            let path = from.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, file).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        // A file the target dir already has stays when it is older than the copy (another
        // target's cache put it there first), and is replaced when it is newer.
        let older = old - std::time::Duration::from_secs(10);
        for (file, time) in [
            ("deps/std-0123.d", older),
            ("deps/libstd-0123.rlib", std::time::SystemTime::now()),
        ] {
            let path = to.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "already there").unwrap();
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(time).unwrap();
        }

        assert_eq!(copy_units(&from, &to).unwrap(), 4);
        for file in &files[..5] {
            let copied = to.join(file);
            if *file != "deps/std-0123.d" {
                assert_eq!(std::fs::read_to_string(&copied).unwrap(), *file);
                let modified = copied.metadata().unwrap().modified().unwrap();
                assert_eq!(modified, old, "{file} keeps its time");
            }
        }
        assert_eq!(
            std::fs::read_to_string(to.join("deps/std-0123.d")).unwrap(),
            "already there"
        );
        assert!(!to.join("deps/stevedore_std-89ab").exists());
        assert!(!to.join(".fingerprint/stevedore-std-89ab").exists());
        assert!(has_std(&to.join("deps")));
        assert!(!has_std(&dir.path().join("nowhere")));
        // A second copy has nothing left to do.
        assert_eq!(copy_units(&from, &to).unwrap(), 0);
    }

    #[test]
    fn the_cache_dir_follows_the_targets_linker_and_flags_not_the_projects_settings() {
        let target = "x86_64-unknown-linux-musl";
        let command = |linker: &str, other: &str, project: &str| {
            let mut cmd = Command::new("cargo");
            cmd.env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER", linker)
                .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", other)
                .env("RUSTC", "/tools/rustc-1/rustc")
                .env("RUSTC_WORKSPACE_WRAPPER", format!("wrapper-{project}"))
                .env("PATH", format!("/tools/wrapper-{project}:/usr/bin"))
                .env(
                    "CFLAGS_x86_64_unknown_linux_musl",
                    format!("-ffile-prefix-map=/{project}=/src"),
                )
                .env(crate::env::REMAP_WORKSPACE, format!("/{project}"))
                .args([
                    "--config",
                    "target.x86_64-unknown-linux-musl.rustflags=[\"-Ca\"]",
                ])
                .args([
                    "--config",
                    &format!("target.aarch64-unknown-linux-musl.rustflags=[\"{other}\"]"),
                ]);
            settings(&cmd, target)
        };
        let one = command("/tools/x86/cc", "/tools/arm/cc", "a");
        assert!(
            one.contains("/tools/x86/cc") && one.contains("-Ca"),
            "{one}"
        );
        assert_eq!(command("/tools/x86/cc", "/tools/arm-2/cc", "b"), one);
        assert_ne!(command("/other-zig/x86/cc", "/tools/arm/cc", "a"), one);
        // Host units kept apart from the target's settings are linked otherwise.
        let mut apart = Command::new("cargo");
        apart
            .env(
                "CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER",
                "/tools/x86/cc",
            )
            .args([
                "--config",
                "target.x86_64-unknown-linux-musl.rustflags=[\"-Ca\"]",
            ]);
        let shared = settings(&apart, target);
        apart.args(["--config", "target-applies-to-host=false"]);
        assert_ne!(settings(&apart, target), shared);
    }

    #[test]
    fn profiles_map_to_cargos_dirs() {
        assert_eq!(profile_dir("dev"), "debug");
        assert_eq!(profile_dir("test"), "debug");
        assert_eq!(profile_dir("release"), "release");
        assert_eq!(profile_dir("bench"), "release");
        assert_eq!(profile_dir("dist"), "dist");
    }

    #[test]
    fn the_workspace_profiles_are_carried_over_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("Cargo.toml");
        std::fs::write(
            &manifest,
            "[package]\nname = \"a\"\n[profile.release]\nopt-level = \"z\"\n[profile.dist]\ninherits = \"release\"\n",
        )
        .unwrap();
        let text = workspace_profiles(&manifest);
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table.len(), 1);
        assert_eq!(table["profile"]["release"]["opt-level"].as_str(), Some("z"));
        assert_eq!(
            table["profile"]["dist"]["inherits"].as_str(),
            Some("release")
        );
        std::fs::write(&manifest, "[package]\nname = \"a\"\n").unwrap();
        assert_eq!(workspace_profiles(&manifest), "");
    }
}
