//! Network faults are retried and corrupt nothing. The token front (a proxy written for the
//! tests, in front of the real registry) fails requests with 5xx and 429, and cuts downloads
//! short; stevedore must ride them out, or give up after a bounded number of tries and say why.

use std::path::Path;
use std::process::Command;

use stevedore_testbed::{self as testbed, Fault, Mode, Registry, Side, TokenFront};

use crate::util::*;

/// A build of the hello fixture on `base` with the blob cache at `cache`.
fn build_on(base: &str, cache: &Path) -> Command {
    let mut cmd = stevedore_build("hello");
    cmd.env("STEVEDORE_CACHE_DIR", cache)
        .env("DOCKER_CONFIG", cache.join("no-docker-config"))
        .args(["--platform", "linux/amd64", "--base", base, "--json"]);
    cmd
}

/// Every blob in a cache is what its name says.
fn assert_cache_intact(cache: &Path) {
    for entry in std::fs::read_dir(cache.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            panic!("a temporary file was left in the cache: {}", path.display());
        }
        let digest = stevedore::Digest::of(&std::fs::read(&path).unwrap());
        assert_eq!(digest.hex(), name, "corrupt blob in the cache");
    }
}

#[test]
fn a_pull_rides_out_server_errors_rate_limits_and_cut_downloads() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    let clean_cache = tempfile::tempdir().unwrap();
    let clean = json(&run_ok(&mut build_on(&base, clean_cache.path())).stdout);

    front.inject(Fault::status("GET", "/manifests/", 503, 2));
    front.inject(Fault::status("GET", "/blobs/", 429, 1).with_retry_after(1));
    front.inject(Fault::cut_body("GET", "/blobs/", 100, 2));
    let cache = tempfile::tempdir().unwrap();
    let faulty = json(&run_ok(&mut build_on(&base, cache.path())).stdout);

    assert_eq!(front.faults_left(), 0, "every fault happened");
    assert_eq!(faulty["digest"], clean["digest"]);
    assert_cache_intact(cache.path());
}

#[test]
fn a_push_rides_out_server_errors() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    front.inject(Fault::status("HEAD", "/blobs/", 503, 2));
    front.inject(Fault::status("PUT", "/blobs/uploads/", 500, 1));
    front.inject(Fault::status("PUT", "/manifests/", 502, 2));
    let image = format!("{}/test/faults:1", front.addr());
    let cache = tempfile::tempdir().unwrap();
    let pushed = json(&run_ok(build_on(&base, cache.path()).args(["--push", "-t", &image])).stdout);
    assert_eq!(front.faults_left(), 0, "every fault happened");

    // skopeo reads back every blob, checking each digest, and gets the same image.
    let out = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(testbed::require_tool("skopeo"))
            .arg("copy")
            .args(front.skopeo_flags(Side::Src))
            .arg(format!("docker://{image}"))
            .arg(format!("oci:{}:1", out.path().join("l").display())),
    );
    let flags = front.skopeo_flags(Side::Inspect);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let inspected = skopeo_inspect(&flags, &format!("docker://{image}"));
    assert_eq!(inspected["Digest"], pushed["digest"]);
}

#[test]
fn a_registry_that_keeps_failing_is_a_clear_error_after_a_few_tries() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    front.clear_requests();
    front.inject(Fault::status("GET", "/manifests/", 503, 1000));
    let cache = tempfile::tempdir().unwrap();
    let err = run_err(&mut build_on(&base, cache.path()));
    assert!(err.contains("503") && err.contains("server error"), "{err}");
    let tries = front
        .requests()
        .iter()
        .filter(|(m, p)| m == "GET" && p.contains("/manifests/"))
        .count();
    assert!(
        (2..=10).contains(&tries),
        "{tries} tries: retried, but not forever"
    );
}
