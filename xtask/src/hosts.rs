//! `cargo xtask check-hosts`: the crates users install compile for the hosts developers build
//! on, macOS (arm64, x86_64) and Windows (x86_64), checked from this Linux machine (issue 31).
//! Compiled, never run: nothing here links, and no test runs on those hosts.
//!
//! No rustup toolchain here has those targets' std or rust-src, and rustup cannot download
//! them, so std is built from source (`-Zbuild-std`, allowed on a release toolchain by
//! `RUSTC_BOOTSTRAP=1`, as stevedore's own std cache does) with a toolchain that has its
//! sources: `debweb` by default, Debian's rustc-web with `rust-web-src`, which `cargo xtask
//! setup` links. `cargo check` still runs build scripts, and zstd-sys and ring compile C for
//! the target: zig does, through one wrapper per target. zig has macOS's libc headers but not
//! MSVC's (it takes them from a Visual Studio install), so Windows' C is compiled against
//! MinGW's headers: the same COFF objects as far as a check goes, never linked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{capture, fail, project_root, show};

/// Each host: its Rust target, zig's name for it, and zig's archiver for it.
const HOSTS: [(&str, &str, &str); 3] = [
    ("aarch64-apple-darwin", "aarch64-macos", "ar"),
    ("x86_64-apple-darwin", "x86_64-macos", "ar"),
    // cc-rs archives with lib.exe's arguments for an msvc target; `zig lib` takes them.
    ("x86_64-pc-windows-msvc", "x86_64-windows-gnu", "lib"),
];

/// The workspace's packages that run only on the Linux machine that tests stevedore: the test
/// bed (chroot, setgroups, dockerd) and the tasks built on it.
const LINUX_ONLY: [&str; 3] = ["xtask", "xtask-library", "stevedore-testbed"];

pub const DEFAULT_TOOLCHAIN: &str = "debweb";

pub fn main(args: &[String]) -> bool {
    let toolchain = match args {
        [] => DEFAULT_TOOLCHAIN,
        [flag, name] if flag == "--toolchain" => name,
        _ => fail("usage: cargo xtask check-hosts [--toolchain NAME]"),
    };
    run(toolchain)
}

/// Checks every host in [`HOSTS`] with `toolchain`; false when one fails.
pub fn run(toolchain: &str) -> bool {
    require_sources(toolchain);
    let zig = zig();
    let wrappers = target_dir().join("check-hosts");
    let mut failed = Vec::new();
    let started = Instant::now();
    for (target, zig_target, archiver) in HOSTS {
        let cc = wrapper(
            &wrappers,
            &format!("cc-{zig_target}"),
            &format!(
                // cc-rs passes the Rust triple as --target=…, which zig cannot parse.
                "for a do shift; case \"$a\" in --target=*) continue;; esac; set -- \"$@\" \"$a\"; done\n\
                 exec {} cc -target {zig_target} \"$@\"",
                quote(&zig)
            ),
        );
        let ar = wrapper(
            &wrappers,
            archiver,
            &format!("exec {} {archiver} \"$@\"", quote(&zig)),
        );
        let var = target.replace('-', "_");
        let mut cmd = Command::new("rustup");
        cmd.args(["run", toolchain, "cargo", "check", "--workspace"]);
        for package in LINUX_ONLY {
            cmd.args(["--exclude", package]);
        }
        cmd.args(["--lib", "--bins", "--locked", "-Zbuild-std=std,panic_abort"])
            .args(["--target", target])
            .current_dir(project_root())
            .env("RUSTC_BOOTSTRAP", "1")
            // Lints are capped for std and dependencies; this makes ours fail the check.
            .env("RUSTFLAGS", "-D warnings")
            .env(format!("CC_{var}"), &cc)
            .env(format!("AR_{var}"), &ar)
            // The toolchain is the one named, not the one `cargo xtask` runs on.
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("CARGO");
        eprintln!("$ {}", show(&cmd));
        let one = Instant::now();
        let ok = cmd
            .status()
            .unwrap_or_else(|e| fail(&format!("cannot run `{}`: {e}", show(&cmd))))
            .success();
        let seconds = one.elapsed().as_secs_f64();
        match ok {
            true => eprintln!("check-hosts: {target} compiles ({seconds:.1} s)"),
            false => {
                eprintln!("check-hosts: {target} does NOT compile ({seconds:.1} s)");
                failed.push(target);
            }
        }
    }
    let total = started.elapsed().as_secs_f64();
    match failed.as_slice() {
        [] => {
            eprintln!(
                "check-hosts: all {} hosts compile ({total:.1} s)",
                HOSTS.len()
            );
            true
        }
        failed => {
            eprintln!("xtask: error: does not compile for {}", failed.join(", "));
            false
        }
    }
}

/// Fails unless `toolchain` is a rustup toolchain with std's sources.
fn require_sources(toolchain: &str) {
    let setup = "`cargo xtask setup` links `debweb` (Debian's rustc-web and rust-web-src); \
                 elsewhere, `--toolchain nightly` after `rustup component add rust-src \
                 --toolchain nightly`";
    let Some(sysroot) =
        capture(Command::new("rustup").args(["run", toolchain, "rustc", "--print", "sysroot"]))
    else {
        fail(&format!("no rustup toolchain `{toolchain}`: {setup}"));
    };
    let library = Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library");
    if !library.is_dir() {
        fail(&format!(
            "the toolchain `{toolchain}` has no std sources ({} is missing): {setup}",
            library.display()
        ));
    }
}

/// The zig that compiles the hosts' C: `STEVEDORE_ZIG`, else the test bed venv's.
fn zig() -> PathBuf {
    if let Some(zig) = std::env::var_os("STEVEDORE_ZIG").filter(|z| !z.is_empty()) {
        return PathBuf::from(zig);
    }
    let python = stevedore_testbed::venv_dir().join("bin/python3");
    let find = "import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), 'zig'))";
    match capture(Command::new(&python).args(["-c", find])) {
        Some(zig) => PathBuf::from(zig.trim()),
        None => fail(&format!(
            "no zig: `{}` has no ziglang; run `cargo xtask setup`, or set STEVEDORE_ZIG",
            python.display()
        )),
    }
}

/// The target dir cargo uses here: `CARGO_TARGET_DIR` (from the workspace root), else `target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => project_root().join(dir),
        None => project_root().join("target"),
    }
}

/// Writes the shell script `dir/name` running `body`, executable; returns its path.
fn wrapper(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let script = format!("#!/bin/sh\n# Written by `cargo xtask check-hosts`.\n{body}\n");
    if std::fs::read_to_string(&path).is_ok_and(|old| old == script) {
        return path;
    }
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, script))
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)));
    if let Err(e) = written {
        fail(&format!("cannot write {}: {e}", path.display()));
    }
    path
}

/// `path` quoted for sh.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
