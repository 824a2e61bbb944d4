//! The zig that compiles musl's C runtime and links: one version per stevedore release, fetched
//! once into the tools dir and checked against its pinned sha256, because the image's bytes
//! depend on it (`TOOLS/zig/ziglang-VERSION-HASH/zig`).
//!
//! Which zig a build uses, in order: `STEVEDORE_ZIG` (any zig, said so in the log: the digest
//! then depends on it); else the pinned one, from the tools dir, or fetched into it (not with
//! `--offline`). A zig on PATH is never picked by itself; `STEVEDORE_ZIG=zig` picks it.
//!
//! The fetch: PyPI's `ziglang` wheel for the host (a zip holding `ziglang/zig` beside its lib
//! dir), from files.pythonhosted.org or `$STEVEDORE_ZIG_MIRROR/FILE`, streamed to a temp file
//! while hashed, at most its known size, with connect and read timeouts and no retry; nothing of
//! it is read before its sha256 matches. The `ziglang/` tree is unpacked into a temp dir beside
//! the final one, which is renamed into place: a run that dies leaves only the temp dir, which
//! the next run removes. The directory `TOOLS/zig` is flock'ed meanwhile, so a second run waits
//! and then finds the tree.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use std::process::Command;

use super::remap::Remaps;
use super::target_lock::{exclusive, Wait};
use super::{content_name, set_mode, shell_quote, write_executable};
use super::{target_var, CompileError};

/// The zig version this stevedore release pins.
pub(crate) const VERSION: &str = "0.17.1";

/// Where PyPI serves the wheels: `PYPI/PATH/FILE`.
const PYPI: &str = "https://files.pythonhosted.org/packages";

/// One host's `ziglang` wheel on PyPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wheel {
    /// `std::env::consts::OS` of the hosts it runs on.
    os: &'static str,
    /// `std::env::consts::ARCH` of the hosts it runs on.
    arch: &'static str,
    /// The directories between [`PYPI`] and the file name.
    path: &'static str,
    /// The file name, as on PyPI and on a mirror.
    file: &'static str,
    /// Its sha256, hex.
    sha256: &'static str,
    /// Its size in bytes: the download stops past it.
    size: u64,
}

/// The wheels of [`VERSION`]. To move to another version, take each host's file name, URL,
/// sha256 and size from PyPI's simple API:
/// `curl -sS https://pypi.org/simple/ziglang/ -H 'Accept: application/vnd.pypi.simple.v1+json'`
/// (`files[].filename`, `.url`, `.hashes.sha256`, `.size`), change `VERSION`, and say so in the
/// CHANGELOG: every image with C code or cross-linked changes with it.
const WHEELS: [Wheel; 5] = [
    Wheel {
        os: "linux",
        arch: "x86_64",
        path: "59/e3/2a34676370a11c36b7cd04ffb2439c1089c0530cf4b01408c77cf7f8d9c3",
        file: "ziglang-0.17.1-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl",
        sha256: "ea6cc5d87b033cf0aedfbc8f9549a908cae6c50ac31f1698188fa48a74524b54",
        size: 101_083_562,
    },
    Wheel {
        os: "linux",
        arch: "aarch64",
        path: "91/72/bb7c4f098ba3e535fa2ebefd9f26327ba63fb0672562959255cb5dd37aff",
        file: "ziglang-0.17.1-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
        sha256: "b7c5f02fccd40f89b999ee16a1f5ddced56e6182370f8affe494bcf8a28cf07e",
        size: 98_063_064,
    },
    Wheel {
        os: "macos",
        arch: "x86_64",
        path: "17/f6/f4dfc8cf0e510980fda251a8edf99823b9446f5d7a2a6a24801e55e09c28",
        file: "ziglang-0.17.1-py3-none-macosx_13_0_x86_64.whl",
        sha256: "4e0b4b9c02b8d0d220e9948010f860b62ff11d96abb39762eca5fa2ef3f7bc97",
        size: 104_485_232,
    },
    Wheel {
        os: "macos",
        arch: "aarch64",
        path: "ea/e1/4a9a97324fcf2d292c14a2e0121ea0df86c01d0c307ea24fa35aebaccd15",
        file: "ziglang-0.17.1-py3-none-macosx_13_0_arm64.whl",
        sha256: "09953b6af7f64168b915180a42774f520f92d86ef6331b28e33915c7e1f0bb23",
        size: 100_390_379,
    },
    Wheel {
        os: "windows",
        arch: "x86_64",
        path: "c8/6c/2013114fa780f0cf490cdc98bdd5bf7dce706a5dbd86e50ec4132cf7d4b1",
        file: "ziglang-0.17.1-py3-none-win_amd64.whl",
        sha256: "69c3dfc3aff6a297ec4017aa904782c0e450eb988982d7f675d83edce27526fb",
        size: 101_924_940,
    },
];

