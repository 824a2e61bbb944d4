//! Path remapping: the fixed names the machine's paths, the workspace and the target dir get
//! inside binaries, and how each reaches rustc (rustflags, a workspace wrapper, a rustc shim).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{auditable, content_name, debuginfo, shell_quote, write_executable, CompileError};
use crate::plan::Plan;

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
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let dir = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(default)))
        };
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

    /// The same map for C compilers: `-ffile-prefix-map` covers `__FILE__` and debug info.
    pub(super) fn c_flags(&self) -> Vec<String> {
        let target = (self.target_dir.clone(), TARGET_NAME.to_owned());
        let workspace = (self.workspace.clone(), WORKSPACE_NAME.to_owned());
        // The target dir again after the workspace: it is often inside it.
        let all: Vec<_> = self
            .machine
            .iter()
            .cloned()
            .chain([target.clone(), workspace, target])
            .collect();
        flags("-ffile-prefix-map=", &all)
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
        let script = shim_script(&real_rustc(plan)?);
        let var = crate::env::REMAP_TARGET_DIR;
        let path = tools.join(content_name("rustc", &[&script])).join("rustc");
        write_executable(&path, &script).map_err(|source| CompileError::Wrapper {
            path: path.clone(),
            source,
        })?;
        // The shim answers cargo's rustc queries itself (see `shim_script`); cargo's own cache
        // of them, the target dir's `.rustc_info.json`, is also written by `cargo metadata`
        // (for another rustc), so the two would only overwrite each other's.
        cmd.env("RUSTC", &path)
            .env(var, &self.target_dir)
            .env("CARGO_CACHE_RUSTC_INFO", "0");
        Ok(())
    }
}

/// The rustc shim's text. Besides the remap, it answers cargo's rustc queries (`-vV`,
/// `--print=file-names`, `--print=target-spec-json`) from files beside it. Cargo keeps such
/// answers in `target/.rustc_info.json`, but a no-op build still started rustc five times:
/// `cargo metadata`, asking another rustc, overwrites that file each run, and with
/// `-Zbuild-std` cargo loses its entries anyway. Each start costs about 40 ms. An answer
/// (stdout and stderr, whose warnings cargo reads) is kept for a query that succeeded, under a
/// hash of the arguments and of the rustc executable's identity (`toolchain::identity`), which
/// is written into the script: a changed compiler gets another shim, and asks rustc again. A
/// rustc that cannot be read (found on PATH) gets no answers kept.
fn shim_script(rustc: &Path) -> String {
    let var = crate::env::REMAP_TARGET_DIR;
    let quoted = shell_quote(&rustc.to_string_lossy());
    let answers = match crate::toolchain::identity(rustc) {
        Some(id) => format!(
            "case \" $* \" in *\" -vV \"*|*\" --print=file-names \"*|*\" --print=target-spec-json \"*)\n\
             \x20 d=\"${{0%/*}}/answers\"\n\
             \x20 k=$(printf '%s\\n' \"$@\" '{id}' | sha256sum 2>/dev/null)\n\
             \x20 k=${{k%% *}}\n\
             \x20 if [ -n \"$k\" ] && [ -f \"$d/$k\" ] && [ -f \"$d/$k.err\" ]; then\n\
             \x20   if [ -s \"$d/$k.err\" ]; then cat \"$d/$k.err\" >&2; fi; exec cat \"$d/$k\"\n\
             \x20 fi\n\
             \x20 if [ -n \"$k\" ] && mkdir -p \"$d\" 2>/dev/null; then\n\
             \x20   t=\"$d/.$k.$$\"\n\
             \x20   {quoted} \"$@\" >\"$t\" 2>\"$t.err\"; s=$?\n\
             \x20   cat \"$t\"; cat \"$t.err\" >&2\n\
             \x20   if [ $s = 0 ]; then mv -f \"$t.err\" \"$d/$k.err\" && mv -f \"$t\" \"$d/$k\"; fi\n\
             \x20   rm -f \"$t\" \"$t.err\"; exit $s\n\
             \x20 fi;;\n\
             esac\n"
        ),
        None => String::new(),
    };
    format!(
        "#!/bin/sh\n# Written by stevedore: rustc, with the target dir in ${var} remapped to \
         {TARGET_NAME} for target crates, and cargo's queries answered once.\n\
         if [ -n \"${var}\" ]; then for a do case \"$a\" in --target|--target=*) \
         set -- \"$@\" \"--remap-path-prefix=${var}={TARGET_NAME}\"; break;; esac; done; fi\n\
         {answers}exec {quoted} \"$@\"\n"
    )
}

