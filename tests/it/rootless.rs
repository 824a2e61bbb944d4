//! The core cases as an unprivileged user: uid 65534 with its own HOME and no capabilities
//! (the test bed's [`Rootless`]), with Debian's cargo on PATH and no `--toolchain`, as on a
//! rootless laptop. Building to a layout, pushing with the user's own credentials and
//! `--load podman` into the user's rootless store; what the user wrote is checked as root.
//!
//! The tests share the user's copy of the hello fixture and its target dir (std built from
//! source once per machine, then cargo has nothing to do) and take turns.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use stevedore_testbed::{
    self as testbed, Mode, Registry, Rootless, Side, PASSWORD, ROOTLESS_ID, USERNAME,
};

use crate::util::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The user, with the turn to use it, and its copy of the hello fixture.
fn user() -> (MutexGuard<'static, ()>, Rootless, PathBuf) {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rootless = Rootless::prepare(Path::new(env!("CARGO_BIN_EXE_cargo-stevedore")));
    let project = rootless.copy_into_home(fixture("hello").parent().unwrap(), "hello");
    // Each test pins its own registry's base afresh.
    let _ = std::fs::remove_file(project.join("stevedore.lock"));
    (turn, rootless, project.join("Cargo.toml"))
}

/// `cargo stevedore build` of the user's project as the user, for the host's platform only.
fn build_as(rootless: &Rootless, manifest: &Path) -> Command {
    build_with(rootless, manifest, &[])
}

/// [`build_as`] with more of the user's environment.
fn build_with(rootless: &Rootless, manifest: &Path, env: &[(&str, &str)]) -> Command {
    let epoch = FIXTURE_EPOCH.to_string();
    let mut env = env.to_vec();
    env.push(("SOURCE_DATE_EPOCH", &epoch));
    // The pinned zig, fetched into the user's own tools dir from the test bed's mirror.
    let mirror = testbed::zig_mirror();
    env.push((testbed::ZIG_MIRROR_ENV, &mirror));
    let mut cmd = rootless.command(&rootless.stevedore(), &env);
    cmd.args(["stevedore", "build", "--manifest-path"])
        .arg(manifest)
        .args(["--platform", "linux/amd64", "--json"]);
    cmd
}

#[test]
fn unprivileged_build_writes_an_oci_layout_that_skopeo_and_umoci_read() {
    let (_turn, rootless, manifest) = user();
    // Who the commands run as: uid and gid 65534, no capability (the bounding set stays
    // whole, as in a login: podman's setuid newuidmap needs it).
    let who = text(
        &run_ok(
            rootless
                .command(Path::new("/bin/sh"), &[])
                .args(["-c", "id -u; id -g; id -G; grep ^Cap /proc/self/status"]),
        )
        .stdout,
    );
    let expected_id = format!("{ROOTLESS_ID}\n{ROOTLESS_ID}\n{ROOTLESS_ID}\n");
    assert!(who.starts_with(&expected_id), "{who}");
    for caps in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert!(who.contains(&format!("{caps}:\t0000000000000000")), "{who}");
    }

    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let out_dir = rootless.scratch("layout-");
    let layout = out_dir.path().join("hello");
    let out = run_ok(
        build_as(&rootless, &manifest)
            .args(["--base", &base, "-o"])
            .arg(format!("oci-layout={}", layout.display())),
    );
    let result = json(&out.stdout);
    let written = std::fs::metadata(layout.join("index.json")).unwrap();
    assert_eq!(written.uid(), ROOTLESS_ID, "written by the user");

    let inspected = skopeo_inspect(&[], &format!("oci:{}:latest", layout.display()));
    assert_eq!(inspected["Digest"], result["digest"], "{inspected:#}");
    let printed = run_layout(&layout, "latest", None, &[]);
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");
}

#[test]
fn unprivileged_push_authenticates_from_the_users_own_podman_auth_file() {
    let (_turn, rootless, manifest) = user();
    let registry = Registry::start(Mode::BasicAuth);
    let base = registry.push_base();
    let ca = rootless.share(registry.ca_cert().unwrap(), "ca.crt");
    // What `podman login` writes, where it writes it without XDG_CONFIG_HOME; the user has
    // no docker config and no credential in its environment.
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"))
    };
    rootless.write_in_home(
        ".config/containers/auth.json",
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.addr()
        )
        .as_bytes(),
    );
    let image = format!("{}/rootless/hello:1", registry.addr());
    let out = run_ok(
        build_as(&rootless, &manifest)
            .args(["--base", &base, "-t", &image, "--push", "--registry-ca"])
            .arg(&ca),
    );
    let result = json(&out.stdout);
    assert!(!text(&out.stderr).contains(PASSWORD), "no secret in output");
    let digest = result["digest"].as_str().unwrap();

    // skopeo, as root with the registry's own flags, pulls what the user pushed.
    let flags = registry.skopeo_flags(Side::Inspect);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let inspected = skopeo_inspect(&flags, &format!("docker://{image}"));
    assert_eq!(inspected["Digest"], digest, "{inspected:#}");
    let printed = pull_and_run(&registry.skopeo_flags(Side::Src), &image);
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");
}

