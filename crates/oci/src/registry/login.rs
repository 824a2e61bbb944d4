//! `cargo stevedore login` and `logout`, for machines without docker or podman: a registry's
//! credential is checked against the registry first (as `docker login` does), then kept where
//! the keychain reads first, podman's auth file (`$REGISTRY_AUTH_FILE`, else
//! `$XDG_RUNTIME_DIR/containers/auth.json`, else `~/.config/containers/auth.json`), or given to
//! the credential helper that file names for the registry. The file is replaced whole through a
//! temporary file readable by its owner only, so a crash leaves the old one or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::auth::{call_helper, config_answer, failed_helper, helper_failure, helper_server};
use super::auth::{config_keys, ConfigAnswer};
use super::{Credential, Keychain, Registry, RegistryError, RegistryOptions};
use crate::reference::Reference;

/// Where a credential was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stored {
    /// In this auth file's `auths`.
    File(PathBuf),
    /// By this credential helper (`docker-credential-NAME`), which the auth file names.
    Helper(String),
}

/// The file `login` writes: the first credentials file the keychain reads that is podman's
/// (`$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
/// `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`); `None` without a home.
pub fn auth_file() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(file) = var("REGISTRY_AUTH_FILE") {
        return Some(file.into());
    }
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        return Some(PathBuf::from(dir).join("containers/auth.json"));
    }
    let config = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("containers/auth.json"))
}

impl Registry {
    /// Checks that `registry` (`host[:port]`) accepts `credential`: its challenge answered
    /// with it (a token fetched, or `/v2/` answered with Basic auth), as `docker login` checks.
    pub fn check_credential(
        opts: RegistryOptions,
        registry: &str,
        credential: Credential,
    ) -> Result<(), RegistryError> {
        let reference = login_reference(registry)?;
        let keychain = Keychain::with_credential(reference.registry(), credential);
        let client = Registry::with_keychain(opts, keychain)?;
        client.client.check_login(&reference)
    }
}

/// A reference on `registry`, for the requests that do not name a repository.
fn login_reference(registry: &str) -> Result<Reference, RegistryError> {
    format!("{registry}/login")
        .parse()
        .map_err(|_| RegistryError::Login {
            registry: registry.to_owned(),
            message: "it is not a registry host (`host[:port]`, e.g. ghcr.io or \
                      127.0.0.1:5000)"
                .into(),
        })
}

/// Keeps `credential` for `registry` in `file`, or with the helper `file` names for it.
pub fn store_credential(
    file: &Path,
    registry: &str,
    credential: &Credential,
) -> Result<Stored, RegistryError> {
    let registry = login_reference(registry)?.registry().to_owned();
    let (bytes, mut config) = read_config(file)?;
    if let Ok(ConfigAnswer::Helper(helper)) = config_answer(&bytes, &registry) {
        let input = serde_json::json!({
            "ServerURL": helper_server(&registry),
            "Username": credential.username,
            "Secret": credential.secret,
        });
        let out = call_helper(&helper, &registry, "store", input.to_string().as_bytes())?;
        if !out.status.success() {
            return Err(helper_failure(&helper, &registry)(failed_helper(&out)));
        }
        return Ok(Stored::Helper(helper));
    }
    let raw = format!("{}:{}", credential.username, credential.secret);
    let auth = base64::engine::general_purpose::STANDARD.encode(raw);
    let auths = config
        .as_object_mut()
        .expect("read_config gives an object")
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    let Some(auths) = auths.as_object_mut() else {
        return Err(unreadable(file, "its `auths` is not an object"));
    };
    for key in config_keys(&registry) {
        auths.remove(&key);
    }
    let key = config_keys(&registry).swap_remove(0);
    auths.insert(key, serde_json::json!({ "auth": auth }));
    write_config(file, &config)?;
    Ok(Stored::File(file.to_path_buf()))
}

