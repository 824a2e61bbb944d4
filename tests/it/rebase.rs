//! `cargo stevedore rebase`: a published image put on a new base is, byte for byte, what a
//! build of the same checkout on that base writes, and nothing is compiled; an image that is
//! not stevedore's, or not on the base it records, is refused with nothing written.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use stevedore_testbed::{self as testbed, Mode, Registry, Side};

use crate::sign::{b64, keys, openssl_verifies};
use crate::util::*;

const PLATFORMS: &str = "linux/amd64,linux/arm64";

#[test]
fn rebase_onto_a_new_base_is_the_build_on_it_and_compiles_nothing() {
    let registry = Registry::start(Mode::Http);
    let base_a = registry.push_base();
    let base_b = registry.push_fixed_base("b", "base B\n");
    let work = tempfile::tempdir().unwrap();
    // A copy of its own: the runs below write its stevedore.lock.
    let manifest = copy_fixture("hello", &work.path().join("hello"));
    let image_a = format!("{}/rebase/hello:a", registry.addr());
    // Another repository of the same registry: the application layers are mounted from A's.
    let image_b = format!("{}/rebase/hello-b:b", registry.addr());

    run_ok(
        stevedore_build_manifest(&manifest)
            .args(["--platform", PLATFORMS, "--base", &base_a])
            .args(["-t", &image_a, "--push"]),
    );
    let built_b = work.path().join("built-b");
    let built = run_ok(
        stevedore_build_manifest(&manifest)
            .args(["--platform", PLATFORMS, "--base", &base_b, "--json"])
            .args(["-t", &image_b, "--output"])
            .arg(format!("oci-layout={}", built_b.display())),
    );
    let built_digest = json(&built.stdout)["digest"].as_str().unwrap().to_owned();

    // cargo would compile into this target dir, and write there even for a build with nothing
    // to do (fingerprints, locks): it must stay empty.
    let target = work.path().join("rebase-target");
    std::fs::create_dir(&target).unwrap();
    let (key, _, public) = keys(work.path(), "P-256");
    let rebased = work.path().join("rebased");
    let out = run_ok(
        stevedore_on("rebase", &manifest)
            .env("CARGO_TARGET_DIR", &target)
            .args(["--base", &base_b, "-t", &image_b, "--push", "--json"])
            .arg("--sign-key")
            .arg(&key)
            .arg("--output")
            .arg(format!("oci-layout={}", rebased.display()))
            .arg(&image_a),
    );
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("Compiling"), "cargo compiled:\n{stderr}");
    let left: Vec<_> = std::fs::read_dir(&target).unwrap().flatten().collect();
    assert!(left.is_empty(), "cargo wrote to its target dir: {left:?}");
    let result = json(&out.stdout);
    assert_eq!(result["digest"], built_digest.as_str(), "{result:#}");

    // Read back independently: skopeo sees the same index bytes in the pushed image, the
    // rebased layout and the build's layout.
    let inspect = registry.skopeo_flags(Side::Inspect);
    let inspect: Vec<&str> = inspect.iter().map(String::as_str).collect();
    let raw = |image: &str| {
        let skopeo = testbed::require_tool("skopeo");
        let out = run_ok(
            Command::new(skopeo)
                .arg("inspect")
                .arg("--raw")
                .args(&inspect)
                .arg(image),
        );
        out.stdout
    };
    let built_index = raw(&format!("oci:{}:b", built_b.display()));
    assert_eq!(sha256(&built_index), built_digest);
    assert_eq!(raw(&format!("oci:{}:b", rebased.display())), built_index);
    assert_eq!(raw(&format!("docker://{image_b}")), built_index);

    // Each platform: B's layers under the very application layer built on A.
    let index = json(&built_index);
    let mut mountable = std::collections::BTreeSet::new();
    let published_a = json(&raw(&format!("docker://{image_a}")));
    for (entry, old) in index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .zip(published_a["manifests"].as_array().unwrap())
    {
        let arch = entry["platform"]["architecture"].as_str().unwrap();
        let ours = layout_json(&rebased, entry["digest"].as_str().unwrap());
        let old = json(&raw(&format!(
            "docker://{}@{}",
            image_a.trim_end_matches(":a"),
            old["digest"].as_str().unwrap()
        )));
        let base = skopeo_inspect(
            &[&inspect[..], &["--override-arch", arch]].concat(),
            &format!("docker://{base_b}"),
        );
        let layers = digests(&ours["layers"]);
        let base_layers: Vec<String> = base["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(layers[..base_layers.len()], base_layers[..], "{arch}");
        mountable.extend(layers.iter().cloned());
        assert_eq!(layers.last(), digests(&old["layers"]).last(), "{arch}");
        assert_eq!(
            ours["annotations"]["org.opencontainers.image.base.name"],
            base_b.as_str()
        );
    }

    // Every distinct layer was mounted (B's from its repository, the application's from A's):
    // only the documents were uploaded.
    assert_eq!(result["push"]["mounted"], mountable.len(), "{result:#}");

    // The SBOMs and the provenance are redone; the provenance names B and the image rebased.
    let layout_index = layout_index(&rebased);
    let of_type = |t: &str| {
        layout_index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["artifactType"] == t)
            .count()
    };
    assert_eq!(of_type("application/spdx+json"), 2, "{layout_index:#}");
    let statement = provenance(&rebased, &layout_index);
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        built_digest[7..]
    );
    let definition = &statement["predicate"]["buildDefinition"];
    assert_eq!(definition["externalParameters"]["base"], base_b.as_str());
    let deps = definition["resolvedDependencies"].as_array().unwrap();
    assert!(
        deps.iter().any(|d| d["name"] == base_b.as_str()),
        "{deps:?}"
    );
    assert!(
        deps.iter()
            .any(|d| d["name"] == image_a.as_str() && d["annotations"]["rebasedFrom"] == true),
        "{deps:?}"
    );

    // Signed as a build signs: the index's cosign signature holds for openssl, and `verify`
    // (a rebuild on B) finds the pushed image identical, its signatures and provenance good.
    let repo = image_b.trim_end_matches(":b");
    let sig_tag = format!("docker://{repo}:sha256-{}.sig", &built_digest[7..]);
    let sig = json(&raw(&sig_tag));
    let layer = &sig["layers"][0];
    let payload = curl(&format!(
        "{}/v2/rebase/hello-b/blobs/{}",
        registry.url(),
        layer["digest"].as_str().unwrap()
    ));
    assert_eq!(
        json(&payload)["critical"]["image"]["docker-manifest-digest"],
        built_digest.as_str()
    );
    let signature = layer["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap();
    assert!(openssl_verifies(&public, &b64(signature), &payload));
    run_ok(
        stevedore_on("verify", &manifest)
            .args(["--base", &base_b, "--key"])
            .arg(&public)
            .arg(&image_b),
    );
}

