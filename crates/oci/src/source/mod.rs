//! Reading a published image, wherever it is: a registry ([`Location::Registry`]), an OCI
//! layout directory ([`Location::Layout`]) or an OCI archive, a layout in one tar
//! ([`Location::Archive`]). [`ImageSource`] reads all three the same way, as
//! go-containerregistry's `remote` and `layout` packages give the same `v1.Image`: the top
//! document, manifests and blobs by descriptor, a tag's manifest, the referrers of a digest.
//!
//! Every document read whole is bounded by its [`Cap`] (checked against the size its
//! descriptor declares before it is fetched), every blob is checked against its digest and
//! declared size while it streams, and a layout's `index.json` is parsed here and nowhere else
//! a published image is read.

mod files;

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::cache::{BlobStore, CacheError};
use crate::digest::{Digest, VerifyingReader};
use crate::oci::limits::{self, Cap, Refused};
use crate::reference::{Reference, ReferenceError};
use crate::registry::{media_type_of, Manifest, Registry, RegistryError};
use crate::text::printable;
use files::Files;

/// The annotation that names an entry of a layout's `index.json` (its tag, as `skopeo` and
/// `cosign save` write it).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Where a published image is, as a user names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `REGISTRY/REPO:TAG` or `@DIGEST`.
    Registry(Reference),
    /// `oci-layout=DIR`, holding one image.
    Layout(PathBuf),
    /// `oci-archive=FILE`: a layout in a tar, as `--output oci-archive=` writes it.
    Archive(PathBuf),
}

impl Location {
    /// The reference, when the image is in a registry.
    pub fn reference(&self) -> Option<&Reference> {
        match self {
            Location::Registry(reference) => Some(reference),
            Location::Layout(_) | Location::Archive(_) => None,
        }
    }
}

impl FromStr for Location {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some(("oci-layout" | "oci", dir)) => Ok(Location::Layout(dir.into())),
            Some(("oci-archive", file)) => Ok(Location::Archive(file.into())),
            _ => s.parse().map(Location::Registry),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Registry(r) => write!(f, "{r}"),
            Location::Layout(dir) => write!(f, "oci-layout={}", dir.display()),
            Location::Archive(file) => write!(f, "oci-archive={}", file.display()),
        }
    }
}

/// Why a published image could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A file of the layout or archive cannot be read.
    #[error("cannot read {what} from {image}")]
    Read {
        /// Which document or blob.
        what: String,
        /// The image, as given.
        image: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The layout holds more than one image (or none), so which one is meant is unclear.
    #[error("{image} holds {count} images ({names}): give a layout with one image, or its tag in a registry")]
    SeveralImages {
        /// The image, as given.
        image: String,
        /// How many images it holds.
        count: usize,
        /// Their names, comma separated.
        names: String,
    },
    /// A document is not the JSON it should be.
    #[error("{what} of {image} is not valid JSON: {message}")]
    Json {
        /// Which document.
        what: String,
        /// The image, as given.
        image: String,
        /// The parser's complaint.
        message: String,
    },
    /// A document larger than stevedore reads, or whose descriptor has no size.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The blob store, which a registry's blobs pass through, failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// Where the bytes come from: the registry client, or the files of a layout.
enum Backend {
    Registry(Reference),
    Files(Files),
}

/// A published image, opened for reading: in a registry (its blobs pass through the store,
/// verified on the way in), or in a layout or archive (verified while read).
///
/// ```no_run
/// use stevedore_oci::cache::BlobStore;
/// use stevedore_oci::registry::{Registry, RegistryOptions};
/// use stevedore_oci::source::{ImageSource, Location};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::new(RegistryOptions::default())?;
/// let store = BlobStore::open_default()?;
/// for place in ["oci-layout=target/image", "ghcr.io/me/app:1.0"] {
///     let location: Location = place.parse()?;
///     let top = ImageSource::new(location, &registry, &store).top()?;
///     println!("{place}: {} ({})", top.digest, top.media_type);
/// }
/// # Ok(())
/// # }
/// ```
pub struct ImageSource<'a> {
    location: Location,
    backend: Backend,
    registry: &'a Registry,
    store: &'a BlobStore,
    /// A layout's index.json, read once.
    index: OnceCell<ImageIndex>,
}

