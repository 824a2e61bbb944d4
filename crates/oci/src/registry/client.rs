//! The registry transport, stacked as go-containerregistry stacks it: scheme (ping, once per
//! registry, `scheme.rs`) → auth (basic, or bearer tokens cached per scope; credentials looked
//! up once per registry) → retry (one policy, `retry.rs`). Everything above asks [`Client`]
//! for a request and gets a response with a success status, or a typed error.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::StatusCode;

use super::auth::{Challenge, Credential, Keychain};
use super::error::{envelope, status_hint, RegistryError};
use super::origin::{self, Origin};
use super::retry::{self, Policy};
use super::scheme::{self, Host};
use super::RegistryOptions;
use crate::reference::Reference;

/// The largest token server answer read: a token is a few kilobytes.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

/// Whether a request may be sent again after a transient failure. An upload's PATCH or PUT
/// may not: the session's state is unknown then, and the upload starts over instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    Yes,
    No,
}

/// What one try of a request came to, as the retry loop sees it.
enum Try {
    Done(Response),
    /// Failed in a way that may clear up; `Some` when the server said how long to wait.
    Transient(RegistryError, Option<Duration>),
    Final(RegistryError),
    /// Send again at once without counting a try (new credentials were fetched).
    Again,
}

/// An authenticated, retrying client for any number of registries.
pub(crate) struct Client {
    settings: scheme::HttpSettings,
    /// Built on first use (see [`scheme::HttpSettings::client`]): a build's first request is
    /// made beside the compile, so cargo does not wait for the root certificates to load.
    http: OnceLock<Http>,
    /// For token requests, which follow no redirect: a refresh token is in the body, and a
    /// 307 would send it on to wherever the redirect points. Built on first use too.
    token_http: OnceLock<Http>,
    policy: Policy,
    keychain: Keychain,
    insecure: Vec<String>,
    offline: bool,
    hosts: Mutex<HashMap<String, Host>>,
    tokens: Mutex<HashMap<(String, String), String>>,
    credentials: Mutex<HashMap<String, Option<Credential>>>,
}

impl Client {
    pub(crate) fn new(opts: &RegistryOptions, keychain: Keychain) -> Result<Self, RegistryError> {
        Ok(Client {
            settings: scheme::HttpSettings::of(opts)?,
            http: OnceLock::new(),
            token_http: OnceLock::new(),
            policy: Policy::default(),
            keychain,
            insecure: opts.insecure.clone(),
            offline: opts.offline,
            hosts: Mutex::default(),
            tokens: Mutex::default(),
            credentials: Mutex::default(),
        })
    }

    /// The client registry requests go through, following redirects the registry's way.
    fn http(&self) -> Result<&Http, RegistryError> {
        if let Some(http) = self.http.get() {
            return Ok(http);
        }
        let redirects = origin::redirect_policy(self.insecure.clone());
        let built = self.settings.client(redirects)?;
        Ok(self.http.get_or_init(|| built))
    }

    /// The client token requests go through, following no redirect.
    fn token_http(&self) -> Result<&Http, RegistryError> {
        if let Some(http) = self.token_http.get() {
            return Ok(http);
        }
        let built = self.settings.client(reqwest::redirect::Policy::none())?;
        Ok(self.token_http.get_or_init(|| built))
    }

