//! Bit-identical images: two checkouts of one commit, in different directories, built by
//! users with different homes and clocks, give the same digests for every platform.

use std::path::{Path, PathBuf};
use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::util::*;

const COMMIT_TIME: &str = "1700000000";

/// A git repository holding the example service, committed at a fixed time.
fn example_repo(dir: &Path) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-service");
    let repo = dir.join("origin");
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src/main.rs",
        "csrc/checksum.c",
    ] {
        let to = repo.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(example.join(file), to).unwrap();
    }
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .current_dir(&repo)
                .env("GIT_AUTHOR_DATE", format!("@{COMMIT_TIME} +0000"))
                .env("GIT_COMMITTER_DATE", format!("@{COMMIT_TIME} +0000"))
                .args(["-c", "user.name=dev", "-c", "user.email=dev@example.com"])
                .args(args),
        )
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "hello-service"]);
    repo
}

fn clone(repo: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    run_ok(Command::new("git").arg("clone").arg("-q").arg(repo).arg(to));
    to.join("Cargo.toml")
}

/// Where cargo and rustup keep their state for this machine's user, which the other
/// "users" share (their homes differ, but the toolchain must be found).
fn tool_home(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(default))
}

/// Builds `manifest` as a user whose home is `home`, in `target_dir`; returns the --json result.
fn build_as(
    manifest: &Path,
    home: &Path,
    base: &str,
    epoch: Option<&str>,
    target_dir: &Path,
) -> serde_json::Value {
    build_as_with(manifest, home, base, epoch, target_dir, &[])
}

/// [`build_as`] with more flags.
fn build_as_with(
    manifest: &Path,
    home: &Path,
    base: &str,
    epoch: Option<&str>,
    target_dir: &Path,
    flags: &[&str],
) -> serde_json::Value {
    std::fs::create_dir_all(home).unwrap();
    let layout = home.join("image");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"));
    cmd.env("PATH", testbed::tool_path_env())
        .env("HOME", home)
        .env("CARGO_HOME", tool_home("CARGO_HOME", ".cargo"))
        .env("RUSTUP_HOME", tool_home("RUSTUP_HOME", ".rustup"))
        .env_remove("STEVEDORE_CACHE_DIR")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("RUSTFLAGS")
        .args(["build", "--toolchain", "debweb", "--json", "--base", base])
        .arg("--manifest-path")
        .arg(manifest)
        .args(flags)
        .arg("--output")
        .arg(format!("oci-layout={}", layout.display()));
    if let Some(epoch) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", epoch);
    }
    cmd.env("CARGO_TARGET_DIR", target_dir);
    json(&run_ok(&mut cmd).stdout)
}

fn platform_digests(result: &serde_json::Value) -> Vec<(String, String)> {
    let mut digests: Vec<(String, String)> = result["images"]
        .as_array()
        .expect("images in --json output")
        .iter()
        .map(|i| (i["platform"].to_string(), i["digest"].to_string()))
        .collect();
    digests.sort();
    digests
}

/// The in-toto statement inside the provenance referrer a layout lists.
fn provenance_statement(layout: &Path) -> Vec<u8> {
    use base64::Engine as _;
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == "application/vnd.in-toto+json")
        .unwrap_or_else(|| panic!("no provenance in {index:#}"))
        .clone();
    let artifact = layout_json(layout, entry["digest"].as_str().unwrap());
    let envelope = layout_json(layout, artifact["layers"][0]["digest"].as_str().unwrap());
    base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap()
}

