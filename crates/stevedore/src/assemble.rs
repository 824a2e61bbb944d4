//! Stage 4: put the base's layers and ours together into an OCI config, manifest and index.
//!
//! Every JSON document goes through [`canonical_json`] (keys sorted at every level, no
//! whitespace), so the same inputs give the same bytes and therefore the same digests.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use oci_spec::image::{History, ImageConfiguration, ImageIndex, ImageManifestBuilder, MediaType};

use crate::build_id::BuildId;
use crate::cache::{BlobStore, CacheError};
use crate::digest::Digest;
use crate::layer::{Layer, BIN_DIR, NONROOT_UID};
use crate::oci::media::{ANNOTATION_BUILD_ID, DEBUGINFO, DEBUGINFO_ELF, DOCKER_LAYER_GZIP};
use crate::oci::{canonical_json, rfc3339, BaseImage, Descriptor};
use crate::plan::Plan;
use crate::platform::Platform;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// One platform's finished image, all of whose blobs are in the store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Image {
    /// The platform it runs on.
    pub platform: Platform,
    /// Its manifest.
    pub manifest: Descriptor,
    /// Its config.
    pub config: Descriptor,
    /// Base layers first, then ours.
    pub layers: Vec<Descriptor>,
    /// The manifest's annotations (the index carries those every platform shares).
    pub annotations: BTreeMap<String, String>,
}

impl Image {
    /// The manifest's digest: the image's name by content.
    pub fn manifest_digest(&self) -> Digest {
        self.manifest.digest().clone()
    }
}

/// What a build produced: one image per platform, and an index when there are several.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Built {
    /// One image per platform, in the plan's order.
    pub images: Vec<Image>,
    /// The OCI index over `images`; always made, published when more than one platform.
    pub index: Descriptor,
    /// Artifacts about the images (an SBOM for each, the provenance of the whole), attached to
    /// them as OCI 1.1 referrers.
    pub referrers: Vec<Referrer>,
    /// Manifests found by a tag of their own beside the image: cosign's `sha256-<hex>.sig`
    /// signatures and `.att` attestations, one set per repository.
    pub tagged: Vec<Tagged>,
}

/// A manifest published under a tag derived from what it is about (cosign's scheme).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Tagged {
    /// The repository (`REGISTRY/REPOSITORY`) it belongs to: its payload names it.
    pub repository: String,
    /// Its tag, e.g. `sha256-<hex>.sig`.
    pub tag: String,
    /// Its manifest.
    pub manifest: Descriptor,
    /// Its config and layers, all in the store.
    pub blobs: Vec<Descriptor>,
}

impl Tagged {
    /// The manifest's digest.
    pub fn manifest_digest(&self) -> Digest {
        self.manifest.digest().clone()
    }
}

/// An artifact that refers to an image: its manifest names the image as `subject`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Referrer {
    /// The image manifest it is about.
    pub subject: Descriptor,
    /// The artifact's manifest; its descriptor carries `artifactType`.
    pub manifest: Descriptor,
    /// The empty config and the document, all in the store.
    pub blobs: Vec<Descriptor>,
}

impl Referrer {
    /// The artifact manifest's digest.
    pub fn manifest_digest(&self) -> Digest {
        self.manifest.digest().clone()
    }

    /// The digest of the image manifest it is about.
    pub fn subject_digest(&self) -> Digest {
        self.subject.digest().clone()
    }
}

/// The OCI 1.1 empty config, `{}`, which an artifact manifest points at.
const EMPTY_JSON: &[u8] = b"{}";

