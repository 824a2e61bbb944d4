//! Shared helpers: running stevedore the way a user does, and reading what it wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use stevedore_testbed as testbed;

pub const FIXTURE_EPOCH: u64 = 1_700_000_000;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .join("Cargo.toml")
}

/// A copy of fixture `name` at `to` (without its target dir); returns its Cargo.toml.
pub fn copy_fixture(name: &str, to: &Path) -> PathBuf {
    let from = fixture(name);
    let from = from.parent().unwrap();
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    run_ok(Command::new("cp").arg("-r").arg(from).arg(to));
    let _ = std::fs::remove_dir_all(to.join("target"));
    to.join("Cargo.toml")
}

/// `cargo stevedore build` for a fixture, with the test bed's toolchain, zig and caches.
pub fn stevedore_build(fixture_name: &str) -> Command {
    stevedore("build", fixture_name)
}

/// `cargo stevedore build` of any project, set up as [`stevedore_build`] sets up a fixture's.
pub fn stevedore_build_manifest(manifest: &Path) -> Command {
    stevedore_on("build", manifest)
}

/// `cargo stevedore SUBCOMMAND` (one that builds) for a fixture, set up as [`stevedore_build`].
pub fn stevedore(subcommand: &str, fixture_name: &str) -> Command {
    stevedore_on(subcommand, &fixture(fixture_name))
}

/// `cargo stevedore SUBCOMMAND` (one that builds) of any project, with the test bed's
/// toolchain, caches, and mirror of the pinned zig.
pub fn stevedore_on(subcommand: &str, manifest: &Path) -> Command {
    testbed::require_tool("rustup");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"));
    cmd.env("PATH", testbed::tool_path_env())
        .env(testbed::ZIG_MIRROR_ENV, testbed::zig_mirror())
        .env("CARGO_TARGET_DIR", testbed::fixture_target_dir())
        .env("STEVEDORE_CACHE_DIR", testbed::testbed_dir().join("cache"))
        .env("SOURCE_DATE_EPOCH", FIXTURE_EPOCH.to_string())
        .env_remove("RUSTFLAGS")
        .env_remove("STEVEDORE_REPO")
        .args([
            "stevedore",
            subcommand,
            "--toolchain",
            "debweb",
            "--manifest-path",
        ])
        .arg(manifest);
    cmd
}

/// Runs a command and returns its output, panicking with everything it printed if it failed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Runs a command that must fail, returning its stderr.
pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed:\n{}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// Runs a command that must exit with `code` (README's "Exit codes"), returning its stderr.
pub fn run_exit(cmd: &mut Command, code: i32) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?} should exit {code}:\n--- stdout\n{}\n--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(bytes)))
}

/// `skopeo inspect [--config|--raw] TRANSPORT:REF` as JSON.
pub fn skopeo_inspect(flags: &[&str], image: &str) -> serde_json::Value {
    let skopeo = testbed::require_tool("skopeo");
    json(&run_ok(Command::new(skopeo).arg("inspect").args(flags).arg(image)).stdout)
}

/// skopeo copies `image` (the `arch` image of an index, when given) from the registry into a
/// new OCI layout `dir/layout`, tagged `x`, checking every blob's digest on the way.
pub fn pull_layout(src_flags: &[String], image: &str, arch: Option<&str>, dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    let mut copy = Command::new(testbed::require_tool("skopeo"));
    copy.args(["copy", "--quiet"]).args(src_flags);
    if let Some(arch) = arch {
        copy.args(["--override-os", "linux", "--override-arch", arch]);
    }
    run_ok(
        copy.arg(format!("docker://{image}"))
            .arg(format!("oci:{}:x", layout.display())),
    );
    layout
}

/// umoci unpacks `tag` of an OCI layout (the `arch` image of an index, when given) into the
/// bundle `dir/bundle` and returns it.
pub fn unpack(layout: &Path, tag: &str, arch: Option<&str>, dir: &Path) -> PathBuf {
    let bundle = dir.join("bundle");
    match arch {
        Some(arch) => testbed::umoci_unpack_platform(layout, tag, arch, &bundle),
        None => testbed::umoci_unpack(layout, tag, &bundle),
    }
    bundle
}

