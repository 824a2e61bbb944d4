//! Hand-offs to what comes after a build: digests for the next CI step (`--image-refs`) and
//! every platform in one file (`oci-archive`), checked with skopeo and podman.

use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::util::*;

#[test]
fn image_refs_lists_the_index_each_manifest_the_sboms_and_the_provenance_by_digest() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let image = format!("{}/test/refs:1", registry.addr());
    let dir = tempfile::tempdir().unwrap();
    let refs_file = dir.path().join("refs.txt");
    let out = run_ok(
        stevedore_build("hello")
            .args(["--base", &base, "--platform", "linux/amd64,linux/arm64"])
            .args(["-t", &image, "--push", "--json", "--image-refs"])
            .arg(&refs_file),
    );
    let result = json(&out.stdout);
    let listed = std::fs::read_to_string(&refs_file).unwrap();
    let lines: Vec<&str> = listed.lines().collect();
    let repo = format!("{}/test/refs", registry.addr());
    assert_eq!(
        lines.len(),
        6,
        "index, two manifests, two SBOMs, the provenance: {listed}"
    );
    assert_eq!(
        lines[0],
        format!("{repo}@{}", result["digest"].as_str().unwrap())
    );
    for (line, image) in lines[1..3].iter().zip(result["images"].as_array().unwrap()) {
        assert_eq!(
            *line,
            format!("{repo}@{}", image["digest"].as_str().unwrap())
        );
    }
    // Every line names what the registry holds under that digest.
    for line in &lines {
        let raw = run_ok(
            Command::new(testbed::require_tool("skopeo"))
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{line}")),
        )
        .stdout;
        let digest = stevedore::Digest::of(&raw);
        assert!(line.ends_with(digest.as_str()), "{line} holds {digest}");
    }
    let artifacts = lines[3..]
        .iter()
        .map(|l| {
            let raw = Command::new(testbed::require_tool("skopeo"))
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{l}"))
                .output()
                .unwrap()
                .stdout;
            json(&raw)["artifactType"].clone()
        })
        .collect::<Vec<_>>();
    assert_eq!(
        artifacts,
        [
            "application/spdx+json",
            "application/spdx+json",
            "application/vnd.in-toto+json"
        ],
        "{artifacts:?}"
    );
}

#[test]
fn a_two_platform_oci_archive_opens_in_skopeo_and_loads_in_podman() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("hello.tar");
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let out = run_ok(
        stevedore_build("hello")
            .args([
                "--base",
                &base,
                "--platform",
                "linux/amd64,linux/arm64",
                "--json",
            ])
            .arg("-o")
            .arg(format!("oci-archive={}", archive.display())),
    );
    let index = json(&out.stdout)["digest"].clone();

    // skopeo copies every platform out of it, checking each digest on the way.
    let copied = dir.path().join("copied");
    run_ok(
        Command::new(testbed::require_tool("skopeo"))
            .args(["copy", "--all"])
            .arg(format!("oci-archive:{}:latest", archive.display()))
            .arg(format!("oci:{}:latest", copied.display())),
    );
    let copied_index = json(&std::fs::read(copied.join("index.json")).unwrap());
    assert_eq!(copied_index["manifests"][0]["digest"], index);
    let raw_index = json(&layout_blob(&copied, index.as_str().unwrap()));
    assert_eq!(raw_index["manifests"].as_array().unwrap().len(), 2);

    // podman loads it into its own store and knows the image's config.
    let store = dir.path().join("podman");
    let podman = |args: &[&str]| {
        let mut cmd = Command::new(testbed::require_tool("podman"));
        cmd.arg("--storage-driver=vfs")
            .arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("run"))
            .args(args);
        cmd
    };
    let loaded = run_ok(&mut podman(&["load", "-i", archive.to_str().unwrap()]));
    let said = text(&loaded.stdout);
    assert!(said.contains("Loaded image"), "{said}");
    let name = said
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .unwrap_or_else(|| panic!("podman names what it loaded: {said}"))
        .trim()
        .to_owned();
    let inspected = json(&run_ok(&mut podman(&["image", "inspect", &name])).stdout);
    let entrypoint = &inspected[0]["Config"]["Entrypoint"];
    assert_eq!(entrypoint[0], "/usr/local/bin/hello", "{inspected:#}");
}

#[test]
fn load_podman_puts_the_image_in_podmans_store_and_its_entrypoint_runs_as_nonroot() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let conf = podman_store(dir.path());
    let podman = |args: &[&str]| {
        let mut cmd = Command::new(testbed::require_tool("podman"));
        cmd.env("CONTAINERS_STORAGE_CONF", &conf).args(args);
        cmd
    };
    let name = "localhost/test/loaded:1";
    let out = run_ok(
        stevedore_build("hello")
            .env("CONTAINERS_STORAGE_CONF", &conf)
            .args(["--base", &base, "--platform", "linux/amd64,linux/arm64"])
            .args(["-t", name, "--load", "podman", "--json"]),
    );
    let result = json(&out.stdout);
    assert_eq!(result["loaded"]["engine"], "podman");
    assert_eq!(
        result["loaded"]["platform"], "linux/amd64",
        "the host's of two"
    );
    assert!(
        result["outputs"].as_array().unwrap().is_empty(),
        "no layout unless asked"
    );

    let inspected = json(&run_ok(&mut podman(&["image", "inspect", name])).stdout);
    let config = &inspected[0]["Config"];
    assert_eq!(
        config["Entrypoint"][0], "/usr/local/bin/hello",
        "{inspected:#}"
    );
    assert_eq!(inspected[0]["Architecture"], "amd64");
    let amd64 = &result["images"][0]["digest"];
    assert_eq!(&inspected[0]["Digest"], amd64, "the amd64 image, unchanged");

    // The entrypoint, run from podman's mount of the image as its user.
    let mounted = text(&run_ok(&mut podman(&["image", "mount", name])).stdout);
    let rootfs = mounted.trim().to_owned();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let user = config["User"].as_str().unwrap_or_default();
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let (uid, gid): (u64, u64) = match (uid.parse(), gid.parse()) {
        (Ok(u), Ok(g)) => (u, g),
        _ => panic!("a numeric user: {config:#}"),
    };
    let spec = serde_json::json!({
        "process": {
            "args": config["Entrypoint"],
            "env": config["Env"],
            "cwd": config["WorkingDir"].as_str().filter(|w| !w.is_empty()).unwrap_or("/"),
            "user": {"uid": uid, "gid": gid},
        },
        "root": {"path": rootfs},
    });
    std::fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
    let ran = testbed::run_entrypoint(&bundle, &[]);
    run_ok(&mut podman(&["image", "unmount", name]));
    let printed = text(&ran.stdout);
    assert!(ran.status.success(), "{printed}{}", text(&ran.stderr));
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");
}

