//! An unprivileged user for the tests: uid and gid 65534 (`nobody`) with a HOME of its own and
//! no capabilities, the way stevedore runs on a rootless laptop or CI runner.
//!
//! Its place is a directory outside the test bed (which may sit under root's mode-0700 home,
//! where uid 65534 can read nothing): `$STEVEDORE_ROOTLESS_DIR`, else
//! `/var/tmp/stevedore-rootless`. It is kept between runs so std built from source, cargo's
//! downloads and zig's cache are made once per machine, like the rest of the test bed:
//!
//! | path | owner, mode | what |
//! |---|---|---|
//! | `.` | root, 0755 | refused when anyone else owns it or can write to it |
//! | `bin/cargo-stevedore` | root, 0755 | the binary under test, copied |
//! | `zig-VERSION/` | root, 0755 | the venv's PyPI `ziglang` package: `zig` and its lib dir |
//! | `ca.crt` | root, 0644 | the test bed's CA, for `--registry-ca` |
//! | `home/` | 65534, 0700 | HOME: the project (and its `target/`), `~/.cache`, `~/.cargo`, `~/.config/containers`, podman's store, `run/` (XDG_RUNTIME_DIR) |
//!
//! Only root writes what root later runs or trusts; what uid 65534 writes (images, layouts)
//! the tests only read.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::{require_tool, run_ok};

/// Environment variable that moves [`Rootless::dir`].
pub const ROOTLESS_DIR_ENV: &str = "STEVEDORE_ROOTLESS_DIR";
/// Where the unprivileged user's place is when [`ROOTLESS_DIR_ENV`] is not set.
pub const DEFAULT_ROOTLESS_DIR: &str = "/var/tmp/stevedore-rootless";
/// The unprivileged user and group (`nobody`/`nogroup` on Debian).
pub const ROOTLESS_ID: u32 = 65534;

/// The unprivileged user's place, set up (see the module docs). Setting up needs root.
pub struct Rootless {
    dir: PathBuf,
}

impl Rootless {
    /// Sets up the place idempotently (root's parts copied only when they differ) with
    /// `binary` as its `cargo-stevedore`; panics naming what is wrong when it cannot.
    pub fn prepare(binary: &Path) -> Rootless {
        require_tool("setpriv");
        let dir = rootless_dir();
        if unsafe { libc::geteuid() } != 0 {
            panic!("the rootless tests switch to uid {ROOTLESS_ID} and need root to do so (the test suite runs as root)");
        }
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        check_root_owned(&dir);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let rootless = Rootless { dir };
        copy_if_changed(binary, &rootless.dir.join("bin/cargo-stevedore"), 0o755);
        rootless.copy_zig();
        let home = rootless.home();
        make_user_dir(&home, 0o700);
        make_user_dir(&rootless.runtime_dir(), 0o700);
        rootless
    }

    /// The place itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The user's HOME.
    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// The user's `XDG_RUNTIME_DIR` (podman keeps its locks and pause process there).
    pub fn runtime_dir(&self) -> PathBuf {
        self.home().join("run")
    }

    /// The copy of the binary under test the user runs.
    pub fn stevedore(&self) -> PathBuf {
        self.dir.join("bin/cargo-stevedore")
    }

    /// The directory holding `zig` (the user has it on PATH).
    pub fn zig_dir(&self) -> PathBuf {
        self.dir
            .join(format!("zig-{}", crate::ZIGLANG_VERSION))
            .join("ziglang")
    }

    /// Copies `src` (a directory tree) to `rel` under HOME, owned by the user, updating only
    /// files whose content differs (so cargo sees an unchanged project as unchanged); returns
    /// the copy's path.
    pub fn copy_into_home(&self, src: &Path, rel: &str) -> PathBuf {
        let dest = self.home().join(rel);
        copy_tree_for_user(src, &dest);
        dest
    }

    /// Writes `contents` to `rel` under HOME, owned by the user and readable by it alone
    /// (credentials), creating its parents as the user's.
    pub fn write_in_home(&self, rel: &str, contents: &[u8]) -> PathBuf {
        let path = self.home().join(rel);
        let mut parents = Vec::new();
        let mut at = path.parent();
        while let Some(p) = at.filter(|p| *p != self.home()) {
            parents.push(p.to_path_buf());
            at = p.parent();
        }
        for p in parents.iter().rev() {
            make_user_dir(p, 0o700);
        }
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        chown_user(&path);
        path
    }

