//! The base image a build starts from, as the registry's pull leaves it for assembly.
//!
//! [`Registry::pull`](crate::registry::Registry::pull) returns one [`BaseImage`] per platform:
//! its manifest and config parsed, its blobs in the [`BlobStore`](crate::cache::BlobStore). It
//! lives in the vocabulary rather than in `registry`, so code that builds on a base needs no
//! registry client.

use oci_spec::image::{ImageConfiguration, ImageManifest};

use super::Descriptor;
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;

/// One platform's image of the base, with its manifest, config and layers in the store.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The platform chosen from the base's index (or the manifest's own).
    pub platform: Platform,
    /// The reference as the user gave it.
    pub reference: Reference,
    /// The index the platform was chosen from, when the reference named one.
    pub index_digest: Option<Digest>,
    /// The platform's manifest, by digest.
    pub manifest_digest: Digest,
    /// The platform's manifest.
    pub manifest: ImageManifest,
    /// Its config, which the image's config starts from.
    pub config: ImageConfiguration,
    /// The config's digest.
    pub config_digest: Digest,
    /// The config's size in bytes.
    pub config_size: u64,
    /// Its layers, which the image's layers start with.
    pub layers: Vec<Descriptor>,
}
