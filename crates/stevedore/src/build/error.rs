//! The one error type of the library's front door: every stage's error as a variant, with the
//! context to fix it, and the report a user reads.

use crate::attest::{keys::KeyError, AttestError};
use crate::cache::CacheError;
use crate::lock::LockError;
use crate::pipeline::PipelineError;
use crate::plan::PlanError;
use crate::publish::PublishError;
use crate::rebase::RebaseError;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::verify::VerifyError;

/// Why a build stopped; boxed, so results stay small on the happy path.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(Box<ErrorKind>);

impl Error {
    /// What kind of failure it is, to tell them apart in code.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// The kind, owned: to take the failures out of [`ErrorKind::Images`].
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }
}

impl<E: Into<ErrorKind>> From<E> for Error {
    fn from(e: E) -> Self {
        Error(Box::new(e.into()))
    }
}

/// Everything that can stop a build, each with the context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The project or the options are wrong (see [`PlanError`]).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Compiling, layering, pulling the base or assembling failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The blob store failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A tag or base is not an image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// `stevedore.lock` cannot be read, written or kept as it is.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The signing key cannot be read, decrypted or used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Signatures or provenance cannot be made.
    #[error(transparent)]
    Attest(#[from] AttestError),
    /// The published image cannot be read or compared.
    #[error(transparent)]
    Verify(VerifyError),
    /// `rebase`: the published image is not stevedore's, not on the base it records, or not
    /// what this checkout builds; nothing was written.
    #[error(transparent)]
    Rebase(RebaseError),
    /// `--offline` and `--push` together.
    #[error("--offline cannot be used with --push: pushing needs the registry")]
    PushOffline,
    /// `--push` with no name to push to.
    #[error(
        "pushing needs to know where: name the image with -t REGISTRY/REPOSITORY:TAG, \
         STEVEDORE_REPO, or `repository` in [package.metadata.stevedore]"
    )]
    PushWithoutTag,
    /// `rebase --workspace`: an image has no name to read it from.
    #[error(
        "rebase --workspace reads each image from its name, and one has none: set \
         STEVEDORE_REPO (each image is $STEVEDORE_REPO/BIN) or `repository` in each package's \
         [package.metadata.stevedore]"
    )]
    RebaseWithoutName,
    /// `rebase -f FILE`: no reference of the list names an image (each is a platform's
    /// manifest of no listed image, or something attached to one).
    #[error(
        "none of the {listed} references listed names an image to rebase: each is attached to \
         one (an SBOM, provenance, a signature, debug symbols); list the images themselves, \
         e.g. the first line `--image-refs` writes for each"
    )]
    NothingListed {
        /// How many references the list held.
        listed: usize,
    },
    /// `rebase -f FILE`: a listed image holds a binary that is none of those to rebase.
    #[error(
        "{image} holds the binary {bin} (its org.opencontainers.image.title label), which is \
         not among this workspace's binaries to rebase ({}); run rebase from the checkout that \
         built it, or give -p for its package",
        binaries.join(", ")
    )]
    ListedBinary {
        /// The image, as listed.
        image: String,
        /// The binary its label names.
        bin: String,
        /// The binaries there are, `PACKAGE/BIN`.
        binaries: Vec<String>,
    },
    /// `-t` with several images to build (`resolve` of several references, `--workspace`):
    /// every image would get the same name.
    #[error(
        "-t names one image, but there are {count} to build: name them with STEVEDORE_REPO \
         (each image goes to $STEVEDORE_REPO/BIN) or `repository` in each package's \
         [package.metadata.stevedore], not -t"
    )]
    TagForSeveral {
        /// How many images there are.
        count: usize,
    },
    /// `--workspace`, `-p A -p B`: some images could not be built or published (the others
    /// were); each is named `PACKAGE/BIN` with its error.
    #[error("{}", failures_report(&format!("{} of {total} images failed", failures.len()), failures))]
    Images {
        /// How many images were built or attempted.
        total: usize,
        /// Each image that failed and why.
        failures: Vec<(String, Error)>,
    },
    /// The push (or `index create`) failed.
    #[error(transparent)]
    Push(PublishError),
    /// An output could not be written.
    #[error("cannot write {output}")]
    Publish {
        /// The output, as `KIND=PATH`.
        output: String,
        /// Why.
        #[source]
        source: PublishError,
    },
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

impl Error {
    /// `error: …` and one `caused by: …` line per cause, the way a user should read it.
    pub fn report(&self) -> String {
        let mut text = format!("error: {self}");
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(&format!("\n  caused by: {cause}"));
            source = cause.source();
        }
        text
    }
}
