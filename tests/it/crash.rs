//! Crash consistency and concurrency on one cache and one registry: a run killed with SIGKILL
//! at any point leaves nothing the next run trips over, and runs at once do not disturb each
//! other.

use std::process::Stdio;
use std::time::{Duration, Instant};

use stevedore_testbed::{Fault, Mode, Registry, TokenFront};

use crate::util::*;

/// Waits until the front has seen `count` requests (bounded), so a kill lands at a point of
/// the run chosen by what it did, not by the clock.
fn wait_for_requests(front: &TokenFront, count: usize, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while front.requests().len() < count {
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_push_killed_at_any_point_is_completed_by_the_next_run() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    // A whole run on a fresh cache into a fresh repository: its digest, and how many requests
    // it makes, to spread the kills over.
    let clean_cache = tempfile::tempdir().unwrap();
    let clean_image = format!("{}/test/killed-clean:1", front.addr());
    front.clear_requests();
    let clean = json(
        &run_ok(build_on(&base, clean_cache.path()).args(["--push", "-t", &clean_image])).stdout,
    );
    let total = front.requests().len();
    assert!(total > 10, "a push makes requests: {total}");

    // Seed 0 is killed while its first blob upload hangs unanswered; the others after the
    // k-th request of the run, from early (the ping) to late (manifests).
    for seed in 0..5usize {
        let cache = tempfile::tempdir().unwrap();
        let image = format!("{}/test/killed-{seed}:1", front.addr());
        let mut push = build_on(&base, cache.path());
        push.args(["--push", "-t", &image]);
        front.clear_requests();
        if seed == 0 {
            front.inject(Fault::no_answer("PUT", "/blobs/uploads/", 1));
        }
        let mut child = push
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if seed == 0 {
            let deadline = Instant::now() + Duration::from_secs(120);
            while front.faults_left() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(
                front.faults_left(),
                0,
                "the upload was under way when killed"
            );
        } else {
            wait_for_requests(&front, total * seed / 5, &mut child);
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let mut again = build_on(&base, cache.path());
        again.args(["--push", "-t", &image]);
        let done = json(&run_ok(&mut again).stdout);
        assert_eq!(done["digest"], clean["digest"], "seed {seed}");
        assert_cache_intact(cache.path());
        assert_eq!(read_back(&front, &image), clean["digest"], "seed {seed}");
    }
}

#[test]
fn six_pushes_and_two_layout_builds_at_once_on_one_cache_agree() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    let cache = tempfile::tempdir().unwrap();
    let layouts = tempfile::tempdir().unwrap();
    let mut runs: Vec<(String, std::process::Child)> = Vec::new();
    for i in 0..8 {
        let mut cmd = build_on(&base, cache.path());
        let what = if i < 6 {
            let image = format!("{}/test/many-{i}:1", front.addr());
            cmd.args(["--push", "-t", &image]);
            image
        } else {
            let dir = layouts.path().join(format!("layout-{i}"));
            cmd.arg("-o").arg(format!("oci-layout={}", dir.display()));
            dir.display().to_string()
        };
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        runs.push((what, child));
    }
    let mut digests = Vec::new();
    for (what, child) in runs {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        digests.push(json(&out.stdout)["digest"].clone());
    }
    assert!(
        digests.iter().all(|d| d == &digests[0]),
        "one digest: {digests:?}"
    );
    assert_cache_intact(cache.path());
    assert_eq!(
        read_back(&front, &format!("{}/test/many-3:1", front.addr())),
        digests[0]
    );
}
