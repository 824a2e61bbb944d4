//! Stage 3: the application layer, a deterministic tar.gz written straight into the blob store.
//!
//! One pass hashes the tar (its diff_id, the layer cache's key) while another compresses it,
//! so the cores never wait for the hash: bytes flow tar → tally (a CRC-32 that checks this pass
//! wrote the tar the other hashed) → gzip or zstd → hash (digest) → temporary file → rename,
//! unless the hash finds the layer in the store, which stops the compression. The layer is
//! never held in memory and never read back to learn its digests. Gzip runs on every core
//! ([`gzip`]) with output that does not depend on the number of cores.

mod gzip;
mod known;
mod tally;
mod zst;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::cache::{BlobStore, CacheError};
use crate::digest::{Digest, HashingWriter};
use crate::oci::Compression;
use tally::{Stoppable, Sum, Tally};

/// The nonroot user distroless defines, and the default user of every image.
pub const NONROOT_UID: u64 = 65532;
/// Where the pinned CA bundle goes, and what `SSL_CERT_FILE` points at.
pub const CA_BUNDLE_PATH: &str = "etc/ssl/certs/ca-certificates.crt";
/// The directory that holds the application binary (on the default PATH).
pub const BIN_DIR: &str = "usr/local/bin";

/// The accounts every image has: distroless's, added to a base's own where it lacks them.
const PASSWD: [&str; 3] = [
    "root:x:0:0:root:/root:/sbin/nologin",
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin",
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin",
];
const GROUP: [&str; 3] = ["root:x:0:", "nobody:x:65534:", "nonroot:x:65532:"];

/// The version of how stevedore turns a layer's tar into a blob (compression, chunking,
/// level). Layer records are kept per version: bump it with any change to those bytes.
/// 2: zstd in 4 MiB jobs (`layer/zst.rs`).
pub const FORMAT_VERSION: u32 = 2;

/// A layer blob in the store, with the two digests an image needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// Digest of the compressed blob (what manifests name).
    pub digest: Digest,
    /// Size of the compressed blob, in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar (what the config's rootfs names).
    pub diff_id: Digest,
    /// How the blob is compressed (records written before zstd existed are gzip).
    #[serde(default)]
    pub compression: Compression,
}

