//! A registry client on the OCI distribution spec: [`Registry`] resolves tags, pulls images into
//! the blob store, and pushes blobs, manifests and referrers. [`Keychain`] finds the credential
//! each registry gets; [`store_credential`] and [`erase_credential`] keep one for `login` and
//! remove it for `logout`.
//!
//! The private `client` module owns HTTP, auth and retries; this module owns what is asked for
//! and checks that every byte received is what its digest says.

mod auth;
mod blob;
mod client;
mod error;
mod login;
mod origin;
mod push;
mod retry;
mod scheme;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use reqwest::header::{ACCEPT, CONTENT_TYPE};

#[cfg(any(fuzzing, test))]
pub(crate) use auth::{config_answer, ConfigAnswer};
pub use auth::{Challenge, Credential, Keychain};
pub use client::redact;
pub use error::RegistryError;
pub use login::{auth_file, erase_credential, store_credential, Stored};
// The value a pull returns lives in the shared vocabulary, so assembly needs no registry.
pub use crate::oci::BaseImage;

use crate::cache::BlobStore;
use crate::digest::Digest;
pub(crate) use crate::oci::media::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::oci::{limits, Descriptor};
use crate::platform::Platform;
use crate::progress::{Progress, Silent};
use crate::reference::Reference;
use client::Client;

/// Blob downloads at once: enough to hide latency, few enough to be kind to the registry.
const PARALLEL_BLOBS: usize = 3;

/// Settings for reaching registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Extra CA certificates (PEM) to trust besides the system's.
    pub ca_files: Vec<PathBuf>,
    /// `host[:port]`s that may be reached over plain HTTP (loopback always may).
    pub insecure: Vec<String>,
    /// Never touch the network: everything must come from the blob store.
    pub offline: bool,
    /// Empty means `stevedore/VERSION`.
    pub user_agent: String,
    /// How long a connection may stay silent (no response, no body bytes) before the request
    /// fails and is retried; `None` means 30 s.
    pub timeout: Option<Duration>,
}

/// A manifest or index as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Manifest {
    /// The digest of `bytes`: the document's name by content.
    pub digest: Digest,
    /// Its media type, from the document or else the registry's `Content-Type`.
    pub media_type: String,
    /// The document, byte for byte (its digest depends on every byte).
    pub bytes: Vec<u8>,
}

/// A client for the registries an image build talks to.
///
/// # Examples
///
/// What a tag names now, with the credentials the user's podman or docker config holds:
///
/// ```no_run
/// use stevedore_oci::registry::{Registry, RegistryOptions};
/// use stevedore_oci::Reference;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::new(RegistryOptions::default())?;
/// let base: Reference = "gcr.io/distroless/static-debian12:nonroot".parse()?;
/// println!("{base} is {}", registry.resolve(&base)?);
/// # Ok(())
/// # }
/// ```
///
/// `examples/copy.rs` pulls one platform of an image and pushes it to another repository.
pub struct Registry {
    client: Client,
    progress: Arc<dyn Progress>,
}

impl Registry {
    /// A client with the user's keychain (podman's and docker's credential files; the
    /// environment's credential only for the registries `STEVEDORE_REGISTRY` lists): for runs
    /// that only read. A run that writes uses [`Registry::writing_to`].
    pub fn new(opts: RegistryOptions) -> Result<Self, RegistryError> {
        Self::with_keychain(opts, Keychain::from_env())
    }

