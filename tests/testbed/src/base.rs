//! A stand-in for `gcr.io/distroless/static-debian12`, built from Debian packages with umoci.
//!
//! Like distroless: the files of `base-files`, `netbase`, `tzdata` and `ca-certificates` (no
//! shell, no package manager) with their dpkg records in `/var/lib/dpkg/status.d/` (`NAME` and
//! `NAME.md5sums`) and copyright files in `/usr/share/doc/NAME/`, a CA bundle, `/etc/passwd` and `/etc/group` with `nonroot` (65532),
//! `/home/nonroot` (65532, 0700), `/tmp` (1777). `:latest` runs as 0 in `/`, `:nonroot` as 65532 in
//! `/home/nonroot`; both tags are OCI indexes for every platform Debian 12 has packages for that
//! stevedore builds: linux/amd64, linux/arm64/v8, linux/arm/v7, linux/386, linux/ppc64le and
//! linux/s390x (distroless itself has all but 386).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::tools::{require_tool, run_ok};

/// Repository the base is pushed to by [`crate::Registry::push_base`].
pub const BASE_REPOSITORY: &str = "distroless/static-debian12";

/// Tags of [`base_layout`] that are multi-platform indexes, as on gcr.io. The layout also holds
/// single-platform manifests tagged `ARCH-latest` and `ARCH-nonroot` (`amd64-nonroot`,
/// `arm-nonroot`, …), ARCH as OCI names it.
pub const BASE_TAGS: [&str; 2] = ["latest", "nonroot"];

/// The stand-in's platforms: OCI's architecture and variant, and Debian's architecture.
const ARCHES: [(&str, Option<&str>, &str); 6] = [
    ("amd64", None, "amd64"),
    ("arm64", Some("v8"), "arm64"),
    ("arm", Some("v7"), "armhf"),
    ("386", None, "i386"),
    ("ppc64le", None, "ppc64el"),
    ("s390x", None, "s390x"),
];

/// A stand-in image: its name (the layout's directory prefix), packages beyond [`PACKAGES`]
/// and platforms.
struct StandIn {
    name: &'static str,
    extra: &'static [&'static str],
    arches: &'static [(&'static str, Option<&'static str>, &'static str)],
}

/// `distroless/static-debian12`.
const STATIC: StandIn = StandIn {
    name: "base",
    extra: &[],
    arches: &ARCHES,
};

/// `distroless/cc-debian12`: the static one with glibc, libgcc and libssl, as distroless
/// makes it, for amd64 and arm64.
const CC: StandIn = StandIn {
    name: "cc-base",
    extra: &["libc6", "libgcc-s1", "libssl3"],
    arches: &[("amd64", None, "amd64"), ("arm64", Some("v8"), "arm64")],
};

/// Repository the glibc stand-in is pushed to by [`crate::Registry::push_cc_base`].
pub const CC_BASE_REPOSITORY: &str = "distroless/cc-debian12";

/// Debian's names of the stand-in's architectures: `cargo xtask setup` adds those other than
/// the host's to dpkg, so `apt-get download` finds their packages.
pub fn debian_arches() -> Vec<&'static str> {
    ARCHES.iter().map(|(.., debian)| *debian).collect()
}
/// The time every file, the config and the history of the stand-in carry: 2023-11-14.
const EPOCH: u64 = 1_700_000_000;
/// [`EPOCH`] as the config's `created`.
const CREATED: &str = "2023-11-14T22:13:20Z";
/// What made the stand-in's layer, for its history.
const HISTORY: &str = "dpkg-deb -x base-files netbase tzdata ca-certificates";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SSL_ENV: &str = "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Packages whose files make the root filesystem; only `base-files` is per architecture.
const PACKAGES: [&str; 4] = ["base-files", "netbase", "tzdata", "ca-certificates"];

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
                      nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\ntty:x:5:\nstaff:x:50:\nnobody:x:65534:\nnonroot:x:65532:\n";

/// The OCI layout of the distroless stand-in. Built once per process and kept in
/// [`crate::testbed_dir`] for later processes (keyed by this recipe's source, so editing the
/// recipe rebuilds it); concurrent builders each build privately and the first rename wins.
pub fn base_layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| layout_of(&STATIC))
}

/// The OCI layout of the glibc stand-in for `gcr.io/distroless/cc-debian12` (tags as
/// [`base_layout`]'s, linux/amd64 and linux/arm64/v8), built and kept the same way.
pub fn cc_base_layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| layout_of(&CC))
}

