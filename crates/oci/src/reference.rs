//! Image references, parsed the way docker parses them: `alpine` is
//! `docker.io/library/alpine:latest`, a first component with `.` or `:` (or `localhost`) is a
//! registry host, and `@sha256:…` pins a digest.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const MAX_NAME: usize = 255;

/// A parsed image reference: registry, repository, and a tag and/or a digest.
///
/// ```
/// use stevedore_oci::Reference;
///
/// let short: Reference = "alpine".parse().unwrap();
/// assert_eq!(short.registry(), "docker.io");
/// assert_eq!(short.repository(), "library/alpine");
/// assert_eq!(short.tag(), Some("latest"));
///
/// let local: Reference = "localhost:5000/team/app:1.0".parse().unwrap();
/// assert_eq!((local.registry(), local.repository()), ("localhost:5000", "team/app"));
/// assert!("Team/App".parse::<Reference>().is_err(), "repositories are lower case");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Text that is not an image reference, with what is wrong with it: refused when parsed as a
/// [`Reference`] or a [`Base`], or by [`Reference::child`] for a name a repository cannot have.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not an image reference: {problem} (expected e.g. `registry.example.com:5000/team/app:1.0` or `app@sha256:<64 hex>`)")]
pub struct ReferenceError {
    input: String,
    problem: String,
}

impl Reference {
    /// The registry's host (and port), e.g. `docker.io` or `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository within the registry, e.g. `library/alpine`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, when the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The host to send API requests to (Docker Hub's API lives on another name).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What to ask a manifest endpoint for: the digest when pinned, else the tag.
    pub fn identifier(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same repository, pinned to `digest` (and without a tag).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same tag or digest in the repository `REPOSITORY/name` (one image per binary).
    pub fn child(&self, name: &str) -> Result<Reference, ReferenceError> {
        let mut text = format!("{}/{}/{name}", self.registry, self.repository);
        if let Some(tag) = &self.tag {
            text.push_str(&format!(":{tag}"));
        }
        text.parse()
    }

    /// The token scope for `actions` on this repository, e.g. `repository:library/alpine:pull`.
    pub fn scope(&self, actions: &str) -> String {
        format!("repository:{}:{actions}", self.repository)
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |problem: &str| ReferenceError {
            input: input.to_owned(),
            problem: problem.to_owned(),
        };
        let (rest, digest) =
            match input.split_once('@') {
                Some((rest, d)) => (
                    rest,
                    Some(d.parse::<Digest>().map_err(|_| {
                        fail("the digest after `@` is not sha256:<64 lowercase hex>")
                    })?),
                ),
                None => (input, None),
            };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(fail("a tag is 1-128 of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"));
            }
        }
        let (registry, repository) = split_registry(name);
        if !valid_registry(registry) {
            return Err(fail("the registry host is not a valid host[:port]"));
        }
        let repository = match (registry == DOCKER_HUB, repository.contains('/')) {
            (true, false) => format!("library/{repository}"),
            _ => repository.to_owned(),
        };
        if repository.is_empty() || !repository.split('/').all(valid_component) {
            return Err(fail("repository names are lowercase letters and digits, separated by `/`, `.`, `_`, `__` or `-`"));
        }
        if registry.len() + 1 + repository.len() > MAX_NAME {
            return Err(fail("the name is longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            (t, _) => t.map(str::to_owned),
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }
}

fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = split_port(registry);
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    };
    port_ok && host_ok
}

/// `host[:port]` split. A bracketed IPv6 address holds colons of its own, so its port can only
/// follow the `]`.
fn split_port(registry: &str) -> (&str, Option<&str>) {
    let host_end = match registry.starts_with('[') {
        true => registry.find(']').map_or(registry.len(), |i| i + 1),
        false => registry.find(':').unwrap_or(registry.len()),
    };
    let (host, rest) = registry.split_at(host_end);
    match rest.strip_prefix(':') {
        Some(port) => (host, Some(port)),
        None if rest.is_empty() => (host, None),
        // Something after `]` other than a port: not a host, and rejected as one.
        None => (registry, None),
    }
}

/// One path component: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The base of the image: a registry image, or nothing at all.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    /// No base: the image holds stevedore's layer alone.
    Scratch,
    /// A registry image, built on for each platform.
    Image(#[serde(serialize_with = "display")] Reference),
}

/// The base when neither a flag nor Cargo.toml names one.
pub const DEFAULT_BASE: &str = "gcr.io/distroless/static-debian12:nonroot";
/// The base of glibc builds (`--libc gnu`) when neither a flag nor Cargo.toml names one:
/// distroless with glibc, libgcc and libssl.
pub const DEFAULT_GNU_BASE: &str = "gcr.io/distroless/cc-debian12:nonroot";

impl FromStr for Base {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scratch" => Ok(Base::Scratch),
            _ => s.parse().map(Base::Image),
        }
    }
}

impl Default for Base {
    fn default() -> Self {
        DEFAULT_BASE
            .parse()
            .expect("the default base is a valid reference")
    }
}

fn display<S: serde::Serializer>(reference: &Reference, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_like_docker() {
        let cases = [
            (
                "alpine",
                "docker.io",
                "library/alpine",
                Some("latest"),
                false,
            ),
            ("user/app:1.0", "docker.io", "user/app", Some("1.0"), false),
            (
                "gcr.io/distroless/static-debian12:nonroot",
                "gcr.io",
                "distroless/static-debian12",
                Some("nonroot"),
                false,
            ),
            ("localhost/app", "localhost", "app", Some("latest"), false),
            (
                "127.0.0.1:5000/a/b/c:v",
                "127.0.0.1:5000",
                "a/b/c",
                Some("v"),
                false,
            ),
            ("[::1]:5000/app:x", "[::1]:5000", "app", Some("x"), false),
        ];
        for (input, registry, repository, tag, _) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (r.registry(), r.repository(), r.tag()),
                (registry, repository, tag),
                "{input}"
            );
        }
        let pinned: Reference = format!("127.0.0.1:5000/app@{D}").parse().unwrap();
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.identifier(), D);
        assert_eq!(pinned.to_string(), format!("127.0.0.1:5000/app@{D}"));
        let both: Reference = format!("app:1@{D}").parse().unwrap();
        assert_eq!(
            (both.tag(), both.digest().map(Digest::as_str)),
            (Some("1"), Some(D))
        );
        assert_eq!(
            "alpine".parse::<Reference>().unwrap().api_host(),
            "registry-1.docker.io"
        );
        assert_eq!(
            "alpine".parse::<Reference>().unwrap().to_string(),
            "docker.io/library/alpine:latest"
        );
    }

    /// Found by the `reference` fuzz target: `[::1]:5000/app` parsed but `[::1]/app` did not,
    /// because the port was split at the last `:`, inside the IPv6 address.
    #[test]
    fn ipv6_registries_need_no_port() {
        let r: Reference = "[::1]/app:1".parse().unwrap();
        assert_eq!((r.registry(), r.repository()), ("[::1]", "app"));
        let r: Reference = "[fd00::5]:5000/a/b".parse().unwrap();
        assert_eq!(r.registry(), "[fd00::5]:5000");
        for bad in [
            "[::1]x/app",
            "[::1]:/app",
            "[::1/app",
            "[nothost]/app",
            "[::1]:5:0/app",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "UPPER/case",
            "app:",
            "app:-x",
            "a b",
            "app@sha256:123",
            "host:port:x/y",
            "app//x",
            "-app",
            "app/",
            "example.com:99999999/app",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} parsed");
        }
    }
}
