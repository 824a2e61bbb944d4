//! Which cargo and rustc a build runs: the user's `--toolchain`, else the cargo that started us.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use crate::env;

mod answers;
pub(crate) mod files;
mod shim;

#[cfg(unix)]
pub(crate) use answers::identity_of;
pub(crate) use answers::{ask_executable, identity, on_path, own_digest};
pub(crate) use shim::{Shim, TARGET_NAME};

/// How to start cargo and rustc for the project being built.
#[derive(Debug, Clone)]
pub struct Toolchain {
    which: Which,
    /// The sysroot and `rustc -vV`, asked once per run: every `rustup run` costs a process
    /// start and rustup's own work, and a build asks several stages' worth of questions.
    sysroot: Arc<OnceLock<PathBuf>>,
    version: Arc<OnceLock<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Which {
    /// A rustup toolchain by name (`--toolchain debweb`), run through `rustup run NAME`.
    Rustup(String),
    /// Whatever `$CARGO` (set by cargo for its subcommands) or `cargo` on PATH is.
    Ambient,
}

/// Where a sysroot keeps its rustc.
const RUSTC: &str = "bin/rustc";

/// Why cargo, rustc or rustup could not answer a question.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolchainError {
    /// The command could not be started: the program is not installed or not on PATH.
    #[error("cannot run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command ran and exited with an error.
    #[error("`{command}` failed: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// What it wrote to stderr.
        stderr: String,
    },
}

impl Toolchain {
    pub fn from_name(name: Option<&str>) -> Self {
        let which = match name {
            Some(name) => Which::Rustup(name.to_owned()),
            None => Which::Ambient,
        };
        Toolchain {
            which,
            sysroot: Arc::default(),
            version: Arc::default(),
        }
    }

    /// A `cargo` command for this toolchain, without stevedore's secrets (see
    /// [`env::SECRETS`]): cargo passes its environment to every build script and rustc.
    pub fn cargo(&self) -> Command {
        let mut cmd = match &self.which {
            Which::Rustup(name) => rustup_run(name, "cargo"),
            Which::Ambient => Command::new(
                std::env::var_os(env::CARGO).unwrap_or_else(|| OsString::from("cargo")),
            ),
        };
        env::without_secrets(&mut cmd);
        cmd
    }

    /// A `rustc` command for this toolchain, the same one cargo will pick.
    pub fn rustc(&self) -> Command {
        let mut cmd = match &self.which {
            // A rustup toolchain's rustc is its sysroot's, once that is known: no rustup run.
            Which::Rustup(_) if self.sysroot.get().is_some_and(|s| s.join(RUSTC).is_file()) => {
                Command::new(self.sysroot.get().expect("checked").join(RUSTC))
            }
            Which::Rustup(name) => rustup_run(name, "rustc"),
            Which::Ambient => {
                Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc")))
            }
        };
        env::without_secrets(&mut cmd);
        cmd
    }

    /// rustc's answer to `args`, a question whose answer depends only on the executable
    /// (`-vV`, `--print sysroot`, `--print cfg --target T`): from stevedore's answers on disk
    /// when this very executable answered it before (see `toolchain/answers.rs`).
    pub fn ask(&self, args: &[&str]) -> Result<String, ToolchainError> {
        answers::ask(self.rustc_exe().as_deref(), &mut self.rustc(), args)
    }

    /// The rustc executable [`Toolchain::rustc`] starts, when it is not a rustup proxy (whose
    /// file stays the same when the toolchain behind it changes).
    fn rustc_exe(&self) -> Option<PathBuf> {
        match &self.which {
            Which::Rustup(name) => self
                .sysroot
                .get()
                .map(|s| s.join(RUSTC))
                .filter(|p| p.is_file())
                .or_else(|| rustup_toolchain(name).map(|t| t.dir.join(RUSTC)))
                .filter(|p| p.is_file()),
            Which::Ambient => answers::not_a_proxy(
                std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc")),
            ),
        }
    }

    /// The toolchain's sysroot, where the standard library of each installed target lives.
    pub fn sysroot(&self) -> Result<PathBuf, ToolchainError> {
        if let Some(sysroot) = self.sysroot.get() {
            return Ok(sysroot.clone());
        }
        let out = self.ask(&["--print", "sysroot"])?;
        Ok(self
            .sysroot
            .get_or_init(|| PathBuf::from(out.trim()))
            .clone())
    }

