//! Registry errors: what went wrong, where (method and URL, never credentials), and what to do.

use std::path::PathBuf;

use super::client::redact;
use super::retry::tls_failure;
use crate::cache::CacheError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read the CA certificate {path}: {message}")]
    Ca { path: PathBuf, message: String },
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("{hint}")]
    Connect {
        hint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot resolve the registry host {registry}: check the image reference and the machine's DNS")]
    Resolve {
        registry: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{method} {url} failed: {status}{detail}{hint}")]
    Status {
        method: String,
        url: String,
        status: u16,
        /// The first error code of the registry's error envelope, e.g. `BLOB_UNKNOWN`.
        code: Option<String>,
        detail: String,
        hint: String,
    },
    #[error("{what} not found: {reference} (check the name and tag, e.g. with `skopeo list-tags docker://{name}`)")]
    NotFound {
        what: &'static str,
        reference: String,
        name: String,
    },
    #[error("{what} {reference} has digest {actual}, expected {expected}: the registry returned other content than asked for")]
    DigestMismatch {
        what: &'static str,
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("{reference} has media type `{media_type}`, which is not an OCI or Docker v2 image manifest or index")]
    MediaType {
        reference: String,
        media_type: String,
    },
    #[error("{reference} has no image for {wanted}; it has: {available}")]
    NoPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("{reference} is a single {found} image, but {wanted} was asked for: use a multi-platform base or --platform {found}")]
    PlatformMismatch {
        reference: String,
        wanted: String,
        found: String,
    },
    #[error("{what} of {reference} is not valid JSON for its media type")]
    Json {
        what: &'static str,
        reference: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read the body of {url}")]
    Body {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} of {reference} is larger than {limit} bytes")]
    TooLarge {
        what: &'static str,
        reference: String,
        limit: u64,
    },
    #[error("credential helper `{helper}` failed for {registry}: {message}")]
    CredentialHelper {
        helper: String,
        registry: String,
        message: String,
    },
    #[error("cannot read docker credentials from {path}")]
    DockerConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the token server {realm} answered without a token")]
    NoToken { realm: String },
    #[error("{reference} is needed from the registry, but --offline forbids the network")]
    Offline { reference: String },
    #[error(
        "--offline: the cache lacks what the base {reference} needs: {missing}; build once \
         online with the same base and platforms (or set STEVEDORE_CACHE_DIR to the cache used then)"
    )]
    NotCached { reference: String, missing: String },
    #[error("cannot store a blob of {reference}")]
    Store {
        reference: String,
        #[source]
        source: CacheError,
    },
    #[error(
        "the download of {digest} from {reference} broke off after {received} of {size} bytes"
    )]
    Transfer {
        reference: String,
        digest: String,
        received: u64,
        size: u64,
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// A request that got no answer, with what to do about it, decided by the failure's type:
    /// an untrusted certificate, another TLS failure, or no connection.
    pub(crate) fn connect(registry: &str, url: &str, source: reqwest::Error) -> RegistryError {
        let hint = match tls_failure(&source) {
            Some(rustls::Error::InvalidCertificate(_)) => format!(
                "the TLS certificate of {registry} is not trusted: pass --registry-ca FILE (its CA, PEM) or set SSL_CERT_FILE"
            ),
            Some(_) => format!(
                "the TLS handshake with {registry} failed: if it is a plain-HTTP registry, pass --insecure-registry {registry}"
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
}

/// What a user can do about an HTTP status from a registry.
pub(crate) fn status_hint(status: u16, registry: &str) -> String {
    match status {
        401 => format!(
            ": check the credentials for {registry} (`docker login {registry}`, or set STEVEDORE_USERNAME and STEVEDORE_PASSWORD)"
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
            format!(" ({})", parts.join("; "))
        }
        _ => {
            let text: String = body.chars().take(200).collect();
            let text = text.trim();
            if text.is_empty() {
                String::new()
            } else {
                format!(" ({text})")
            }
        }
    }
}
