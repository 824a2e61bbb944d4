//! rustc's answers that depend only on the executable and the question (`-vV`, `--print
//! sysroot`, `--print cfg --target T`), kept on disk: each build asks them, and each rustc
//! start costs about 40 ms, most of a no-op build's own time. An answer is filed under a hash
//! of the executable's path, size, times and inode and of the question, so an upgraded
//! compiler asks again; only successful answers are kept, and a cache that cannot be written
//! is simply not used.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run_capture, ToolchainError};
use crate::digest::Digest;

/// `cmd` (which starts `exe`) asked `args`: from the file, or run and filed.
pub(super) fn ask(
    exe: Option<&Path>,
    cmd: &mut Command,
    args: &[&str],
) -> Result<String, ToolchainError> {
    ask_checked(exe, cmd, args, |_| true)
}

/// The executable `exe` asked `args`, like [`ask`] (any program whose answer depends on its
/// own file, such as a zig), where an answer kept on disk is used only
/// if `still_true` accepts it.
pub(crate) fn ask_executable(
    exe: &Path,
    args: &[&str],
    still_true: impl Fn(&str) -> bool,
) -> Result<String, ToolchainError> {
    let mut cmd = Command::new(exe);
    crate::env::without_secrets(&mut cmd);
    ask_checked(Some(exe), &mut cmd, args, still_true)
}

fn ask_checked(
    exe: Option<&Path>,
    cmd: &mut Command,
    args: &[&str],
    still_true: impl Fn(&str) -> bool,
) -> Result<String, ToolchainError> {
    ask_in(dir().as_deref(), exe, cmd, args, still_true)
}

/// [`ask_checked`] with the answers kept in `dir`.
fn ask_in(
    dir: Option<&Path>,
    exe: Option<&Path>,
    cmd: &mut Command,
    args: &[&str],
    still_true: impl Fn(&str) -> bool,
) -> Result<String, ToolchainError> {
    let file = dir.zip(exe).and_then(|(dir, exe)| file_for(dir, exe, args));
    let kept = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok());
    if let Some(answer) = kept.filter(|a| still_true(a)) {
        return Ok(answer);
    }
    let answer = run_capture(cmd.args(args))?;
    if let Some(file) = file {
        // Losing an answer costs one rustc start next time, nothing else.
        let _ = keep(&file, &answer);
    }
    Ok(answer)
}

/// `answers` in the tools dir (`files::tools_dir`).
fn dir() -> Option<PathBuf> {
    Some(super::files::tools_dir(None)?.join("answers"))
}

fn file_for(dir: &Path, exe: &Path, args: &[&str]) -> Option<PathBuf> {
    let key = format!("{}\n{}\n{}", exe.display(), identity(exe)?, args.join("\n"));
    Some(dir.join(Digest::of(key.as_bytes()).hex()))
}

/// What tells one executable from another at the same path (an upgrade replaces or rewrites
/// it): its size, modification and change times, and inode.
#[cfg(unix)]
pub(crate) fn identity(exe: &Path) -> Option<String> {
    Some(identity_of(&std::fs::metadata(exe).ok()?))
}

/// [`identity`] of a file whose metadata is at hand.
#[cfg(unix)]
pub(crate) fn identity_of(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{} {}.{} {}.{} {}",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino()
    )
}

/// What tells one executable from another at the same path: its size and modification time
/// (std has no stable change time or file id off unix).
#[cfg(not(unix))]
pub(crate) fn identity(exe: &Path) -> Option<String> {
    let meta = std::fs::metadata(exe).ok()?;
    let modified = meta.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!(
        "{} {}.{}",
        meta.len(),
        since.as_secs(),
        since.subsec_nanos()
    ))
}

/// The sha256 of the running executable (cargo-stevedore, or an xtask linking the library),
/// for the provenance: filed like an answer, as hashing tens of megabytes would cost every
/// build, a no-op one too, about 30 ms.
pub(crate) fn own_digest() -> Option<Digest> {
    let exe = std::env::current_exe().ok()?;
    kept_digest(&exe, "sha256", || {
        let mut hashing = crate::digest::HashingWriter::new(std::io::sink());
        std::io::copy(&mut std::fs::File::open(&exe).ok()?, &mut hashing).ok()?;
        Some(hashing.finish().1)
    })
}

/// The sha256 over a source tree (each file's path below `root`, size and bytes, in path
/// order), filed like an answer under its `Cargo.lock`'s identity: reinstalling the sources
/// replaces that file, and hashing std's sources (69 MB for rustc 1.96) costs a few tenths of a
/// second.
pub(crate) fn tree_digest(root: &Path) -> Option<Digest> {
    kept_digest(&root.join("Cargo.lock"), "tree-sha256", || hash_tree(root))
}

fn hash_tree(root: &Path) -> Option<Digest> {
    let mut files = Vec::new();
    walk(root, &mut files).ok()?;
    files.sort();
    let mut hashing = crate::digest::HashingWriter::new(std::io::sink());
    for path in &files {
        let rel = path.strip_prefix(root).ok()?;
        let bytes = std::fs::read(path).ok()?;
        // Named by components joined with '/', as unix shows them, so the same sources give
        // the same digest on Windows.
        let name: Vec<_> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect();
        let head = format!("{}\0{}\0", name.join("/"), bytes.len());
        std::io::Write::write_all(&mut hashing, head.as_bytes()).ok()?;
        std::io::Write::write_all(&mut hashing, &bytes).ok()?;
    }
    Some(hashing.finish().1)
}