/// Why the application layer cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// A file to put in the image (the binary, or one of the settings' `files`) cannot be
    /// read.
    #[error("cannot read {path} to put it in the image")]
    Source {
        /// The file on this machine.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A path in the image (the field) is empty or has `.`, `..` or empty components.
    #[error("`{0}` cannot be a path in the image: use a relative path of plain components")]
    BadPath(String),
    /// The layer's tar cannot be written.
    #[error("cannot make the layer's tar")]
    Tar(#[source] io::Error),
    /// The blob store failed while the layer was compressed into it, or its record written.
    #[error(transparent)]
    Store(#[from] CacheError),
}

/// What one entry of the layer holds.
#[derive(Debug, Clone)]
enum Content {
    Dir,
    Bytes(Vec<u8>),
    File(PathBuf),
}

#[derive(Debug, Clone)]
struct Entry {
    content: Content,
    mode: u32,
    uid: u64,
}

/// The files of an application layer, kept sorted by path so the tar is the same every time.
#[derive(Debug, Clone, Default)]
pub struct LayerSpec {
    entries: BTreeMap<String, Entry>,
}

impl LayerSpec {
    /// The application layer: the binary, nonroot's home and `/tmp`. Nothing in it depends on
    /// the base, so a new base leaves it the same blob ([`LayerSpec::accounts`] has the rest).
    pub fn application(binary: &Path, name: &str) -> Result<Self, LayerError> {
        let mut spec = LayerSpec::default();
        spec.file(&format!("{BIN_DIR}/{name}"), binary, 0o755)?;
        spec.dir("home/nonroot", 0o700, NONROOT_UID)?;
        spec.dir("tmp", 0o1777, 0)?;
        Ok(spec)
    }

    /// What the image needs that the base lacks, as a layer of its own below the
    /// application's: root, nobody and nonroot added to the base's own `/etc/passwd` and
    /// `/etc/group` (written whole, the base's entries first; an account is added when
    /// neither its name nor its id is there), and the pinned CA bundle when the base has
    /// none. `None` when the base has it all, as distroless does.
    pub(crate) fn accounts(base: &BaseFiles) -> Result<Option<Self>, LayerError> {
        let mut spec = LayerSpec::default();
        if let Some(passwd) = with_accounts(base.passwd.as_deref(), &PASSWD) {
            spec.bytes("etc/passwd", passwd.into_bytes(), 0o644)?;
        }
        if let Some(group) = with_accounts(base.group.as_deref(), &GROUP) {
            spec.bytes("etc/group", group.into_bytes(), 0o644)?;
        }
        if base.ca_bundle.is_none() {
            spec.bytes(CA_BUNDLE_PATH, ca_bundle(), 0o644)?;
        }
        Ok((!spec.entries.is_empty()).then_some(spec))
    }

    /// Adds the file at `source` as `path` (relative, root-owned) with `mode`.
    pub fn file(&mut self, path: &str, source: &Path, mode: u32) -> Result<(), LayerError> {
        self.insert(
            path,
            Entry {
                content: Content::File(source.to_path_buf()),
                mode,
                uid: 0,
            },
        )
    }

    /// Adds `bytes` as the file `path` (relative, root-owned) with `mode`.
    pub fn bytes(&mut self, path: &str, bytes: Vec<u8>, mode: u32) -> Result<(), LayerError> {
        self.insert(
            path,
            Entry {
                content: Content::Bytes(bytes),
                mode,
                uid: 0,
            },
        )
    }

    /// Adds the directory `path` with `mode`, owned by `uid` (and the same gid).
    pub fn dir(&mut self, path: &str, mode: u32, uid: u64) -> Result<(), LayerError> {
        self.insert(
            path,
            Entry {
                content: Content::Dir,
                mode,
                uid,
            },
        )
    }

    /// Adds an entry and any missing parent directories (root-owned, 0755).
    fn insert(&mut self, path: &str, entry: Entry) -> Result<(), LayerError> {
        let clean = clean_path(path)?;
        let mut parent = String::new();
        for component in clean.split('/').take(clean.matches('/').count()) {
            parent.push_str(component);
            parent.push('/');
            self.entries.entry(parent.clone()).or_insert(Entry {
                content: Content::Dir,
                mode: 0o755,
                uid: 0,
            });
        }
        let key = match entry.content {
            Content::Dir => format!("{clean}/"),
            _ => clean,
        };
        self.entries.insert(key, entry);
        Ok(())
    }

    /// Writes the layer into `store`, every entry stamped with `mtime`, unless the store already
    /// holds it: then the cost is nothing when its sources are the files it was made from, else
    /// one pass of hashing (the tar's digest, which covers every byte and setting of the layer)
    /// and the start of a compression that the hash stops.
    pub fn write(
        &self,
        store: &BlobStore,
        mtime: u64,
        compression: Compression,
    ) -> Result<Layer, LayerError> {
        // Read before the sources are: what is hashed after it is at least as new.
        let key = known::key(self, mtime);
        if let Some(diff_id) = key.as_deref().and_then(|k| known::diff_id(store, k)) {
            if let Some(layer) = cached(store, &diff_id, compression)? {
                tracing::info!(
                    "layer cache hit (sources unchanged): {diff_id} is {}",
                    layer.digest
                );
                return Ok(layer);
            }
        }
        let layer = self.hash_while_compressing(store, mtime, compression)?;
        // Only when no source changed while it was read.
        if let Some(key) = key.filter(|k| known::key(self, mtime).as_ref() == Some(k)) {
            known::remember(store, &key, &layer.diff_id);
        }
        Ok(layer)
    }

    /// Hashes the tar (the cache's key) on another thread while this one compresses it into
    /// `store`, so the cores never wait for the hash: when the store turns out to hold the
    /// layer, the compression is stopped and dropped; otherwise what was compressed is filed,
    /// once its tally shows it is the tar that was hashed.
    fn hash_while_compressing(
        &self,
        store: &BlobStore,
        mtime: u64,
        compression: Compression,
    ) -> Result<Layer, LayerError> {
        let (tell, told) = std::sync::mpsc::channel();
        let (hashed, compressed) = std::thread::scope(|scope| {
            let hashing = scope.spawn(move || {
                let hashed = self.diff_id(mtime).and_then(|(diff_id, sum)| {
                    Ok((diff_id.clone(), sum, cached(store, &diff_id, compression)?))
                });
                // The compression goes on only for a layer the store lacks.
                let _ = tell.send(!matches!(hashed, Ok((_, _, None))));
                hashed
            });
            let compressed = self.compress(store, compression, |out, unreadable| {
                let out =
                    self.tar_into(Tally::new(Stoppable::new(out, &told)), mtime, unreadable)?;
                let (out, sum) = out.finish();
                out.finish()?;
                Ok(sum)
            });
            (hashing.join().expect("hashing does not panic"), compressed)
        });
        let (diff_id, sum, cached) = hashed?;
        if let Some(layer) = cached {
            tracing::info!("layer cache hit: {diff_id} is {}", layer.digest);
            return Ok(layer);
        }
        let (digest, size, diff_id) = match compressed? {
            (digest, size, tallied) if tallied == sum => (digest, size, diff_id),
            // The sources changed while they were read: file what is written now.
            _ => self.compress(store, compression, |out, unreadable| {
                let hashing = self.tar_into(HashingWriter::new(out), mtime, unreadable)?;
                Ok(hashing.finish().1)
            })?,
        };
        let layer = Layer {
            digest,
            size,
            diff_id,
            compression,
        };
        remember(store, &layer)?;
        Ok(layer)
    }

    /// The digest of the layer's tar, and its tally, without compressing or storing anything.
    fn diff_id(&self, mtime: u64) -> Result<(Digest, Sum), LayerError> {
        let mut unreadable = None;
        let hashed = (|| {
            let tally = self.tar_into(
                Tally::new(HashingWriter::new(io::sink())),
                mtime,
                &mut unreadable,
            )?;
            let (hashing, sum) = tally.finish();
            let (_, digest, _) = hashing.finish();
            Ok((digest, sum))
        })();
        hashed.map_err(|e| unreadable.unwrap_or(LayerError::Tar(e)))
    }

    /// Writes the layer's compressed tar into `store`: `tar_through` writes the tar into the
    /// compressor it is given (through whatever checks it adds) and returns what those found.
    /// Returns the blob's digest and size, and that.
    fn compress<T>(
        &self,
        store: &BlobStore,
        compression: Compression,
        tar_through: impl FnOnce(&mut dyn Write, &mut Option<LayerError>) -> io::Result<T>,
    ) -> Result<(Digest, u64, T), LayerError> {
        let mut found = None;
        let mut unreadable = None;
        let stored = store.put_with("application layer", |out| {
            let through = |compressor: &mut dyn Write| {
                found = Some(tar_through(compressor, &mut unreadable)?);
                Ok::<_, io::Error>(())
            };
            match compression {
                Compression::Gzip => {
                    let mut gz = gzip::GzipWriter::new(out, threads())?;
                    through(&mut gz)?;
                    gz.finish().map(drop)
                }
                Compression::Zstd => {
                    let mut zst = zst::writer(out, threads())?;
                    through(&mut zst)?;
                    zst.finish().map(drop)
                }
            }
        });
        // A source file that cannot be read is the user's problem; say which one.
        let (digest, size) = stored.map_err(|e| unreadable.unwrap_or(e.into()))?;
        Ok((
            digest,
            size,
            found.expect("set whenever the write succeeds"),
        ))
    }

    /// The layer's tar, written through `out`; returns `out`.
    fn tar_into<W: Write>(
        &self,
        out: W,
        mtime: u64,
        unreadable: &mut Option<LayerError>,
    ) -> io::Result<W> {
        let mut tar = tar::Builder::new(out);
        self.append_all(&mut tar, mtime, unreadable)?;
        tar.into_inner()
    }

    /// Appends every entry in path order. A source file that cannot be read goes to
    /// `unreadable` (with its path) and ends the tar with a summary error.
    fn append_all<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        mtime: u64,
        unreadable: &mut Option<LayerError>,
    ) -> io::Result<()> {
        for (path, entry) in &self.entries {
            append(tar, path, entry, mtime).map_err(|e| match e {
                AppendError::Io(e) => e,
                AppendError::Source(path, source) => {
                    let summary = io::Error::new(source.kind(), source.to_string());
                    *unreadable = Some(LayerError::Source { path, source });
                    summary
                }
            })?;
        }
        Ok(())
    }
}

/// Where layer records live in the store: one per diff_id, naming the compressed blob. The
/// bucket carries [`FORMAT_VERSION`], so a new compression format never reuses old blobs.
fn bucket() -> String {
    format!("layers-v{FORMAT_VERSION}")
}

fn record_name(diff_id: &Digest, compression: Compression) -> String {
    format!("{}.{compression}.json", diff_id.hex())
}

/// The layer the store already holds for `diff_id`: its record names a blob that is there and
/// intact (a corrupt one is removed and the layer made again).
fn cached(
    store: &BlobStore,
    diff_id: &Digest,
    compression: Compression,
) -> Result<Option<Layer>, LayerError> {
    let Some(bytes) = store.record(&bucket(), &record_name(diff_id, compression)) else {
        return Ok(None);
    };
    let Ok(layer) = serde_json::from_slice::<Layer>(&bytes) else {
        tracing::warn!("ignoring an unreadable layer record for {diff_id}");
        return Ok(None);
    };
    let intact = &layer.diff_id == diff_id
        && layer.compression == compression
        && store.size(&layer.digest) == Some(layer.size)
        && store.verified(&layer.digest)?;
    Ok(intact.then_some(layer))
}

fn remember(store: &BlobStore, layer: &Layer) -> Result<(), LayerError> {
    let record = serde_json::to_vec(layer).expect("a layer serializes");
    store.put_record(
        &bucket(),
        &record_name(&layer.diff_id, layer.compression),
        &record,
    )?;
    Ok(())
}

/// One compression worker per core; the bytes are the same whatever this returns.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

enum AppendError {
    Io(io::Error),
    Source(PathBuf, io::Error),
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    entry: &Entry,
    mtime: u64,
) -> Result<(), AppendError> {
    let mut header = tar::Header::new_ustar();
    header.set_mode(entry.mode);
    header.set_uid(entry.uid);
    header.set_gid(entry.uid);
    header.set_mtime(mtime);
    // Empty names keep the tar free of whatever user database built it.
    header.set_username("").map_err(AppendError::Io)?;
    header.set_groupname("").map_err(AppendError::Io)?;
    match &entry.content {
        Content::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, path, io::empty())
                .map_err(AppendError::Io)
        }
        Content::Bytes(bytes) => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(bytes.len() as u64);
            tar.append_data(&mut header, path, bytes.as_slice())
                .map_err(AppendError::Io)
        }
        Content::File(source) => {
            let fail = |e| AppendError::Source(source.clone(), e);
            let file = File::open(source).map_err(fail)?;
            let len = file.metadata().map_err(fail)?.len();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(len);
            // take() keeps the entry exactly as long as its header says, even if the file grows.
            tar.append_data(&mut header, path, file.take(len))
                .map_err(AppendError::Io)
        }
    }
}