#[test]
fn two_checkouts_two_homes_two_clocks_give_identical_images() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    let first = clone(&repo, &dir.path().join("alice/src/hello-service"));
    let second = clone(&repo, &dir.path().join("ci/workspace/build-7/checkout"));

    // One with SOURCE_DATE_EPOCH unset (the commit's time is used) in a target dir shared with
    // other projects (as CI caches are), one with it set in a target dir of its own. That one
    // stays in the test bed, so musl std is built from source in it once per machine rather
    // than once per run; the checkouts are new every run, so their paths still differ.
    let shared = testbed::fixture_target_dir();
    let alice_home = dir.path().join("home-alice");
    let alice = build_as(&first, &alice_home, &base, None, &shared);
    let ci_home = dir.path().join("home-ci");
    let own = testbed::testbed_dir().join("reproducible-target");
    let ci = build_as(&second, &ci_home, &base, Some(COMMIT_TIME), &own);

    let platforms = platform_digests(&alice);
    assert_eq!(platforms.len(), 2, "{alice:#}");
    assert_eq!(
        platforms,
        platform_digests(&ci),
        "per-platform digests differ"
    );
    assert_eq!(alice["index"], ci["index"], "index digests differ");
    assert_eq!(alice["digest"], ci["digest"]);

    // The provenance statement is byte-identical too: it takes nothing from the clock, the
    // home or the checkout's path, and its subject is the index.
    let alice_statement = provenance_statement(&alice_home.join("image"));
    assert_eq!(
        alice_statement,
        provenance_statement(&ci_home.join("image")),
        "provenance statements differ"
    );
    let statement = text(&alice_statement);
    assert!(
        !statement.contains(dir.path().to_str().unwrap()),
        "{statement}"
    );
    let subject = &json(&alice_statement)["subject"][0]["digest"]["sha256"];
    assert_eq!(
        format!("sha256:{}", subject.as_str().unwrap()),
        alice["digest"].as_str().unwrap()
    );

    // The binary names none of the machine's paths: not the checkout, the home, nor the
    // toolchain's std sources (those read /rustc/COMMIT/, as in official builds).
    let layout = dir.path().join("home-alice/image");
    let amd64 = alice["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["platform"] == "linux/amd64")
        .expect("an amd64 image");
    let binary = file_in_top_layer(
        &layout,
        amd64["digest"].as_str().unwrap(),
        "usr/local/bin/hello-service",
    );
    let contains = |needle: &str| binary.windows(needle.len()).any(|w| w == needle.as_bytes());
    for local in [
        dir.path().to_str().unwrap(),
        shared.to_str().unwrap(),
        own.to_str().unwrap(),
        "/lib/rustlib/src/rust",
        tool_home("CARGO_HOME", ".cargo").to_str().unwrap(),
    ] {
        assert!(
            !contains(local),
            "the binary contains the local path {local}"
        );
    }
    assert!(
        contains("/rustc/"),
        "std paths are remapped to /rustc/COMMIT"
    );
}

/// The debug-symbols referrers a layout lists: (subject, the referrer's digest, its layer's).
fn debuginfo_referrers(layout: &Path) -> Vec<(String, String, String)> {
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let mut found: Vec<_> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"] == "application/vnd.stevedore.debuginfo.v1")
        .map(|m| {
            let artifact = layout_json(layout, m["digest"].as_str().unwrap());
            (
                artifact["subject"]["digest"].to_string(),
                m["digest"].to_string(),
                artifact["layers"][0]["digest"].to_string(),
            )
        })
        .collect();
    found.sort();
    found
}

/// Builds the checkout `manifest` with split symbols into the layout `dir/NAME`, as the other
/// tests build (the test bed's toolchain, caches and target dir); `epoch`: SOURCE_DATE_EPOCH,
/// else the commit's time.
fn build_split(
    manifest: &Path,
    base: &str,
    epoch: Option<&str>,
    layout: &Path,
) -> serde_json::Value {
    let mut cmd = stevedore_build_manifest(manifest);
    cmd.env_remove("SOURCE_DATE_EPOCH")
        .args([
            "--split-debuginfo",
            "--platform",
            "linux/amd64",
            "--json",
            "--base",
            base,
        ])
        .arg("--output")
        .arg(format!("oci-layout={}", layout.display()));
    if let Some(epoch) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", epoch);
    }
    json(&run_ok(&mut cmd).stdout)
}

/// Split symbols across two checkouts (other paths) are NOT yet bit-identical: cargo's
/// `-C metadata` for workspace members differs per checkout (stevedore's workspace wrapper is
/// named by the checkout's path), and with `--split-debuginfo` the crate hashes in symbol
/// names reach the symbol table and the DWARF, so the build-id, and with it the image, differ.
/// What holds, and is checked here: the same checkout compiled and linked twice, with the
/// epoch from the commit and from SOURCE_DATE_EPOCH, gives the same image and debug file.
#[test]
fn split_debuginfo_images_are_identical_when_the_checkout_is_rebuilt() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    let checkout = clone(&repo, &dir.path().join("src/hello-service"));
    let first = build_split(&checkout, &base, None, &dir.path().join("first"));
    // Make cargo compile and link the service again, and stevedore split it again.
    let main = checkout.with_file_name("src/main.rs");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .append(true)
        .open(&main)
        .unwrap()
        .set_modified(later)
        .unwrap();
    std::fs::remove_dir_all(testbed::fixture_target_dir().join("stevedore/.debuginfo")).unwrap();
    let second = build_split(
        &checkout,
        &base,
        Some(COMMIT_TIME),
        &dir.path().join("second"),
    );

    assert_eq!(platform_digests(&first), platform_digests(&second));
    assert_eq!(first["digest"], second["digest"]);
    let symbols = debuginfo_referrers(&dir.path().join("first"));
    assert_eq!(
        symbols.len(),
        1,
        "one debug file for one platform: {symbols:?}"
    );
    assert_eq!(
        symbols,
        debuginfo_referrers(&dir.path().join("second")),
        "the debug files (or their referrers) differ"
    );
}
