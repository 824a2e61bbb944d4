//! What scanners read in an image: the binary's embedded dependency list (cargo-auditable's
//! `.dep-v0`), checked with the cargo-auditable project's own reader and readelf, and the
//! SBOM's Debian packages of the base, checked against the .debs the base was made from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::util::*;

fn hello_service() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-service/Cargo.toml")
}

/// (name, version) of every package in a Cargo.lock.
fn locked_versions(manifest: &Path) -> BTreeMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Lock {
        package: Vec<Locked>,
    }
    #[derive(serde::Deserialize)]
    struct Locked {
        name: String,
        version: String,
    }
    let text = std::fs::read_to_string(manifest.with_file_name("Cargo.lock")).unwrap();
    let lock: Lock = toml::from_str(&text).unwrap();
    lock.package
        .into_iter()
        .map(|p| (p.name, p.version))
        .collect()
}

/// The file at `path` in the image's top layer (ours), written to `dir`.
fn file_from_top_layer(layout: &Path, manifest_digest: &str, path: &str, dir: &Path) -> PathBuf {
    let out = dir.join(manifest_digest.trim_start_matches("sha256:"));
    std::fs::write(&out, file_in_top_layer(layout, manifest_digest, path)).unwrap();
    out
}

fn section_names(binary: &Path) -> String {
    let out = run_ok(
        Command::new(testbed::require_tool("readelf"))
            .args(["--wide", "--section-headers"])
            .arg(binary),
    );
    text(&out.stdout)
}

/// The SPDX documents in a layout, by the digest of the image they describe.
fn sboms_by_subject(layout: &Path) -> BTreeMap<String, serde_json::Value> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"] == "application/spdx+json")
        .map(|m| {
            let manifest = layout_json(layout, m["digest"].as_str().unwrap());
            let subject = manifest["subject"]["digest"].as_str().unwrap().to_owned();
            let doc = layout_json(layout, manifest["layers"][0]["digest"].as_str().unwrap());
            (subject, doc)
        })
        .collect()
}

/// `dpkg-deb -f DEB FIELD` for the stand-in's .deb of `package` (any architecture listed).
fn deb_field(package: &str, arch: &str, field: &str) -> String {
    let debs = testbed::testbed_dir().join("debs");
    let deb = std::fs::read_dir(&debs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("{package}_"))
                && (name.ends_with(&format!("_{arch}.deb")) || name.ends_with("_all.deb"))
        })
        .unwrap_or_else(|| panic!("no {package} .deb for {arch} in {}", debs.display()));
    let out = run_ok(
        Command::new(testbed::require_tool("dpkg-deb"))
            .arg("-f")
            .arg(&deb)
            .arg(field),
    );
    text(&out.stdout).trim().to_owned()
}