/// Stores a document of `artifact_type` (already in the store as `document`) and an artifact
/// manifest that attaches it to `subject`, the way OCI 1.1 attaches SBOMs and signatures.
pub fn referrer(
    subject: &Descriptor,
    artifact_type: &str,
    document: Descriptor,
    created: i64,
    store: &BlobStore,
) -> Result<Referrer, AssembleError> {
    let empty_digest = store_blob(store, EMPTY_JSON, "empty config")?;
    let empty = Descriptor::new(MediaType::EmptyJSON, empty_digest, EMPTY_JSON.len() as u64);
    // The manifest carries `{}` inline too, as OCI 1.1 suggests for the empty config; only
    // there, so `Descriptor` needs no `data`.
    let mut config = oci_spec::image::Descriptor::from(&empty);
    config.set_data(Some("e30=".to_owned()));
    // The subject names the manifest alone: which platform it runs on is the index's business.
    let subject = Descriptor::new(
        subject.media_type().clone(),
        subject.digest().clone(),
        subject.size(),
    );
    let artifact = MediaType::Other(artifact_type.to_owned());
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(artifact.clone())
        .config(config)
        .layers(vec![(&document).into()])
        .subject(&subject)
        .annotations(HashMap::from([(
            ANNOTATION_CREATED.to_owned(),
            rfc3339(created),
        )]))
        .build()
        .map_err(|e| AssembleError::Spec {
            what: "artifact manifest",
            message: e.to_string(),
        })?;
    let bytes = canonical_json(&manifest);
    let digest = store_blob(store, &bytes, "artifact manifest")?;
    let descriptor = Descriptor::new(MediaType::ImageManifest, digest, bytes.len() as u64)
        .with_artifact_type(artifact);
    Ok(Referrer {
        subject,
        manifest: descriptor,
        blobs: vec![empty, document],
    })
}

/// Stores a platform executable's `.debug` file (streamed from `path`) and a referrer that
/// attaches it to the image (`subject`), its layer annotated with the build-id.
pub fn debuginfo_referrer(
    subject: &Descriptor,
    path: &Path,
    build_id: &BuildId,
    bin: &str,
    created: i64,
    store: &BlobStore,
) -> Result<Referrer, AssembleError> {
    let (digest, size) = store
        .put_with("debug file", |w| {
            std::io::copy(&mut std::fs::File::open(path)?, w).map(drop)
        })
        .map_err(|source| AssembleError::Store {
            what: "debug file",
            source,
        })?;
    let layer = Descriptor::new(MediaType::Other(DEBUGINFO_ELF.to_owned()), digest, size)
        .with_annotations(BTreeMap::from([
            (ANNOTATION_BUILD_ID.to_owned(), build_id.to_string()),
            (ANNOTATION_TITLE.to_owned(), format!("{bin}.debug")),
        ]));
    referrer(subject, DEBUGINFO, layer, created, store)
}

impl Built {
    /// What gets published and named: the manifest of a single platform, else the index.
    pub fn top(&self) -> &Descriptor {
        match self.images.as_slice() {
            [only] => &only.manifest,
            _ => &self.index,
        }
    }

    /// The digest of [`Built::top`].
    pub fn top_digest(&self) -> Digest {
        self.top().digest().clone()
    }
}

/// Why the config, manifest or index of an image (or a referrer) cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssembleError {
    /// Writing a document or blob to the blob store failed (check the disk and the cache
    /// directory's permissions).
    #[error("cannot store the image {what}")]
    Store {
        /// What was being stored: `config`, `manifest`, `debug file`, ...
        what: &'static str,
        /// Why the store failed.
        #[source]
        source: CacheError,
    },
    /// The OCI library refused a document stevedore built; this is a bug in stevedore.
    #[error("cannot build the image {what}: {message}")]
    Spec {
        /// The document: `manifest` or `artifact manifest`.
        what: &'static str,
        /// What the OCI library said.
        message: String,
    },
    /// A layer of the base image is of a kind stevedore cannot build on (neither a tar nor a
    /// gzip or zstd compressed tar); choose another base image.
    #[error("base image layer {digest} has media type `{media_type}`, which stevedore cannot stack layers on")]
    LayerMediaType {
        /// The layer's digest.
        digest: String,
        /// The layer's media type.
        media_type: String,
    },
}

