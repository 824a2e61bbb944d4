//! How a layer's tar is compressed: gzip (every engine reads it) or zstd (smaller and several
//! times faster to write and read; docker 23+, podman, containerd 1.5+).

use std::fmt;
use std::str::FromStr;

use oci_spec::image::MediaType;

/// A layer compression, as `--compression` and `compression` in Cargo.toml name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `application/vnd.oci.image.layer.v1.tar+gzip`.
    #[default]
    Gzip,
    /// `application/vnd.oci.image.layer.v1.tar+zstd`.
    Zstd,
}

impl Compression {
    /// The media type of a layer compressed this way.
    pub fn media_type(self) -> MediaType {
        match self {
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }

    /// The name users write.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A compression name that is neither `gzip` nor `zstd`.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a layer compression: write gzip (the default, read by every engine) or zstd")]
pub struct UnknownCompression(String);

impl FromStr for Compression {
    type Err = UnknownCompression;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            other => Err(UnknownCompression(other.to_owned())),
        }
    }
}