fn layout_of(stand_in: &StandIn) -> PathBuf {
    let debs = debs(stand_in);
    let mut hasher = DefaultHasher::new();
    include_str!("base.rs").hash(&mut hasher);
    let mut names: Vec<_> = std::fs::read_dir(&debs)
        .expect("list debs")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    names.hash(&mut hasher);
    let dir = crate::testbed_dir().join(format!("{}-{:016x}", stand_in.name, hasher.finish()));
    if !dir.join("index.json").is_file() {
        let work = crate::scratch_dir("base-");
        let layout = work.path().join("layout");
        build(stand_in, &layout, work.path(), &debs);
        publish(&layout, &dir, "index.json");
        remove_older_layouts(&dir, stand_in.name);
    }
    dir
}

/// The stand-in as distroless publishes a fix: `:nonroot` with one more layer, holding
/// `/etc/base-fix` with `note` in it, on every platform; `:latest` as it was. An OCI layout in
/// a new scratch directory (dropped with the returned guard), `layout` inside it.
pub fn fixed_base_layout(note: &str) -> (tempfile::TempDir, PathBuf) {
    let work = crate::scratch_dir("fixed-base-");
    let layout = work.path().join("layout");
    run_ok(Command::new("cp").arg("-r").arg(base_layout()).arg(&layout));
    // GNU tar writes the layer: umoci 0.4's `insert` leaves a single file's tar unpadded and
    // unterminated, which tar readers (GNU tar too) refuse.
    let root = work.path().join("root");
    mkdir(&root.join("etc"), 0o755);
    write(&root.join("etc/base-fix"), note.as_bytes(), 0o644);
    let tar = work.path().join("fix.tar");
    run_ok(
        Command::new(require_tool("tar"))
            .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
            .arg(format!("--mtime=@{EPOCH}"))
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&root)
            .arg("etc/base-fix"),
    );
    let layout_str = layout.to_str().expect("test bed paths are UTF-8");
    let tar_str = tar.to_str().expect("test bed paths are UTF-8");
    for (arch, ..) in ARCHES {
        umoci(&[
            "raw",
            "add-layer",
            "--image",
            &format!("{layout_str}:{arch}-nonroot"),
            "--history.created",
            CREATED,
            "--history.created_by",
            "a fix",
            "--history.author",
            "stevedore test bed",
            "--history.comment",
            "",
            tar_str,
        ]);
    }
    // The multi-platform indexes again, over the per-platform manifests as they are now.
    let index_path = layout.join("index.json");
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(&index_path).expect("read index.json"))
            .expect("index.json is JSON");
    index["manifests"]
        .as_array_mut()
        .expect("manifests array")
        .retain(|m| m["mediaType"] != OCI_INDEX);
    std::fs::write(&index_path, serde_json::to_vec(&index).expect("serialize"))
        .expect("write index.json");
    write_indexes(&STATIC, &layout);
    umoci(&["gc", "--layout", layout_str]);
    (work, layout)
}

/// The packages the stand-in is made of, as (file name, sha256 hex), sorted: what its digest
/// depends on besides this recipe.
pub fn base_inputs() -> Vec<(String, String)> {
    let debs = debs(&STATIC);
    let mut sum = Command::new(require_tool("sha256sum"));
    sum.current_dir(&debs);
    for entry in std::fs::read_dir(&debs)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", debs.display()))
        .flatten()
    {
        if entry.path().extension().is_some_and(|x| x == "deb") {
            sum.arg(entry.file_name());
        }
    }
    let out = String::from_utf8_lossy(&run_ok(&mut sum).stdout).into_owned();
    let mut inputs: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(hex, name)| (name.to_owned(), hex.to_owned()))
        .collect();
    inputs.sort();
    inputs
}

/// Moves a finished directory into place; if another process got there first, theirs is used.
fn publish(built: &Path, dir: &Path, marker: &str) {
    if std::fs::rename(built, dir).is_err() && !dir.join(marker).is_file() {
        panic!("cannot move {} to {}", built.display(), dir.display());
    }
}