/// The pinned wheel for a host (`std::env::consts::OS`, `ARCH`).
pub(crate) fn wheel_for(os: &str, arch: &str) -> Option<&'static Wheel> {
    WHEELS.iter().find(|w| w.os == os && w.arch == arch)
}

impl Wheel {
    /// Where it is fetched from: `mirror/FILE`, else PyPI.
    fn url(&self, mirror: Option<&str>) -> String {
        match mirror {
            Some(base) => format!("{}/{}", base.trim_end_matches('/'), self.file),
            None => format!("{PYPI}/{}/{}", self.path, self.file),
        }
    }

    /// The directory its `ziglang/` tree is unpacked to, named by version and digest, so a
    /// table with another wheel never takes this one's tree.
    fn dir(&self, tools: &Path) -> PathBuf {
        tools
            .join("zig")
            .join(format!("ziglang-{VERSION}-{}", &self.sha256[..16]))
    }

    fn exe(&self) -> &'static str {
        match self.os {
            "windows" => "zig.exe",
            _ => "zig",
        }
    }
}

/// Which zig linked a build, for its provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Zig {
    /// stevedore's pinned zig: its version and the sha256 (hex) of the wheel it came from.
    Pinned {
        version: &'static str,
        wheel_sha256: &'static str,
    },
    /// The one `STEVEDORE_ZIG` names, with what its `zig version` said, if anything.
    Chosen { version: Option<String> },
}

