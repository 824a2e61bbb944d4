//! `cargo stevedore build` end to end: the image it writes is valid for independent tools
//! (skopeo, umoci, oci-image-tool, docker) and its entrypoint runs as the nonroot user.

use std::io::Read;
use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::util::*;

#[test]
fn oci_layout_on_distroless_runs_as_nonroot() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let out_dir = tempfile::tempdir().unwrap();
    let layout = out_dir.path().join("image");

    let out = run_ok(
        stevedore_build("hello")
            .args([
                "--platform",
                "linux/amd64",
                "--base",
                &base,
                "-t",
                "example.com/hello:1.0",
                "--json",
            ])
            .arg("--output")
            .arg(format!("oci-layout={}", layout.display())),
    );
    let result = json(&out.stdout);
    let manifest_digest = result["digest"].as_str().expect("digest in --json output");

    // Independent readers accept the layout. oci-image-tool predates OCI 1.1: it rejects the
    // SBOM's empty config, and with more than one untagged entry (the SBOM and the provenance)
    // it calls any name "not unique". So it checks the image alone, in a layout that links
    // the same blobs and lists only the named image; pyspdxtools checks the SBOM.
    let image_only = out_dir.path().join("image-only");
    std::fs::create_dir_all(image_only.join("blobs/sha256")).unwrap();
    for blob in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap().path();
        let linked = image_only
            .join("blobs/sha256")
            .join(blob.file_name().unwrap());
        std::fs::hard_link(&blob, linked).unwrap();
    }
    std::fs::copy(layout.join("oci-layout"), image_only.join("oci-layout")).unwrap();
    let mut index = json(&std::fs::read(layout.join("index.json")).unwrap());
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "1.0");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    std::fs::write(image_only.join("index.json"), index.to_string()).unwrap();
    let validate = testbed::require_tool("oci-image-tool");
    run_ok(
        Command::new(validate)
            .args(["validate", "--type", "image", "--ref", "name=1.0"])
            .arg(&image_only),
    );
    let inspected = skopeo_inspect(&[], &format!("oci:{}:1.0", layout.display()));
    assert_eq!(inspected["Digest"], manifest_digest);
    assert_eq!(inspected["Architecture"], "amd64");

    // The entrypoint runs as 65532 and sees the base's CA bundle and a writable /tmp.
    let printed = run_layout(&layout, "1.0", None, &["arg1"]);
    assert!(
        printed.contains("hello arch=x86_64 uid=65532 gid=65532 euid=65532"),
        "{printed}"
    );
    assert!(printed.contains("tmp_writable=true"), "{printed}");
    assert!(
        printed.contains("panic_caught=true c_says=ahoy"),
        "{printed}"
    );
    let unpacked = tempfile::tempdir().unwrap();
    let base_bundle = unpack(
        testbed::base_layout(),
        "nonroot",
        Some("amd64"),
        unpacked.path(),
    );
    let bundle = base_bundle.join("rootfs/etc/ssl/certs/ca-certificates.crt");
    let bundle_len = std::fs::metadata(bundle).unwrap().len();
    assert!(
        printed.contains(&format!("cabundle_bytes={bundle_len} ")),
        "{printed}"
    );
    assert!(printed.contains(r#"args=["arg1"]"#), "{printed}");

    // Config: entrypoint, user, env, working dir, history, one diff_id per layer.
    let manifest = layout_json(&layout, manifest_digest);
    let config = layout_json(&layout, manifest["config"]["digest"].as_str().unwrap());
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/local/bin/hello"]));
    assert_eq!(c["User"], "65532", "the base's user is kept");
    assert_eq!(c["WorkingDir"], "/home/nonroot");
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    assert!(
        env.contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        "{env:?}"
    );
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "hello");
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "one base layer, then ours");
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        layers.len()
    );
    let history = config["history"].as_array().unwrap();
    assert!(
        history.len() >= 2,
        "the base's history is kept: {history:?}"
    );
    let ours = history.last().unwrap()["created_by"].as_str().unwrap();
    assert!(ours.starts_with("stevedore build hello"), "{ours}");

    // Annotations name the base by reference and by the digest of its amd64 manifest.
    let annotations = &manifest["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.base.name"],
        base.as_str()
    );
    let base_amd64 = skopeo_inspect(
        &["--tls-verify=false", "--override-arch", "amd64"],
        &format!("docker://{base}"),
    );
    let base_raw = Command::new(testbed::require_tool("skopeo"))
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{base}"),
        ])
        .output()
        .unwrap();
    let base_index = json(&base_raw.stdout);
    let amd64_digest = base_index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .map(|m| m["digest"].clone())
        .unwrap();
    assert_eq!(
        annotations["org.opencontainers.image.base.digest"],
        amd64_digest
    );
    assert_eq!(base_amd64["Architecture"], "amd64");
    assert_eq!(
        annotations["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        "https://example.com/hello"
    );
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(
        annotations["org.opencontainers.image.revision"],
        text(&head.stdout).trim(),
        "{annotations}"
    );

    check_app_layer(
        &layout_blob(&layout, layers[1]["digest"].as_str().unwrap()),
        config["rootfs"]["diff_ids"][1].as_str().unwrap(),
    );
}

