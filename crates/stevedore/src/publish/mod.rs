//! Stage 5: write a built image somewhere: an OCI layout directory or a `docker load` tarball.
//!
//! Every destination is written so that a failure leaves nothing half-written: a new directory
//! or file appears only by rename, and an existing layout changes only at its final
//! `index.json` rename.

mod archive;
mod layout;
mod load;
mod merge;
mod push;
mod uploads;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::assemble::Built;
use crate::cache::{BlobStore, CacheError};
use crate::digest::Digest;
use crate::reference::Reference;

pub(crate) use archive::{write_archive, write_oci_archive};
pub(crate) use layout::write_layout;
pub(crate) use load::load;
pub use load::{Engine, Loaded};
pub use merge::{create_index, MergeError};
pub(crate) use push::push;
pub use push::PushReport;
pub(crate) use push::Target;
pub use uploads::{Uploads, DEFAULT_JOBS};

/// Where a build goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An OCI image layout directory (`oci-layout=DIR`).
    OciLayout(PathBuf),
    /// A tarball for `docker load` / `podman load` (`docker-archive=FILE`).
    DockerArchive(PathBuf),
    /// An OCI layout in one tar, every platform included (`oci-archive=FILE`).
    OciArchive(PathBuf),
}

/// An `--output` that is neither `oci-layout=DIR` nor `docker-archive=FILE`.
#[derive(Debug, thiserror::Error)]
pub enum OutputSyntaxError {
    /// Not `KIND=PATH` with a kind stevedore writes; holds the text given.
    #[error("`{0}` is not an output: write oci-layout=DIR, oci-archive=FILE.tar or docker-archive=FILE.tar")]
    Syntax(String),
}

impl FromStr for Output {
    type Err = OutputSyntaxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, path) = s
            .split_once('=')
            .or_else(|| s.split_once(':'))
            .filter(|(_, p)| !p.is_empty())
            .ok_or_else(|| OutputSyntaxError::Syntax(s.to_owned()))?;
        match kind {
            "oci-layout" | "oci" => Ok(Output::OciLayout(PathBuf::from(path))),
            "docker-archive" => Ok(Output::DockerArchive(PathBuf::from(path))),
            "oci-archive" => Ok(Output::OciArchive(PathBuf::from(path))),
            _ => Err(OutputSyntaxError::Syntax(s.to_owned())),
        }
    }
}

impl Output {
    /// Where binary `bin`'s image goes when several binaries share this output.
    pub fn for_bin(&self, bin: &str) -> Output {
        match self {
            Output::OciLayout(dir) => Output::OciLayout(dir.join(bin)),
            Output::DockerArchive(file) => Output::DockerArchive(file_for_bin(file, bin)),
            Output::OciArchive(file) => Output::OciArchive(file_for_bin(file, bin)),
        }
    }
}

/// `FILE-BIN.EXT` for `FILE.EXT`.
fn file_for_bin(file: &Path, bin: &str) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = file
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    file.with_file_name(format!("{stem}-{bin}{ext}"))
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::OciLayout(p) => write!(f, "oci-layout={}", p.display()),
            Output::DockerArchive(p) => write!(f, "docker-archive={}", p.display()),
            Output::OciArchive(p) => write!(f, "oci-archive={}", p.display()),
        }
    }
}

/// Why an output could not be written or a push failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The layout directory exists with something else in it.
    #[error("{path} exists and is not an OCI image layout (no `oci-layout` file): remove it or choose another directory")]
    NotALayout {
        /// The directory.
        path: PathBuf,
    },
    /// Writing a file failed.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    #[error("{path} holds an index.json that cannot be read as an OCI index")]
    /// An existing layout's `index.json` is not an OCI index.
    BadIndex {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A docker archive (or `--load`) was asked of a build with zstd layers.
    #[error(
        "docker archives (and --load, which hands the image over as one) hold gzip layers: \
         docker before 23 cannot read zstd. Build with --compression gzip for them, or use \
         --output oci-archive=FILE (podman load, skopeo) or --push"
    )]
    DockerNeedsGzip,
    #[error(
        "a docker archive holds one platform's image, and this build has {count} ({platforms}): \
         pass --platform with one of them, or use --output oci-layout=DIR for all"
    )]
    /// A docker archive was asked of a multi-platform build.
    ArchiveMultiPlatform {
        /// How many platforms the build has.
        count: usize,
        /// They, comma separated.
        platforms: String,
    },
    /// The registry refused or failed.
    #[error("cannot push to {reference}")]
    Registry {
        /// Where the push went.
        reference: String,
        /// Why.
        #[source]
        source: crate::registry::RegistryError,
    },
    /// `--load` found neither a docker daemon that answers nor podman.
    #[error(
        "--load found no container engine: neither a docker daemon answers nor is podman \
         installed; start docker, install podman, or write an archive with --output"
    )]
    NoEngine,
    /// The engine's `load` command failed; `message` is what it said.
    #[error("`{engine} load` failed: {message}")]
    Engine {
        /// `docker` or `podman`.
        engine: &'static str,
        /// The engine's error output.
        message: String,
    },
    /// `index create` cannot merge the images given.
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] CacheError),
}

/// Writes `built` to `output`, naming it with `tags`.
pub(crate) fn publish(
    built: &Built,
    output: &Output,
    tags: &[Reference],
    store: &BlobStore,
) -> Result<(), PublishError> {
    match output {
        Output::OciLayout(dir) => write_layout(dir, built, tags, store),
        Output::DockerArchive(file) => write_archive(file, built, tags, store),
        Output::OciArchive(file) => write_oci_archive(file, built, tags, store),
    }
}

/// Writes `refs`, one per line, to `path` (replaced whole by rename): the hand-off to a later
/// CI step that signs or deploys by digest.
pub fn write_refs(path: &Path, refs: &[Reference]) -> Result<(), PublishError> {
    let mut text = String::new();
    for reference in refs {
        text.push_str(&reference.to_string());
        text.push('\n');
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".stevedore-refs-")
        .tempfile_in(parent_dir(path)?)
        .map_err(io_err(path))?;
    io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io_err(path))?;
    // Windows has no mode bits: a file there takes its directory's ACL.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644)).map_err(io_err(path))?;
    }
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}

/// Every blob an image names, config and layers, with the manifest first.
fn image_blobs(image: &crate::assemble::Image) -> impl Iterator<Item = (Digest, u64)> + '_ {
    std::iter::once(&image.manifest)
        .chain(std::iter::once(&image.config))
        .chain(image.layers.iter())
        .map(|d| (d.digest().clone(), d.size()))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory `path` will be created in, made to exist.
fn parent_dir(path: &Path) -> Result<PathBuf, PublishError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    Ok(parent)
}
