//! stevedore's pinned zig: fetched once by hash into the tools dir (here from the test bed's
//! mirror of PyPI's wheel), refused when the bytes are not the pinned ones, never fetched with
//! `--offline`, and overridden by `STEVEDORE_ZIG` only out loud.
//!
//! Each test builds `hello` (C through the `cc` crate, so zig compiles and links) for
//! linux/amd64 onto `scratch`. The ones that compile keep their tools and target dirs in the
//! test bed, so std is built from source there once per machine, not once per run; they
//! remove only the zig tree, which is what they test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::Digest as _;
use stevedore_testbed::{self as testbed, FileServer};

use crate::util::*;

/// The name of the pinned tree for this host (`ziglang-VERSION-HASH16`).
const TREE: &str = "ziglang-0.17.1-ea6cc5d87b033cf0";
const PINNED: &str = "sha256:ea6cc5d87b033cf0aedfbc8f9549a908cae6c50ac31f1698188fa48a74524b54";

/// `cargo stevedore build` of `hello` for linux/amd64 onto scratch, with its tools dir,
/// target dir and zig mirror, into `out` (an OCI layout), printing JSON.
fn build(tools: &Path, target: &Path, mirror: &str, out: &Path) -> Command {
    let mut cmd = stevedore_build("hello");
    cmd.env("STEVEDORE_TOOLS_DIR", tools)
        .env("CARGO_TARGET_DIR", target)
        .env(testbed::ZIG_MIRROR_ENV, mirror)
        .env_remove("STEVEDORE_ZIG")
        .args(["--platform", "linux/amd64", "--base", "scratch", "--json"])
        .arg("--output")
        .arg(format!("oci-layout={}", out.display()));
    cmd
}

