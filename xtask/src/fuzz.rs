//! `cargo xtask fuzz [SECONDS]`: builds the cargo-fuzz targets in `fuzz/` and runs each for
//! SECONDS, failing with the target and the crash file when one finds a crash.
//!
//! It needs a nightly toolchain, cargo-fuzz and a C++ compiler (libFuzzer is C++); whichever is
//! missing is installed first, so a fresh clone needs nothing else. CI calls [`run`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{capture, fail, is_root, project_root, run_ok, show};

pub const DEFAULT_SECONDS: u64 = 20;
const TOOLCHAIN: &str = "nightly";
/// The flags every build and run passes, identical so `cargo fuzz run` reuses the build.
/// No sanitizer: the parsers are safe Rust, where AddressSanitizer finds nothing and halves the
/// speed; debug assertions add overflow checks, which can.
const BUILD_FLAGS: [&str; 3] = ["--sanitizer=none", "--debug-assertions", "--fuzz-dir=fuzz"];
/// A parser that spends this long on one input (a few KiB) is stuck.
const INPUT_TIMEOUT_SECONDS: u64 = 10;

/// `cargo xtask fuzz [SECONDS]`.
pub fn main(args: &[String]) -> std::process::ExitCode {
    let seconds = match args {
        [] => DEFAULT_SECONDS,
        [n] => n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| fail(&format!("`{n}` is not a number of seconds (e.g. 20)"))),
        _ => fail("usage: cargo xtask fuzz [SECONDS]"),
    };
    match run(seconds) {
        true => std::process::ExitCode::SUCCESS,
        false => std::process::ExitCode::FAILURE,
    }
}

/// Installs what is missing, builds every target, runs each for `seconds`; false when a target
/// crashed or could not run (each is named on stderr with its crash file).
pub fn run(seconds: u64) -> bool {
    let started = Instant::now();
    let root = project_root();
    prerequisites();
    run_ok(&mut cargo_fuzz_build(&root, "build"));
    let targets = targets(&root);
    // One libFuzzer process per core at a time: each is single-threaded.
    let jobs = std::thread::available_parallelism().map_or(1, usize::from);
    let failures: Vec<String> = targets
        .chunks(jobs)
        .flat_map(|batch| {
            std::thread::scope(|scope| {
                let running: Vec<_> = batch
                    .iter()
                    .map(|target| scope.spawn(|| run_target(&root, target, seconds)))
                    .collect();
                running
                    .into_iter()
                    .filter_map(|run| run.join().expect("a fuzz run's thread panicked").err())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    if failures.is_empty() {
        say(&format!(
            "{} targets, {seconds} s each, {jobs} at a time, no crash ({elapsed:.0} s in all)",
            targets.len()
        ));
        return true;
    }
    for failure in &failures {
        eprintln!("xtask: error: fuzz: {failure}");
    }
    false
}

fn say(message: &str) {
    eprintln!("fuzz: {message}");
}

/// `cargo fuzz ARGS` on the nightly toolchain, from the repository root: rustup's cargo (not
/// the stable one running xtask, nor Debian's) so the toolchain override applies.
fn cargo_fuzz(root: &Path, args: &[&str]) -> Command {
    let rustup_cargo = cargo_home().join("bin/cargo");
    let program = match rustup_cargo.is_file() {
        true => rustup_cargo,
        false => PathBuf::from("cargo"),
    };
    let mut cmd = Command::new(program);
    cmd.arg("fuzz")
        .args(args)
        .current_dir(root)
        .env("RUSTUP_TOOLCHAIN", TOOLCHAIN)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO_TARGET_DIR");
    // What `cargo run` set for xtask itself. Build scripts (ring's) track some of these, so
    // leaving them would make every build from xtask differ from one by hand, and rebuild.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let from_cargo_run = ["CARGO_PKG_", "CARGO_MANIFEST_"]
            .iter()
            .any(|p| name.starts_with(p))
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&&*name);
        if from_cargo_run {
            cmd.env_remove(&*name);
        }
    }
    cmd
}

/// `cargo fuzz build|run` with the shared flags, into a target directory of its own: nightly,
/// instrumented builds share nothing with the workspace's.
fn cargo_fuzz_build(root: &Path, subcommand: &str) -> Command {
    let mut cmd = cargo_fuzz(root, &[subcommand]);
    cmd.args(BUILD_FLAGS)
        .arg("--target-dir")
        .arg(fuzz_target_dir(root));
    cmd
}

/// `$CARGO_TARGET_DIR/fuzz` when a target dir is set (CI keeps one between runs, so the cold
/// instrumented build of every dependency happens once per machine), else `fuzz/target`.
fn fuzz_target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => root.join(dir).join("fuzz"),
        None => root.join("fuzz/target"),
    }
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| fail("neither CARGO_HOME nor HOME is set: cannot find rustup's cargo"))
}

