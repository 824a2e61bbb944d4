//! cosign's tag scheme: a manifest at `sha256-<hex>.sig` (or `.att`) in the image's repository
//! whose one layer is the signed payload, with the signature in a layer annotation. cosign 1.x
//! and 2.x (`cosign verify --key`) and containers/image's `sigstoreSigned` policy read it.

use std::collections::BTreeMap;

use oci_spec::image::MediaType;
use serde_json::json;

use super::keys::SigningKey;
use super::AttestError;
use crate::assemble::Tagged;
use crate::cache::BlobStore;
use crate::digest::Digest;
use crate::oci::media::{DSSE_ENVELOPE, OCI_MANIFEST, SIMPLE_SIGNING};
use crate::oci::{canonical_json, Descriptor};

/// The layer annotation holding the base64 DER signature of the layer's bytes.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a simple-signing payload, as cosign writes it.
const SIGNATURE_TYPE: &str = "cosign container image signature";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The simple-signing payload cosign signs: `repository` holds the image `digest`. Key order
/// and spacing are those of cosign's Go structs (`critical{identity,image,type}`, `optional`).
pub fn payload(repository: &str, digest: &Digest) -> Vec<u8> {
    canonical_json(&json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest.as_str()},
            "type": SIGNATURE_TYPE,
        },
        "optional": null,
    }))
}

/// cosign's tag for what is about `digest`: `sha256-<hex>.<suffix>`.
pub fn tag(digest: &Digest, suffix: &str) -> String {
    format!("sha256-{}.{suffix}", digest.hex())
}

/// The `.sig` manifest signing `digest` in `repository`.
pub fn signature(
    key: &SigningKey,
    repository: &str,
    digest: &Digest,
    store: &BlobStore,
) -> Result<Tagged, AttestError> {
    let payload = payload(repository, digest);
    let annotations = BTreeMap::from([(SIGNATURE_ANNOTATION, key.sign_base64(&payload))]);
    tagged(
        repository,
        tag(digest, "sig"),
        (&payload, SIMPLE_SIGNING),
        annotations,
        store,
    )
}

/// The `.att` manifest holding a signed DSSE `envelope` about `digest` (cosign attest's shape:
/// the signature is inside the envelope, so the annotation is empty).
pub fn attestation(
    repository: &str,
    digest: &Digest,
    envelope: &[u8],
    predicate_type: &str,
    store: &BlobStore,
) -> Result<Tagged, AttestError> {
    let annotations = BTreeMap::from([
        (SIGNATURE_ANNOTATION, String::new()),
        ("predicateType", predicate_type.to_owned()),
    ]);
    tagged(
        repository,
        tag(digest, "att"),
        (envelope, DSSE_ENVELOPE),
        annotations,
        store,
    )
}

/// A one-layer manifest with the config cosign's (go-containerregistry's) empty image gets.
fn tagged(
    repository: &str,
    tag: String,
    (layer, media_type): (&[u8], &str),
    annotations: BTreeMap<&str, String>,
    store: &BlobStore,
) -> Result<Tagged, AttestError> {
    let layer_digest = store.put_bytes(layer)?;
    let config = canonical_json(&json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.as_str()]},
    }));
    let config_digest = store.put_bytes(&config)?;
    let config_size = config.len() as u64;
    // The manifest is cosign's shape, written as JSON; the descriptors below name its blobs.
    let manifest = canonical_json(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config_size, "digest": config_digest.as_str()},
        "layers": [{
            "mediaType": media_type,
            "size": layer.len(),
            "digest": layer_digest.as_str(),
            "annotations": annotations,
        }],
    }));
    let manifest_digest = store.put_bytes(&manifest)?;
    let annotations = annotations
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    Ok(Tagged {
        repository: repository.to_owned(),
        tag,
        manifest: Descriptor::new(
            MediaType::from(OCI_MANIFEST),
            manifest_digest,
            manifest.len() as u64,
        ),
        blobs: vec![
            Descriptor::new(MediaType::from(OCI_CONFIG), config_digest, config_size),
            Descriptor::new(
                MediaType::from(media_type),
                layer_digest,
                layer.len() as u64,
            )
            .with_annotations(annotations),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_has_cosigns_shape() {
        let digest: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let text = String::from_utf8(payload("r.example/app", &digest)).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"r.example/app\"}},\
                 \"image\":{{\"docker-manifest-digest\":\"sha256:{}\"}},\
                 \"type\":\"cosign container image signature\"}},\"optional\":null}}",
                "ab".repeat(32)
            )
        );
        assert_eq!(
            tag(&digest, "sig"),
            format!("sha256-{}.sig", "ab".repeat(32))
        );
    }
}
