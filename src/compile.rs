//! Stage 2: compile the planned binary for one platform into a static musl executable.
//!
//! The executable's path comes from cargo's JSON artifact messages, never from a guessed path.
//! Three ways to get a musl standard library are supported, chosen per target:
//! an installed std (rustup target), std built from source (`-Zbuild-std`, when the toolchain
//! has rust-src), or an error that says which command installs it.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use cargo_metadata::cargo_platform::Cfg;
use cargo_metadata::Message;

use crate::plan::Plan;
use crate::platform::Platform;
use crate::toolchain::{describe, run_capture, Toolchain, ToolchainError};

mod auditable;
mod debuginfo;
mod remap;

pub use debuginfo::{DebugFile, DebuginfoError};

use remap::Remaps;

/// A compiled executable for one platform.
#[derive(Debug, Clone)]
pub struct Binary {
    pub platform: Platform,
    /// The executable for the image (stripped when its symbols were split off).
    pub path: PathBuf,
    /// With `--split-debuginfo`: its symbols, split off.
    pub debug: Option<DebugFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("cannot find the toolchain's sysroot")]
    Sysroot(#[source] ToolchainError),
    #[error(
        "the Rust standard library for {target} is not installed{toolchain}, and the toolchain has no \
         rust-src to build it from: {fix}"
    )]
    NoStd {
        target: String,
        toolchain: String,
        fix: String,
    },
    #[error(
        "linking for {target} needs zig ({why}), and none was found: install it with \
         `pip install ziglang` (or put `zig` on PATH, or set {} to its path)",
        crate::env::ZIG
    )]
    NoZig { target: String, why: &'static str },
    #[error("cannot write the wrapper script {path}")]
    Wrapper {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cargo failed to build `{bin}` for {platforms}; its messages are above")]
    Failed { bin: String, platforms: String },
    #[error("the compile was stopped")]
    Cancelled,
    #[error(transparent)]
    Auditable(#[from] auditable::AuditableError),
    #[error(transparent)]
    Debuginfo(#[from] DebuginfoError),
}

/// Stops a compile from another thread: the base pull or a push check beside it failed, and
/// the user should hear so now rather than after a minute of compiling.
#[derive(Debug, Default)]
pub struct Cancel {
    /// cargo's process id while it runs; cleared under the lock once it is reaped, so a
    /// recycled id is never signalled.
    cargo: Mutex<Option<u32>>,
    cancelled: AtomicBool,
}

impl Cancel {
    /// Stops the compile: cargo is sent SIGTERM, or is never started.
    pub fn cancel(&self) {
        let cargo = self.cargo.lock().expect("cancel lock");
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(pid) = *cargo {
            terminate(pid);
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Records a started cargo; stops it at once if the compile was cancelled meanwhile.
    fn started(&self, pid: u32) {
        let mut cargo = self.cargo.lock().expect("cancel lock");
        *cargo = Some(pid);
        if self.is_cancelled() {
            terminate(pid);
        }
    }

    fn ended(&self) {
        *self.cargo.lock().expect("cancel lock") = None;
    }
}

fn terminate(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a process id we spawned and have not reaped yet.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// How the standard library for a target is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    Installed,
    FromSource,
}

/// Compiles `plan.bin` for every planned platform in one cargo run, so cargo schedules all
/// targets on all cores; `--keep-going` lets a failing target name itself by its missing binary.
/// `cancel` stops it from another thread. `cfgs` (the `cfg` values of each planned platform,
/// index for index) pick the part of the plan's graph each binary lists, unless the plan turns
/// that off.
pub fn compile(
    plan: &Plan,
    cfgs: &[Vec<Cfg>],
    cancel: &Cancel,
) -> Result<Vec<Binary>, CompileError> {
    let targets: Vec<&str> = plan.platforms.iter().map(Platform::rust_target).collect();
    // -Zbuild-std applies to every target of a run: one target without std means all from source.
    let mut std = Std::Installed;
    for target in &targets {
        if find_std(&plan.toolchain, target)? == Std::FromSource {
            std = Std::FromSource;
        }
    }
    let mut cmd = cargo_build(plan, &targets, std);
    let remaps = Remaps::for_plan(plan)?;
    let tools = tools_dir(plan);
    let mut rustflags: Vec<(&str, Vec<String>)> = Vec::new();
    let mut zig = None;
    for platform in &plan.platforms {
        let target = platform.rust_target();
        let mut flags = remaps.rustc_flags();
        if let Some(why) = zig_reason(std, platform, plan.has_c_code) {
            if zig.is_none() {
                zig = Some(find_zig().ok_or(CompileError::NoZig {
                    target: target.to_owned(),
                    why,
                })?);
                if let Some(dir) = zig_cache_dir(env_path) {
                    cmd.env("ZIG_GLOBAL_CACHE_DIR", dir);
                }
            }
            let zig = zig.as_deref().expect("found above");
            let wrappers = write_zig_wrappers(&tools, target, zig)?;
            link_with(&mut cmd, target, &wrappers, &remaps);
            // zig brings musl's C runtime and libunwind; rustc's own copies would clash.
            flags.push("-Clink-self-contained=no".into());
        }
        rustflags.push((target, flags));
    }
    set_rustflags(&mut cmd, &rustflags);
    let links = auditable::Links::for_plan(plan, cfgs)?;
    remaps.wrap_workspace(&mut cmd, &tools, plan, &links)?;
    remaps.shim_rustc(&mut cmd, &tools, plan)?;
    if std == Std::FromSource {
        tracing::info!(
            "using a standard library built from source (rust-src) for {}",
            targets.join(", ")
        );
    }
    let executables = run_cargo(&mut cmd, plan, cancel)?;
    let missing: Vec<String> = plan
        .platforms
        .iter()
        .filter(|p| !executables.iter().any(|(t, _)| t == p.rust_target()))
        .map(|p| format!("{p} ({})", p.rust_target()))
        .collect();
    if !missing.is_empty() {
        return Err(CompileError::Failed {
            bin: plan.bin.clone(),
            platforms: missing.join(", "),
        });
    }
    plan.platforms
        .iter()
        .map(|p| {
            let path = executables
                .iter()
                .find(|(t, _)| t == p.rust_target())
                .map(|(_, path)| path.clone())
                .expect("checked above");
            if !plan.split_debuginfo {
                return Ok(Binary {
                    platform: p.clone(),
                    path,
                    debug: None,
                });
            }
            let dir = plan
                .target_dir
                .join("stevedore/.debuginfo")
                .join(p.rust_target());
            let (path, debug) = debuginfo::split(&path, &dir, &plan.bin)?;
            Ok(Binary {
                platform: p.clone(),
                path,
                debug: Some(debug),
            })
        })
        .collect()
}

fn find_std(toolchain: &Toolchain, target: &str) -> Result<Std, CompileError> {
    let sysroot = toolchain.sysroot().map_err(CompileError::Sysroot)?;
    let lib = sysroot.join("lib/rustlib").join(target).join("lib");
    let installed = std::fs::read_dir(&lib).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
    });
    if installed {
        return Ok(Std::Installed);
    }
    if sysroot
        .join("lib/rustlib/src/rust/library/Cargo.lock")
        .is_file()
    {
        return Ok(Std::FromSource);
    }
    let (toolchain_note, fix) = match toolchain.rustup_name() {
        Some(name) => (
            format!(" in toolchain `{name}`"),
            format!("run `rustup target add {target} --toolchain {name}`"),
        ),
        None if has_rustup() => (String::new(), format!("run `rustup target add {target}`")),
        None => (
            String::new(),
            format!(
                "install the {target} standard library for {} or the toolchain's rust-src",
                sysroot.display()
            ),
        ),
    };
    Err(CompileError::NoStd {
        target: target.to_owned(),
        toolchain: toolchain_note,
        fix,
    })
}

fn has_rustup() -> bool {
    run_capture(Command::new("rustup").arg("--version")).is_ok()
}

/// Why this build links with zig, if it must: rustc's own musl linking only covers an
/// installed std on the host architecture with no C code.
fn zig_reason(std: Std, platform: &Platform, has_c_code: bool) -> Option<&'static str> {
    let host = Platform::host().ok();
    if std == Std::FromSource {
        Some("std built from source has no bundled musl C runtime")
    } else if host.as_ref() != Some(platform) {
        Some("the target is not the host architecture")
    } else if has_c_code {
        Some("a dependency compiles C code")
    } else {
        None
    }
}

fn cargo_build(plan: &Plan, targets: &[&str], std: Std) -> Command {
    let mut cmd = plan.toolchain.cargo();
    // The target dir as a flag, never in the environment: rustc inherits cargo's environment
    // and compile caches hash its `CARGO_*` variables, so a per-checkout CARGO_TARGET_DIR
    // there would make every crate miss.
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&plan.manifest_path)
        .arg("--target-dir")
        .arg(&plan.target_dir)
        .env_remove("CARGO_TARGET_DIR");
    cmd.args([
        "--package",
        &plan.package,
        "--bin",
        &plan.bin,
        "--profile",
        &plan.profile,
    ]);
    for target in targets {
        cmd.args(["--target", target]);
    }
    cmd.args(["--keep-going", "--message-format=json-render-diagnostics"]);
    cmd.args(plan.cargo_flags());
    if std == Std::FromSource {
        // build-std is unstable; RUSTC_BOOTSTRAP lets a stable toolchain use it.
        cmd.arg("-Zbuild-std=std,panic_abort")
            .env("RUSTC_BOOTSTRAP", "1");
    }
    cmd
}

/// The zig executable, as a command prefix: `zig`, or `python3 -m ziglang` from PyPI.
fn find_zig() -> Option<Vec<String>> {
    if let Some(path) = std::env::var_os(crate::env::ZIG).filter(|p| !p.is_empty()) {
        return Some(vec![path.to_string_lossy().into_owned()]);
    }
    if run_capture(Command::new("zig").arg("version")).is_ok() {
        return Some(vec!["zig".into()]);
    }
    let python = [
        "python3",
        "-c",
        "import sys, ziglang, os; print(sys.executable)",
    ];
    let exe = run_capture(Command::new(python[0]).args(&python[1..])).ok()?;
    Some(vec![exe.trim().to_owned(), "-m".into(), "ziglang".into()])
}

/// Where the helper scripts cargo runs (zig wrappers, the rustc shim) live, at paths named by
/// their content. Cargo rebuilds everything, std included, when the linker's path changes,
/// and compile caches hash it, so the path must not depend on the target dir or the checkout.
/// `STEVEDORE_TOOLS_DIR`, else the user's cache (`~/.cache/stevedore/tools`). Not under
/// `STEVEDORE_CACHE_DIR` by default: a build with another blob cache (a test's, a CI job's)
/// would name another linker and `rustc`, and cargo would rebuild std and every crate for it.
fn tools_dir(plan: &Plan) -> PathBuf {
    tools_dir_from(env_path, &plan.target_dir)
}

/// An environment variable that names a path, unless empty.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// [`tools_dir`] from the variables `var` names.
fn tools_dir_from(var: impl Fn(&str) -> Option<PathBuf>, target_dir: &Path) -> PathBuf {
    var(crate::env::TOOLS_DIR)
        .or_else(|| user_cache_dir(&var, "stevedore/tools", "tools"))
        .unwrap_or_else(|| target_dir.join("stevedore"))
}

/// `NAME` in the user's cache (`$XDG_CACHE_HOME`, else `~/.cache`), or `FALLBACK` in
/// `$STEVEDORE_CACHE_DIR` when the user's cannot be written: a service user's HOME often
/// cannot (`/nonexistent` for `nobody`, which `docker run --user 65534` and `sudo -u nobody`
/// give), and then the one variable the blob cache needs serves the rest too.
fn user_cache_dir(
    var: impl Fn(&str) -> Option<PathBuf>,
    name: &str,
    fallback: &str,
) -> Option<PathBuf> {
    user_cache_root(&var)
        .map(|p| p.join(name))
        .filter(|dir| writable(dir))
        .or_else(|| var(crate::env::CACHE_DIR).map(|p| p.join(fallback)))
}

/// The user's cache directory, as zig and the XDG spec find it: `$XDG_CACHE_HOME`, else
/// `~/.cache`.
fn user_cache_root(var: impl Fn(&str) -> Option<PathBuf>) -> Option<PathBuf> {
    var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|p| p.join(".cache")))
}