/// What stevedore puts on the base: the layer of what the base lacks (accounts, a CA bundle),
/// if it lacks anything, under the application's layer.
#[derive(Debug, Clone, Copy)]
pub struct OurLayers<'a> {
    /// [`crate::layer::LayerSpec::accounts`]'s layer.
    pub accounts: Option<&'a Layer>,
    /// The binary's layer, on top.
    pub application: &'a Layer,
    /// The CA bundle `SSL_CERT_FILE` names (the base's, else the one `accounts` adds).
    pub ca_bundle: &'a str,
}

impl OurLayers<'_> {
    /// Bottom first, each with what its history entry says made it.
    fn with_history(&self, plan: &Plan) -> Vec<(&Layer, String)> {
        let accounts = self.accounts.map(|layer| {
            let made = "stevedore: the accounts and CA bundle the base lacks".to_owned();
            (layer, made)
        });
        let application = format!("stevedore build {} (bin {})", plan.package, plan.bin);
        accounts
            .into_iter()
            .chain([(self.application, application)])
            .collect()
    }
}

/// Builds the config and manifest for one platform and stores both.
pub fn assemble(
    plan: &Plan,
    platform: &Platform,
    base: Option<&BaseImage>,
    ours: OurLayers<'_>,
    store: &BlobStore,
) -> Result<Image, AssembleError> {
    let config = config(plan, platform, base, ours)?;
    let config_bytes = match &plan.image.healthcheck {
        // oci-spec's config has no Healthcheck (docker's field); without one the bytes are
        // exactly as before, so existing images keep their digests.
        None => canonical_json(&config),
        Some(check) => {
            let mut value = serde_json::to_value(&config).expect("a config serialises");
            value["config"]["Healthcheck"] =
                serde_json::to_value(check).expect("a health check serialises");
            canonical_json(&value)
        }
    };
    let config_digest = store_blob(store, &config_bytes, "config")?;
    let config_desc = Descriptor::new(
        MediaType::ImageConfig,
        config_digest,
        config_bytes.len() as u64,
    );

    let mut layers = match base {
        Some(base) => base
            .layers
            .iter()
            .map(normalise_layer)
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    for (layer, _) in ours.with_history(plan) {
        layers.push(Descriptor::new(
            layer.compression.media_type(),
            layer.digest.clone(),
            layer.size,
        ));
    }

    let annotations = annotations(plan, base);
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(&config_desc)
        .layers(layers.iter().map(Into::into).collect::<Vec<_>>())
        .annotations(to_hash_map(annotations.clone()))
        .build()
        .map_err(|e| AssembleError::Spec {
            what: "manifest",
            message: e.to_string(),
        })?;
    let manifest_bytes = canonical_json(&manifest);
    let manifest_digest = store_blob(store, &manifest_bytes, "manifest")?;
    let manifest_desc = Descriptor::new(
        MediaType::ImageManifest,
        manifest_digest,
        manifest_bytes.len() as u64,
    )
    .with_platform(platform.clone());
    Ok(Image {
        platform: platform.clone(),
        manifest: manifest_desc,
        config: config_desc,
        layers,
        annotations,
    })
}

/// Builds and stores the OCI index over every platform's image.
pub fn index(images: &[Image], store: &BlobStore) -> Result<Descriptor, AssembleError> {
    let manifests = images.iter().map(|i| (&i.manifest).into()).collect();
    let bytes = index_document(manifests, images.iter().map(|i| &i.annotations));
    let digest = store_blob(store, &bytes, "index")?;
    Ok(Descriptor::new(
        MediaType::ImageIndex,
        digest,
        bytes.len() as u64,
    ))
}

/// The index JSON over `manifests`, annotated with what all of them share (a base digest, say,
/// differs per platform and stays on the manifests). `index create` builds the same document from
/// images pushed separately, so both ways give the same digest.
pub fn index_document<'a>(
    manifests: Vec<oci_spec::image::Descriptor>,
    annotations: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
) -> Vec<u8> {
    let mut all = annotations.into_iter();
    let mut common = all.next().cloned().unwrap_or_default();
    for other in all {
        common.retain(|k, v| other.get(k) == Some(v));
    }
    let mut index = ImageIndex::default();
    index.set_schema_version(2);
    index.set_media_type(Some(MediaType::ImageIndex));
    index.set_manifests(manifests);
    index.set_annotations(Some(to_hash_map(common)));
    canonical_json(&index)
}

