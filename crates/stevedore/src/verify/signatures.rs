//! `verify --key`: the published image's cosign signatures (the top digest and, for an index,
//! each platform's manifest) and its provenance, checked with a public key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use oci_spec::image::ImageManifest;
use serde_json::Value;

use super::{PublishedImage, VerifyError};
use crate::attest::cosign::{self, SIGNATURE_ANNOTATION};
use crate::attest::{dsse, provenance, PublicKey};
use crate::digest::Digest;
use crate::oci::limits;
use crate::oci::media::{IN_TOTO, SIMPLE_SIGNING};
use crate::source::ImageSource;

/// One finding, in words: `ok` when the check holds.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Whether it holds.
    pub ok: bool,
    /// What was checked and what was found.
    pub message: String,
}

/// Checks the `.sig` of every digest a runtime may read first, and the provenance's signature
/// and subject.
pub(crate) fn check(
    source: &ImageSource,
    image: &PublishedImage,
    key: &PublicKey,
) -> Result<Vec<Finding>, VerifyError> {
    let mut digests = vec![image.digest.clone()];
    if image.platforms.iter().all(|p| p.digest != image.digest) {
        digests.extend(image.platforms.iter().map(|p| p.digest.clone()));
    }
    let mut findings = Vec::new();
    for digest in &digests {
        findings.push(signature(source, digest, key)?);
    }
    findings.push(provenance(source, &image.digest, key)?);
    Ok(findings)
}

fn finding(ok: bool, message: String) -> Finding {
    Finding { ok, message }
}

fn signature(
    source: &ImageSource,
    digest: &Digest,
    key: &PublicKey,
) -> Result<Finding, VerifyError> {
    let tag = cosign::tag(digest, "sig");
    let Some(tagged) = source.tagged(&tag)? else {
        return Ok(finding(
            false,
            format!("{digest}: no signature ({tag} is missing)"),
        ));
    };
    let manifest: ImageManifest = source.parse(&tagged.bytes, &tag)?;
    // A layout names no repository, so its signatures are checked for the digest alone.
    let repository = source.location().reference().map(|r| r.name());
    for layer in manifest.layers() {
        if layer.media_type().to_string() != SIMPLE_SIGNING {
            continue;
        }
        let payload = source.small_blob(layer, limits::SIGNATURE)?;
        let Some(sig) = layer
            .annotations()
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
            .and_then(|s| B64.decode(s).ok())
        else {
            continue;
        };
        let claims: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
        let names_digest = claims["critical"]["image"]["docker-manifest-digest"] == digest.as_str();
        let names_repo = repository
            .as_ref()
            .is_none_or(|r| claims["critical"]["identity"]["docker-reference"] == r.as_str());
        if names_digest && names_repo && key.verifies(&payload, &sig) {
            return Ok(finding(
                true,
                format!("{digest}: signature verified ({tag})"),
            ));
        }
    }
    Ok(finding(
        false,
        format!(
            "{digest}: no signature in {tag} verifies with the key for this image and repository"
        ),
    ))
}

fn provenance(source: &ImageSource, top: &Digest, key: &PublicKey) -> Result<Finding, VerifyError> {
    let envelopes = envelopes(source, top)?;
    if envelopes.is_empty() {
        return Ok(finding(
            false,
            format!(
                "{top}: no provenance (no in-toto referrer of it, by the referrers API, the \
                 sha256-{} tag or a layout's index.json)",
                top.hex()
            ),
        ));
    }
    for envelope in &envelopes {
        let pae = dsse::pae(&envelope.payload_type, &envelope.payload);
        let signed = envelope
            .signatures
            .iter()
            .any(|sig| key.verifies(&pae, sig));
        let statement: Value = serde_json::from_slice(&envelope.payload).unwrap_or(Value::Null);
        if signed && is_provenance_of(&statement, top) {
            return Ok(finding(
                true,
                format!("{top}: provenance signed, its subject is this image"),
            ));
        }
    }
    Ok(finding(
        false,
        format!("{top}: no provenance signed with the key names this image"),
    ))
}

/// A DSSE envelope attached to an image, decoded; its signatures unchecked.
pub(super) struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<Vec<u8>>,
}

/// The DSSE envelopes of the in-toto referrers of `top` (its attestations), those that decode.
pub(super) fn envelopes(source: &ImageSource, top: &Digest) -> Result<Vec<Envelope>, VerifyError> {
    let mut out = Vec::new();
    for artifact in source.referrers(top, IN_TOTO)? {
        let Some(layer) = artifact.layers().first() else {
            continue;
        };
        let envelope: Value =
            serde_json::from_slice(&source.small_blob(layer, limits::PROVENANCE)?)
                .unwrap_or(Value::Null);
        let Some(payload) = envelope["payload"]
            .as_str()
            .and_then(|p| B64.decode(p).ok())
        else {
            continue;
        };
        let signatures = envelope["signatures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["sig"].as_str().and_then(|s| B64.decode(s).ok()))
            .collect();
        out.push(Envelope {
            payload_type: envelope["payloadType"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            payload,
            signatures,
        });
    }
    Ok(out)
}

/// Whether an in-toto statement is SLSA provenance whose subject is `top`.
pub(super) fn is_provenance_of(statement: &Value, top: &Digest) -> bool {
    statement["predicateType"] == provenance::PREDICATE_TYPE
        && statement["subject"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["digest"]["sha256"] == top.hex())
}
