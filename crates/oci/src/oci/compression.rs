//! How a layer's tar is compressed: gzip (every engine reads it) or zstd (smaller and several
//! times faster to write and read; docker 23+, podman, containerd 1.5+).

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::str::FromStr;

use flate2::bufread::MultiGzDecoder;
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

/// A layer's tar, whichever way it is compressed: the magic number says (a layer's media type
/// may be Docker's, missing or wrong; its bytes never lie). Every reader of a layer goes
/// through here, so each reads what the others read: gzip with all its members (eStargz and
/// parallel compressors write several), zstd, or a tar left uncompressed.
pub fn decompress<'r>(layer: impl Read + 'r) -> io::Result<Box<dyn Read + 'r>> {
    const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    let mut layer = BufReader::new(layer);
    let head = layer.fill_buf()?;
    Ok(if head.starts_with(&ZSTD_MAGIC) {
        Box::new(zstd::stream::read::Decoder::with_buffer(layer)?)
    } else if head.starts_with(&GZIP_MAGIC) {
        Box::new(MultiGzDecoder::new(layer))
    } else {
        Box::new(layer)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn unpacked(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        decompress(bytes).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn every_gzip_member_zstd_and_plain_tar_by_magic_number() {
        // eStargz and parallel compressors write one gzip member after another.
        let members = [gzip(b"first "), gzip(b"second")].concat();
        assert_eq!(unpacked(&members), b"first second");
        let zstd = zstd::encode_all(&b"zstd layer"[..], 3).unwrap();
        assert_eq!(unpacked(&zstd), b"zstd layer");
        assert_eq!(unpacked(b"ustar, uncompressed"), b"ustar, uncompressed");
        assert_eq!(unpacked(b""), b"");
    }
}
