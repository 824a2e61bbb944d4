//! Stage 2: compile the planned binary for one platform into a static musl executable.
//!
//! The executable's path comes from cargo's JSON artifact messages, never from a guessed path.
//! Three ways to get a musl standard library are supported, chosen per target:
//! an installed std (rustup target), std built from source (`-Zbuild-std`, when the toolchain
//! has rust-src), or an error that says which command installs it.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

use cargo_metadata::cargo_platform::Cfg;
use cargo_metadata::Message;

use crate::plan::Plan;
use crate::platform::{Libc, Platform};
use crate::toolchain::{describe, run_capture, Toolchain, ToolchainError};

mod auditable;
mod cancel;
mod debuginfo;
mod glibc;
mod remap;
mod std_cache;
mod target_lock;
mod tools;
mod zig;

pub(crate) use target_lock::lock as lock_target_dir;

pub use auditable::AuditableError;
pub use cancel::Cancel;
pub use debuginfo::{DebugFile, DebuginfoError};
pub(crate) use glibc::{
    newest_need as newest_glibc_need, of_packages as glibc_of_packages, GlibcVersion,
};

use remap::Remaps;
use tools::{
    content_name, env_path, set_mode, shell_quote, tools_dir, write_executable, write_file,
    zig_cache_dir,
};
pub(crate) use zig::{
    chosen_version as chosen_zig, pinned_wheels as pinned_zig_wheels, Zig, VERSION as ZIG_VERSION,
};
use zig::{link_with, write_zig_wrappers};

/// A compiled executable for one platform.
#[derive(Debug, Clone)]
pub struct Binary {
    pub platform: Platform,
    /// The executable for the image (stripped when its symbols were split off).
    pub path: PathBuf,
    /// With `--split-debuginfo`: its symbols, split off.
    pub debug: Option<DebugFile>,
}

/// What a compile made: one binary per planned platform, and what it ran besides rustc.
#[derive(Debug)]
pub struct Compiled {
    pub binaries: Vec<Binary>,
    pub ran: Ran,
}

/// The tools a compile ran besides rustc, for the provenance: one set for all platforms, as
/// cargo ran once.
#[derive(Debug, Clone, Default)]
pub struct Ran {
    /// The zig that linked, if zig did.
    pub zig: Option<Zig>,
    /// The digest of the std sources compiled, when std was built from source.
    pub std_sources: Option<crate::digest::Digest>,
}