/// A digest filed like an answer under `file`'s identity and `what`: the one kept, else
/// `compute`'s, then kept (losing it costs one more computation, nothing else).
fn kept_digest(
    file: &Path,
    what: &str,
    compute: impl FnOnce() -> Option<Digest>,
) -> Option<Digest> {
    let filed = dir().and_then(|d| file_for(&d, file, &[what]));
    let kept = filed.as_ref().and_then(|f| std::fs::read_to_string(f).ok());
    if let Some(digest) = kept.and_then(|text| text.parse().ok()) {
        return Some(digest);
    }
    let digest = compute()?;
    if let Some(filed) = filed {
        let _ = keep(&filed, digest.as_str());
    }
    Some(digest)
}

/// Every regular file under `dir`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn keep(file: &Path, answer: &str) -> std::io::Result<()> {
    super::files::write_file(file, answer.as_bytes(), 0o644)
}

/// A program (a path, or a name looked up on PATH) as a file.
pub(crate) fn on_path(program: impl Into<OsString>) -> Option<PathBuf> {
    let program = program.into();
    let path = PathBuf::from(&program);
    if path.components().count() > 1 {
        return Some(path);
    }
    // `rustc` is `rustc.exe` on Windows (EXE_SUFFIX is empty on unix).
    let mut names = vec![program.clone()];
    if !std::env::consts::EXE_SUFFIX.is_empty() {
        let mut exe = program;
        exe.push(std::env::consts::EXE_SUFFIX);
        names.push(exe);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|p| p.is_file())
}

/// `rustc` (a path, or a name looked up on PATH) as a file, unless it is a rustup proxy: a
/// hard link to the `rustup` beside it, which stays the same file when the toolchain behind
/// it changes.
pub(super) fn not_a_proxy(rustc: OsString) -> Option<PathBuf> {
    let found = on_path(rustc)?;
    let meta = std::fs::metadata(&found).ok()?;
    let rustup = found.with_file_name(format!("rustup{}", std::env::consts::EXE_SUFFIX));
    let rustup = std::fs::metadata(rustup).ok();
    (!rustup.is_some_and(|r| same_file(&r, &meta))).then_some(found)
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// Std has no stable file id off unix: a file as long as the `rustup` beside it is taken for
/// one of its proxies (hard links or copies), whose answers are then never kept. Mistaking a
/// rustc for a proxy costs a question asked again; the other way, a stale answer.
#[cfg(not(unix))]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.len() == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_per_executable_and_question_and_a_changed_executable_asks_again() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("runs");
        let exe = dir.path().join("rustc");
        let script = |version: &str| {
            format!(
                "#!/bin/sh\necho run >> '{}'\n[ \"$1\" = fail ] && exit 1\necho \"{version} $*\"\n",
                count.display()
            )
        };
        std::fs::write(&exe, script("1")).unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let answers = dir.path().join("answers");
        let ask = |args: &[&str]| {
            ask_in(
                Some(&answers),
                Some(&exe),
                &mut Command::new(&exe),
                args,
                |_| true,
            )
        };
        let runs = || {
            std::fs::read_to_string(&count)
                .unwrap_or_default()
                .lines()
                .count()
        };

        assert_eq!(ask(&["-vV"]).unwrap(), "1 -vV\n");
        assert_eq!(ask(&["-vV"]).unwrap(), "1 -vV\n");
        assert_eq!(runs(), 1);
        assert_eq!(ask(&["--print", "sysroot"]).unwrap(), "1 --print sysroot\n");
        assert_eq!(runs(), 2);
        assert!(ask(&["fail"]).is_err());
        assert!(ask(&["fail"]).is_err());
        assert_eq!(runs(), 4, "a failure is never kept");

        // An upgraded compiler at the same path.
        std::fs::write(&exe, script("2")).unwrap();
        assert_eq!(ask(&["-vV"]).unwrap(), "2 -vV\n");
        assert_eq!(runs(), 5);

        // A kept answer that is no longer true is asked again, and replaced.
        let stale = |answer: &str| !answer.starts_with('2');
        let mut cmd = Command::new(&exe);
        let again = ask_in(Some(&answers), Some(&exe), &mut cmd, &["-vV"], stale).unwrap();
        assert_eq!((again.as_str(), runs()), ("2 -vV\n", 6));
    }

    #[test]
    fn a_rustup_proxy_is_not_an_executable_to_key_on() {
        let dir = tempfile::tempdir().unwrap();
        let rustup = dir.path().join("rustup");
        std::fs::write(&rustup, "").unwrap();
        let proxy = dir.path().join("rustc");
        std::fs::hard_link(&rustup, &proxy).unwrap();
        assert_eq!(not_a_proxy(proxy.into_os_string()), None);
        let other = tempfile::tempdir().unwrap();
        let real = other.path().join("rustc");
        std::fs::write(&real, "").unwrap();
        assert_eq!(not_a_proxy(real.clone().into_os_string()), Some(real));
    }
}
