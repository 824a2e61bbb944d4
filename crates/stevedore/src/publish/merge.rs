//! `index create`: one multi-platform index from per-platform images already in a registry
//! (built on native runners), without pulling their layers.

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest, MediaType};

use super::PublishError;
use crate::assemble::index_document;
use crate::cache::BlobStore;
use crate::digest::Digest;
use crate::oci::limits;
use crate::oci::media::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError};

/// Why `index create` cannot make one index of the images given.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// An image is on another registry than the index.
    #[error("{source_ref} is on {source_registry}, but the index goes to {target_registry}: index create links images within one registry")]
    OtherRegistry {
        /// The image.
        source_ref: String,
        /// Its registry.
        source_registry: String,
        /// The index's registry.
        target_registry: String,
    },
    #[error("{reference} is a `{media_type}`, not a single-platform image manifest")]
    /// A reference names an index or something else, not one platform's manifest.
    NotAnImage {
        /// The reference.
        reference: String,
        /// What it names.
        media_type: String,
    },
    #[error(
        "{reference} and {other} are both {platform} images: an index holds one image per platform"
    )]
    /// Two images are for the same platform.
    SamePlatform {
        /// One image.
        reference: String,
        /// The other.
        other: String,
        /// Their platform.
        platform: String,
    },
    #[error("{what} of {reference} cannot be read")]
    /// A manifest or config is not the JSON it should be.
    Json {
        /// Which document.
        what: &'static str,
        /// The image.
        reference: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
}

/// Builds the index over `sources` and pushes it as `target`; returns `REPO@DIGEST`.
pub fn create_index(
    target: &Reference,
    sources: &[Reference],
    registry: &Registry,
    store: &BlobStore,
) -> Result<Reference, PublishError> {
    let fail = |reference: &Reference| {
        let name = reference.name();
        move |source: RegistryError| PublishError::Registry {
            reference: name,
            source,
        }
    };
    let mut entries: Vec<(Descriptor, BTreeMap<String, String>, Platform, &Reference)> = Vec::new();
    for source in sources {
        if source.registry() != target.registry() {
            return Err(MergeError::OtherRegistry {
                source_ref: source.to_string(),
                source_registry: source.registry().into(),
                target_registry: target.registry().into(),
            }
            .into());
        }
        let fetched = registry.fetch_manifest(source).map_err(fail(source))?;
        let (digest, media_type, bytes) = (fetched.digest, fetched.media_type, fetched.bytes);
        if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
            return Err(MergeError::NotAnImage {
                reference: source.to_string(),
                media_type,
            }
            .into());
        }
        let manifest: ImageManifest = parse(&bytes, "manifest", source)?;
        let platform = platform_of(&manifest, source, registry, store)?;
        if let Some((_, _, _, other)) = entries.iter().find(|(_, _, p, _)| p == &platform) {
            return Err(MergeError::SamePlatform {
                reference: source.to_string(),
                other: other.to_string(),
                platform: platform.to_string(),
            }
            .into());
        }
        link_into(
            target,
            source,
            &manifest,
            &digest,
            &media_type,
            &bytes,
            registry,
        )
        .map_err(fail(target))?;
        let mut desc = Descriptor::new(
            MediaType::from(media_type.as_str()),
            bytes.len() as u64,
            digest.to_oci(),
        );
        desc.set_platform(Some(platform.to_oci()));
        let annotations = manifest
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        entries.push((desc, annotations, platform, source));
    }
    let annotations: Vec<BTreeMap<String, String>> = entries.iter().map(|e| e.1.clone()).collect();
    let bytes = index_document(entries.into_iter().map(|e| e.0).collect(), &annotations);
    let identifier = target
        .tag()
        .map(str::to_owned)
        .unwrap_or_else(|| Digest::of(&bytes).to_string());
    registry
        .put_manifest(target, &identifier, OCI_INDEX, &bytes)
        .map_err(fail(target))?;
    Ok(target.with_digest(Digest::of(&bytes)))
}

/// The platform an image was built for, from its config (a small blob).
fn platform_of(
    manifest: &ImageManifest,
    source: &Reference,
    registry: &Registry,
    store: &BlobStore,
) -> Result<Platform, PublishError> {
    let config_desc = manifest.config();
    let digest = Digest::try_from(config_desc.digest()).map_err(|_| MergeError::NotAnImage {
        reference: source.to_string(),
        media_type: "a non-sha256 config".into(),
    })?;
    let registry_error = |e| PublishError::Registry {
        reference: source.name(),
        source: e,
    };
    let size = limits::CONFIG
        .check(Some(config_desc.size()), &source.to_string())
        .map_err(|e| registry_error(e.into()))?;
    registry
        .fetch_blob(source, &digest, size, store)
        .map_err(registry_error)?;
    let bytes = store.read_small(&digest, limits::CONFIG.max)?;
    let config: ImageConfiguration = parse(&bytes, "config", source)?;
    let architecture = config.architecture().to_string();
    let variant = match (architecture.as_str(), config.variant()) {
        ("arm64", None) => Some("v8".to_owned()),
        (_, v) => v.clone(),
    };
    Ok(Platform {
        os: config.os().to_string(),
        architecture,
        variant,
    })
}

/// Makes the image present in the target repository: blobs mounted, manifest put by digest.
fn link_into(
    target: &Reference,
    source: &Reference,
    manifest: &ImageManifest,
    digest: &Digest,
    media_type: &str,
    bytes: &[u8],
    registry: &Registry,
) -> Result<(), RegistryError> {
    if source.repository() != target.repository() {
        for desc in std::iter::once(manifest.config()).chain(manifest.layers()) {
            let Ok(blob) = Digest::try_from(desc.digest()) else {
                continue;
            };
            if !registry.blob_exists(target, &blob)?
                && !registry.mount_blob(target, &blob, source)?
            {
                return Err(RegistryError::Status {
                    method: "POST".into(),
                    url: target.name(),
                    status: 202,
                    code: None,
                    detail: format!(
                        " (the registry would not mount {blob} from {})",
                        source.name()
                    ),
                    hint: String::new(),
                });
            }
        }
    }
    registry
        .put_manifest(target, digest.as_str(), media_type, bytes)
        .map(drop)
}

fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    reference: &Reference,
) -> Result<T, MergeError> {
    serde_json::from_slice(bytes).map_err(|source| MergeError::Json {
        what,
        reference: reference.to_string(),
        source,
    })
}