/// The zig a build links with, as the wrappers run it, and which it is; `needed` is the
/// target being linked and why it needs zig.
pub(crate) fn find(
    tools: &Path,
    offline: bool,
    needed: (&str, &'static str),
) -> Result<(String, Zig), CompileError> {
    if let Some((zig, version)) = chosen() {
        tracing::warn!(
            "using the zig {} names ({zig}, {}), not stevedore's pinned zig {VERSION}: \
             the image's digest depends on this zig",
            crate::env::ZIG,
            version.as_deref().unwrap_or("of unknown version")
        );
        return Ok((zig, Zig::Chosen { version }));
    }
    let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
    let wheel = wheel_for(os, arch).ok_or_else(|| CompileError::NoZig {
        target: needed.0.to_owned(),
        why: needed.1,
        host: format!("{os}-{arch}"),
    })?;
    let dir = wheel.dir(tools);
    let exe = dir.join(wheel.exe());
    if !exe.is_file() {
        if offline {
            return Err(CompileError::ZigOffline {
                version: VERSION,
                dir,
            });
        }
        let mirror = crate::toolchain::files::env_path(crate::env::ZIG_MIRROR);
        let mirror = mirror.as_deref().map(|m| m.to_string_lossy().into_owned());
        fetch(wheel, &wheel.url(mirror.as_deref()), &dir)?;
    }
    let pinned = Zig::Pinned {
        version: VERSION,
        wheel_sha256: wheel.sha256,
    };
    Ok((exe.to_string_lossy().into_owned(), pinned))
}

/// The zig `STEVEDORE_ZIG` names, if it names one, and what its `zig version` says.
fn chosen() -> Option<(String, Option<String>)> {
    let zig = std::env::var_os(crate::env::ZIG).filter(|p| !p.is_empty())?;
    let zig = zig.to_string_lossy().into_owned();
    let version = crate::toolchain::on_path(&zig)
        .and_then(|exe| crate::toolchain::ask_executable(&exe, &["version"], |_| true).ok())
        .map(|v| v.trim().to_owned());
    Some((zig, version))
}

/// The zig a build links with when it needs one, found without fetching it: what
/// `stevedore.lock` records. `None` is stevedore's pinned zig.
pub(crate) fn chosen_version() -> Option<Option<String>> {
    chosen().map(|(_, version)| version)
}

/// The sha256 (hex) of the pinned zig's wheel for every host stevedore pins one for, by
/// `OS-ARCH`: the same on every host, so a lock written on one is checked on another.
pub(crate) fn pinned_wheels() -> std::collections::BTreeMap<String, String> {
    WHEELS
        .iter()
        .map(|w| (format!("{}-{}", w.os, w.arch), w.sha256.to_owned()))
        .collect()
}

/// Fetches and unpacks `wheel` from `url` into `dir`, unless another run did meanwhile.
fn fetch(wheel: &Wheel, url: &str, dir: &Path) -> Result<(), CompileError> {
    let parent = dir.parent().expect("TOOLS/zig/NAME");
    let unpack = |source| CompileError::ZigUnpack {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(parent).map_err(unpack)?;
    let _lock = lock(parent).map_err(unpack)?;
    if dir.join(wheel.exe()).is_file() {
        return Ok(());
    }
    // Whatever else is here now was left by a run that died: a live one would hold the lock.
    for entry in std::fs::read_dir(parent).map_err(unpack)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".partial-") {
            let path = entry.path();
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
    let shown = crate::registry::redact(url);
    tracing::info!(
        "fetching stevedore's pinned zig {VERSION} ({}, {} MB) from {shown}",
        wheel.file,
        wheel.size / 1_000_000
    );
    let mut file = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(parent)
        .map_err(unpack)?;
    let actual =
        download(url, wheel.size, file.as_file_mut()).map_err(|source| CompileError::ZigFetch {
            version: VERSION,
            url: shown.clone(),
            file: wheel.file,
            source,
        })?;
    if actual != wheel.sha256 {
        return Err(CompileError::ZigDigest {
            url: shown,
            expected: format!("sha256:{}", wheel.sha256),
            actual: format!("sha256:{actual}"),
        });
    }
    let partial = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(parent)
        .map_err(unpack)?;
    let wheel_file = file.as_file_mut();
    wheel_file.rewind().map_err(unpack)?;
    extract(wheel_file, partial.path(), wheel.exe()).map_err(unpack)?;
    std::fs::rename(partial.path(), dir).map_err(unpack)?;
    // Renamed: nothing left to remove.
    let _ = partial.keep();
    tracing::info!("zig {VERSION} is ready in {}", dir.display());
    Ok(())
}

/// Streams `url` into `into`, hashing; at most `size` bytes. Returns the sha256, hex.
fn download(url: &str, size: u64, into: &mut File) -> std::io::Result<String> {
    let idle = crate::toolchain::files::env_path(crate::env::TIMEOUT)
        .and_then(|s| s.to_str()?.parse().ok())
        .map_or(Duration::from_secs(30), Duration::from_secs);
    let http = |e: reqwest::Error| std::io::Error::other(e.without_url());
    // reqwest's blocking timeout bounds the response head and then each read of the body on
    // its own: a stall ends the download, a slow one does not.
    let client = reqwest::blocking::Client::builder()
        .user_agent(format!("stevedore/{}", env!("CARGO_PKG_VERSION")))
        .connect_timeout(idle.min(Duration::from_secs(15)))
        .timeout(idle)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(http)?;
    let mut response = client
        .get(url)
        .send()
        .and_then(reqwest::blocking::Response::error_for_status)
        .map_err(http)?;
    let too_large = || std::io::Error::other(format!("the server sends more than {size} bytes"));
    if response.content_length().is_some_and(|len| len > size) {
        return Err(too_large());
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = response.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > size {
            return Err(too_large());
        }
        hasher.update(&buf[..n]);
        into.write_all(&buf[..n])?;
    }
    into.flush()?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Unpacks the wheel's `ziglang/` tree into `to`, keeping each file's unix mode and making
/// `exe` executable whatever the wheel says.
fn extract(wheel: &mut File, to: &Path, exe: &str) -> std::io::Result<()> {
    let mut archive = zip::ZipArchive::new(wheel).map_err(std::io::Error::other)?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(std::io::Error::other)?;
        // A name that would leave the tree (`..`, absolute) has none.
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let Ok(rel) = name.strip_prefix("ziglang") else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let path = to.join(rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&path)?;
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = File::create(&path)?;
        std::io::copy(&mut entry, &mut out)?;
        let mode = match (rel == Path::new(exe), entry.unix_mode()) {
            (true, _) => 0o755,
            (false, Some(mode)) if mode & 0o111 != 0 => 0o755,
            _ => 0o644,
        };
        drop(out);
        set_mode(&path, mode)?;
    }
    if !to.join(exe).is_file() {
        return Err(std::io::Error::other(format!(
            "the wheel has no ziglang/{exe}"
        )));
    }
    Ok(())
}

pub(super) struct ZigWrappers {
    cc: PathBuf,
    ar: PathBuf,
}

/// Writes `cc` and `ar` scripts that run zig for `target` (against `glibc`, for a glibc
/// target) into `dir/TARGET-HASH/`.
pub(super) fn write_zig_wrappers(
    dir: &Path,
    target: &str,
    glibc: Option<&str>,
    zig: &str,
) -> Result<ZigWrappers, CompileError> {
    let (zig_target, refused) = zig_target(target, glibc);
    let zig_cmd = shell_quote(zig);
    // cc-rs passes the Rust triple as --target=…, which zig cannot parse; zig gets its own.
    let cc = format!(
        "#!/bin/sh\n# Written by stevedore: links and compiles C for {target} with zig.\n\
         for a do shift; case \"$a\" in --target=*{refused}) continue;; esac; set -- \"$@\" \"$a\"; done\n\
         {}exec {zig_cmd} cc -target {zig_target} \"$@\"\n",
        super::remap::c_remap_script()
    );
    let ar = format!("#!/bin/sh\n# Written by stevedore.\nexec {zig_cmd} ar \"$@\"\n");
    let dir = dir.join(content_name(target, &[&cc, &ar]));
    let wrappers = ZigWrappers {
        cc: dir.join("cc"),
        ar: dir.join("ar"),
    };
    for (path, script) in [(&wrappers.cc, cc), (&wrappers.ar, ar)] {
        write_executable(path, &script).map_err(|source| CompileError::Wrapper {
            path: path.clone(),
            source,
        })?;
    }
    Ok(wrappers)
}

/// zig's `-target` for a Rust target (musl, or glibc at the version `glibc` of the base:
/// `x86_64-linux-gnu.2.36`), with the CPU where zig's default for the architecture is older
/// than the Rust target's baseline (so C code uses what Rust code does: ARMv7 with VFPv3 and
/// Thumb-2, SSE2 on i686), as cargo-zigbuild passes them; and, as `|ARG` patterns for the
/// wrapper's `case`, what rustc passes the linker for it that zig refuses (i686's
/// `-Wl,-melf_i386`: zig's `-target` already says it).
fn zig_target(rust_target: &str, glibc: Option<&str>) -> (String, &'static str) {
    let arch = rust_target.split('-').next().unwrap_or(rust_target);
    // musl, musleabihf, gnu, gnueabihf: zig names the ABI as Rust does.
    let abi = rust_target.rsplit('-').next().unwrap_or("musl");
    let (arch, cpu, refused) = match arch {
        "armv7" => ("arm", " -mcpu=generic+v7a+vfp3-d32+thumb2-neon", ""),
        "i686" => ("x86", " -mcpu=pentium4", "|-Wl,-melf_i386"),
        "riscv64gc" => ("riscv64", "", ""),
        arch => (arch, "", ""),
    };
    let version = match (abi.starts_with("gnu"), glibc) {
        (true, Some(v)) => format!(".{v}"),
        _ => String::new(),
    };
    (format!("{arch}-linux-{abi}{version}{cpu}"), refused)
}

/// Keeps the zig linker, the base's glibc and our rustflags off build scripts and proc macros
/// when a target is the host's triple. Cargo applies `target.<host>` settings to host units too
/// unless `target-applies-to-host` (unstable) is off: they would be linked against the base's
/// glibc, which an older host cannot run, and every host unit of a target dir would be built
/// again whenever a musl build and a glibc build take turns in it.
pub(super) fn keep_host_apart(cmd: &mut Command) {
    cmd.args(["-Zhost-config", "-Ztarget-applies-to-host"])
        .args(["--config", "target-applies-to-host=false"])
        .env("RUSTC_BOOTSTRAP", "1");
}

/// Points cargo, rustc and cc-rs at the zig wrappers for `target`.
pub(super) fn link_with(cmd: &mut Command, target: &str, wrappers: &ZigWrappers, remaps: &Remaps) {
    let upper = target_var(target);
    let lower = target.replace('-', "_");
    cmd.env(format!("CARGO_TARGET_{upper}_LINKER"), &wrappers.cc);
    cmd.env(format!("CC_{lower}"), &wrappers.cc);
    cmd.env(format!("AR_{lower}"), &wrappers.ar);
    // cc-rs reads only the most specific CFLAGS, so the user's general ones are carried over.
    let mut cflags = std::env::var("CFLAGS").unwrap_or_default();
    for flag in remaps.c_flags() {
        cflags.push(' ');
        cflags.push_str(&flag);
    }
    cmd.env(format!("CFLAGS_{lower}"), cflags.trim_start());
}

/// An exclusive lock on the directory `dir`, released on drop (and by the kernel when the
/// process dies, even by SIGKILL).
fn lock(dir: &Path) -> std::io::Result<File> {
    let file = lock_file(dir)?;
    if !exclusive(&file, Wait::No)? {
        tracing::info!(
            "waiting for another stevedore run to fetch zig {VERSION} into {}",
            dir.display()
        );
        exclusive(&file, Wait::Yes)?;
    }
    Ok(file)
}

/// What stands for `dir` in [`lock`]: the directory itself, as stevedore has always locked it
/// on unix (so runs of older versions still wait for this one).
#[cfg(unix)]
fn lock_file(dir: &Path) -> std::io::Result<File> {
    File::open(dir)
}

/// What stands for `dir` in [`lock`]: std cannot open a directory on Windows, so a file in it,
/// which the leftovers' sweep in [`fetch`] (`.partial-*` only) never takes.
#[cfg(not(unix))]
fn lock_file(dir: &Path) -> std::io::Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_has_a_zig_target_and_amd64_and_arm64_keep_theirs() {
        // amd64's and arm64's wrappers (and so their digests' inputs) are as they were.
        let of = |target| {
            let (zig, refused) = zig_target(target, None);
            (zig, refused.to_owned())
        };
        assert_eq!(
            of("x86_64-unknown-linux-musl"),
            ("x86_64-linux-musl".into(), String::new())
        );
        assert_eq!(
            of("aarch64-unknown-linux-musl"),
            ("aarch64-linux-musl".into(), String::new())
        );
        let targets: Vec<String> = crate::platform::Platform::supported()
            .iter()
            .map(|p| zig_target(p.rust_target(), Some("2.36")).0)
            .collect();
        assert_eq!(
            targets[2..],
            [
                "arm-linux-musleabihf -mcpu=generic+v7a+vfp3-d32+thumb2-neon",
                "x86-linux-musl -mcpu=pentium4",
                "powerpc64le-linux-musl",
                "s390x-linux-musl",
                "riscv64-linux-musl",
            ]
        );
        assert_eq!(of("i686-unknown-linux-musl").1, "|-Wl,-melf_i386");
        // glibc targets link against the base's version.
        let gnu: Vec<String> = crate::platform::Platform::supported()
            .iter()
            .map(|p| zig_target(p.rust_target_for(crate::platform::Libc::Gnu), Some("2.36")).0)
            .collect();
        assert_eq!(
            gnu,
            [
                "x86_64-linux-gnu.2.36",
                "aarch64-linux-gnu.2.36",
                "arm-linux-gnueabihf.2.36 -mcpu=generic+v7a+vfp3-d32+thumb2-neon",
                "x86-linux-gnu.2.36 -mcpu=pentium4",
                "powerpc64le-linux-gnu.2.36",
                "s390x-linux-gnu.2.36",
                "riscv64-linux-gnu.2.36",
            ]
        );
    }

    #[test]
    fn each_supported_host_has_one_wheel_of_the_pinned_version() {
        let linux = wheel_for("linux", "x86_64").unwrap();
        assert!(linux.file.contains("manylinux") && linux.file.contains("x86_64"));
        assert!(wheel_for("linux", "aarch64")
            .unwrap()
            .file
            .contains("aarch64"));
        assert!(wheel_for("macos", "aarch64")
            .unwrap()
            .file
            .contains("arm64"));
        assert!(wheel_for("macos", "x86_64")
            .unwrap()
            .file
            .contains("macosx"));
        let windows = wheel_for("windows", "x86_64").unwrap();
        assert!(windows.file.ends_with("win_amd64.whl"));
        assert_eq!(windows.exe(), "zig.exe");
        assert_eq!(wheel_for("linux", "riscv64"), None);
        assert_eq!(wheel_for("freebsd", "x86_64"), None);
        for w in &WHEELS {
            assert!(w.file.starts_with(&format!("ziglang-{VERSION}-py3-none-")));
            assert!(w.sha256.len() == 64 && w.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(
                WHEELS
                    .iter()
                    .filter(|o| (o.os, o.arch) == (w.os, w.arch))
                    .count(),
                1
            );
        }
    }

    #[test]
    fn a_mirror_replaces_pypi_and_keeps_the_file_name() {
        let wheel = wheel_for("linux", "aarch64").unwrap();
        assert_eq!(
            wheel.url(None),
            format!("https://files.pythonhosted.org/packages/91/72/bb7c4f098ba3e535fa2ebefd9f26327ba63fb0672562959255cb5dd37aff/{}", wheel.file)
        );
        assert_eq!(
            wheel.url(Some("http://127.0.0.1:8000/zig/")),
            format!("http://127.0.0.1:8000/zig/{}", wheel.file)
        );
        assert_eq!(
            wheel.dir(Path::new("/tools")),
            Path::new("/tools/zig/ziglang-0.17.1-b7c5f02fccd40f89")
        );
    }

    #[test]
    fn urls_in_logs_and_errors_lose_credentials() {
        assert_eq!(
            crate::registry::redact("https://user:secret@mirror.example/zig/a.whl?token=x"),
            "https://mirror.example/zig/a.whl"
        );
        assert_eq!(
            crate::registry::redact("http://127.0.0.1:9/a.whl"),
            "http://127.0.0.1:9/a.whl"
        );
    }

    #[test]
    fn the_wheels_tree_is_unpacked_with_zig_executable() {
        let dir = tempfile::tempdir().unwrap();
        let wheel_path = dir.path().join("w.whl");
        {
            let mut w = zip_writer(File::create(&wheel_path).unwrap());
            w.add("ziglang/zig", b"#!/bin/sh\necho 0.17.1\n");
            w.add("ziglang/lib/std/std.zig", b"// std\n");
            w.add("ziglang-0.17.1.dist-info/RECORD", b"");
            w.add("../escape", b"no");
            w.finish();
        }
        let to = dir.path().join("out");
        std::fs::create_dir(&to).unwrap();
        extract(&mut File::open(&wheel_path).unwrap(), &to, "zig").unwrap();
        let out = std::process::Command::new(to.join("zig")).output().unwrap();
        assert_eq!(out.stdout, b"0.17.1\n");
        assert!(to.join("lib/std/std.zig").is_file());
        assert!(!to.join("RECORD").exists() && !dir.path().join("escape").exists());
        assert!(!to.join("ziglang-0.17.1.dist-info").exists());
    }

    /// A minimal zip writer (stored entries, no unix mode), as the tests need no zip writer
    /// features of the crate: the zip format's local headers, central directory and end record.
    struct ZipWriter {
        out: File,
        central: Vec<u8>,
        offset: u32,
        count: u16,
    }

    fn zip_writer(out: File) -> ZipWriter {
        ZipWriter {
            out,
            central: Vec::new(),
            offset: 0,
            count: 0,
        }
    }

    impl ZipWriter {
        fn add(&mut self, name: &str, data: &[u8]) {
            let crc = crc32fast::hash(data);
            let len = data.len() as u32;
            let mut common = Vec::new();
            common.extend_from_slice(&20u16.to_le_bytes()); // version needed
            common.extend_from_slice(&0u16.to_le_bytes()); // flags
            common.extend_from_slice(&0u16.to_le_bytes()); // stored
            common.extend_from_slice(&0u32.to_le_bytes()); // time, date
            common.extend_from_slice(&crc.to_le_bytes());
            common.extend_from_slice(&len.to_le_bytes());
            common.extend_from_slice(&len.to_le_bytes());
            common.extend_from_slice(&(name.len() as u16).to_le_bytes());
            common.extend_from_slice(&0u16.to_le_bytes()); // extra
            let mut local = 0x0403_4b50u32.to_le_bytes().to_vec();
            local.extend_from_slice(&common);
            local.extend_from_slice(name.as_bytes());
            local.extend_from_slice(data);
            self.out.write_all(&local).unwrap();
            self.central
                .extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            self.central.extend_from_slice(&20u16.to_le_bytes()); // made by
            self.central.extend_from_slice(&common);
            self.central.extend_from_slice(&[0; 6]); // comment, disk, internal attrs
            self.central.extend_from_slice(&0u32.to_le_bytes()); // external attrs
            self.central.extend_from_slice(&self.offset.to_le_bytes());
            self.central.extend_from_slice(name.as_bytes());
            self.offset += local.len() as u32;
            self.count += 1;
        }

        fn finish(mut self) {
            let mut end = 0x0605_4b50u32.to_le_bytes().to_vec();
            end.extend_from_slice(&[0; 4]); // disk numbers
            end.extend_from_slice(&self.count.to_le_bytes());
            end.extend_from_slice(&self.count.to_le_bytes());
            end.extend_from_slice(&(self.central.len() as u32).to_le_bytes());
            end.extend_from_slice(&self.offset.to_le_bytes());
            end.extend_from_slice(&0u16.to_le_bytes());
            self.out.write_all(&self.central).unwrap();
            self.out.write_all(&end).unwrap();
        }
    }
}
