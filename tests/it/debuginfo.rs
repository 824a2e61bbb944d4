//! `--split-debuginfo`: the image holds a stripped binary with a build-id, the DWARF travels as
//! a referrer, and `cargo stevedore debuginfo` fetches it where gdb looks, checked with
//! readelf and gdb.

use std::path::{Path, PathBuf};
use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::util::*;

const DEBUGINFO: &str = "application/vnd.stevedore.debuginfo.v1";

fn hello_service() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-service/Cargo.toml")
}

/// `cargo stevedore debuginfo REF -o DIR`, with the test bed's blob cache.
fn debuginfo(published: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"));
    cmd.env("STEVEDORE_CACHE_DIR", testbed::testbed_dir().join("cache"))
        .args(["stevedore", "debuginfo", published, "-o"])
        .arg(dir);
    cmd
}

fn readelf(flag: &str, file: &Path) -> String {
    text(
        &run_ok(
            Command::new(testbed::require_tool("readelf"))
                .args(["--wide", flag])
                .arg(file),
        )
        .stdout,
    )
}

/// The build-id readelf finds in the file's notes.
fn build_id(file: &Path) -> String {
    let notes = readelf("--notes", file);
    let id = notes
        .split_once("Build ID: ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("readelf finds no build-id in {}:\n{notes}", file.display()));
    id.to_owned()
}

/// What gdb says about `hello_service::main` in `binary`, looking for separate debug files
/// in `debug_dir` only (the directory is set before gdb loads the binary): whether every
/// command succeeded, and everything it printed.
fn gdb_info_line(binary: &Path, debug_dir: &Path) -> (bool, String) {
    let out = Command::new(testbed::require_tool("gdb"))
        .args(["-batch", "-nx", "-iex"])
        .arg(format!("set debug-file-directory {}", debug_dir.display()))
        .args(["-ex", "info line hello_service::main"])
        .arg(binary)
        .output()
        .expect("gdb runs");
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

#[test]
fn split_debuginfo_ships_a_stripped_binary_and_gdb_finds_its_symbols_by_build_id() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let repo = format!("{}/test/debuginfo", registry.addr());
    let image = format!("{repo}:1");
    let dir = tempfile::tempdir().unwrap();
    let refs_file = dir.path().join("refs.txt");
    let layout = dir.path().join("out");
    let archive = dir.path().join("out.tar");
    let out = run_ok(
        stevedore_build_manifest(&hello_service())
            .args(["--base", &base, "--platform", "linux/amd64,linux/arm64"])
            .args(["--split-debuginfo", "-t", &image, "--push", "--json"])
            .arg("--image-refs")
            .arg(&refs_file)
            .arg("--output")
            .arg(format!("oci-layout={}", layout.display()))
            .arg("--output")
            .arg(format!("oci-archive={}", archive.display())),
    );
    let result = json(&out.stdout);
    let images = result["images"].as_array().unwrap().clone();
    assert_eq!(images.len(), 2, "{result:#}");

    // The binary in the pulled image: a build-id, and no DWARF and no symbol table.
    let flags = ["--src-tls-verify=false".to_owned()];
    let pulled = pull_layout(&flags, &image, Some("amd64"), dir.path());
    let index = json(&std::fs::read(pulled.join("index.json")).unwrap());
    let amd64 = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let binary = dir.path().join("hello-service");
    std::fs::write(
        &binary,
        file_in_top_layer(&pulled, &amd64, "usr/local/bin/hello-service"),
    )
    .unwrap();
    let sections = readelf("--section-headers", &binary);
    assert!(!sections.contains(".debug_info"), "{sections}");
    // Only rustc's `.debug_gdb_scripts` may stay: it is loaded data (the name of a gdb
    // pretty-printer script, read by the program), which GNU strip keeps too.
    let debug: Vec<&str> = sections
        .split_whitespace()
        .filter(|w| w.starts_with(".debug_") && *w != ".debug_gdb_scripts")
        .collect();
    assert!(
        debug.is_empty(),
        "DWARF left in the image: {debug:?}\n{sections}"
    );
    assert!(!sections.contains(" .symtab "), "{sections}");
    // No debug link: its CRC-32 of the debug file would make the image depend on the DWARF.
    assert!(!sections.contains(" .gnu_debuglink "), "{sections}");
    let id = build_id(&binary);
    assert!(id.len() >= 16, "a build-id of at least 8 bytes: {id}");

    // Without the fetched tree gdb knows nothing of the service's functions.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (_, blind) = gdb_info_line(&binary, &empty);
    assert!(
        !blind.contains("src/main.rs"),
        "symbols without the debug file?\n{blind}"
    );

    // Fetched from the registry: one .debug per platform, named by its build-id.
    let tree = dir.path().join("symbols");
    let fetched = text(&run_ok(&mut debuginfo(&image, &tree)).stdout);
    assert_eq!(fetched.lines().count(), 2, "{fetched}");
    let debug = tree
        .join(".build-id")
        .join(&id[..2])
        .join(format!("{}.debug", &id[2..]));
    assert!(debug.is_file(), "no {} in:\n{fetched}", debug.display());
    assert_eq!(build_id(&debug), id, "the debug file's build-id");
    let debug_sections = readelf("--section-headers", &debug);
    for section in [" .debug_info ", " .debug_line ", " .symtab "] {
        assert!(
            debug_sections.contains(section),
            "no{section}in the debug file"
        );
    }
    for line in fetched.lines() {
        let path = Path::new(line.split(' ').nth(2).unwrap());
        let named = path.strip_prefix(tree.join(".build-id")).unwrap();
        let id = build_id(path);
        assert_eq!(
            named,
            Path::new(&id[..2]).join(format!("{}.debug", &id[2..])),
            "{line}"
        );
        assert!(
            readelf("--section-headers", path).contains(" .debug_info "),
            "{line}"
        );
    }

    // gdb, given the tree, resolves the service's function to its source line.
    let (ok, seen) = gdb_info_line(&binary, &tree);
    assert!(
        ok && seen.contains("src/main.rs") && seen.contains("hello_service"),
        "gdb does not resolve hello_service::main:\n{seen}"
    );

    // The layout written beside the push lists the referrers and fetches the same files.
    let from_layout = dir.path().join("from-layout");
    let listed = text(
        &run_ok(&mut debuginfo(
            &format!("oci-layout={}", layout.display()),
            &from_layout,
        ))
        .stdout,
    );
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert_eq!(
        std::fs::read(from_layout.join(debug.strip_prefix(&tree).unwrap())).unwrap(),
        std::fs::read(&debug).unwrap()
    );

    // An oci-archive leaves the referrers out (podman's loader refuses them): its two
    // platforms are read, and the answer is the one for an image without symbols.
    let err = run_exit(
        &mut debuginfo(
            &format!("oci-archive={}", archive.display()),
            &dir.path().join("from-archive"),
        ),
        4,
    );
    assert!(
        err.contains("has no debug symbols for linux/amd64, linux/arm64"),
        "{err}"
    );

    // --image-refs names each platform's debug-symbols referrer, which the registry holds
    // under the sha256-<hex> fallback tag of the manifest it is about.
    let refs = std::fs::read_to_string(&refs_file).unwrap();
    for image in &images {
        let digest = image["digest"].as_str().unwrap();
        let raw = run_ok(
            Command::new(testbed::require_tool("skopeo"))
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{repo}:{}", digest.replace(':', "-"))),
        );
        let referrers = json(&raw.stdout);
        let entry = referrers["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["artifactType"] == DEBUGINFO)
            .unwrap_or_else(|| panic!("no debuginfo referrer of {digest}: {referrers:#}"));
        let line = format!("{repo}@{}", entry["digest"].as_str().unwrap());
        assert!(refs.lines().any(|l| l == line), "{line} not in:\n{refs}");
        // The SBOM about the same manifest is listed beside it (one update of the tag for both).
        let sbom = referrers["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["artifactType"] == "application/spdx+json")
            .unwrap_or_else(|| panic!("no SBOM referrer of {digest}: {referrers:#}"));
        let line = format!("{repo}@{}", sbom["digest"].as_str().unwrap());
        assert!(refs.lines().any(|l| l == line), "{line} not in:\n{refs}");
    }
}

#[test]
fn debuginfo_of_an_image_without_symbols_exits_4_and_says_how_to_get_them() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("symbols");
    let err = run_exit(&mut debuginfo(&base, &tree), 4);
    assert!(
        err.contains("no debug symbols") && err.contains("--split-debuginfo"),
        "{err}"
    );
    assert!(!tree.exists(), "nothing is written");
}