/// The `ZIG_GLOBAL_CACHE_DIR` to give cargo, when zig's own choice (the user's cache, as
/// [`user_cache_dir`] finds it) cannot be written: zig then fails every compile and link.
fn zig_cache_dir(var: impl Fn(&str) -> Option<PathBuf>) -> Option<PathBuf> {
    if var("ZIG_GLOBAL_CACHE_DIR").is_some() {
        return None;
    }
    let dir = user_cache_dir(&var, "zig", "zig")?;
    let zigs_own = user_cache_root(&var).map(|p| p.join("zig"));
    (Some(&dir) != zigs_own.as_ref()).then_some(dir)
}

/// Whether `dir` is, or can be made, a directory that takes new files.
fn writable(dir: &Path) -> bool {
    std::fs::create_dir_all(dir).is_ok() && tempfile::tempfile_in(dir).is_ok()
}

/// A directory name for scripts, from their content.
fn content_name(prefix: &str, scripts: &[&str]) -> String {
    let digest = crate::digest::Digest::of(scripts.concat().as_bytes());
    format!("{prefix}-{}", &digest.hex()[..16])
}

struct ZigWrappers {
    cc: PathBuf,
    ar: PathBuf,
}

/// Writes `cc` and `ar` scripts that run zig for `target` into `dir/TARGET-HASH/`.
fn write_zig_wrappers(
    dir: &Path,
    target: &str,
    zig: &[String],
) -> Result<ZigWrappers, CompileError> {
    let zig_triple = format!("{}-linux-musl", target.split('-').next().unwrap_or(target));
    let zig_cmd = zig
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    // cc-rs passes the Rust triple as --target=…, which zig cannot parse; zig gets its own.
    let cc = format!(
        "#!/bin/sh\n# Written by stevedore: links and compiles C for {target} with zig.\n\
         for a do shift; case \"$a\" in --target=*) continue;; esac; set -- \"$@\" \"$a\"; done\n\
         exec {zig_cmd} cc -target {zig_triple} \"$@\"\n"
    );
    let ar = format!("#!/bin/sh\n# Written by stevedore.\nexec {zig_cmd} ar \"$@\"\n");
    let dir = dir.join(content_name(target, &[&cc, &ar]));
    let wrappers = ZigWrappers {
        cc: dir.join("cc"),
        ar: dir.join("ar"),
    };
    for (path, script) in [(&wrappers.cc, cc), (&wrappers.ar, ar)] {
        write_executable(path, &script).map_err(|source| CompileError::Wrapper {
            path: path.clone(),
            source,
        })?;
    }
    Ok(wrappers)
}

