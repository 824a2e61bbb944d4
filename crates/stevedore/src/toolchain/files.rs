//! Where stevedore keeps the small files cargo's helpers need (the rustc shim, zig wrappers,
//! kept answers), and how they are written: at paths that do not move between builds, by temp
//! file and rename.

use std::path::{Path, PathBuf};

/// Where the helper scripts cargo runs (zig wrappers, the rustc shim) live, at paths named by
/// their content. Cargo rebuilds everything, std included, when the linker's path changes,
/// and compile caches hash it, so the path must not depend on the target dir or the checkout.
/// `STEVEDORE_TOOLS_DIR`, else the user's cache (`~/.cache/stevedore/tools`). Not under
/// `STEVEDORE_CACHE_DIR` by default: a build with another blob cache (a test's, a CI job's)
/// would name another linker and `rustc`, and cargo would rebuild std and every crate for it.
/// When neither can be written, `$STEVEDORE_CACHE_DIR/tools`, else `target_dir/stevedore`
/// when a target dir is known, else none.
pub(crate) fn tools_dir(target_dir: Option<&Path>) -> Option<PathBuf> {
    tools_dir_from(env_path, target_dir)
}

/// An environment variable that names a path, unless empty.
pub(crate) fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A home directory as rustup and cargo find it: `$VAR` (`RUSTUP_HOME`, `CARGO_HOME`), else
/// `DEFAULT` in `$HOME` (`.rustup`, `.cargo`).
pub(crate) fn home_dir(var: &str, default: &str) -> Option<PathBuf> {
    env_path(var).or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(default)))
}

/// [`tools_dir`] from the variables `var` names.
pub(crate) fn tools_dir_from(
    var: impl Fn(&str) -> Option<PathBuf>,
    target_dir: Option<&Path>,
) -> Option<PathBuf> {
    var(crate::env::TOOLS_DIR)
        .or_else(|| user_cache_dir(&var, "stevedore/tools", "tools"))
        .or_else(|| target_dir.map(|t| t.join("stevedore")))
}

/// `NAME` in the user's cache (`$XDG_CACHE_HOME`, else `~/.cache`), or `FALLBACK` in
/// `$STEVEDORE_CACHE_DIR` when the user's cannot be written: a service user's HOME often
/// cannot (`/nonexistent` for `nobody`, which `docker run --user 65534` and `sudo -u nobody`
/// give), and then the one variable the blob cache needs serves the rest too.
pub(crate) fn user_cache_dir(
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
pub(crate) fn user_cache_root(var: impl Fn(&str) -> Option<PathBuf>) -> Option<PathBuf> {
    var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|p| p.join(".cache")))
}

/// Whether `dir` is, or can be made, a directory that takes new files.
fn writable(dir: &Path) -> bool {
    std::fs::create_dir_all(dir).is_ok() && tempfile::tempfile_in(dir).is_ok()
}

/// A directory name for scripts, from their content.
pub(crate) fn content_name(prefix: &str, scripts: &[&str]) -> String {
    let digest = crate::digest::Digest::of(scripts.concat().as_bytes());
    format!("{prefix}-{}", &digest.hex()[..16])
}

pub(crate) fn write_executable(path: &Path, content: &str) -> std::io::Result<()> {
    write_file(path, content.as_bytes(), 0o755)
}

/// Writes `bytes` to `path` with `mode`, by temp file and rename so a reader (a cargo of
/// another build) never sees half a file; nothing when the file already holds them.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), bytes)?;
    set_mode(tmp.path(), mode)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Sets a file's unix `mode` (tempfile makes 0600; scripts must run, answers may be shared).
#[cfg(unix)]
pub(crate) fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Nothing: Windows has no mode bits (whether a file runs is its extension's business, and a
/// new file takes its directory's ACL).
#[cfg(not(unix))]
pub(crate) fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
