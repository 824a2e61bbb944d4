//! `cargo xtask setup`: installs what the tests need on Debian 12, idempotently. Each step
//! checks first and says what it found, so a second run does nothing slow.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use stevedore_testbed::{self as testbed, CRATE_TOOLS, DEBIAN_PACKAGES, PYPI_PACKAGES};

use crate::{capture, fail, is_root, run_ok};

pub fn run() {
    let started = Instant::now();
    debian();
    rustup_debweb();
    python_venv();
    zig_wheel();
    crate_tools();
    subordinate_ids();
    // Everything a test may ask for, checked now so a gap shows up here rather than mid-run.
    testbed::require_all();
    if is_root() {
        let layout = testbed::base_layout();
        say(&format!("distroless stand-in ready: {}", layout.display()));
    } else {
        say("not root: the distroless stand-in is built by the first test (tests run as root)");
    }
    say(&format!("done in {:.1} s", started.elapsed().as_secs_f64()));
}

fn say(message: &str) {
    eprintln!("setup: {message}");
}

/// `None` as root, else `sudo`; fails if neither is possible. Asked only when something must be
/// installed, so a complete machine needs neither.
fn privilege() -> Option<PathBuf> {
    if is_root() {
        return None;
    }
    let sudo = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("sudo"))
        .find(|p| p.is_file());
    match sudo {
        Some(sudo) => Some(sudo),
        None => fail("installing Debian packages needs root, and this is neither root nor has sudo; run `cargo xtask setup` as root"),
    }
}

/// `program` as root: directly, or through `sudo env` (plain `sudo VAR=…` depends on the sudoers
/// policy).
fn as_root(program: &str, env: &[(&str, &str)]) -> Command {
    match privilege() {
        None => {
            let mut cmd = Command::new(program);
            cmd.envs(env.iter().copied());
            cmd
        }
        Some(sudo) => {
            let mut cmd = Command::new(sudo);
            cmd.arg("env")
                .args(env.iter().map(|(k, v)| format!("{k}={v}")))
                .arg(program);
            cmd
        }
    }
}

fn debian() {
    let apt_env = [("DEBIAN_FRONTEND", "noninteractive")];
    let mut need_update = false;

    // base-files of each of the distroless stand-in's architectures.
    let native = capture(Command::new("dpkg").arg("--print-architecture"))
        .unwrap_or_else(|| fail("`dpkg --print-architecture` failed: is this Debian?"));
    let foreign = capture(Command::new("dpkg").arg("--print-foreign-architectures"))
        .unwrap_or_else(|| fail("`dpkg --print-foreign-architectures` failed: is this Debian?"));
    for arch in stevedore_testbed::debian_arches() {
        if arch == native.trim() {
            continue;
        }
        if foreign.lines().any(|a| a.trim() == arch) {
            say(&format!("dpkg architecture {arch} already added"));
        } else {
            run_ok(as_root("dpkg", &[]).args(["--add-architecture", arch]));
            need_update = true;
        }
        // The architecture may have been added without a later `apt-get update`. (Looking at
        // the lists directly: `apt-cache show` takes a second.)
        let listed = std::fs::read_dir("/var/lib/apt/lists")
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| {
                f.file_name()
                    .to_string_lossy()
                    .contains(&format!("_binary-{arch}_Packages"))
            });
        if !need_update && !listed {
            say(&format!("no {arch} package lists yet"));
            need_update = true;
        }
    }

    let missing = missing_packages();
    if missing.is_empty() {
        say(&format!(
            "all {} Debian packages installed",
            DEBIAN_PACKAGES.len()
        ));
    }
    if need_update || !missing.is_empty() {
        run_ok(as_root("apt-get", &apt_env).arg("update"));
    }
    if !missing.is_empty() {
        run_ok(
            as_root("apt-get", &apt_env)
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing),
        );
    }
}

fn missing_packages() -> Vec<&'static str> {
    // dpkg-query exits 1 when a package is unknown, and prints the others anyway.
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${Status}\n")
        .args(DEBIAN_PACKAGES)
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run dpkg-query: {e}")));
    let listing = String::from_utf8_lossy(&out.stdout);
    DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| {
            !listing
                .lines()
                .any(|l| l.split_once(' ') == Some((package, "install ok installed")))
        })
        .collect()
}

