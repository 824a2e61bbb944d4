//! Network faults are retried and corrupt nothing. The token front (a proxy written for the
//! tests, in front of the real registry) fails requests with 5xx and 429, and cuts downloads
//! short; stevedore must ride them out, or give up after a bounded number of tries and say why.

use stevedore_testbed::{Fault, Mode, Registry, TokenFront};

use crate::util::*;

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
    let (out, took) = timed(&mut build_on(&base, cache.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        took < std::time::Duration::from_secs(60),
        "bounded: {took:?}"
    );
    let faulty = json(&out.stdout);

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
    let (out, took) = timed(build_on(&base, cache.path()).args(["--push", "-t", &image]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        took < std::time::Duration::from_secs(60),
        "bounded: {took:?}"
    );
    let pushed = json(&out.stdout);
    assert_eq!(front.faults_left(), 0, "every fault happened");

    // skopeo reads back every blob, checking each digest, and gets the same image.
    assert_eq!(read_back(&front, &image), pushed["digest"]);
}

#[test]
fn a_registry_that_keeps_failing_is_a_clear_error_after_a_few_tries() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    front.clear_requests();
    front.inject(Fault::status("GET", "/manifests/", 503, 1000));
    let cache = tempfile::tempdir().unwrap();
    let (out, took) = timed(&mut build_on(&base, cache.path()));
    assert!(!out.status.success());
    assert!(
        took < std::time::Duration::from_secs(150),
        "within the retry budget: {took:?}"
    );
    let err = text(&out.stderr);
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

#[test]
fn a_download_that_stalls_half_way_resumes_after_the_idle_timeout() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    let clean_cache = tempfile::tempdir().unwrap();
    let clean = json(&run_ok(&mut build_on(&base, clean_cache.path())).stdout);

    // Every blob GET goes silent after 200 bytes once; an idle timeout of 2 s ends each stall.
    front.inject(Fault::stall_body("GET", "/blobs/", 200, 3));
    front.clear_requests();
    let cache = tempfile::tempdir().unwrap();
    let (out, took) = timed(build_on(&base, cache.path()).env("STEVEDORE_TIMEOUT", "2"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        took < std::time::Duration::from_secs(60),
        "bounded: {took:?}"
    );
    assert_eq!(front.faults_left(), 0, "every stall happened");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("resuming"),
        "the transfer resumed: {stderr}"
    );
    assert_eq!(json(&out.stdout)["digest"], clean["digest"]);
    assert_cache_intact(cache.path());
}

#[test]
fn a_push_survives_an_unanswered_upload_a_reset_an_expired_token_and_a_dated_429() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    // The first blob PUT never gets an answer, the next one is reset; the first manifest PUT
    // finds its token expired, the next is told to come back at an HTTP date.
    front.inject(Fault::no_answer("PUT", "/blobs/uploads/", 1));
    front.inject(Fault::reset("PUT", "/blobs/uploads/", 1));
    front.inject(Fault::expire_tokens("PUT", "/manifests/", 1));
    front.inject(Fault::status("PUT", "/manifests/", 429, 1).with_retry_after_date(1));
    let image = format!("{}/test/stalls:1", front.addr());
    let cache = tempfile::tempdir().unwrap();
    let mut push = build_on(&base, cache.path());
    push.env("STEVEDORE_TIMEOUT", "2")
        .args(["--push", "-t", &image]);
    let (out, took) = timed(&mut push);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        took < std::time::Duration::from_secs(90),
        "bounded: {took:?}"
    );
    assert_eq!(front.faults_left(), 0, "every fault happened");
    let pushed = json(&out.stdout);

    // skopeo reads back every blob, checking each digest: no tag names a missing blob.
    assert_eq!(read_back(&front, &image), pushed["digest"]);

    // A second push finds everything there and uploads nothing.
    front.clear_requests();
    run_ok(&mut push);
    let uploads = front
        .requests()
        .iter()
        .filter(|(m, p)| (m == "PUT" || m == "PATCH") && p.contains("/blobs/uploads/"))
        .count();
    assert_eq!(uploads, 0, "a re-run uploads only what is missing");
}

#[test]
fn an_unresolvable_registry_is_a_clear_error_without_retries() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    let cache = tempfile::tempdir().unwrap();
    let (out, took) = timed(build_on(&base, cache.path()).args([
        "--push",
        "-t",
        "registry.invalid:5000/team/app:1",
    ]));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot resolve the registry host registry.invalid:5000"),
        "{stderr}"
    );
    assert!(!stderr.contains("trying again"), "not retried: {stderr}");
    assert!(
        took < std::time::Duration::from_secs(60),
        "bounded: {took:?}"
    );
}
