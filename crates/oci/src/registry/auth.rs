//! Credentials and auth challenges.
//!
//! Credentials come from `STEVEDORE_USERNAME`/`STEVEDORE_PASSWORD` (for CI), else docker's
//! config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`): `auths`, `credHelpers` and
//! `credsStore`. A secret never reaches a log or an error: [`Credential`]'s Debug redacts it.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use super::error::RegistryError;
use crate::env;
use crate::text::printable;

/// A username and a secret (password or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name (`<token>` for an identity token).
    pub username: String,
    /// The password or token; never printed.
    pub secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The user name docker's config and credential helpers give an identity token under: its
/// secret is an OAuth2 refresh token for the registry's token server, not a password.
const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credential {
    /// The refresh token, when this is an identity token (`identitytoken` in config.json, as
    /// `az acr login` and `docker login` with some registries write it).
    pub(crate) fn identity_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then_some(self.secret.as_str())
    }

    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Where credentials are looked up; built once and passed in, never global.
#[derive(Debug, Clone, Default)]
pub struct Keychain {
    env_override: Option<Credential>,
    /// The registries the environment's credential goes to; no other gets it.
    env_registries: Vec<String>,
    /// Whether `STEVEDORE_REGISTRY` named them, so a run adds none.
    env_registries_named: bool,
    /// Credential files in the order they are asked, podman's before docker's.
    files: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

impl Keychain {
    /// The keychain a user expects: the environment's credential, then podman's and docker's
    /// credential files. The environment's credential goes only to the registries
    /// `STEVEDORE_REGISTRY` lists, or else to those a run writes to
    /// ([`Keychain::offer_env_credential_to`]): a pull-only run offers it to none.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        let env_override = match (var(env::USERNAME), var(env::PASSWORD)) {
            (Some(username), Some(secret)) => Some(Credential { username, secret }),
            _ => None,
        };
        let named: Option<Vec<String>> = var(env::REGISTRY).map(|list| {
            list.split(',')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect()
        });
        Keychain {
            env_override,
            env_registries_named: named.is_some(),
            env_registries: named.unwrap_or_default(),
            files: credential_files(|name| std::env::var_os(name).filter(|v| !v.is_empty())),
        }
    }

    /// A keychain that reads only `files` (docker's or podman's format), in order, and takes
    /// nothing from the environment.
    pub fn reading(files: Vec<PathBuf>) -> Self {
        Keychain {
            files,
            ..Keychain::default()
        }
    }

    /// A keychain that holds `credential` for `registry` alone, and reads no file: to try a
    /// credential before keeping it (`login`), or for a caller that has its own.
    pub fn with_credential(registry: &str, credential: Credential) -> Self {
        Keychain {
            env_override: Some(credential),
            env_registries: vec![registry.to_owned()],
            env_registries_named: true,
            files: Vec::new(),
        }
    }

    /// Offers the environment's credential to `registries` (the ones a run writes to or reads
    /// its own image from), unless `STEVEDORE_REGISTRY` already says where it goes: a push
    /// token must not be sent to the base's registry.
    pub fn offer_env_credential_to(&mut self, registries: impl IntoIterator<Item = String>) {
        if !self.env_registries_named {
            self.env_registries.extend(registries);
        }
    }

    /// The credential for `registry` (as written in references, e.g. `ghcr.io`, `docker.io`).
    pub fn resolve(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        if let Some(cred) = &self.env_override {
            if self.env_registries.iter().any(|r| r == registry) {
                return Ok(Some(cred.clone()));
            }
        }
        for path in &self.files {
            if let Some(found) = from_file(path, registry)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// The credential files in the order containers-auth.json(5) reads them, then docker's:
/// `$REGISTRY_AUTH_FILE` (or else `$XDG_RUNTIME_DIR/containers/auth.json`),
/// `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`, then `$DOCKER_CONFIG/config.json` (or
/// `~/.docker/config.json`). All share docker's format: `auths`, `credHelpers`, `credsStore`.
fn credential_files(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Vec<PathBuf> {
    let home = var("HOME").map(PathBuf::from);
    let podman_primary = var("REGISTRY_AUTH_FILE")
        .map(PathBuf::from)
        .or_else(|| var("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("containers/auth.json")));
    let podman_config = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")))
        .map(|d| d.join("containers/auth.json"));
    let docker = var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".docker")))
        .map(|d| d.join("config.json"));
    [podman_primary, podman_config, docker]
        .into_iter()
        .flatten()
        .collect()
}

/// The credential one file holds for `registry`: a helper named for it, its `auths` entry, or
/// the file's default helper. A file that does not exist holds none.
fn from_file(path: &PathBuf, registry: &str) -> Result<Option<Credential>, RegistryError> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(None);
    };
    let answer = config_answer(&bytes, registry).map_err(|source| RegistryError::DockerConfig {
        path: path.clone(),
        source,
    })?;
    match answer {
        ConfigAnswer::Helper(helper) => run_helper(&helper, registry),
        ConfigAnswer::Found(cred) => Ok(Some(cred)),
        ConfigAnswer::Nothing => Ok(None),
    }
}

