//! `cargo xtask image`: builds `examples/hello-service` with the stevedore library, as a
//! project's own xtask would, and pushes it or writes it to `target/image/hello-service`.
//! Platforms and tags come from the example's `[package.metadata.stevedore]`; the repository
//! is `$STEVEDORE_REPO/hello-service`.

use std::process::ExitCode;

use stevedore::{Build, Output};

use crate::project_root;

pub const USAGE: &str = "cargo xtask image [--push] [--base REF] [--toolchain NAME] [--target-dir DIR] [--registry-ca FILE]";

pub fn run(args: &[String]) -> ExitCode {
    match build(args) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn build(args: &[String]) -> Result<Vec<String>, String> {
    let root = project_root();
    let mut build = Build::from_manifest(root.join("examples/hello-service/Cargo.toml"))
        .map_err(|e| e.report())?;
    let mut push = false;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("xtask: {flag} needs a value\nusage: {USAGE}"))
        };
        build = match flag.as_str() {
            "--push" => {
                push = true;
                build
            }
            "--base" => build.base(&value()?).map_err(|e| e.report())?,
            "--toolchain" => build.toolchain(value()?),
            "--target-dir" => build.target_dir(value()?),
            "--registry-ca" => build.registry_ca(value()?),
            other => return Err(format!("xtask: unknown argument {other}\nusage: {USAGE}")),
        };
    }
    if push {
        let pushed = build.push().map_err(|e| e.report())?;
        return Ok(pushed.iter().map(ToString::to_string).collect());
    }
    let dir = root.join("target").join("image").join("hello-service");
    let outcome = build
        .output(Output::OciLayout(dir.clone()))
        .run()
        .map_err(|e| e.report())?;
    Ok(vec![format!(
        "oci-layout={}@{}",
        dir.display(),
        outcome.digest()
    )])
}
