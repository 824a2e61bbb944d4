//! Entry points for the fuzz targets in `fuzz/` (`cargo xtask fuzz`).
//!
//! Each takes the fuzzer's raw input, runs it through the parser stevedore really uses, and
//! panics when a property the rest of stevedore relies on fails: a value that does not survive
//! being printed and parsed again, a lookup that names a helper with no name, a platform chosen
//! from an index that is not the one asked for. A panic is what libFuzzer reports as a crash.
//!
//! The module exists only under `--cfg fuzzing` (cargo-fuzz passes it) and in unit tests, which
//! replay the committed seeds so it keeps compiling and the seeds keep passing with plain
//! `cargo test`; the public API of a normal build does not change.

use base64::Engine as _;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{self, config_answer, Challenge, ConfigAnswer, Credential, RegistryError};

/// `Reference`'s parser: what it accepts prints as text that parses back to the same value.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = text.parse::<Reference>() else {
        return;
    };
    round_trip(text, &parsed);
    round_trip(text, &parsed.with_digest(Digest::of(data)));
    let by_name: Reference = parsed
        .name()
        .parse()
        .unwrap_or_else(|e| panic!("{text:?}: its name {:?} does not parse: {e}", parsed.name()));
    assert_eq!(
        (by_name.registry(), by_name.repository()),
        (parsed.registry(), parsed.repository()),
        "{text:?}: its name names another repository"
    );
    child(text, &parsed);
    without_port(text, &parsed);
}

/// A port is optional: the registry without it is still that registry (when docker would still
/// read the first component as a host, i.e. it has a `.`, is `localhost` or is an IPv6 address).
fn without_port(text: &str, parsed: &Reference) {
    let Some((host, port)) = parsed.registry().rsplit_once(':') else {
        return;
    };
    let still_a_host = host.contains('.') || host == "localhost" || host.ends_with(']');
    if !port.bytes().all(|b| b.is_ascii_digit()) || !still_a_host {
        return;
    }
    let portless = format!("{host}/{}", parsed.repository());
    let again: Reference = portless
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} parsed, but not without its port: {e}"));
    assert_eq!(again.registry(), host, "{text:?} without its port");
}

fn round_trip(text: &str, parsed: &Reference) {
    let printed = parsed.to_string();
    let again: Reference = printed.parse().unwrap_or_else(|e| {
        panic!("{text:?} parsed, but prints as {printed:?}, which does not: {e}")
    });
    assert_eq!(&again, parsed, "{text:?} prints as {printed:?}");
    assert_eq!(
        again.to_string(),
        printed,
        "{text:?}: printing is not stable"
    );
}

/// `--all-bins` names one repository per binary: it fails only when the name gets too long.
fn child(text: &str, parsed: &Reference) {
    const BIN: &str = "bin";
    let length = parsed.registry().len() + parsed.repository().len() + 2 + BIN.len();
    match parsed.child(BIN) {
        Ok(child) => {
            assert_eq!(child.registry(), parsed.registry(), "{text:?}");
            assert_eq!(
                child.repository(),
                format!("{}/{BIN}", parsed.repository()),
                "{text:?}"
            );
            assert_eq!(child.tag(), parsed.tag().or(Some("latest")), "{text:?}");
        }
        Err(e) => assert!(length > 255, "{text:?}: no child repository: {e}"),
    }
}

/// `Challenge::parse`: a parsed challenge written out again parses to itself, and any realm,
/// service and scope a registry may send (split from the input at newlines) come back intact.
pub fn challenge(data: &[u8]) {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(parsed) = Challenge::parse(header) {
        let written = write_challenge(&parsed);
        assert_eq!(
            Challenge::parse(&written),
            Some(parsed),
            "{header:?} parsed, written again as {written:?}"
        );
    }
    let mut parts = header.splitn(3, '\n');
    let (realm, service, scope) = (parts.next(), parts.next(), parts.next());
    let sent = Challenge::Bearer {
        realm: realm.unwrap_or_default().to_owned(),
        service: service.map(str::to_owned),
        scope: scope.map(str::to_owned),
    };
    if header
        .chars()
        .all(|c| c == '\n' || c == '\t' || !c.is_control())
    {
        let written = write_challenge(&sent);
        assert_eq!(
            Challenge::parse(&written),
            Some(sent),
            "sent as {written:?}"
        );
    }
}

/// The header a registry sends for `challenge` (RFC 9110 §11.6.1: quoted strings, with `"`
/// and `\` escaped by a backslash).
fn write_challenge(challenge: &Challenge) -> String {
    let quote = |v: &str| format!("\"{}\"", v.replace('\\', r"\\").replace('"', "\\\""));
    match challenge {
        Challenge::Basic => r#"Basic realm="registry""#.to_owned(),
        Challenge::Bearer {
            realm,
            service,
            scope,
        } => {
            let mut params = vec![format!("realm={}", quote(realm))];
            params.extend(service.as_deref().map(|s| format!("service={}", quote(s))));
            params.extend(scope.as_deref().map(|s| format!("scope={}", quote(s))));
            format!("Bearer {}", params.join(","))
        }
    }
}

/// The registries a lookup in docker's config.json is tried for: Docker Hub (with its
/// several spellings), a registry by name, and one by address and port.
const REGISTRIES: [&str; 3] = ["docker.io", "ghcr.io", "127.0.0.1:5000"];

