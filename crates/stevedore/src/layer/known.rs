//! A layer's diff_id known from its sources' file identities, instead of from reading them
//! again: a re-push of an unchanged 100 MB binary otherwise spends most of its time hashing it.
//!
//! A source file is taken as unchanged while its device, inode, size, mtime and ctime are: the
//! kernel sets ctime on every write, rename or chmod, and no call sets it back (git's index
//! trusts the same fields). Two writes within the clock's resolution can leave the same times,
//! so a file changed less than [`SETTLE`] before its identity is read is not trusted, as git
//! re-reads a "racily clean" file. What the key leads to is still only a diff_id: the layer it
//! names is used only if the store holds it intact.

#[cfg(unix)]
use std::time::{Duration, SystemTime};

use super::{Content, LayerSpec, FORMAT_VERSION};
use crate::cache::BlobStore;
use crate::digest::Digest;

/// How long ago a source must have last changed for its identity to be trusted: far above
/// the kernel's clock tick for file times (a few milliseconds).
#[cfg(all(unix, not(test)))]
const SETTLE: Duration = Duration::from_secs(2);
/// Short in tests, which wait it out.
#[cfg(all(unix, test))]
const SETTLE: Duration = Duration::from_millis(100);

/// Where the identities' records live in the store.
fn bucket() -> String {
    format!("layer-identities-v{FORMAT_VERSION}")
}

/// The key over what the layer's tar is made of, its sources by identity; `None` when one of
/// them cannot be read, changed too recently to be trusted, or the host has no inodes.
pub(super) fn key(spec: &LayerSpec, mtime: u64) -> Option<String> {
    let mut text = format!("stevedore layer identity 1\nmtime {mtime}\n");
    for (path, entry) in &spec.entries {
        let content = match &entry.content {
            Content::Dir => "dir".to_owned(),
            Content::Bytes(bytes) => format!("bytes {}", Digest::of(bytes)),
            Content::File(source) => format!("file {} {}", source.display(), identity(source)?),
        };
        text.push_str(&format!(
            "{path} {:o} {} {content}\n",
            entry.mode, entry.uid
        ));
    }
    Some(Digest::of(text.as_bytes()).hex().to_owned())
}

/// The file's device and its identity as rustc's answers are filed under
/// (`toolchain::identity`), once it has settled.
#[cfg(unix)]
fn identity(source: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(source).ok()?;
    let changed = SystemTime::UNIX_EPOCH
        + Duration::new(
            u64::try_from(meta.ctime()).ok()?,
            u32::try_from(meta.ctime_nsec()).ok()?,
        );
    let settled = SystemTime::now()
        .duration_since(changed)
        .is_ok_and(|age| age >= SETTLE);
    settled.then(|| format!("{} {}", meta.dev(), crate::toolchain::identity_of(&meta)))
}

/// Without inodes and ctime there is nothing a file cannot fake: always read it.
#[cfg(not(unix))]
fn identity(_source: &std::path::Path) -> Option<String> {
    None
}

/// The diff_id recorded under `key`.
pub(super) fn diff_id(store: &BlobStore, key: &str) -> Option<Digest> {
    let bytes = store.record(&bucket(), key)?;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

/// Records `diff_id` under `key`. Losing a record costs one hashing pass next time.
pub(super) fn remember(store: &BlobStore, key: &str, diff_id: &Digest) {
    let _ = store.put_record(&bucket(), key, diff_id.to_string().as_bytes());
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::oci::Compression;

    fn settle() {
        std::thread::sleep(SETTLE + Duration::from_millis(50));
    }

    fn write(store: &BlobStore, binary: &std::path::Path) -> crate::layer::Layer {
        LayerSpec::application(binary, "app")
            .unwrap()
            .write(store, 1_700_000_000, Compression::Gzip)
            .unwrap()
    }

    /// A file rewritten with other bytes of the same size, its mtime set back, keeps its
    /// device, inode, size and mtime: only ctime tells, and the layer is hashed again.
    #[test]
    fn a_rewritten_file_with_its_old_mtime_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let binary = dir.path().join("app");
        std::fs::write(&binary, b"\x7fELF version 1").unwrap();
        let spec = LayerSpec::application(&binary, "app").unwrap();
        assert_eq!(key(&spec, 1), None, "a file just written is not trusted");
        settle();
        let first = write(&store, &binary);
        let k = key(&spec, 1_700_000_000).expect("a settled file has a key");
        assert_eq!(diff_id(&store, &k), Some(first.diff_id.clone()));
        assert_eq!(write(&store, &binary), first, "known from the identity");

        let mtime = std::fs::metadata(&binary).unwrap().modified().unwrap();
        std::fs::write(&binary, b"\x7fELF version 2").unwrap();
        let file = std::fs::File::options().write(true).open(&binary).unwrap();
        file.set_modified(mtime).unwrap();
        drop(file);
        settle();
        assert_ne!(key(&spec, 1_700_000_000), Some(k), "ctime moved");
        let second = write(&store, &binary);
        assert_ne!(second.diff_id, first.diff_id);
        // And the new identity now leads to the new layer.
        let k2 = key(&spec, 1_700_000_000).unwrap();
        assert_eq!(diff_id(&store, &k2), Some(second.diff_id));
    }
}