/// The name the target dir gets inside binaries.
const TARGET_NAME: &str = "/target";
/// The name the workspace gets inside binaries.
const WORKSPACE_NAME: &str = "/src";

/// The rustc the shim runs: the user's `RUSTC` when no toolchain was named, else the
/// toolchain's own executable (not a rustup proxy, which would cost a lookup per crate).
fn real_rustc(plan: &Plan) -> Result<PathBuf, CompileError> {
    if plan.toolchain.rustup_name().is_none() {
        if let Some(rustc) = std::env::var_os("RUSTC").filter(|r| !r.is_empty()) {
            return Ok(PathBuf::from(rustc));
        }
    }
    let sysroot = plan.toolchain.sysroot().map_err(CompileError::Sysroot)?;
    let exe = sysroot.join("bin/rustc");
    Ok(if exe.is_file() {
        exe
    } else {
        PathBuf::from("rustc")
    })
}

fn flags(option: &str, pairs: &[(PathBuf, String)]) -> Vec<String> {
    pairs
        .iter()
        .map(|(from, to)| format!("{option}{}={to}", from.display()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_answers_target_queries_once_and_runs_everything_else() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("runs");
        // A rustc that counts its runs, fails or warns on request, and prints its arguments.
        let rustc = dir.path().join("real-rustc");
        let fake = |extra: &str| {
            format!(
                "#!/bin/sh\n{extra}echo run >> {}\n\
                 [ \"$1\" = fail ] && exit 3\n[ \"$1\" = warn ] && echo warning >&2\n\
                 printf '%s|' \"$@\"\n",
                shell_quote(&count.to_string_lossy())
            )
        };
        write_executable(&rustc, &fake("")).unwrap();
        let shim = dir.path().join("tools/rustc-x/rustc");
        write_executable(&shim, &shim_script(&rustc)).unwrap();
        let runs = || {
            std::fs::read_to_string(&count)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let run = |args: &[&str], target_dir: &str| {
            let out = Command::new(&shim)
                .args(args)
                .env(crate::env::REMAP_TARGET_DIR, target_dir)
                .output()
                .unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (text(&out.stdout), text(&out.stderr), out.status.code())
        };
        let query = [
            "-",
            "--crate-name",
            "___",
            "--print=file-names",
            "--target",
            "x86_64-unknown-linux-musl",
        ];

        let first = run(&query, "/t");
        assert!(
            first
                .0
                .ends_with("--target|x86_64-unknown-linux-musl|--remap-path-prefix=/t=/target|"),
            "{first:?}"
        );
        assert_eq!(run(&query, "/t"), first, "the same answer, from the file");
        assert_eq!(runs(), 1);
        let spec = [
            "--print=target-spec-json",
            "-Zunstable-options",
            "--target",
            "x",
        ];
        run(&spec, "/t");
        run(&spec, "/t");
        assert_eq!(runs(), 2);

        // Another target dir, compiler or query is asked again.
        run(&query, "/other");
        assert_eq!(runs(), 3);
        // stevedore writes the shim again for the changed compiler, as every build does.
        write_executable(&rustc, &fake("# upgraded\n")).unwrap();
        write_executable(&shim, &shim_script(&rustc)).unwrap();
        assert_eq!(run(&query, "/t"), first);
        assert_eq!(runs(), 4);

        // A warning is answered again with the output (cargo reads it); -vV is a query too.
        for _ in 0..2 {
            let warned = run(&["warn", "--print=file-names"], "/t");
            assert_eq!(
                (warned.1.as_str(), warned.0.as_str()),
                ("warning\n", "warn|--print=file-names|")
            );
            assert_eq!(run(&["-vV"], "/t").0, "-vV|");
        }
        assert_eq!(runs(), 6);

        // A rustc that cannot be read (a name found on PATH) gets no answers kept.
        assert!(!shim_script(Path::new("rustc")).contains("answers"));

        // Compiles and failures are never answered from a file.
        for _ in 0..2 {
            assert_eq!(run(&["--crate-name", "app"], "/t").0, "--crate-name|app|");
            assert_eq!(run(&["fail", "--print=file-names"], "/t").2, Some(3));
        }
        assert_eq!(runs(), 10);
    }
}