fn curl(url: &str) -> Vec<u8> {
    run_ok(Command::new(testbed::require_tool("curl")).args(["-fsS", url])).stdout
}

#[test]
fn outdated_names_a_moved_base_tag_and_rebase_onto_it_is_the_next_build() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let work = tempfile::tempdir().unwrap();
    let manifest = copy_fixture("hello", &work.path().join("hello"));
    // Other tests' pins (their registries are gone) are no part of this project's lock.
    let _ = std::fs::remove_file(manifest.with_file_name("stevedore.lock"));
    let image = format!("{}/rebase/moved:a", registry.addr());
    let rebased = format!("{}/rebase/moved:rebased", registry.addr());
    let with_base = |subcommand: &str| {
        let mut cmd = stevedore_on(subcommand, &manifest);
        cmd.args(["--base", &base]);
        cmd
    };
    run_ok(
        with_base("build")
            .args(["--platform", PLATFORMS])
            .args(["-t", &image, "--push"]),
    );
    let outdated = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"));
        cmd.env("STEVEDORE_CACHE_DIR", testbed::testbed_dir().join("cache"))
            .args(["stevedore", "outdated"]);
        cmd
    };
    let fresh = run_ok(outdated().arg(&image));
    assert!(text(&fresh.stdout).contains("up to date"));

    // The stand-in's tag moves to B.
    registry.push_fixed_base("nonroot", "base B\n");
    let out = outdated().arg(&image).output().unwrap();
    let listed = text(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{listed}{}", text(&out.stderr));
    assert!(
        listed.contains("(linux/amd64)") && listed.contains("(linux/arm64"),
        "{listed}"
    );
    let lock = || {
        let mut cmd = outdated();
        cmd.arg("--manifest-path").arg(&manifest);
        cmd
    };
    let out = lock().output().unwrap();
    let listed = text(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{listed}{}", text(&out.stderr));
    assert!(
        listed.contains(&format!("stevedore.lock: {base} names")),
        "{listed}"
    );

    // Without a pin to keep, rebase resolves the tag again (and pins it in stevedore.lock).
    let target = work.path().join("rebase-target");
    std::fs::create_dir(&target).unwrap();
    let out = run_ok(
        with_base("rebase")
            .env("CARGO_TARGET_DIR", &target)
            .args(["-t", &rebased, "--push", "--json"])
            .arg(&image),
    );
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    let digest = json(&out.stdout)["digest"].clone();
    run_ok(outdated().arg(&rebased));
    run_ok(&mut lock());

    // The next build of the checkout takes the pin rebase wrote: B, and the same image.
    let built = run_ok(
        with_base("build")
            .args(["--platform", PLATFORMS, "--json", "--output"])
            .arg(format!("oci-layout={}", work.path().join("next").display())),
    );
    assert_eq!(json(&built.stdout)["digest"], digest);
}

#[test]
fn rebase_workspace_puts_every_service_on_the_moved_base_as_the_next_build_would() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let work = tempfile::tempdir().unwrap();
    let manifest = copy_fixture("services", &work.path().join("services"));
    let _ = std::fs::remove_file(manifest.with_file_name("stevedore.lock"));
    let repo = format!("{}/fleet", registry.addr());
    let digests = |subcommand: &str, args: &[&str]| {
        let mut cmd = stevedore_on(subcommand, &manifest);
        cmd.env("STEVEDORE_REPO", &repo)
            .args(["--workspace", "--json", "--base", &base])
            .args(args);
        let target = work.path().join(format!("{subcommand}-target"));
        if subcommand == "rebase" {
            std::fs::create_dir(&target).unwrap();
            cmd.env("CARGO_TARGET_DIR", &target);
        }
        let results = json(&run_ok(&mut cmd).stdout);
        if subcommand == "rebase" {
            assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "cargo ran");
        }
        digests_by_bin(&results)
    };
    let on_a = digests("build", &["--platform", "linux/amd64", "--push"]);
    registry.push_fixed_base("nonroot", "base B\n");
    let rebased = digests("rebase", &["--push"]);
    assert_eq!(rebased.len(), 2, "{rebased:?}");
    assert_ne!(rebased, on_a, "the base moved");
    let out = format!("oci-layout={}", work.path().join("next").display());
    let next = digests("build", &["--platform", "linux/amd64", "--output", &out]);
    assert_eq!(rebased, next);
}

