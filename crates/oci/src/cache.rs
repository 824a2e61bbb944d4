//! A content-addressed blob store on disk (`<root>/blobs/sha256/<hex>`).
//!
//! Blobs enter only through a temporary file in the same directory that is renamed into place
//! once its digest is known and checked, so a reader never sees a partial blob and concurrent
//! runs that store the same blob simply race to an identical rename.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingWriter, VerifyingReader};
use crate::env;

/// What can go wrong with the blob store.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Neither the cache variable nor HOME says where the cache is.
    #[error("cannot find a cache directory: set {} or HOME", env::CACHE_DIR)]
    NoCacheDir,
    /// The cache directory cannot be made (a HOME the user cannot write, as a service user's
    /// often is).
    #[error(
        "cannot use cache directory {path}: set {var} to a directory you can write",
        var = env::CACHE_DIR
    )]
    Create {
        /// The directory.
        path: PathBuf,
        /// The file system's error.
        #[source]
        source: io::Error,
    },
    /// A blob (or record) could not be written, or its content did not check out.
    #[error("cannot write blob {what} into the cache at {path}")]
    Write {
        /// What was being stored: a digest, or a name for it.
        what: String,
        /// The directory written to.
        path: PathBuf,
        /// The error of the write, or of the stream written (a failed digest check included).
        #[source]
        source: io::Error,
    },
    /// A stored blob could not be read.
    #[error("cannot read blob {digest} from the cache at {path}")]
    Read {
        /// The blob.
        digest: Digest,
        /// Where it should be.
        path: PathBuf,
        /// The file system's error.
        #[source]
        source: io::Error,
    },
    /// A stored blob read whole is larger than such a document may be.
    #[error(
        "the blob {digest} in the cache is {size} bytes, more than the {max} bytes stevedore \
         reads of a manifest or config: the digest that names it does not name an image \
         document a build can use"
    )]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The most read.
        max: u64,
    },
}

