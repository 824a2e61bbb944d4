//! Bad input: each mistake ends with its exit code (2 for a command line clap rejects, 1 for
//! the rest), one clear message that says what is wrong and how to fix it, and no output left
//! behind.

use std::path::Path;

use crate::util::*;

const FAILURE: i32 = 1;
const USAGE: i32 = 2;

/// Runs a build that must exit with `code` into a fresh directory; checks nothing was written
/// there.
fn fails_cleanly(fixture_name: &str, args: &[&str], code: i32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("out");
    let archive = dir.path().join("out.tar");
    let stderr = run_exit(
        stevedore_build(fixture_name)
            .args(args)
            .arg("--output")
            .arg(format!("oci-layout={}", layout.display()))
            .arg("--output")
            .arg(format!("docker-archive={}", archive.display())),
        code,
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "a failed build left {left:?} behind; stderr:\n{stderr}"
    );
    stderr
}

/// stevedore's own report: exactly one `error:` line (causes follow on their own lines).
fn assert_one_error(stderr: &str) {
    let error_lines = stderr.lines().filter(|l| l.starts_with("error")).count();
    assert_eq!(error_lines, 1, "one error paragraph expected:\n{stderr}");
}

#[test]
fn unknown_bin_names_the_available_ones() {
    let err = fails_cleanly("hello", &["--base", "scratch", "--bin", "nope"], FAILURE);
    assert_one_error(&err);
    assert!(
        err.contains("no binary named `nope`") && err.contains("hello"),
        "{err}"
    );
}

#[test]
fn several_bins_without_bin_asks_for_one() {
    let err = fails_cleanly("multibin", &["--base", "scratch"], FAILURE);
    assert_one_error(&err);
    assert!(
        err.contains("several binaries") && err.contains("one, two") && err.contains("--bin"),
        "{err}"
    );
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let err = fails_cleanly("hello", &["--no-such-flag"], USAGE);
    assert_one_error(&err);
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn unknown_platform_is_rejected() {
    let err = fails_cleanly("hello", &["--platform", "linux/mips64le"], USAGE);
    assert_one_error(&err);
    assert!(
        err.contains("linux/mips64le")
            && err.contains("linux/amd64")
            && err.contains("linux/s390x"),
        "{err}"
    );
    let err = fails_cleanly("hello", &["--platform", "amd64"], USAGE);
    assert_one_error(&err);
    assert!(err.contains("OS/ARCH"), "{err}");
}

#[test]
fn bad_references_are_rejected() {
    let err = fails_cleanly("hello", &["--base", "Not A Reference"], USAGE);
    assert_one_error(&err);
    assert!(err.contains("Not A Reference"), "{err}");
    let err = fails_cleanly(
        "hello",
        &["--base", "scratch", "-t", "UPPER/case:tag"],
        USAGE,
    );
    assert_one_error(&err);
    assert!(err.contains("UPPER/case:tag"), "{err}");
}

#[test]
fn missing_manifest_says_where_it_looked() {
    let err = fails_cleanly("does-not-exist", &["--base", "scratch"], FAILURE);
    assert_one_error(&err);
    assert!(
        err.contains("no Cargo.toml") && err.contains("--manifest-path"),
        "{err}"
    );
    assert!(!Path::new(&fixture("does-not-exist")).exists());
}

#[test]
fn compile_error_fails_the_build() {
    let err = fails_cleanly("broken", &["--base", "scratch"], FAILURE);
    assert!(
        err.contains("mismatched types"),
        "cargo's own diagnostics are shown:\n{err}"
    );
    let last = err
        .lines()
        .rev()
        .find(|l| l.starts_with("error"))
        .unwrap_or_default();
    assert!(
        last.starts_with("error: cargo failed to build `broken` for linux/amd64"),
        "the failing platform is named: {err}"
    );
}

#[test]
fn a_platform_that_fails_to_compile_is_named() {
    // Only a layout: a docker archive of two platforms is refused before compiling.
    let dir = tempfile::tempdir().unwrap();
    let err = run_exit(
        stevedore_build("hello")
            .args([
                "--base",
                "scratch",
                "--platform",
                "linux/amd64,linux/arm64",
                "--features",
                "fail-on-arm64",
            ])
            .arg("--output")
            .arg(format!("oci-layout={}", dir.path().join("out").display())),
        FAILURE,
    );
    assert!(!dir.path().join("out").exists(), "nothing written");
    assert!(
        err.contains("does not build for aarch64"),
        "cargo's diagnostic is shown:\n{err}"
    );
    let last = err
        .lines()
        .rev()
        .find(|l| l.starts_with("error"))
        .unwrap_or_default();
    assert!(
        last.contains("for linux/arm64/v8 (aarch64-unknown-linux-musl)") && !last.contains("amd64"),
        "{err}"
    );
}

#[test]
fn a_toolchain_without_the_target_std_says_how_to_add_it() {
    // The machine's rustup `stable` has neither a musl std nor rust-src (see TESTBED.md).
    let cmd = stevedore_build("hello");
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().replace("debweb", "stable"))
        .collect();
    let mut cmd = std::process::Command::new(cmd.get_program());
    cmd.args(args)
        .env("PATH", stevedore_testbed::tool_path_env())
        .env(
            stevedore_testbed::ZIG_MIRROR_ENV,
            stevedore_testbed::zig_mirror(),
        );
    let dir = tempfile::tempdir().unwrap();
    let err = run_exit(
        cmd.args(["--base", "scratch", "--output"])
            .arg(format!("oci-layout={}", dir.path().join("out").display())),
        FAILURE,
    );
    assert_one_error(&err);
    assert!(
        err.contains("rustup target add x86_64-unknown-linux-musl --toolchain stable"),
        "{err}"
    );
    assert!(!dir.path().join("out").exists());
}