/// Deletes layouts of earlier recipes next to `current`, so edits do not pile them up.
///
/// Only those made a day ago or more: a test run of another checkout (another recipe) may be
/// reading its own right now, from the same test bed.
fn remove_older_layouts(current: &Path, name: &str) {
    let Some(parent) = current.parent() else {
        return;
    };
    let day = std::time::Duration::from_secs(24 * 60 * 60);
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= day));
        let ours = entry
            .file_name()
            .to_string_lossy()
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('-'));
        if path != current && old && ours {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// The directory with a stand-in's .debs, downloaded once with `apt-get download`.
fn debs(stand_in: &StandIn) -> PathBuf {
    let mut specs: Vec<String> = Vec::new();
    for (.., debian) in stand_in.arches {
        specs.push(format!("base-files:{debian}"));
        specs.extend(stand_in.extra.iter().map(|p| format!("{p}:{debian}")));
    }
    specs.extend(PACKAGES[1..].iter().map(|p| p.to_string()));
    // Named by what is downloaded, so a new architecture is fetched on machines that have
    // the older set.
    let mut hasher = DefaultHasher::new();
    specs.hash(&mut hasher);
    let dir = crate::testbed_dir().join(format!("debs-{:016x}", hasher.finish()));
    if dir.join("complete").is_file() {
        return dir;
    }
    let work = crate::scratch_dir("debs-");
    let mut apt = Command::new(require_tool("apt-get"));
    apt.arg("download").args(&specs).current_dir(work.path());
    let out = crate::tools::output_within(&mut apt, crate::tools::TOOL_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot run {apt:?}: {e}"));
    assert!(
        out.status.success(),
        "\n\n*** test bed: downloading the distroless stand-in's packages failed: {apt:?} ({})\n{}\n\
         *** `base-files:ARCH` needs `dpkg --add-architecture ARCH` (arm64, armhf, i386, ppc64el, s390x) and a fresh `apt-get update`: run `cargo xtask setup`.\n",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(work.path().join("complete"), specs.join("\n")).expect("write debs/complete");
    publish(work.path(), &dir, "complete");
    dir
}

/// The one `.deb` of `package` for `arch` (or `all`) in `debs`.
fn deb(debs: &Path, package: &str, arch: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(debs)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", debs.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&format!("{package}_"))
                && (name.ends_with(&format!("_{arch}.deb")) || name.ends_with("_all.deb"))
        })
        .collect();
    match found.as_slice() {
        [one] => one.clone(),
        _ => panic!(
            "expected one {package} .deb for {arch} in {}, found {found:?}",
            debs.display()
        ),
    }
}

fn umoci(args: &[&str]) {
    run_ok(Command::new(require_tool("umoci")).args(args));
}

fn build(stand_in: &StandIn, layout: &Path, work: &Path, debs: &Path) {
    let layout_str = layout.to_str().expect("test bed paths are UTF-8");
    umoci(&["init", "--layout", layout_str]);
    let mut history = HISTORY.to_owned();
    for package in stand_in.extra {
        history.push(' ');
        history.push_str(package);
    }
    for (arch, _, debian) in stand_in.arches {
        let image = format!("{layout_str}:{arch}-base");
        let bundle = work.join(format!("bundle-{arch}"));
        let bundle_str = bundle.to_str().expect("test bed paths are UTF-8");
        // unpack/repack of an empty image is how umoci turns a directory into a layer with exact
        // owners and modes (`umoci insert` would need one call per top-level entry).
        umoci(&["new", "--image", &image]);
        umoci(&["unpack", "--image", &image, bundle_str]);
        make_rootfs(&bundle.join("rootfs"), debian, stand_in.extra, debs);
        // The same .debs give the same bytes on any machine and day: no clock in the files'
        // times, the config or its history (the golden-digest test holds the result).
        run_ok(
            Command::new(require_tool("find"))
                .arg(bundle.join("rootfs"))
                .args([
                    "-exec",
                    "touch",
                    "-h",
                    "-d",
                    &format!("@{EPOCH}"),
                    "{}",
                    "+",
                ]),
        );
        // One history entry for the one layer, as distroless has, with nothing of the
        // machine in it (umoci's own would hold the time and its command line's paths).
        umoci(&[
            "repack",
            "--history.created",
            CREATED,
            "--history.created_by",
            &history,
            "--history.author",
            "stevedore test bed",
            "--history.comment",
            "",
            "--image",
            &image,
            bundle_str,
        ]);
        for (tag, user, workdir) in [("latest", "0", "/"), ("nonroot", "65532", "/home/nonroot")] {
            let tag = format!("{arch}-{tag}");
            let options = [
                ("--tag", tag.as_str()),
                ("--os", "linux"),
                ("--architecture", arch),
                ("--config.env", PATH_ENV),
                ("--config.env", SSL_ENV),
                ("--config.workingdir", workdir),
                ("--config.user", user),
            ];
            let mut args = vec![
                "config",
                "--no-history",
                "--created",
                CREATED,
                "--image",
                &image,
            ];
            args.extend(options.iter().flat_map(|(flag, value)| [*flag, *value]));
            umoci(&args);
        }
        umoci(&["rm", "--image", &image]);
    }
    write_indexes(stand_in, layout);
    umoci(&["gc", "--layout", layout_str]);
}

fn make_rootfs(root: &Path, arch: &str, extra: &[&str], debs: &Path) {
    let dpkg_deb = require_tool("dpkg-deb");
    let status_d = root.join("var/lib/dpkg/status.d");
    for package in PACKAGES.iter().chain(extra) {
        let deb = deb(debs, package, arch);
        run_ok(Command::new(&dpkg_deb).arg("-x").arg(&deb).arg(root));
        // Per-package status files, as distroless ships them, so scanners (and stevedore's
        // SBOM) see what is inside: the control paragraph as `status.d/NAME` and the package's
        // file checksums as `status.d/NAME.md5sums`; its copyright file came with `-x` above.
        mkdir(&status_d, 0o755);
        let control = run_ok(Command::new(&dpkg_deb).arg("-f").arg(&deb));
        write(&status_d.join(package), &control.stdout, 0o644);
        let md5sums = run_ok(
            Command::new(&dpkg_deb)
                .arg("--info")
                .arg(&deb)
                .arg("md5sums"),
        );
        assert!(
            !md5sums.stdout.is_empty(),
            "{} has no md5sums control file",
            deb.display()
        );
        write(
            &status_d.join(format!("{package}.md5sums")),
            &md5sums.stdout,
            0o644,
        );
    }
    // update-ca-certificates never runs (no maintainer scripts), so its tool is dead weight and
    // the bundle is made here the way it would make it.
    let _ = std::fs::remove_file(root.join("usr/sbin/update-ca-certificates"));
    let _ = std::fs::remove_dir_all(root.join("usr/share/doc/ca-certificates/examples"));
    let mut certs = Vec::new();
    collect_crts(&root.join("usr/share/ca-certificates"), &mut certs);
    certs.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    let mut bundle = Vec::new();
    for cert in &certs {
        bundle.extend(
            std::fs::read(cert).unwrap_or_else(|e| panic!("cannot read {}: {e}", cert.display())),
        );
    }
    assert!(
        certs.len() > 100,
        "ca-certificates should bring >100 roots, found {}",
        certs.len()
    );
    mkdir(&root.join("etc/ssl/certs"), 0o755);
    write(
        &root.join("etc/ssl/certs/ca-certificates.crt"),
        &bundle,
        0o644,
    );

    write(&root.join("etc/passwd"), PASSWD.as_bytes(), 0o644);
    write(&root.join("etc/group"), GROUP.as_bytes(), 0o644);
    write(
        &root.join("etc/nsswitch.conf"),
        b"hosts: files dns\n",
        0o644,
    );
    mkdir(&root.join("home/nonroot"), 0o700);
    std::os::unix::fs::chown(root.join("home/nonroot"), Some(65532), Some(65532))
        .expect("chown /home/nonroot (needs root)");
    mkdir(&root.join("tmp"), 0o1777);
    mkdir(&root.join("root"), 0o700);
}

fn collect_crts(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .flatten()
    {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_crts(&path, out);
        } else if path.extension().is_some_and(|e| e == "crt") {
            out.push(path);
        }
    }
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn write(path: &Path, data: &[u8], mode: u32) {
    std::fs::write(path, data).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Adds one index per tag in [`BASE_TAGS`] over the per-arch manifests: umoci 0.4 cannot make
/// indexes and has no way to set a variant.
fn write_indexes(stand_in: &StandIn, layout: &Path) {
    let index_path = layout.join("index.json");
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(&index_path).expect("read index.json"))
            .expect("index.json is JSON");
    for tag in BASE_TAGS {
        let descriptor = |arch: &str| -> Value {
            let name = format!("{arch}-{tag}");
            let m = index["manifests"]
                .as_array()
                .expect("manifests array")
                .iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} missing from {}", index_path.display()));
            json!({ "mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"] })
        };
        let manifests: Vec<Value> = stand_in
            .arches
            .iter()
            .map(|(arch, variant, _)| {
                let mut m = descriptor(arch);
                m["platform"] = json!({ "architecture": arch, "os": "linux" });
                if let Some(v) = variant {
                    m["platform"]["variant"] = json!(v);
                }
                m
            })
            .collect();
        let platform_index =
            json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
        let bytes = serde_json::to_vec(&platform_index).expect("serialize");
        let scratch = layout.join(format!("index-{tag}.json"));
        std::fs::write(&scratch, &bytes).expect("write index blob");
        let sum = run_ok(Command::new(require_tool("sha256sum")).arg(&scratch));
        let hex = String::from_utf8_lossy(&sum.stdout)
            .split_whitespace()
            .next()
            .expect("sha256sum output")
            .to_owned();
        std::fs::rename(&scratch, layout.join("blobs/sha256").join(&hex)).expect("move index blob");
        index["manifests"]
            .as_array_mut()
            .expect("manifests array")
            .push(json!({
                "mediaType": OCI_INDEX,
                "digest": format!("sha256:{hex}"),
                "size": bytes.len(),
                "annotations": { "org.opencontainers.image.ref.name": tag },
            }));
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).expect("serialize"))
        .expect("write index.json");
}