/// What docker's config.json says about one registry's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigAnswer {
    /// Ask `docker-credential-HELPER`.
    Helper(String),
    Found(Credential),
    Nothing,
}

/// Reads config.json's bytes for `registry`, without running anything: kept apart from
/// [`Keychain::resolve`] so the parsing can be tested (and fuzzed) on bytes alone.
pub(crate) fn config_answer(
    bytes: &[u8],
    registry: &str,
) -> Result<ConfigAnswer, serde_json::Error> {
    let config: DockerConfig = serde_json::from_slice(bytes)?;
    let keys = config_keys(registry);
    // docker reads an empty helper name (`"credsStore": ""`, which some installers leave
    // behind) as no helper; there is no `docker-credential-` program to run.
    let named = |helper: &&String| !helper.is_empty();
    if let Some(helper) = keys
        .iter()
        .find_map(|k| config.cred_helpers.get(k).filter(named))
    {
        return Ok(ConfigAnswer::Helper(helper.clone()));
    }
    if let Some(entry) = keys.iter().find_map(|k| config.auths.get(k)) {
        if let Some(cred) = entry_credential(entry) {
            return Ok(ConfigAnswer::Found(cred));
        }
    }
    Ok(match config.creds_store.as_ref().filter(named) {
        Some(store) => ConfigAnswer::Helper(store.clone()),
        None => ConfigAnswer::Nothing,
    })
}

/// The keys docker writes for a registry in config.json, the one `login` writes first.
pub(crate) fn config_keys(registry: &str) -> Vec<String> {
    if registry == "docker.io" {
        return vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ];
    }
    vec![
        registry.to_owned(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
    ]
}

fn entry_credential(entry: &AuthEntry) -> Option<Credential> {
    if let Some(token) = &entry.identitytoken {
        return Some(Credential {
            username: IDENTITY_TOKEN_USER.into(),
            secret: token.clone(),
        });
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Some(Credential {
            username: username.clone(),
            secret: password.clone(),
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth.as_deref()?.trim())
        .ok()?;
    let (username, secret) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, s)| (u.to_owned(), s.to_owned()))?;
    Some(Credential { username, secret })
}

/// The longest a credential helper may take: a helper that hangs must not hang the build.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// What is kept of a helper's output; a credential is a few kilobytes at most.
const HELPER_OUTPUT_LIMIT: u64 = 1 << 20;

/// Asks `docker-credential-HELPER get` for the registry's credential.
fn run_helper(helper: &str, registry: &str) -> Result<Option<Credential>, RegistryError> {
    let out = call_helper(helper, registry, "get", helper_server(registry).as_bytes())?;
    let fail = helper_failure(helper, registry);
    if !out.status.success() {
        // Helpers report an unknown server on stdout; that is "no credential", not an error.
        if String::from_utf8_lossy(&out.stdout).contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(failed_helper(&out)));
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HelperOutput {
        username: String,
        secret: String,
    }
    let parsed: HelperOutput = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("its answer is not the JSON a credential helper writes".into()))?;
    Ok(Some(Credential {
        username: parsed.username,
        secret: parsed.secret,
    }))
}

/// The server name helpers know a registry by (docker's for Docker Hub).
pub(crate) fn helper_server(registry: &str) -> &str {
    if registry == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        registry
    }
}

pub(crate) fn helper_failure(helper: &str, registry: &str) -> impl Fn(String) -> RegistryError {
    let helper = printable(helper).into_owned();
    let registry = registry.to_owned();
    move |message| RegistryError::CredentialHelper {
        helper: helper.clone(),
        registry: registry.clone(),
        message,
    }
}

/// What a failed helper said: its status and stderr, escaped; never stdout, where a secret
/// would be.
pub(crate) fn failed_helper(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr: String = stderr.trim().chars().take(500).collect();
    format!("{}: {}", out.status, printable(&stderr))
}

