//! glibc images (`--libc gnu`): linked by zig against the glibc the base's dpkg records name,
//! on the distroless/cc stand-in (Debian 12's libc6, libgcc-s1, libssl3), and refused on a
//! base without glibc before anything compiles.

use std::path::Path;
use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::util::*;

/// Debian 12's glibc, which the cc stand-in's libc6 is.
const BASE_GLIBC: (u32, u32) = (2, 36);

/// The newest `GLIBC_x.y` a binary needs, as readelf lists its version needs.
fn newest_glibc_need(binary: &Path) -> (u32, u32) {
    let out = run_ok(
        Command::new(testbed::require_tool("readelf"))
            .args(["-V", "--wide"])
            .arg(binary),
    );
    text(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let (major, minor) = v.split_once('.')?;
            Some((major.parse().ok()?, minor.split('.').next()?.parse().ok()?))
        })
        .max()
        .unwrap_or_else(|| panic!("{} needs no glibc version", binary.display()))
}

/// The program interpreter a dynamic executable names (`readelf -l`).
fn interpreter(binary: &Path) -> String {
    let out = run_ok(
        Command::new(testbed::require_tool("readelf"))
            .args(["-l", "--wide"])
            .arg(binary),
    );
    let listing = text(&out.stdout);
    listing
        .split("[Requesting program interpreter: ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("no interpreter in {}:\n{listing}", binary.display()))
        .to_owned()
}

/// The host's build scripts linked since `since` that zig linked (LLD names itself in
/// `.comment`; the host's cc does not). Cargo gives `target.<host>` settings to build scripts
/// unless told not to, and a glibc build targets the host's own triple on amd64.
fn build_scripts_linked_by_zig(target_dir: &Path, since: std::time::SystemTime) -> Vec<String> {
    let scripts = std::fs::read_dir(target_dir.join("release/build")).unwrap();
    scripts
        .flatten()
        .map(|unit| unit.path().join("build-script-build"))
        .filter(|script| {
            std::fs::metadata(script).is_ok_and(|m| m.modified().is_ok_and(|t| t >= since))
        })
        .filter(|script| {
            let comment = run_ok(
                Command::new(testbed::require_tool("readelf"))
                    .args(["-p", ".comment"])
                    .arg(script),
            );
            text(&comment.stdout).contains("Linker: LLD")
        })
        .map(|script| script.display().to_string())
        .collect()
}

#[test]
fn glibc_images_link_against_the_bases_glibc_and_serve_on_amd64_and_arm64() {
    let since = std::time::SystemTime::now();
    let registry = Registry::start(Mode::Http);
    let base = registry.push_cc_base();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-service/Cargo.toml");
    let out = run_ok(
        stevedore_build_manifest(&manifest)
            .args(["--libc", "gnu", "--base", &base])
            .args([
                "--platform",
                "linux/amd64,linux/arm64",
                "--json",
                "--output",
            ])
            .arg(format!("oci-layout={}", layout.display())),
    );
    let log = text(&out.stderr);
    assert!(
        log.contains("against glibc 2.36 (the base's)"),
        "the log says which glibc it links against:\n{log}"
    );
    let result = json(&out.stdout);
    assert_eq!(result["images"].as_array().unwrap().len(), 2, "{result:#}");
    // They run on the host, whose glibc may be older than the base's; and had they taken the
    // glibc build's linker, a musl build in the same target dir would build them again.
    let zig_linked = build_scripts_linked_by_zig(&testbed::fixture_target_dir(), since);
    assert!(
        zig_linked.is_empty(),
        "build scripts were linked by zig for the base's glibc: {zig_linked:?}"
    );

    for (arch, loader) in [
        ("amd64", "/lib64/ld-linux-x86-64.so.2"),
        ("arm64", "/lib/ld-linux-aarch64.so.1"),
    ] {
        let unpacked = tempfile::tempdir().unwrap();
        let bundle = unpack(&layout, "latest", Some(arch), unpacked.path());
        let rootfs = bundle.join("rootfs");
        let binary = rootfs.join("usr/local/bin/hello-service");
        assert_eq!(interpreter(&binary), loader, "{arch}");
        let need = newest_glibc_need(&binary);
        assert!(
            need <= BASE_GLIBC,
            "{arch}: the binary needs GLIBC_{}.{}, newer than the base's",
            need.0,
            need.1
        );
        // The base's own loader and libc run it (under qemu for arm64), as 65532.
        assert_example_serves(&rootfs, arch, arch);
        let read =
            run_ok(Command::new(testbed::require_crate_tool("rust-audit-info")).arg(&binary));
        assert!(
            text(&read.stdout).contains("\"hello-service\""),
            "{arch}: the dependency list is embedded"
        );
    }
}

#[test]
fn libc_gnu_on_a_base_without_glibc_is_refused_before_compiling() {
    let registry = Registry::start(Mode::Http);
    let static_base = registry.push_base();
    for base in [static_base.as_str(), "scratch"] {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("out");
        let err = run_exit(
            stevedore_build("hello")
                .args(["--libc", "gnu", "--base", base, "--platform", "linux/amd64"])
                .arg("--output")
                .arg(format!("oci-layout={}", layout.display())),
            1,
        );
        assert!(
            err.contains(&format!("the base {base} has no glibc for linux/amd64"))
                && err.contains("cc-debian12")
                && err.contains("--libc musl"),
            "{base}: {err}"
        );
        assert!(
            !err.contains("Compiling"),
            "{base}: refused before compiling: {err}"
        );
        assert!(!layout.exists(), "{base}: nothing is written");
    }
    let err = run_exit(stevedore_build("hello").args(["--libc", "uclibc"]), 2);
    assert!(err.contains("uclibc") && err.contains("gnu"), "{err}");
    let err = run_exit(stevedore_build("hello").args(["--glibc", "2.36"]), 1);
    assert!(
        err.contains("--glibc 2.36") && err.contains("add --libc gnu"),
        "a glibc version for a musl build is a mistake: {err}"
    );
}

/// A binary that needs a newer glibc than its base has is refused before anything is written,
/// naming the symbol and both versions: the example's C code calls `strlcpy` (new in glibc
/// 2.38), linked against 2.38 by `--glibc`, for the cc stand-in's 2.36. Against the base's own
/// 2.36 the same code does not link, as zig offers only what that glibc has.
#[test]
fn a_binary_needing_a_newer_glibc_than_the_base_is_refused_with_the_symbol_and_versions() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_cc_base();
    let dir = tempfile::tempdir().unwrap();
    let manifest = copy_example(&dir.path().join("service"));
    let checksum = dir.path().join("service/csrc/checksum.c");
    let code = std::fs::read_to_string(&checksum).unwrap();
    let code = code
        .replace(
            "#include <stdint.h>",
            "#include <stdint.h>\n#include <string.h>",
        )
        .replace(
            "    uint32_t a = 1, b = 0;",
            "    char head[4];\n    \
             size_t copied = strlcpy(head, (const char *)data, sizeof head);\n    \
             uint32_t a = 1 + (uint32_t)(copied & 1) + (uint32_t)head[0], b = 0;",
        );
    std::fs::write(&checksum, code).unwrap();
    let layout = dir.path().join("out");
    let build = |glibc: &[&str]| {
        let mut cmd = stevedore_build_manifest(&manifest);
        cmd.args([
            "--libc",
            "gnu",
            "--base",
            &base,
            "--platform",
            "linux/amd64",
        ])
        .args(glibc)
        .arg("--output")
        .arg(format!("oci-layout={}", layout.display()));
        cmd
    };
    let err = run_exit(&mut build(&["--glibc", "2.38"]), 1);
    assert!(
        err.contains("needs glibc 2.38")
            && err.contains("`strlcpy`")
            && err.contains("has glibc 2.36")
            && err.contains("--libc musl"),
        "{err}"
    );
    assert!(!layout.exists(), "nothing is written");
    let err = run_err(&mut build(&[]));
    assert!(
        err.contains("strlcpy"),
        "the link against 2.36 fails: {err}"
    );
    assert!(!layout.exists(), "nothing is written");
}
