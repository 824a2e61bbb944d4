//! The repository tasks that use the stevedore library: `cargo xtask image` and `cargo xtask
//! bench` run this (through `cargo run -p xtask-library`), so `cargo xtask tidy`, `setup` and
//! `fuzz` compile none of the library.

mod bench;
mod dist;
mod image;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use stevedore_testbed::shell_line as show;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("image") => image::run(&args[1..]),
        Some("dist") => dist::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        // The bench runs these as children, so their time and memory are theirs alone.
        Some("bench-package") => {
            bench::package_child(&args[1..]);
            ExitCode::SUCCESS
        }
        Some("bench-limit") => {
            bench::limit_child(&args[1..]);
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "xtask-library: error: unknown task {}: run `cargo xtask help`",
                args.join(" ")
            );
            ExitCode::from(2)
        }
    }
}

/// The workspace root.
pub fn project_root() -> PathBuf {
    stevedore_testbed::workspace_root()
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
