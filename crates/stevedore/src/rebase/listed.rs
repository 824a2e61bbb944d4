//! `rebase -f FILE`: which references of a list name images to rebase, and the binary each
//! was built from. A list written by `--image-refs` names, beside each image, its platforms'
//! manifests and what is attached to it (SBOMs, provenance, signatures, debug symbols); those
//! are passed over, since rebasing the image redoes them.

use std::collections::BTreeSet;

use oci_spec::image::ImageConfiguration;

use super::RebaseError;
use crate::assemble::ANNOTATION_TITLE;
use crate::cache::BlobStore;
use crate::digest::Digest;
use crate::oci::limits;
use crate::oci::media::{DOCKER_LIST, OCI_INDEX};
use crate::registry::Registry;
use crate::source::{ImageSource, Location};
use crate::verify;

/// An image of the list, to be rebased.
#[derive(Debug, Clone)]
pub(crate) struct ListedImage {
    /// Where it is, as listed.
    pub location: Location,
    /// The binary it holds: its config's `org.opencontainers.image.title` label.
    pub bin: String,
}

/// What one reference names, read from its top document alone.
enum Named {
    /// An index: its platforms' manifests are part of it, not images of their own.
    Index { children: Vec<Digest> },
    /// A manifest with image layers.
    Image,
    /// A referrer or a signature: SBOM, provenance, debug symbols, cosign's simple signing.
    Attached,
}

/// The images `locations` name, each once, in the list's order, with their binaries. A
/// platform manifest of a listed index, and every attached artifact, is passed over.
pub(crate) fn images(
    locations: &[Location],
    registry: &Registry,
    store: &BlobStore,
) -> Result<Vec<ListedImage>, RebaseError> {
    let mut tops = Vec::new();
    let mut in_an_index = BTreeSet::new();
    for location in locations {
        let source = ImageSource::new(location.clone(), registry, store);
        let top = source.top()?;
        match named(&top.media_type, &top.bytes) {
            Named::Attached => {
                tracing::info!("{location}: passed over, an attached artifact, not an image");
                continue;
            }
            Named::Index { children } => in_an_index.extend(children),
            Named::Image => {}
        }
        tops.push((location, top.digest));
    }
    let mut seen = BTreeSet::new();
    let mut images = Vec::new();
    for (location, digest) in tops {
        if in_an_index.contains(&digest) {
            tracing::info!("{location}: passed over, one platform of an image listed too");
            continue;
        }
        if seen.insert(digest) {
            let source = ImageSource::new(location.clone(), registry, store);
            let bin = binary(&source)?;
            images.push(ListedImage {
                location: location.clone(),
                bin,
            });
        }
    }
    Ok(images)
}

/// What a top document is, by its media type and fields: an artifact has a `subject` or an
/// `artifactType`, or layers that are not filesystem layers (a signature's).
fn named(media_type: &str, bytes: &[u8]) -> Named {
    let document: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if matches!(media_type, OCI_INDEX | DOCKER_LIST) {
        let children = document["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["digest"].as_str()?.parse().ok())
            .collect();
        return Named::Index { children };
    }
    let filesystem = |layer: &serde_json::Value| {
        layer["mediaType"].as_str().is_some_and(|t| {
            t.starts_with("application/vnd.oci.image.layer.v1.tar")
                || t.starts_with("application/vnd.docker.image.rootfs.diff.tar")
        })
    };
    let layers = document["layers"].as_array();
    let image = document.get("subject").is_none()
        && document.get("artifactType").is_none()
        && layers.is_some_and(|l| !l.is_empty() && l.iter().all(filesystem));
    match image {
        true => Named::Image,
        false => Named::Attached,
    }
}

/// The binary an image was built from, from its (first) platform's config label.
fn binary(source: &ImageSource) -> Result<String, RebaseError> {
    let image = verify::read(source)?;
    let not_ours = |platform: String| RebaseError::NotOurs {
        published: source.location().to_string(),
        platform,
    };
    let Some(first) = image.platforms.first() else {
        return Err(not_ours("any".to_owned()));
    };
    let config = source.small_blob(first.manifest.config(), limits::CONFIG)?;
    let config: ImageConfiguration = source.parse(&config, "the config")?;
    config
        .config()
        .as_ref()
        .and_then(|c| c.labels().as_ref())
        .and_then(|labels| labels.get(ANNOTATION_TITLE))
        .cloned()
        .ok_or_else(|| not_ours(first.platform.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    fn manifest(extra: serde_json::Value, layer_type: &str) -> Vec<u8> {
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json"},
            "layers": [{"mediaType": layer_type}],
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        serde_json::to_vec(&m).unwrap()
    }

    #[test]
    fn images_are_told_from_what_is_attached_to_them() {
        let image = manifest(serde_json::json!({}), LAYER);
        assert!(matches!(named(MANIFEST, &image), Named::Image));
        let sbom = manifest(
            serde_json::json!({"artifactType": "application/spdx+json", "subject": {}}),
            "application/spdx+json",
        );
        assert!(matches!(named(MANIFEST, &sbom), Named::Attached));
        let signature = manifest(
            serde_json::json!({}),
            "application/vnd.dev.cosign.simplesigning.v1+json",
        );
        assert!(matches!(named(MANIFEST, &signature), Named::Attached));
        let digest = format!("sha256:{}", "a".repeat(64));
        let index = serde_json::json!({"manifests": [{"digest": digest}]});
        match named(OCI_INDEX, &serde_json::to_vec(&index).unwrap()) {
            Named::Index { children } => assert_eq!(children, vec![digest.parse().unwrap()]),
            _ => panic!("an index is an index"),
        }
    }
}
