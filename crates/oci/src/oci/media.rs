//! Media types, each written once. oci-spec's `MediaType` covers the OCI ones inside documents;
//! these strings are for what it lacks (Docker's types, SPDX) and for HTTP `Accept` and
//! `Content-Type` headers.

/// An OCI image index: one manifest per platform.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image manifest: one platform's config and layers.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// A Docker manifest list, schema 2: Docker's index, read like an OCI one.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A Docker image manifest, schema 2: read like an OCI one.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A gzipped layer of a Docker schema 2 image; the same bytes as an OCI gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// An SPDX SBOM in JSON, the `artifactType` of the SBOM referrer.
pub const SPDX_JSON: &str = "application/spdx+json";
/// The `artifactType` of the debug-symbols referrer (`--split-debuginfo`): stevedore's own.
pub const DEBUGINFO: &str = "application/vnd.stevedore.debuginfo.v1";
/// Its layer: an ELF `.debug` file (DWARF and symbol table) for one platform's executable.
pub const DEBUGINFO_ELF: &str = "application/vnd.stevedore.debuginfo.elf.v1";
/// The annotation on that layer naming the executable's GNU build-id in hex.
pub const ANNOTATION_BUILD_ID: &str = "dev.stevedore.build-id";
/// cosign's simple-signing payload, the layer of a `.sig` manifest.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// A DSSE envelope (the provenance referrer's layer, and a cosign `.att` layer).
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// An in-toto statement: the DSSE payload type, and the provenance referrer's `artifactType`.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
