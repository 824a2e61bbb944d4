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

/// The repository's tracked files as they are in the working tree, copied to `to`: a build of
/// the repository's own package writes its `stevedore.lock` there, not in the checkout.
fn copy_of_the_repository(to: &std::path::Path) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed = run_ok(
        Command::new("git")
            .args(["ls-files", "-z"])
            .current_dir(root),
    );
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let (from, dest) = (root.join(name), to.join(name));
        if from.is_file() {
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&from, &dest).unwrap();
        }
    }
}

/// `[package.metadata.binstall]`'s `pkg-url` and `bin-dir` for `target`, with the overrides
/// and placeholders filled in as cargo-binstall fills them.
fn binstall_paths(target: &str) -> (String, String) {
    let manifest: toml::Table = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"),
    )
    .unwrap()
    .parse()
    .unwrap();
    let binstall = &manifest["package"]["metadata"]["binstall"];
    let pick = |key: &str| {
        binstall
            .get("overrides")
            .and_then(|o| o.get(target))
            .and_then(|o| o.get(key))
            .unwrap_or(&binstall[key])
            .as_str()
            .unwrap()
            .to_owned()
    };
    let fill = |template: String| {
        template
            .replace("{ repo }", "REPO")
            .replace("{ version }", env!("CARGO_PKG_VERSION"))
            .replace("{ name }", "cargo-stevedore")
            .replace("{ target }", target)
            .replace("{ bin }", "cargo-stevedore")
            .replace("{ binary-ext }", "")
    };
    (fill(pick("pkg-url")), fill(pick("bin-dir")))
}

#[test]
fn xtask_dist_writes_static_binaries_binstall_finds_and_an_image_of_them() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let repository = dir.path().join("repository");
    copy_of_the_repository(&repository);
    let out = dir.path().join("dist");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // A dev build, in a target dir the test bed keeps: what is checked is what dist puts
    // together, which does not depend on the profile.
    run_ok(
        Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["xtask", "dist", "--manifest-path"])
            .arg(repository.join("Cargo.toml"))
            .args(["--base", &base, "--profile", "dev", "--toolchain", "debweb"])
            .arg("--target-dir")
            .arg(testbed::testbed_dir().join("dist-target"))
            .arg("--out")
            .arg(&out)
            .env("PATH", testbed::tool_path_env())
            .env(testbed::ZIG_MIRROR_ENV, testbed::zig_mirror())
            .env("STEVEDORE_CACHE_DIR", testbed::testbed_dir().join("cache")),
    );
    run_ok(
        Command::new("sha256sum")
            .args(["--check", "--strict", "SHA256SUMS"])
            .current_dir(&out),
    );
    let version = env!("CARGO_PKG_VERSION");
    let layout = out.join(format!("cargo-stevedore-{version}-image"));
    for (arch, musl, gnu) in [
        (
            "amd64",
            "x86_64-unknown-linux-musl",
            "x86_64-unknown-linux-gnu",
        ),
        (
            "arm64",
            "aarch64-unknown-linux-musl",
            "aarch64-unknown-linux-gnu",
        ),
    ] {
        // cargo-binstall asks for the musl archive on musl and on glibc hosts alike.
        let (url, bin) = binstall_paths(musl);
        assert_eq!(binstall_paths(gnu), (url.clone(), bin.clone()), "{gnu}");
        let name = url.rsplit('/').next().unwrap();
        assert!(
            url.starts_with(&format!("REPO/releases/download/v{version}/")),
            "{url}"
        );
        let unpacked = dir.path().join(arch);
        std::fs::create_dir_all(&unpacked).unwrap();
        run_ok(
            Command::new("tar")
                .arg("-xzf")
                .arg(out.join(name))
                .arg("-C")
                .arg(&unpacked),
        );
        let top = unpacked.join(format!("cargo-stevedore-{version}-{musl}"));
        let listed = walk(&top);
        for expected in [
            "cargo-stevedore",
            "README.md",
            "LICENSE-MIT",
            "LICENSE-APACHE",
            "completions/cargo-stevedore.bash",
            "completions/_cargo-stevedore",
            "completions/cargo-stevedore.fish",
            "man/cargo-stevedore.1",
            "man/cargo-stevedore-build.1",
        ] {
            assert!(
                listed.iter().any(|l| l == expected),
                "{arch}: no {expected} in {listed:?}"
            );
        }
        let binary = unpacked.join(&bin);
        assert_eq!(binary, top.join("cargo-stevedore"), "binstall's bin-dir");
        let headers = text(
            &run_ok(
                Command::new(testbed::require_tool("readelf"))
                    .args(["-l", "--wide"])
                    .arg(&binary),
            )
            .stdout,
        );
        assert!(
            !headers.contains("INTERP"),
            "{arch}: not static:\n{headers}"
        );

        // The image holds the same binary, and it runs (arm64's under qemu).
        let bundle = unpack(
            &layout,
            "latest",
            Some(arch),
            &dir.path().join(format!("{arch}-image")),
        );
        let in_image = bundle.join("rootfs/usr/local/bin/cargo-stevedore");
        assert_eq!(
            std::fs::read(&in_image).unwrap(),
            std::fs::read(&binary).unwrap(),
            "{arch}: the archive's binary is the image's"
        );
        let printed = run_bundle(&bundle, &["--version"]);
        assert_eq!(
            printed.trim(),
            format!("cargo-stevedore {version}"),
            "{arch}"
        );
    }
}

/// The files under `dir`, as paths relative to it.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    files
}