/// Runs a bundle's entrypoint as its image config says (user, env, args; arm64 under qemu)
/// and returns what it printed, panicking with its output if it failed.
pub fn run_bundle(bundle: &Path, args: &[&str]) -> String {
    let out = testbed::run_entrypoint(bundle, args);
    assert!(
        out.status.success(),
        "the entrypoint failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `image` pulled from the registry by skopeo (with `src_flags`), unpacked with umoci and its
/// entrypoint run: what anyone who pulls it gets. Returns what it printed.
pub fn pull_and_run(src_flags: &[String], image: &str) -> String {
    let pulled = tempfile::tempdir().unwrap();
    let layout = pull_layout(src_flags, image, None, pulled.path());
    run_layout(&layout, "x", None, &[])
}

/// The check every image gets: unpacked from `layout` with umoci and its entrypoint run;
/// returns what it printed.
pub fn run_layout(layout: &Path, tag: &str, arch: Option<&str>, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    run_bundle(&unpack(layout, tag, arch, dir.path()), args)
}

/// The bytes of the file whose path ends with `path` in the top layer (stevedore's) of the
/// image `manifest_digest` in an OCI layout.
pub fn file_in_top_layer(layout: &Path, manifest_digest: &str, path: &str) -> Vec<u8> {
    use std::io::Read;
    let manifest = layout_json(layout, manifest_digest);
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let hex = top.trim_start_matches("sha256:");
    let gz = std::fs::File::open(layout.join("blobs/sha256").join(hex)).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with(path) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            return bytes;
        }
    }
    panic!("no {path} in layer {top}");
}

/// A podman store of its own in `dir` (vfs: no overlay mounts needed): the
/// `CONTAINERS_STORAGE_CONF` file to give podman and stevedore.
pub fn podman_store(dir: &Path) -> PathBuf {
    let conf = dir.join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/run\"\n",
            dir.display()
        ),
    )
    .unwrap();
    conf
}

/// Reads a blob of an OCI layout by digest.
pub fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob is in the layout")
}

pub fn layout_json(layout: &Path, digest: &str) -> serde_json::Value {
    json(&layout_blob(layout, digest))
}

/// A build of the hello fixture for linux/amd64 on `base`, with the blob cache at `cache` and
/// no docker credentials, printing JSON.
pub fn build_on(base: &str, cache: &Path) -> Command {
    let mut cmd = stevedore_build("hello");
    cmd.env("STEVEDORE_CACHE_DIR", cache)
        .env("DOCKER_CONFIG", cache.join("no-docker-config"))
        .args(["--platform", "linux/amd64", "--base", base, "--json"]);
    cmd
}

/// Every blob in a cache is what its name says, and no temporary file is left.
pub fn assert_cache_intact(cache: &Path) {
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

/// Runs `cmd` and returns its output and how long it took.
pub fn timed(cmd: &mut Command) -> (Output, std::time::Duration) {
    let started = std::time::Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (out, started.elapsed())
}

/// skopeo copies `image` out of the token front's registry, checking every blob's digest on
/// the way, and names its digest.
pub fn read_back(front: &testbed::TokenFront, image: &str) -> serde_json::Value {
    let copy = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(testbed::require_tool("skopeo"))
            .arg("copy")
            .args(front.skopeo_flags(testbed::Side::Src))
            .arg(format!("docker://{image}"))
            .arg(format!("oci:{}:1", copy.path().join("l").display())),
    );
    let flags = front.skopeo_flags(testbed::Side::Inspect);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    skopeo_inspect(&flags, &format!("docker://{image}"))["Digest"].clone()
}

/// `rustc -vV` of the test bed's toolchain, as (release, commit-hash) when it names one.
pub fn testbed_rustc() -> (String, Option<String>) {
    let out = text(
        &run_ok(
            Command::new("rustup")
                .env("PATH", testbed::tool_path_env())
                .args(["run", "debweb", "rustc", "-vV"]),
        )
        .stdout,
    );
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let commit = field("commit-hash: ").filter(|h| h != "unknown");
    (
        field("release: ").expect("rustc -vV names its release"),
        commit,
    )
}

/// A copy of the example service's sources at `to`; returns its Cargo.toml.
pub fn copy_example(to: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-service");
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src/main.rs",
        "csrc/checksum.c",
    ] {
        let dest = to.join(file);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from.join(file), dest).unwrap();
    }
    to.join("Cargo.toml")
}

/// The example service unpacked at `rootfs` (OCI architecture `arch`; run under its qemu-user
/// when the host is another) answers `/health` with `ok` and runs as 65532; returns what it
/// printed. `what` names it in failures.
pub fn assert_example_serves(rootfs: &Path, arch: &str, what: &str) -> String {
    let (log, health) = testbed::serve_and_probe(
        rootfs,
        arch,
        "/usr/local/bin/hello-service",
        8080,
        "/health",
    );
    assert_eq!(
        health, "ok\n",
        "{what}: the service answers /health; it printed:\n{log}"
    );
    assert!(log.contains("uid=65532"), "{what}: {log}");
    log
}

/// The test process's user's directory that `var` names, else `$HOME/default`: where cargo,
/// rustup and the user cache (`XDG_CACHE_HOME`) keep their state.
pub fn user_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(default))
}
