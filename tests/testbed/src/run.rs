//! Running what an image contains, as its user, without a container runtime.
//!
//! crun refuses this machine's hybrid cgroups and runc needs rlimits root lacks here (see
//! TESTBED.md §4), so the entrypoint runs in a plain chroot: same root filesystem, user, groups,
//! environment and working directory as the runtime spec `umoci unpack` writes, but no
//! namespaces, cgroups or rlimits.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::tools::{output_within, require_tool, run_ok};

/// Where [`umoci_unpack`] keeps the image config next to the runtime spec: the spec merges
/// Entrypoint and Cmd into one list, but arguments must replace only Cmd.
const IMAGE_CONFIG: &str = "testbed-image-config.json";

/// Bound for one entrypoint run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// `umoci unpack --image LAYOUT:TAG BUNDLE` (BUNDLE must not exist yet). `tag` must name an image
/// manifest; for an index use [`umoci_unpack_platform`].
pub fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) {
    let config = image_config(layout, tag);
    run_ok(
        Command::new(require_tool("umoci"))
            .args(["unpack", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(bundle),
    );
    let path = bundle.join(IMAGE_CONFIG);
    std::fs::write(&path, config)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Unpacks the `arch` (`amd64`, `arm64`, `arm/v7`, …: ARCH or ARCH/VARIANT) image of the index
/// tagged `tag`, via a single-platform copy made with `skopeo copy --override-arch`.
pub fn umoci_unpack_platform(layout: &Path, tag: &str, arch: &str, bundle: &Path) {
    let single = crate::scratch_dir("single-");
    let mut copy = Command::new(require_tool("skopeo"));
    copy.args(["copy", "--quiet", "--override-os", "linux"]);
    match arch.split_once('/') {
        Some((arch, variant)) => {
            copy.args(["--override-arch", arch, "--override-variant", variant])
        }
        None => copy.args(["--override-arch", arch]),
    };
    run_ok(
        copy.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("oci:{}:{tag}", single.path().display())),
    );
    umoci_unpack(single.path(), tag, bundle);
}

/// The image config blob of the manifest tagged `tag` in an OCI layout.
fn image_config(layout: &Path, tag: &str) -> Vec<u8> {
    let read_json = |path: PathBuf| -> Value {
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
    };
    let blob = |digest: &Value| -> PathBuf {
        let digest = digest.as_str().expect("descriptor digest");
        let (algorithm, hex) = digest.split_once(':').expect("digest is ALGORITHM:HEX");
        layout.join("blobs").join(algorithm).join(hex)
    };
    let index = read_json(layout.join("index.json"));
    let descriptor = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| {
            panic!(
                "no manifest tagged {tag:?} in {}/index.json:\n{index:#}",
                layout.display()
            )
        });
    if descriptor["mediaType"]
        .as_str()
        .is_some_and(|t| t.contains("index") || t.contains("manifest.list"))
    {
        panic!(
            "{}:{tag} is an index; umoci unpacks one platform: use umoci_unpack_platform",
            layout.display()
        );
    }
    let manifest = read_json(blob(&descriptor["digest"]));
    let path = blob(&manifest["config"]["digest"]);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs the bundle's entrypoint like `docker run IMAGE ARGS...` would (non-empty `args` replace
/// the image's Cmd), as the spec's uid/gid, with its env and working directory, chrooted into its
/// rootfs, stdin closed, for at most two minutes. Binaries for another architecture (read from the
/// ELF header) run through `qemu-<arch>-static`, copied into the rootfs for the run.
pub fn run_entrypoint(bundle: &Path, args: &[&str]) -> Output {
    let spec = read_spec(bundle);
    let process = &spec["process"];
    let root_path = spec["root"]["path"].as_str().unwrap_or("rootfs");
    let rootfs = std::fs::canonicalize(bundle.join(root_path))
        .unwrap_or_else(|e| panic!("no rootfs at {}: {e}", bundle.join(root_path).display()));
    let env: Vec<(String, String)> = strings(&process["env"])
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv, String::new()),
        })
        .collect();
    let cwd = process["cwd"].as_str().unwrap_or("/").to_owned();
    let user = &process["user"];
    let uid = user["uid"].as_u64().unwrap_or(0) as libc::uid_t;
    let gid = user["gid"].as_u64().unwrap_or(0) as libc::gid_t;
    let mut groups = vec![gid];
    groups.extend(
        user["additionalGids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_u64())
            .map(|g| g as libc::gid_t),
    );

    let argv = entrypoint_argv(bundle, process, args);
    let path_env = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str());
    let exe = resolve_exe(&rootfs, &argv[0], &cwd, path_env);
    let machine = elf_machine(&resolve_in_root(&rootfs, &exe))
        .unwrap_or_else(|| panic!("{exe} in {} is not an ELF executable", rootfs.display()));

    let mut emulator = None;
    let mut cmd = match qemu_for(machine) {
        None => {
            let mut cmd = Command::new(&exe);
            cmd.arg0(&argv[0]).args(&argv[1..]);
            cmd
        }
        Some(qemu) => {
            let copy = QemuCopy::new(&rootfs, &require_tool(&qemu));
            let mut cmd = Command::new(&copy.in_root);
            cmd.args(["-0", &argv[0], &exe]).args(&argv[1..]);
            emulator = Some(copy);
            cmd
        }
    };
    cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));

    let root_c = CString::new(rootfs.as_os_str().as_bytes()).expect("no NUL in paths");
    let cwd_c = CString::new(cwd.as_bytes()).expect("no NUL in cwd");
    // SAFETY: the closure runs between fork and exec; it only makes system calls on data prepared
    // before the fork (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || enter(&root_c, &cwd_c, uid, gid, &groups));
    }
    let out = output_within(&mut cmd, RUN_TIMEOUT).unwrap_or_else(|e| {
        // execve says ENOENT both for a missing file and for a missing ELF interpreter.
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (the file exists: is it dynamically linked against a loader the image lacks?)"
        } else {
            ""
        };
        panic!(
            "cannot run {cmd:?} chrooted in {} as {uid}:{gid}: {e}{hint}",
            rootfs.display()
        )
    });
    drop(emulator);
    out
}

