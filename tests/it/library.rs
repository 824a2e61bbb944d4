//! The library API, through the runnable programs in `examples/`: what an xtask would write.
//! They run the way a user without rustup runs them: Debian's cargo and rustc, std from source.

use std::path::PathBuf;
use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry, Side};

use crate::util::*;

/// A program from `examples/`, built by `cargo test` beside the integration tests.
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let path: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/PROFILE/deps")
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test` (it builds the examples)",
        path.display()
    );
    let mut cmd = Command::new(path);
    cmd.env("PATH", testbed::tool_path_env())
        .env("CARGO", "/usr/bin/cargo")
        .env("RUSTC", "/usr/bin/rustc")
        .env("CARGO_TARGET_DIR", testbed::fixture_target_dir())
        .env("STEVEDORE_CACHE_DIR", testbed::testbed_dir().join("cache"))
        .env("SOURCE_DATE_EPOCH", FIXTURE_EPOCH.to_string())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTFLAGS");
    cmd
}

#[test]
fn library_examples_build_a_layout_and_push() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");

    let out = run_ok(
        example("oci_layout")
            .arg(fixture("hello"))
            .arg(&layout)
            .arg(&base),
    );
    let printed = text(&out.stdout);
    assert!(
        printed.starts_with(&format!("{}@sha256:", layout.display())),
        "{printed}"
    );
    let printed = run_layout(&layout, "latest", None, &[]);
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");

    let image = format!("{}/library/hello:1", registry.addr());
    let out = run_ok(example("push").arg(fixture("hello")).arg(&image).arg(&base));
    let pushed = text(&out.stdout);
    let pushed = pushed.trim();
    let (repo, digest) = pushed.split_once('@').expect("REPO@DIGEST");
    assert_eq!(repo, format!("{}/library/hello", registry.addr()));
    let mut inspect = Command::new(testbed::require_tool("skopeo"));
    inspect
        .arg("inspect")
        .arg("--raw")
        .args(registry.skopeo_flags(Side::Inspect))
        .arg(format!("docker://{image}"));
    let raw = run_ok(&mut inspect).stdout;
    assert_eq!(
        stevedore::Digest::of(&raw).to_string(),
        digest,
        "the index stevedore reported is the one in the registry"
    );
    assert_eq!(json(&raw)["manifests"].as_array().unwrap().len(), 2);
}
