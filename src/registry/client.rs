//! The HTTP side of a registry: choosing https or http, authenticating (basic or bearer
//! tokens, cached per scope), and the one retry loop.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use super::auth::{Challenge, Credential, Keychain};
use super::error::{envelope_detail, status_hint, RegistryError};
use super::RegistryOptions;
use crate::reference::Reference;

const ATTEMPTS: u32 = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// How to reach one registry, learned from its `/v2/` endpoint once.
#[derive(Debug, Clone)]
struct Host {
    base: String,
    challenge: Option<Challenge>,
}

/// An authenticated, retrying client for any number of registries.
pub(crate) struct Client {
    http: Http,
    keychain: Keychain,
    insecure: Vec<String>,
    offline: bool,
    hosts: Mutex<HashMap<String, Host>>,
    tokens: Mutex<HashMap<(String, String), String>>,
}

impl Client {
    pub(crate) fn new(opts: &RegistryOptions, keychain: Keychain) -> Result<Self, RegistryError> {
        let mut builder = Http::builder()
            .user_agent(match opts.user_agent.as_str() {
                "" => format!("stevedore/{}", env!("CARGO_PKG_VERSION")),
                agent => agent.to_owned(),
            })
            .connect_timeout(Duration::from_secs(15))
            .timeout(None::<Duration>);
        for path in &opts.ca_files {
            let pem = std::fs::read(path).map_err(|e| RegistryError::Ca {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| RegistryError::Ca {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(RegistryError::Ca {
                    path: path.clone(),
                    message: "no PEM certificate in it".into(),
                });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Client {
            http: builder.build().map_err(RegistryError::Client)?,
            keychain,
            insecure: opts.insecure.clone(),
            offline: opts.offline,
            hosts: Mutex::default(),
            tokens: Mutex::default(),
        })
    }

    /// Whether every request is refused (`--offline`).
    pub(crate) fn offline(&self) -> bool {
        self.offline
    }

    /// Sends `GET /v2/<repo>/<path>` (or another method via `build`) with auth and retries.
    /// Any status but success is an error, except those listed in `accept_status`.
    pub(crate) fn send(
        &self,
        reference: &Reference,
        scopes: &[String],
        path: &str,
        build: &dyn Fn(&Http, &str) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let url = self.url(reference, path)?;
        self.send_url(reference, scopes, &url, build)
    }

    /// `https://HOST/v2/REPO/PATH` for the reference's registry.
    pub(crate) fn url(&self, reference: &Reference, path: &str) -> Result<String, RegistryError> {
        let host = self.host(reference)?;
        Ok(format!(
            "{}/v2/{}/{}",
            host.base,
            reference.repository(),
            path
        ))
    }

    /// An upload `Location`, which registries may give relative to the host.
    pub(crate) fn absolute(
        &self,
        reference: &Reference,
        location: &str,
    ) -> Result<String, RegistryError> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Ok(location.to_owned());
        }
        Ok(format!("{}{location}", self.host(reference)?.base))
    }

    /// Like [`Client::send`], to a full URL (upload sessions live at URLs the registry picks).
    pub(crate) fn send_url(
        &self,
        reference: &Reference,
        scopes: &[String],
        url: &str,
        build: &dyn Fn(&Http, &str) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let host = self.host(reference)?;
        let url = url.to_owned();
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = build(&self.http, &url);
            if let Some(auth) = self.authorization(reference, &host, scopes, false)? {
                request = request.header(AUTHORIZATION, sensitive(&auth));
            }
            let method = request
                .try_clone()
                .and_then(|r| r.build().ok())
                .map(|r| r.method().to_string())
                .unwrap_or_default();
            let response = match request.send() {
                Ok(r) => r,
                Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                    backoff(attempt, None);
                    continue;
                }
                Err(e) => return Err(connect_error(reference, &url, e)),
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                // The scope we hold may be too narrow: ask again with what the registry says.
                refreshed = true;
                self.forget_tokens(reference);
                if let Some(challenge) = challenge_of(&response) {
                    self.remember_challenge(reference, challenge);
                    let host = self.host(reference)?;
                    let _ = self.authorization(reference, &host, scopes, true)?;
                    continue;
                }
            }
            if (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
                && attempt < ATTEMPTS
            {
                backoff(attempt, retry_after(&response));
                continue;
            }
            if status.is_success() {
                return Ok(response);
            }
            return Err(status_error(reference, &method, &url, response));
        }
    }

