//! `cargo stevedore verify`: rebuild from the checkout and compare with a published image,
//! platform by platform; when they differ, name the first differing file or field.

use std::path::PathBuf;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

mod debuginfo;
mod signatures;
mod toolchain;

pub use debuginfo::DebugFile;
pub(crate) use debuginfo::{debug_layer, fetch as fetch_debuginfo};
pub(crate) use signatures::check as check_signatures;
pub use signatures::Finding;
pub(crate) use toolchain::{differences as tool_differences, from_provenance as tools_of};

use crate::assemble::{Built, Image};
use crate::cache::{BlobStore, CacheError};
use crate::diff::{self, DiffError};
use crate::digest::Digest;
use crate::oci::limits;
use crate::oci::media::{DOCKER_LIST, OCI_INDEX};
use crate::platform::{Platform, PlatformError};
use crate::source::{ImageSource, SourceError};

/// Why the published image could not be read or compared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The published image cannot be read: the registry, layout or archive failed, or a
    /// document is not what it should be.
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{published} has an image for a platform stevedore does not build")]
    /// The published image names a platform stevedore cannot rebuild.
    Platform {
        /// The published image.
        published: String,
        /// Which platform, and why not.
        #[source]
        source: PlatformError,
    },
    /// The blob store failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// `debuginfo`: a platform of the image has no debug-symbols referrer.
    #[error(
        "{published} has no debug symbols for {platforms}: no referrer of type \
         application/vnd.stevedore.debuginfo.v1 is attached to it. Only images built with \
         --split-debuginfo (or `split-debuginfo = true` in [package.metadata.stevedore]) carry \
         them; rebuild and push it that way, and fetch from the same repository or layout"
    )]
    NoDebuginfo {
        /// The image as given.
        published: String,
        /// The platforms without one, comma separated.
        platforms: String,
    },
    /// `debuginfo`: a debug file's build-id annotation is not a build-id.
    #[error("the build-id annotation `{text}` of the {platform} debug file of {published} is not a hex build-id")]
    BadBuildId {
        /// The image as given.
        published: String,
        /// The platform of the debug file.
        platform: String,
        /// The annotation, escaped.
        text: String,
    },
    /// `debuginfo`: a debug file cannot be written.
    #[error("cannot write the debug file {}", path.display())]
    WriteDebug {
        /// Where it was going.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading a layer or document while looking for the difference failed.
    #[error(transparent)]
    Diff(#[from] DiffError),
}

/// The published image, one manifest per platform.
#[derive(Debug)]
pub(crate) struct PublishedImage {
    pub digest: Digest,
    pub bytes: Vec<u8>,
    pub platforms: Vec<PublishedPlatform>,
}

/// One platform's manifest in the published image.
#[derive(Debug)]
pub(crate) struct PublishedPlatform {
    pub platform: Platform,
    pub digest: Digest,
    pub manifest: ImageManifest,
    /// The manifest as published, byte for byte, for the field-by-field comparison.
    pub bytes: Vec<u8>,
}

/// How one platform compares.
#[derive(Debug)]
pub struct PlatformVerdict {
    /// The platform.
    pub platform: Platform,
    /// The rebuilt image's manifest digest.
    pub ours: Digest,
    /// None when the published image has no such platform.
    pub theirs: Option<Digest>,
    /// The first difference, in words; None when identical.
    pub difference: Option<String>,
}

/// The whole comparison: the top digests (index or manifest) and each platform's.
#[derive(Debug)]
#[non_exhaustive]
pub struct Verdict {
    /// The rebuilt image's top digest.
    pub ours: Digest,
    /// The published image's top digest.
    pub theirs: Digest,
    /// Each platform's comparison.
    pub platforms: Vec<PlatformVerdict>,
    /// When every platform matches but the top documents differ: where.
    pub top_difference: Option<String>,
    /// With a public key: each signature and the provenance, checked.
    pub signatures: Vec<Finding>,
    /// Each tool (rustc, zig, stevedore) that differs between the build that made the image,
    /// as its provenance (else `stevedore.lock`) names it, and the rebuild, in words; what to
    /// say before any byte difference. Empty when they agree or nothing names them.
    pub toolchain: Vec<String>,
}

impl Verdict {
    /// Whether the rebuild is the published image, byte for byte, and every signature checked
    /// holds.
    pub fn matches(&self) -> bool {
        self.ours == self.theirs && self.signatures.iter().all(|f| f.ok)
    }
}

/// The top document and, for each platform, its manifest.
pub(crate) fn read(source: &ImageSource) -> Result<PublishedImage, VerifyError> {
    let top = source.top()?;
    let platforms = match top.media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => {
            let index: ImageIndex = source.parse(&top.bytes, "the image")?;
            let mut platforms = Vec::new();
            for entry in index.manifests() {
                // An attestation or other artifact has no platform, or `unknown/unknown`.
                if let Some(platform) = platform_of(entry, source)? {
                    platforms.push(published_platform(source, entry, platform)?);
                }
            }
            platforms
        }
        _ => vec![only_platform(source, &top.digest, top.bytes.clone())?],
    };
    Ok(PublishedImage {
        digest: top.digest,
        bytes: top.bytes,
        platforms,
    })
}

