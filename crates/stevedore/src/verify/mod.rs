//! `cargo stevedore verify`: rebuild from the checkout and compare with a published image,
//! platform by platform; when they differ, name the first differing file or field.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

mod debuginfo;
mod signatures;

pub(crate) use debuginfo::fetch as fetch_debuginfo;
pub use debuginfo::DebugFile;
pub(crate) use signatures::check as check_signatures;
pub use signatures::Finding;

use crate::assemble::{Built, Image};
use crate::cache::{BlobStore, CacheError};
use crate::diff::{self, DiffError};
use crate::digest::Digest;
use crate::oci::limits::{self, Cap, Refused};
use crate::platform::{Platform, PlatformError};
use crate::reference::{Reference, ReferenceError};
use crate::registry::{Registry, RegistryError};

/// The image to compare with: in a registry, or in an OCI layout on disk.
#[derive(Debug, Clone)]
pub enum Published {
    /// `REGISTRY/REPO:TAG` or `@DIGEST`.
    Registry(Reference),
    /// `oci-layout=DIR`, holding one image.
    Layout(PathBuf),
}

impl FromStr for Published {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some(("oci-layout" | "oci", dir)) => Ok(Published::Layout(dir.into())),
            _ => s.parse().map(Published::Registry),
        }
    }
}

impl fmt::Display for Published {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Published::Registry(r) => write!(f, "{r}"),
            Published::Layout(dir) => write!(f, "oci-layout={}", dir.display()),
        }
    }
}

/// Why the published image could not be read or compared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A file of the layout cannot be read.
    #[error("cannot read {what} from {published}")]
    Layout {
        /// Which document or blob.
        what: String,
        /// The published image.
        published: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    #[error("{published} holds {count} images ({names}): verify a layout with one image, or its tag in a registry")]
    /// The layout holds more than one image, so which to compare is unclear.
    SeveralImages {
        /// The published image.
        published: String,
        /// How many images it holds.
        count: usize,
        /// Their names, comma separated.
        names: String,
    },
    #[error("{what} of {published} is not valid JSON: {message}")]
    /// A document of the published image is not the JSON it should be.
    Json {
        /// Which document.
        what: String,
        /// The published image.
        published: String,
        /// The parser's complaint.
        message: String,
    },
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
    /// A published document larger than stevedore reads, or whose descriptor has no size.
    #[error(transparent)]
    Refused(#[from] Refused),
}

/// The published image, one manifest per platform.
#[derive(Debug)]
pub(crate) struct PublishedImage {
    pub digest: Digest,
    pub bytes: Vec<u8>,
    pub platforms: Vec<(Platform, Digest, Value)>,
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
}

impl Verdict {
    /// Whether the rebuild is the published image, byte for byte, and every signature checked
    /// holds.
    pub fn matches(&self) -> bool {
        self.ours == self.theirs && self.signatures.iter().all(|f| f.ok)
    }
}

/// Reads the published side: manifests and blobs by digest, each checked.
pub(crate) struct Source<'a> {
    pub published: &'a Published,
    pub registry: &'a Registry,
    pub store: &'a BlobStore,
}

