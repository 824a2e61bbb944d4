//! Registry errors: what went wrong, where (method and URL, never credentials), and what to do.

use std::path::PathBuf;

use super::client::redact;
use super::retry::tls_failure;
use crate::cache::CacheError;
use crate::text::printable;

/// What can go wrong talking to a registry; each message says where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A `--registry-ca` file that cannot be read or holds no certificate.
    #[error("cannot read the CA certificate {path}: {message}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The HTTP client could not be set up (its TLS configuration).
    #[error("cannot set up the HTTP client")]
    Client(
        /// The HTTP library's error.
        #[source]
        reqwest::Error,
    ),
    /// A request got no answer: no connection, a TLS failure, or a stall past the timeout.
    #[error("{hint}")]
    Connect {
        /// What happened and what to do, in words.
        hint: String,
        /// The underlying failure.
        #[source]
        source: reqwest::Error,
    },
    /// The registry's host name does not resolve.
    #[error("cannot resolve the registry host {registry}: check the image reference and the machine's DNS")]
    Resolve {
        /// The registry, as written in the reference.
        registry: String,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// The registry answered with an error status (after the retries the policy allows).
    #[error("{method} {url} failed: {status}{detail}{hint}")]
    Status {
        /// The HTTP method.
        method: String,
        /// The URL, without credentials or query.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The first error code of the registry's error envelope, e.g. `BLOB_UNKNOWN`.
        code: Option<String>,
        /// The registry's error message, if it sent one.
        detail: String,
        /// What happened and what to do, in words.
        hint: String,
    },
    /// The registry does not have the manifest or blob asked for.
    #[error("{what} not found: {reference} (check the name and tag, e.g. with `skopeo list-tags docker://{name}`)")]
    NotFound {
        /// What was asked for (e.g. `manifest`, `blob`).
        what: &'static str,
        /// The image reference or repository.
        reference: String,
        /// The repository name.
        name: String,
    },
    /// Content whose digest is not the one asked for (a blob is fetched once more first).
    #[error("{what} {reference} has digest {actual}, expected {expected}: the registry returned other content than asked for")]
    DigestMismatch {
        /// What was asked for (e.g. `manifest`, `blob`).
        what: &'static str,
        /// The image reference or repository.
        reference: String,
        /// The digest asked for.
        expected: String,
        /// The digest, or the failed check, of what arrived.
        actual: String,
    },
    /// A manifest of a kind stevedore does not read.
    #[error("{reference} has media type `{}`, which is not an OCI or Docker v2 image manifest or index", printable(.media_type))]
    MediaType {
        /// The image reference or repository.
        reference: String,
        /// The media type found.
        media_type: String,
    },
    /// The base's index has no image for a requested platform.
    #[error("{reference} has no image for {wanted}; it has: {}", printable(.available))]
    NoPlatform {
        /// The image reference or repository.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The platforms the index has.
        available: String,
    },
    /// A single-platform base, and another platform asked for.
    #[error("{reference} is a single {found} image, but {wanted} was asked for: use a multi-platform base or --platform {found}")]
    PlatformMismatch {
        /// The image reference or repository.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The platform the image is for.
        found: String,
    },
    /// A document that does not parse as its media type says.
    #[error("{what} of {reference} is not valid JSON for its media type")]
    Json {
        /// What was asked for (e.g. `manifest`, `blob`).
        what: &'static str,
        /// The image reference or repository.
        reference: String,
        /// The underlying failure.
        #[source]
        source: serde_json::Error,
    },
    /// A response body that could not be read.
    #[error("cannot read the body of {url}")]
    Body {
        /// The URL, without credentials or query.
        url: String,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// A document larger than stevedore accepts.
    #[error("{what} of {reference} is larger than {limit} bytes")]
    TooLarge {
        /// What was asked for (e.g. `manifest`, `blob`).
        what: &'static str,
        /// The image reference or repository.
        reference: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A `docker-credential-*` helper failed.
    #[error("credential helper `{helper}` failed for {registry}: {message}")]
    CredentialHelper {
        /// The helper's name (after `docker-credential-`).
        helper: String,
        /// The registry, as written in the reference.
        registry: String,
        /// What went wrong.
        message: String,
    },
    /// A credentials file (docker's config.json, podman's auth.json) that is not valid JSON.
    #[error("cannot read docker credentials from {path}")]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: serde_json::Error,
    },
    /// The token server answered without a token.
    #[error("the token server {} answered without a token", printable(.realm))]
    NoToken {
        /// The token server's URL.
        realm: String,
    },
    /// `--offline` forbids a request that was needed.
    #[error("{reference} is needed from the registry, but --offline forbids the network")]
    Offline {
        /// The image reference or repository.
        reference: String,
    },
    /// `--offline`, and the cache lacks parts of the base.
    #[error(
        "--offline: the cache lacks what the base {reference} needs: {missing}; build once \
         online with the same base and platforms (or set STEVEDORE_CACHE_DIR to the cache used then)"
    )]
    NotCached {
        /// The image reference or repository.
        reference: String,
        /// Everything the cache lacks, in words.
        missing: String,
    },
    /// The blob store could not keep what was fetched.
    #[error("cannot store a blob of {reference}")]
    Store {
        /// The image reference or repository.
        reference: String,
        /// The underlying failure.
        #[source]
        source: CacheError,
    },
    /// A registry sent the client to a URL it must not follow (an upload `Location`).
    #[error("{registry} answered with the upload location {}, which stevedore does not follow: {why}", printable(.location))]
    Location {
        /// The registry, as written in the reference.
        registry: String,
        /// The location, without query.
        location: String,
        /// Why it is refused, and what to do.
        why: String,
    },
    /// A registry named a token server that its credential must not be sent to.
    #[error("{registry} asks for a token from {}, which stevedore refuses: {why}", printable(.realm))]
    Realm {
        /// The registry, as written in the reference.
        registry: String,
        /// The realm, without query.
        realm: String,
        /// Why it is refused, and what to do.
        why: String,
    },
    /// Another origin than the registry's own asked for credentials, after the registry sent
    /// the client there (a redirect, an upload location).
    #[error(
        "{origin} asked for credentials after {registry} sent stevedore there (a redirect or \
         an upload location); the credentials for {registry} go only to {registry_origin} \
         itself, so the request stops here: the registry (or a proxy before it) must send \
         clients to its own address, e.g. a TLS-terminating proxy must pass \
         X-Forwarded-Proto and Host"
    )]
    ForeignChallenge {
        /// The registry, as written in the reference.
        registry: String,
        /// The registry's origin, `scheme://host:port`.
        registry_origin: String,
        /// The origin that asked.
        origin: String,
    },
    /// `login` or `logout` could not check or keep a credential.
    #[error("cannot log in to {registry}: {message}")]
    Login {
        /// The registry, as the user wrote it.
        registry: String,
        /// What went wrong, and what to do.
        message: String,
    },
    /// A blob download that broke off and could not be resumed within the retry policy.
    #[error(
        "the download of {digest} from {reference} broke off after {received} of {size} bytes"
    )]
    Transfer {
        /// The image reference or repository.
        reference: String,
        /// The blob's digest.
        digest: String,
        /// Bytes received before it broke off.
        received: u64,
        /// The blob's size.
        size: u64,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// A document (a config, a manifest) declared larger than stevedore reads, or with no size:
    /// refused before it is downloaded.
    #[error(transparent)]
    Refused(#[from] crate::oci::limits::Refused),
}

impl RegistryError {
    /// A request that got no answer, with what to do about it, decided by the failure's type:
    /// an untrusted certificate, another TLS failure, or no connection.
    pub(crate) fn connect(registry: &str, url: &str, source: reqwest::Error) -> RegistryError {
        // reqwest's messages carry the full URL, query included (a pre-signed URL is a
        // credential): the hint names the URL without its query instead.
        let source = source.without_url();
        let hint = match tls_failure(&source) {
            Some(rustls::Error::InvalidCertificate(_)) => format!(
                "the TLS certificate of {registry} is not trusted: pass --registry-ca FILE (its CA, PEM) or set SSL_CERT_FILE"
            ),
            Some(_) => format!(
                "the TLS handshake with {registry} failed: if it is a plain-HTTP registry, pass --insecure-registry {registry}"
            ),
            None if source.is_redirect() => format!(
                "{registry} redirected {} where stevedore does not follow ({}): more than 10 \
                 redirects, or from https to plain HTTP",
                redact(url),
                printable(&chain(&source))
            ),
            None if source.is_timeout() => format!(
                "{registry} did not answer in time at {}: it stalled or is overloaded; try again, or raise --timeout (STEVEDORE_TIMEOUT)",
                redact(url)
            ),
            None => format!(
                "cannot reach {registry} at {}: is the registry running and reachable?",
                redact(url)
            ),
        };
        RegistryError::Connect { hint, source }
    }

    /// Whether the same request may succeed later: the connection broke or stalled, or the
    /// registry answered that it is busy or failing (a transient status, or the error code
    /// `TOOMANYREQUESTS` or `UNAVAILABLE` under another status). Decided by type and code,
    /// never by message text.
    pub(crate) fn transient(&self) -> bool {
        match self {
            RegistryError::Connect { source, .. } => super::retry::transient(source),
            RegistryError::Status { status, code, .. } => {
                reqwest::StatusCode::from_u16(*status).is_ok_and(super::retry::transient_status)
                    || matches!(code.as_deref(), Some("TOOMANYREQUESTS" | "UNAVAILABLE"))
            }
            _ => false,
        }
    }
}

/// What a user can do about an HTTP status from a registry.
pub(crate) fn status_hint(status: u16, registry: &str) -> String {
    match status {
        401 => format!(
            ": check the credentials for {registry} (`docker login {registry}`, or set \
             STEVEDORE_USERNAME and STEVEDORE_PASSWORD, which go to the registries pushed to \
             and to those STEVEDORE_REGISTRY lists)"
        ),
        403 => format!(": the credentials for {registry} are not allowed to do this"),
        429 => ": the registry is rate limiting; wait and try again".to_owned(),
        500..=599 => ": the registry has a server error; try again later".to_owned(),
        _ => String::new(),
    }
}

/// The registry's error envelope (`{"errors":[{"code","message"}]}`), shortened for display,
/// and its error codes.
pub(crate) fn envelope(body: &str) -> (String, Vec<String>) {
    let codes = serde_json::from_str::<Envelope>(body)
        .map(|env| env.errors.into_iter().filter_map(|e| e.code).collect())
        .unwrap_or_default();
    (envelope_detail(body), codes)
}

#[derive(serde::Deserialize)]
struct Envelope {
    errors: Vec<Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    code: Option<String>,
    message: Option<String>,
}

fn envelope_detail(body: &str) -> String {
    match serde_json::from_str::<Envelope>(body) {
        Ok(env) if !env.errors.is_empty() => {
            let parts: Vec<String> = env
                .errors
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e.code.as_deref().unwrap_or(""),
                        e.message.as_deref().unwrap_or("")
                    )
                    .trim()
                    .to_owned()
                })
                .collect();
            format!(" ({})", printable(&parts.join("; ")))
        }
        _ => {
            let text: String = body.chars().take(200).collect();
            let text = text.trim();
            if text.is_empty() {
                String::new()
            } else {
                format!(" ({})", printable(text))
            }
        }
    }
}

/// An error and its causes, `: `-joined (reqwest puts the useful part in a cause).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