/// The application layer is sorted, root-owned (but /home/nonroot), stamped with the
/// fixture's epoch, gzip'd with no name and mtime 0, and its diff_id is the tar's digest.
fn check_app_layer(blob: &[u8], diff_id: &str) {
    assert_eq!(&blob[..3], &[0x1f, 0x8b, 8], "gzip");
    assert_eq!(blob[3] & 0x08, 0, "no file name in the gzip header");
    assert_eq!(&blob[4..8], &[0, 0, 0, 0], "gzip mtime is 0");
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(blob)
        .read_to_end(&mut tar_bytes)
        .unwrap();
    assert_eq!(stevedore::Digest::of(&tar_bytes).to_string(), diff_id);

    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        let path = entry.path().unwrap().display().to_string();
        assert_eq!(h.mtime().unwrap(), FIXTURE_EPOCH, "{path}");
        let owner = (h.uid().unwrap(), h.gid().unwrap(), h.mode().unwrap());
        let expected = match path.as_str() {
            "home/nonroot/" => (65532, 65532, 0o700),
            "tmp/" => (0, 0, 0o1777),
            "usr/local/bin/hello" => (0, 0, 0o755),
            "etc/passwd" | "etc/group" | "etc/ssl/certs/ca-certificates.crt" => (0, 0, 0o644),
            p if p.ends_with('/') => (0, 0, 0o755),
            other => panic!("unexpected entry {other}"),
        };
        assert_eq!(owner, expected, "{path}");
        if path == "etc/passwd" {
            let mut s = String::new();
            { entry }.read_to_string(&mut s).unwrap();
            assert!(
                s.contains("nonroot:x:65532:65532:nonroot:/home/nonroot:"),
                "{s}"
            );
        }
        seen.push(path);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "entries are sorted");
    assert!(seen.contains(&"usr/local/bin/hello".to_owned()));
}

#[test]
fn scratch_base_gives_a_working_image() {
    let out_dir = tempfile::tempdir().unwrap();
    let layout = out_dir.path().join("scratch");
    run_ok(
        stevedore_build("hello")
            .args(["--base", "scratch", "--output"])
            .arg(format!("oci-layout={}", layout.display())),
    );
    let printed = run_layout(&layout, "latest", None, &[]);
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");
    assert!(printed.contains("tmp_writable=true"), "{printed}");
    // Nothing below: the accounts and the pinned CA bundle come in a layer of their own.
    let bundle_len = stevedore::ca_bundle().len();
    assert!(
        printed.contains(&format!("cabundle_bytes={bundle_len} ")),
        "{printed}"
    );
    // The layout also lists the SBOM, so skopeo is told which image: the default tag.
    let config = skopeo_inspect(&["--config"], &format!("oci:{}:latest", layout.display()));
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["WorkingDir"], "/home/nonroot");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
}

/// A zstd layer is read by a decoder stevedore does not share (skopeo's, converting it to
/// gzip), gives back the very tar the config's diff_id names (umoci checks it when unpacking)
/// and runs; a docker archive of it is refused before anything compiles.
#[test]
fn zstd_layers_are_read_by_skopeo_and_umoci_and_docker_archives_refuse_them() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("zstd");
    run_ok(
        stevedore_build("hello")
            .args(["--base", "scratch", "--compression", "zstd", "--output"])
            .arg(format!("oci-layout={}", layout.display())),
    );
    let manifest = skopeo_inspect(&["--raw"], &format!("oci:{}:latest", layout.display()));
    let top = &manifest["layers"][0];
    assert_eq!(
        top["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
        "{manifest}"
    );
    let blob = layout_blob(&layout, top["digest"].as_str().unwrap());
    assert!(
        blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "not a zstd frame"
    );

    let gzipped = dir.path().join("gzip");
    run_ok(
        Command::new(testbed::require_tool("skopeo"))
            .args(["copy", "--quiet", "--dest-compress-format", "gzip"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("oci:{}:x", gzipped.display())),
    );
    let converted = skopeo_inspect(&["--raw"], &format!("oci:{}:x", gzipped.display()));
    assert_eq!(
        converted["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let printed = run_layout(&gzipped, "x", None, &[]);
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");

    let archive = dir.path().join("hello.tar");
    let stderr = run_exit(
        stevedore_build("hello")
            .args(["--base", "scratch", "--compression", "zstd", "-t", "x/y:1"])
            .arg("--output")
            .arg(format!("docker-archive={}", archive.display())),
        1,
    );
    assert!(stderr.contains("--compression gzip"), "{stderr}");
    assert!(
        !stderr.contains("Compiling"),
        "refused only after compiling: {stderr}"
    );
    assert!(!archive.exists());
}

#[test]
fn docker_archive_loads_and_runs_in_docker() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let out_dir = tempfile::tempdir().unwrap();
    let archive = out_dir.path().join("hello.tar");
    run_ok(
        stevedore_build("hello")
            .args([
                "--base",
                &base,
                "-t",
                "stevedore-test/hello:archive",
                "--output",
            ])
            .arg(format!("docker-archive={}", archive.display())),
    );
    let inspected = skopeo_inspect(&[], &format!("docker-archive:{}", archive.display()));
    assert_eq!(inspected["Architecture"], "amd64");

    let dockerd = testbed::Dockerd::start(&[]);
    let loaded = run_ok(dockerd.docker().args(["load", "-i"]).arg(&archive));
    assert!(
        text(&loaded.stdout).contains("stevedore-test/hello:archive"),
        "{}",
        text(&loaded.stdout)
    );
    let ran = run_ok(dockerd.docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        "stevedore-test/hello:archive",
        "x",
    ]));
    let printed = text(&ran.stdout);
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");
    assert!(printed.contains("cwd=/home/nonroot"), "{printed}");
}

