//! `cargo xtask`: the repository's own tasks, in Rust so they run wherever cargo does.

mod demo;
mod fuzz;
mod graph;
mod hosts;
mod setup;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

pub use stevedore_testbed::shell_line as show;

const HELP: &str = "\
cargo xtask TASK

Tasks:
  setup         install what the tests need (Debian packages, the arm64 dpkg architecture,
                the zig venv, the `debweb` rustup toolchain, the distroless stand-in);
                does nothing when all of it is there
  ci            what CI runs: `cargo fmt --check`, `cargo clippy -D warnings` (and the API
                lints on the libraries), `cargo doc` with `-D warnings`, `tidy`, then setup,
                `check-hosts`, `test`, then `fuzz 15`
  check-hosts [--toolchain NAME]
                `cargo check` the crates users install for aarch64-apple-darwin,
                x86_64-apple-darwin and x86_64-pc-windows-msvc: std built from source with
                NAME (default debweb, which setup links), C compiled by the test bed's zig
  tidy          check each crate's shape: no module imports a later stage or forms a cycle,
                ARCHITECTURE.md's map lists each module's rank and imports as they are, and
                no file has more than 500 lines of code
  test [ARGS]   setup, then `cargo test --workspace --locked ARGS` (without `--workspace`
                when ARGS select packages with -p/--package)
  demo          setup, then build the example service for amd64 and arm64 with stevedore,
                push it to a local registry, pull it back and run it
  image [--push] [--base REF] [--toolchain NAME] [--target-dir DIR] [--registry-ca FILE]
                build examples/hello-service with the stevedore library (amd64 + arm64) and
                push it to $STEVEDORE_REPO/hello-service, or write it to target/image/hello-service
  dist [--out DIR] [--manifest-path PATH] [--base REF] [--profile NAME] [--toolchain NAME]
       [--target-dir DIR]
                the release files of cargo-stevedore, built by stevedore itself (default
                target/dist): its image for amd64 + arm64 as an OCI layout, one archive per
                musl target with the static binary, README, licenses, completions and man
                pages, and SHA256SUMS
  bench [--quick] [--json FILE] [--bins DIR]
                time packaging, re-pushing and rebuilding with stevedore against gzip,
                buildah and cargo on this machine (root: it starts a registry and buildah);
                prints a table, writes JSON (default target/testbed/bench/bench.json)
  fuzz [SECONDS] build the cargo-fuzz targets in fuzz/ (nightly, installing it, cargo-fuzz and
                g++ when missing) and run each for SECONDS (default 20) on fuzz/corpus/TARGET
                and the seeds in fuzz/seeds/TARGET; fails naming the target and crash file
  help          this text
";

/// Seconds each fuzz target runs in `cargo xtask ci`.
const CI_FUZZ_SECONDS: u64 = 15;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") if args.len() == 1 => {
            setup::run();
            ExitCode::SUCCESS
        }
        Some("ci") if args.len() == 1 => {
            require_root(TESTS_NEED_ROOT);
            lint();
            setup::run();
            // After setup, which links the toolchain and installs zig. Seconds when warm (three
            // crates checked three times); a quarter of an hour cold, std built three times.
            if !hosts::run(hosts::DEFAULT_TOOLCHAIN) {
                return ExitCode::FAILURE;
            }
            let tested = test(&[]);
            if tested != ExitCode::SUCCESS {
                return tested;
            }
            // A short run of every fuzz target: enough to catch a parser that now panics on
            // the seeds or on what the fuzzer finds quickly.
            match fuzz::run(CI_FUZZ_SECONDS) {
                true => ExitCode::SUCCESS,
                false => ExitCode::FAILURE,
            }
        }
        Some("check-hosts") => match hosts::main(&args[1..]) {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        },
        Some("tidy") if args.len() == 1 => match tidy::run(&project_root()) {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        },
        Some("test") => {
            require_root(TESTS_NEED_ROOT);
            setup::run();
            test(&args[1..])
        }
        Some("demo") if args.len() == 1 => {
            require_root("the demo chroots into the image and runs it in a network namespace");
            setup::run();
            demo::run();
            ExitCode::SUCCESS
        }
        Some("image" | "dist") => library_task(&args, false),
        Some("bench") => {
            require_root(
                "the bench pushes the distroless stand-in (built as root) and runs buildah",
            );
            setup::run();
            library_task(&args, true)
        }
        Some("fuzz") => fuzz::main(&args[1..]),
        None | Some("help" | "-h" | "--help") => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Some(_) => {
            eprint!(
                "xtask: error: unknown task or arguments: {}\n\n{HELP}",
                args.join(" ")
            );
            ExitCode::from(2)
        }
    }
}