#[test]
fn load_docker_puts_the_image_in_the_engine_and_docker_run_works() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dockerd = testbed::Dockerd::start(&[]);
    let name = "stevedore-test/hello:loaded";
    let out = run_ok(
        stevedore_build("hello")
            .env("DOCKER_HOST", dockerd.host())
            .env("DOCKER_CONFIG", dockerd.cli_config_dir())
            .args(["--base", &base, "-t", name, "--load", "--json"]),
    );
    assert_eq!(
        json(&out.stdout)["loaded"]["engine"],
        "docker",
        "a docker daemon that answers is chosen by default"
    );
    let ran = run_ok(
        dockerd
            .docker()
            .args(["run", "--rm", "--network", "none", name, "x"]),
    );
    let printed = text(&ran.stdout);
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");
}

/// The image settings as flags, and the health check as docker's `Healthcheck` field.
const SETTINGS_FLAGS: &[&str] = &[
    "--label",
    "team=payments",
    "--annotation",
    "com.example.ticket=OPS-1",
    "--env",
    "RUST_LOG=debug",
    "--user",
    "1000:1000",
    "--port",
    "8080",
    "--arg",
    "serve",
    "--arg",
    "--fast",
    "--healthcheck",
    "/usr/local/bin/hello health",
];

#[test]
fn settings_flags_and_the_healthcheck_land_in_the_config() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let image = format!("{}/test/settings:1", registry.addr());
    run_ok(
        stevedore_build("hello")
            .args([
                "--base",
                &base,
                "--platform",
                "linux/amd64",
                "-t",
                &image,
                "--push",
            ])
            .args(SETTINGS_FLAGS),
    );
    // `--raw`: without it skopeo re-encodes the config as OCI's type, which has no
    // Healthcheck.
    let config = skopeo_inspect(
        &["--config", "--raw", "--tls-verify=false"],
        &format!("docker://{image}"),
    );
    let runtime = &config["config"];
    assert_eq!(runtime["Labels"]["team"], "payments", "{config:#}");
    assert!(
        runtime["Env"]
            .as_array()
            .unwrap()
            .contains(&"RUST_LOG=debug".into()),
        "{config:#}"
    );
    assert_eq!(runtime["User"], "1000:1000");
    assert!(
        runtime["ExposedPorts"].get("8080/tcp").is_some(),
        "{config:#}"
    );
    assert_eq!(runtime["Cmd"], serde_json::json!(["serve", "--fast"]));
    assert_eq!(
        runtime["Healthcheck"],
        serde_json::json!({"Test": ["CMD", "/usr/local/bin/hello", "health"]}),
        "no timings given: the engine's defaults"
    );
    let manifest = skopeo_inspect(
        &["--raw", "--tls-verify=false"],
        &format!("docker://{image}"),
    );
    assert_eq!(manifest["annotations"]["com.example.ticket"], "OPS-1");
}

/// podman stores what `podman load` takes as an OCI image, and `podman image inspect` shows
/// docker's `Healthcheck` only for images in docker's format: for ours it shows none, though
/// the config in podman's store still holds it (docker shows and runs it).
#[test]
fn load_podman_keeps_the_healthcheck_in_the_config_which_podman_inspect_does_not_show() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let conf = podman_store(dir.path());
    let name = "localhost/test/health:1";
    run_ok(
        stevedore_build("hello")
            .env("CONTAINERS_STORAGE_CONF", &conf)
            .args(["--base", &base, "-t", name, "--load", "podman"])
            .args(SETTINGS_FLAGS),
    );
    let inspected = json(
        &run_ok(
            Command::new(testbed::require_tool("podman"))
                .env("CONTAINERS_STORAGE_CONF", &conf)
                .args(["image", "inspect", name]),
        )
        .stdout,
    );
    assert_eq!(
        inspected[0]["ManifestType"], "application/vnd.oci.image.manifest.v1+json",
        "{inspected:#}"
    );
    assert!(inspected[0]["Healthcheck"].is_null(), "{inspected:#}");
    let store = format!(
        "containers-storage:[vfs@{0}/root+{0}/run]{name}",
        dir.path().display()
    );
    let config = skopeo_inspect(&["--config", "--raw"], &store);
    assert_eq!(
        config["config"]["Healthcheck"],
        serde_json::json!({"Test": ["CMD", "/usr/local/bin/hello", "health"]}),
        "{config:#}"
    );
}