    /// A client for a run that writes to `targets` (or reads its own published image from
    /// them, as `verify` does): the environment's credential is offered to their registries,
    /// and to no other.
    pub fn writing_to<'a>(
        opts: RegistryOptions,
        targets: impl IntoIterator<Item = &'a Reference>,
    ) -> Result<Self, RegistryError> {
        let mut keychain = Keychain::from_env();
        keychain.offer_env_credential_to(targets.into_iter().map(|t| t.registry().to_owned()));
        Self::with_keychain(opts, keychain)
    }

    /// A client that takes its credentials from `keychain`.
    pub fn with_keychain(opts: RegistryOptions, keychain: Keychain) -> Result<Self, RegistryError> {
        Ok(Registry {
            client: Client::new(&opts, keychain)?,
            progress: Arc::new(Silent),
        })
    }

    /// Reports blob transfers to `progress` (nothing is reported by default).
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// The digest `reference`'s tag names now (of an index or a manifest).
    pub fn resolve(&self, reference: &Reference) -> Result<Digest, RegistryError> {
        self.manifest(reference, &reference.identifier(), reference.digest())
            .map(|(digest, _, _)| digest)
    }

    /// Resolves `reference` (at `pinned`, when given) to one image per platform and puts all
    /// their blobs in `store`. What the store already holds intact is not fetched again, so a
    /// pinned base costs no request on later builds and `--offline` needs none at all.
    pub fn pull(
        &self,
        reference: &Reference,
        pinned: Option<&Digest>,
        platforms: &[Platform],
        store: &BlobStore,
    ) -> Result<Vec<BaseImage>, RegistryError> {
        let pinned = pinned.or(reference.digest());
        if self.client.offline() {
            let missing = self.missing(reference, pinned, platforms, store)?;
            if !missing.is_empty() {
                return Err(RegistryError::NotCached {
                    reference: reference.to_string(),
                    missing: missing.join("; "),
                });
            }
        }
        let (top_digest, media_type, bytes) = self.cached_manifest(reference, pinned, store)?;
        let mut images = Vec::new();
        match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => {
                let index: ImageIndex = parse(&bytes, "index", reference)?;
                for platform in platforms {
                    let child = select(&index, platform, reference)?;
                    limits::MANIFEST.check(Some(child.size()), &reference.to_string())?;
                    let digest = blob_digest(child, reference)?;
                    let (_, child_type, child) =
                        self.cached_manifest(reference, Some(&digest), store)?;
                    if child_type != OCI_MANIFEST && child_type != DOCKER_MANIFEST {
                        return Err(RegistryError::MediaType {
                            reference: reference.to_string(),
                            media_type: child_type,
                        });
                    }
                    images.push(self.image(
                        reference,
                        platform,
                        Some(top_digest.clone()),
                        digest,
                        &child,
                        store,
                    )?);
                }
            }
            OCI_MANIFEST | DOCKER_MANIFEST => {
                for platform in platforms {
                    images.push(self.image(
                        reference,
                        platform,
                        None,
                        top_digest.clone(),
                        &bytes,
                        store,
                    )?);
                }
            }
            _ => {
                return Err(RegistryError::MediaType {
                    reference: reference.to_string(),
                    media_type,
                })
            }
        }
        self.download_layers(reference, &images, store)?;
        Ok(images)
    }

    /// A manifest or index from the store when `digest` names one there, else from the
    /// registry (by digest, or by the reference's tag) and then kept in the store.
    fn cached_manifest(
        &self,
        reference: &Reference,
        digest: Option<&Digest>,
        store: &BlobStore,
    ) -> Result<(Digest, String, Vec<u8>), RegistryError> {
        if let Some(digest) = digest {
            if let Some(bytes) = cached(store, digest, reference)? {
                return Ok((digest.clone(), media_type_of(&bytes, None), bytes));
            }
        }
        let identifier = digest.map_or_else(|| reference.identifier(), ToString::to_string);
        let fetched = self.manifest(reference, &identifier, digest)?;
        store
            .put_bytes(&fetched.2)
            .map_err(|source| RegistryError::Store {
                reference: reference.to_string(),
                source,
            })?;
        Ok(fetched)
    }

    /// Everything a pull of `reference` at `top` would read that the store lacks, in words;
    /// `--offline` reports all of it at once instead of failing on the first.
    fn missing(
        &self,
        reference: &Reference,
        top: Option<&Digest>,
        platforms: &[Platform],
        store: &BlobStore,
    ) -> Result<Vec<String>, RegistryError> {
        let Some(top) = top else {
            return Err(RegistryError::Offline {
                reference: reference.to_string(),
            });
        };
        let Some(bytes) = cached(store, top, reference)? else {
            return Ok(vec![format!("the manifest {top}")]);
        };
        let manifests = match media_type_of(&bytes, None).as_str() {
            OCI_INDEX | DOCKER_LIST => {
                let index: ImageIndex = parse(&bytes, "index", reference)?;
                platforms
                    .iter()
                    .map(|p| {
                        Ok((
                            p.to_string(),
                            blob_digest(select(&index, p, reference)?, reference)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, RegistryError>>()?
            }
            _ => vec![(crate::platform::list(platforms), top.clone())],
        };
        let mut missing = Vec::new();
        for (platform, digest) in manifests {
            let Some(bytes) = cached(store, &digest, reference)? else {
                missing.push(format!("the {platform} manifest {digest}"));
                continue;
            };
            let manifest: ImageManifest = parse(&bytes, "manifest", reference)?;
            let config = blob_digest(manifest.config(), reference)?;
            if !verified(store, &config, reference)? {
                missing.push(format!("the {platform} config {config}"));
            }
            for (n, layer) in manifest.layers().iter().enumerate() {
                let digest = blob_digest(layer, reference)?;
                if !verified(store, &digest, reference)? {
                    missing.push(format!(
                        "layer {} of {platform} {digest} ({} bytes)",
                        n + 1,
                        layer.size()
                    ));
                }
            }
        }
        Ok(missing)
    }

    /// The platforms `reference`'s index lists (at `pinned`, when given), as written there;
    /// `None` when it names a single image rather than an index. The index is kept in `store`,
    /// so the pull that follows reads it from there.
    pub fn index_platforms(
        &self,
        reference: &Reference,
        pinned: Option<&Digest>,
        store: &BlobStore,
    ) -> Result<Option<Vec<oci_spec::image::Platform>>, RegistryError> {
        let (_, media_type, bytes) =
            self.cached_manifest(reference, pinned.or(reference.digest()), store)?;
        match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => {
                let index: ImageIndex = parse(&bytes, "index", reference)?;
                let platforms = index
                    .manifests()
                    .iter()
                    .filter_map(|m| m.platform().clone());
                Ok(Some(platforms.collect()))
            }
            _ => Ok(None),
        }
    }

    /// The manifest or index `reference` names, checked against its digest when the
    /// reference has one.
    pub fn fetch_manifest(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        let (digest, media_type, bytes) =
            self.manifest(reference, &reference.identifier(), reference.digest())?;
        Ok(Manifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// The referrers API's index of what refers to `subject` (OCI 1.1: `GET
    /// /v2/NAME/referrers/DIGEST`), or `None` from a registry without that API, which answers
    /// 404 (one with it never does); such a registry lists referrers under the fallback tag.
    pub fn referrers(
        &self,
        repo: &Reference,
        subject: &Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let fetched = self.client.fetch_small(
            repo,
            &[repo.scope("pull")],
            &format!("referrers/{subject}"),
            limits::REFERRERS.max,
            &|http, url| http.get(url).header(ACCEPT, OCI_INDEX),
        );
        match fetched {
            Ok((_, bytes)) => Ok(Some(bytes)),
            Err(RegistryError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Fetches a manifest or index and checks its digest; returns (digest, media type, bytes).
    fn manifest(
        &self,
        reference: &Reference,
        identifier: &str,
        expected: Option<&Digest>,
    ) -> Result<(Digest, String, Vec<u8>), RegistryError> {
        let accept = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");
        let (headers, bytes) = self
            .client
            .fetch_small(
                reference,
                &[reference.scope("pull")],
                &format!("manifests/{identifier}"),
                limits::MANIFEST.max,
                &|http, url| http.get(url).header(ACCEPT, &accept),
            )
            .map_err(|e| not_found(e, "image", reference))?;
        let header_digest = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let actual = Digest::of(&bytes);
        for wanted in expected.into_iter().chain(header_digest.as_ref()) {
            if wanted != &actual {
                return Err(RegistryError::DigestMismatch {
                    what: "manifest",
                    reference: format!("{}@{identifier}", reference.name()),
                    expected: wanted.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        let media_type = media_type_of(&bytes, content_type);
        Ok((actual, media_type, bytes))
    }

    /// One platform's manifest: stores it and its config, and checks the config's platform.
    fn image(
        &self,
        reference: &Reference,
        platform: &Platform,
        index_digest: Option<Digest>,
        manifest_digest: Digest,
        bytes: &[u8],
        store: &BlobStore,
    ) -> Result<BaseImage, RegistryError> {
        let manifest: ImageManifest = parse(bytes, "manifest", reference)?;
        let stored = |source| RegistryError::Store {
            reference: reference.to_string(),
            source,
        };
        let config_desc = manifest.config();
        let config_digest = blob_digest(config_desc, reference)?;
        // The declared size is checked before the download, which then stops at it.
        let size = limits::CONFIG.check(Some(config_desc.size()), &reference.to_string())?;
        self.fetch_blob(reference, &config_digest, size, store)?;
        let config_bytes = store
            .read_small(&config_digest, limits::CONFIG.max)
            .map_err(stored)?;
        let config: ImageConfiguration = parse(&config_bytes, "config", reference)?;
        let (os, arch) = (config.os().to_string(), config.architecture().to_string());
        if !platform.matches(&os, &arch, config.variant().as_deref()) {
            return Err(RegistryError::PlatformMismatch {
                reference: reference.to_string(),
                wanted: platform.to_string(),
                found: format!("{os}/{arch}"),
            });
        }
        Ok(BaseImage {
            platform: platform.clone(),
            reference: reference.clone(),
            index_digest,
            manifest_digest,
            config_digest,
            config_size: config_desc.size(),
            layers: manifest
                .layers()
                .iter()
                .map(|layer| descriptor(layer, reference))
                .collect::<Result<_, _>>()?,
            manifest,
            config,
        })
    }

    /// Downloads every layer not yet in the store, a few at a time.
    fn download_layers(
        &self,
        reference: &Reference,
        images: &[BaseImage],
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        let mut wanted: Vec<(Digest, u64)> = Vec::new();
        for layer in images.iter().flat_map(|i| &i.layers) {
            let digest = layer.digest();
            if !wanted.iter().any(|(d, _)| d == digest) && !verified(store, digest, reference)? {
                wanted.push((digest.clone(), layer.size()));
            }
        }
        for chunk in wanted.chunks(PARALLEL_BLOBS) {
            std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|(d, size)| s.spawn(move || self.fetch_blob(reference, d, *size, store)))
                    .collect();
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().expect("a blob download does not panic"))
            })?;
        }
        Ok(())
    }
}

/// The body's own mediaType is authoritative; some registries send a generic Content-Type.
/// OCI documents may leave mediaType out, and a cached one has no Content-Type at all: then
/// the shape says what it is.
pub(crate) fn media_type_of(bytes: &[u8], content_type: Option<String>) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return content_type.unwrap_or_default();
    };
    let declared = value.get("mediaType").and_then(|m| m.as_str());
    let shape = match (value.get("manifests"), value.get("config")) {
        (Some(_), _) => Some(OCI_INDEX),
        (None, Some(_)) => Some(OCI_MANIFEST),
        (None, None) => None,
    };
    match (declared, content_type, shape) {
        (Some(declared), _, _) => declared.to_owned(),
        (None, Some(header), _) => header,
        (None, None, shape) => shape.unwrap_or_default().to_owned(),
    }
}

fn verified(
    store: &BlobStore,
    digest: &Digest,
    reference: &Reference,
) -> Result<bool, RegistryError> {
    store
        .verified(digest)
        .map_err(|source| RegistryError::Store {
            reference: reference.to_string(),
            source,
        })
}

/// A manifest from the store, if it is there and intact.
fn cached(
    store: &BlobStore,
    digest: &Digest,
    reference: &Reference,
) -> Result<Option<Vec<u8>>, RegistryError> {
    if !verified(store, digest, reference)? {
        return Ok(None);
    }
    store
        .read_small(digest, limits::MANIFEST.max)
        .map(Some)
        .map_err(|source| RegistryError::Store {
            reference: reference.to_string(),
            source,
        })
}

pub(crate) fn select<'i>(
    index: &'i ImageIndex,
    platform: &Platform,
    reference: &Reference,
) -> Result<&'i oci_spec::image::Descriptor, RegistryError> {
    let found = index.manifests().iter().find(|m| {
        m.platform().as_ref().is_some_and(|p| {
            platform.matches(
                &p.os().to_string(),
                &p.architecture().to_string(),
                p.variant().as_deref(),
            )
        })
    });
    found.ok_or_else(|| {
        let available: Vec<String> = index
            .manifests()
            .iter()
            .filter_map(|m| m.platform().as_ref())
            .map(|p| match p.variant() {
                Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
                None => format!("{}/{}", p.os(), p.architecture()),
            })
            .collect();
        RegistryError::NoPlatform {
            reference: reference.to_string(),
            wanted: platform.to_string(),
            available: available.join(", "),
        }
    })
}

/// A descriptor of a document from elsewhere, refused unless its digest is sha256.
fn descriptor(
    desc: &oci_spec::image::Descriptor,
    reference: &Reference,
) -> Result<Descriptor, RegistryError> {
    Descriptor::try_from(desc).map_err(|_| RegistryError::MediaType {
        reference: reference.to_string(),
        media_type: format!("a non-sha256 digest {}", desc.digest()),
    })
}

pub(crate) fn blob_digest(
    desc: &oci_spec::image::Descriptor,
    reference: &Reference,
) -> Result<Digest, RegistryError> {
    descriptor(desc, reference).map(|d| d.digest().clone())
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    reference: &Reference,
) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|source| RegistryError::Json {
        what,
        reference: reference.to_string(),
        source,
    })
}

fn not_found(e: RegistryError, what: &'static str, reference: &Reference) -> RegistryError {
    match e {
        RegistryError::Status { status: 404, .. } => RegistryError::NotFound {
            what,
            reference: reference.to_string(),
            name: reference.name(),
        },
        other => other,
    }
}