fn write_executable(path: &Path, content: &str) -> std::io::Result<()> {
    write_file(path, content.as_bytes(), 0o755)
}

/// Writes `bytes` to `path` with `mode`, by temp file and rename so a reader (a cargo of
/// another build) never sees half a file; nothing when the file already holds them.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), bytes)?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Points cargo, rustc and cc-rs at the zig wrappers for `target`.
fn link_with(cmd: &mut Command, target: &str, wrappers: &ZigWrappers, remaps: &Remaps) {
    let upper = target.to_uppercase().replace('-', "_");
    let lower = target.replace('-', "_");
    cmd.env(format!("CARGO_TARGET_{upper}_LINKER"), &wrappers.cc);
    cmd.env(format!("CC_{lower}"), &wrappers.cc);
    cmd.env(format!("AR_{lower}"), &wrappers.ar);
    // cc-rs reads only the most specific CFLAGS, so the user's general ones are carried over.
    let mut cflags = std::env::var("CFLAGS").unwrap_or_default();
    for flag in remaps.c_flags() {
        cflags.push(' ');
        cflags.push_str(&flag);
    }
    cmd.env(format!("CFLAGS_{lower}"), cflags.trim_start());
}

/// Gives each target its flags without discarding the user's. Cargo takes RUSTFLAGS over any
/// configured flags, so when the user set it ours join it (for every target); otherwise they go
/// in as `--config target.TRIPLE.rustflags`, which cargo merges with the user's config files.
fn set_rustflags(cmd: &mut Command, per_target: &[(&str, Vec<String>)]) {
    let from_env = std::env::var("CARGO_ENCODED_RUSTFLAGS")
        .ok()
        .map(|v| v.split('\x1f').map(str::to_owned).collect::<Vec<_>>())
        .or_else(|| {
            std::env::var("RUSTFLAGS")
                .ok()
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
        });
    match from_env {
        Some(mut flags) => {
            for flag in per_target.iter().flat_map(|(_, ours)| ours) {
                if !flags.contains(flag) {
                    flags.push(flag.clone());
                }
            }
            flags.retain(|f| !f.is_empty());
            cmd.env_remove("RUSTFLAGS")
                .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"));
        }
        None => {
            for (target, flags) in per_target {
                let list: Vec<String> = flags.iter().map(|f| toml_string(f)).collect();
                cmd.arg("--config")
                    .arg(format!("target.{target}.rustflags=[{}]", list.join(", ")));
            }
        }
    }
}