fn clean_path(path: &str) -> Result<String, LayerError> {
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    let ok = !trimmed.is_empty()
        && trimmed
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(LayerError::BadPath(path.to_owned()))
    }
}

/// What a base holds of what every image needs: its account files and where its CA bundle
/// is (read from its layers; all `None` for no base at all).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseFiles {
    /// `/etc/passwd`, as the base has it.
    pub passwd: Option<String>,
    /// `/etc/group`, as the base has it.
    pub group: Option<String>,
    /// Where the base's CA bundle is (`etc/ssl/certs/ca-certificates.crt`, …), if it has one.
    pub ca_bundle: Option<String>,
}

impl BaseFiles {
    /// The CA bundle `SSL_CERT_FILE` names: the base's own, else the one stevedore adds.
    pub fn ca_bundle_path(&self) -> &str {
        self.ca_bundle.as_deref().unwrap_or(CA_BUNDLE_PATH)
    }
}

/// `file` (passwd or group lines) with each of `ours` appended whose name and id (the first
/// and third fields) it has neither of; `None` when it lacks none.
fn with_accounts(file: Option<&str>, ours: &[&str]) -> Option<String> {
    let file = file.unwrap_or_default();
    let fields = |line: &str| {
        let mut f = line.split(':');
        (f.next().map(str::to_owned), f.nth(1).map(str::to_owned))
    };
    let (names, ids): (Vec<_>, Vec<_>) = file.lines().map(fields).unzip();
    let missing: Vec<&str> = ours
        .iter()
        .filter(|line| {
            let (name, id) = fields(line);
            !names.contains(&name) && !ids.contains(&id)
        })
        .copied()
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut merged = file.to_owned();
    if !merged.is_empty() && !merged.ends_with('\n') {
        merged.push('\n');
    }
    for line in missing {
        merged.push_str(line);
        merged.push('\n');
    }
    Some(merged)
}