    /// The scheme and auth challenge of a registry, asked once.
    fn host(&self, reference: &Reference) -> Result<Host, RegistryError> {
        // Every request passes here first: the one place --offline is enforced.
        if self.offline {
            return Err(RegistryError::Offline {
                reference: reference.to_string(),
            });
        }
        let key = reference.registry().to_owned();
        if let Some(host) = self.hosts.lock().expect("hosts lock").get(&key) {
            return Ok(host.clone());
        }
        let api = reference.api_host();
        let https = format!("https://{api}");
        let host = match self.ping(&https) {
            Ok((_, challenge)) => Host {
                base: https,
                challenge,
            },
            Err(e) if self.allows_http(reference.registry()) => {
                let http = format!("http://{api}");
                match self.ping(&http) {
                    // Only a registry's answer counts: a TLS server says 400 to plain HTTP.
                    Ok((status, challenge))
                        if status.is_success() || status == StatusCode::UNAUTHORIZED =>
                    {
                        Host {
                            base: http,
                            challenge,
                        }
                    }
                    _ => return Err(connect_error(reference, &https, e)),
                }
            }
            Err(e) => return Err(connect_error(reference, &https, e)),
        };
        self.hosts
            .lock()
            .expect("hosts lock")
            .insert(key, host.clone());
        Ok(host)
    }

    fn ping(&self, base: &str) -> Result<(StatusCode, Option<Challenge>), reqwest::Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.http.get(format!("{base}/v2/")).send() {
                Ok(r) => return Ok((r.status(), challenge_of(&r))),
                Err(e) if attempt < ATTEMPTS && is_transient(&e) => backoff(attempt, None),
                Err(e) => return Err(e),
            }
        }
    }

    fn remember_challenge(&self, reference: &Reference, challenge: Challenge) {
        if let Some(host) = self
            .hosts
            .lock()
            .expect("hosts lock")
            .get_mut(reference.registry())
        {
            host.challenge = Some(challenge);
        }
    }

    /// Plain HTTP only for loopback registries and the ones the user named insecure.
    fn allows_http(&self, registry: &str) -> bool {
        let host = registry.rsplit_once(':').map_or(registry, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                registry
            }
        });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        loopback || self.insecure.iter().any(|i| i == registry || i == host)
    }

    /// The Authorization header for `scopes` (e.g. `repository:app:pull,push`), if any is needed.
    fn authorization(
        &self,
        reference: &Reference,
        host: &Host,
        scopes: &[String],
        fresh: bool,
    ) -> Result<Option<String>, RegistryError> {
        match &host.challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self
                .keychain
                .resolve(reference.registry())?
                .map(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = (reference.registry().to_owned(), scopes.join(" "));
                if !fresh {
                    if let Some(token) = self.tokens.lock().expect("tokens lock").get(&key) {
                        return Ok(Some(format!("Bearer {token}")));
                    }
                }
                let credential = self.keychain.resolve(reference.registry())?;
                let token = self.fetch_token(
                    reference,
                    realm,
                    service.as_deref(),
                    scopes,
                    credential.as_ref(),
                )?;
                self.tokens
                    .lock()
                    .expect("tokens lock")
                    .insert(key, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn forget_tokens(&self, reference: &Reference) {
        self.tokens
            .lock()
            .expect("tokens lock")
            .retain(|(registry, _), _| registry != reference.registry());
    }

    fn fetch_token(
        &self,
        reference: &Reference,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        credential: Option<&Credential>,
    ) -> Result<String, RegistryError> {
        let mut query: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", s.as_str())).collect();
        if let Some(service) = service {
            query.push(("service", service));
        }
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let mut request = self.http.get(realm).query(&query);
            if let Some(c) = credential {
                request = request.header(AUTHORIZATION, sensitive(&c.basic_header()));
            }
            match request.send() {
                Ok(r)
                    if (r.status().is_server_error()
                        || r.status() == StatusCode::TOO_MANY_REQUESTS)
                        && attempt < ATTEMPTS =>
                {
                    backoff(attempt, retry_after(&r));
                }
                Ok(r) => break r,
                Err(e) if attempt < ATTEMPTS && is_transient(&e) => backoff(attempt, None),
                Err(e) => return Err(connect_error(reference, realm, e)),
            }
        };
        if !response.status().is_success() {
            return Err(status_error(reference, "GET", realm, response));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = read_limited(response, 1 << 20, realm)?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| RegistryError::NoToken {
                realm: realm.into(),
            })?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or(RegistryError::NoToken {
                realm: realm.into(),
            })
    }
}

/// A header value that HTTP libraries keep out of their own debug output.
fn sensitive(value: &str) -> reqwest::header::HeaderValue {
    let mut value = reqwest::header::HeaderValue::from_str(value)
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("invalid"));
    value.set_sensitive(true);
    value
}