/// Runs `docker-credential-HELPER ACTION` with `input` on stdin, within [`HELPER_TIMEOUT`] and
/// without stevedore's secrets in its environment.
pub(crate) fn call_helper(
    helper: &str,
    registry: &str,
    action: &str,
    input: &[u8],
) -> Result<Output, RegistryError> {
    let fail = helper_failure(helper, registry);
    // The name becomes part of a program name looked up on PATH: `../x` or `/tmp/x` would run
    // whatever a config file points at.
    if !plain_helper_name(helper) {
        return Err(fail(
            "a helper name is a plain word (letters, digits, `-`, `_`, `.`) naming a \
             `docker-credential-NAME` program on PATH; fix `credsStore` or `credHelpers` in the \
             credentials file"
                .into(),
        ));
    }
    let program = format!("docker-credential-{helper}");
    let mut command = Command::new(&program);
    env::without_secrets(&mut command)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is judged by its exit status.
        let _ = stdin.write_all(input);
    }
    wait_bounded(child, HELPER_TIMEOUT)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| {
            fail(format!(
                "{program} did not answer within {} s and was stopped; check that it works \
                 without a prompt (`{program} {action}`)",
                HELPER_TIMEOUT.as_secs()
            ))
        })
}

fn plain_helper_name(name: &str) -> bool {
    !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Waits for `child` at most `limit`, reading its stdout and stderr meanwhile (a full pipe
/// must not stall it); `None`, and the child killed, when it takes longer.
fn wait_bounded(mut child: Child, limit: Duration) -> std::io::Result<Option<Output>> {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(HELPER_OUTPUT_LIMIT).read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let joined = |h: std::thread::JoinHandle<Vec<u8>>| h.join().unwrap_or_default();
    Ok(Some(Output {
        status,
        stdout: joined(stdout),
        stderr: joined(stderr),
    }))
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic auth with the registry's credential.
    Basic,
    /// A token from `realm`, asked for with the registry's credential.
    Bearer {
        /// The token server's URL.
        realm: String,
        /// The `service` to name when asking for a token.
        service: Option<String>,
        /// The scope the registry said it needs, if it said.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Reads a `WWW-Authenticate` header value; `None` for schemes other than basic and
    /// bearer, and for a bearer challenge without a realm.
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => {
                let params = parse_params(params);
                Some(Challenge::Bearer {
                    realm: params.get("realm")?.clone(),
                    service: params.get("service").cloned(),
                    scope: params.get("scope").cloned(),
                })
            }
            _ => None,
        }
    }
}

/// `key="value", key2=value2`, where quoted values may hold commas.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            (value, rest) = quoted_string(quoted);
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        out.insert(key, value);
        rest = rest.trim_start().trim_start_matches(',');
    }
    out
}

