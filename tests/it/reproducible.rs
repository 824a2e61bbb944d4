//! Bit-identical images: two checkouts of one commit, in different directories, built by
//! users with different homes and clocks, give the same digests for every platform.

use std::path::{Path, PathBuf};
use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::util::*;

const COMMIT_TIME: &str = "1700000000";

/// A git repository holding the example service, committed at a fixed time.
fn example_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("origin");
    copy_example(&repo);
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

/// A user building the example: their home, the target dir they build in, where stevedore
/// writes their linker scripts and where zig keeps the C runtime it compiles.
///
/// Those two places are fixed per user rather than under the (temporary) home: cargo rebuilds
/// std and every crate when the linker's path changes, so a new place per run would rebuild std
/// in both target dirs on every run, and in the shared one again for every other test; and a
/// new zig cache compiles musl's C runtime again for each target (a minute or more each).
struct User {
    home: PathBuf,
    target_dir: PathBuf,
    tools: PathBuf,
    zig_cache: PathBuf,
    /// A directory put first on PATH.
    path_first: Option<PathBuf>,
}

/// A `zig` of another version that leaves a mark when run: first on a user's PATH, it must be
/// neither run nor named (stevedore uses its pinned zig).
fn other_zig(dir: &Path) -> PathBuf {
    let bin = dir.join("other-zig");
    std::fs::create_dir_all(&bin).unwrap();
    let zig = bin.join("zig");
    std::fs::write(&zig, "#!/bin/sh\ntouch \"$0.ran\"\necho 0.14.1\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&zig, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

impl User {
    /// Alice builds in the target dir the fixtures share, with the linker scripts and zig's
    /// cache where every other test's build has them (the test process's user cache).
    fn alice(dir: &Path) -> User {
        let cache = user_dir("XDG_CACHE_HOME", ".cache");
        User {
            home: dir.join("home-alice"),
            target_dir: testbed::fixture_target_dir(),
            tools: cache.join("stevedore/tools"),
            zig_cache: cache.join("zig"),
            path_first: None,
        }
    }

    /// CI builds in a target dir of its own, with its scripts elsewhere. Both stay in the test
    /// bed, so musl std is built from source in them once per machine rather than once per run;
    /// the checkouts and homes are new every run, so their paths still differ.
    fn ci(dir: &Path) -> User {
        User {
            home: dir.join("home-ci"),
            target_dir: testbed::testbed_dir().join("reproducible-target"),
            tools: testbed::testbed_dir().join("reproducible-tools"),
            zig_cache: testbed::testbed_dir().join("reproducible-zig"),
            path_first: Some(other_zig(dir)),
        }
    }

    /// Builds `manifest` as this user into the layout `HOME/image` with `flags`; `epoch`:
    /// SOURCE_DATE_EPOCH, else the commit's time. Returns the --json result.
    fn build(
        &self,
        manifest: &Path,
        base: &str,
        epoch: Option<&str>,
        flags: &[&str],
    ) -> serde_json::Value {
        std::fs::create_dir_all(&self.home).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"));
        let path = match &self.path_first {
            Some(first) => {
                let rest = testbed::tool_path_env();
                let dirs = std::iter::once(first.clone()).chain(std::env::split_paths(&rest));
                std::env::join_paths(dirs).unwrap()
            }
            None => testbed::tool_path_env(),
        };
        cmd.env("PATH", path)
            .env(testbed::ZIG_MIRROR_ENV, testbed::zig_mirror())
            .env("HOME", &self.home)
            // The toolchain is this machine's user's, which every "user" must find.
            .env("CARGO_HOME", user_dir("CARGO_HOME", ".cargo"))
            .env("RUSTUP_HOME", user_dir("RUSTUP_HOME", ".rustup"))
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .env("STEVEDORE_TOOLS_DIR", &self.tools)
            .env("ZIG_GLOBAL_CACHE_DIR", &self.zig_cache)
            .env_remove("STEVEDORE_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("RUSTFLAGS")
            .args(["build", "--toolchain", "debweb", "--json", "--base", base])
            .arg("--manifest-path")
            .arg(manifest)
            .args(flags)
            .arg("--output")
            .arg(format!("oci-layout={}", self.layout().display()));
        if let Some(epoch) = epoch {
            cmd.env("SOURCE_DATE_EPOCH", epoch);
        }
        json(&run_ok(&mut cmd).stdout)
    }

    fn layout(&self) -> PathBuf {
        self.home.join("image")
    }
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

/// The example built twice with `flags` on `base`, from two checkouts of one commit: by
/// Alice (SOURCE_DATE_EPOCH unset, so the commit's time, in a target dir shared with other
/// projects as CI caches are) and by CI (SOURCE_DATE_EPOCH set, its own target dir, another zig
/// first on PATH). `checkout` names CI's checkout directory, so each test has its own.
struct TwoBuilds {
    dir: tempfile::TempDir,
    /// Alice's checkout's Cargo.toml.
    first: PathBuf,
    alice_user: User,
    ci_user: User,
    alice: serde_json::Value,
    ci: serde_json::Value,
}

fn two_builds(base: &str, checkout: &str, flags: &[&str]) -> TwoBuilds {
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    let first = clone(&repo, &dir.path().join("alice/src/hello-service"));
    let second = clone(&repo, &dir.path().join("ci/workspace").join(checkout));
    let (alice_user, ci_user) = (User::alice(dir.path()), User::ci(dir.path()));
    let alice = alice_user.build(&first, base, None, flags);
    let ci = ci_user.build(&second, base, Some(COMMIT_TIME), flags);
    TwoBuilds {
        dir,
        first,
        alice_user,
        ci_user,
        alice,
        ci,
    }
}

#[test]
fn two_checkouts_two_homes_two_clocks_give_identical_images() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let TwoBuilds {
        dir,
        alice_user,
        ci_user,
        alice,
        ci,
        ..
    } = two_builds(&base, "build-7/checkout", &[]);

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
    let alice_statement = provenance_statement(&alice_user.layout());
    assert_eq!(
        alice_statement,
        provenance_statement(&ci_user.layout()),
        "provenance statements differ"
    );
    // CI had another zig first on PATH: it was not run, and both name the pinned one.
    assert!(!ci_user
        .path_first
        .as_ref()
        .unwrap()
        .join("zig.ran")
        .exists());
    let zig = json(&alice_statement)["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "zig")
        .cloned();
    assert_eq!(
        zig.map(|z| z["uri"].clone()),
        Some(serde_json::json!(format!(
            "pkg:pypi/ziglang@{}",
            testbed::ZIGLANG_VERSION
        )))
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
    let layout = alice_user.layout();
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
        alice_user.target_dir.to_str().unwrap(),
        ci_user.target_dir.to_str().unwrap(),
        "/lib/rustlib/src/rust",
        user_dir("CARGO_HOME", ".cargo").to_str().unwrap(),
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

/// `--platform all` on the stand-in (six platforms: distroless's five and 386) builds one index
/// with every platform in the base's order, bit-identical from two checkouts, and each
/// platform's service answers `/health` as 65532 under its qemu-user.
#[test]
fn platform_all_builds_every_platform_of_the_base_identically_and_each_serves_as_nonroot() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let TwoBuilds {
        dir: _dir,
        first,
        alice_user,
        alice,
        ci,
        ..
    } = two_builds(&base, "build-8/checkout", &["--platform", "all"]);

    let in_base_order = [
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm/v7",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
    ];
    let index = layout_json(&alice_user.layout(), alice["digest"].as_str().unwrap());
    let listed: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let (os, arch) = (
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap(),
            );
            match p["variant"].as_str() {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            }
        })
        .collect();
    assert_eq!(listed, in_base_order, "{index:#}");
    assert_eq!(
        platform_digests(&alice),
        platform_digests(&ci),
        "per-platform digests differ"
    );
    assert_eq!(alice["digest"], ci["digest"], "index digests differ");

    for platform in in_base_order {
        serves_and_lists_its_crates(&alice_user.layout(), platform);
    }
    // riscv64, which Debian 12 (so the stand-in) has no port for, on scratch.
    let riscv = alice_user.build(&first, "scratch", None, &["--platform", "linux/riscv64"]);
    assert_eq!(riscv["images"][0]["platform"], "linux/riscv64", "{riscv:#}");
    serves_and_lists_its_crates(&alice_user.layout(), "linux/riscv64");
}

/// glibc images (`--libc gnu` on the distroless/cc stand-in) are as reproducible as musl ones:
/// two checkouts, homes, clocks and target dirs give the same index, byte for byte.
#[test]
fn glibc_images_are_identical_across_checkouts_homes_and_target_dirs() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_cc_base();
    let gnu = ["--libc", "gnu", "--platform", "linux/amd64,linux/arm64"];
    let TwoBuilds {
        dir: _dir,
        alice_user,
        alice,
        ci,
        ..
    } = two_builds(&base, "build-11/checkout", &gnu);
    let platforms = platform_digests(&alice);
    assert_eq!(platforms.len(), 2, "{alice:#}");
    assert_eq!(
        platforms,
        platform_digests(&ci),
        "per-platform digests differ"
    );
    assert_eq!(alice["digest"], ci["digest"], "index digests differ");
    // They are glibc binaries: the amd64 one names glibc's loader.
    let amd64 = alice["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["platform"] == "linux/amd64")
        .unwrap();
    let binary = file_in_top_layer(
        &alice_user.layout(),
        amd64["digest"].as_str().unwrap(),
        "usr/local/bin/hello-service",
    );
    let loader = b"/lib64/ld-linux-x86-64.so.2";
    assert!(binary.windows(loader.len()).any(|w| w == loader));
}

/// The example service of `platform` in `layout` (tagged `latest`) answers `/health` as 65532
/// (under its qemu-user), and its binary lists its crates.
fn serves_and_lists_its_crates(layout: &Path, platform: &str) {
    let arch = platform.strip_prefix("linux/").unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = unpack(layout, "latest", Some(arch), unpacked.path());
    let rootfs = bundle.join("rootfs");
    assert_example_serves(&rootfs, arch.split('/').next().unwrap(), platform);
    // The dependency list is linked in on every platform, as cargo-auditable's own
    // reader sees it (32-bit and big-endian objects included).
    let read = run_ok(
        Command::new(testbed::require_crate_tool("rust-audit-info"))
            .arg(rootfs.join("usr/local/bin/hello-service")),
    );
    let info = json(&read.stdout);
    assert!(
        info["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "hello-service" && p["root"] == true),
        "{platform}: {info:#}"
    );
}

/// The debug-symbols referrers a layout lists: (subject, the build-id its layer is annotated
/// with).
fn debuginfo_referrers(layout: &Path) -> Vec<(String, String)> {
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
                artifact["layers"][0]["annotations"]["dev.stevedore.build-id"].to_string(),
            )
        })
        .collect();
    found.sort();
    found
}

/// With `--split-debuginfo` the crate hashes in symbol names reach the symbol table and the
/// DWARF: anything of the checkout's path, the home or the target dir in cargo's `-C metadata`
/// (the workspace wrapper's name is hashed into it) would make the build-id, and the images,
/// differ. The same two users as above, for one platform. The debug files themselves may
/// differ: zig's C runtime carries its compile dir and cache paths in its DWARF.
#[test]
fn split_debuginfo_images_are_identical_across_checkouts_homes_and_target_dirs() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let flags = ["--split-debuginfo", "--platform", "linux/amd64"];
    let TwoBuilds {
        dir: _dir,
        alice_user,
        ci_user,
        alice,
        ci,
        ..
    } = two_builds(&base, "build-9/checkout", &flags);

    assert_eq!(platform_digests(&alice), platform_digests(&ci));
    assert_eq!(alice["digest"], ci["digest"]);
    let symbols = debuginfo_referrers(&alice_user.layout());
    assert_eq!(
        symbols.len(),
        1,
        "one debug file for one platform: {symbols:?}"
    );
    assert_eq!(
        symbols,
        debuginfo_referrers(&ci_user.layout()),
        "the debug files' subjects or build-ids differ"
    );
    assert!(symbols[0].1.len() >= 18, "a build-id: {symbols:?}");
}