#[test]
fn same_inputs_give_the_same_digest() {
    let build_into = |name: &str| {
        let dir = tempfile::tempdir().unwrap();
        let out = run_ok(
            stevedore_build("hello")
                .args(["--base", "scratch", "--json", "--output"])
                .arg(format!("oci-layout={}", dir.path().join(name).display())),
        );
        json(&out.stdout)["digest"].clone()
    };
    assert_eq!(build_into("a"), build_into("b"));
}

/// With `-Zbuild-std`, a new target dir gets the standard library from stevedore's std cache
/// (built once per toolchain) instead of cargo compiling it again, and the image is the one
/// cargo's own std gives. The reference target dir keeps std compiled by cargo itself (the
/// cache turned off); the others are new on every run, and the second one's log must show
/// no std crate compiled at all.
#[test]
fn a_new_target_dir_gets_std_from_the_cache_and_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let build = |target_dir: &std::path::Path, cache: &str, layout: &str| {
        let out = run_ok(
            stevedore_build("hello")
                .env("CARGO_TARGET_DIR", target_dir)
                .env("STEVEDORE_STD_CACHE", cache)
                .args(["--platform", "linux/amd64", "--platform", "linux/arm64"])
                .args(["--base", "scratch", "--json", "--output"])
                .arg(format!("oci-layout={}", dir.path().join(layout).display())),
        );
        (json(&out.stdout)["digest"].clone(), text(&out.stderr))
    };
    let by_cargo = testbed::testbed_dir().join("std-by-cargo-target");
    let (reference, _) = build(&by_cargo, "off", "by-cargo");
    // The first new target dir fills the cache if this machine's has no std for the profile.
    let (first, _) = build(&dir.path().join("first-target"), "on", "first");
    let (digest, log) = build(&dir.path().join("second-target"), "on", "second");

    assert_eq!(first, reference, "std from the cache changed the image");
    assert_eq!(digest, reference, "std from the cache changed the image");
    for target in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        let copied = format!("copied the standard library for {target} from stevedore's std cache");
        assert!(log.contains(&copied), "no `{copied}` in:\n{log}");
    }
    for std_crate in ["std", "core", "alloc", "compiler_builtins", "panic_abort"] {
        let compiled = format!("Compiling {std_crate} v");
        assert!(
            !log.contains(&compiled),
            "cargo compiled {std_crate} again:\n{log}"
        );
    }
    assert!(
        log.contains("Compiling hello v"),
        "the project is compiled:\n{log}"
    );
}

#[test]
fn multi_platform_layout_holds_an_index_and_an_archive_refuses_clearly() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("multi");
    run_ok(
        stevedore_build("hello")
            .args([
                "--base",
                &base,
                "--platform",
                "linux/amd64,linux/arm64",
                "--output",
            ])
            .arg(format!("oci-layout={}", layout.display())),
    );
    let index = skopeo_inspect(&["--raw"], &format!("oci:{}:latest", layout.display()));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let arches: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    let printed = run_layout(&layout, "latest", Some("arm64"), &[]);
    assert!(
        printed.contains("hello arch=aarch64 uid=65532"),
        "{printed}"
    );

    let archive = dir.path().join("multi.tar");
    let err = run_err(
        stevedore_build("hello")
            .args([
                "--base",
                &base,
                "--platform",
                "linux/amd64,linux/arm64",
                "--output",
            ])
            .arg(format!("docker-archive={}", archive.display())),
    );
    assert!(
        err.contains("a docker archive holds one platform's image") && err.contains("--platform"),
        "{err}"
    );
    assert!(!archive.exists());
}

#[test]
fn all_bins_builds_one_image_per_binary() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        stevedore_build("multibin")
            .args([
                "--all-bins",
                "--base",
                "scratch",
                "-t",
                "registry.example.com/team/multi:1",
                "--json",
                "--output",
            ])
            .arg(format!(
                "oci-layout={}",
                dir.path().join("images").display()
            )),
    );
    let results = json(&out.stdout);
    let names: Vec<&str> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tags"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "registry.example.com/team/multi/one:1",
            "registry.example.com/team/multi/two:1"
        ]
    );
    for bin in ["one", "two"] {
        let printed = run_layout(&dir.path().join("images").join(bin), "1", None, &[]);
        assert_eq!(printed.trim(), bin);
    }
}