/// The tests build fixtures with `cargo +debweb`: Debian's rustc 1.96 with its matching std
/// sources (`rust-web-src`), which `-Zbuild-std` needs for musl targets without rustup targets.
fn rustup_debweb() {
    let Some(toolchains) = capture(Command::new("rustup").args(["toolchain", "list"])) else {
        say("rustup not found: the tests need it (https://rustup.rs); skipping `rustup toolchain link`");
        return;
    };
    if toolchains
        .lines()
        .any(|l| l.split_whitespace().next() == Some("debweb"))
    {
        say("rustup toolchain debweb already linked");
    } else {
        run_ok(Command::new("rustup").args(["toolchain", "link", "debweb", "/usr"]));
    }
}

/// Readers written elsewhere (`rust-audit-info`), from crates.io with their own lock files,
/// into the test bed's own `cargo install --root`, never the user's ~/.cargo/bin.
fn crate_tools() {
    let root = testbed::crate_tools_dir();
    let record = std::fs::read_to_string(root.join(".crates.toml")).unwrap_or_default();
    for (name, version, bin) in CRATE_TOOLS {
        if record.contains(&format!("\"{name} {version} ")) && root.join("bin").join(bin).is_file()
        {
            say(&format!("{name} {version} already in {}", root.display()));
            continue;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run_ok(
            Command::new(cargo)
                .args(["install", "--locked", "--version", version, "--root"])
                .arg(&root)
                .arg(name),
        );
    }
}

/// zig (PyPI `ziglang`: bookworm has no zig package) and the SPDX validator come from PyPI,
/// pinned, in a venv of Debian's python3 so no other Python on PATH (pyenv, conda) changes what
/// gets installed.
fn python_venv() {
    let venv = testbed::venv_dir();
    let python = venv.join("bin/python3");
    let wanted: Vec<String> = PYPI_PACKAGES
        .iter()
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    let check = format!(
        "import importlib.metadata as m; print(' '.join(n + '==' + m.version(n) for n in {:?}))",
        PYPI_PACKAGES.iter().map(|(n, _)| *n).collect::<Vec<_>>()
    );
    let installed = capture(Command::new(&python).args(["-c", &check]));
    if installed.as_deref().map(str::trim) == Some(wanted.join(" ").as_str()) {
        say(&format!(
            "{} already in {}",
            wanted.join(", "),
            venv.display()
        ));
        return;
    }
    if !python.is_file() {
        run_ok(
            Command::new("/usr/bin/python3")
                .arg("-m")
                .arg("venv")
                .arg(&venv),
        );
    }
    run_ok(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(&wanted),
    );
}

/// PyPI's `ziglang` wheel for this host, which the tests' mirror serves to stevedore as its
/// pinned zig (`STEVEDORE_ZIG_MIRROR`), so no test reaches PyPI: downloaded by the venv's pip
/// (stevedore checks its sha256 against its own table when it fetches it).
fn zig_wheel() {
    let dir = testbed::zig_mirror_dir();
    let prefix = format!("ziglang-{}-", testbed::ZIGLANG_VERSION);
    let present = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(&prefix) && name.ends_with(".whl")
        });
    if present {
        say(&format!("the zig wheel is already in {}", dir.display()));
        return;
    }
    run_ok(
        Command::new(testbed::venv_dir().join("bin/python3"))
            .args([
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--no-input",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
            ])
            .arg(&dir)
            .arg(format!("ziglang=={}", testbed::ZIGLANG_VERSION)),
    );
}

/// The subordinate uid and gid range the rootless tests' user (uid 65534, `nobody`) needs for
/// rootless podman to store an image whose files belong to another uid (distroless's 65532):
/// without one, podman maps the user alone and fails to load it. A rootless laptop's user
/// has one (useradd gives it); Debian's `nobody` does not.
const ROOTLESS_USER: &str = "nobody";
const ROOTLESS_SUBIDS: &str = "200000-265535";

fn subordinate_ids() {
    let has_range = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let owner = l.split(':').next().unwrap_or_default();
                owner == ROOTLESS_USER || owner == testbed::ROOTLESS_ID.to_string()
            })
    };
    let missing: Vec<&str> = [
        ("/etc/subuid", "--add-subuids"),
        ("/etc/subgid", "--add-subgids"),
    ]
    .into_iter()
    .filter(|(file, _)| !has_range(file))
    .flat_map(|(_, flag)| [flag, ROOTLESS_SUBIDS])
    .collect();
    if missing.is_empty() {
        say(&format!("{ROOTLESS_USER} has subordinate uids and gids"));
        return;
    }
    run_ok(as_root("usermod", &[]).args(&missing).arg(ROOTLESS_USER));
    say(&format!(
        "gave {ROOTLESS_USER} subordinate uids and gids {ROOTLESS_SUBIDS}"
    ));
}