fn config(
    plan: &Plan,
    platform: &Platform,
    base: Option<&BaseImage>,
    ours: OurLayers<'_>,
) -> Result<ImageConfiguration, AssembleError> {
    let base_config = base.map(|b| &b.config);
    let inherited = base_config
        .and_then(|c| c.config().clone())
        .unwrap_or_default();
    let created = rfc3339(plan.created);

    let settings = &plan.image;
    let mut runtime = inherited.clone();
    runtime.set_entrypoint(Some(vec![format!("/{BIN_DIR}/{}", plan.bin)]));
    // Docker semantics: a new entrypoint drops the base's CMD, which was written for another program.
    runtime.set_cmd(settings.args.clone());
    let user = settings
        .user
        .clone()
        .or_else(|| inherited.user().clone())
        .filter(|u| !u.is_empty());
    let nonroot = format!("{NONROOT_UID}:{NONROOT_UID}");
    let is_nonroot = user
        .as_deref()
        .is_none_or(|u| u == NONROOT_UID.to_string() || u == nonroot);
    runtime.set_user(Some(user.unwrap_or(nonroot)));
    runtime.set_env(Some(env(
        inherited.env().as_deref().unwrap_or_default(),
        ours.ca_bundle,
        &settings.env,
    )));
    // The base's home for its user (distroless: /home/nonroot, 0700) is no place for another user.
    let own_user = settings.user.is_some() && !is_nonroot;
    let working_dir = inherited
        .working_dir()
        .clone()
        .filter(|w| !w.is_empty() && !own_user);
    let default_dir = if is_nonroot { "/home/nonroot" } else { "/" };
    runtime.set_working_dir(Some(working_dir.unwrap_or_else(|| default_dir.to_owned())));
    if !settings.ports.is_empty() {
        let mut ports: Vec<String> = inherited.exposed_ports().clone().unwrap_or_default();
        ports.extend(settings.ports.iter().map(|p| format!("{p}/tcp")));
        ports.sort();
        ports.dedup();
        runtime.set_exposed_ports(Some(ports));
    }
    let mut labels: BTreeMap<String, String> = inherited
        .labels()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.extend(image_labels(plan));
    labels.extend(settings.labels.clone());
    runtime.set_labels(Some(to_hash_map(labels)));

    let mut rootfs = base_config.map(|c| c.rootfs().clone()).unwrap_or_default();
    let mut history = base_config
        .and_then(|c| c.history().clone())
        .unwrap_or_default();
    for (layer, made_by) in ours.with_history(plan) {
        rootfs.diff_ids_mut().push(layer.diff_id.to_string());
        let mut entry = History::default();
        entry.set_created(Some(created.clone()));
        entry.set_created_by(Some(made_by));
        entry.set_comment(Some(format!("stevedore {}", env!("CARGO_PKG_VERSION"))));
        history.push(entry);
    }

    let mut config = ImageConfiguration::default();
    config.set_created(Some(created));
    config.set_architecture(platform.architecture.as_str().into());
    config.set_os(platform.os.as_str().into());
    config.set_variant(platform.variant.clone());
    config.set_config(Some(runtime));
    config.set_rootfs(rootfs);
    config.set_history(Some(history));
    Ok(config)
}