    /// A fresh directory under HOME owned by the user, removed on drop.
    pub fn scratch(&self, prefix: &str) -> tempfile::TempDir {
        let parent = self.home().join("tmp");
        make_user_dir(&parent, 0o700);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&parent)
            .unwrap_or_else(|e| panic!("cannot create a directory in {}: {e}", parent.display()));
        chown_user(dir.path());
        dir
    }

    /// Puts `file` (root's, e.g. the test bed's CA) where the user can read it, as `name` in
    /// the place; returns the copy.
    pub fn share(&self, file: &Path, name: &str) -> PathBuf {
        let dest = self.dir.join(name);
        copy_if_changed(file, &dest, 0o644);
        dest
    }

    /// `program ARGS…` as the user: uid and gid 65534, no supplementary groups, no
    /// capabilities (none permitted, effective, inherited or ambient; the bounding set stays
    /// whole, as in a login session, since rootless podman's setuid `newuidmap` needs it), and an environment of only
    /// `PATH` (zig's directory, `/usr/bin`, `/bin`: Debian's cargo and podman), `HOME`,
    /// `XDG_RUNTIME_DIR`, `USER`/`LOGNAME` and the given `env`; the working directory is HOME.
    pub fn command(&self, program: &Path, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(require_tool("setpriv"));
        cmd.args([
            &format!("--reuid={ROOTLESS_ID}"),
            &format!("--regid={ROOTLESS_ID}"),
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(require_tool("env"))
        .arg("-i")
        .arg(format!("PATH={}:/usr/bin:/bin", self.zig_dir().display()))
        .arg(format!("HOME={}", self.home().display()))
        .arg(format!("XDG_RUNTIME_DIR={}", self.runtime_dir().display()))
        .args(["USER=nobody", "LOGNAME=nobody"])
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
        .arg(program)
        .current_dir(self.home());
        cmd
    }

    /// `podman ARGS…` as the user, in its own rootless store.
    pub fn podman(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(&require_tool("podman"), &[]);
        cmd.args(args);
        cmd
    }

    /// Ends the user's podman pause process (rootless podman keeps one holding its user
    /// namespace, whose id mapping it keeps), if one runs: before a test, so the namespace
    /// maps the subordinate ids /etc/subuid gives now; after, so no process outlives the test.
    pub fn stop_podman_pause(&self) {
        let pid_file = self.runtime_dir().join("libpod/tmp/pause.pid");
        let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<libc::pid_t>().ok())
        else {
            return;
        };
        // Only the user's own podman, not a recycled pid.
        let ours = std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == ROOTLESS_ID)
            && std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(b"podman"));
        if ours {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_file(&pid_file);
    }

    /// Copies the venv's `ziglang` package (zig is one static binary beside its lib dir) once
    /// per version; the venv itself may be where the user cannot read.
    fn copy_zig(&self) {
        let dest = self.zig_dir();
        if dest.join("zig").is_file() {
            return;
        }
        crate::tools::require_venv();
        let src = std::fs::read_dir(crate::venv_dir().join("lib"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|py| py.path().join("site-packages/ziglang"))
            .find(|p| p.join("zig").is_file())
            .expect("require_venv found ziglang");
        let parent = dest.parent().unwrap();
        let partial = self.dir.join(".zig-partial");
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).unwrap();
        run_ok(
            Command::new(require_tool("cp"))
                .arg("-R")
                .arg(&src)
                .arg(partial.join("ziglang")),
        );
        run_ok(
            Command::new(require_tool("chmod"))
                .args(["-R", "a+rX,go-w"])
                .arg(&partial),
        );
        let _ = std::fs::remove_dir_all(parent);
        std::fs::rename(&partial, parent).unwrap_or_else(|e| {
            panic!(
                "cannot move {} to {}: {e}",
                partial.display(),
                parent.display()
            )
        });
    }
}

/// `$STEVEDORE_ROOTLESS_DIR`, else [`DEFAULT_ROOTLESS_DIR`].
pub fn rootless_dir() -> PathBuf {
    std::env::var_os(ROOTLESS_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOTLESS_DIR))
}

/// `/var/tmp` lets anyone make a directory: one that another user made (and could change
/// under root's feet) is refused rather than trusted.
fn check_root_owned(dir: &Path) {
    let meta = std::fs::symlink_metadata(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        panic!(
            "{} (the unprivileged tests' directory) must be a directory owned by root and \
             writable by root alone, and it is not (uid {}, mode {:o}): remove it, or set \
             {ROOTLESS_DIR_ENV} to another place",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        );
    }
}

fn chown_user(path: &Path) {
    std::os::unix::fs::lchown(path, Some(ROOTLESS_ID), Some(ROOTLESS_ID))
        .unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
}

/// A directory owned by the user with `mode`, made if missing.
fn make_user_dir(dir: &Path, mode: u32) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    chown_user(dir);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Root's copy of `src` at `dest` with `mode`, replaced atomically when it differs.
fn copy_if_changed(src: &Path, dest: &Path, mode: u32) {
    let parent = dest.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    if same_content(src, dest) {
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode)).unwrap();
        return;
    }
    let partial = parent.join(format!(
        ".{}-partial",
        dest.file_name().unwrap().to_string_lossy()
    ));
    std::fs::copy(src, &partial).unwrap_or_else(|e| {
        panic!(
            "cannot copy {} to {}: {e}",
            src.display(),
            partial.display()
        )
    });
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&partial, dest).unwrap();
}

fn same_content(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(ma), Ok(mb)) if ma.len() == mb.len() => std::fs::read(a).ok() == std::fs::read(b).ok(),
        _ => false,
    }
}

/// Copies a tree file by file, the user's, rewriting only files that differ.
fn copy_tree_for_user(src: &Path, dest: &Path) {
    make_user_dir(dest, 0o755);
    for entry in
        std::fs::read_dir(src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()))
    {
        let entry = entry.unwrap();
        let (from, to) = (entry.path(), dest.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_tree_for_user(&from, &to);
        } else if !same_content(&from, &to) {
            std::fs::copy(&from, &to).unwrap_or_else(|e| {
                panic!("cannot copy {} to {}: {e}", from.display(), to.display())
            });
            chown_user(&to);
        }
    }
}