    /// Asks for the sysroot and `rustc -vV` now, so later stages find them known; a failure
    /// is reported by whichever stage needs the answer.
    pub fn prefetch(&self) {
        if self.sysroot().is_ok() {
            self.verbose_version();
        }
    }

    /// The commit rustc was built from (`rustc -vV`), which names its std sources in official
    /// builds' paths.
    pub fn commit_hash(&self) -> Option<String> {
        self.verbose_version()?
            .lines()
            .find_map(|l| l.strip_prefix("commit-hash: "))
            .map(|h| h.trim().to_owned())
            .filter(|h| h != "unknown")
    }

    /// `rustc -vV`, which names the compiler exactly (release, commit, host, LLVM).
    pub fn verbose_version(&self) -> Option<&str> {
        if let Some(out) = self.version.get() {
            return Some(out);
        }
        let out = self.ask(&["-vV"]).ok()?;
        Some(self.version.get_or_init(|| out))
    }

    /// rustc's release (`1.95.0`), from `rustc -vV`, for the provenance.
    pub fn release(&self) -> Option<String> {
        self.verbose_version()?
            .lines()
            .find_map(|l| l.strip_prefix("release: "))
            .map(|h| h.trim().to_owned())
    }

    /// The triple rustc runs on and builds build scripts for (`x86_64-unknown-linux-gnu`),
    /// from `rustc -vV`.
    pub fn host(&self) -> Option<&str> {
        self.verbose_version()?
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .map(str::trim)
    }

    /// The sha256 of the standard library's sources (rust-src) in the sysroot, which a
    /// build from source compiles; `None` when they are not there.
    pub fn std_sources_digest(&self) -> Option<crate::digest::Digest> {
        let library = self.sysroot().ok()?.join("lib/rustlib/src/rust/library");
        answers::tree_digest(&library)
    }

    /// The name to give in `rustup` commands, when there is one.
    pub fn rustup_name(&self) -> Option<&str> {
        match &self.which {
            Which::Rustup(name) => Some(name),
            Which::Ambient => None,
        }
    }
}

/// `rustup run NAME TOOL`, or what it amounts to: where rustup keeps the toolchain under that
/// very name, its executable is started directly with the environment `rustup run` gives it,
/// which saves rustup's own start and lookup (about 45 ms a process, twice per build).
fn rustup_run(name: &str, tool: &str) -> Command {
    let Some(toolchain) = rustup_toolchain(name).filter(|t| t.dir.join("bin").join(tool).is_file())
    else {
        // A name rustup resolves itself (`stable`, a channel with a date) has no such directory.
        return rustup_command(name, tool);
    };
    let mut libs = vec![toolchain.dir.join("lib")];
    libs.extend(std::env::split_paths(
        &std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default(),
    ));
    let mut cmd = Command::new(toolchain.dir.join("bin").join(tool));
    cmd.env("RUSTUP_TOOLCHAIN", name)
        .env("RUSTUP_HOME", &toolchain.rustup_home)
        .env("CARGO_HOME", &toolchain.cargo_home)
        .env("RUST_RECURSION_COUNT", "1");
    if let Ok(libs) = std::env::join_paths(libs) {
        cmd.env("LD_LIBRARY_PATH", libs);
    }
    cmd
}

/// Where rustup keeps a toolchain under the name given, and its homes.
struct RustupToolchain {
    dir: PathBuf,
    rustup_home: PathBuf,
    cargo_home: PathBuf,
}

fn rustup_toolchain(name: &str) -> Option<RustupToolchain> {
    let rustup_home = files::home_dir("RUSTUP_HOME", ".rustup")?;
    let cargo_home = files::home_dir("CARGO_HOME", ".cargo")?;
    Some(RustupToolchain {
        dir: rustup_home.join("toolchains").join(name),
        rustup_home,
        cargo_home,
    })
}

fn rustup_command(name: &str, tool: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", name, tool]);
    cmd
}

/// Runs a command and returns its stdout, or an error carrying its stderr.
pub(crate) fn run_capture(cmd: &mut Command) -> Result<String, ToolchainError> {
    let command = describe(cmd);
    let out = cmd.output().map_err(|source| ToolchainError::Spawn {
        command: command.clone(),
        source,
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(ToolchainError::Failed { command, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A command line as a user would type it, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
