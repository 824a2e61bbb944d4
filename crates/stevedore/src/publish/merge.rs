//! `index create`: one multi-platform index from per-platform images (built on native runners),
//! each in the index's registry, or in a layout or archive a runner wrote. Images already in
//! the registry are linked without pulling their layers; those from files are uploaded.

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
use crate::registry::{Manifest, Registry, RegistryError};
use crate::source::{ImageSource, Location, SourceError};

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
    /// An image's layout or archive cannot be read, or a document of it is not what it
    /// should be.
    #[error(transparent)]
    Source(SourceError),
}

/// One platform's image, read.
struct Entry {
    location: Location,
    top: Manifest,
    manifest: ImageManifest,
    platform: Platform,
}

/// Builds the index over `sources` and pushes it as `target`; returns `REPO@DIGEST`.
pub fn create_index(
    target: &Reference,
    sources: &[Location],
    registry: &Registry,
    store: &BlobStore,
) -> Result<Reference, PublishError> {
    let mut entries: Vec<Entry> = Vec::new();
    for location in sources {
        same_registry(location, target)?;
        let source = ImageSource::new(location.clone(), registry, store);
        let entry = read_image(&source)?;
        if let Some(other) = entries.iter().find(|e| e.platform == entry.platform) {
            return Err(MergeError::SamePlatform {
                reference: location.to_string(),
                other: other.location.to_string(),
                platform: entry.platform.to_string(),
            }
            .into());
        }
        link_into(target, &source, &entry, registry, store)?;
        entries.push(entry);
    }
    let annotations: Vec<BTreeMap<String, String>> = entries
        .iter()
        .map(|e| e.manifest.annotations().clone().unwrap_or_default())
        .map(|a| a.into_iter().collect())
        .collect();
    let bytes = index_document(entries.iter().map(descriptor).collect(), &annotations);
    let identifier = target
        .tag()
        .map(str::to_owned)
        .unwrap_or_else(|| Digest::of(&bytes).to_string());
    registry
        .put_manifest(target, &identifier, OCI_INDEX, &bytes)
        .map_err(pushing(target))?;
    Ok(target.with_digest(Digest::of(&bytes)))
}

/// An image in a registry must be in the index's, where its blobs can be mounted.
fn same_registry(location: &Location, target: &Reference) -> Result<(), MergeError> {
    match location.reference() {
        Some(source) if source.registry() != target.registry() => Err(MergeError::OtherRegistry {
            source_ref: source.to_string(),
            source_registry: source.registry().into(),
            target_registry: target.registry().into(),
        }),
        _ => Ok(()),
    }
}

/// The single-platform manifest `source` names, and the platform its config declares.
fn read_image(source: &ImageSource) -> Result<Entry, PublishError> {
    let location = source.location();
    let failed = reading(location);
    let top = source.top().map_err(&failed)?;
    if top.media_type != OCI_MANIFEST && top.media_type != DOCKER_MANIFEST {
        return Err(MergeError::NotAnImage {
            reference: location.to_string(),
            media_type: top.media_type,
        }
        .into());
    }
    let manifest: ImageManifest = source.parse(&top.bytes, "the manifest").map_err(&failed)?;
    let config = source
        .small_blob(manifest.config(), limits::CONFIG)
        .map_err(&failed)?;
    let config: ImageConfiguration = source.parse(&config, "the config").map_err(&failed)?;
    Ok(Entry {
        location: location.clone(),
        top,
        platform: platform_of(&config),
        manifest,
    })
}

/// The platform an image was built for, from its config (a left-out variant is the default
/// one: v8 on arm64, v7 on arm).
fn platform_of(config: &ImageConfiguration) -> Platform {
    let architecture = config.architecture().to_string();
    let variant = match (architecture.as_str(), config.variant()) {
        ("arm64", None) => Some("v8".to_owned()),
        ("arm", None) => Some("v7".to_owned()),
        (_, v) => v.clone(),
    };
    Platform {
        os: config.os().to_string(),
        architecture,
        variant,
    }
}

/// The index's entry for an image.
fn descriptor(entry: &Entry) -> Descriptor {
    let mut desc = Descriptor::new(
        MediaType::from(entry.top.media_type.as_str()),
        entry.top.bytes.len() as u64,
        entry.top.digest.to_oci(),
    );
    desc.set_platform(Some(entry.platform.to_oci()));
    desc
}

/// Makes the image present in the target repository: each blob it lacks mounted from the
/// image's repository or uploaded from its layout, then the manifest put by digest.
fn link_into(
    target: &Reference,
    source: &ImageSource,
    entry: &Entry,
    registry: &Registry,
    store: &BlobStore,
) -> Result<(), PublishError> {
    let from = source.location().reference();
    // Within one repository the blobs are there already.
    if from.is_none_or(|from| from.repository() != target.repository()) {
        for desc in std::iter::once(entry.manifest.config()).chain(entry.manifest.layers()) {
            let blob = source.digest(desc).map_err(reading(source.location()))?;
            if registry
                .blob_exists(target, &blob)
                .map_err(pushing(target))?
            {
                continue;
            }
            match from {
                Some(from) => mount(registry, target, &blob, from).map_err(pushing(target))?,
                None => upload(source, desc, &blob, target, registry, store)?,
            }
        }
    }
    let top = &entry.top;
    registry
        .put_manifest(target, top.digest.as_str(), &top.media_type, &top.bytes)
        .map(drop)
        .map_err(pushing(target))
}

fn mount(
    registry: &Registry,
    target: &Reference,
    blob: &Digest,
    from: &Reference,
) -> Result<(), RegistryError> {
    if registry.mount_blob(target, blob, from)? {
        return Ok(());
    }
    Err(RegistryError::Status {
        method: "POST".into(),
        url: target.name(),
        status: 202,
        code: None,
        detail: format!(
            " (the registry would not mount {blob} from {})",
            from.name()
        ),
        hint: String::new(),
    })
}

/// A blob of a layout or archive, into the store (verified on the way) and up from there.
fn upload(
    source: &ImageSource,
    desc: &Descriptor,
    blob: &Digest,
    target: &Reference,
    registry: &Registry,
    store: &BlobStore,
) -> Result<(), PublishError> {
    let content = source.blob(desc).map_err(reading(source.location()))?;
    store.put_verified(blob, Some(desc.size()), content)?;
    registry
        .upload_blob(target, blob, desc.size(), store)
        .map_err(pushing(target))
}

/// A failure to read an image: a registry's keeps its kind (and so its hint).
fn reading(location: &Location) -> impl Fn(SourceError) -> PublishError + '_ {
    move |e| match e {
        SourceError::Registry(source) => PublishError::Registry {
            reference: location.to_string(),
            source,
        },
        other => MergeError::Source(other).into(),
    }
}

fn pushing(target: &Reference) -> impl Fn(RegistryError) -> PublishError {
    let name = target.name();
    move |source| PublishError::Registry {
        reference: name.clone(),
        source,
    }
}
