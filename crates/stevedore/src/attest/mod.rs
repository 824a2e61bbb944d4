//! Signing and attesting a built image: the key (`keys.rs`), cosign's `.sig`/`.att` tag scheme
//! (`cosign.rs`), the DSSE envelope (`dsse.rs`) and SLSA v1 provenance (`provenance.rs`).
//!
//! Everything here is deterministic: ECDSA signatures use RFC 6979 nonces, the provenance
//! takes its times from `SOURCE_DATE_EPOCH`, so equal inputs give equal digests.

pub mod cosign;
pub mod dsse;
pub mod keys;
pub mod provenance;

use std::collections::BTreeMap;

use oci_spec::image::MediaType;

use crate::assemble::{self, AssembleError, Built};
use crate::cache::{BlobStore, CacheError};
use crate::oci::media::{DSSE_ENVELOPE, IN_TOTO};
use crate::oci::Descriptor;
use crate::plan::Plan;
pub use keys::{PublicKey, SigningKey};
pub use provenance::{Material, Toolchain};

/// Why signatures or provenance cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The blob store failed.
    #[error("cannot store a signature or the provenance")]
    Store(#[from] CacheError),
    /// The provenance referrer cannot be assembled.
    #[error(transparent)]
    Assemble(#[from] AssembleError),
}

/// What to add to a build.
#[derive(Debug, Clone, Copy)]
pub struct Attest<'a> {
    /// Sign with it: cosign `.sig` for the index and each platform's manifest, the provenance
    /// envelope, and an `.att` beside it.
    pub key: Option<&'a SigningKey>,
    /// Attach SLSA provenance.
    pub provenance: bool,
    /// The image this one was rebased from (`rebase`), which the provenance names.
    pub rebased_from: Option<&'a Material>,
}

/// Adds the provenance referrer and, with a key, the signatures for each of `repositories`
/// (`REGISTRY/REPOSITORY`, which the signed payloads name) to `built`.
pub fn attest(
    plan: &Plan,
    built: &mut Built,
    attest: Attest,
    repositories: &[String],
    toolchain: &Toolchain,
    store: &BlobStore,
) -> Result<(), AttestError> {
    let top = built.top_digest();
    let mut envelope = None;
    if attest.provenance {
        let statement = provenance::statement(plan, built, toolchain, attest.rebased_from);
        let bytes = dsse::envelope(IN_TOTO, &statement, attest.key);
        let digest = store.put_bytes(&bytes)?;
        let document = Descriptor::new(
            MediaType::Other(DSSE_ENVELOPE.to_owned()),
            digest,
            bytes.len() as u64,
        )
        .with_annotations(BTreeMap::from([(
            "in-toto.io/predicate-type".to_owned(),
            provenance::PREDICATE_TYPE.to_owned(),
        )]));
        let top_descriptor = built.top().clone();
        built.referrers.push(assemble::referrer(
            &top_descriptor,
            IN_TOTO,
            document,
            plan.created,
            store,
        )?);
        envelope = Some(bytes);
    }
    let Some(key) = attest.key else {
        return Ok(());
    };
    let mut signed = vec![top.clone()];
    if built.images.len() > 1 {
        signed.extend(built.images.iter().map(|i| i.manifest_digest()));
    }
    for repository in repositories {
        for digest in &signed {
            let signature = cosign::signature(key, repository, digest, store)?;
            built.tagged.push(signature);
        }
        if let Some(envelope) = &envelope {
            let att = cosign::attestation(
                repository,
                &top,
                envelope,
                provenance::PREDICATE_TYPE,
                store,
            )?;
            built.tagged.push(att);
        }
    }
    Ok(())
}
