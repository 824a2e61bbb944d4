//! `cargo stevedore debuginfo`: every platform's `.debug` file (the referrers `--split-debuginfo`
//! attaches) fetched into a `.build-id/xx/yyyy.debug` tree, which gdb's `debug-file-directory`
//! and debuginfod-style tools read.

use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;

use super::{PublishedImage, VerifyError};
use crate::build_id::BuildId;
use crate::digest::Digest;
use crate::oci::media::{ANNOTATION_BUILD_ID, DEBUGINFO, DEBUGINFO_ELF};
use crate::platform::Platform;
use crate::source::ImageSource;
use crate::text::printable;

/// One platform's debug file, fetched.
#[derive(Debug, Clone)]
pub struct DebugFile {
    /// The platform of the executable it belongs to.
    pub platform: Platform,
    /// The executable's GNU build-id.
    pub build_id: String,
    /// Where it was written: `DIR/.build-id/xx/yyyy.debug`.
    pub path: PathBuf,
}

/// Fetches the debug file of every platform of `image` into `dir`; fails, writing nothing,
/// when a platform has none.
pub(crate) fn fetch(
    source: &ImageSource,
    image: &PublishedImage,
    dir: &Path,
) -> Result<Vec<DebugFile>, VerifyError> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for published in &image.platforms {
        match debug_layer(source, &published.digest)? {
            Some(layer) => found.push((published.platform.clone(), layer)),
            None => missing.push(published.platform.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(VerifyError::NoDebuginfo {
            published: source.location().to_string(),
            platforms: missing.join(", "),
        });
    }
    let mut fetched = Vec::new();
    for (platform, layer) in found {
        let text = layer
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_BUILD_ID))
            .map_or("", String::as_str);
        // Parsed, not pasted: only hex digits reach the path.
        let build_id: BuildId = text.parse().map_err(|_| VerifyError::BadBuildId {
            published: source.location().to_string(),
            platform: platform.to_string(),
            text: printable(text).into_owned(),
        })?;
        let path = dir.join(build_id.debug_path());
        write(source, &layer, &path)?;
        fetched.push(DebugFile {
            platform,
            build_id: build_id.to_string(),
            path,
        });
    }
    Ok(fetched)
}

/// The first debug-file layer of the debuginfo referrers of `subject`.
pub(crate) fn debug_layer(
    source: &ImageSource,
    subject: &Digest,
) -> Result<Option<Descriptor>, VerifyError> {
    let referrers = source.referrers(subject, DEBUGINFO)?;
    let mut layers = referrers.iter().flat_map(|m| m.layers());
    Ok(layers
        .find(|l| l.media_type().to_string() == DEBUGINFO_ELF)
        .cloned())
}

/// Streams the blob (verified against its digest) to a temporary file beside `path`, renamed
/// into place once whole.
fn write(source: &ImageSource, layer: &Descriptor, path: &Path) -> Result<(), VerifyError> {
    let fail = |e: std::io::Error| VerifyError::WriteDebug {
        path: path.to_path_buf(),
        source: e,
    };
    let dir = path.parent().expect("a build-id path has a parent");
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    std::io::copy(&mut source.blob(layer)?, &mut tmp).map_err(fail)?;
    tmp.flush().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}
