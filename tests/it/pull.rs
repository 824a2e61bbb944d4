//! Pulling the base through every kind of registry users have: plain HTTP on loopback, TLS with
//! a private CA, htpasswd basic auth over TLS, and a bearer-token front. Each pull starts from an
//! empty blob cache, so every blob really crosses the wire and is verified.

use std::path::Path;
use std::process::Command;

use stevedore_testbed::{Mode, Registry, TokenFront, PASSWORD, USERNAME};

use crate::util::*;

/// A build of the hello fixture on `base` with a fresh blob cache, into a fresh layout.
fn build_on(base: &str, cache: &Path) -> Command {
    let mut cmd = stevedore_build("hello");
    let out = cache.join("out");
    cmd.env("STEVEDORE_CACHE_DIR", cache)
        .env_remove("STEVEDORE_USERNAME")
        .env_remove("STEVEDORE_PASSWORD")
        .env("DOCKER_CONFIG", cache.join("no-docker-config"))
        .args(["--base", base, "--json", "--output"])
        .arg(format!("oci-layout={}", out.display()));
    cmd
}

fn cache() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn pulls_over_plain_http_on_loopback() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let cache = cache();
    run_ok(&mut build_on(&base, cache.path()));
}

#[test]
fn pulls_over_tls_with_a_private_ca_and_refuses_without_it() {
    let registry = Registry::start(Mode::Tls);
    let base = registry.push_base();
    let ca = registry.ca_cert().expect("TLS registry has a CA");
    run_ok(build_on(&base, cache().path()).arg("--registry-ca").arg(ca));

    let err = run_err(build_on(&base, cache().path()).env_remove("SSL_CERT_FILE"));
    assert!(
        err.contains("not trusted") && err.contains("--registry-ca"),
        "{err}"
    );
}

#[test]
fn pulls_with_basic_auth_from_env_docker_config_or_credential_helper() {
    let registry = Registry::start(Mode::BasicAuth);
    let base = registry.push_base();
    let ca = registry.ca_cert().unwrap().to_path_buf();

    let from_env = cache();
    run_ok(
        build_on(&base, from_env.path())
            .arg("--registry-ca")
            .arg(&ca)
            // The environment's credential goes only where STEVEDORE_REGISTRY says, in a run
            // that only reads from the registry.
            .env("STEVEDORE_REGISTRY", registry.addr())
            .env("STEVEDORE_USERNAME", USERNAME)
            .env("STEVEDORE_PASSWORD", PASSWORD),
    );

    let from_config = cache();
    let docker_dir = from_config.path().join("docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    registry.write_docker_config(&docker_dir);
    run_ok(
        build_on(&base, from_config.path())
            .arg("--registry-ca")
            .arg(&ca)
            .env("DOCKER_CONFIG", &docker_dir),
    );

    // A docker credential helper, the protocol docker-credential-pass/osxkeychain/ecr-login speak.
    let with_helper = cache();
    let bin = with_helper.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-testbed");
    std::fs::write(&helper, format!("#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USERNAME}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n")).unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let helper_config = with_helper.path().join("docker");
    std::fs::create_dir_all(&helper_config).unwrap();
    std::fs::write(
        helper_config.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"testbed"}}}}"#, registry.addr()),
    )
    .unwrap();
    let mut path = std::ffi::OsString::from(&bin);
    path.push(":");
    path.push(stevedore_testbed::tool_path_env());
    run_ok(
        build_on(&base, with_helper.path())
            .arg("--registry-ca")
            .arg(&ca)
            .env("DOCKER_CONFIG", &helper_config)
            .env("PATH", path),
    );

    let wrong = cache();
    let err = run_err(
        build_on(&base, wrong.path())
            .arg("--registry-ca")
            .arg(&ca)
            .env("STEVEDORE_REGISTRY", registry.addr())
            .env("STEVEDORE_USERNAME", USERNAME)
            .env("STEVEDORE_PASSWORD", "wrong-password"),
    );
    assert!(err.contains("401") && err.contains("credentials"), "{err}");
    assert!(
        !err.contains("wrong-password"),
        "the secret must not be printed:\n{err}"
    );
}

#[test]
fn pulls_through_a_bearer_token_front() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    front.clear_requests();
    run_ok(&mut build_on(&base, cache().path()));
    let requests = front.requests();
    assert!(
        requests.iter().any(|(_, path)| path.starts_with("/token")),
        "a token was fetched: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|(m, path)| m == "GET" && path.contains("/blobs/sha256:")),
        "{requests:?}"
    );
}

#[test]
fn missing_tag_and_unknown_host_are_clear_errors() {
    let registry = Registry::start(Mode::Http);
    registry.push_base();
    let missing = format!("{}/distroless/static-debian12:no-such-tag", registry.addr());
    let err = run_err(&mut build_on(&missing, cache().path()));
    assert!(
        err.contains("not found") && err.contains("no-such-tag"),
        "{err}"
    );

    let err = run_err(&mut build_on("registry.invalid/app:1", cache().path()));
    assert!(err.contains("registry.invalid"), "{err}");
}

#[test]
fn a_registry_serving_wrong_content_is_an_error_and_nothing_is_kept() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let index = skopeo_inspect(
        &["--raw", "--tls-verify=false"],
        &format!("docker://{base}"),
    );
    let amd64 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap();
    let manifest = skopeo_inspect(
        &["--raw", "--tls-verify=false"],
        &format!(
            "docker://{}@{}",
            base.rsplit_once(':').unwrap().0,
            amd64["digest"].as_str().unwrap()
        ),
    );
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();

    // Same length, other bytes: only the digest can tell.
    let file = registry.blob_file(&layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let cache = cache();
    let err = run_err(&mut build_on(&base, cache.path()));
    assert!(err.contains("digest") && err.contains(&layer), "{err}");
    let stored = cache
        .path()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    assert!(!stored.exists(), "a corrupt blob must not enter the cache");
    assert!(
        !cache.path().join("out").exists(),
        "no output after a failed pull"
    );
}