/// The base's environment with PATH kept (or set), SSL_CERT_FILE pointing at the image's CA
/// bundle, and the project's variables last (replacing any of the same name).
fn env(inherited: &[String], ca_bundle: &str, ours: &BTreeMap<String, String>) -> Vec<String> {
    let replaced = |e: &&String| {
        let name = e.split('=').next().unwrap_or_default();
        name == "SSL_CERT_FILE" || ours.contains_key(name)
    };
    let mut env: Vec<String> = inherited.iter().filter(|e| !replaced(e)).cloned().collect();
    if !env.iter().any(|e| e.starts_with("PATH=")) && !ours.contains_key("PATH") {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    env.push(format!("SSL_CERT_FILE=/{ca_bundle}"));
    env.extend(ours.iter().map(|(k, v)| format!("{k}={v}")));
    env
}

fn image_labels(plan: &Plan) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(ANNOTATION_TITLE.to_owned(), plan.bin.clone());
    labels.insert(ANNOTATION_VERSION.to_owned(), plan.version.clone());
    if let Some(source) = &plan.source {
        labels.insert(ANNOTATION_SOURCE.to_owned(), source.clone());
    }
    if let Some(revision) = &plan.revision {
        labels.insert(ANNOTATION_REVISION.to_owned(), revision.clone());
    }
    labels
}

fn annotations(plan: &Plan, base: Option<&BaseImage>) -> BTreeMap<String, String> {
    let mut annotations = image_labels(plan);
    annotations.extend(plan.image.annotations.clone());
    annotations.insert(ANNOTATION_CREATED.to_owned(), rfc3339(plan.created));
    if let Some(base) = base {
        annotations.insert(ANNOTATION_BASE_NAME.to_owned(), base.reference.to_string());
        annotations.insert(
            ANNOTATION_BASE_DIGEST.to_owned(),
            base.manifest_digest.to_string(),
        );
    }
    annotations
}

/// Base layers keep their bytes; Docker's media types are renamed to their OCI equivalents.
fn normalise_layer(desc: &Descriptor) -> Result<Descriptor, AssembleError> {
    let media_type = match desc.media_type() {
        MediaType::ImageLayerGzip | MediaType::ImageLayer | MediaType::ImageLayerZstd => {
            desc.media_type().clone()
        }
        MediaType::Other(t) if t == DOCKER_LAYER_GZIP => MediaType::ImageLayerGzip,
        other => {
            return Err(AssembleError::LayerMediaType {
                digest: desc.digest().to_string(),
                media_type: other.to_string(),
            })
        }
    };
    let out = Descriptor::new(media_type, desc.digest().clone(), desc.size());
    Ok(match desc.annotations() {
        Some(annotations) => out.with_annotations(annotations.clone()),
        None => out,
    })
}

fn store_blob(
    store: &BlobStore,
    bytes: &[u8],
    what: &'static str,
) -> Result<Digest, AssembleError> {
    store
        .put_bytes(bytes)
        .map_err(|source| AssembleError::Store { what, source })
}

fn to_hash_map(map: BTreeMap<String, String>) -> HashMap<String, String> {
    map.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::CA_BUNDLE_PATH;

    #[test]
    fn env_keeps_path_and_sets_cert_file() {
        let env = env(
            &["PATH=/bin".into(), "SSL_CERT_FILE=/x".into(), "A=1".into()],
            CA_BUNDLE_PATH,
            &BTreeMap::new(),
        );
        assert_eq!(
            env,
            [
                "PATH=/bin",
                "A=1",
                "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
            ]
        );
        let alpine = super::env(&[], "etc/ssl/cert.pem", &BTreeMap::new());
        assert!(alpine[0].starts_with("PATH=/usr/local/sbin"));
        assert_eq!(alpine[1], "SSL_CERT_FILE=/etc/ssl/cert.pem");
        let ours = BTreeMap::from([("A".to_owned(), "2".to_owned())]);
        let env = super::env(&["A=1".into()], CA_BUNDLE_PATH, &ours);
        assert_eq!(env.last().unwrap(), "A=2");
    }
}