fn challenge_of(response: &Response) -> Option<Challenge> {
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

/// Connection failures worth another try; certificate and name-resolution problems are not.
fn is_transient(e: &reqwest::Error) -> bool {
    let chain = error_chain(e);
    let permanent = [
        "certificate",
        "dns error",
        "failed to lookup address",
        "InvalidCertificate",
    ];
    (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body())
        && !permanent.iter().any(|p| chain.contains(p))
}

/// An error and its causes on one line, for classifying and for messages.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn connect_error(reference: &Reference, url: &str, source: reqwest::Error) -> RegistryError {
    let chain = error_chain(&source);
    let registry = reference.registry();
    let hint = if chain.contains("certificate") || chain.contains("InvalidCertificate") {
        format!("the TLS certificate of {registry} is not trusted: pass --registry-ca FILE (its CA, PEM) or set SSL_CERT_FILE")
    } else if chain.contains("dns error") || chain.contains("failed to lookup address") {
        format!("cannot resolve the registry host {registry}: check the image reference")
    } else {
        format!(
            "cannot reach {registry} at {}: is the registry running and reachable?",
            redact(url)
        )
    };
    RegistryError::Connect { hint, source }
}

fn status_error(
    reference: &Reference,
    method: &str,
    url: &str,
    response: Response,
) -> RegistryError {
    let status = response.status().as_u16();
    let body = read_limited(response, 4096, url)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    RegistryError::Status {
        method: method.to_owned(),
        url: redact(url),
        status,
        detail: envelope_detail(&body),
        hint: status_hint(status, reference.registry()),
    }
}

/// A URL without any userinfo or query (upload URLs carry session state, tokens may hide there).
pub(crate) fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => url.split('?').next().unwrap_or(url).to_owned(),
    }
}

fn retry_after(response: &Response) -> Option<Duration> {
    let secs: u64 = response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(Duration::from_secs(60)))
}

/// Exponential backoff from 200 ms, capped; the server's Retry-After wins when given.
pub(crate) fn backoff(attempt: u32, server_says: Option<Duration>) {
    let wait = server_says.unwrap_or_else(|| {
        (Duration::from_millis(200) * 2u32.pow(attempt.min(6))).min(MAX_BACKOFF)
    });
    tracing::debug!("retrying in {wait:?} (attempt {attempt})");
    std::thread::sleep(wait);
}

/// Reads a small body whole, refusing more than `limit` bytes.
pub(crate) fn read_limited(
    response: Response,
    limit: u64,
    url: &str,
) -> Result<Vec<u8>, RegistryError> {
    let mut body = Vec::new();
    response
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|source| RegistryError::Body {
            url: redact(url),
            source,
        })?;
    if body.len() as u64 > limit {
        return Err(RegistryError::TooLarge {
            what: "response",
            reference: redact(url),
            limit,
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_and_query() {
        assert_eq!(
            redact("https://u:p@h/v2/x?state=abc&digest=y"),
            "https://h/v2/x"
        );
    }

    #[test]
    fn only_loopback_and_named_hosts_get_http() {
        let opts = RegistryOptions {
            ca_files: vec![],
            insecure: vec!["reg.lan:5000".into()],
            user_agent: "t".into(),
            ..RegistryOptions::default()
        };
        let client = Client::new(&opts, Keychain::default()).unwrap();
        assert!(client.allows_http("127.0.0.1:5000"));
        assert!(client.allows_http("localhost"));
        assert!(client.allows_http("[::1]:5000"));
        assert!(client.allows_http("reg.lan:5000"));
        assert!(!client.allows_http("gcr.io"));
    }
}