/// The crate the CA bundle comes from, pinned exactly in Cargo.toml (a test keeps the two
/// equal), for the SBOM.
pub const CA_BUNDLE_CRATE: (&str, &str) = ("webpki-root-certs", "1.0.11");

/// Mozilla's root certificates as PEM, from the `webpki-root-certs` crate pinned in Cargo.toml,
/// so the bundle depends on stevedore's version and not on the build machine.
pub fn ca_bundle() -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pem = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = b64.encode(cert.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_bundle_crate_version_is_the_pinned_one() {
        let manifest = include_str!("../../../Cargo.toml");
        let (name, version) = CA_BUNDLE_CRATE;
        assert!(
            manifest.contains(&format!("{name} = \"={version}\"")),
            "Cargo.toml must pin {name} to exactly {version}"
        );
    }

    fn build(store_dir: &Path, binary: &Path, mtime: u64) -> Layer {
        let store = BlobStore::open(store_dir).unwrap();
        LayerSpec::application(binary, "app")
            .unwrap()
            .write(&store, mtime, Compression::Gzip)
            .unwrap()
    }

    #[test]
    fn same_inputs_same_digests() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("app");
        std::fs::write(&binary, b"\x7fELF not really").unwrap();
        let a = build(&dir.path().join("a"), &binary, 1_700_000_000);
        let b = build(&dir.path().join("b"), &binary, 1_700_000_000);
        assert_eq!(a, b);
        let later = build(&dir.path().join("c"), &binary, 1_700_000_001);
        assert_ne!(a.diff_id, later.diff_id, "mtime is part of the layer");
    }

    #[test]
    fn the_compressing_pass_tallies_the_tar_the_hashing_pass_saw_and_a_rewrite_shows() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("app");
        std::fs::write(&binary, b"\x7fELF as hashed").unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let spec = LayerSpec::application(&binary, "app").unwrap();
        let (diff_id, sum) = spec.diff_id(1).unwrap();
        let tallied = |compression| {
            let through = |out: &mut dyn Write, unreadable: &mut Option<LayerError>| {
                Ok(spec.tar_into(Tally::new(out), 1, unreadable)?.finish().1)
            };
            spec.compress(&store, compression, through).unwrap().2
        };
        for compression in [Compression::Gzip, Compression::Zstd] {
            assert_eq!(tallied(compression), sum);
        }
        // As if the binary had been rewritten between the passes: the tallies differ, so
        // `hash_while_compressing` compresses again, hashing what it writes.
        std::fs::write(&binary, b"\x7fELF rewritten").unwrap();
        assert_ne!(tallied(Compression::Gzip), sum);
        let layer = spec.write(&store, 1, Compression::Gzip).unwrap();
        assert_eq!(layer.diff_id, spec.diff_id(1).unwrap().0);
        assert_ne!(layer.diff_id, diff_id);
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn a_second_build_of_the_same_binary_is_a_cache_hit() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("app");
        std::fs::write(&binary, b"\x7fELF version 1").unwrap();
        let store_dir = dir.path().join("store");
        let first = build(&store_dir, &binary, 1_700_000_000);
        let store = BlobStore::open(&store_dir).unwrap();
        let blob = store.path(&first.digest);
        let written = inode(&blob);

        let again = build(&store_dir, &binary, 1_700_000_000);
        assert_eq!(again, first);
        // Compressing again would have renamed a new file into place.
        assert_eq!(inode(&blob), written, "the layer was compressed again");

        std::fs::write(&binary, b"\x7fELF version 2").unwrap();
        let changed = build(&store_dir, &binary, 1_700_000_000);
        assert_ne!(changed.diff_id, first.diff_id);
        assert_ne!(changed.digest, first.digest);
    }

    #[test]
    fn a_corrupt_cached_layer_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("app");
        std::fs::write(&binary, b"\x7fELF").unwrap();
        let store_dir = dir.path().join("store");
        let first = build(&store_dir, &binary, 0);
        let blob = BlobStore::open(&store_dir).unwrap().path(&first.digest);
        let mut bytes = std::fs::read(&blob).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&blob, bytes).unwrap();

        let again = build(&store_dir, &binary, 0);
        assert_eq!(again, first);
        assert_eq!(
            Digest::of(&std::fs::read(&blob).unwrap()),
            first.digest,
            "the corrupt blob must be replaced by a good one"
        );
    }

    #[test]
    fn rejects_escaping_paths() {
        let mut spec = LayerSpec::default();
        for bad in ["../etc/passwd", "a/../../b", "", "/", "a//b"] {
            assert!(
                spec.bytes(bad, Vec::new(), 0o644).is_err(),
                "{bad} accepted"
            );
        }
        spec.bytes("/etc/motd", Vec::new(), 0o644).unwrap();
        let keys: Vec<&str> = spec.entries.keys().map(String::as_str).collect();
        assert_eq!(keys, ["etc/", "etc/motd"]);
    }

    /// The files of the accounts layer, by path.
    fn accounts_of(base: &BaseFiles) -> Option<BTreeMap<String, String>> {
        let spec = LayerSpec::accounts(base).unwrap()?;
        let files = spec
            .entries
            .into_iter()
            .filter_map(|(path, entry)| match entry.content {
                Content::Bytes(bytes) => Some((path, String::from_utf8(bytes).unwrap())),
                _ => None,
            });
        Some(files.collect())
    }

    #[test]
    fn a_base_with_nonroot_and_a_ca_bundle_needs_no_accounts_layer() {
        let distroless = BaseFiles {
            passwd: Some(PASSWD.join("\n") + "\n"),
            group: Some("root:x:0:\ntty:x:5:\nnobody:x:65534:\nnonroot:x:65532:\n".into()),
            ca_bundle: Some(CA_BUNDLE_PATH.into()),
        };
        assert_eq!(accounts_of(&distroless), None);
        assert_eq!(distroless.ca_bundle_path(), CA_BUNDLE_PATH);
    }

    #[test]
    fn a_base_s_own_accounts_come_first_and_only_what_it_lacks_is_added() {
        let alpine = BaseFiles {
            passwd: Some(
                "root:x:0:0:root:/root:/bin/sh\nbin:x:1:1:bin:/bin:/sbin/nologin\n\
                 nobody:x:65534:65534:nobody:/:/sbin/nologin"
                    .into(),
            ),
            group: Some("root:x:0:root\nnogroup:x:65533:\nnobody:x:65534:\n".into()),
            ca_bundle: Some("etc/ssl/cert.pem".into()),
        };
        let files = accounts_of(&alpine).unwrap();
        assert_eq!(
            files["etc/passwd"],
            "root:x:0:0:root:/root:/bin/sh\nbin:x:1:1:bin:/bin:/sbin/nologin\n\
             nobody:x:65534:65534:nobody:/:/sbin/nologin\n\
             nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
        );
        assert_eq!(
            files["etc/group"],
            "root:x:0:root\nnogroup:x:65533:\nnobody:x:65534:\nnonroot:x:65532:\n"
        );
        assert!(
            !files.contains_key(CA_BUNDLE_PATH),
            "the base's bundle stays"
        );
        assert_eq!(alpine.ca_bundle_path(), "etc/ssl/cert.pem");
    }

    #[test]
    fn an_account_whose_name_or_id_the_base_has_is_not_added_twice() {
        let base = BaseFiles {
            // 65532 taken under another name; `nobody` under another id.
            passwd: Some("root:x:0:0::/:/bin/false\nnobody:x:99:99::/:/bin/false\napp:x:65532:65532::/:/bin/false\n".into()),
            group: Some("root:x:0:\nnobody:x:99:\napp:x:65532:\n".into()),
            ca_bundle: Some(CA_BUNDLE_PATH.into()),
        };
        assert_eq!(accounts_of(&base), None);
    }

    #[test]
    fn no_base_gets_distroless_s_accounts_and_the_pinned_bundle() {
        let files = accounts_of(&BaseFiles::default()).unwrap();
        assert_eq!(files["etc/passwd"], PASSWD.join("\n") + "\n");
        assert_eq!(files["etc/group"], GROUP.join("\n") + "\n");
        assert_eq!(files[CA_BUNDLE_PATH].as_bytes(), ca_bundle());
        assert_eq!(BaseFiles::default().ca_bundle_path(), CA_BUNDLE_PATH);
    }

    #[test]
    fn ca_bundle_is_pem() {
        let pem = String::from_utf8(ca_bundle()).unwrap();
        assert!(pem.matches("-----BEGIN CERTIFICATE-----").count() > 100);
    }
}
