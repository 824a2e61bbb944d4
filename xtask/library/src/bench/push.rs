//! Pushing: stevedore builds and pushes Cargo projects to a loopback registry; buildah does
//! the same for the same binary. Each tool keeps its own cache between runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use stevedore_testbed::{self as testbed, Registry};

use super::measure::{self, Run};
use crate::fail;

/// The epoch stamped on every layer, so runs differ only where the bench changes something.
const EPOCH: &str = "1700000000";

/// The toolchain stevedore builds with here: the one with rust-src (`cargo xtask setup`). The
/// cargo baselines use it too, so a row compares stevedore with cargo, not two compilers.
pub const TOOLCHAIN: &str = "debweb";

/// What stays the same across the bench's stevedore runs.
#[derive(Clone)]
pub struct Stevedore {
    pub exe: PathBuf,
    pub base: String,
    /// Shared by every project the bench builds: the musl std is compiled once.
    pub target_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// Where git stops looking for a repository above the projects.
    pub ceiling: PathBuf,
    /// Whether std comes from stevedore's std cache (`STEVEDORE_STD_CACHE`).
    pub std_cache: bool,
}

/// What one `cargo stevedore build --push` reported.
pub struct Pushed {
    pub run: Run,
    pub digest: String,
    pub uploaded: u64,
}

impl Stevedore {
    /// `cargo stevedore build --push` of `manifest` for linux/amd64 under `tag`.
    pub fn push(&self, manifest: &Path, tag: &str, log: &Path) -> Pushed {
        let platform = ["--platform", "linux/amd64"];
        self.run("build", &platform, manifest, tag, log)
    }

    /// `cargo stevedore rebase --push` of `published` (built from `manifest`) onto this
    /// run's base, under `tag`.
    pub fn rebase(&self, manifest: &Path, published: &str, tag: &str, log: &Path) -> Pushed {
        self.run("rebase", &[published], manifest, tag, log)
    }

    fn run(
        &self,
        subcommand: &str,
        args: &[&str],
        manifest: &Path,
        tag: &str,
        log: &Path,
    ) -> Pushed {
        let mut cmd = Command::new(&self.exe);
        cmd.env("PATH", testbed::tool_path_env())
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .env("STEVEDORE_CACHE_DIR", &self.cache_dir)
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .env(
                "STEVEDORE_STD_CACHE",
                if self.std_cache { "on" } else { "off" },
            )
            // The bench's projects sit inside this repository's checkout; without a ceiling
            // its HEAD (which moves) would become their revision and change every digest.
            .env("GIT_CEILING_DIRECTORIES", &self.ceiling)
            .env_remove("RUSTFLAGS")
            .env_remove("RUSTUP_TOOLCHAIN")
            .args(["stevedore", subcommand, "--toolchain", TOOLCHAIN])
            .args(["--json", "--push", "--base", &self.base, "-t", tag])
            .args(args)
            .arg("--manifest-path")
            .arg(manifest);
        let run = measure::run(&mut cmd, log);
        let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap_or_else(|e| {
            fail(&format!(
                "`cargo stevedore {subcommand} --json` printed no JSON ({e}): {}",
                String::from_utf8_lossy(&run.stdout)
            ))
        });
        let result = json.as_array().and_then(|a| a.first()).unwrap_or(&json);
        let digest = result["digest"].as_str().unwrap_or_default().to_owned();
        let uploaded = result["push"]["uploaded"]
            .as_u64()
            .unwrap_or_else(|| fail(&format!("the --json result has no push.uploaded: {result}")));
        Pushed {
            run,
            digest,
            uploaded,
        }
    }
}

/// A Cargo project whose binary carries `blob` (via `include_bytes!`), so the image's layer
/// is as large as the blob and made of its bytes; its package and binary are `name`. Returns
/// the manifest path.
pub fn big_project(dir: &Path, blob: &Path, name: &str) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(&src)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", src.display())));
    let copy = dir.join("blob.bin");
    if copy.metadata().map(|m| m.len()).ok() != blob.metadata().map(|m| m.len()).ok() {
        std::fs::copy(blob, &copy)
            .unwrap_or_else(|e| fail(&format!("cannot copy {}: {e}", blob.display())));
    }
    let files = [
        (
            dir.join("Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n"),
        ),
        (
            src.join("main.rs"),
            "// The blob keeps the binary as large as the bench's input.\n\
             static BLOB: &[u8] = include_bytes!(\"../blob.bin\");\n\
             fn main() {\n    println!(\"{}\", std::hint::black_box(BLOB).len());\n}\n"
                .to_owned(),
        ),
    ];
    for (path, text) in files {
        // Rewriting an identical file would still make cargo rebuild (mtime).
        if std::fs::read_to_string(&path).ok() != Some(text.clone()) {
            std::fs::write(&path, text)
                .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
        }
    }
    dir.join("Cargo.toml")
}

/// The musl executable cargo left for `name` in the bench's target dir.
pub fn built_binary(target_dir: &Path, name: &str) -> PathBuf {
    let path = target_dir
        .join("x86_64-unknown-linux-musl/release")
        .join(name);
    if !path.is_file() {
        fail(&format!("no {} after the build", path.display()));
    }
    path
}

/// buildah (vfs storage, chroot isolation, as TESTBED §6): from the base, copy the binary in,
/// set the entrypoint, commit, push under `tag`. Its storage under `dir` persists between runs.
pub struct Buildah {
    script: PathBuf,
    dir: PathBuf,
}

impl Buildah {
    pub fn new(dir: &Path) -> Buildah {
        testbed::require_tool("buildah");
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", dir.display())));
        let script = dir.join("flow.sh");
        let text = r#"#!/bin/bash
# usage: flow.sh BASE BINARY IMAGE (IMAGE = REGISTRY/REPO:TAG)
set -euo pipefail
b() { buildah --root "$BENCH_BUILDAH/root" --runroot "$BENCH_BUILDAH/run" --storage-driver vfs "$@"; }
c=$(b from --quiet --tls-verify=false "$1")
b copy --quiet --chown 0:0 --chmod 0755 "$c" "$2" /app >/dev/null
b config --entrypoint '["/app"]' --user 65532:65532 --workingdir /home/nonroot "$c"
b commit --quiet --format oci "$c" "$3" >/dev/null
b push --quiet --tls-verify=false "$3" "docker://$3"
b rm "$c" >/dev/null
"#;
        std::fs::write(&script, text)
            .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", script.display())));
        Buildah {
            script,
            dir: dir.to_path_buf(),
        }
    }

    pub fn push(&self, base: &str, binary: &Path, image: &str, log: &Path) -> Run {
        let mut cmd = Command::new("bash");
        cmd.arg(&self.script)
            .arg(base)
            .arg(binary)
            .arg(image)
            .env("BENCH_BUILDAH", &self.dir)
            .env("BUILDAH_ISOLATION", "chroot")
            .env("STORAGE_DRIVER", "vfs");
        measure::run(&mut cmd, log)
    }
}

/// A plain-HTTP registry on 127.0.0.1 with the distroless stand-in pushed; returns it and the
/// base reference.
pub fn registry() -> (Registry, String) {
    let registry = Registry::start(testbed::Mode::Http);
    let base = registry.push_base();
    (registry, base)
}