/// A quoted string's value, its opening quote already gone, and what follows its closing quote.
/// `\` escapes the next character (RFC 9110 §5.6.4), so a realm or scope may hold `"`; an
/// unclosed string runs to the end of the header.
fn quoted_string(s: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (value, &s[i + 1..]),
            '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
            c => value.push(c),
        }
    }
    (value, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="tb-realm""#),
            Some(Challenge::Basic)
        );
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            Challenge::parse("Bearer service=x"),
            None,
            "a bearer challenge needs a realm"
        );
    }

    /// Found by the `challenge` fuzz target: a quoted value holding an escaped quote was cut at
    /// it, so the realm became `https://a\` and the rest leaked into other parameters.
    #[test]
    fn quoted_values_unescape() {
        let c = Challenge::parse(
            r#"Bearer realm="https://a\"b\\c",service="s",scope="repository:x:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: r#"https://a"b\c"#.into(),
                service: Some("s".into()),
                scope: Some("repository:x:pull".into()),
            })
        );
        let unclosed = Challenge::parse(r#"Bearer realm="https://a\"#);
        assert_eq!(
            unclosed,
            Some(Challenge::Bearer {
                realm: "https://a".into(),
                service: None,
                scope: None,
            })
        );
    }

    #[test]
    fn podman_files_come_before_dockers_in_containers_auth_json_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let all = credential_files(env(&[
            ("HOME", "/h"),
            ("REGISTRY_AUTH_FILE", "/override.json"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("XDG_CONFIG_HOME", "/cfg"),
            ("DOCKER_CONFIG", "/dc"),
        ]));
        let all: Vec<&str> = all.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            all,
            [
                "/override.json",
                "/cfg/containers/auth.json",
                "/dc/config.json"
            ]
        );
        let defaults = credential_files(env(&[("HOME", "/h"), ("XDG_RUNTIME_DIR", "/run/user/1")]));
        let defaults: Vec<&str> = defaults.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            defaults,
            [
                "/run/user/1/containers/auth.json",
                "/h/.config/containers/auth.json",
                "/h/.docker/config.json"
            ]
        );
    }

    #[test]
    fn the_first_file_with_a_credential_wins() {
        let dir = tempfile::tempdir().unwrap();
        let podman = dir.path().join("auth.json");
        let docker = dir.path().join("config.json");
        let entry = |user: &str| {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
            format!(r#"{{"auths":{{"reg.example:5000":{{"auth":"{auth}"}}}}}}"#)
        };
        std::fs::write(&podman, entry("from-podman")).unwrap();
        std::fs::write(&docker, entry("from-docker")).unwrap();
        let keychain = |files: Vec<PathBuf>| Keychain {
            files,
            ..Keychain::default()
        };
        let both = keychain(vec![
            dir.path().join("missing.json"),
            podman,
            docker.clone(),
        ]);
        assert_eq!(
            both.resolve("reg.example:5000").unwrap().unwrap().username,
            "from-podman"
        );
        let docker_only = keychain(vec![docker]);
        assert_eq!(
            docker_only
                .resolve("reg.example:5000")
                .unwrap()
                .unwrap()
                .username,
            "from-docker"
        );
    }

    #[test]
    fn debug_redacts_the_secret() {
        let c = Credential {
            username: "u".into(),
            secret: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    /// Found by the `docker_config` fuzz target: `"credsStore": ""` made every lookup run a
    /// program named `docker-credential-` and fail the build, where docker uses `auths`.
    #[test]
    fn an_empty_helper_name_is_no_helper() {
        let config = br#"{"auths":{"ghcr.io":{"username":"u","password":"p"}},"credsStore":"","credHelpers":{"ghcr.io":""}}"#;
        assert_eq!(
            config_answer(config, "ghcr.io").unwrap(),
            ConfigAnswer::Found(Credential {
                username: "u".into(),
                secret: "p".into(),
            })
        );
        assert_eq!(
            config_answer(config, "docker.io").unwrap(),
            ConfigAnswer::Nothing
        );
    }

    #[test]
    fn reads_docker_config_auths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(&path, format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"127.0.0.1:5000":{{"username":"bob","password":"pw"}}}}}}"#)).unwrap();
        let mut keychain = Keychain {
            files: vec![path],
            ..Keychain::default()
        };
        let hub = keychain.resolve("docker.io").unwrap().unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.secret.as_str()),
            ("alice", "s3cret")
        );
        assert_eq!(
            keychain
                .resolve("127.0.0.1:5000")
                .unwrap()
                .unwrap()
                .username,
            "bob"
        );
        assert_eq!(keychain.resolve("ghcr.io").unwrap(), None);

        keychain.env_override = Some(Credential {
            username: "ci".into(),
            secret: "token".into(),
        });
        assert_eq!(
            keychain.resolve("ghcr.io").unwrap(),
            None,
            "offered to no registry until a run writes to one"
        );
        keychain.offer_env_credential_to(["ghcr.io".to_owned()]);
        assert_eq!(keychain.resolve("ghcr.io").unwrap().unwrap().username, "ci");
        assert_eq!(
            keychain
                .resolve("127.0.0.1:5000")
                .unwrap()
                .unwrap()
                .username,
            "bob",
            "not sent elsewhere"
        );
    }

    #[test]
    fn helper_names_are_plain_words() {
        for plain in [
            "pass",
            "ecr-login",
            "osxkeychain",
            "gcloud",
            "acr_env",
            "v1.2",
        ] {
            assert!(plain_helper_name(plain), "{plain}");
        }
        for path in [
            "../../tmp/x",
            "/tmp/x",
            "a/b",
            "a\\b",
            ".hidden",
            "..",
            "a b",
            "",
        ] {
            assert!(!plain_helper_name(path) || path.is_empty(), "{path}");
        }
        let err = run_helper("../../tmp/evil", "ghcr.io")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plain word") && err.contains("credsStore"),
            "{err}"
        );
    }

    #[test]
    fn a_helper_that_hangs_is_stopped() {
        let child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let waited = wait_bounded(child, Duration::from_millis(300)).unwrap();
        assert!(waited.is_none(), "given up on");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn identity_tokens_are_known_by_their_user_name() {
        let config = br#"{"auths":{"r.example":{"identitytoken":"rt-1"}}}"#;
        let ConfigAnswer::Found(cred) = config_answer(config, "r.example").unwrap() else {
            panic!("an identity token is a credential");
        };
        assert_eq!(cred.identity_token(), Some("rt-1"));
        let password = Credential {
            username: "u".into(),
            secret: "p".into(),
        };
        assert_eq!(password.identity_token(), None);
    }
}