/// Runs a task of `xtask-library` (the tasks on the stevedore library, in their own package so
/// the others compile none of it), in release mode for the bench; exits with its code.
fn library_task(args: &[String], release: bool) -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["run", "--quiet", "--locked", "--package", "xtask-library"]);
    if release {
        cmd.arg("--release");
    }
    cmd.arg("--").args(args).current_dir(project_root());
    let status = cmd
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run `{}`: {e}", show(&cmd))));
    match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => fail(&format!("`{}` was killed: {status}", show(&cmd))),
    }
}

const TESTS_NEED_ROOT: &str =
    "the tests chroot into image root filesystems, set file owners and start dockerd";

/// The checks that need no test bed, first, because they fail in seconds rather than minutes.
fn lint() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = project_root();
    run_ok(
        Command::new(&cargo)
            .args(["fmt", "--all", "--check"])
            .current_dir(&root),
    );
    run_ok(
        Command::new(&cargo)
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ])
            .current_dir(&root),
    );
    // The libraries' public API names only what a caller can name (issue 28), and every
    // public item has docs that build.
    run_ok(
        Command::new(&cargo)
            .args([
                "clippy",
                "--workspace",
                "--lib",
                "--locked",
                "--",
                "-D",
                "warnings",
            ])
            .args(["-D", "unnameable_types", "-D", "private_interfaces"])
            .args(["-D", "private_bounds"])
            .current_dir(&root),
    );
    run_ok(
        Command::new(&cargo)
            .args(["doc", "--workspace", "--no-deps", "--locked"])
            .env("RUSTDOCFLAGS", "-D warnings")
            .current_dir(&root),
    );
    if !tidy::run(&root) {
        fail("the crates break ARCHITECTURE.md's rules (above)");
    }
}

/// `cargo test --workspace --locked ARGS` with the test bed directory fixed for every test
/// process; exits with cargo's code.
fn test(extra: &[String]) -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--locked"]);
    // `--workspace` would override a package selection given by the caller.
    if !extra
        .iter()
        .any(|a| a.starts_with("-p") || a.starts_with("--package"))
    {
        cmd.arg("--workspace");
    }
    cmd.args(extra).current_dir(project_root()).env(
        stevedore_testbed::TESTBED_DIR_ENV,
        stevedore_testbed::testbed_dir(),
    );
    eprintln!("$ {}", show(&cmd));
    let status = cmd
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run `{}`: {e}", show(&cmd))));
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => fail(&format!("`{}` was killed: {status}", show(&cmd))),
    }
}

/// The workspace root, where this repository's Cargo.toml is.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

/// Prints `message` as an error and exits with status 1.
pub fn fail(message: &str) -> ! {
    eprintln!("xtask: error: {message}");
    std::process::exit(1)
}

/// Prints and runs `cmd`, exiting with a message naming it if it fails.
pub fn run_ok(cmd: &mut Command) {
    eprintln!("$ {}", show(cmd));
    let status = cmd
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run `{}`: {e}", show(cmd))));
    if !status.success() {
        fail(&format!("`{}` failed: {status}", show(cmd)));
    }
}

/// Runs `cmd` quietly and returns its stdout, or `None` if it cannot run or fails.
pub fn capture(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(std::process::Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn is_root() -> bool {
    capture(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}

fn require_root(why: &str) {
    if !is_root() {
        fail(&format!("this must run as root: {why}.\nRun it as root, e.g. `sudo -E env PATH=\"$PATH\" cargo xtask test`."));
    }
}