impl<'a> ImageSource<'a> {
    /// Opens `location`; nothing is read yet. `registry` is asked only for a registry's image.
    pub fn new(location: Location, registry: &'a Registry, store: &'a BlobStore) -> Self {
        let backend = match &location {
            Location::Registry(reference) => Backend::Registry(reference.clone()),
            Location::Layout(dir) => Backend::Files(Files::dir(dir)),
            Location::Archive(file) => Backend::Files(Files::tar(file)),
        };
        ImageSource {
            location,
            backend,
            registry,
            store,
            index: OnceCell::new(),
        }
    }

    /// Where the image is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The top document (an index or a manifest): the one a registry reference names, or the
    /// one image a layout holds.
    pub fn top(&self) -> Result<Manifest, SourceError> {
        match &self.backend {
            Backend::Registry(reference) => Ok(self.registry.fetch_manifest(reference)?),
            Backend::Files(files) => self.manifest(&self.only_image(files)?),
        }
    }

    /// The manifest (or index) `descriptor` names, if the size it declares is within the cap.
    pub fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest, SourceError> {
        let digest = self.digest(descriptor)?;
        match &self.backend {
            Backend::Registry(reference) => {
                limits::MANIFEST.check(Some(descriptor.size()), &self.name())?;
                let by_digest = reference.with_digest(digest);
                Ok(self.registry.fetch_manifest(&by_digest)?)
            }
            Backend::Files(_) => {
                let bytes = self.small_blob(descriptor, limits::MANIFEST)?;
                let declared = descriptor.media_type().to_string();
                Ok(Manifest {
                    digest,
                    media_type: media_type_of(&bytes, Some(declared)),
                    bytes,
                })
            }
        }
    }