/// The nightly toolchain, cargo-fuzz and a C++ compiler, each installed when missing.
fn prerequisites() {
    let toolchains = capture(Command::new("rustup").args(["toolchain", "list"]))
        .unwrap_or_else(|| fail("`rustup toolchain list` failed: fuzzing needs rustup"));
    if !toolchains.lines().any(|l| l.starts_with("nightly-")) {
        run_ok(Command::new("rustup").args([
            "toolchain",
            "install",
            TOOLCHAIN,
            "--profile=minimal",
        ]));
    }
    let root = project_root();
    if capture(&mut cargo_fuzz(&root, &["--version"])).is_none() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run_ok(Command::new(cargo).args(["install", "cargo-fuzz", "--locked"]));
    }
    if capture(Command::new("c++").arg("--version")).is_none() {
        install_cxx();
    }
}

/// libfuzzer-sys compiles libFuzzer's C++ sources with `c++`.
fn install_cxx() {
    if !is_root() {
        fail("fuzzing needs a C++ compiler (`c++`) to build libFuzzer: install g++ (apt-get install g++), or run this as root to have it installed");
    }
    run_ok(Command::new("apt-get").arg("update"));
    run_ok(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "g++"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
}

/// The targets `fuzz/Cargo.toml` declares, so a new target is run without editing this file.
fn targets(root: &Path) -> Vec<String> {
    let mut cmd = cargo_fuzz(root, &["list", "--fuzz-dir=fuzz"]);
    let listed = capture(&mut cmd).unwrap_or_else(|| fail(&format!("`{}` failed", show(&cmd))));
    let targets: Vec<String> = listed.split_whitespace().map(str::to_owned).collect();
    if targets.is_empty() {
        fail(&format!("`{}` lists no fuzz targets", show(&cmd)));
    }
    targets
}

/// Runs one target for `seconds` on its growing corpus (`fuzz/corpus/TARGET`, not committed)
/// and its committed seeds; its output goes to a log, shown only when it fails.
fn run_target(root: &Path, target: &str, seconds: u64) -> Result<(), String> {
    let corpus = root.join("fuzz/corpus").join(target);
    let artifacts = root.join("fuzz/artifacts").join(target);
    let log_dir = fuzz_target_dir(root);
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| format!("{target}: {}: {e}", log_dir.display()))?;
    let log_path = log_dir.join(format!("{target}.log"));
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{target}: {}: {e}", dir.display()))?;
    }
    let before = files(&artifacts);
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("{target}: {}: {e}", log_path.display()))?;
    let mut cmd = cargo_fuzz_build(root, "run");
    cmd.arg(target)
        .arg(&corpus)
        .arg(root.join("fuzz/seeds").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    say(&format!(
        "{target}: {seconds} s (log: {})",
        log_path.display()
    ));
    let status = cmd
        .status()
        .map_err(|e| format!("{target}: cannot run `{}`: {e}", show(&cmd)))?;
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if status.success() {
        say(&format!("{target}: {}", summary(&log_text)));
        return Ok(());
    }
    eprintln!("{}", what_happened(&log_text));
    let crashes: Vec<PathBuf> = files(&artifacts)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    Err(match crashes.as_slice() {
        [] => format!("{target}: `{}` failed ({status}) without a crash file; see {}", show(&cmd), log_path.display()),
        found => format!(
            "{target} crashed: {}\n  reproduce: cargo +{TOOLCHAIN} fuzz run {} {target} {}\n  then make it a unit test beside the parser and fix the parser",
            found.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "),
            BUILD_FLAGS.join(" "),
            found[0].display()
        ),
    })
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// libFuzzer's last line, `Done N runs in S second(s)`.
fn summary(log: &str) -> &str {
    log.lines()
        .rev()
        .find(|l| l.starts_with("Done "))
        .unwrap_or("finished")
}

/// The part of a failed run's log that says what went wrong: the panic message (or libFuzzer's
/// error: a timeout, out of memory) and the start of its backtrace, else the log's end.
fn what_happened(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("panicked at") || l.contains("ERROR: libFuzzer"))
        .unwrap_or(lines.len().saturating_sub(40));
    lines[start..]
        .iter()
        .take(40)
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}