/// `rebase -f FILE` with what `build --image-refs` wrote: the images are rebased (each to its
/// binary's names, as the next build names them) and the rest of the list (SBOMs, provenance,
/// signatures) is passed over. When every image that fails is refused, the exit code is 5.
#[test]
fn rebase_of_a_listed_fleet_is_the_next_build_and_refusals_exit_5() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let work = tempfile::tempdir().unwrap();
    let manifest = copy_fixture("services", &work.path().join("services"));
    let _ = std::fs::remove_file(manifest.with_file_name("stevedore.lock"));
    let (key, _, _) = keys(work.path(), "P-256");
    let repo = format!("{}/listed", registry.addr());
    let refs = work.path().join("refs.txt");
    let run = |subcommand: &str, args: &[&str]| {
        let mut cmd = stevedore_on(subcommand, &manifest);
        cmd.env("STEVEDORE_REPO", &repo)
            .args(["--json", "--base", &base])
            .args(args);
        cmd
    };
    let mut build = run(
        "build",
        &["--workspace", "--platform", "linux/amd64", "--push"],
    );
    build
        .arg("--sign-key")
        .arg(&key)
        .arg("--image-refs")
        .arg(&refs);
    let on_a = digests_by_bin(&json(&run_ok(&mut build).stdout));
    let listed = std::fs::read_to_string(&refs).unwrap();
    assert!(listed.lines().count() > 4, "{listed}");
    registry.push_fixed_base("nonroot", "base B\n");

    let target = work.path().join("rebase-target");
    std::fs::create_dir(&target).unwrap();
    let mut rebase = run("rebase", &["--push", "-f"]);
    rebase.arg(&refs).env("CARGO_TARGET_DIR", &target);
    let results = json(&run_ok(&mut rebase).stdout);
    let rebased = digests_by_bin(&results);
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "cargo ran");
    assert_eq!(rebased.len(), 2, "{rebased:?}");
    assert_ne!(rebased, on_a, "the base moved");
    let out = format!("oci-layout={}", work.path().join("next").display());
    let next = run(
        "build",
        &["--workspace", "--platform", "linux/amd64", "--output", &out],
    );
    assert_eq!(
        rebased,
        digests_by_bin(&json(&run_ok(&mut { next }).stdout))
    );

    // alpha built with a label this checkout's settings do not give: refused; beta is
    // rebased; the exit code says every failure was a refusal.
    let other = format!("{}/listed/other:1", registry.addr());
    run_ok(&mut run(
        "build",
        &[
            "-p",
            "alpha",
            "--platform",
            "linux/amd64",
            "--label",
            "x=y",
            "-t",
            &other,
            "--push",
        ],
    ));
    let beta = results
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["bin"] == "beta")
        .map(|r| r["tags"][0].as_str().unwrap().to_owned())
        .unwrap();
    std::fs::write(&refs, format!("# two\n{other}\n\n{beta}\n")).unwrap();
    let mut fleet = run("rebase", &["--push", "-f"]);
    fleet.arg(&refs);
    let refused = run_exit(&mut fleet, 5);
    assert!(
        refused.contains("1 of 2 images failed")
            && refused.contains("not built from this checkout"),
        "{refused}"
    );
}