/// A place of this test's own in the test bed, kept between runs.
fn kept(name: &str) -> PathBuf {
    let dir = testbed::testbed_dir().join("zig-tests").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What `TOOLS/zig` holds, by name.
fn zig_entries(tools: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(tools.join("zig"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn two_first_builds_fetch_the_pinned_zig_once_into_one_tree_and_the_next_fetches_nothing() {
    let mirror = FileServer::start(&testbed::zig_mirror_dir());
    let root = kept("fetch");
    let tools = root.join("tools");
    let _ = std::fs::remove_dir_all(tools.join("zig"));
    let scratch = tempfile::tempdir().unwrap();
    // Two first runs at once, in two target dirs (one target dir would let the first finish
    // its compile before the second starts), sharing the tools dir.
    let runs: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            build(
                &tools,
                &root.join(format!("target-{name}")),
                &mirror.url(),
                &scratch.path().join(name),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outputs: Vec<_> = runs
        .into_iter()
        .map(|run| run.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let logs: String = outputs.iter().map(|o| text(&o.stderr)).collect();
    assert_eq!(mirror.sent(), 1, "one download for both runs:\n{logs}");
    assert!(
        logs.contains("fetching stevedore's pinned zig 0.17.1")
            && logs.contains(&format!("from {}/ziglang-0.17.1-", mirror.url())),
        "{logs}"
    );
    assert_eq!(
        zig_entries(&tools),
        [TREE],
        "one tree and nothing half-made"
    );
    let zig = tools.join("zig").join(TREE).join("zig");
    let version = run_ok(Command::new(&zig).arg("version"));
    assert_eq!(text(&version.stdout).trim(), "0.17.1");
    // The build linked with it: its wrappers run the pinned zig.
    let wrappers: Vec<String> = std::fs::read_dir(&tools)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("x86_64-unknown-linux-musl-")
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("cc")).ok())
        .collect();
    assert!(
        wrappers
            .iter()
            .any(|w| w.contains(&zig.display().to_string())),
        "{wrappers:?}"
    );
    // The same zig gives the same image.
    let digests: Vec<_> = outputs
        .iter()
        .map(|o| json(&o.stdout)["digest"].clone())
        .collect();
    assert_eq!(digests[0], digests[1]);

    let again = run_ok(&mut build(
        &tools,
        &root.join("target-a"),
        &mirror.url(),
        &scratch.path().join("again"),
    ));
    assert_eq!(mirror.sent(), 1, "{}", text(&again.stderr));
    assert!(!text(&again.stderr).contains("fetching"));
    assert_eq!(json(&again.stdout)["digest"], digests[0]);
}

#[test]
fn a_wheel_that_is_not_the_pinned_one_is_refused_and_nothing_of_it_is_kept() {
    let wheel = testbed::zig_wheel();
    let fake = tempfile::tempdir().unwrap();
    let bytes = b"PK\x05\x06 not the wheel PyPI has";
    std::fs::write(fake.path().join(wheel.file_name().unwrap()), bytes).unwrap();
    let mirror = FileServer::start(fake.path());
    let tools = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let out = tools.path().join("out");
    let err = run_err(&mut build(tools.path(), target.path(), &mirror.url(), &out));
    let actual = format!("sha256:{:x}", sha2::Sha256::digest(bytes));
    assert!(
        err.contains("is not the one stevedore pins")
            && err.contains(PINNED)
            && err.contains(&actual),
        "{err}"
    );
    assert_eq!(mirror.sent(), 1);
    assert_eq!(zig_entries(tools.path()), Vec::<String>::new());
    assert!(!out.exists());
}

#[test]
fn offline_without_the_pinned_zig_says_how_to_get_it() {
    let mirror = FileServer::start(&testbed::zig_mirror_dir());
    let tools = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let out = tools.path().join("out");
    let err = run_err(build(tools.path(), target.path(), &mirror.url(), &out).arg("--offline"));
    assert!(
        err.contains("--offline, and stevedore's pinned zig 0.17.1 is not in")
            && err.contains(&tools.path().join("zig").join(TREE).display().to_string())
            && err.contains("run one build online first")
            && err.contains("set STEVEDORE_ZIG"),
        "{err}"
    );
    assert_eq!(mirror.sent(), 0, "--offline fetches nothing");
    assert_eq!(zig_entries(tools.path()), Vec::<String>::new());
}

/// The pinned zig where the tests' builds fetch it: the test process's user cache (the tools
/// dir a build without `STEVEDORE_TOOLS_DIR` uses). Some build must have fetched it first.
pub fn pinned_zig() -> PathBuf {
    let zig = user_dir("XDG_CACHE_HOME", ".cache")
        .join("stevedore/tools/zig")
        .join(TREE)
        .join("zig");
    assert!(zig.is_file(), "no pinned zig at {}", zig.display());
    zig
}

/// PyPI's zig as the test bed's venv has it (the same 0.17.1, installed by pip).
fn venv_zig() -> PathBuf {
    testbed::tool_path_env(); // panics unless the venv has ziglang
    std::fs::read_dir(testbed::venv_dir().join("lib"))
        .unwrap()
        .flatten()
        .map(|py| py.path().join("site-packages/ziglang/zig"))
        .find(|p| p.is_file())
        .expect("ziglang in the venv")
}

#[test]
fn stevedore_zig_overrides_the_pinned_zig_and_the_log_says_so() {
    let mirror = FileServer::start(&testbed::zig_mirror_dir());
    let root = kept("override");
    let tools = root.join("tools");
    let zig = venv_zig();
    let out = tempfile::tempdir().unwrap();
    // Offline and with no pinned zig in the tools dir: the override alone makes this build.
    let _ = std::fs::remove_dir_all(tools.join("zig"));
    let done = run_ok(
        build(
            &tools,
            &root.join("target"),
            &mirror.url(),
            &out.path().join("image"),
        )
        .env("STEVEDORE_ZIG", &zig)
        .arg("--offline"),
    );
    let log = text(&done.stderr);
    assert!(
        log.contains(&format!(
            "using the zig STEVEDORE_ZIG names ({}, 0.17.1)",
            zig.display()
        )) && log.contains("not stevedore's pinned zig 0.17.1")
            && log.contains("the image's digest depends on this zig"),
        "{log}"
    );
    assert_eq!(mirror.sent(), 0);
    assert_eq!(zig_entries(&tools), Vec::<String>::new());
}