/// chroot, then drop to the image's user, then enter its working directory (as that user, so
/// an unreadable directory fails the way it would in a container). Coreutils `chroot
/// --userspec` would do the first two but always leaves the process in `/`.
fn enter(
    root: &CString,
    cwd: &CString,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: &[libc::gid_t],
) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: plain system calls on valid NUL-terminated strings and a live slice.
    unsafe {
        check(libc::chroot(root.as_ptr()))?;
        check(libc::chdir(c"/".as_ptr()))?;
        check(libc::setgroups(groups.len(), groups.as_ptr()))?;
        check(libc::setgid(gid))?;
        check(libc::setuid(uid))?;
        check(libc::chdir(cwd.as_ptr()))?;
    }
    Ok(())
}

fn read_spec(bundle: &Path) -> Value {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read the runtime spec {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Entrypoint + (args, or Cmd when args is empty); without the saved image config (a bundle
/// not made by [`umoci_unpack`]), the spec's args + `args`.
fn entrypoint_argv(bundle: &Path, process: &Value, args: &[&str]) -> Vec<String> {
    let extra = args.iter().map(|a| a.to_string());
    let argv: Vec<String> = match std::fs::read(bundle.join(IMAGE_CONFIG)) {
        Ok(bytes) => {
            let config: Value = serde_json::from_slice(&bytes).expect("saved image config is JSON");
            let mut argv = strings(&config["config"]["Entrypoint"]);
            if args.is_empty() {
                argv.extend(strings(&config["config"]["Cmd"]));
            } else {
                argv.extend(extra);
            }
            argv
        }
        Err(_) => strings(&process["args"]).into_iter().chain(extra).collect(),
    };
    assert!(
        !argv.is_empty(),
        "the image in {} has neither Entrypoint nor Cmd, and no args were given",
        bundle.display()
    );
    argv
}

/// The in-container path of the program `name`, searched in `path_env` like execvp would.
fn resolve_exe(rootfs: &Path, name: &str, cwd: &str, path_env: &str) -> String {
    if name.contains('/') {
        return if name.starts_with('/') {
            name.to_owned()
        } else {
            format!("{}/{name}", cwd.trim_end_matches('/'))
        };
    }
    path_env
        .split(':')
        .map(|dir| format!("{}/{name}", dir.trim_end_matches('/')))
        .find(|candidate| resolve_in_root(rootfs, candidate).is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not in PATH={path_env} inside {}",
                rootfs.display()
            )
        })
}

/// The host path of `path` inside `root`, following symlinks as if `root` were `/` (absolute
/// links in an image point into the image, not at the host).
fn resolve_in_root(root: &Path, path: &str) -> PathBuf {
    let mut pending: Vec<String> = path
        .split('/')
        .rev()
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let mut resolved = root.to_path_buf();
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "." => continue,
            ".." => {
                if resolved != root {
                    resolved.pop();
                }
                continue;
            }
            _ => {}
        }
        let candidate = resolved.join(&component);
        match std::fs::read_link(&candidate) {
            Ok(target) if hops < 40 => {
                hops += 1;
                if target.has_root() {
                    resolved = root.to_path_buf();
                }
                let parts = target.components().filter_map(|c| match c {
                    Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    Component::ParentDir => Some("..".to_owned()),
                    _ => None,
                });
                pending.extend(parts.collect::<Vec<_>>().into_iter().rev());
            }
            _ => resolved = candidate,
        }
    }
    resolved
}