#[test]
fn with_zstd_and_split_debuginfo_rebase_gives_the_builds_digests_and_referrers() {
    let registry = Registry::start(Mode::Http);
    let base_a = registry.push_base();
    let base_b = registry.push_fixed_base("b", "base B\n");
    let work = tempfile::tempdir().unwrap();
    let manifest = copy_fixture("hello", &work.path().join("hello"));
    let flags = [
        "--platform",
        PLATFORMS,
        "--compression",
        "zstd",
        "--split-debuginfo",
        "--json",
    ];
    let layout = |name: &str| work.path().join(name);
    let run = |subcommand: &str, base: &str, out: &Path, from: Option<&Path>| {
        let mut cmd = stevedore_on(subcommand, &manifest);
        cmd.args(flags)
            .args(["--base", base, "--output"])
            .arg(format!("oci-layout={}", out.display()));
        if let Some(from) = from {
            cmd.arg(format!("oci-layout={}", from.display()));
        }
        json(&run_ok(&mut cmd).stdout)["digest"].clone()
    };
    run("build", &base_a, &layout("a"), None);
    let built = run("build", &base_b, &layout("b"), None);
    let rebased = run("rebase", &base_b, &layout("r"), Some(&layout("a")));
    assert_eq!(rebased, built);

    // The same SBOMs and debug files, attached to the same manifests; only the provenance
    // (which names how each was made) differs.
    let referrers = |dir: &Path| {
        let mut found: Vec<(String, String)> = layout_index(dir)["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| !m["artifactType"].is_null())
            .filter(|m| m["artifactType"] != "application/vnd.in-toto+json")
            .map(|m| {
                let kind = m["artifactType"].as_str().unwrap().to_owned();
                (kind, m["digest"].as_str().unwrap().to_owned())
            })
            .collect();
        found.sort();
        found
    };
    let ours = referrers(&layout("r"));
    let debug = "application/vnd.stevedore.debuginfo.v1";
    assert_eq!(
        ours.iter().filter(|(kind, _)| kind == debug).count(),
        2,
        "{ours:?}"
    );
    assert_eq!(ours, referrers(&layout("b")));
}

#[test]
fn a_single_platform_image_rebased_is_the_build_on_the_new_base() {
    let registry = Registry::start(Mode::Http);
    let base_a = registry.push_base();
    let base_b = registry.push_fixed_base("b", "base B\n");
    let work = tempfile::tempdir().unwrap();
    let manifest = copy_fixture("hello", &work.path().join("hello"));
    let layout = |name: &str| format!("oci-layout={}", work.path().join(name).display());
    let digest = |subcommand: &str, base: &str, out: &str, from: Option<String>| {
        let mut cmd = stevedore_on(subcommand, &manifest);
        cmd.args(["--platform", "linux/amd64", "--json", "--base", base])
            .args(["--output", out])
            .args(from);
        json(&run_ok(&mut cmd).stdout)["digest"].clone()
    };
    digest("build", &base_a, &layout("a"), None);
    let built = digest("build", &base_b, &layout("b"), None);
    let rebased = digest("rebase", &base_b, &layout("r"), Some(layout("a")));
    assert_eq!(rebased, built);
    let top = skopeo_inspect(
        &["--raw"],
        &format!("oci:{}:latest", work.path().join("r").display()),
    );
    assert_eq!(
        top["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "one platform: the manifest is the image, as a build publishes it"
    );
}

#[test]
fn an_image_not_on_its_recorded_base_or_not_stevedores_is_refused() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let work = tempfile::tempdir().unwrap();
    let built = work.path().join("built");
    run_ok(
        stevedore_build("hello")
            .args(["--platform", PLATFORMS, "--base", &base, "--output"])
            .arg(format!("oci-layout={}", built.display())),
    );
    // By hand: the image's bottom layer swapped for its top one, everything else as built.
    let tampered = work.path().join("tampered");
    edit_layout(&built, &tampered, is_image, |_, manifest, _| {
        let layers = manifest["layers"].as_array_mut().unwrap();
        layers[0] = layers.last().unwrap().clone();
    });
    let out = work.path().join("out");
    let refused = run_exit(
        stevedore("rebase", "hello")
            .args(["--base", &base, "--output"])
            .arg(format!("oci-layout={}", out.display()))
            .arg(format!("oci-layout={}", tampered.display())),
        5,
    );
    assert!(
        refused.contains("linux/amd64") && refused.contains("its layer 1 is"),
        "{refused}"
    );
    assert!(!out.exists(), "a refused rebase wrote {}", out.display());

    // On its own base, but not what this checkout (with another label) builds.
    let other = run_exit(
        stevedore("rebase", "hello")
            .args(["--base", &base, "--label", "team=other", "--output"])
            .arg(format!("oci-layout={}", out.display()))
            .arg(format!("oci-layout={}", built.display())),
        5,
    );
    assert!(
        other.contains("was not built from this checkout") && other.contains("config:"),
        "{other}"
    );
    assert!(!out.exists(), "a refused rebase wrote {}", out.display());

    // The stand-in itself: no base annotations, not stevedore's.
    let foreign = run_exit(
        stevedore("rebase", "hello")
            .args(["--base", &base, "--output"])
            .arg(format!("oci-layout={}", out.display()))
            .arg(&base),
        5,
    );
    assert!(foreign.contains("was not built by stevedore"), "{foreign}");
    assert!(!out.exists(), "a refused rebase wrote {}", out.display());
}

/// Each image of a `--json` array of results as (binary, digest), in the array's order.
fn digests_by_bin(results: &Value) -> Vec<(String, String)> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["bin"].to_string(), r["digest"].to_string()))
        .collect()
}