    /// Whether every request is refused (`--offline`).
    pub(crate) fn offline(&self) -> bool {
        self.offline
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The bound on a request sending `len` bytes (idle timeout plus time for the bytes).
    pub(crate) fn upload_timeout(&self, len: u64) -> Duration {
        scheme::upload_timeout(self.settings.idle, len)
    }

    /// Sends `GET /v2/<repo>/<path>` (or what `build` makes of the URL) with auth and retries.
    pub(crate) fn send(
        &self,
        reference: &Reference,
        scopes: &[String],
        path: &str,
        build: &dyn Fn(&Http, &str) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let url = self.url(reference, path)?;
        self.send_url(reference, scopes, &url, Retry::Yes, build)
    }

    /// Like [`Client::send`], and reads the body whole (at most `limit` bytes): for manifests
    /// and other small documents. A body that breaks off is asked for again.
    pub(crate) fn fetch_small(
        &self,
        reference: &Reference,
        scopes: &[String],
        path: &str,
        limit: u64,
        build: &dyn Fn(&Http, &str) -> RequestBuilder,
    ) -> Result<(HeaderMap, Vec<u8>), RegistryError> {
        let url = self.url(reference, path)?;
        let mut tries = self.policy.start();
        loop {
            let response = self.send_url(reference, scopes, &url, Retry::Yes, build)?;
            let headers = response.headers().clone();
            match read_limited(response, limit, &url) {
                Ok(body) => return Ok((headers, body)),
                Err(e) if broken_body(&e) && tries.wait(None, &e.to_string()) => {}
                Err(e) => return Err(e),
            }
        }
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

    /// Where the registry sends the client (an upload `Location`, relative or absolute), checked
    /// by the trust rules: another origin is followed without credentials, plain HTTP after
    /// https is refused.
    pub(crate) fn location(
        &self,
        reference: &Reference,
        location: &str,
    ) -> Result<String, RegistryError> {
        let host = self.host(reference)?;
        origin::follow(reference.registry(), &host.origin, location, &self.insecure)
            .map(String::from)
    }

    /// Like [`Client::send`], to a full URL (upload sessions live at URLs the registry picks).
    /// Credentials go with it only when the URL is on the registry's own origin. A 401 fetches
    /// a new token once (it may have expired mid-push) and sends again; a 401 from any other
    /// origin ends the request.
    pub(crate) fn send_url(
        &self,
        reference: &Reference,
        scopes: &[String],
        url: &str,
        retry: Retry,
        build: &dyn Fn(&Http, &str) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut refreshed = false;
        self.retrying(retry, || {
            let host = match self.host(reference) {
                Ok(host) => host,
                Err(e) => return Try::Final(e),
            };
            let http = match self.http() {
                Ok(http) => http,
                Err(e) => return Try::Final(e),
            };
            let mut request = build(http, url);
            if Origin::parse(url).as_ref() == Some(&host.origin) {
                match self.authorization(reference, &host, scopes, false) {
                    Ok(Some(auth)) => request = request.header(AUTHORIZATION, sensitive(&auth)),
                    Ok(None) => {}
                    Err(e) => return Try::Final(e),
                }
            }
            let method = method_of(&request);
            let response = match request.send() {
                Ok(response) => response,
                Err(e) => return self.send_failure(reference, url, e),
            };
            if response.status() == StatusCode::UNAUTHORIZED {
                if let Err(e) = origin::own_answer(reference.registry(), &host.origin, &response) {
                    return Try::Final(e);
                }
                if !refreshed {
                    refreshed = true;
                    if let Err(e) = self.reauthorize(reference, scopes, &response) {
                        return Try::Final(e);
                    }
                    return Try::Again;
                }
            }
            judge(reference, &method, url, response)
        })
    }

    /// Whether the registry accepts the keychain's credential: a token from its realm (with
    /// no scope, as `docker login` asks), or `/v2/` answered to Basic auth.
    pub(crate) fn check_login(&self, reference: &Reference) -> Result<(), RegistryError> {
        let host = self.host(reference)?;
        match &host.challenge {
            None => Ok(()),
            Some(Challenge::Basic) => {
                let url = format!("{}/v2/", host.base);
                self.send_url(reference, &[], &url, Retry::Yes, &|http, url| http.get(url))
                    .map(drop)
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let credential = self.credential(reference.registry())?;
                self.fetch_token(reference, realm, service.as_deref(), &[], credential)
                    .map(drop)
            }
        }
    }

    /// Runs `once` until it is done, fails for good, or the policy gives up.
    fn retrying(
        &self,
        retry: Retry,
        mut once: impl FnMut() -> Try,
    ) -> Result<Response, RegistryError> {
        let mut tries = self.policy.start();
        loop {
            match once() {
                Try::Done(response) => return Ok(response),
                Try::Again => {}
                Try::Final(e) => return Err(e),
                Try::Transient(e, wait) => {
                    if retry == Retry::No || !tries.wait(wait, &e.to_string()) {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn send_failure(&self, reference: &Reference, url: &str, e: reqwest::Error) -> Try {
        let transient = retry::transient(&e);
        let error = RegistryError::connect(reference.registry(), url, e);
        if transient {
            Try::Transient(error, None)
        } else {
            Try::Final(error)
        }
    }

    /// After a 401: forget the tokens held for the registry and fetch what the challenge asks.
    fn reauthorize(
        &self,
        reference: &Reference,
        scopes: &[String],
        response: &Response,
    ) -> Result<(), RegistryError> {
        self.forget_tokens(reference);
        if let Some(challenge) = scheme::challenge_of(response) {
            self.remember_challenge(reference, challenge)?;
        }
        let host = self.host(reference)?;
        self.authorization(reference, &host, scopes, true).map(drop)
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
        let allow_http = scheme::allows_http(reference.registry(), &self.insecure);
        let host = scheme::discover(self.http()?, &self.policy, reference, allow_http)?;
        if let Some(Challenge::Bearer { realm, .. }) = &host.challenge {
            origin::realm(reference.registry(), &host.origin, realm, &self.insecure)?;
        }
        self.hosts
            .lock()
            .expect("hosts lock")
            .insert(key, host.clone());
        Ok(host)
    }

    fn remember_challenge(
        &self,
        reference: &Reference,
        challenge: Challenge,
    ) -> Result<(), RegistryError> {
        if let Challenge::Bearer { realm, .. } = &challenge {
            let origin = self.host(reference)?.origin;
            origin::realm(reference.registry(), &origin, realm, &self.insecure)?;
        }
        if let Some(host) = self
            .hosts
            .lock()
            .expect("hosts lock")
            .get_mut(reference.registry())
        {
            host.challenge = Some(challenge);
        }
        Ok(())
    }

    /// The registry's credential, looked up once per run (a helper process is not cheap).
    fn credential(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        if let Some(known) = self
            .credentials
            .lock()
            .expect("credentials lock")
            .get(registry)
        {
            return Ok(known.clone());
        }
        let found = self.keychain.resolve(registry)?;
        self.credentials
            .lock()
            .expect("credentials lock")
            .insert(registry.to_owned(), found.clone());
        Ok(found)
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
                .credential(reference.registry())?
                .map(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = (reference.registry().to_owned(), scopes.join(" "));
                if !fresh {
                    if let Some(token) = self.tokens.lock().expect("tokens lock").get(&key) {
                        return Ok(Some(format!("Bearer {token}")));
                    }
                }
                let credential = self.credential(reference.registry())?;
                let token =
                    self.fetch_token(reference, realm, service.as_deref(), scopes, credential)?;
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

    /// A token for `scopes` from the realm the registry named (checked by the trust rules),
    /// asked with the registry's credential: an identity token as an OAuth2 refresh token
    /// (`POST`, as docker does), anything else as Basic auth (`GET`), or anonymously.
    fn fetch_token(
        &self,
        reference: &Reference,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        credential: Option<Credential>,
    ) -> Result<String, RegistryError> {
        let origin = self.host(reference)?.origin;
        let realm = origin::realm(reference.registry(), &origin, realm, &self.insecure)?;
        let refresh = credential.as_ref().and_then(Credential::identity_token);
        let response = match refresh {
            Some(refresh) => {
                let posted = self.oauth_token(reference, &realm, service, scopes, refresh);
                match posted {
                    // A token server without OAuth2 takes the identity token as Basic auth.
                    Err(RegistryError::Status {
                        status: 404 | 405, ..
                    }) => self.basic_token(reference, &realm, service, scopes, credential)?,
                    other => other?,
                }
            }
            None => self.basic_token(reference, &realm, service, scopes, credential)?,
        };
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let no_token = || RegistryError::NoToken {
            realm: redact(realm.as_str()),
        };
        let body = read_limited(response, MAX_TOKEN_RESPONSE, realm.as_str())?;
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| no_token())?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(no_token)
    }

    /// `GET REALM?scope=…&service=…`, with the credential as Basic auth when there is one.
    fn basic_token(
        &self,
        reference: &Reference,
        realm: &reqwest::Url,
        service: Option<&str>,
        scopes: &[String],
        credential: Option<Credential>,
    ) -> Result<Response, RegistryError> {
        let mut query: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", s.as_str())).collect();
        query.extend(service.map(|service| ("service", service)));
        let http = self.token_http()?;
        self.retrying(Retry::Yes, || {
            let mut request = http.get(realm.clone()).query(&query);
            if let Some(c) = &credential {
                request = request.header(AUTHORIZATION, sensitive(&c.basic_header()));
            }
            match request.send() {
                Ok(response) => judge(reference, "GET", realm.as_str(), response),
                Err(e) => self.send_failure(reference, realm.as_str(), e),
            }
        })
    }

    /// docker's OAuth2 refresh-token grant: `POST REALM` with the identity token in the form.
    fn oauth_token(
        &self,
        reference: &Reference,
        realm: &reqwest::Url,
        service: Option<&str>,
        scopes: &[String],
        refresh: &str,
    ) -> Result<Response, RegistryError> {
        let scope = scopes.join(" ");
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "stevedore"),
            ("scope", scope.as_str()),
        ];
        form.extend(service.map(|service| ("service", service)));
        let http = self.token_http()?;
        self.retrying(Retry::Yes, || {
            let request = http.post(realm.clone()).form(&form);
            match request.send() {
                Ok(response) => judge(reference, "POST", realm.as_str(), response),
                Err(e) => self.send_failure(reference, realm.as_str(), e),
            }
        })
    }
}

/// Whether reading a body failed in a way another try may not.
fn broken_body(e: &RegistryError) -> bool {
    matches!(e, RegistryError::Body { source, .. } if retry::transient_read(source))
}

/// A response as one try's outcome: success, or a status error that is transient when the
/// status or the registry's error code says the server is busy or failing.
fn judge(reference: &Reference, method: &str, url: &str, response: Response) -> Try {
    let status = response.status();
    if status.is_success() {
        return Try::Done(response);
    }
    let wait = retry::retry_after(response.headers());
    let body = read_limited(response, 4096, url)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (detail, codes) = envelope(&body);
    // The registry's first error code is the one that says whether it is busy.
    let error = RegistryError::Status {
        method: method.to_owned(),
        url: redact(url),
        status: status.as_u16(),
        code: codes.into_iter().next(),
        detail,
        hint: status_hint(status.as_u16(), reference.registry()),
    };
    if error.transient() {
        Try::Transient(error, wait)
    } else {
        Try::Final(error)
    }
}

fn method_of(request: &RequestBuilder) -> String {
    request
        .try_clone()
        .and_then(|r| r.build().ok())
        .map(|r| r.method().to_string())
        .unwrap_or_default()
}

/// A header value that HTTP libraries keep out of their own debug output.
fn sensitive(value: &str) -> reqwest::header::HeaderValue {
    let mut value = reqwest::header::HeaderValue::from_str(value)
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("invalid"));
    value.set_sensitive(true);
    value
}

/// A URL without any userinfo, query or fragment, for logs and errors (upload URLs carry
/// session state, tokens may hide there, a mirror's URL may hold a password).
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or(url).to_owned(),
    }
}

/// An I/O error with any URL taken out of the HTTP library's error inside it: its message
/// would print the whole URL, query included, and a pre-signed URL is a credential.
pub(crate) fn without_url(e: std::io::Error) -> std::io::Error {
    let kind = e.kind();
    if !e
        .get_ref()
        .is_some_and(|inner| inner.is::<reqwest::Error>())
    {
        return e;
    }
    let inner = e.into_inner().expect("checked above");
    match inner.downcast::<reqwest::Error>() {
        Ok(http) => std::io::Error::new(kind, http.without_url()),
        Err(other) => std::io::Error::new(kind, other),
    }
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
            source: without_url(source),
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
}
