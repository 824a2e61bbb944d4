//! Path remapping: the fixed names the machine's paths, the workspace and the target dir get
//! inside binaries, and how each reaches rustc (rustflags, a workspace wrapper, a rustc shim).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{auditable, content_name, debuginfo, shell_quote, write_executable, CompileError};
use crate::plan::Plan;
use crate::toolchain::{Shim, TARGET_NAME};

/// Where the build's inputs live on this machine, and the fixed names they get inside the
/// binary: paths in panic messages and debug info must not depend on where the checkout is,
/// the user's home or the target dir, or two checkouts of one commit would differ.
///
/// The machine's paths (homes, std sources) go to every crate through rustflags; they are the
/// same for every project, so std and dependencies built in a shared target dir stay valid.
/// The workspace's own path goes only to workspace members, through a
/// `RUSTC_WORKSPACE_WRAPPER` that reads it from the environment: in rustflags it would make a
/// checkout at a new path rebuild std and every dependency, and in the wrapper's text it would
/// give members another `-C metadata` per checkout. The target dir goes to every target crate
/// through a `rustc` shim that reads it from the environment: in flags it would make a compile
/// cache (sccache) miss for every crate of a checkout with another target dir.
#[derive(Debug, Clone)]
pub(super) struct Remaps {
    /// (local prefix, fixed name); rustc applies the last that matches, so more specific last.
    machine: Vec<(PathBuf, String)>,
    target_dir: PathBuf,
    workspace: PathBuf,
}

impl Remaps {
    pub(super) fn for_plan(plan: &Plan) -> Result<Self, CompileError> {
        let dir = crate::toolchain::files::home_dir;
        let sysroot = plan.toolchain.sysroot().map_err(CompileError::Sysroot)?;
        let commit = plan
            .toolchain
            .commit_hash()
            .unwrap_or_else(|| "unknown".into());
        let mut machine = Vec::new();
        if let Some(cargo_home) = dir("CARGO_HOME", ".cargo") {
            machine.push((cargo_home, "/cargo".to_owned()));
        }
        if let Some(rustup_home) = dir("RUSTUP_HOME", ".rustup") {
            machine.push((rustup_home, "/rustup".to_owned()));
        }
        // The name official std builds carry, so std built from source reads the same.
        machine.push((
            sysroot.join("lib/rustlib/src/rust"),
            format!("/rustc/{commit}"),
        ));
        Ok(Remaps {
            machine,
            target_dir: plan.target_dir.clone(),
            workspace: plan.workspace_root.clone(),
        })
    }

    pub(super) fn rustc_flags(&self) -> Vec<String> {
        flags("--remap-path-prefix=", &self.machine)
    }

    /// The machine's map for C compilers: `-ffile-prefix-map` covers `__FILE__` and debug
    /// info. The target dir's and the workspace's are added by the zig `cc` script from the
    /// environment ([`c_remap_script`]): in CFLAGS, which a compile cache hashes, every C file
    /// would miss from a checkout at another path or with another target dir.
    pub(super) fn c_flags(&self) -> Vec<String> {
        flags("-ffile-prefix-map=", &self.machine)
    }