/// Why the binary cannot be compiled for a platform.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// `rustc --print sysroot` could not run or failed; the toolchain is missing or broken.
    #[error("cannot find the toolchain's sysroot")]
    Sysroot(#[source] ToolchainError),
    /// The target's standard library is neither installed nor buildable from rust-src.
    #[error(
        "the Rust standard library for {target} is not installed{toolchain}, and the toolchain has no \
         rust-src to build it from: {fix}"
    )]
    NoStd {
        /// The Rust target, e.g. `x86_64-unknown-linux-musl`.
        target: String,
        /// The words naming the rustup toolchain, as the message shows them; empty for
        /// another toolchain.
        toolchain: String,
        /// The command (or step) that installs it.
        fix: String,
    },
    /// The build must link with zig and stevedore pins none for this host.
    #[error(
        "linking for {target} needs zig ({why}), and stevedore pins no zig for this host \
         ({host}): set \
         {} to a zig {} executable (the image then depends on that zig)",
        crate::env::ZIG,
        zig::VERSION
    )]
    NoZig {
        /// The Rust target being linked.
        target: String,
        /// Why rustc's own musl linking is not enough for it.
        why: &'static str,
        /// The host, `OS-ARCH` as Rust names them.
        host: String,
    },
    /// `--offline`, and the pinned zig has not been fetched yet.
    #[error(
        "--offline, and stevedore's pinned zig {version} is not in {dir}: run one build online \
         first (it fetches zig once, about 100 MB, from PyPI or from {}), or set {} to a zig \
         executable (the image then depends on that zig)",
        crate::env::ZIG_MIRROR,
        crate::env::ZIG
    )]
    ZigOffline {
        /// The pinned version.
        version: &'static str,
        /// Where it would be.
        dir: PathBuf,
    },
    /// The pinned zig could not be downloaded.
    #[error(
        "cannot fetch stevedore's pinned zig {version} from {url}: check the network, or set {} \
         to a mirror holding {file}, or {} to a zig executable",
        crate::env::ZIG_MIRROR,
        crate::env::ZIG
    )]
    ZigFetch {
        /// The pinned version.
        version: &'static str,
        /// Where from, without credentials.
        url: String,
        /// The wheel's file name.
        file: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// What was downloaded is not the pinned wheel.
    #[error(
        "the zig wheel from {url} is not the one stevedore pins: its digest is {actual}, \
         expected {expected}; nothing of it was kept. A mirror ({}) must hold PyPI's file \
         unchanged",
        crate::env::ZIG_MIRROR
    )]
    ZigDigest {
        /// Where from, without credentials.
        url: String,
        /// The pinned digest, `sha256:HEX`.
        expected: String,
        /// The digest of what came, `sha256:HEX`.
        actual: String,
    },
    /// The pinned zig's wheel cannot be unpacked into the tools dir.
    #[error(
        "cannot unpack stevedore's pinned zig into {dir}: check that the tools dir ({}) can be \
         written and has room (about 400 MB)",
        crate::env::TOOLS_DIR
    )]
    ZigUnpack {
        /// The directory it goes to.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A helper file stevedore writes for cargo (a linker or rustc wrapper, an object to link,
    /// the std cache's project) cannot be written.
    #[error("cannot write the wrapper script {path}")]
    Wrapper {
        /// The file that could not be written.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The lock file in the target dir cannot be created or locked.
    #[error("cannot lock {path}, which keeps two builds in one target dir apart")]
    TargetLock {
        /// The lock file, `stevedore/.build.lock` in the target dir.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// cargo could not be started, or waited for.
    #[error("cannot start `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// cargo failed, or wrote no executable for some platforms.
    #[error("cargo failed to build `{bin}` for {platforms}; its messages are above")]
    Failed {
        /// The binary being built.
        bin: String,
        /// The platforms with no executable, comma separated.
        platforms: String,
    },
    /// The standard library built earlier cannot be copied into this build's target dir.
    #[error(
        "cannot copy the standard library from stevedore's std cache {from} into {to}: check \
         that the target dir can be written and has room"
    )]
    StdCache {
        /// The std cache's profile directory the units come from.
        from: PathBuf,
        /// The target dir's profile directory they were copied to.
        to: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The compile was stopped because the base pull or the push check beside it failed;
    /// that failure is the one to read.
    #[error("the compile was stopped")]
    Cancelled,
    /// The dependency list cannot be embedded in the binary.
    #[error(transparent)]
    Auditable(#[from] auditable::AuditableError),
    /// The binary's symbols cannot be split off (`--split-debuginfo`).
    #[error(transparent)]
    Debuginfo(#[from] DebuginfoError),
}

/// How the standard library for a target is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    Installed,
    FromSource,
}

/// The glibc version (`2.36`) each platform's base has, which a glibc build links against;
/// empty for a musl build.
pub type GlibcVersions = std::collections::BTreeMap<Platform, GlibcVersion>;

/// Compiles `plan.bin` for every planned platform in one cargo run, so cargo schedules all
/// targets on all cores; `--keep-going` lets a failing target name itself by its missing binary.
/// A glibc build links against `glibc`'s version for each platform.
/// `cancel` stops it from another thread. `cfgs` (the `cfg` values of each planned platform,
/// index for index) pick the part of the plan's graph each binary lists, unless the plan turns
/// that off.
pub fn compile(
    plan: &Plan,
    cfgs: &[Vec<Cfg>],
    glibc: &GlibcVersions,
    cancel: &Cancel,
) -> Result<Compiled, CompileError> {
    let targets: Vec<&str> = plan.platforms.iter().map(|p| plan.rust_target(p)).collect();
    // -Zbuild-std applies to every target of a run: one target without std means all from source.
    let mut std = Std::Installed;
    for target in &targets {
        if find_std(&plan.toolchain, target)? == Std::FromSource {
            std = Std::FromSource;
        }
    }
    let setup = Setup {
        plan,
        glibc,
        std,
        remaps: Remaps::for_plan(plan)?,
        tools: tools_dir(plan),
        links: auditable::Links::for_plan(plan, cfgs)?,
        zig: std::cell::OnceCell::new(),
    };
    if std == Std::FromSource {
        tracing::info!(
            "using a standard library built from source (rust-src) for {}",
            targets.join(", ")
        );
        std_cache::seed(plan, &targets, &setup.tools, cancel, |cmd| setup.apply(cmd))?;
    }
    let mut cmd = cargo_build(plan, &targets, std);
    cmd.args(plan.cargo_flags()).args(&plan.cargo_args);
    setup.apply(&mut cmd)?;
    let executables = run_cargo(&mut cmd, plan, cancel)?;
    let missing: Vec<String> = plan
        .platforms
        .iter()
        .filter(|p| !executables.iter().any(|(t, _)| t == plan.rust_target(p)))
        .map(|p| format!("{p} ({})", plan.rust_target(p)))
        .collect();
    if !missing.is_empty() {
        return Err(CompileError::Failed {
            bin: plan.bin.clone(),
            platforms: missing.join(", "),
        });
    }
    let binaries = plan
        .platforms
        .iter()
        .map(|p| {
            let path = executables
                .iter()
                .find(|(t, _)| t == plan.rust_target(p))
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
                .join(plan.rust_target(p));
            let (path, debug) = debuginfo::split(&path, &dir, &plan.bin)?;
            Ok(Binary {
                platform: p.clone(),
                path,
                debug: Some(debug),
            })
        })
        .collect::<Result<_, CompileError>>()?;
    let ran = Ran {
        zig: setup.zig.get().map(|(_, _, which)| which.clone()),
        std_sources: match std {
            Std::FromSource => plan.toolchain.std_sources_digest(),
            Std::Installed => None,
        },
    };
    Ok(Compiled { binaries, ran })
}

/// What every cargo run of a compile is given: rustflags, the zig linker, the workspace
/// wrapper and the rustc shim. The std cache's cargo gets the same, so that the standard
/// library it builds is the one this compile's cargo would build, unit for unit.
struct Setup<'a> {
    plan: &'a Plan,
    /// The glibc version of each platform's base, for a glibc build.
    glibc: &'a GlibcVersions,
    std: Std,
    remaps: Remaps,
    tools: PathBuf,
    links: auditable::Links,
    /// Found on first need (the search may start a process), with the
    /// `ZIG_GLOBAL_CACHE_DIR` to give it (finding that tries a write).
    zig: std::cell::OnceCell<(String, Option<PathBuf>, Zig)>,
}

impl Setup<'_> {
    fn apply(&self, cmd: &mut Command) -> Result<(), CompileError> {
        let mut rustflags: Vec<(&str, Vec<String>)> = Vec::new();
        for platform in &self.plan.platforms {
            let target = self.plan.rust_target(platform);
            let mut flags = self.remaps.rustc_flags();
            if let Some(why) = zig_reason(self.std, platform, self.plan) {
                let zig = self.zig(cmd, target, why)?;
                let glibc = self.glibc.get(platform).map(ToString::to_string);
                let wrappers = write_zig_wrappers(&self.tools, target, glibc.as_deref(), zig)?;
                link_with(cmd, target, &wrappers, &self.remaps);
                // zig brings musl's C runtime and libunwind; rustc's own copies would clash.
                // (glibc targets have no self-contained mode.)
                if self.plan.libc == Libc::Musl {
                    flags.push("-Clink-self-contained=no".into());
                }
            }
            rustflags.push((target, flags));
        }
        set_rustflags(cmd, &rustflags);
        if self.builds_for_host() {
            zig::keep_host_apart(cmd);
        }
        self.remaps
            .wrap_workspace(cmd, &self.tools, self.plan, &self.links)?;
        self.remaps.shim_rustc(cmd, &self.tools, self.plan)
    }

    /// Whether a planned target is the host's own triple, which only a glibc build on an
    /// x86_64 or aarch64 Linux host can be.
    fn builds_for_host(&self) -> bool {
        self.plan.libc == Libc::Gnu
            && self.plan.toolchain.host().is_some_and(|host| {
                self.plan
                    .platforms
                    .iter()
                    .any(|p| self.plan.rust_target(p) == host)
            })
    }

    fn zig(
        &self,
        cmd: &mut Command,
        target: &str,
        why: &'static str,
    ) -> Result<&str, CompileError> {
        if self.zig.get().is_none() {
            let (zig, which) = zig::find(&self.tools, self.plan.offline, (target, why))?;
            let _ = self.zig.set((zig, zig_cache_dir(env_path), which));
        }
        let (zig, cache, _) = self.zig.get().expect("set above");
        if let Some(dir) = cache {
            cmd.env("ZIG_GLOBAL_CACHE_DIR", dir);
        }
        Ok(zig)
    }
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
            format!(
                "run `rustup target add {target} --toolchain {name}`, or, for a target rustup \
                 has no standard library for, `rustup component add rust-src --toolchain {name}`"
            ),
        ),
        None if has_rustup() => (
            String::new(),
            format!(
                "run `rustup target add {target}`, or, for a target rustup has no standard \
                 library for, `rustup component add rust-src`"
            ),
        ),
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
    run_capture(crate::env::without_secrets(&mut Command::new("rustup")).arg("--version")).is_ok()
}

