//! One stevedore build at a time per cargo target dir, from cargo's start until the binaries
//! are read into layers. Cargo locks its target dir only while it runs: once it exits, another
//! build in the same dir with other flags (`--no-auditable`, other features) may rewrite
//! `target/TRIPLE/release/BIN` before this build has read it, and its image would ship the
//! other binary. flock(2), so a run that dies (even by SIGKILL) releases it.

use std::fs::File;
use std::path::Path;

use super::CompileError;

/// Held while a build compiles and layers its binaries; released on drop.
pub(crate) struct TargetLock {
    _file: File,
}

/// Waits for any other stevedore build in `target_dir`, then holds the dir's build lock.
pub(crate) fn lock(target_dir: &Path) -> Result<TargetLock, CompileError> {
    let dir = target_dir.join("stevedore");
    let path = dir.join(".build.lock");
    let failed = |source| CompileError::TargetLock {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(failed)?;
    if !flock(&file, libc::LOCK_NB).map_err(failed)? {
        tracing::info!(
            "waiting for another stevedore build in {} to read its binaries",
            target_dir.display()
        );
        flock(&file, 0).map_err(failed)?;
    }
    Ok(TargetLock { _file: file })
}

/// An exclusive flock (`extra`: `LOCK_NB` not to wait); `false` when another holds it. Also
/// the pinned zig's fetch lock (`zig.rs`).
pub(super) fn flock(file: &File, extra: i32) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock(2) on a descriptor this File owns.
        match unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | extra) } {
            0 => return Ok(true),
            _ => match std::io::Error::last_os_error() {
                e if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                e if e.kind() == std::io::ErrorKind::Interrupted => {}
                e => return Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_build_in_the_same_target_dir_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        let path = dir.path().join("stevedore/.build.lock");
        let other = File::options().write(true).open(&path).unwrap();
        assert!(!flock(&other, libc::LOCK_NB).unwrap(), "held by the first");
        drop(first);
        assert!(
            flock(&other, libc::LOCK_NB).unwrap(),
            "free once the first is done"
        );
    }
}