impl Source<'_> {
    /// The top document and, for each platform, its manifest.
    pub fn image(&self) -> Result<PublishedImage, VerifyError> {
        let (digest, bytes) = self.top()?;
        let top = self.json(&bytes, "the image")?;
        let mut platforms = Vec::new();
        match top.get("manifests").and_then(Value::as_array) {
            Some(entries) => {
                for entry in entries {
                    let Some(platform) = entry.get("platform").and_then(platform_of) else {
                        continue; // an attestation or other artifact, not a platform image
                    };
                    let platform = platform.map_err(|source| VerifyError::Platform {
                        published: self.published.to_string(),
                        source,
                    })?;
                    let digest = descriptor_digest(entry, self.published)?;
                    let manifest = self.manifest_of(entry)?;
                    platforms.push((platform, digest, manifest));
                }
            }
            None => {
                let config = self.blob_json(top.get("config").unwrap_or(&Value::Null))?;
                let platform = format!(
                    "{}/{}",
                    config["os"].as_str().unwrap_or_default(),
                    config["architecture"].as_str().unwrap_or_default()
                );
                let platform = platform.parse().map_err(|source| VerifyError::Platform {
                    published: self.published.to_string(),
                    source,
                })?;
                platforms.push((platform, digest.clone(), top));
            }
        }
        Ok(PublishedImage {
            digest,
            bytes,
            platforms,
        })
    }

    fn top(&self) -> Result<(Digest, Vec<u8>), VerifyError> {
        match self.published {
            Published::Registry(reference) => {
                let fetched = self.registry.fetch_manifest(reference)?;
                Ok((fetched.digest, fetched.bytes))
            }
            Published::Layout(dir) => {
                let digest = self.only_image(&self.layout_index(dir)?)?;
                let bytes = self.layout_bytes(&digest)?;
                Ok((digest, bytes))
            }
        }
    }

    /// The one image a layout's index.json names (under one or more tags).
    fn only_image(&self, index: &Value) -> Result<Digest, VerifyError> {
        let mut images: Vec<(Digest, String)> = Vec::new();
        for entry in index["manifests"].as_array().into_iter().flatten() {
            if entry.get("artifactType").is_some() || is_cosign_tag(entry) {
                continue; // an SBOM or other referrer, a signature or attestation
            }
            let digest = descriptor_digest(entry, self.published)?;
            let name = entry["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap_or("(untagged)")
                .to_owned();
            if !images.iter().any(|(d, _)| d == &digest) {
                images.push((digest, name));
            }
        }
        match images.as_slice() {
            [(digest, _)] => Ok(digest.clone()),
            _ => Err(VerifyError::SeveralImages {
                published: self.published.to_string(),
                count: images.len(),
                names: images
                    .iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn manifest(&self, digest: &Digest) -> Result<Value, VerifyError> {
        let bytes = match self.published {
            Published::Registry(reference) => {
                self.registry
                    .fetch_manifest(&reference.with_digest(digest.clone()))?
                    .bytes
            }
            Published::Layout(_) => self.layout_bytes(digest)?,
        };
        self.json(&bytes, &format!("manifest {digest}"))
    }

    /// A blob as a stream; a registry's goes through the store, verified on the way in.
    pub fn blob(&self, descriptor: &Value) -> Result<Box<dyn Read>, VerifyError> {
        let digest = descriptor_digest(descriptor, self.published)?;
        match self.published {
            Published::Registry(reference) => {
                let size = descriptor["size"].as_u64().unwrap_or(0);
                self.registry
                    .fetch_blob(reference, &digest, size, self.store)?;
                Ok(Box::new(self.store.open_blob(&digest)?))
            }
            Published::Layout(dir) => {
                let path = dir.join("blobs/sha256").join(digest.hex());
                let file = std::fs::File::open(&path).map_err(|source| VerifyError::Layout {
                    what: format!("blob {digest}"),
                    published: self.published.to_string(),
                    source,
                })?;
                Ok(Box::new(crate::digest::VerifyingReader::new(
                    file, digest, None,
                )))
            }
        }
    }

    /// The manifest a cosign tag (`sha256-<hex>.sig`) or referrers tag names, if there is one:
    /// in a registry by the tag, in a layout by its `ref.name`.
    pub fn tagged(&self, tag: &str) -> Result<Option<Value>, VerifyError> {
        let bytes = match self.published {
            Published::Registry(reference) => {
                let tagged: Reference = format!("{}:{tag}", reference.name())
                    .parse()
                    .expect("a repository and a cosign tag make a reference");
                match self.registry.fetch_manifest(&tagged) {
                    Ok(fetched) => fetched.bytes,
                    Err(RegistryError::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
            Published::Layout(dir) => {
                let index = self.layout_index(dir)?;
                let entry = index["manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag);
                match entry {
                    Some(entry) => self.small_blob(entry, limits::MANIFEST)?,
                    None => return Ok(None),
                }
            }
        };
        self.json(&bytes, tag).map(Some)
    }

    /// What refers to `subject`, as an index: in a registry, the referrers API's answer, or
    /// the fallback tag's (`sha256-<hex>`) where the registry has no such API; in a layout, the
    /// entry under that tag, if any.
    pub fn referrers_of(&self, subject: &Digest) -> Result<Option<Value>, VerifyError> {
        if let Published::Registry(reference) = self.published {
            if let Some(bytes) = self.registry.referrers(reference, subject)? {
                return self.json(&bytes, "the referrers index").map(Some);
            }
        }
        self.tagged(&format!("sha256-{}", subject.hex()))
    }

    /// The manifest a descriptor names, if the size it declares is within the cap.
    pub fn manifest_of(&self, descriptor: &Value) -> Result<Value, VerifyError> {
        limits::MANIFEST.check(descriptor["size"].as_u64(), &self.published.to_string())?;
        self.manifest(&descriptor_digest(descriptor, self.published)?)
    }

    fn blob_json(&self, descriptor: &Value) -> Result<Value, VerifyError> {
        let bytes = self.small_blob(descriptor, limits::CONFIG)?;
        self.json(&bytes, "the config")
    }

    /// A layout's manifest by digest (index.json's entries, which name it, were read already).
    fn layout_bytes(&self, digest: &Digest) -> Result<Vec<u8>, VerifyError> {
        let descriptor = serde_json::json!({ "digest": digest.as_str() });
        self.read_capped(self.blob(&descriptor)?, limits::MANIFEST)
    }

    /// A layout's index.json, within its cap.
    pub fn layout_index(&self, dir: &Path) -> Result<Value, VerifyError> {
        let file = std::fs::File::open(dir.join("index.json"))
            .map_err(|source| self.unreadable(source, "index.json"))?;
        let bytes = self.read_capped(file, limits::LAYOUT_INDEX)?;
        self.json(&bytes, "index.json")
    }

    /// A small blob (a config, manifest, payload) whole: its declared size is checked against
    /// `cap` before anything is fetched, and the read stops at the cap whatever arrives.
    pub fn small_blob(&self, descriptor: &Value, cap: Cap) -> Result<Vec<u8>, VerifyError> {
        cap.check(descriptor["size"].as_u64(), &self.published.to_string())?;
        self.read_capped(self.blob(descriptor)?, cap)
    }

    fn read_capped(&self, reader: impl Read, cap: Cap) -> Result<Vec<u8>, VerifyError> {
        let bytes = cap
            .read(reader)
            .map_err(|source| self.unreadable(source, cap.what))?;
        bytes.ok_or_else(|| cap.overran(&self.published.to_string()).into())
    }

    fn unreadable(&self, source: std::io::Error, what: &str) -> VerifyError {
        VerifyError::Layout {
            what: what.to_owned(),
            published: self.published.to_string(),
            source,
        }
    }

    fn json(&self, bytes: &[u8], what: &str) -> Result<Value, VerifyError> {
        serde_json::from_slice(bytes).map_err(|e| VerifyError::Json {
            what: what.to_owned(),
            published: self.published.to_string(),
            message: e.to_string(),
        })
    }
}

/// Compares what we built with the published image, platform by platform.
pub(crate) fn compare(
    built: &Built,
    published: &PublishedImage,
    source: &Source,
    store: &BlobStore,
) -> Result<Verdict, VerifyError> {
    let mut platforms = Vec::new();
    for image in &built.images {
        let theirs = published
            .platforms
            .iter()
            .find(|(p, _, _)| p == &image.platform);
        let ours = image.manifest_digest();
        let difference = match theirs {
            Some((_, digest, _)) if digest == &ours => None,
            Some((_, _, manifest)) => Some(explain(image, manifest, source, store)?),
            None => Some("the published image has no such platform".into()),
        };
        platforms.push(PlatformVerdict {
            platform: image.platform.clone(),
            ours,
            theirs: theirs.map(|(_, d, _)| d.clone()),
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
    })
}

/// Compares our image for one platform with the published manifest: the first differing
/// layer (and the first differing file in it), else the config, else the manifest itself.
pub(crate) fn explain(
    ours: &Image,
    theirs: &Value,
    source: &Source,
    store: &BlobStore,
) -> Result<String, VerifyError> {
    let empty = Vec::new();
    let their_layers = theirs["layers"].as_array().unwrap_or(&empty);
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
        if their_layer["digest"].as_str() == Some(our_layer.digest().as_ref()) {
            continue;
        }
        let which = match n < base_layers {
            true => format!(
                "layer {} (from the base: was it built on the base stevedore.lock pins?)",
                n + 1
            ),
            false => format!("layer {} (the application)", n + 1),
        };
        let our_digest = Digest::try_from(our_layer.digest()).expect("our digests are sha256");
        let found = diff::layers(store.open_blob(&our_digest)?, source.blob(their_layer)?)?;
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
    let our_config = Digest::try_from(ours.config.digest()).expect("our digests are sha256");
    if theirs["config"]["digest"].as_str() != Some(our_config.as_str()) {
        let their_config = source.small_blob(&theirs["config"], limits::CONFIG)?;
        let our_config = store.read_small(&our_config, limits::CONFIG.max)?;
        let found = diff::json(&our_config, &their_config)?;
        return Ok(match found {
            Some(field) => format!("config: {field}"),
            None => "config: the same fields, serialized differently".into(),
        });
    }
    let ours_bytes = store.read_small(&ours.manifest_digest(), limits::MANIFEST.max)?;
    let theirs_bytes = serde_json::to_vec(theirs).unwrap_or_default();
    Ok(match diff::json(&ours_bytes, &theirs_bytes)? {
        Some(field) => format!("manifest: {field}"),
        None => "manifest: the same fields, serialized differently".into(),
    })
}

/// Whether a layout entry is cosign's `sha256-<hex>.sig` or `.att`.
fn is_cosign_tag(entry: &Value) -> bool {
    entry["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .is_some_and(|n| n.starts_with("sha256-") && (n.ends_with(".sig") || n.ends_with(".att")))
}

fn platform_of(value: &Value) -> Option<Result<Platform, PlatformError>> {
    let os = value["os"].as_str()?;
    let arch = value["architecture"].as_str()?;
    if os == "unknown" {
        return None;
    }
    let text = match value["variant"].as_str() {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    };
    Some(text.parse())
}

fn descriptor_digest(descriptor: &Value, published: &Published) -> Result<Digest, VerifyError> {
    let text = descriptor["digest"].as_str().unwrap_or_default();
    text.parse().map_err(|_| VerifyError::Json {
        what: format!("descriptor digest `{text}`"),
        published: published.to_string(),
        message: "not a sha256 digest".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryOptions;

    /// A layout source over `dir`, with a registry client that is never asked.
    fn check(dir: &Path, test: impl FnOnce(&Source)) {
        let store_dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(store_dir.path()).unwrap();
        let registry = Registry::new(RegistryOptions {
            offline: true,
            ..Default::default()
        })
        .unwrap();
        let published = Published::Layout(dir.to_path_buf());
        test(&Source {
            published: &published,
            registry: &registry,
            store: &store,
        });
    }

    #[test]
    fn a_signature_declared_over_its_cap_or_without_a_size_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        // No blob is there: reading one would fail otherwise.
        let digest = Digest::of(b"payload");
        check(dir.path(), |source| {
            let declared = |size: Value| json_descriptor(&digest, size);
            let err = source
                .small_blob(&declared(Value::from(5u64 << 20)), limits::SIGNATURE)
                .unwrap_err();
            assert!(
                matches!(err, VerifyError::Refused(Refused::TooLarge { size, .. }) if size == 5 << 20),
                "{err}"
            );
            let err = source
                .small_blob(&declared(Value::Null), limits::PROVENANCE)
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    VerifyError::Refused(Refused::NoSize {
                        what: "provenance envelope",
                        ..
                    })
                ),
                "{err}"
            );
        });
    }

    #[test]
    fn a_layout_index_over_its_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let padding = " ".repeat(limits::LAYOUT_INDEX.max as usize);
        std::fs::write(dir.path().join("index.json"), format!("{{{padding}}}")).unwrap();
        check(dir.path(), |source| {
            let err = source.layout_index(dir.path()).unwrap_err();
            assert!(
                matches!(
                    err,
                    VerifyError::Refused(Refused::Overran {
                        what: "layout's index.json",
                        ..
                    })
                ),
                "{err}"
            );
        });
    }

    fn json_descriptor(digest: &Digest, size: Value) -> Value {
        serde_json::json!({ "digest": digest.as_str(), "size": size })
    }
}
