//! `cargo stevedore debuginfo`: every platform's `.debug` file (the referrers `--split-debuginfo`
//! attaches) fetched into a `.build-id/xx/yyyy.debug` tree, which gdb's `debug-file-directory`
//! and debuginfod-style tools read.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Published, PublishedImage, Source, VerifyError};
use crate::build_id::BuildId;
use crate::digest::Digest;
use crate::oci::media::{ANNOTATION_BUILD_ID, DEBUGINFO, DEBUGINFO_ELF};
use crate::platform::Platform;

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
    source: &Source,
    image: &PublishedImage,
    dir: &Path,
) -> Result<Vec<DebugFile>, VerifyError> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (platform, digest, _) in &image.platforms {
        match layers_about(source, digest)?.into_iter().next() {
            Some(layer) => found.push((platform.clone(), layer)),
            None => missing.push(platform.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(VerifyError::NoDebuginfo {
            published: source.published.to_string(),
            platforms: missing.join(", "),
        });
    }
    let mut fetched = Vec::new();
    for (platform, layer) in found {
        let text = layer["annotations"][ANNOTATION_BUILD_ID]
            .as_str()
            .unwrap_or_default();
        // Parsed, not pasted: only hex digits reach the path.
        let build_id: BuildId = text.parse().map_err(|_| VerifyError::Json {
            what: format!("the build-id annotation `{text}` of the {platform} debug file"),
            published: source.published.to_string(),
            message: "not a hex build-id".into(),
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

/// The debug-file layers of the debuginfo referrers of `subject`.
fn layers_about(source: &Source, subject: &Digest) -> Result<Vec<Value>, VerifyError> {
    let mut layers = Vec::new();
    for entry in referrers(source, subject)? {
        if entry["artifactType"] != DEBUGINFO {
            continue;
        }
        let manifest = source.manifest_of(&entry)?;
        if manifest["subject"]["digest"] != subject.as_str() {
            continue;
        }
        let all = manifest["layers"].as_array().into_iter().flatten();
        layers.extend(all.filter(|l| l["mediaType"] == DEBUGINFO_ELF).cloned());
    }
    Ok(layers)
}

/// What refers to `subject`: in a registry, the referrers API's index, or the OCI 1.1 fallback
/// tag's (`sha256-<hex>`, which stevedore's push writes when the registry does not index
/// subjects itself); in a layout, every entry of index.json with an `artifactType`.
fn referrers(source: &Source, subject: &Digest) -> Result<Vec<Value>, VerifyError> {
    let index = match source.published {
        Published::Registry(_) => source.referrers_of(subject)?,
        Published::Layout(dir) => Some(source.layout_index(dir)?),
    };
    let entries = index
        .as_ref()
        .and_then(|i| i["manifests"].as_array())
        .into_iter()
        .flatten();
    Ok(entries
        .filter(|e| e.get("artifactType").is_some())
        .cloned()
        .collect())
}

/// Streams the blob (verified against its digest) to a temporary file beside `path`, renamed
/// into place once whole.
fn write(source: &Source, layer: &Value, path: &Path) -> Result<(), VerifyError> {
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