/// Ends the user's podman pause process when the test ends, however it ends.
struct PodmanStopped<'a>(&'a Rootless);

impl Drop for PodmanStopped<'_> {
    fn drop(&mut self) {
        self.0.stop_podman_pause();
    }
}

#[test]
fn unprivileged_load_podman_puts_the_image_in_the_users_rootless_store() {
    let (_turn, rootless, manifest) = user();
    // A pause process left from before may map ids /etc/subuid no longer gives.
    rootless.stop_podman_pause();
    let _stopped = PodmanStopped(&rootless);
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let name = "localhost/rootless/hello:1";
    let out = run_ok(
        build_as(&rootless, &manifest).args(["--base", &base, "-t", name, "--load", "podman"]),
    );
    let result = json(&out.stdout);
    assert_eq!(result["loaded"]["engine"], "podman");

    let inspected = json(&run_ok(&mut rootless.podman(&["image", "inspect", name])).stdout);
    assert_eq!(
        inspected[0]["Config"]["Entrypoint"][0], "/usr/local/bin/hello",
        "{inspected:#}"
    );
    // The store is kept between runs, where an image of the same config (the same id) may
    // already be under another manifest digest: podman lists every digest it was loaded as.
    let built = format!(
        "localhost/rootless/hello@{}",
        result["images"][0]["digest"].as_str().unwrap()
    );
    assert!(
        inspected[0]["RepoDigests"]
            .as_array()
            .unwrap()
            .contains(&built.as_str().into()),
        "the image as built: {inspected:#}"
    );
    // The store is the user's own, under its HOME.
    let info =
        text(&run_ok(&mut rootless.podman(&["info", "--format", "{{.Store.GraphRoot}}"])).stdout);
    assert!(
        Path::new(info.trim()).starts_with(rootless.home()),
        "{info}"
    );

    // The image's files keep their owners inside the user's namespace (subordinate ids), and
    // its entrypoint runs from the store as the image's user.
    let script = format!(
        "set -e; d=$(podman image mount {name}); stat -c %u:%g \"$d/home/nonroot\"; \
         /usr/sbin/chroot --userspec=65532:65532 \"$d\" /usr/local/bin/hello; podman image unmount {name} >/dev/null"
    );
    let ran = text(&run_ok(&mut rootless.podman(&["unshare", "/bin/sh", "-c", &script])).stdout);
    assert!(ran.starts_with("65532:65532\n"), "{ran}");
    assert!(ran.contains("uid=65532 gid=65532"), "{ran}");
}

/// A service user's HOME is often one it cannot write: `/nonexistent`, nobody's in
/// /etc/passwd, is what `docker run --user 65534` and `sudo -u nobody` give. The blob cache
/// then says which variable to set, and that one variable is all stevedore needs: its scripts
/// and zig's cache go beside the blob cache (cargo needs `CARGO_HOME` for the same reason).
#[test]
fn unprivileged_with_an_unwritable_home_needs_only_the_cache_variable() {
    let (_turn, rootless, manifest) = user();
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let home = rootless.home();
    // Cargo's own home, and rustup's (stevedore remaps both homes' paths out of binaries: the
    // same remaps as the other tests' keep their compile, so cargo has nothing to do).
    let cargo_home = home.join(".cargo").display().to_string();
    let rustup_home = home.join(".rustup").display().to_string();
    let no_home = [
        ("HOME", "/nonexistent"),
        ("CARGO_HOME", cargo_home.as_str()),
        ("RUSTUP_HOME", rustup_home.as_str()),
    ];
    let err = run_exit(
        build_with(&rootless, &manifest, &no_home).args(["--base", &base]),
        1,
    );
    assert!(
        err.contains("/nonexistent/.cache/stevedore") && err.contains("set STEVEDORE_CACHE_DIR"),
        "{err}"
    );

    // The user's own cache, named by the variable: its scripts land where the other tests'
    // do, so the linker's path is unchanged too; zig's cache goes beside the blob cache.
    let cache = home.join(".cache/stevedore").display().to_string();
    let mut with_cache = no_home.to_vec();
    with_cache.push(("STEVEDORE_CACHE_DIR", cache.as_str()));
    let out_dir = rootless.scratch("no-home-");
    let layout = out_dir.path().join("hello");
    run_ok(
        build_with(&rootless, &manifest, &with_cache)
            .args(["--base", &base, "-o"])
            .arg(format!("oci-layout={}", layout.display())),
    );
    let printed = run_layout(&layout, "latest", None, &[]);
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");
}
