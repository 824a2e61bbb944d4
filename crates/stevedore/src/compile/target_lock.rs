//! One stevedore build at a time per cargo target dir, from cargo's start until the binaries
//! are read into layers. Cargo locks its target dir only while it runs: once it exits, another
//! build in the same dir with other flags (`--no-auditable`, other features) may rewrite
//! `target/TRIPLE/release/BIN` before this build has read it, and its image would ship the
//! other binary. A file lock (std's: flock(2) on Linux and macOS, LockFileEx on Windows), so a
//! run that dies (even by SIGKILL) releases it.

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
    if !exclusive(&file, Wait::No).map_err(failed)? {
        tracing::info!(
            "waiting for another stevedore build in {} to read its binaries",
            target_dir.display()
        );
        exclusive(&file, Wait::Yes).map_err(failed)?;
    }
    Ok(TargetLock { _file: file })
}

/// Whether taking a lock waits for its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    Yes,
    No,
}

/// An exclusive lock on `file`; `false` when another open file holds it and `wait` says not to
/// wait. Also the pinned zig's fetch lock (`zig.rs`).
pub(super) fn exclusive(file: &File, wait: Wait) -> std::io::Result<bool> {
    loop {
        let result = match wait {
            Wait::Yes => file.lock(),
            Wait::No => match file.try_lock() {
                Ok(()) => Ok(()),
                Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
                Err(std::fs::TryLockError::Error(e)) => Err(e),
            },
        };
        match result {
            Ok(()) => return Ok(true),
            // A signal's handler ran while flock(2) waited; std does not try again itself.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
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
        assert!(!exclusive(&other, Wait::No).unwrap(), "held by the first");
        drop(first);
        assert!(
            exclusive(&other, Wait::No).unwrap(),
            "free once the first is done"
        );
    }
}
