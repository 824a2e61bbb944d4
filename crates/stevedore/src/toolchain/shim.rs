//! The `rustc` stevedore gives cargo (for `cargo metadata` and for the build): a shim that
//! remaps the target dir for target crates and answers cargo's rustc queries from files.

use std::path::{Path, PathBuf};

use super::files::{content_name, shell_quote, write_executable};
use super::{Toolchain, ToolchainError, RUSTC};

/// The shim for one rustc, at a path named by its text.
pub(crate) struct Shim {
    pub(crate) path: PathBuf,
    script: String,
}

impl Shim {
    /// The shim in `tools` that runs `toolchain`'s rustc.
    pub(crate) fn of(toolchain: &Toolchain, tools: &Path) -> Result<Shim, ToolchainError> {
        Ok(Shim::new(tools, &toolchain.shimmed_rustc()?))
    }

    /// The shim in `tools` that runs `rustc`.
    fn new(tools: &Path, rustc: &Path) -> Shim {
        let script = shim_script(rustc);
        let path = tools.join(content_name("rustc", &[&script])).join("rustc");
        Shim { path, script }
    }

    /// Writes the shim, unless it is there already.
    pub(crate) fn write(&self) -> std::io::Result<()> {
        write_executable(&self.path, &self.script)
    }
}

impl Toolchain {
    /// The rustc the shim runs: the user's `RUSTC` when no toolchain was named, else the
    /// toolchain's own executable (not a rustup proxy, which would cost a lookup per crate).
    fn shimmed_rustc(&self) -> Result<PathBuf, ToolchainError> {
        if self.rustup_name().is_none() {
            if let Some(rustc) = std::env::var_os("RUSTC").filter(|r| !r.is_empty()) {
                return Ok(PathBuf::from(rustc));
            }
        }
        let exe = self.sysroot()?.join(RUSTC);
        Ok(if exe.is_file() {
            exe
        } else {
            PathBuf::from("rustc")
        })
    }
}

/// The rustc shim's text. Besides the remap, it answers cargo's rustc queries (`-vV`,
/// `--print=file-names`, `--print=target-spec-json`) from files beside it: the build's cargo
/// keeps most answers in its own cache, but `cargo metadata` runs with that cache off (so that
/// it leaves the build's alone), and `-Zbuild-std` asks for target specs outside it. Each rustc
/// start costs about 40 ms. An answer (stdout and stderr, whose warnings cargo reads) is kept
/// for a query that succeeded, under a hash of the arguments and of the rustc executable's
/// identity (`toolchain::identity`), which is written into the script: a changed compiler gets
/// another shim, and asks rustc again. A rustc that cannot be read (found on PATH) gets no
/// answers kept.
fn shim_script(rustc: &Path) -> String {
    let var = crate::env::REMAP_TARGET_DIR;
    let quoted = shell_quote(&rustc.to_string_lossy());
    let answers = match super::identity(rustc) {
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
pub(crate) const TARGET_NAME: &str = "/target";

#[cfg(test)]
mod tests {
    use std::process::Command;

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
