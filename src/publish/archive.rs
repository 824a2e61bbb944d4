//! The `docker load` tarball: `manifest.json` naming a config and its layers, laid out like
//! `docker save` (Docker 25+) writes it, so it is also an OCI layout archive.

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
    let mut index_entry = image.manifest.clone();
    index_entry.set_annotations(tags.first().map(|t| {
        [("io.containerd.image.name".to_owned(), t.to_string())]
            .into_iter()
            .collect()
    }));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [index_entry],
    });
    append(&mut tar, "index.json", &canonical_json(&index), mtime).map_err(io_err(file))?;
    let entry = ManifestEntry {
        config: blob_path(&Digest::try_from(image.config.digest()).expect("sha256 config")),
        repo_tags: tags.iter().map(ToString::to_string).collect(),
        layers: image
            .layers
            .iter()
            .map(|l| blob_path(&Digest::try_from(l.digest()).expect("sha256 layer")))
            .collect(),
    };
    append(&mut tar, "manifest.json", &canonical_json(&[entry]), mtime).map_err(io_err(file))?;
    let tmp = tar
        .into_inner()
        .and_then(|w| w.into_inner().map_err(io::IntoInnerError::into_error))
        .map_err(io_err(file))?;
    tmp.as_file().sync_data().map_err(io_err(file))?;
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