/// `e_machine` of an ELF file, if it is one.
fn elf_machine(path: &Path) -> Option<u16> {
    let mut header = [0u8; 20];
    std::fs::File::open(path)
        .ok()?
        .read_exact(&mut header)
        .ok()?;
    if &header[..4] != b"\x7fELF" {
        return None;
    }
    let bytes = [header[18], header[19]];
    Some(if header[5] == 2 {
        u16::from_be_bytes(bytes)
    } else {
        u16::from_le_bytes(bytes)
    })
}

/// ELF machines the test bed runs (stevedore's platforms): the machine, the host architecture
/// (Rust's name) that runs it natively, qemu's name for it and OCI's.
const MACHINES: [(u16, &str, &str, &str); 7] = [
    (62, "x86_64", "x86_64", "amd64"),
    (183, "aarch64", "aarch64", "arm64"),
    (40, "arm", "arm", "arm"),
    (3, "x86", "i386", "386"),
    (21, "powerpc64", "ppc64le", "ppc64le"),
    (22, "s390x", "s390x", "s390x"),
    (243, "riscv64", "riscv64", "riscv64"),
];

/// The qemu user-mode emulator for `machine`, or `None` if the host runs it natively.
fn qemu_for(machine: u16) -> Option<String> {
    let (_, host, qemu, _) = MACHINES
        .iter()
        .find(|(m, ..)| *m == machine)
        .unwrap_or_else(|| panic!("no emulator known for ELF machine {machine}"));
    (*host != std::env::consts::ARCH).then(|| format!("qemu-{qemu}-static"))
}

/// The qemu user-mode emulator for the OCI architecture `arch` (`arm64`, `s390x`, …), or
/// `None` if the host runs it natively.
pub(crate) fn qemu_for_arch(arch: &str) -> Option<String> {
    let (machine, ..) = MACHINES
        .iter()
        .find(|(.., oci)| *oci == arch)
        .unwrap_or_else(|| panic!("the test bed knows no ELF machine for architecture {arch}"));
    qemu_for(*machine)
}

/// A copy of a static qemu inside the rootfs (the chrooted process cannot see the host's),
/// under a name unique to this run; removed on drop.
struct QemuCopy {
    on_host: PathBuf,
    in_root: String,
}

impl QemuCopy {
    fn new(rootfs: &Path, qemu: &Path) -> QemuCopy {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            ".testbed-qemu-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let on_host = rootfs.join(&name);
        std::fs::copy(qemu, &on_host).unwrap_or_else(|e| {
            panic!(
                "cannot copy {} to {}: {e}",
                qemu.display(),
                on_host.display()
            )
        });
        QemuCopy {
            on_host,
            in_root: format!("/{name}"),
        }
    }
}

impl Drop for QemuCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.on_host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::write(r.join("usr/bin/app"), b"x").unwrap();
        std::os::unix::fs::symlink("/usr/bin", r.join("bin")).unwrap();
        std::os::unix::fs::symlink("../bin/app", r.join("usr/bin/rel")).unwrap();
        std::os::unix::fs::symlink("/../../../usr/bin/app", r.join("escape")).unwrap();
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert_eq!(resolve_in_root(r, "/bin/app"), r.join("usr/bin/app"));
        assert_eq!(resolve_in_root(r, "/usr/bin/rel"), r.join("usr/bin/app"));
        assert_eq!(resolve_in_root(r, "/escape"), r.join("usr/bin/app"));
        assert!(!resolve_in_root(r, "/loop").is_file());
        assert_eq!(resolve_exe(r, "app", "/", "/nowhere:/bin"), "/bin/app");
        assert_eq!(resolve_exe(r, "./app", "/usr/bin", ""), "/usr/bin/./app");
    }
}
