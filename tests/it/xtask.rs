//! `cargo xtask image --push`: this repository's own xtask, on the library API, pushes the
//! example service for two platforms, and what it pushed serves `/health`.

use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry, Side};

use crate::util::*;

#[test]
fn xtask_image_pushes_the_example_service_and_it_serves() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    // STEVEDORE_REPO is a prefix: the image goes to PREFIX/BIN.
    let prefix = format!("{}/xtask", registry.addr());
    let repo = format!("{prefix}/hello-service");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = run_ok(
        Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "xtask",
                "image",
                "--push",
                "--base",
                &base,
                "--toolchain",
                "debweb",
                "--target-dir",
            ])
            .arg(testbed::fixture_target_dir())
            .env("PATH", testbed::tool_path_env())
            .env(testbed::ZIG_MIRROR_ENV, testbed::zig_mirror())
            .env("STEVEDORE_REPO", &prefix)
            .env("STEVEDORE_CACHE_DIR", testbed::testbed_dir().join("cache")),
    );
    let printed = text(&out.stdout);
    assert!(
        printed.trim().starts_with(&format!("{repo}@sha256:")),
        "{printed}"
    );

    // Tags from the example's metadata: {version} and latest, both naming a two-platform index.
    for tag in ["0.1.0", "latest"] {
        let mut inspect = Command::new(testbed::require_tool("skopeo"));
        inspect
            .args(["inspect", "--raw"])
            .args(registry.skopeo_flags(Side::Inspect))
            .arg(format!("docker://{repo}:{tag}"));
        let index = json(&run_ok(&mut inspect).stdout);
        assert_eq!(
            index["manifests"].as_array().unwrap().len(),
            2,
            "{tag}: {index}"
        );
    }

    for arch in ["amd64", "arm64"] {
        let dir = tempfile::tempdir().unwrap();
        let flags = registry.skopeo_flags(Side::Src);
        let layout = pull_layout(&flags, &format!("{repo}:latest"), Some(arch), dir.path());
        let bundle = unpack(&layout, "x", None, dir.path());
        let log = assert_example_serves(&bundle.join("rootfs"), arch, arch);
        assert!(
            log.contains("hello-service listening on 0.0.0.0:8080") && log.contains("uid=65532"),
            "{arch}: {log}"
        );
    }
}
