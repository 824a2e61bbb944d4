//! `cargo stevedore rebase`: what a published image's platforms were built from, checked
//! before anything is assembled on another base.
//!
//! A platform is rebased only when its manifest records its base (the annotations
//! `assemble` writes), its lower layers are exactly that base's, and, reassembled on that base
//! from this checkout with its own application layer, it is the published manifest byte for
//! byte (`Build::rebase` asks `verify::compare`). Then the image on the new base goes through
//! the build's own `pipeline::assemble_all`, so it is the image `build --base NEW` writes.

pub(crate) mod listed;

use oci_spec::image::{Descriptor as SpecDescriptor, ImageConfiguration, MediaType};

use crate::assemble::{ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME};
use crate::build_id::BuildId;
use crate::cache::{BlobStore, CacheError};
use crate::digest::Digest;
use crate::layer::Layer;
use crate::oci::media::ANNOTATION_BUILD_ID;
use crate::oci::{limits, BaseImage, Compression};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError};
use crate::source::{ImageSource, Location, SourceError};
use crate::text::printable;
use crate::verify::{self, PublishedImage, PublishedPlatform, VerifyError};

/// Why an image cannot be rebased. Each is found before anything is written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RebaseError {
    /// A platform's manifest does not say which base it was built on (an image stevedore
    /// built on `scratch` has none either).
    #[error(
        "{published} ({platform}) was not built by stevedore, or was built on scratch: its \
         manifest has no {ANNOTATION_BASE_NAME} and {ANNOTATION_BASE_DIGEST} annotations, so \
         which of its layers are a base's is unknown (on scratch there is no base to move); \
         build it with `cargo stevedore build` instead"
    )]
    NotOurs {
        /// The image as given.
        published: String,
        /// The platform.
        platform: String,
    },
    /// The base a platform records cannot be fetched by its digest.
    #[error("cannot fetch {base}, the base {published} ({platform}) records")]
    RecordedBase {
        /// The image as given.
        published: String,
        /// The platform.
        platform: String,
        /// The base, `NAME@DIGEST`.
        base: String,
        /// Why the registry failed.
        #[source]
        source: RegistryError,
    },
    /// A platform's lower layers are not those of the base it records: it was changed after
    /// stevedore built it, or its annotations do not tell the truth.
    #[error(
        "{published} ({platform}) is not on the base it records, {base}: its layer {layer} is \
         {theirs}, the base's is {base_layer}; only an image whose lower layers are its \
         recorded base can be rebased"
    )]
    BaseLayers {
        /// The image as given.
        published: String,
        /// The platform.
        platform: String,
        /// The recorded base, `NAME@DIGEST`.
        base: String,
        /// The first differing layer, counted from 1 at the bottom.
        layer: usize,
        /// The image's layer there, or `none`.
        theirs: String,
        /// The base's layer there.
        base_layer: String,
    },
    /// A platform has nothing above its base's layers, or its config does not name them.
    #[error(
        "{published} ({platform}) has no application layer above its base's {base_layers} \
         layers (or its config's rootfs does not list them)"
    )]
    NoApplication {
        /// The image as given.
        published: String,
        /// The platform.
        platform: String,
        /// How many layers the base has.
        base_layers: usize,
    },
    /// Reassembled on its own base from this checkout, a platform is not the published image:
    /// it was built from another revision, other settings or another stevedore.
    #[error(
        "{published} ({platform}) was not built from this checkout: assembled here on its own \
         base it would be {ours}, not {theirs} ({difference}); rebase from the revision, \
         settings and stevedore version that built it"
    )]
    OtherCheckout {
        /// The image as given.
        published: String,
        /// The platform.
        platform: String,
        /// What this checkout assembles on the recorded base.
        ours: Digest,
        /// The published manifest.
        theirs: String,
        /// The first difference, in words.
        difference: String,
    },
    /// The published image cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The blob store failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The published image's referrers, or a base's manifests, cannot be read.
    #[error(transparent)]
    Read(#[from] VerifyError),
}

/// A platform of a published image whose base tag now names another image than the one it was
/// built on: what `outdated` lists, and `rebase` fixes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outdated {
    /// The platform.
    pub platform: Platform,
    /// The base, as its manifest records it.
    pub base: Reference,
    /// The base's manifest for the platform the image was built on.
    pub built_on: Digest,
    /// The base's manifest for the platform the tag names now; `None` when what it names has
    /// no image for the platform.
    pub now: Option<Digest>,
}

/// Each platform of `image` whose recorded base tag names another manifest now; a base
/// recorded by digest alone never moves. Reads manifests only, no layer.
pub(crate) fn outdated(
    source: &ImageSource,
    image: &PublishedImage,
    registry: &Registry,
    store: &BlobStore,
) -> Result<Vec<Outdated>, RebaseError> {
    let mut found = Vec::new();
    for published in &image.platforms {
        let (base, built_on) = recorded_base(source, published)?;
        if base.tag().is_none() || base.digest().is_some() {
            continue;
        }
        let tagged = ImageSource::new(Location::Registry(base.clone()), registry, store);
        let now = verify::read(&tagged)?
            .platforms
            .into_iter()
            .find(|p| p.platform == published.platform)
            .map(|p| p.digest);
        if now.as_ref() != Some(&built_on) {
            found.push(Outdated {
                platform: published.platform.clone(),
                base,
                built_on,
                now,
            });
        }
    }
    Ok(found)
}

