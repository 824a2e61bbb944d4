//! The command line's errors: the library's [`stevedore::Error`], and what only the command
//! line does (`init`, reading YAML for `resolve`, kubectl, `verify`'s verdict).

use std::path::PathBuf;

use stevedore::Digest;

/// Why a command stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The library stopped (building, publishing, a registry, …).
    #[error(transparent)]
    Library(#[from] stevedore::Error),
    /// `init` cannot add its table.
    #[error(transparent)]
    Init(#[from] crate::init::InitError),
    /// `resolve`: a YAML file or directory cannot be read.
    #[error(
        "cannot read {}: pass a YAML file, a directory of them, or `-` for stdin",
        shown(path)
    )]
    ReadYaml {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `resolve`: a value starts with `stevedore://` but names nothing stevedore can build.
    #[error("in {}", shown(path))]
    BadReference {
        /// The file it is in (`-` for stdin).
        path: PathBuf,
        #[source]
        source: stevedore::resolve::BadReference,
    },
    /// `resolve`: some references could not be built or pushed; each is named with its error.
    #[error("{}", failures_report(&format!("{} could not be resolved, so nothing was written", count(failures.len(), "reference")), failures))]
    Resolve { failures: Vec<(String, Error)> },
    /// `rebase -f FILE`: the list cannot be read.
    #[error(
        "cannot read {}: pass a file of image references, one per line, or `-` for stdin",
        shown(path)
    )]
    ReadList {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `rebase -f FILE`: a line is no image reference.
    #[error(
        "line {line} of {} is not an image reference ({message}): each line is \
         REGISTRY/REPO:TAG, REGISTRY/REPO@DIGEST, oci-layout=DIR or oci-archive=FILE.tar",
        shown(path)
    )]
    ListedReference {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// `man`: the pages cannot be written.
    #[error(
        "cannot write the manual pages to {}: give a directory you can write to",
        shown(dir)
    )]
    Man {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `apply`: kubectl could not be started.
    #[error(
        "cannot run `{program}`: install kubectl (Debian: `apt-get install kubernetes-client`) \
         or put it on PATH"
    )]
    Kubectl {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// `verify`: the rebuild differs from the published image.
    #[error(
        "the rebuilt image {ours} differs from {published} ({theirs}); the differences are above"
    )]
    Mismatch {
        published: String,
        ours: Digest,
        theirs: Digest,
    },
    /// `verify --key`: the rebuild matches, but a signature or the provenance does not hold.
    #[error(
        "{published} is not signed as it should be with the key given; the findings are above"
    )]
    Unsigned { published: String },
    /// `outdated`: some images (or lock pins) are on a base whose tag has moved; each is
    /// listed above.
    #[error(
        "{platforms} of the lines above name a base whose tag has moved: `cargo stevedore \
         rebase REF` puts an image on what its base tag names now, `cargo stevedore lock` pins \
         it"
    )]
    Outdated { platforms: usize },
}

impl From<stevedore::ErrorKind> for Error {
    fn from(kind: stevedore::ErrorKind) -> Self {
        Error::Library(kind.into())
    }
}

/// The library's own error types, which `?` turns into its [`stevedore::Error`].
macro_rules! from_library {
    ($($error:ty),*) => {$(
        impl From<$error> for Error {
            fn from(e: $error) -> Self {
                Error::Library(e.into())
            }
        }
    )*};
}

from_library!(
    stevedore::registry::RegistryError,
    stevedore::plan::PlanError,
    stevedore::cache::CacheError
);

impl Error {
    /// `error: …` and one `caused by: …` line per cause, the way a user should read it.
    pub(crate) fn report(&self) -> String {
        let mut text = format!("error: {self}");
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(&format!("\n  caused by: {cause}"));
            source = cause.source();
        }
        text
    }
}

/// `headline:`, then one paragraph per failure, each with its causes.
fn failures_report(headline: &str, failures: &[(String, Error)]) -> String {
    let mut text = format!("{headline}:");
    for (reference, error) in failures {
        let report = error
            .report()
            .replacen("error: ", "", 1)
            .replace('\n', "\n    ");
        text.push_str(&format!("\n  {reference}: {report}"));
    }
    text
}

/// `1 reference`, `2 references`.
fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// A path `resolve` found under a directory, as a stranger may have named it: escaped.
fn shown(path: &std::path::Path) -> String {
    stevedore::text::printable_bytes(path.as_os_str().as_encoded_bytes())
}