/// Removes what `file` (or its helper) holds for `registry`; whether there was anything.
pub fn erase_credential(file: &Path, registry: &str) -> Result<bool, RegistryError> {
    let registry = login_reference(registry)?.registry().to_owned();
    let (bytes, mut config) = read_config(file)?;
    if let Ok(ConfigAnswer::Helper(helper)) = config_answer(&bytes, &registry) {
        let server = helper_server(&registry);
        let out = call_helper(&helper, &registry, "erase", server.as_bytes())?;
        return Ok(out.status.success());
    }
    let Some(auths) = config.get_mut("auths").and_then(|a| a.as_object_mut()) else {
        return Ok(false);
    };
    let before = auths.len();
    for key in config_keys(&registry) {
        auths.remove(&key);
    }
    if auths.len() == before {
        return Ok(false);
    }
    write_config(file, &config)?;
    Ok(true)
}

/// The file's bytes and JSON object; an empty object when it does not exist.
fn read_config(file: &Path) -> Result<(Vec<u8>, serde_json::Value), RegistryError> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => b"{}".to_vec(),
        Err(e) => return Err(unreadable(file, &e.to_string())),
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(value) if value.is_object() => Ok((bytes, value)),
        _ => Err(unreadable(file, "it is not a JSON object")),
    }
}

/// Replaces `file` whole: a temporary file beside it, readable by its owner only, renamed.
fn write_config(file: &Path, config: &serde_json::Value) -> Result<(), RegistryError> {
    let failed = |e: std::io::Error| unwritable(file, e);
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(failed)?;
    // tempfile creates it with mode 0600 on unix; on Windows it takes its directory's ACL (the
    // user's profile: its owner's alone).
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    let mut text = serde_json::to_vec_pretty(config).expect("a JSON value serializes");
    text.push(b'\n');
    temp.write_all(&text).map_err(failed)?;
    temp.as_file().sync_all().map_err(failed)?;
    temp.persist(file).map_err(|e| failed(e.error))?;
    Ok(())
}

fn unreadable(file: &Path, why: &str) -> RegistryError {
    RegistryError::Login {
        registry: "the registry".into(),
        message: format!(
            "cannot use the credentials file {}: {why}; fix or move it (or point \
             REGISTRY_AUTH_FILE at another file)",
            file.display()
        ),
    }
}

fn unwritable(file: &Path, e: std::io::Error) -> RegistryError {
    RegistryError::Login {
        registry: "the registry".into(),
        message: format!(
            "cannot write the credentials file {}: {e}; set REGISTRY_AUTH_FILE to a file you \
             may write",
            file.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(user: &str) -> Credential {
        Credential {
            username: user.into(),
            secret: "s3cret".into(),
        }
    }

    #[test]
    fn a_stored_credential_is_what_the_keychain_reads_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("containers/auth.json");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            r#"{"auths":{"other.example":{"auth":"eDp5"}},"x":1}"#,
        )
        .unwrap();
        let stored = store_credential(&file, "r.example:5000", &credential("alice")).unwrap();
        assert_eq!(stored, Stored::File(file.clone()));
        let keychain = Keychain::reading(vec![file.clone()]);
        assert_eq!(
            keychain.resolve("r.example:5000").unwrap(),
            Some(credential("alice"))
        );
        let kept: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(kept["x"], 1, "what else the file holds stays");
        assert!(kept["auths"]["other.example"].is_object());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
        }

        store_credential(&file, "r.example:5000", &credential("bob")).unwrap();
        assert_eq!(
            keychain
                .resolve("r.example:5000")
                .unwrap()
                .unwrap()
                .username,
            "bob",
            "a new login replaces the old"
        );
        assert!(erase_credential(&file, "r.example:5000").unwrap());
        assert_eq!(keychain.resolve("r.example:5000").unwrap(), None);
        assert!(!erase_credential(&file, "r.example:5000").unwrap());
        assert!(keychain.resolve("other.example").unwrap().is_some());
    }

    #[test]
    fn a_file_that_is_not_a_json_object_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        std::fs::write(&file, "[1, 2]").unwrap();
        let err = store_credential(&file, "r.example", &credential("a")).unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "[1, 2]");
    }
}
