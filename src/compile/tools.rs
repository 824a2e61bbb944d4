//! Where the scripts cargo runs for a compile live (zig wrappers, the workspace wrapper, the
//! rustc shim, the std cache), and how they are written: at paths that do not move between
//! builds, by temp file and rename.

use std::path::{Path, PathBuf};

use crate::plan::Plan;

/// Where the helper scripts cargo runs (zig wrappers, the rustc shim) live, at paths named by
/// their content. Cargo rebuilds everything, std included, when the linker's path changes,
/// and compile caches hash it, so the path must not depend on the target dir or the checkout.
/// `STEVEDORE_TOOLS_DIR`, else the user's cache (`~/.cache/stevedore/tools`). Not under
/// `STEVEDORE_CACHE_DIR` by default: a build with another blob cache (a test's, a CI job's)
/// would name another linker and `rustc`, and cargo would rebuild std and every crate for it.
pub(super) fn tools_dir(plan: &Plan) -> PathBuf {
    tools_dir_from(env_path, &plan.target_dir)
}

/// An environment variable that names a path, unless empty.
pub(super) fn env_path(name: &str) -> Option<PathBuf> {
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
pub(super) fn zig_cache_dir(var: impl Fn(&str) -> Option<PathBuf>) -> Option<PathBuf> {
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
pub(super) fn content_name(prefix: &str, scripts: &[&str]) -> String {
    let digest = crate::digest::Digest::of(scripts.concat().as_bytes());
    format!("{prefix}-{}", &digest.hex()[..16])
}

pub(super) fn write_executable(path: &Path, content: &str) -> std::io::Result<()> {
    write_file(path, content.as_bytes(), 0o755)
}

/// Writes `bytes` to `path` with `mode`, by temp file and rename so a reader (a cargo of
/// another build) never sees half a file; nothing when the file already holds them.
pub(super) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
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

pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
