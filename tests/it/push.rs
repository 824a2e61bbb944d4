//! `--push` against the real registry in every mode: what stevedore pushes reads back with
//! skopeo under the same digest, runs, and a second push uploads nothing.

use std::process::Command;

use stevedore_testbed::{
    self as testbed, Fault, Mode, Registry, Side, TokenFront, PASSWORD, USERNAME,
};

use crate::util::*;

/// Builds the hello fixture on `base` and pushes it as `image`; returns the --json result.
fn push(base: &str, image: &str, extra: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = stevedore_build("hello");
    cmd.args(["--base", base, "-t", image, "--push", "--json"])
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    json(&run_ok(&mut cmd).stdout)
}

/// `skopeo inspect` through the registry's own flags (CA, credentials).
fn inspect(flags: Vec<String>, image: &str) -> serde_json::Value {
    let mut cmd = Command::new(testbed::require_tool("skopeo"));
    cmd.arg("inspect")
        .args(flags)
        .arg(format!("docker://{image}"));
    json(&run_ok(&mut cmd).stdout)
}

fn check_pushed(result: &serde_json::Value, image: &str, inspected: &serde_json::Value) {
    let digest = result["digest"].as_str().unwrap();
    let repo = image.rsplit_once(':').unwrap().0;
    assert_eq!(result["pushed"][0], format!("{repo}@{digest}"));
    assert_eq!(
        inspected["Digest"], digest,
        "skopeo reads the digest stevedore pushed"
    );
}

#[test]
fn pushes_over_http_and_the_image_runs() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let image = format!("{}/test/hello:1", registry.addr());
    let first = push(&base, &image, &[], &[]);
    check_pushed(
        &first,
        &image,
        &inspect(registry.skopeo_flags(Side::Inspect), &image),
    );
    assert!(
        first["push"]["mounted"].as_u64().unwrap() >= 1,
        "the base layer is mounted, not uploaded: {first}"
    );

    // What anyone pulls back runs as the nonroot user.
    let printed = pull_and_run(&registry.skopeo_flags(Side::Src), &image);
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");

    // Same image again: every blob is found in place.
    let second = push(&base, &image, &[], &[]);
    assert_eq!(second["digest"], first["digest"]);
    assert_eq!(second["push"]["uploaded"], 0, "{second}");
    assert_eq!(second["push"]["mounted"], 0, "{second}");

    // And under a new tag: the referrers (SBOM, provenance) name no tag, so nothing goes up.
    let retagged = format!("{}/test/hello:2", registry.addr());
    let third = push(&base, &retagged, &[], &[]);
    assert_eq!(third["digest"], first["digest"]);
    assert_eq!(third["push"]["uploaded"], 0, "{third}");
    assert_eq!(third["push"]["mounted"], 0, "{third}");
}

#[test]
fn pushes_over_tls_with_a_private_ca() {
    let registry = Registry::start(Mode::Tls);
    let base = registry.push_base();
    let image = format!("{}/test/hello:tls", registry.addr());
    let ca = registry.ca_cert().unwrap().display().to_string();
    let result = push(&base, &image, &["--registry-ca", &ca], &[]);
    check_pushed(
        &result,
        &image,
        &inspect(registry.skopeo_flags(Side::Inspect), &image),
    );
}

#[test]
fn pushes_with_basic_auth_and_rejects_wrong_credentials() {
    let registry = Registry::start(Mode::BasicAuth);
    let base = registry.push_base();
    let image = format!("{}/test/hello:auth", registry.addr());
    let ca = registry.ca_cert().unwrap().display().to_string();
    let creds = [
        ("STEVEDORE_USERNAME", USERNAME),
        ("STEVEDORE_PASSWORD", PASSWORD),
    ];
    let result = push(&base, &image, &["--registry-ca", &ca], &creds);
    check_pushed(
        &result,
        &image,
        &inspect(registry.skopeo_flags(Side::Inspect), &image),
    );

    let err = run_err(
        stevedore_build("hello")
            .args([
                "--base",
                "scratch",
                "-t",
                &image,
                "--push",
                "--registry-ca",
                &ca,
            ])
            .env("STEVEDORE_USERNAME", USERNAME)
            .env("STEVEDORE_PASSWORD", "not-the-password"),
    );
    assert!(err.contains("401") && err.contains("credentials"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
}

#[test]
fn pushes_with_credentials_from_a_podman_auth_file_alone() {
    let registry = Registry::start(Mode::BasicAuth);
    let base = registry.push_base();
    let image = format!("{}/test/hello:podman-auth", registry.addr());
    let ca = registry.ca_cert().unwrap().display().to_string();
    // What `podman login` writes, at REGISTRY_AUTH_FILE; docker's config is empty.
    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("auth.json");
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"))
    };
    std::fs::write(
        &auth_file,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.addr()
        ),
    )
    .unwrap();
    let no_docker = dir.path().join("no-docker");
    let auth_file = auth_file.display().to_string();
    let no_docker = no_docker.display().to_string();
    let env = [
        ("REGISTRY_AUTH_FILE", auth_file.as_str()),
        ("DOCKER_CONFIG", no_docker.as_str()),
    ];
    let result = push(&base, &image, &["--registry-ca", &ca], &env);
    check_pushed(
        &result,
        &image,
        &inspect(registry.skopeo_flags(Side::Inspect), &image),
    );
}