/// Content-addressed storage for blobs (layers, configs, manifests).
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let root = root.into();
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|source| CacheError::Create {
            path: blobs.clone(),
            source,
        })?;
        sweep_temporaries(&blobs);
        Ok(BlobStore { root })
    }

    /// The user's cache: `$STEVEDORE_CACHE_DIR`, else `$XDG_CACHE_HOME/stevedore`, else
    /// `~/.cache/stevedore`.
    pub fn open_default() -> Result<Self, CacheError> {
        Self::open(default_root().ok_or(CacheError::NoCacheDir)?)
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (whether or not it is there).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// The size of the stored blob, if it is here.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.path(digest)).ok().map(|m| m.len())
    }

    /// Whether a blob of this digest is stored (unchecked: see [`BlobStore::verified`]).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Whether the blob is here and intact. A corrupt copy (a disk error, a stray edit) is
    /// removed, so it is fetched again instead of being built into an image.
    pub fn verified(&self, digest: &Digest) -> Result<bool, CacheError> {
        let path = self.path(digest);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(CacheError::Read {
                    digest: digest.clone(),
                    path,
                    source,
                })
            }
        };
        let mut hasher = HashingWriter::new(io::sink());
        io::copy(&mut file, &mut hasher).map_err(|source| CacheError::Read {
            digest: digest.clone(),
            path: path.clone(),
            source,
        })?;
        let (_, actual, _) = hasher.finish();
        if &actual == digest {
            return Ok(true);
        }
        tracing::warn!("the cached blob {digest} is corrupt (it hashes to {actual}); removing it");
        let _ = fs::remove_file(&path);
        Ok(false)
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, CacheError> {
        let path = self.path(digest);
        File::open(&path).map_err(|source| CacheError::Read {
            digest: digest.clone(),
            path,
            source,
        })
    }

    /// Reads a small blob (a manifest or config) whole, if it is at most `max` bytes: a
    /// blob's digest says nothing of its size, and a pinned digest may name a stranger's.
    pub fn read_small(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, CacheError> {
        let path = self.path(digest);
        let read = |source| CacheError::Read {
            digest: digest.clone(),
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(read)?;
        let size = file.metadata().map_err(read)?.len();
        if size > max {
            return Err(CacheError::TooLarge {
                digest: digest.clone(),
                size,
                max,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(max).read_to_end(&mut bytes).map_err(read)?;
        Ok(bytes)
    }

    /// Stores the stream `content` under `expected`, failing (and keeping nothing) unless the
    /// bytes match the digest and, when given, the size.
    pub fn put_verified(
        &self,
        expected: &Digest,
        size: Option<u64>,
        content: impl Read,
    ) -> Result<u64, CacheError> {
        let mut reader = VerifyingReader::new(content, expected.clone(), size);
        let (digest, written) =
            self.put_with(expected.as_str(), |w| io::copy(&mut reader, w).map(drop))?;
        debug_assert_eq!(&digest, expected);
        Ok(written)
    }

    /// Stores a small blob held in memory and returns its digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, CacheError> {
        let digest = Digest::of(bytes);
        if !self.contains(&digest) {
            self.put_with(digest.as_str(), |w| w.write_all(bytes))?;
        }
        Ok(digest)
    }

    /// A small record filed under `bucket/name` (see [`BlobStore::put_record`]), or `None` when
    /// there is none or it cannot be read: a record only saves work, so losing one is harmless.
    pub fn record(&self, bucket: &str, name: &str) -> Option<Vec<u8>> {
        fs::read(self.root.join(bucket).join(name)).ok()
    }

    /// Files a small record that names blobs by something other than their own digest (a layer
    /// by the digest of its uncompressed tar), as `<root>/<bucket>/<name>`. Written like a blob,
    /// through a temporary file renamed into place, so a reader sees a whole record or none and
    /// concurrent writers of the same record leave one of their identical copies.
    pub fn put_record(&self, bucket: &str, name: &str, bytes: &[u8]) -> Result<(), CacheError> {
        let dir = self.root.join(bucket);
        let fail = |source| CacheError::Write {
            what: format!("record {bucket}/{name}"),
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(fail)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(fail)?;
        tmp.write_all(bytes).map_err(fail)?;
        tmp.as_file().sync_data().map_err(fail)?;
        tmp.persist(dir.join(name)).map_err(|e| fail(e.error))?;
        Ok(())
    }

    /// Stores whatever `produce` writes, naming it by the digest of those bytes.
    pub fn put_with(
        &self,
        what: &str,
        produce: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(Digest, u64), CacheError> {
        let dir = self.root.join("blobs").join("sha256");
        let fail = |source| CacheError::Write {
            what: what.to_owned(),
            path: dir.clone(),
            source,
        };
        let tmp = locked_temporary(&dir).map_err(fail)?;
        let mut writer = HashingWriter::new(io::BufWriter::new(tmp));
        produce(&mut writer).map_err(fail)?;
        let (buffered, digest, size) = writer.finish();
        let tmp = buffered.into_inner().map_err(|e| fail(e.into_error()))?;
        tmp.as_file().sync_data().map_err(fail)?;
        // Blobs are shared read-only content; tempfile's private 0600 would leak into layouts.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644)).map_err(fail)?;
        }
        tmp.persist(self.path(&digest)).map_err(|e| fail(e.error))?;
        Ok((digest, size))
    }
}

/// A new temporary file for a blob, locked for as long as it is open. A run that dies, even by
/// SIGKILL, drops its locks, so the next run can tell its leftovers from another live run's
/// files in progress (`sweep_temporaries`).
fn locked_temporary(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    loop {
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)?;
        // Between creating and locking, a sweep may take the file for a dead run's and unlink
        // it: then it is no longer at its path, and a new one is made.
        if try_lock(tmp.as_file())? && still_linked(&tmp)? {
            return Ok(tmp);
        }
    }
}

/// Whether the file `tmp` holds still has a name, its own.
#[cfg(unix)]
fn still_linked(tmp: &tempfile::NamedTempFile) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(tmp.as_file().metadata()?.nlink() > 0)
}

/// Whether the file `tmp` holds still has a name, its own. Std has no stable link count off
/// unix; the path is checked instead: a removed file is gone from it (or, on Windows, pending
/// deletion, which refuses to be opened), and names are random, so no other file takes it.
#[cfg(not(unix))]
fn still_linked(tmp: &tempfile::NamedTempFile) -> io::Result<bool> {
    Ok(fs::symlink_metadata(tmp.path()).is_ok())
}

const TEMP_PREFIX: &str = ".tmp-";

/// Removes the temporary files of runs that died: the ones no live process holds locked.
fn sweep_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        // Held while removing, so its writer cannot come back to life in between; a writer that
        // already renamed its file into place leaves nothing at this path to remove.
        if try_lock(&file).unwrap_or(false) && fs::remove_file(&path).is_ok() {
            tracing::debug!("removed {}, left by a run that died", path.display());
        }
    }
}

