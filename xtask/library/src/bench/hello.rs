//! The projects the bench builds (the example service, and a service of real size): a no-op
//! build+push and a one-line change, against cargo's own no-op and one-line builds of the same
//! project; the example's Cargo.lock bump.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::measure::{self, Run};
use crate::{fail, project_root};

/// A project the bench builds: a directory of this repository, the files to copy, and the
/// line its one-line change edits in src/main.rs.
pub struct Project {
    /// Its name in row names, tags and logs.
    pub name: &'static str,
    dir: &'static str,
    files: &'static [&'static str],
    /// The line the one-line change edits (in src/main.rs), and the words in it that get a
    /// run number after them.
    line: &'static str,
    marker: &'static str,
}

/// The example service: one C file, 4 crates.
pub const HELLO: Project = Project {
    name: "hello-service",
    dir: "examples/hello-service",
    files: &[
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src/main.rs",
        "csrc/checksum.c",
    ],
    line: r#"_ => format!("hello from {} ({})\n", std::env::consts::ARCH, path),"#,
    marker: "hello from",
};

/// A service of real size: axum, tokio, serde and zstd's C library, 72 crates.
pub const AXUM: Project = Project {
    name: "axum-service",
    dir: "examples/axum-service",
    files: &["Cargo.toml", "Cargo.lock", "src/main.rs"],
    line: r#"    "ok""#,
    marker: "ok",
};

impl Project {
    /// A private copy of the project in `dir`, so edits never touch the repository. Returns
    /// its manifest path.
    pub fn copy(&self, dir: &Path) -> PathBuf {
        let source = project_root().join(self.dir);
        for file in self.files {
            let (from, to) = (source.join(file), dir.join(file));
            std::fs::create_dir_all(to.parent().expect("files have parents"))
                .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", to.display())));
            let same = std::fs::read(&from).ok() == std::fs::read(&to).ok();
            if !same {
                std::fs::copy(&from, &to)
                    .unwrap_or_else(|e| fail(&format!("cannot copy {}: {e}", from.display())));
            }
        }
        dir.join("Cargo.toml")
    }

    /// Changes one line of the copy's src/main.rs so the binary differs for each `n`.
    pub fn edit(&self, manifest: &Path, n: usize) {
        let main = manifest.with_file_name("src/main.rs");
        let source = project_root().join(self.dir).join("src/main.rs");
        let original = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", source.display())));
        if !original.lines().any(|l| l.contains(self.line)) {
            fail(&format!(
                "{} no longer has the line the bench edits: {}",
                source.display(),
                self.line
            ));
        }
        let marked = format!("{} ({n})", self.marker);
        let edited = original.replacen(self.line, &self.line.replacen(self.marker, &marked, 1), 1);
        std::fs::write(&main, edited)
            .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", main.display())));
    }
}

/// Two versions of the example's one dependency; the lock bump moves between them.
pub const CC_VERSIONS: [&str; 2] = ["1.11.2", "1.11.3"];

/// Pins the copy's `cc` to `version` in its Cargo.lock (a lock-only change, as a Dependabot
/// bump is), and removes every built `cc` from `target_dirs`: cargo keeps the artifacts of both
/// versions, so moving back and forth would otherwise rebuild nothing, unlike a bump to a
/// version never built before.
pub fn bump(manifest: &Path, version: &str, target_dirs: &[&Path], log: &Path) {
    let cargo = running_cargo();
    let mut update = Command::new(&cargo);
    update
        .args(["update", "--quiet", "-p", "cc", "--precise", version])
        .arg("--manifest-path")
        .arg(manifest);
    measure::run(&mut update, log);
    for dir in target_dirs {
        let mut clean = Command::new(&cargo);
        clean
            .args(["clean", "--quiet", "--release", "-p", "cc"])
            .arg("--manifest-path")
            .arg(manifest)
            .arg("--target-dir")
            .arg(dir);
        measure::run(&mut clean, log);
    }
}

/// The cargo running xtask (`$CARGO`), rustup's default toolchain's.
fn running_cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A cargo to time: the toolchain's own binaries, started directly (as stevedore starts them),
/// so no rustup proxy adds its start-up to the baseline.
pub struct Cargo {
    program: std::ffi::OsString,
    rustc: Option<PathBuf>,
}

impl Cargo {
    /// The cargo running xtask: rustup's default toolchain.
    pub fn default_toolchain() -> Cargo {
        Cargo {
            program: running_cargo(),
            rustc: None,
        }
    }

    /// The named rustup toolchain's cargo and rustc, the compiler stevedore builds with.
    pub fn toolchain(name: &str) -> Cargo {
        let mut ask = Command::new("rustup");
        ask.args(["run", name, "rustc", "--print", "sysroot"])
            .env_remove("RUSTUP_TOOLCHAIN");
        let sysroot = crate::capture(&mut ask)
            .map(|out| PathBuf::from(out.trim()))
            .unwrap_or_else(|| {
                fail(&format!(
                    "`rustup run {name} rustc --print sysroot` failed: run `cargo xtask setup`"
                ))
            });
        Cargo {
            program: sysroot.join("bin/cargo").into(),
            rustc: Some(sysroot.join("bin/rustc")),
        }
    }

    /// `cargo build --release` of the copy for the host, in its own target dir: what a
    /// developer waits for without any image.
    pub fn build(&self, manifest: &Path, target_dir: &Path, log: &Path) -> Run {
        let mut cmd = Command::new(&self.program);
        cmd.args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(manifest)
            .env("CARGO_TARGET_DIR", target_dir)
            .env_remove("RUSTFLAGS");
        if let Some(rustc) = &self.rustc {
            cmd.env("RUSTC", rustc).env_remove("RUSTUP_TOOLCHAIN");
        }
        measure::run(&mut cmd, log)
    }
}