#[test]
fn pushes_through_a_bearer_token_front_and_skips_present_blobs() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    let image = format!("{}/test/hello:bearer", front.addr());
    let first = push(&base, &image, &[], &[]);
    check_pushed(
        &first,
        &image,
        &inspect(front.skopeo_flags(Side::Inspect), &image),
    );

    front.clear_requests();
    push(&base, &image, &[], &[]);
    let requests = front.requests();
    let uploads: Vec<_> = requests
        .iter()
        .filter(|(m, p)| (m == "PUT" || m == "PATCH") && p.contains("/blobs/"))
        .collect();
    assert!(
        uploads.is_empty(),
        "a second push uploads no blob: {uploads:?}"
    );
    // The only upload session is the one that checks push access while cargo compiles; it
    // is cancelled.
    let sessions: Vec<&str> = requests
        .iter()
        .filter(|(_, p)| p.contains("/blobs/uploads"))
        .map(|(m, _)| m.as_str())
        .collect();
    assert_eq!(sessions, ["POST", "DELETE"], "{requests:?}");
    assert!(
        requests
            .iter()
            .any(|(m, p)| m == "HEAD" && p.contains("/blobs/")),
        "{requests:?}"
    );
}

#[test]
fn multi_platform_push_gives_an_index_whose_arm64_image_runs_under_qemu() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let image = format!("{}/test/hello:multi", registry.addr());
    let result = push(
        &base,
        &image,
        &["--platform", "linux/amd64,linux/arm64"],
        &[],
    );
    let raw = Command::new(testbed::require_tool("skopeo"))
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .unwrap();
    let index = json(&raw.stdout);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}/{}",
                m["platform"]["os"], m["platform"]["architecture"], m["platform"]["variant"]
            )
            .replace('"', "")
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64/null", "linux/arm64/v8"]);
    assert_eq!(
        result["digest"],
        format!("sha256:{}", stevedore::Digest::of(&raw.stdout).hex())
    );

    for (arch, uname) in [("arm64", "aarch64"), ("amd64", "x86_64")] {
        let dir = tempfile::tempdir().unwrap();
        let flags = ["--src-tls-verify=false".to_owned()];
        let layout = pull_layout(&flags, &image, Some(arch), dir.path());
        let printed = run_layout(&layout, "x", None, &[]);
        assert!(
            printed.contains(&format!("hello arch={uname} uid=65532"))
                && printed.contains("c_says=ahoy"),
            "{arch}: {printed}"
        );
    }
}

#[test]
fn push_needs_a_registry_name() {
    let err = run_err(stevedore_build("hello").args(["--base", "scratch", "--push"]));
    assert!(err.contains("-t REGISTRY/REPOSITORY:TAG"), "{err}");
}

