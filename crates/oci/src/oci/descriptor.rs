//! [`Descriptor`]: what a manifest or index says about a blob it names, with the digest as the
//! crate's own sha256 [`Digest`], so code that holds one never converts or checks it again.
//!
//! Documents (manifests, indexes) stay oci-spec's, made with its builders, which take oci-spec's
//! descriptor: ours converts at that edge (`From`) and serialises through the same conversion.
//! Its JSON is therefore oci-spec's byte for byte (field names and order, absent fields left
//! out), and no image digest depends on a second serialiser kept in step by hand. A descriptor
//! read from someone else's document comes in through `TryFrom`, which refuses any digest but
//! sha256, the only kind stevedore writes or accepts.

use std::collections::BTreeMap;

use oci_spec::image::MediaType;

use crate::digest::{Digest, ParseDigestError};
use crate::platform::Platform;

/// A content descriptor: a blob's media type, digest and size, and what a document may say
/// beside them (annotations, the platform of a manifest, an artifact's type).
///
/// Its fields are private, so more may come without breaking callers; [`Descriptor::new`] and
/// the `with_…` methods make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    media_type: MediaType,
    digest: Digest,
    size: u64,
    annotations: Option<BTreeMap<String, String>>,
    platform: Option<Platform>,
    artifact_type: Option<MediaType>,
}

impl Descriptor {
    /// A descriptor of `size` bytes of `media_type` named by `digest`, with nothing else.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type,
            digest,
            size,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// The same, with `annotations` (replacing any).
    pub fn with_annotations(mut self, annotations: BTreeMap<String, String>) -> Self {
        self.annotations = Some(annotations);
        self
    }

    /// The same, naming the platform the manifest it points at runs on.
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The same, with the `artifactType` of the artifact manifest it points at.
    pub fn with_artifact_type(mut self, artifact_type: MediaType) -> Self {
        self.artifact_type = Some(artifact_type);
        self
    }

    /// What the blob is.
    pub fn media_type(&self) -> &MediaType {
        &self.media_type
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its annotations, when it has any (an empty map is kept: it is written as `{}`).
    pub fn annotations(&self) -> Option<&BTreeMap<String, String>> {
        self.annotations.as_ref()
    }

    /// The platform of the manifest it points at, in an index.
    pub fn platform(&self) -> Option<&Platform> {
        self.platform.as_ref()
    }

    /// The `artifactType` of the artifact manifest it points at.
    pub fn artifact_type(&self) -> Option<&MediaType> {
        self.artifact_type.as_ref()
    }
}

impl From<&Descriptor> for oci_spec::image::Descriptor {
    fn from(d: &Descriptor) -> Self {
        let mut out =
            oci_spec::image::Descriptor::new(d.media_type.clone(), d.size, d.digest.to_oci());
        out.set_annotations(d.annotations.clone().map(|a| a.into_iter().collect()));
        out.set_platform(d.platform.as_ref().map(Platform::to_oci));
        out.set_artifact_type(d.artifact_type.clone());
        out
    }
}

/// A descriptor read from a document: refused when its digest is not sha256. What stevedore
/// never writes on a descriptor (`urls`, `data`, a platform's `os.version` and features) is
/// not kept.
impl TryFrom<&oci_spec::image::Descriptor> for Descriptor {
    type Error = ParseDigestError;

    fn try_from(d: &oci_spec::image::Descriptor) -> Result<Self, Self::Error> {
        Ok(Descriptor {
            media_type: d.media_type().clone(),
            digest: Digest::try_from(d.digest())?,
            size: d.size(),
            annotations: d.annotations().clone().map(|a| a.into_iter().collect()),
            platform: d.platform().as_ref().map(|p| Platform {
                os: p.os().to_string(),
                architecture: p.architecture().to_string(),
                variant: p.variant().clone(),
            }),
            artifact_type: d.artifact_type().clone(),
        })
    }
}

/// As oci-spec writes it, so a document's bytes do not depend on which type held it.
impl serde::Serialize for Descriptor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        oci_spec::image::Descriptor::from(self).serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::of(b"{}")
    }

    #[test]
    fn serialises_as_oci_spec_does() {
        let ours = Descriptor::new(MediaType::ImageManifest, digest(), 2)
            .with_annotations(BTreeMap::from([
                ("b".into(), "2".into()),
                ("a".into(), "1".into()),
            ]))
            .with_platform(Platform::linux_arm64())
            .with_artifact_type(MediaType::Other("application/spdx+json".into()));
        let theirs = oci_spec::image::Descriptor::from(&ours);
        assert_eq!(
            crate::oci::canonical_json(&ours),
            crate::oci::canonical_json(&theirs)
        );
        assert_eq!(Descriptor::try_from(&theirs).unwrap(), ours);
        // Absent fields stay absent, in both.
        let bare = Descriptor::new(MediaType::ImageLayerGzip, digest(), 2);
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":2}}"#,
                digest()
            )
        );
        let empty = bare.with_annotations(BTreeMap::new());
        assert!(serde_json::to_string(&empty)
            .unwrap()
            .ends_with(r#""annotations":{}}"#));
    }

    #[test]
    fn refuses_a_digest_other_than_sha256() {
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        let foreign = oci_spec::image::Descriptor::new(
            MediaType::ImageLayerGzip,
            2,
            sha512.parse::<oci_spec::image::Digest>().unwrap(),
        );
        let error = Descriptor::try_from(&foreign).unwrap_err();
        assert!(error.to_string().contains(&sha512), "{error}");
    }
}
