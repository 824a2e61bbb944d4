//! `verify --key`: the published image's cosign signatures (the top digest and, for an index,
//! each platform's manifest) and its provenance, checked with a public key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value;

use super::{Published, PublishedImage, Source, VerifyError};
use crate::attest::cosign::{self, SIGNATURE_ANNOTATION};
use crate::attest::{dsse, provenance, PublicKey};
use crate::digest::Digest;
use crate::oci::limits;
use crate::oci::media::{IN_TOTO, SIMPLE_SIGNING};

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
    source: &Source,
    image: &PublishedImage,
    key: &PublicKey,
) -> Result<Vec<Finding>, VerifyError> {
    let mut digests = vec![image.digest.clone()];
    if image.platforms.iter().all(|(_, d, _)| d != &image.digest) {
        digests.extend(image.platforms.iter().map(|(_, d, _)| d.clone()));
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

fn signature(source: &Source, digest: &Digest, key: &PublicKey) -> Result<Finding, VerifyError> {
    let tag = cosign::tag(digest, "sig");
    let Some(manifest) = source.tagged(&tag)? else {
        return Ok(finding(
            false,
            format!("{digest}: no signature ({tag} is missing)"),
        ));
    };
    let repository = match source.published {
        Published::Registry(reference) => Some(reference.name()),
        Published::Layout(_) => None,
    };
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        if layer["mediaType"] != SIMPLE_SIGNING {
            continue;
        }
        let payload = source.small_blob(layer, limits::SIGNATURE)?;
        let Some(sig) = layer["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
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

fn provenance(source: &Source, top: &Digest, key: &PublicKey) -> Result<Finding, VerifyError> {
    let Some(referrers) = source.referrers_of(top)? else {
        return Ok(finding(
            false,
            format!("{top}: no provenance (nothing refers to it, by the referrers API or the sha256-{} tag)", top.hex()),
        ));
    };
    for entry in referrers["manifests"].as_array().into_iter().flatten() {
        if entry["artifactType"] != IN_TOTO {
            continue;
        }
        let artifact = source.manifest_of(entry)?;
        let Some(layer) = artifact["layers"].get(0) else {
            continue;
        };
        let envelope: Value =
            serde_json::from_slice(&source.small_blob(layer, limits::PROVENANCE)?)
                .unwrap_or(Value::Null);
        let payload_type = envelope["payloadType"].as_str().unwrap_or_default();
        let Some(payload) = envelope["payload"]
            .as_str()
            .and_then(|p| B64.decode(p).ok())
        else {
            continue;
        };
        let pae = dsse::pae(payload_type, &payload);
        let signed = envelope["signatures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["sig"].as_str().and_then(|s| B64.decode(s).ok()))
            .any(|sig| key.verifies(&pae, &sig));
        let statement: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
        let about_top = statement["predicateType"] == provenance::PREDICATE_TYPE
            && statement["subject"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["digest"]["sha256"] == top.hex());
        if signed && about_top {
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