/// An image's (not a referrer's) entry in a layout's `index.json`.
fn is_image(entry: &Value) -> bool {
    entry["artifactType"].is_null()
        && entry["mediaType"] == "application/vnd.oci.image.index.v1+json"
}

/// Copies the layout `from` to `to`, where the index `pick` chooses in `index.json` gets each
/// of its manifests (and their configs) through `edit`, and is replaced by the result.
fn edit_layout(
    from: &Path,
    to: &Path,
    pick: impl Fn(&Value) -> bool,
    mut edit: impl FnMut(&Path, &mut Value, &mut Value),
) {
    run_ok(Command::new("cp").arg("-r").arg(from).arg(to));
    let mut top = layout_index(to);
    let entry = top["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| pick(m))
        .expect("an index to edit");
    let mut index = layout_json(to, entry["digest"].as_str().unwrap());
    for child in index["manifests"].as_array_mut().unwrap() {
        let mut manifest = layout_json(to, child["digest"].as_str().unwrap());
        let mut config = layout_json(to, manifest["config"]["digest"].as_str().unwrap());
        edit(to, &mut manifest, &mut config);
        set_blob(to, &mut manifest["config"], &config);
        set_blob(to, child, &manifest);
    }
    set_blob(to, entry, &index);
    std::fs::write(to.join("index.json"), top.to_string()).unwrap();
}

/// Writes `document` as a blob and points `descriptor` at it.
fn set_blob(layout: &Path, descriptor: &mut Value, document: &Value) {
    let (digest, size) = write_blob(layout, document.to_string().as_bytes());
    descriptor["digest"] = json!(digest);
    descriptor["size"] = json!(size);
}

fn write_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = sha256(bytes);
    let path = layout.join("blobs/sha256").join(&digest[7..]);
    std::fs::write(path, bytes).unwrap();
    (digest, bytes.len())
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn layout_index(layout: &Path) -> Value {
    json(&std::fs::read(layout.join("index.json")).unwrap())
}

fn digests(layers: &Value) -> Vec<String> {
    layers
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// The provenance statement in a layout: the payload of its in-toto referrer's envelope.
fn provenance(layout: &Path, index: &Value) -> Value {
    use base64::Engine as _;
    let referrer = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == "application/vnd.in-toto+json")
        .expect("a provenance referrer");
    let manifest = layout_json(layout, referrer["digest"].as_str().unwrap());
    let envelope = layout_json(layout, manifest["layers"][0]["digest"].as_str().unwrap());
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    json(&payload)
}