/// docker's config.json: the input as the file, then as a username and a secret (split at the
/// first newline) written the ways `docker login` writes them, which must be read back intact.
pub fn docker_config(data: &[u8]) {
    for registry in REGISTRIES {
        if let Ok(ConfigAnswer::Helper(helper)) = config_answer(data, registry) {
            // docker reads an empty helper name as "no helper", and there is no program to run.
            assert!(!helper.is_empty(), "{registry}: an empty helper name");
        }
    }
    let text = String::from_utf8_lossy(data);
    let (username, secret) = text.split_once('\n').unwrap_or((&text, ""));
    // The `auth` field is `username:secret`, so a username cannot hold `:` (docker splits the
    // same way).
    if username.contains(':') {
        return;
    }
    let credential = Credential {
        username: username.to_owned(),
        secret: secret.to_owned(),
    };
    for registry in REGISTRIES {
        for entry in login_entries(&credential) {
            let key = match registry {
                "docker.io" => "https://index.docker.io/v1/",
                other => other,
            };
            let file = serde_json::json!({ "auths": { key: entry } }).to_string();
            assert_eq!(
                config_answer(file.as_bytes(), registry).ok(),
                Some(ConfigAnswer::Found(credential.clone())),
                "{registry} in {file}"
            );
        }
    }
}

/// The two ways an `auths` entry holds a credential: `auth` (base64) and username/password.
fn login_entries(credential: &Credential) -> [serde_json::Value; 2] {
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credential.username, credential.secret));
    [
        serde_json::json!({ "auth": auth }),
        serde_json::json!({ "username": credential.username, "password": credential.secret }),
    ]
}

/// A manifest or index as the registry module reads fetched bytes: its media type, then the
/// document, then each platform's entry and every digest, as a pull does. Parsed documents
/// must serialize back to themselves, since stevedore writes the base's descriptors into its
/// own manifests.
pub fn manifest(data: &[u8]) {
    let reference: Reference = "registry.example/fuzz/base:1"
        .parse()
        .expect("a valid reference");
    match registry::media_type_of(data, None).as_str() {
        registry::OCI_INDEX | registry::DOCKER_LIST => index(data, &reference),
        registry::OCI_MANIFEST | registry::DOCKER_MANIFEST => image_manifest(data, &reference),
        _ => {}
    }
    if let Ok(config) = registry::parse::<ImageConfiguration>(data, "config", &reference) {
        let (os, arch) = (config.os().to_string(), config.architecture().to_string());
        let amd64 = Platform::linux_amd64().matches(&os, &arch, config.variant().as_deref());
        assert_eq!(amd64, os == "linux" && arch == "amd64", "{os}/{arch}");
    }
}

fn index(data: &[u8], reference: &Reference) {
    let Ok(index) = registry::parse::<ImageIndex>(data, "index", reference) else {
        return;
    };
    let written = serde_json::to_vec(&index).expect("an index serializes");
    let again = registry::parse::<ImageIndex>(&written, "index", reference);
    assert_eq!(
        again.ok().as_ref(),
        Some(&index),
        "the index changes when written"
    );
    for platform in [Platform::linux_amd64(), Platform::linux_arm64()] {
        match registry::select(&index, &platform, reference) {
            Ok(chosen) => {
                assert!(
                    platform_of(chosen, &platform),
                    "{platform}: chose {chosen:?}"
                );
                let _ = descriptor_digest(chosen, reference);
            }
            Err(RegistryError::NoPlatform { .. }) => assert!(
                !index.manifests().iter().any(|m| platform_of(m, &platform)),
                "{platform} is in the index but was not chosen"
            ),
            Err(e) => panic!("{platform}: {e}"),
        }
    }
}

fn platform_of(descriptor: &Descriptor, platform: &Platform) -> bool {
    descriptor.platform().as_ref().is_some_and(|p| {
        let (os, arch) = (p.os().to_string(), p.architecture().to_string());
        platform.matches(&os, &arch, p.variant().as_deref())
    })
}

fn image_manifest(data: &[u8], reference: &Reference) {
    let Ok(manifest) = registry::parse::<ImageManifest>(data, "manifest", reference) else {
        return;
    };
    let written = serde_json::to_vec(&manifest).expect("a manifest serializes");
    let again = registry::parse::<ImageManifest>(&written, "manifest", reference);
    assert_eq!(
        again.ok().as_ref(),
        Some(&manifest),
        "the manifest changes when written"
    );
    let _ = descriptor_digest(manifest.config(), reference);
    for layer in manifest.layers() {
        let _ = descriptor_digest(layer, reference);
    }
}

/// A descriptor's digest as stevedore takes it: when accepted, it is the same digest in both
/// vocabularies (stevedore's and oci-spec's, which manifests are written with).
fn descriptor_digest(descriptor: &Descriptor, reference: &Reference) -> Option<Digest> {
    let digest = registry::blob_digest(descriptor, reference).ok()?;
    assert_eq!(&digest.to_oci(), descriptor.digest(), "{digest}");
    assert_eq!(digest.as_str(), descriptor.digest().to_string());
    Some(digest)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every committed seed passes its target, so the seeds stay valid inputs and this module
    /// keeps compiling without `--cfg fuzzing`.
    #[test]
    fn seeds_pass_their_targets() {
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 4] = [
            ("reference", reference),
            ("challenge", challenge),
            ("docker_config", docker_config),
            ("manifest", manifest),
        ];
        for (name, target) in targets {
            let dir = seeds.join(name);
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("a readable seed directory").path());
            let mut count = 0;
            for path in entries {
                target(&std::fs::read(&path).expect("a readable seed"));
                count += 1;
            }
            assert!(count >= 3, "{name}: only {count} seeds");
        }
    }
}
