//! The trust boundary of the transport: which origin (scheme, host, port) a URL belongs to, and
//! so whether a registry's credentials may go with a request to it.
//!
//! The rules, as docker's challenge manager and go-containerregistry's bearer transport keep
//! them: a credential (Basic, a bearer token, an identity token) is attached only to requests
//! whose origin is the registry's own, or the token realm's for the token request itself. A
//! registry may send the client elsewhere (an upload `Location`, a redirect to a CDN); that is
//! followed without credentials, and only a registry's own origin may ask for credentials. No
//! step may go from https down to plain http, except to a host the user named with
//! `--insecure-registry` or a loopback one. Redirects are bounded, and reqwest removes
//! `Authorization` from any redirect to another host or port.

use std::fmt;

use reqwest::redirect;
use reqwest::Url;

use super::error::RegistryError;
use super::scheme::allows_http;

/// Redirects followed for one request, as browsers and reqwest's default allow.
const MAX_REDIRECTS: usize = 10;

/// Scheme, host and port: what a credential is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of `url`; `None` for a URL without a host or with a scheme other than http(s).
    pub(crate) fn of(url: &Url) -> Option<Origin> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        Some(Origin {
            scheme: scheme.to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    /// The origin of the URL `url`, if it parses.
    pub(crate) fn parse(url: &str) -> Option<Origin> {
        Origin::of(&Url::parse(url).ok()?)
    }

    fn https(&self) -> bool {
        self.scheme == "https"
    }

    /// `host:port`, as `--insecure-registry` and references name a registry.
    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Whether going from `from` to `to` drops TLS for a host that was not allowed plain HTTP.
fn downgrades(from: &Origin, to: &Origin, insecure: &[String]) -> bool {
    from.https() && !to.https() && !allows_http(&to.authority(), insecure)
}

/// reqwest's redirect policy for every registry request: at most [`MAX_REDIRECTS`] hops, and
/// none from https to plain http (unless that host may be reached so).
pub(crate) fn redirect_policy(insecure: Vec<String>) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let from = attempt.previous().last().and_then(Origin::of);
        let to = Origin::of(attempt.url());
        match (from, to) {
            (Some(from), Some(to)) if downgrades(&from, &to, &insecure) => {
                let refused = format!("a redirect from {from} to plain-HTTP {to}");
                attempt.error(refused)
            }
            (_, None) => attempt.error("a redirect to a URL that is not http(s)"),
            _ => attempt.follow(),
        }
    })
}

/// Whether `response` came from the registry's own `origin` (not from wherever a redirect led);
/// a `401` from another origin is an error naming both, so its challenge never makes the
/// registry's credential go there.
pub(crate) fn own_answer(
    registry: &str,
    origin: &Origin,
    response: &reqwest::blocking::Response,
) -> Result<bool, RegistryError> {
    let answered = Origin::of(response.url());
    if answered.as_ref() == Some(origin) {
        return Ok(true);
    }
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(false);
    }
    Err(RegistryError::ForeignChallenge {
        registry: registry.to_owned(),
        registry_origin: origin.to_string(),
        origin: answered.map_or_else(
            || super::client::redact(response.url().as_str()),
            |o| o.to_string(),
        ),
    })
}

/// Where a registry at `base` sends the client (an upload `Location`, relative or absolute):
/// resolved against `base`, and refused when it leaves TLS or http(s).
pub(crate) fn follow(
    registry: &str,
    base: &Origin,
    location: &str,
    insecure: &[String],
) -> Result<Url, RegistryError> {
    let refused = |why: &str| RegistryError::Location {
        registry: registry.to_owned(),
        location: super::client::redact(location),
        why: why.to_owned(),
    };
    let base_url = Url::parse(&format!("{base}/")).map_err(|_| refused("no base URL"))?;
    let url = base_url
        .join(location)
        .map_err(|_| refused("it is not a URL"))?;
    let Some(to) = Origin::of(&url) else {
        return Err(refused("it is not an http(s) URL"));
    };
    if downgrades(base, &to, insecure) {
        return Err(refused(&format!(
            "it leaves TLS for plain HTTP at {to}; if that host is meant to be reached without \
             TLS, pass --insecure-registry {}",
            to.authority()
        )));
    }
    Ok(url)
}

/// A token realm named by `registry` (at `base`): an http(s) URL that does not leave TLS.
pub(crate) fn realm(
    registry: &str,
    base: &Origin,
    realm: &str,
    insecure: &[String],
) -> Result<Url, RegistryError> {
    let refused = |why: String| RegistryError::Realm {
        registry: registry.to_owned(),
        realm: super::client::redact(realm),
        why,
    };
    let url = Url::parse(realm).map_err(|_| refused("it is not an absolute URL".into()))?;
    let Some(to) = Origin::of(&url) else {
        return Err(refused("it is not an http(s) URL".into()));
    };
    if downgrades(base, &to, insecure) {
        return Err(refused(format!(
            "the registry is reached over https, and the credential would cross plain HTTP to \
             {to}; pass --insecure-registry {} only if that is intended",
            to.authority()
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::parse(url).unwrap()
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin("https://R.example/v2/"),
            origin("https://r.example:443/x")
        );
        assert_ne!(origin("https://r.example/"), origin("http://r.example/"));
        assert_ne!(
            origin("https://r.example/"),
            origin("https://r.example:5000/")
        );
        assert_ne!(origin("https://r.example/"), origin("https://cdn.example/"));
        assert_eq!(Origin::parse("ftp://r.example/"), None);
        assert_eq!(
            origin("http://[::1]:5000/").to_string(),
            "http://[::1]:5000"
        );
    }

    #[test]
    fn locations_resolve_against_the_registry_and_keep_tls() {
        let base = origin("https://r.example:5000");
        let relative = follow(
            "r.example:5000",
            &base,
            "/v2/a/blobs/uploads/1?_state=x",
            &[],
        );
        assert_eq!(
            relative.unwrap().as_str(),
            "https://r.example:5000/v2/a/blobs/uploads/1?_state=x"
        );
        let elsewhere = follow("r.example:5000", &base, "https://cdn.example/u/1", &[]).unwrap();
        assert_ne!(
            Origin::of(&elsewhere).unwrap(),
            base,
            "followed, as another origin"
        );
        let scheme_relative = follow("r.example:5000", &base, "//other.example/u", &[]).unwrap();
        assert_eq!(scheme_relative.host_str(), Some("other.example"));
        let down = follow("r.example:5000", &base, "http://r.example:5000/u", &[]);
        assert!(matches!(down, Err(RegistryError::Location { .. })));
        let named = ["other.example:80".to_owned()];
        assert!(follow("r.example:5000", &base, "http://other.example/u", &named).is_ok());
        let loopback = follow("r.example:5000", &base, "http://127.0.0.1:9/u", &[]);
        assert!(loopback.is_ok(), "loopback may be plain HTTP");
        let file = follow("r.example:5000", &base, "file:///etc/passwd", &[]);
        assert!(matches!(file, Err(RegistryError::Location { .. })));
    }

    #[test]
    fn realms_must_be_absolute_and_keep_tls() {
        let base = origin("https://r.example");
        assert!(realm("r.example", &base, "https://auth.example/token", &[]).is_ok());
        assert!(realm("r.example", &base, "/token", &[]).is_err());
        assert!(realm("r.example", &base, "http://auth.example/token", &[]).is_err());
        let plain = origin("http://127.0.0.1:5000");
        assert!(realm("127.0.0.1:5000", &plain, "http://auth.example/token", &[]).is_ok());
    }
}
