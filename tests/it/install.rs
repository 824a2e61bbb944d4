//! The README's install lines, as a user runs them, and the crates as crates.io would get them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The target dir these tests were built in: `cargo install` finds cargo-stevedore's
/// dependencies there already compiled instead of compiling all of them again.
fn this_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("TARGET/PROFILE/deps/it-HASH")
        .to_path_buf()
}

/// `cargo install --locked` of this repository (`--path`), then the installed
/// command's version, as `cargo stevedore` runs it.
fn install_and_run(source: &[&str]) -> String {
    let root = tempfile::tempdir().unwrap();
    run_ok(
        cargo()
            .args(["install", "--locked", "--debug", "--quiet", "--root"])
            .arg(root.path())
            .args(source)
            .env("CARGO_TARGET_DIR", this_target_dir())
            .current_dir(root.path()),
    );
    let installed = root.path().join("bin/cargo-stevedore");
    assert!(installed.is_file(), "{} missing", installed.display());
    let out = run_ok(Command::new(&installed).args(["stevedore", "--version"]));
    text(&out.stdout)
}

#[test]
fn cargo_install_from_a_clone_gives_a_working_command() {
    let want = format!("cargo-stevedore {}\n", env!("CARGO_PKG_VERSION"));
    let path = repository().to_str().expect("UTF-8 checkout path");
    assert_eq!(install_and_run(&["--path", path]), want);
    // `--git URL` is the same build from a checkout cargo makes; it is not run here because
    // cargo moves (not copies) a git build's binary out of the target dir, the one the other
    // tests run `cargo-stevedore` from.
}

/// What `cargo package` would upload for each crate: its sources, README and both license
/// texts the manifest's `MIT OR Apache-2.0` names, and nothing of the repository besides.
#[test]
fn the_crates_package_with_their_readme_and_licenses_and_nothing_else() {
    for (package, dir) in [
        ("stevedore-oci", "crates/oci"),
        ("stevedore", "crates/stevedore"),
        ("cargo-stevedore", "."),
    ] {
        let out = run_ok(
            cargo()
                .args([
                    "package",
                    "--list",
                    "--allow-dirty",
                    "--offline",
                    "-p",
                    package,
                ])
                .current_dir(repository()),
        );
        let files: BTreeSet<String> = text(&out.stdout).lines().map(str::to_owned).collect();
        for wanted in [
            "Cargo.toml",
            "README.md",
            "LICENSE-MIT",
            "LICENSE-APACHE",
            "src/lib.rs",
        ] {
            let wanted = match (wanted, package) {
                ("src/lib.rs", "cargo-stevedore") => "src/main.rs",
                (file, _) => file,
            };
            assert!(
                files.contains(wanted),
                "{package} lacks {wanted}: {files:?}"
            );
        }
        let stray: Vec<_> = files
            .iter()
            .filter(|f| !(f.starts_with("src/") || f.starts_with("examples/")))
            .filter(|f| !f.starts_with("Cargo.") && !f.starts_with("LICENSE-"))
            .filter(|f| {
                !["README.md", "CHANGELOG.md", ".cargo_vcs_info.json"].contains(&f.as_str())
            })
            .collect();
        assert!(stray.is_empty(), "{package} would ship {stray:?}");
        let license = std::fs::read_to_string(repository().join(dir).join("LICENSE-APACHE"));
        assert!(
            license.unwrap().contains("Apache License"),
            "{dir}/LICENSE-APACHE"
        );
    }
    // Each manifest is publishable: versions on the path dependencies, the metadata crates.io
    // requires. (Compiling the packaged crates is what `cargo install` above shows.)
    let target = tempfile::tempdir().unwrap();
    run_ok(
        cargo()
            .args([
                "package",
                "--no-verify",
                "--allow-dirty",
                "--offline",
                "--locked",
            ])
            .args([
                "-p",
                "stevedore-oci",
                "-p",
                "stevedore",
                "-p",
                "cargo-stevedore",
            ])
            .env("CARGO_TARGET_DIR", target.path())
            .current_dir(repository()),
    );
}