#[test]
fn scanners_read_the_crates_from_the_binary_and_the_base_packages_from_the_sbom() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let out_dir = tempfile::tempdir().unwrap();
    let layout = out_dir.path().join("image");
    let manifest = hello_service();
    let out = run_ok(
        stevedore_build_manifest(&manifest)
            .args(["--platform", "linux/amd64", "--platform", "linux/arm64"])
            .args(["--base", &base, "--json", "--output"])
            .arg(format!("oci-layout={}", layout.display())),
    );
    let result = json(&out.stdout);
    let images = result["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{result:#}");
    let locked = locked_versions(&manifest);
    let audit_info = testbed::require_crate_tool("rust-audit-info");
    let sboms = sboms_by_subject(&layout);

    for image in images {
        let digest = image["digest"].as_str().unwrap();
        let arch = match image["platform"].as_str().unwrap() {
            "linux/amd64" => "amd64",
            "linux/arm64" | "linux/arm64/v8" => "arm64",
            other => panic!("unexpected platform {other}"),
        };
        let binary = file_from_top_layer(
            &layout,
            digest,
            "usr/local/bin/hello-service",
            out_dir.path(),
        );
        assert!(
            section_names(&binary).contains(" .dep-v0 "),
            "{arch}: readelf finds no .dep-v0 section"
        );

        // The cargo-auditable project's reader lists every crate with the locked version.
        let read = run_ok(Command::new(&audit_info).arg(&binary));
        let info = json(&read.stdout);
        let listed: BTreeMap<String, String> = info["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["version"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(listed, locked, "{arch}: {info:#}");
        let root: Vec<&serde_json::Value> = info["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["root"] == true)
            .collect();
        assert_eq!(root.len(), 1, "{info:#}");
        assert_eq!(root[0]["name"], "hello-service");
        let cc = info["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "cc")
            .unwrap();
        assert_eq!(cc["kind"], "build", "{info:#}");
        assert_eq!(cc["source"], "crates.io", "{info:#}");

        // The SBOM lists the base's Debian packages beside the crates, as dpkg recorded them.
        let doc = &sboms[digest];
        let packages = doc["packages"].as_array().unwrap();
        let purl = |p: &serde_json::Value| {
            // The CA bundle's entry has no purl.
            p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let debs: BTreeMap<String, &serde_json::Value> = packages
            .iter()
            .filter(|p| purl(p).starts_with("pkg:deb/"))
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p))
            .collect();
        assert_eq!(
            debs.keys().collect::<Vec<_>>(),
            ["base-files", "ca-certificates", "netbase", "tzdata"],
            "{arch}"
        );
        for (name, p) in &debs {
            let version = deb_field(name, arch, "Version");
            let deb_arch = deb_field(name, arch, "Architecture");
            assert_eq!(p["versionInfo"], version.as_str(), "{name}");
            assert_eq!(
                purl(p),
                format!(
                    "pkg:deb/debian/{name}@{}?arch={deb_arch}&distro=debian-12",
                    version.replace('+', "%2B")
                )
            );
            let maintainer = deb_field(name, arch, "Maintainer");
            let (who, _) = maintainer.split_once(" <").unwrap();
            assert!(
                p["supplier"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("Person: {who} (")),
                "{name}: {p}"
            );
        }
        assert_eq!(
            debs["base-files"]["versionInfo"],
            deb_field("base-files", arch, "Version")
        );
        assert!(purl(debs["base-files"]).contains(&format!("arch={arch}&")));
        assert_eq!(debs["netbase"]["licenseDeclared"], "GPL-2.0-only");
        assert_eq!(
            debs["ca-certificates"]["licenseDeclared"],
            "GPL-2.0-or-later AND MPL-2.0"
        );
        // base-files' copyright is free-form text: nothing is asserted.
        assert_eq!(debs["base-files"]["licenseDeclared"], "NOASSERTION");
        assert!(
            packages
                .iter()
                .any(|p| purl(p) == format!("pkg:cargo/cc@{}", locked["cc"])),
            "the crates are still listed"
        );
        let spdx = out_dir.path().join(format!("{arch}.spdx.json"));
        std::fs::write(&spdx, serde_json::to_vec(doc).unwrap()).unwrap();
        testbed::validate_spdx(&spdx);
    }
}

#[test]
fn no_auditable_leaves_no_dependency_section() {
    let out_dir = tempfile::tempdir().unwrap();
    let layout = out_dir.path().join("image");
    let out = run_ok(
        stevedore_build("hello")
            .args(["--platform", "linux/amd64", "--base", "scratch"])
            .args(["--no-auditable", "--json", "--output"])
            .arg(format!("oci-layout={}", layout.display())),
    );
    let digest = json(&out.stdout)["digest"].as_str().unwrap().to_owned();
    let binary = file_from_top_layer(&layout, &digest, "usr/local/bin/hello", out_dir.path());
    let sections = section_names(&binary);
    assert!(sections.contains(" .text "), "readelf read it: {sections}");
    assert!(!sections.contains(".dep-v0"), "{sections}");
}

/// `--sbom none` (ko's flag) leaves the SPDX referrer out and the image as it was; the default
/// attaches one per image.
#[test]
fn sbom_none_attaches_no_sbom_and_keeps_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let build = |name: &str, extra: &[&str]| {
        let layout = dir.path().join(name);
        let out = run_ok(
            stevedore_build("hello")
                .args(["--base", "scratch", "--json", "--output"])
                .arg(format!("oci-layout={}", layout.display()))
                .args(extra),
        );
        (
            json(&out.stdout)["digest"].clone(),
            sboms_by_subject(&layout),
        )
    };
    let (with_digest, with) = build("with", &[]);
    let (without_digest, without) = build("without", &["--sbom", "none"]);
    assert_eq!(with.len(), 1, "the default attaches an SBOM");
    assert!(without.is_empty(), "--sbom none attaches none: {without:?}");
    assert_eq!(with_digest, without_digest, "the image itself is the same");
}
