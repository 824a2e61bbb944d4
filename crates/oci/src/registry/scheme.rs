//! The bottom of the transport: one HTTP client with timeouts, and the ping that learns how to
//! reach a registry (https, or http for loopback and `--insecure-registry` hosts) and how it
//! wants to be authenticated.

use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use reqwest::blocking::{Client as Http, Response};
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::StatusCode;

use super::auth::Challenge;
use super::error::RegistryError;
use super::origin::{own_answer, Origin};
use super::retry::{self, Policy};
use super::RegistryOptions;
use crate::reference::Reference;

/// The idle timeout when neither `--timeout` nor `STEVEDORE_TIMEOUT` says otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The slowest upload that is not a stall: a request body may take the idle timeout plus its
/// size at this rate, so even a large chunk on a slow link ends in bounded time.
const MIN_UPLOAD_RATE: u64 = 64 << 10;

/// How to reach one registry, learned from its `/v2/` endpoint once per run.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    /// `https://HOST[:PORT]` or `http://…`.
    pub base: String,
    /// The base's scheme, host and port: the one origin the registry's credentials go to.
    pub origin: Origin,
    pub challenge: Option<Challenge>,
}

impl Host {
    /// The registry at `base`, with the challenge its ping answered, taken only when the
    /// answer came from `base` itself (not from wherever a redirect led).
    fn answered(registry: &str, base: String, response: &Response) -> Result<Host, RegistryError> {
        let origin = Origin::parse(&base).expect("a base URL made from a reference");
        let challenge = match own_answer(registry, &origin, response)? {
            true => challenge_of(response),
            false => None,
        };
        Ok(Host {
            base,
            origin,
            challenge,
        })
    }
}

/// What the HTTP clients are made of: the user agent, the timeouts, and the extra CAs (read and
/// checked at once, so a bad `--ca-file` fails before anything runs).
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    user_agent: String,
    /// How long a connection may stay silent.
    pub idle: Duration,
    extra_roots: Vec<reqwest::Certificate>,
}

impl HttpSettings {
    pub(crate) fn of(opts: &RegistryOptions) -> Result<HttpSettings, RegistryError> {
        let mut extra_roots = Vec::new();
        for path in &opts.ca_files {
            extra_roots.extend(read_ca(path)?);
        }
        Ok(HttpSettings {
            user_agent: match opts.user_agent.as_str() {
                "" => format!("stevedore/{}", env!("CARGO_PKG_VERSION")),
                agent => agent.to_owned(),
            },
            idle: opts.timeout.unwrap_or(DEFAULT_TIMEOUT),
            extra_roots,
        })
    }

    /// An HTTP client with these settings and `redirects`. Building one loads the system's
    /// root certificates (tens of milliseconds), so clients are built when first needed.
    pub(crate) fn client(
        &self,
        redirects: reqwest::redirect::Policy,
    ) -> Result<Http, RegistryError> {
        // reqwest's blocking timeout bounds sending a request and receiving the response head,
        // and then each read of the body on its own: a stall anywhere ends, a slow large body
        // does not. Request bodies get their own longer bound (`upload_timeout`).
        let mut builder = Http::builder()
            .user_agent(self.user_agent.as_str())
            .connect_timeout(self.idle.min(Duration::from_secs(15)))
            .timeout(self.idle)
            .redirect(redirects);
        for cert in &self.extra_roots {
            builder = builder.add_root_certificate(cert.clone());
        }
        builder
            .build()
            .map_err(|e| RegistryError::Client(e.without_url()))
    }
}

/// The bound on a request that sends `len` bytes.
pub(crate) fn upload_timeout(idle: Duration, len: u64) -> Duration {
    idle + Duration::from_secs(len / MIN_UPLOAD_RATE)
}

fn read_ca(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, RegistryError> {
    let fail = |message: String| RegistryError::Ca {
        path: path.to_path_buf(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// Learns the scheme and challenge of `reference`'s registry. A TLS failure is not retried:
/// for a loopback registry it means plain HTTP, and http is asked at once.
pub(crate) fn discover(
    http: &Http,
    policy: &Policy,
    reference: &Reference,
    allow_http: bool,
) -> Result<Host, RegistryError> {
    let api = reference.api_host();
    resolve(reference.registry(), api)?;
    let https = format!("https://{api}");
    let failure = match ping(http, policy, &https) {
        Ok(response) => return Host::answered(reference.registry(), https, &response),
        Err(e) => e,
    };
    if allow_http {
        let plain = format!("http://{api}");
        // Only a registry's answer counts: a TLS server says 400 to plain HTTP.
        if let Ok(response) = ping(http, policy, &plain) {
            let status = response.status();
            if status.is_success() || status == StatusCode::UNAUTHORIZED {
                return Host::answered(reference.registry(), plain, &response);
            }
        }
    }
    Err(RegistryError::connect(
        reference.registry(),
        &https,
        failure,
    ))
}

/// Fails at once, with its own error, when the registry's host name does not resolve: no
/// retry or scheme fallback can help then. Behind a proxy the proxy resolves names, so the
/// check is left to it.
fn resolve(registry: &str, api: &str) -> Result<(), RegistryError> {
    let proxied = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    if proxied {
        return Ok(());
    }
    let host = match reqwest::Url::parse(&format!("https://{api}")) {
        Ok(url) => url.host_str().unwrap_or(api).to_owned(),
        Err(_) => api.to_owned(),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    match (host, 443).to_socket_addrs() {
        Ok(addrs) if addrs.len() > 0 => Ok(()),
        Ok(_) => Err(RegistryError::Resolve {
            registry: registry.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }),
        Err(source) => Err(RegistryError::Resolve {
            registry: registry.to_owned(),
            source,
        }),
    }
}

/// `GET BASE/v2/`, retried while the failure is transient; any answer is a success here.
fn ping(http: &Http, policy: &Policy, base: &str) -> Result<Response, reqwest::Error> {
    let mut tries = policy.start();
    loop {
        match http.get(format!("{base}/v2/")).send() {
            Ok(response) => return Ok(response),
            Err(e) if retry::transient(&e) && tries.wait(None, &format!("{base}/v2/: {e}")) => {}
            Err(e) => return Err(e),
        }
    }
}

pub(crate) fn challenge_of(response: &Response) -> Option<Challenge> {
    if response.status() != StatusCode::UNAUTHORIZED {
        return None;
    }
    response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(Challenge::parse)
}

/// Plain HTTP only for loopback registries and the ones the user named insecure.
pub(crate) fn allows_http(registry: &str, insecure: &[String]) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            registry
        }
    });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    loopback || insecure.iter().any(|i| i == registry || i == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_named_hosts_get_http() {
        let insecure = ["reg.lan:5000".to_owned()];
        assert!(allows_http("127.0.0.1:5000", &insecure));
        assert!(allows_http("localhost", &insecure));
        assert!(allows_http("[::1]:5000", &insecure));
        assert!(allows_http("reg.lan:5000", &insecure));
        assert!(!allows_http("gcr.io", &insecure));
    }

    #[test]
    fn uploads_get_time_for_their_size() {
        let idle = Duration::from_secs(30);
        assert_eq!(upload_timeout(idle, 0), idle);
        assert_eq!(
            upload_timeout(idle, 64 << 20),
            idle + Duration::from_secs(1024)
        );
    }
}
