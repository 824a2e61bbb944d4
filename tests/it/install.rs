//! The README's install lines, as a user runs them, and the crates as crates.io would get them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;
use stevedore_testbed as testbed;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// A target dir for `cargo install` inside the one these tests were built in, so a CI cache
/// that keeps the one keeps the other. Not that one itself: `cargo install` builds without the
/// dev-dependencies' features, so it would relink `debug/cargo-stevedore` while other tests run
/// it (they failed with "No such file or directory" in the moment between unlink and link).
fn install_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("TARGET/PROFILE/deps/it-HASH")
        .join("cargo-install")
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
            .env("CARGO_TARGET_DIR", install_target_dir())
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
/// texts the manifest's `MIT OR Apache-2.0` names, and nothing of the repository besides; and
/// `cargo publish --dry-run` of the workspace passes.
#[test]
fn the_crates_package_their_readme_and_licenses_only_and_publish_dry_run_passes() {
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
    // Each crate publishes: `cargo publish --dry-run` of the workspace packages them in order
    // (each against the others as packaged), asks crates.io's index for their dependencies,
    // and compiles each packaged crate on its own, as crates.io's users will; only the upload
    // is left out. In the install test's target dir, whose dependencies are compiled already.
    forget_packaged_workspace_crates();
    run_ok(
        cargo()
            .args([
                "publish",
                "--dry-run",
                "--workspace",
                "--locked",
                "--allow-dirty",
            ])
            .env("CARGO_TARGET_DIR", install_target_dir())
            .current_dir(repository()),
    );
}

/// Deletes cargo's unpacked copies of this workspace's crates as a `publish --dry-run`
/// packaged them. cargo unpacks each packaged crate under `$CARGO_HOME/registry/src/-HASH/`
/// (the local registry it verifies against) and, the version being the same, reuses that copy
/// in the next run instead of the new package: a crate would then be verified against its
/// workspace neighbours as they were, and fail on their newer API.
fn forget_packaged_workspace_crates() {
    let home = user_dir("CARGO_HOME", ".cargo");
    let version = env!("CARGO_PKG_VERSION");
    for registry in std::fs::read_dir(home.join("registry/src"))
        .into_iter()
        .flatten()
        .flatten()
    {
        // Only local registries' copies: crates.io's directory is named after its host.
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for package in ["stevedore-oci", "stevedore", "cargo-stevedore"] {
            let unpacked = registry.path().join(format!("{package}-{version}"));
            if unpacked.exists() {
                std::fs::remove_dir_all(&unpacked)
                    .unwrap_or_else(|e| panic!("cannot remove {}: {e}", unpacked.display()));
            }
        }
    }
}

/// `completions bash` is a script bash loads, whose function completes a subcommand; `man`
/// renders with groff, and `man --dir` writes a page per command, flags included.
#[test]
fn completions_load_in_bash_and_the_manual_pages_render() {
    let exe = env!("CARGO_BIN_EXE_cargo-stevedore");
    let script = run_ok(Command::new(exe).args(["completions", "bash"])).stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cargo-stevedore.bash");
    std::fs::write(&file, script).unwrap();
    // The function `complete` registered, asked for `cargo-stevedore reb<TAB>`.
    let ask = format!(
        "source {} && f=$(complete -p cargo-stevedore | sed 's/.*-F \\([^ ]*\\) .*/\\1/') && \
         COMP_WORDS=(cargo-stevedore reb) COMP_CWORD=1 COMP_LINE='cargo-stevedore reb' \
         COMP_POINT=19 && $f cargo-stevedore reb cargo-stevedore && echo \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let bash = testbed::require_tool("bash");
    let offered = text(&run_ok(Command::new(bash).args(["-c", &ask])).stdout);
    assert_eq!(offered.trim(), "rebase", "completing `reb`");

    let groff = testbed::require_tool("groff");
    // -k: the help texts are UTF-8, which man-db feeds through preconv as -k does.
    let render = |page: &Path| {
        let out = run_ok(
            Command::new(&groff)
                .args(["-k", "-man", "-Tutf8", "-ww"])
                .arg(page),
        );
        assert!(out.stderr.is_empty(), "groff warned: {}", text(&out.stderr));
        // groff -Tutf8 into a pipe overstrikes (`c BACKSPACE c`); a reader sees the last.
        let mut plain = String::new();
        for c in text(&out.stdout).chars() {
            match c {
                '\u{8}' => drop(plain.pop()),
                c => plain.push(c),
            }
        }
        plain
    };
    let main = dir.path().join("main.1");
    std::fs::write(&main, run_ok(Command::new(exe).arg("man")).stdout).unwrap();
    let page = render(&main);
    assert!(
        page.contains("rebase") && page.contains("outdated"),
        "{page}"
    );
    let pages = dir.path().join("man1");
    run_ok(Command::new(exe).arg("man").arg("--dir").arg(&pages));
    let build = render(&pages.join("cargo-stevedore-build.1"));
    assert!(
        build.contains("--tags") && build.contains("--push"),
        "{build}"
    );
    assert!(pages.join("cargo-stevedore-index-create.1").is_file());
}