fn published_platform(
    source: &ImageSource,
    entry: &Descriptor,
    platform: Platform,
) -> Result<PublishedPlatform, VerifyError> {
    let fetched = source.manifest(entry)?;
    Ok(PublishedPlatform {
        platform,
        manifest: source.parse(&fetched.bytes, &format!("manifest {}", fetched.digest))?,
        digest: fetched.digest,
        bytes: fetched.bytes,
    })
}

/// A single-platform image: its platform is its config's.
fn only_platform(
    source: &ImageSource,
    digest: &Digest,
    bytes: Vec<u8>,
) -> Result<PublishedPlatform, VerifyError> {
    #[derive(serde::Deserialize)]
    struct ConfigPlatform {
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
    }
    let manifest: ImageManifest = source.parse(&bytes, "the image")?;
    let config = source.small_blob(manifest.config(), limits::CONFIG)?;
    let config: ConfigPlatform = source.parse(&config, "the config")?;
    let platform = format!("{}/{}", config.os, config.architecture);
    Ok(PublishedPlatform {
        platform: parse_platform(&platform, source)?,
        digest: digest.clone(),
        manifest,
        bytes,
    })
}

/// The platform of an index entry; None for an entry that is no platform's image.
fn platform_of(entry: &Descriptor, source: &ImageSource) -> Result<Option<Platform>, VerifyError> {
    let Some(platform) = entry.platform() else {
        return Ok(None);
    };
    let (os, arch) = (
        platform.os().to_string(),
        platform.architecture().to_string(),
    );
    if os == "unknown" {
        return Ok(None);
    }
    let text = match platform.variant() {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    };
    parse_platform(&text, source).map(Some)
}

fn parse_platform(text: &str, source: &ImageSource) -> Result<Platform, VerifyError> {
    text.parse().map_err(|source_error| VerifyError::Platform {
        published: source.location().to_string(),
        source: source_error,
    })
}

/// Compares what we built with the published image, platform by platform.
pub(crate) fn compare(
    built: &Built,
    published: &PublishedImage,
    source: &ImageSource,
    store: &BlobStore,
) -> Result<Verdict, VerifyError> {
    let mut platforms = Vec::new();
    for image in &built.images {
        let theirs = published
            .platforms
            .iter()
            .find(|p| p.platform == image.platform);
        let ours = image.manifest_digest();
        let difference = match theirs {
            Some(theirs) if theirs.digest == ours => None,
            Some(theirs) => Some(explain(image, theirs, source, store)?),
            None => Some("the published image has no such platform".into()),
        };
        platforms.push(PlatformVerdict {
            platform: image.platform.clone(),
            ours,
            theirs: theirs.map(|p| p.digest.clone()),
            difference,
        });
    }
    let ours = built.top_digest();
    let top_difference = match (
        ours == published.digest,
        platforms.iter().all(|p| p.difference.is_none()),
    ) {
        (false, true) => {
            let our_top = store.read_small(&ours, limits::MANIFEST.max)?;
            Some(match diff::json(&our_top, &published.bytes)? {
                Some(field) => format!("index: {field}"),
                None => "index: the same fields, serialized differently".into(),
            })
        }
        _ => None,
    };
    Ok(Verdict {
        ours,
        theirs: published.digest.clone(),
        platforms,
        top_difference,
        signatures: Vec::new(),
        toolchain: Vec::new(),
    })
}

/// Compares our image for one platform with the published manifest: the first differing
/// layer (and the first differing file in it), else the config, else the manifest itself.
fn explain(
    ours: &Image,
    theirs: &PublishedPlatform,
    source: &ImageSource,
    store: &BlobStore,
) -> Result<String, VerifyError> {
    let their_layers = theirs.manifest.layers();
    let base_layers = ours.layers.len().saturating_sub(1);
    let counts = || {
        format!(
            "ours has {} layers, the published image {}",
            ours.layers.len(),
            their_layers.len()
        )
    };
    for (n, our_layer) in ours.layers.iter().enumerate() {
        let Some(their_layer) = their_layers.get(n) else {
            return Ok(counts());
        };
        if their_layer.digest().to_string() == our_layer.digest().as_ref() {
            continue;
        }
        let which = match n < base_layers {
            true => format!(
                "layer {} (the base's, or the accounts stevedore adds to it: was it built on \
                 the base stevedore.lock pins?)",
                n + 1
            ),
            false => format!("layer {} (the application)", n + 1),
        };
        let found = diff::layers(
            store.open_blob(our_layer.digest())?,
            source.blob(their_layer)?,
        )?;
        return Ok(match found {
            Some(file) => format!("{which}: {file}"),
            None => {
                format!("{which}: the same files, encoded differently (tar headers or compression)")
            }
        });
    }
    if their_layers.len() > ours.layers.len() {
        return Ok(counts());
    }
    let their_config = theirs.manifest.config();
    if their_config.digest().to_string() != ours.config.digest().as_ref() {
        let their_config = source.small_blob(their_config, limits::CONFIG)?;
        let our_config = store.read_small(ours.config.digest(), limits::CONFIG.max)?;
        let found = diff::json(&our_config, &their_config)?;
        return Ok(match found {
            Some(field) => format!("config: {field}"),
            None => "config: the same fields, serialized differently".into(),
        });
    }
    let ours_bytes = store.read_small(&ours.manifest_digest(), limits::MANIFEST.max)?;
    Ok(match diff::json(&ours_bytes, &theirs.bytes)? {
        Some(field) => format!("manifest: {field}"),
        None => "manifest: the same fields, serialized differently".into(),
    })
}