/// Why this build links with zig, if it must: rustc's own musl linking only covers an
/// installed std on the host architecture with no C code, and a glibc binary must link
/// against the base's glibc, not the host's.
fn zig_reason(std: Std, platform: &Platform, plan: &Plan) -> Option<&'static str> {
    let host = Platform::host().ok();
    if plan.libc == Libc::Gnu {
        Some("a glibc binary links against the base's glibc version")
    } else if std == Std::FromSource {
        Some("std built from source has no bundled musl C runtime")
    } else if host.as_ref() != Some(platform) {
        Some("the target is not the host architecture")
    } else if plan.has_c_code {
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
    if std == Std::FromSource {
        build_std(&mut cmd);
    }
    cmd
}

fn build_std(cmd: &mut Command) {
    // build-std is unstable; RUSTC_BOOTSTRAP lets a stable toolchain use it.
    cmd.arg("-Zbuild-std=std,panic_abort")
        .env("RUSTC_BOOTSTRAP", "1");
}

/// A target as cargo spells it in `CARGO_TARGET_<TRIPLE>_*` variables.
fn target_var(target: &str) -> String {
    target.to_uppercase().replace('-', "_")
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

/// Starts cargo with its progress on our stderr, where `cancel` can stop it.
fn start(cmd: &mut Command, stdout: Stdio, cancel: &Cancel) -> Result<Child, CompileError> {
    if cancel.is_cancelled() {
        return Err(CompileError::Cancelled);
    }
    let command = describe(cmd);
    tracing::debug!("running {command}");
    cmd.stdout(stdout)
        .stderr(Stdio::inherit())
        .stdin(Stdio::null());
    let child = cmd
        .spawn()
        .map_err(|source| CompileError::Spawn { command, source })?;
    cancel.started(&child);
    Ok(child)
}

/// Waits for a cargo [`start`] started; `Cancelled` if `cancel` stopped it.
fn finish(child: &mut Child, cancel: &Cancel) -> Result<ExitStatus, CompileError> {
    // Forgotten before it is reaped: until wait() returns, the id cannot be anyone else's.
    cancel.ended();
    let status = child.wait().map_err(|source| CompileError::Spawn {
        command: "cargo".into(),
        source,
    })?;
    if cancel.is_cancelled() {
        return Err(CompileError::Cancelled);
    }
    Ok(status)
}

/// Runs cargo with its progress on our stderr, collecting (target triple, executable) pairs
/// from its JSON on stdout. Which targets failed shows as the ones with no executable.
fn run_cargo(
    cmd: &mut Command,
    plan: &Plan,
    cancel: &Cancel,
) -> Result<Vec<(String, PathBuf)>, CompileError> {
    let mut child = start(cmd, Stdio::piped(), cancel)?;
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
                        .map(|p| plan.rust_target(p))
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
    let status = finish(&mut child, cancel)?;
    if !status.success() && executables.is_empty() {
        let platforms = crate::platform::list(&plan.platforms);
        return Err(CompileError::Failed {
            bin: plan.bin.clone(),
            platforms,
        });
    }
    Ok(executables)
}
