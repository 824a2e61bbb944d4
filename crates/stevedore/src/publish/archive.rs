//! The `docker load` tarball: `manifest.json` naming a config and its layers, laid out like
//! `docker save` (Docker 25+) writes it, so it is also an OCI layout archive.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use super::{image_blobs, io_err, parent_dir, PublishError};
use crate::assemble::Built;
use crate::cache::BlobStore;
use crate::digest::Digest;
use crate::oci::canonical_json;
use crate::oci::media::OCI_INDEX;
use crate::reference::Reference;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// Writes `built` (one platform) as a tarball at `file`, tagged with `tags`.
pub fn write_archive(
    file: &Path,
    built: &Built,
    tags: &[Reference],
    store: &BlobStore,
) -> Result<(), PublishError> {
    let image = match built.images.as_slice() {
        [only] => only,
        images => {
            let platforms = crate::platform::list(images.iter().map(|i| &i.platform));
            return Err(PublishError::ArchiveMultiPlatform {
                count: images.len(),
                platforms,
            });
        }
    };
    let tmp = tempfile::Builder::new()
        .prefix(".stevedore-archive-")
        .tempfile_in(parent_dir(file)?)
        .map_err(io_err(file))?;
    let mut tar = tar::Builder::new(BufWriter::new(tmp));
    let mtime = 0;
    append(
        &mut tar,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        mtime,
    )
    .map_err(io_err(file))?;
    for (digest, size) in image_blobs(image) {
        append_blob(&mut tar, store, &digest, size, mtime).map_err(io_err(file))?;
    }
    let index_entry = match tags.first() {
        Some(tag) => image.manifest.clone().with_annotations(BTreeMap::from([(
            "io.containerd.image.name".to_owned(),
            tag.to_string(),
        )])),
        None => image.manifest.clone(),
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [index_entry],
    });
    append(&mut tar, "index.json", &canonical_json(&index), mtime).map_err(io_err(file))?;
    let entry = ManifestEntry {
        config: blob_path(image.config.digest()),
        repo_tags: tags.iter().map(ToString::to_string).collect(),
        layers: image.layers.iter().map(|l| blob_path(l.digest())).collect(),
    };
    append(&mut tar, "manifest.json", &canonical_json(&[entry]), mtime).map_err(io_err(file))?;
    finish(tar, file)
}

/// Writes `built` as an OCI layout in one tar (`oci-archive=FILE`): every platform under the
/// index, as `skopeo copy --all oci-archive:FILE`, `podman load` and containerd's
/// `ctr images import` read it. Entries are sorted and dated 0, so equal builds give equal files.
///
/// Its `index.json` names the image alone: podman (containers/image) refuses to load an
/// archive whose index lists more than one manifest, so the referrers (SBOMs, provenance) and
/// cosign's signatures, which a layout lists there, stay out of the archive (they are in
/// layouts and pushed images).
pub fn write_oci_archive(
    file: &Path,
    built: &Built,
    tags: &[Reference],
    store: &BlobStore,
) -> Result<(), PublishError> {
    let parent = parent_dir(file)?;
    let staging = tempfile::Builder::new()
        .prefix(".stevedore-oci-archive-")
        .tempdir_in(&parent)
        .map_err(io_err(file))?;
    let layout = staging.path().join("layout");
    let image_alone = Built {
        referrers: Vec::new(),
        tagged: Vec::new(),
        ..built.clone()
    };
    super::write_layout(&layout, &image_alone, tags, store)?;
    let tmp = tempfile::Builder::new()
        .prefix(".stevedore-archive-")
        .tempfile_in(&parent)
        .map_err(io_err(file))?;
    let mut tar = tar::Builder::new(BufWriter::new(tmp));
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut header = header(0, 0);
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        tar.append_data(&mut header, dir, io::empty())
            .map_err(io_err(file))?;
    }
    for name in layout_files(&layout).map_err(io_err(file))? {
        let source = File::open(layout.join(&name)).map_err(io_err(file))?;
        let size = source.metadata().map_err(io_err(file))?.len();
        let mut header = header(size, 0);
        tar.append_data(&mut header, &name, source)
            .map_err(io_err(file))?;
    }
    finish(tar, file)
}

/// The files of a layout, relative to it and sorted: `blobs/sha256/…`, `index.json`,
/// `oci-layout`.
fn layout_files(layout: &Path) -> io::Result<Vec<String>> {
    let mut names = vec!["index.json".to_owned(), "oci-layout".to_owned()];
    for entry in std::fs::read_dir(layout.join("blobs/sha256"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        names.push(format!("blobs/sha256/{name}"));
    }
    names.sort();
    Ok(names)
}

/// Ends the tar, makes its file readable by all and renames it into place.
fn finish(
    tar: tar::Builder<BufWriter<tempfile::NamedTempFile>>,
    file: &Path,
) -> Result<(), PublishError> {
    let tmp = tar
        .into_inner()
        .and_then(|w| w.into_inner().map_err(io::IntoInnerError::into_error))
        .map_err(io_err(file))?;
    tmp.as_file().sync_data().map_err(io_err(file))?;
    // Windows has no mode bits: a file there takes its directory's ACL.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(io_err(file))?;
    }
    tmp.persist(file).map_err(|e| io_err(file)(e.error))?;
    Ok(())
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
    mtime: u64,
) -> io::Result<()> {
    let mut header = header(bytes.len() as u64, mtime);
    tar.append_data(&mut header, path, bytes)
}

fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    store: &BlobStore,
    digest: &Digest,
    size: u64,
    mtime: u64,
) -> io::Result<()> {
    let file: File = store.open_blob(digest).map_err(io::Error::other)?;
    let mut header = header(size, mtime);
    tar.append_data(&mut header, blob_path(digest), io::Read::take(file, size))
}

fn header(size: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header
}
