//! Where the scripts cargo runs for a compile live (zig wrappers, the workspace wrapper, the
//! rustc shim, the std cache): `toolchain`'s tools dir, with the target dir as the last resort;
//! and where zig keeps its cache.

use std::path::PathBuf;

use crate::plan::Plan;
pub(super) use crate::toolchain::files::{
    content_name, env_path, set_mode, shell_quote, write_executable, write_file,
};
use crate::toolchain::files::{user_cache_dir, user_cache_root};

/// The tools dir (`toolchain::files::tools_dir`) of a compile, which always has one: the
/// target dir's when nothing else can be written.
pub(super) fn tools_dir(plan: &Plan) -> PathBuf {
    crate::toolchain::files::tools_dir(Some(&plan.target_dir))
        .expect("a target dir is the last resort")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::files::tools_dir_from;
    use std::path::Path;

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
            tools_dir_from(env(&writable, Some(&cache)), Some(&target)).unwrap(),
            writable.join(".cache/stevedore/tools"),
            "the user's cache, whatever STEVEDORE_CACHE_DIR says"
        );
        assert_eq!(
            tools_dir_from(env(&unwritable, Some(&cache)), Some(&target)).unwrap(),
            cache.join("tools")
        );
        assert_eq!(
            tools_dir_from(env(&unwritable, None), Some(&target)),
            Some(target.join("stevedore"))
        );
        assert_eq!(tools_dir_from(env(&unwritable, None), None), None);
        // zig's global cache likewise, where zig would not look by itself.
        assert_eq!(zig_cache_dir(env(&writable, Some(&cache))), None);
        assert_eq!(
            zig_cache_dir(env(&unwritable, Some(&cache))),
            Some(cache.join("zig"))
        );
    }
}