/// The base a platform's manifest records (its annotations), or why it is not stevedore's.
fn recorded_base(
    source: &ImageSource,
    published: &PublishedPlatform,
) -> Result<(Reference, Digest), RebaseError> {
    let annotations = published.manifest.annotations().clone().unwrap_or_default();
    annotations
        .get(ANNOTATION_BASE_NAME)
        .zip(annotations.get(ANNOTATION_BASE_DIGEST))
        .and_then(|(n, d)| Some((n.parse::<Reference>().ok()?, d.parse::<Digest>().ok()?)))
        .ok_or_else(|| RebaseError::NotOurs {
            published: source.location().to_string(),
            platform: published.platform.to_string(),
        })
}

/// One platform of a published image, checked: the base it records and its application layer.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub platform: Platform,
    /// The base it was built on, fetched by the digest its manifest records.
    pub base: BaseImage,
    /// Its top layer, in the store: the binary's, reused as it is.
    pub application: Layer,
    /// With `--split-debuginfo`, its `.debug` file (in the store) and build-id, attached to the
    /// rebased image as the build attaches it.
    pub debug: Option<(Digest, BuildId)>,
}

/// Checks every platform of `image` and takes what a rebase keeps of it; the first platform
/// that is not stevedore's, or not on its recorded base, stops it.
pub(crate) fn recorded(
    source: &ImageSource,
    image: &PublishedImage,
    registry: &Registry,
    store: &BlobStore,
) -> Result<Vec<Recorded>, RebaseError> {
    image
        .platforms
        .iter()
        .map(|published| recorded_platform(source, published, registry, store))
        .collect()
}

fn recorded_platform(
    source: &ImageSource,
    published: &PublishedPlatform,
    registry: &Registry,
    store: &BlobStore,
) -> Result<Recorded, RebaseError> {
    let name = || source.location().to_string();
    let platform = published.platform.clone();
    let (base_name, base_digest) = recorded_base(source, published)?;
    let shown = format!("{}@{base_digest}", base_name.name());
    let base = registry
        .pull(
            &base_name,
            Some(&base_digest),
            std::slice::from_ref(&platform),
            store,
        )
        .map_err(|source| RebaseError::RecordedBase {
            published: name(),
            platform: platform.to_string(),
            base: shown.clone(),
            source,
        })?
        .remove(0);
    let layers = published.manifest.layers();
    let base_layers = base.manifest.layers();
    let differing = base_layers
        .iter()
        .enumerate()
        .find(|(n, b)| layers.get(*n).map(|l| l.digest()) != Some(b.digest()));
    if let Some((n, base_layer)) = differing {
        return Err(RebaseError::BaseLayers {
            published: name(),
            platform: platform.to_string(),
            base: shown,
            layer: n + 1,
            theirs: layers.get(n).map_or_else(
                || "none".to_owned(),
                |l| printable(l.digest().as_ref()).into_owned(),
            ),
            base_layer: base_layer.digest().to_string(),
        });
    }
    let no_application = || RebaseError::NoApplication {
        published: name(),
        platform: platform.to_string(),
        base_layers: base_layers.len(),
    };
    let top = match layers.get(base_layers.len()..) {
        Some([.., top]) => top,
        _ => return Err(no_application()),
    };
    let config = source.small_blob(published.manifest.config(), limits::CONFIG)?;
    let config: ImageConfiguration = source.parse(&config, "the config")?;
    let diff_id = config
        .rootfs()
        .diff_ids()
        .get(layers.len() - 1)
        .and_then(|d| d.parse::<Digest>().ok())
        .ok_or_else(no_application)?;
    let application = application_layer(source, top, diff_id, store)?;
    let debug = debug_file(source, published, store)?;
    Ok(Recorded {
        platform,
        base,
        application,
        debug,
    })
}

/// The platform's `.debug` file, when a debuginfo referrer carries one: into the store, with
/// its build-id. One whose build-id annotation is no build-id is left behind, as `debuginfo`
/// would refuse it.
fn debug_file(
    source: &ImageSource,
    published: &PublishedPlatform,
    store: &BlobStore,
) -> Result<Option<(Digest, BuildId)>, RebaseError> {
    let Some(layer) = verify::debug_layer(source, &published.digest)? else {
        return Ok(None);
    };
    let build_id = layer
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_BUILD_ID))
        .and_then(|text| text.parse::<BuildId>().ok());
    let Some(build_id) = build_id else {
        return Ok(None);
    };
    let digest = source.digest(&layer)?;
    if !store.verified(&digest)? {
        store.put_verified(&digest, Some(layer.size()), source.blob(&layer)?)?;
    }
    Ok(Some((digest, build_id)))
}

/// The published top layer as a [`Layer`], its blob copied into the store (from a registry it
/// lands there as it is fetched) so outputs and pushes find it as they find a built one.
fn application_layer(
    source: &ImageSource,
    top: &SpecDescriptor,
    diff_id: Digest,
    store: &BlobStore,
) -> Result<Layer, RebaseError> {
    let digest = source.digest(top)?;
    if !store.verified(&digest)? {
        store.put_verified(&digest, Some(top.size()), source.blob(top)?)?;
    }
    let compression = match top.media_type() {
        MediaType::ImageLayerZstd => Compression::Zstd,
        _ => Compression::Gzip,
    };
    Ok(Layer {
        digest,
        size: top.size(),
        diff_id,
        compression,
    })
}
