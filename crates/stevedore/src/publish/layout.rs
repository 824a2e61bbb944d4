//! The OCI image layout: `oci-layout`, `index.json` and `blobs/sha256/`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use oci_spec::image::{ImageIndex, MediaType};

use super::{image_blobs, io_err, parent_dir, PublishError};
use crate::assemble::Built;
use crate::cache::BlobStore;
use crate::digest::Digest;
use crate::oci::{canonical_json, Descriptor};
use crate::reference::Reference;
use crate::source::REF_NAME;

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Writes `built` into the layout at `dir`, creating it, or adding to an existing layout
/// (entries with the same tag are replaced).
pub fn write_layout(
    dir: &Path,
    built: &Built,
    tags: &[Reference],
    store: &BlobStore,
) -> Result<(), PublishError> {
    if dir.exists() {
        let is_empty_dir = fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !dir.join("oci-layout").is_file() && !is_empty_dir {
            return Err(PublishError::NotALayout {
                path: dir.to_path_buf(),
            });
        }
        return fill(dir, built, tags, store);
    }
    // A new layout is built beside its final place and appears whole with one rename.
    let staging = tempfile::Builder::new()
        .prefix(".stevedore-layout-")
        .tempdir_in(parent_dir(dir)?)
        .map_err(io_err(dir))?;
    share(staging.path(), 0o755).map_err(io_err(dir))?;
    fill(staging.path(), built, tags, store)?;
    fs::rename(staging.path(), dir).map_err(io_err(dir))?;
    // The directory moved; nothing is left for the guard to remove.
    let _ = staging.keep();
    Ok(())
}

fn fill(
    dir: &Path,
    built: &Built,
    tags: &[Reference],
    store: &BlobStore,
) -> Result<(), PublishError> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    for image in &built.images {
        for (digest, size) in image_blobs(image) {
            copy_blob(store, &digest, size, &blobs)?;
        }
    }
    let top = built.top().clone();
    if built.images.len() > 1 {
        copy_blob(store, built.index.digest(), built.index.size(), &blobs)?;
    }
    for referrer in &built.referrers {
        for blob in referrer.blobs.iter().chain([&referrer.manifest]) {
            copy_blob(store, blob.digest(), blob.size(), &blobs)?;
        }
    }
    for tagged in &built.tagged {
        for blob in tagged.blobs.iter().chain([&tagged.manifest]) {
            copy_blob(store, blob.digest(), blob.size(), &blobs)?;
        }
    }
    write_atomic(&dir.join("oci-layout"), OCI_LAYOUT)?;
    let mut index = merged_index(dir, &top, tags)?;
    add_referrers(&mut index, built);
    add_tagged(&mut index, built);
    // index.json is the commit point: until it is renamed in, the new image is not visible.
    write_atomic(&dir.join("index.json"), &canonical_json(&index))
}

fn merged_index(
    dir: &Path,
    top: &Descriptor,
    tags: &[Reference],
) -> Result<ImageIndex, PublishError> {
    let path = dir.join("index.json");
    let mut index = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<ImageIndex>(&bytes).map_err(|source| {
            PublishError::BadIndex {
                path: path.clone(),
                source,
            }
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => empty_index(),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let names: Vec<String> = ref_names(tags);
    let mut manifests: Vec<_> = index
        .manifests()
        .iter()
        .filter(|d| {
            !d.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .is_some_and(|n| names.contains(n))
        })
        .cloned()
        .collect();
    for (name, tag) in names
        .iter()
        .zip(tags.iter().map(Some).chain(std::iter::repeat(None)))
    {
        let mut annotations = BTreeMap::from([(REF_NAME.to_owned(), name.clone())]);
        if let Some(tag) = tag {
            annotations.insert(CONTAINERD_NAME.to_owned(), tag.to_string());
        }
        manifests.push((&top.clone().with_annotations(annotations)).into());
    }
    index.set_manifests(manifests);
    Ok(index)
}

/// Lists each image's artifacts (its SBOM) in index.json, where OCI 1.1 tools look for
/// referrers in a layout: untagged, with their `artifactType`, each once.
fn add_referrers(index: &mut ImageIndex, built: &Built) {
    let mut manifests = index.manifests().clone();
    for referrer in &built.referrers {
        if !manifests
            .iter()
            .any(|m| m.digest().as_ref() == referrer.manifest.digest().as_str())
        {
            manifests.push((&referrer.manifest).into());
        }
    }
    index.set_manifests(manifests);
}

/// Lists cosign's signatures and attestations under their `sha256-<hex>.sig`/`.att` names, as
/// `cosign save` does, replacing entries of the same name.
/// A layout names entries by tag alone, so only the first repository's set goes in.
fn add_tagged(index: &mut ImageIndex, built: &Built) {
    let first = built.tagged.first().map(|t| t.repository.as_str());
    let tagged: Vec<_> = built
        .tagged
        .iter()
        .filter(|t| Some(t.repository.as_str()) == first)
        .collect();
    let name_of = |d: &oci_spec::image::Descriptor| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .cloned()
    };
    let mut manifests: Vec<_> = index
        .manifests()
        .iter()
        .filter(|d| name_of(d).is_none_or(|n| !tagged.iter().any(|t| t.tag == n)))
        .cloned()
        .collect();
    for tagged in tagged {
        let entry = tagged
            .manifest
            .clone()
            .with_annotations(BTreeMap::from([(REF_NAME.to_owned(), tagged.tag.clone())]));
        manifests.push((&entry).into());
    }
    index.set_manifests(manifests);
}

/// The layout names for the tags: their tag part (what `skopeo … oci:DIR:NAME` takes).
fn ref_names(tags: &[Reference]) -> Vec<String> {
    let mut names: Vec<String> = tags
        .iter()
        .map(|t| t.tag().unwrap_or("latest").to_owned())
        .collect();
    if names.is_empty() {
        names.push("latest".to_owned());
    }
    names.dedup();
    names
}

fn empty_index() -> ImageIndex {
    let mut index = ImageIndex::default();
    index.set_schema_version(2);
    index.set_media_type(Some(MediaType::ImageIndex));
    index.set_manifests(Vec::new());
    index
}

/// Puts a blob from the store into `blobs`, by hard link when possible. A blob already there
/// is kept only if its size is right, so a stray partial file is never trusted.
pub(super) fn copy_blob(
    store: &BlobStore,
    digest: &Digest,
    size: u64,
    blobs: &Path,
) -> Result<(), PublishError> {
    let dest = blobs.join(digest.hex());
    if fs::metadata(&dest).is_ok_and(|m| m.len() == size) {
        return Ok(());
    }
    let source = store.path(digest);
    let tmp = blobs.join(format!(".tmp-{}-{}", digest.hex(), std::process::id()));
    let _ = fs::remove_file(&tmp);
    if fs::hard_link(&source, &tmp).is_err() {
        fs::copy(&source, &tmp).map_err(io_err(&dest))?;
    }
    fs::rename(&tmp, &dest).map_err(io_err(&dest))
}

/// Gives what tempfile made private (0600, 0700) the `mode` of a layout others read.
#[cfg(unix)]
fn share(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Nothing: Windows has no mode bits, and what tempfile makes there takes its directory's ACL.
#[cfg(not(unix))]
fn share(_: &Path, _: u32) -> io::Result<()> {
    Ok(())
}

pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(path))?;
    io::Write::write_all(&mut tmp, bytes).map_err(io_err(path))?;
    share(tmp.path(), 0o644).map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}