    /// Writes the wrapper that gives workspace members their remap (and the planned binary its
    /// link additions) and points cargo at it, keeping a wrapper the user set (clippy's, say) in
    /// the chain.
    ///
    /// Cargo hashes the wrapper's name as given into members' `-C metadata`, and with it into
    /// their symbol names, which `--split-debuginfo` keeps. So the name must not depend on
    /// the checkout, the target dir or the home: the script reads the workspace's path from
    /// the environment, it lives in `tools` in a directory named by its content, and cargo is
    /// given its bare name with that directory first on PATH.
    pub(super) fn wrap_workspace(
        &self,
        cmd: &mut Command,
        tools: &Path,
        plan: &Plan,
        links: &auditable::Links,
    ) -> Result<(), CompileError> {
        let chained = std::env::var_os("RUSTC_WORKSPACE_WRAPPER")
            .filter(|w| !w.is_empty())
            .map(|w| shell_quote(&w.to_string_lossy()) + " ")
            .unwrap_or_default();
        let var = crate::env::REMAP_WORKSPACE;
        let script = format!(
            "#!/bin/sh\n# Written by stevedore: remaps ${var} to {WORKSPACE_NAME} in what rustc \
             writes for workspace members.\n\
             {}{}if [ -n \"${var}\" ]; then set -- \"$@\" \"--remap-path-prefix=${var}={WORKSPACE_NAME}\"; fi\n\
             exec {chained}\"$@\"\n",
            links.script(&plan.package, &plan.bin),
            debuginfo::wrapper_script(plan),
        );
        let name = format!("stevedore-{}", content_name("rustc-wrapper", &[&script]));
        let dir = tools.join(&name);
        let path = dir.join(&name);
        write_executable(&path, &script).map_err(|source| CompileError::Wrapper {
            path: path.clone(),
            source,
        })?;
        links.write_into(&dir)?;
        let mut search = vec![dir];
        search.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let search = std::env::join_paths(search).map_err(|e| CompileError::Wrapper {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        cmd.env("RUSTC_WORKSPACE_WRAPPER", &name)
            .env("PATH", search)
            .env(var, &self.workspace);
        Ok(())
    }
}

impl Remaps {
    /// Points cargo at a `rustc` that adds the target dir's remap for target crates (those
    /// given `--target`; build scripts and proc macros never reach the image). The shim's text
    /// and path are the same for every target dir, which comes in the environment, so a
    /// compile cache wrapping it (named `rustc`, as sccache requires) keys on neither.
    pub(super) fn shim_rustc(
        &self,
        cmd: &mut Command,
        tools: &Path,
        plan: &Plan,
    ) -> Result<(), CompileError> {
        let shim = Shim::of(&plan.toolchain, tools).map_err(CompileError::Sysroot)?;
        shim.write().map_err(|source| CompileError::Wrapper {
            path: shim.path.clone(),
            source,
        })?;
        // Cargo keeps the shim's answers in the target dir's `.rustc_info.json` too, valid for
        // this rustc and workspace wrapper. `cargo metadata` leaves that file alone: it runs the
        // same shim with cargo's cache off (`plan/cargo.rs`), so a no-op asks no question.
        cmd.env("RUSTC", &shim.path)
            .env(crate::env::REMAP_TARGET_DIR, &self.target_dir);
        Ok(())
    }
}

/// The name the workspace gets inside binaries.
const WORKSPACE_NAME: &str = "/src";

/// Shell lines for a C compiler script, run when it compiles (`-c`, `-E`, `-S`; not when it
/// links): the target dir's and the workspace's `-ffile-prefix-map`, read from the
/// environment the build gives cargo. The target dir comes again after the workspace, which
/// often holds it: the last matching map wins.
pub(super) fn c_remap_script() -> String {
    let (target, workspace) = (crate::env::REMAP_TARGET_DIR, crate::env::REMAP_WORKSPACE);
    let map = |var: &str, to: &str| {
        format!(
            "  if [ -n \"${var}\" ]; then set -- \"$@\" \"-ffile-prefix-map=${var}={to}\"; fi\n"
        )
    };
    format!(
        "case \" $* \" in *\" -c \"*|*\" -E \"*|*\" -S \"*)\n{}{}{};;\nesac\n",
        map(target, TARGET_NAME),
        map(workspace, WORKSPACE_NAME),
        map(target, TARGET_NAME),
    )
}

fn flags(option: &str, pairs: &[(PathBuf, String)]) -> Vec<String> {
    pairs
        .iter()
        .map(|(from, to)| format!("{option}{}={to}", from.display()))
        .collect()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The arguments a script made of [`c_remap_script`] ends with, given `args`.
    fn remapped(args: &[&str]) -> Vec<String> {
        let script = format!("{}printf '%s\\n' \"$@\"\n", c_remap_script());
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("cc")
            .args(args)
            .env(crate::env::REMAP_TARGET_DIR, "/w/target")
            .env(crate::env::REMAP_WORKSPACE, "/w")
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn c_compiles_get_the_target_dir_and_workspace_maps_and_links_none() {
        let maps = [
            "-ffile-prefix-map=/w/target=/target",
            "-ffile-prefix-map=/w=/src",
            "-ffile-prefix-map=/w/target=/target",
        ];
        let compiled = remapped(&["-O2", "-c", "a b.c", "-o", "a.o"]);
        assert_eq!(compiled[..5], ["-O2", "-c", "a b.c", "-o", "a.o"]);
        assert_eq!(compiled[5..], maps);
        assert_eq!(remapped(&["-E", "x.c"])[2..], maps);
        assert_eq!(remapped(&["a.o", "-o", "app"]), ["a.o", "-o", "app"]);
    }
}