/// A TOML basic string: JSON's string escapes are a subset of TOML's.
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Runs cargo with its progress on our stderr, collecting (target triple, executable) pairs
/// from its JSON on stdout. Which targets failed shows as the ones with no executable.
fn run_cargo(
    cmd: &mut Command,
    plan: &Plan,
    cancel: &Cancel,
) -> Result<Vec<(String, PathBuf)>, CompileError> {
    if cancel.is_cancelled() {
        return Err(CompileError::Cancelled);
    }
    let command = describe(cmd);
    tracing::debug!("running {command}");
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|source| CompileError::Spawn { command, source })?;
    cancel.started(child.id());
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut executables = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)).flatten() {
        match message {
            Message::CompilerArtifact(a) if a.target.name == plan.bin => {
                if let Some(path) = a.executable.map(|p| p.into_std_path_buf()) {
                    // Cross builds put outputs under target/<triple>/<profile>/.
                    let triple = plan
                        .platforms
                        .iter()
                        .map(Platform::rust_target)
                        .find(|t| path.components().any(|c| c.as_os_str() == *t));
                    if let Some(triple) = triple {
                        executables.push((triple.to_owned(), path));
                    }
                }
            }
            Message::TextLine(line) => eprintln!("{line}"),
            _ => {}
        }
    }
    // Forgotten before it is reaped: until wait() returns, the id cannot be anyone else's.
    cancel.ended();
    let status = child.wait().map_err(|source| CompileError::Spawn {
        command: "cargo".into(),
        source,
    })?;
    if cancel.is_cancelled() {
        return Err(CompileError::Cancelled);
    }
    if !status.success() && executables.is_empty() {
        let platforms = crate::platform::list(&plan.platforms);
        return Err(CompileError::Failed {
            bin: plan.bin.clone(),
            platforms,
        });
    }
    Ok(executables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_stops_a_running_process_and_one_not_yet_started() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let cancel = Cancel::default();
        cancel.started(child.id());
        let started = std::time::Instant::now();
        cancel.cancel();
        let status = child.wait().unwrap();
        cancel.ended();
        assert!(!status.success(), "terminated by the signal");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));

        // Cancelled before cargo started: the next process is stopped as soon as it is known.
        let mut late = Command::new("sleep").arg("30").spawn().unwrap();
        cancel.started(late.id());
        assert!(!late.wait().unwrap().success());
    }

    #[test]
    fn scripts_and_zigs_cache_go_beside_the_blob_cache_when_home_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        // A HOME below a file cannot be written, not even by root.
        let unwritable = dir.path().join("file");
        std::fs::write(&unwritable, "").unwrap();
        let writable = dir.path().join("home");
        let cache = dir.path().join("cache");
        let target = dir.path().join("target");
        let env = |home: &Path, cache: Option<&Path>| {
            let home = home.to_path_buf();
            let cache = cache.map(Path::to_path_buf);
            move |name: &str| match name {
                "HOME" => Some(home.clone()),
                crate::env::CACHE_DIR => cache.clone(),
                _ => None,
            }
        };
        assert_eq!(
            tools_dir_from(env(&writable, Some(&cache)), &target),
            writable.join(".cache/stevedore/tools"),
            "the user's cache, whatever STEVEDORE_CACHE_DIR says"
        );
        assert_eq!(
            tools_dir_from(env(&unwritable, Some(&cache)), &target),
            cache.join("tools")
        );
        assert_eq!(
            tools_dir_from(env(&unwritable, None), &target),
            target.join("stevedore")
        );
        // zig's global cache likewise, where zig would not look by itself.
        assert_eq!(zig_cache_dir(env(&writable, Some(&cache))), None);
        assert_eq!(
            zig_cache_dir(env(&unwritable, Some(&cache))),
            Some(cache.join("zig"))
        );
    }
}