/// ko's `--tags` takes tag names; stevedore's `-t` takes whole names, so `-t v1.2 --push` would
/// push to Docker Hub's official `library/v1.2`: refused before anything runs, with the fix.
#[test]
fn a_push_to_a_bare_name_is_refused_with_the_whole_name_to_write() {
    let err = fails_cleanly("hello", &["-t", "v1.2", "--push"], USAGE);
    assert!(
        err.contains("docker.io/library/v1.2") && err.contains("ghcr.io/OWNER/APP:v1.2"),
        "{err}"
    );
    assert!(
        !err.contains("Compiling") && !err.contains("pulling"),
        "{err}"
    );
}

/// `--tags` names tags, so it needs a repository: without `repository` or STEVEDORE_REPO it
/// is refused before compiling, saying where a repository comes from.
#[test]
fn tags_without_a_repository_are_refused_with_where_one_comes_from() {
    let err = fails_cleanly("hello", &["--tags", "v1.2", "--push"], FAILURE);
    assert!(
        err.contains("--tags v1.2") && err.contains("STEVEDORE_REPO") && err.contains("-t"),
        "{err}"
    );
    assert!(!err.contains("Compiling"), "{err}");
}

/// `cargo metadata`'s answer is kept between runs, but not used once what it was read from
/// changed: a new `src/bin/NAME.rs` (no manifest edited) makes a second binary, which a kept
/// answer would not know. Both runs stop after the plan (`--tags` without a repository).
#[test]
fn a_kept_metadata_answer_is_not_used_once_a_binary_is_added() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = copy_fixture("hello", &dir.path().join("hello"));
    let tools = dir.path().join("tools");
    let plan_only = || {
        let mut cmd = stevedore_build_manifest(&manifest);
        cmd.args(["--tags", "v1"])
            .env("STEVEDORE_TOOLS_DIR", &tools);
        cmd
    };
    for _ in 0..2 {
        let err = run_exit(&mut plan_only(), FAILURE);
        assert!(err.contains("--tags v1"), "{err}");
    }
    let kept: Vec<_> = std::fs::read_dir(tools.join("metadata")).unwrap().collect();
    assert_eq!(kept.len(), 1, "one answer kept for one manifest and flags");

    let bin = manifest.with_file_name("src/bin/second.rs");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::write(&bin, "fn main() {}\n").unwrap();
    let err = run_exit(&mut plan_only(), FAILURE);
    assert!(
        err.contains("several binaries") && err.contains("second"),
        "the kept answer, which knows one binary, was used: {err}"
    );
}

/// `--locked` means cargo's too (a project whose Cargo.lock would have to be written fails, and
/// none is written), and what follows `--` reaches `cargo build` (`--timings` writes its
/// report).
#[test]
fn locked_and_the_arguments_after_two_dashes_reach_cargo() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = copy_fixture("hello", &dir.path().join("hello"));
    let lock = manifest.with_file_name("Cargo.lock");
    let kept = std::fs::read(&lock).unwrap();
    std::fs::remove_file(&lock).unwrap();
    let build = |extra: &[&str]| {
        let mut cmd = stevedore_build_manifest(&manifest);
        cmd.args(["--base", "scratch", "--locked", "--output"])
            .arg(format!("oci-layout={}", dir.path().join("out").display()))
            .args(extra);
        cmd
    };
    let err = run_exit(&mut build(&[]), FAILURE);
    assert!(err.contains("--locked"), "cargo's refusal is shown:\n{err}");
    assert!(!lock.exists(), "no Cargo.lock was written");

    std::fs::write(&lock, kept).unwrap();
    let started = std::time::SystemTime::now();
    run_ok(&mut build(&["--", "--timings"]));
    let report = stevedore_testbed::fixture_target_dir().join("cargo-timings/cargo-timing.html");
    let written = std::fs::metadata(&report).and_then(|m| m.modified());
    assert!(
        written.as_ref().is_ok_and(|t| *t >= started),
        "cargo ran with --timings: {report:?} {written:?}"
    );
}