/// An exclusive lock without waiting (flock(2) on Linux, LockFileEx on Windows): `false` when
/// another open file holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The user's cache directory (see [`BlobStore::open_default`]), if one can be named.
pub(crate) fn default_root() -> Option<PathBuf> {
    let from_env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from_env(env::CACHE_DIR)
        .or_else(|| from_env("XDG_CACHE_HOME").map(|p| p.join("stevedore")))
        .or_else(|| from_env("HOME").map(|p| p.join(".cache").join("stevedore")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_digest_and_rejects_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = store.put_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(store.read_small(&d, 5).unwrap(), b"hello");
        // A blob larger than the reader's cap is refused, not read.
        assert!(matches!(
            store.read_small(&d, 4),
            Err(CacheError::TooLarge {
                size: 5,
                max: 4,
                ..
            })
        ));

        let wrong = Digest::of(b"other");
        assert!(store.put_verified(&wrong, Some(5), &b"hello"[..]).is_err());
        assert!(!store.contains(&wrong));
        let leftovers = fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count();
        assert_eq!(
            leftovers, 1,
            "a failed write must leave no temporary file behind"
        );
    }

    #[test]
    fn open_sweeps_a_dead_runs_temporaries_but_not_a_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let blobs = dir.path().join("blobs/sha256");
        // A dead run's file: nobody holds its lock.
        fs::write(blobs.join(".tmp-dead"), b"half a blob").unwrap();
        // A live run's file, locked as put_with locks it.
        let live = locked_temporary(&blobs).unwrap();
        BlobStore::open(dir.path()).unwrap();
        assert!(
            !blobs.join(".tmp-dead").exists(),
            "a dead run's leftover is swept"
        );
        assert!(live.path().exists(), "a live run's file is left alone");
        drop(live);
        let d = store.put_bytes(b"after the sweep").unwrap();
        assert!(store.verified(&d).unwrap());
    }

    #[test]
    fn records_are_whole_or_absent() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        assert_eq!(store.record("layers-v1", "a.json"), None);
        store.put_record("layers-v1", "a.json", b"{}").unwrap();
        store
            .put_record("layers-v1", "a.json", b"{\"x\":1}")
            .unwrap();
        assert_eq!(store.record("layers-v1", "a.json").unwrap(), b"{\"x\":1}");
        let names: Vec<_> = fs::read_dir(dir.path().join("layers-v1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.json"], "no temporary file may stay behind");
    }

    #[test]
    fn a_corrupt_blob_is_not_verified_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = store.put_bytes(b"layer bytes").unwrap();
        assert!(store.verified(&d).unwrap());
        fs::write(store.path(&d), b"layer bytez").unwrap();
        assert!(!store.verified(&d).unwrap());
        assert!(
            !store.contains(&d),
            "a corrupt blob must not stay in the cache"
        );
        assert!(!store.verified(&Digest::of(b"absent")).unwrap());
    }
}
