//! The base image a build starts from, as the registry's pull leaves it for assembly.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;

/// One platform's image of the base, with its manifest, config and layers in the store.
#[derive(Debug, Clone)]
pub struct BaseImage {
    pub platform: Platform,
    /// The reference as the user gave it.
    pub reference: Reference,
    /// The index the platform was chosen from, when the reference named one.
    pub index_digest: Option<Digest>,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    pub config_digest: Digest,
    pub config_size: u64,
    pub layers: Vec<Descriptor>,
}
