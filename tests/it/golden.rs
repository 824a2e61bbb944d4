//! Golden digests: the example service's images, as this stevedore builds them, against the
//! digests committed in `tests/golden.toml`, so any change of layer or image bytes lands only
//! as a deliberate commit (with a CHANGELOG line), and a dependency bump that changes bytes
//! (zlib-rs, zstd, tar, the CA crate) is noticed. The test bed's stand-in base, built from
//! Debian's .debs with no clock in it, is held there too, with the .debs it was built from:
//! when Debian moves a package the test names it.
//!
//! The images are built on `scratch`: on the stand-in their manifests would name the test
//! registry's address, which changes every run, while the layers stevedore adds are the same
//! (the application layer does not depend on the base).
//!
//! To record new digests after a deliberate change: `STEVEDORE_BLESS=1 cargo test --test it
//! golden`, then commit the file with a CHANGELOG line saying which images changed and why.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use stevedore_testbed as testbed;

use crate::util::*;

/// The committed golden file.
const GOLDEN: &str = "tests/golden.toml";
/// Set, the test writes what this machine builds into [`GOLDEN`] instead of comparing.
const BLESS: &str = "STEVEDORE_BLESS";
const HEADER: &str = "# Digests of the example service's images as stevedore builds them with this toolchain,\n\
                      # and of the test bed's stand-in base with the .debs it is made of. Checked by\n\
                      # tests/it/golden.rs; rewrite with `STEVEDORE_BLESS=1 cargo test --test it golden`\n\
                      # only for a deliberate change, with a CHANGELOG line.\n";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Golden {
    toolchain: Toolchain,
    /// `scratch/COMPRESSION` → the index digest; `scratch/COMPRESSION/PLATFORM` → its
    /// manifest's.
    images: BTreeMap<String, String>,
    stand_in: StandIn,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Toolchain {
    rustc: String,
    rustc_commit_hash: Option<String>,
    zig: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct StandIn {
    /// Tag → index digest.
    tags: BTreeMap<String, String>,
    /// .deb file → sha256.
    debs: BTreeMap<String, String>,
}

/// What this machine builds, as the golden file records it.
fn built_here() -> Golden {
    let (rustc, rustc_commit_hash) = testbed_rustc();
    let dir = tempfile::tempdir().unwrap();
    // Copied without git: a commit's hash would follow its date.
    let manifest = copy_example(&dir.path().join("hello-service"));
    let mut images = BTreeMap::new();
    for compression in ["gzip", "zstd"] {
        let layout = dir.path().join(compression);
        let result = json(
            &run_ok(
                stevedore_build_manifest(&manifest)
                    .args(["--base", "scratch", "--compression", compression, "--json"])
                    .arg("--output")
                    .arg(format!("oci-layout={}", layout.display())),
            )
            .stdout,
        );
        let name = format!("scratch/{compression}");
        for image in result["images"].as_array().expect("images") {
            let platform = image["platform"].as_str().unwrap();
            let digest = image["digest"].as_str().unwrap();
            images.insert(format!("{name}/{platform}"), digest.to_owned());
        }
        images.insert(name, result["digest"].as_str().unwrap().to_owned());
    }
    let base = testbed::base_layout();
    let index = json(&std::fs::read(base.join("index.json")).unwrap());
    let tags = testbed::BASE_TAGS
        .iter()
        .map(|tag| {
            let entry = index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == *tag)
                .unwrap_or_else(|| panic!("no {tag} in {index:#}"));
            (
                tag.to_string(),
                entry["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    Golden {
        toolchain: Toolchain {
            rustc,
            rustc_commit_hash,
            zig: testbed::ZIGLANG_VERSION.to_owned(),
        },
        images,
        stand_in: StandIn {
            tags,
            debs: testbed::base_inputs().into_iter().collect(),
        },
    }
}

/// Each entry of `a` and `b` that differs, as `key: golden → here`.
fn differing(golden: &BTreeMap<String, String>, here: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = golden.keys().chain(here.keys()).collect();
    let none = String::from("(none)");
    keys.into_iter()
        .filter(|k| golden.get(*k) != here.get(*k))
        .map(|k| {
            let (g, h) = (golden.get(k).unwrap_or(&none), here.get(k).unwrap_or(&none));
            format!("  {k}: {g} in {GOLDEN}, {h} here")
        })
        .collect()
}

#[test]
fn the_example_s_images_and_the_stand_in_keep_their_golden_digests() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let here = built_here();
    if std::env::var_os(BLESS).is_some() {
        let text = toml::to_string(&here).unwrap();
        std::fs::write(&path, format!("{HEADER}\n{text}")).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let golden: Golden = toml::from_str(&text).unwrap_or_else(|e| panic!("{GOLDEN}: {e}"));
    // The toolchain first: with another rustc every digest differs, and that is the cause.
    assert_eq!(
        golden.toolchain, here.toolchain,
        "the golden digests were built with another toolchain than the test bed's: re-record \
         them (STEVEDORE_BLESS=1) only if the toolchain change is deliberate"
    );
    let debs = differing(&golden.stand_in.debs, &here.stand_in.debs);
    assert!(
        debs.is_empty(),
        "Debian moved the stand-in's packages (its digest follows them):\n{}",
        debs.join("\n")
    );
    let mut changed = differing(&golden.images, &here.images);
    changed.extend(differing(&golden.stand_in.tags, &here.stand_in.tags));
    assert!(
        changed.is_empty(),
        "image bytes changed:\n{}\nif deliberate, re-record with STEVEDORE_BLESS=1 and say so in \
         CHANGELOG.md",
        changed.join("\n")
    );
}