#[test]
fn index_create_merges_per_platform_images_into_the_same_index_as_one_build() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let repo = format!("{}/test/merged", registry.addr());
    let one_go = push(
        &base,
        &format!("{repo}:one-go"),
        &["--platform", "linux/amd64,linux/arm64"],
        &[],
    );
    // As two native runners would: each platform pushed on its own, to its own repository.
    push(
        &base,
        &format!("{}/test/amd64-runner:1", registry.addr()),
        &["--platform", "linux/amd64"],
        &[],
    );
    let runner = tempfile::tempdir().unwrap();
    let archive = runner.path().join("arm64.tar");
    let archive_output = format!("oci-archive={}", archive.display());
    push(
        &base,
        &format!("{repo}:arm64"),
        &["--platform", "linux/arm64", "--output", &archive_output],
        &[],
    );

    let merged = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"))
            .env("STEVEDORE_CACHE_DIR", tempfile::tempdir().unwrap().path())
            .args(["stevedore", "index", "create", &format!("{repo}:merged")])
            .args([
                "--from",
                &format!("{}/test/amd64-runner:1", registry.addr()),
                "--from",
                &format!("{repo}:arm64"),
            ]),
    );
    let digest = one_go["digest"].as_str().unwrap();
    assert_eq!(
        text(&merged.stdout).trim(),
        format!("{repo}@{digest}"),
        "the merged index equals the one built in one go"
    );
    let inspected = inspect(
        registry.skopeo_flags(Side::Inspect),
        &format!("{repo}:merged"),
    );
    assert_eq!(inspected["Digest"], digest);

    // A runner's archive serves as well as its push: its blobs are uploaded, not mounted.
    let from_archive = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"))
            .env("STEVEDORE_CACHE_DIR", tempfile::tempdir().unwrap().path())
            .args(["stevedore", "index", "create"])
            .arg(format!("{}/test/from-archive:1", registry.addr()))
            .args([
                "--from",
                &format!("{}/test/amd64-runner:1", registry.addr()),
                "--from",
                &archive_output,
            ]),
    );
    assert_eq!(
        text(&from_archive.stdout).trim(),
        format!("{}/test/from-archive@{digest}", registry.addr()),
    );

    let err = run_err(
        std::process::Command::new(env!("CARGO_BIN_EXE_cargo-stevedore")).args([
            "index",
            "create",
            &format!("{repo}:bad"),
            "--from",
            &format!("{repo}:arm64"),
            "--from",
            &format!("{repo}:arm64"),
        ]),
    );
    assert!(err.contains("both linux/arm64/v8 images"), "{err}");
}

#[test]
fn a_push_after_a_lost_blob_uploads_only_that_blob() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let image = format!("{}/test/resume:1", registry.addr());
    let first = push(&base, &image, &[], &[]);
    // As if an earlier push had died before this blob arrived.
    let manifest = inspect(vec!["--raw".into(), "--tls-verify=false".into()], &image);
    let ours = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    run_ok(
        Command::new(testbed::require_tool("curl"))
            .args(["-fsS", "-X", "DELETE"])
            .arg(format!("{}/v2/test/resume/blobs/{ours}", registry.url())),
    );

    let second = push(&base, &image, &[], &[]);
    assert_eq!(second["digest"], first["digest"]);
    assert_eq!(
        second["push"]["uploaded"], 1,
        "only the lost blob goes up again: {second}"
    );
    let pulled = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(testbed::require_tool("skopeo"))
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{image}"))
            .arg(format!("oci:{}:1", pulled.path().join("l").display())),
    );
}

#[test]
fn large_blobs_upload_in_chunks_from_disk_and_a_failed_patch_starts_a_new_session() {
    use stevedore::cache::BlobStore;
    use stevedore::registry::{Registry as Client, RegistryOptions};

    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    // 80 MiB of incompressible bytes: past the monolithic limit, so three PATCHes and a PUT.
    let (digest, size) = store
        .put_with("test blob", |w| {
            let mut state = 0x9e3779b97f4a7c15u64;
            let mut chunk = vec![0u8; 1 << 20];
            for _ in 0..80 {
                for b in chunk.iter_mut() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    *b = state as u8;
                }
                w.write_all(&chunk)?;
            }
            Ok(())
        })
        .unwrap();
    let client = Client::new(RegistryOptions {
        user_agent: "stevedore-test".into(),
        ..Default::default()
    })
    .unwrap();
    let repo: stevedore::Reference = format!("{}/test/big", front.addr()).parse().unwrap();
    assert!(!client.blob_exists(&repo, &digest).unwrap());
    // The first chunk's PATCH fails: the session is cancelled and the upload starts over.
    front.inject(Fault::status("PATCH", "/blobs/uploads/", 500, 1));
    front.clear_requests();
    client.upload_blob(&repo, &digest, size, &store).unwrap();
    assert_eq!(front.faults_left(), 0);
    assert!(client.blob_exists(&repo, &digest).unwrap());

    // Read back by an independent client and check the content.
    let back = dir.path().join("back");
    run_ok(
        Command::new(testbed::require_tool("curl"))
            .args(["-fsS", "-o"])
            .arg(&back)
            .arg(format!(
                "{}/v2/test/big/blobs/{digest}",
                front.upstream().url()
            )),
    );
    let bytes = std::fs::read(&back).unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(stevedore::Digest::of(&bytes), digest);
    let methods: Vec<String> = front
        .requests()
        .iter()
        .filter(|(_, p)| p.contains("/blobs/uploads/"))
        .map(|(m, _)| m.clone())
        .collect();
    assert_eq!(
        methods,
        ["POST", "PATCH", "DELETE", "POST", "PATCH", "PATCH", "PATCH", "PUT"],
        "the failed session is cancelled; then 80 MiB goes up as 32 + 32 + 16 MiB chunks"
    );
}