    /// The manifest under `tag` (a cosign `sha256-<hex>.sig`, a referrers fallback tag), if
    /// there is one: in a registry by the tag, in a layout by its entry's [`REF_NAME`].
    pub fn tagged(&self, tag: &str) -> Result<Option<Manifest>, SourceError> {
        match &self.backend {
            Backend::Registry(reference) => {
                let tagged: Reference = format!("{}:{tag}", reference.name())
                    .parse()
                    .expect("a repository and a tag make a reference");
                match self.registry.fetch_manifest(&tagged) {
                    Ok(fetched) => Ok(Some(fetched)),
                    Err(RegistryError::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
            Backend::Files(files) => {
                let index = self.layout_index(files)?;
                let entry = index.manifests().iter().find(|m| ref_name(m) == Some(tag));
                entry.map(|e| self.manifest(e)).transpose()
            }
        }
    }

    /// The manifests of type `artifact_type` whose subject is `subject`. A registry lists them
    /// in its referrers API, or under the fallback tag (`sha256-<hex>`) where it has no such
    /// API; a layout lists every referrer in index.json, untagged, with its `artifactType`.
    pub fn referrers(
        &self,
        subject: &Digest,
        artifact_type: &str,
    ) -> Result<Vec<ImageManifest>, SourceError> {
        let listed = match &self.backend {
            Backend::Registry(reference) => match self.registry.referrers(reference, subject)? {
                Some(bytes) => Cow::Owned(self.parse(&bytes, "the referrers index")?),
                None => match self.tagged(&format!("sha256-{}", subject.hex()))? {
                    Some(fallback) => Cow::Owned(self.parse(&fallback.bytes, "the referrers tag")?),
                    None => return Ok(Vec::new()),
                },
            },
            Backend::Files(files) => Cow::Borrowed(self.layout_index(files)?),
        };
        let mut found = Vec::new();
        for entry in listed.manifests() {
            if entry.artifact_type().as_ref().map(ToString::to_string) != Some(artifact_type.into())
            {
                continue;
            }
            let manifest: ImageManifest =
                self.parse(&self.manifest(entry)?.bytes, "a referrer's manifest")?;
            let about = manifest.subject().as_ref().map(|s| s.digest().to_string());
            if about.as_deref() == Some(subject.as_str()) {
                found.push(manifest);
            }
        }
        Ok(found)
    }

    /// A blob as a stream, checked against its digest and declared size as it is read (a
    /// registry's goes through the store, verified on the way in).
    pub fn blob(&self, descriptor: &Descriptor) -> Result<Box<dyn Read>, SourceError> {
        let digest = self.digest(descriptor)?;
        let size = descriptor.size();
        match &self.backend {
            Backend::Registry(reference) => {
                self.registry
                    .fetch_blob(reference, &digest, size, self.store)?;
                Ok(Box::new(self.store.open_blob(&digest)?))
            }
            Backend::Files(files) => {
                let name = format!("blobs/sha256/{}", digest.hex());
                let file = files
                    .open(&name)
                    .map_err(|e| self.unreadable(e, &format!("blob {digest}")))?;
                // One byte past the declared size is enough to tell the size is wrong.
                let bounded = file.take(size.saturating_add(1));
                Ok(Box::new(VerifyingReader::new(bounded, digest, Some(size))))
            }
        }
    }

    /// A small blob (a config, manifest, payload) whole: its declared size is checked against
    /// `cap` before anything is fetched, and the read stops at the cap whatever arrives.
    pub fn small_blob(&self, descriptor: &Descriptor, cap: Cap) -> Result<Vec<u8>, SourceError> {
        cap.check(Some(descriptor.size()), &self.name())?;
        self.read_capped(self.blob(descriptor)?, cap)
    }

    /// `bytes` parsed as `T`; `what` names the document in the error.
    pub fn parse<T: serde::de::DeserializeOwned>(
        &self,
        bytes: &[u8],
        what: &str,
    ) -> Result<T, SourceError> {
        serde_json::from_slice(bytes).map_err(|e| SourceError::Json {
            what: what.to_owned(),
            image: self.name(),
            message: printable(&e.to_string()).into_owned(),
        })
    }

    /// The digest a descriptor names, if it is a sha256 digest.
    pub fn digest(&self, descriptor: &Descriptor) -> Result<Digest, SourceError> {
        Digest::try_from(descriptor.digest()).map_err(|_| SourceError::Json {
            what: format!(
                "descriptor digest `{}`",
                printable(descriptor.digest().as_ref())
            ),
            image: self.name(),
            message: "not a sha256 digest".into(),
        })
    }

    /// The one image a layout's index.json names (under one or more tags), skipping referrers
    /// (an SBOM, debug symbols) and cosign's signatures and attestations.
    fn only_image(&self, files: &Files) -> Result<Descriptor, SourceError> {
        let mut images: Vec<&Descriptor> = Vec::new();
        for entry in self.layout_index(files)?.manifests() {
            if entry.artifact_type().is_some() || ref_name(entry).is_some_and(is_cosign_tag) {
                continue;
            }
            if !images.iter().any(|i| i.digest() == entry.digest()) {
                images.push(entry);
            }
        }
        match images.as_slice() {
            [only] => Ok((*only).clone()),
            _ => Err(SourceError::SeveralImages {
                image: self.name(),
                count: images.len(),
                names: images
                    .iter()
                    .map(|i| printable(ref_name(i).unwrap_or("(untagged)")).into_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// A layout's index.json, within its cap; read once.
    fn layout_index(&self, files: &Files) -> Result<&ImageIndex, SourceError> {
        if let Some(index) = self.index.get() {
            return Ok(index);
        }
        let file = files
            .open("index.json")
            .map_err(|e| self.unreadable(e, "index.json"))?;
        let bytes = self.read_capped(file, limits::LAYOUT_INDEX)?;
        let index = self.parse(&bytes, "index.json")?;
        Ok(self.index.get_or_init(|| index))
    }

    fn read_capped(&self, reader: impl Read, cap: Cap) -> Result<Vec<u8>, SourceError> {
        let bytes = cap
            .read(reader)
            .map_err(|source| self.unreadable(source, cap.what))?;
        bytes.ok_or_else(|| cap.overran(&self.name()).into())
    }

    fn unreadable(&self, source: io::Error, what: &str) -> SourceError {
        SourceError::Read {
            what: what.to_owned(),
            image: self.name(),
            source,
        }
    }

    fn name(&self) -> String {
        self.location.to_string()
    }
}

/// The name a layout gives an entry of its index.json, if any.
pub fn ref_name(entry: &Descriptor) -> Option<&str> {
    entry
        .annotations()
        .as_ref()?
        .get(REF_NAME)
        .map(String::as_str)
}

/// Whether a layout's entry name is cosign's `sha256-<hex>.sig` or `.att`.
fn is_cosign_tag(name: &str) -> bool {
    name.starts_with("sha256-") && (name.ends_with(".sig") || name.ends_with(".att"))
}

#[cfg(test)]
mod tests;
