//! Projects configured through `[package.metadata.stevedore]`: every setting reaches the
//! image, and a bad value is an error naming the key and the file.

use std::path::{Path, PathBuf};
use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry, Side};

use crate::util::*;

/// The tests that build share one copy of the project (so std is built once) and take turns.
pub static SHARED_PROJECT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The `configured` fixture, written where it builds with `@REGISTRY@` filled in and `edit`
/// applied to its Cargo.toml. A fixed place keeps cargo's std build from source reusable.
pub fn configured_project(dir: &Path, registry: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/configured");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("static")).unwrap();
    for file in ["Cargo.lock", "src/main.rs", "static/motd.txt"] {
        std::fs::copy(template.join(file), dir.join(file)).unwrap();
    }
    let manifest = std::fs::read_to_string(template.join("Cargo.toml")).unwrap();
    let manifest = edit(manifest.replace("@REGISTRY@", registry));
    // Each test pins its own registry's base afresh.
    let _ = std::fs::remove_file(dir.join("stevedore.lock"));
    let path = dir.join("Cargo.toml");
    // Only rewrite on change, so cargo sees an unchanged project as unchanged.
    if std::fs::read_to_string(&path).ok().as_deref() != Some(manifest.as_str()) {
        std::fs::write(&path, manifest).unwrap();
    }
    path
}

/// The shared copy of the project, configured for `registry`, with the turn to use it.
pub fn shared_project(registry: &Registry) -> (std::sync::MutexGuard<'static, ()>, PathBuf) {
    let turn = SHARED_PROJECT.lock().unwrap_or_else(|e| e.into_inner());
    let manifest = configured_project(
        &testbed::testbed_dir().join("configured-project"),
        &registry.addr(),
        |m| m,
    );
    commit_once(manifest.parent().unwrap());
    (turn, manifest)
}

/// Makes `dir` a git checkout with one commit of fixed author and date, unless it is one
/// already: `{git_sha}` and the provenance need a commit, and the test bed may live outside
/// any repository (CI keeps it in a cache directory).
fn commit_once(dir: &Path) {
    if dir.join(".git").exists() {
        return;
    }
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "stevedore tests")
            .env("GIT_AUTHOR_EMAIL", "tests@stevedore.invalid")
            .env("GIT_COMMITTER_NAME", "stevedore tests")
            .env("GIT_COMMITTER_EMAIL", "tests@stevedore.invalid")
            .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
            .status()
            .expect("git must be installed for the tests");
        assert!(status.success(), "git {args:?} failed in {}", dir.display());
    };
    git(&["init", "-q"]);
    git(&["add", "Cargo.toml", "Cargo.lock", "src", "static"]);
    git(&["commit", "-q", "-m", "configured fixture"]);
}

/// The commit `{git_sha}` names for the project of `manifest`.
pub fn head_of(manifest: &Path) -> String {
    let rev = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(manifest.parent().unwrap())
        .output()
        .unwrap();
    text(&rev.stdout).trim().to_owned()
}

pub fn build(manifest: &Path) -> Command {
    stevedore("build", manifest)
}

/// `cargo stevedore VERB` for `manifest`, with the test bed's toolchain, zig and caches.
pub fn stevedore(verb: &str, manifest: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"));
    cmd.env("PATH", testbed::tool_path_env())
        .env(testbed::ZIG_MIRROR_ENV, testbed::zig_mirror())
        .env("CARGO_TARGET_DIR", testbed::fixture_target_dir())
        .env("STEVEDORE_CACHE_DIR", testbed::testbed_dir().join("cache"))
        .env("SOURCE_DATE_EPOCH", FIXTURE_EPOCH.to_string())
        .env_remove("STEVEDORE_REPO")
        .args([verb, "--toolchain", "debweb", "--manifest-path"])
        .arg(manifest);
    cmd
}

#[test]
fn every_setting_from_package_metadata_reaches_the_pushed_image() {
    let registry = Registry::start(Mode::Http);
    registry.push_base();
    let (_one_at_a_time, manifest) = shared_project(&registry);
    let out = run_ok(build(&manifest).args(["--push", "--json"]));
    let result = json(&out.stdout);

    let sha = head_of(&manifest)[..12].to_owned();
    let repo = format!("{}/configured/app", registry.addr());
    let tags: Vec<&str> = result["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        [format!("{repo}:2.3.4"), format!("{repo}:sha-{sha}")],
        "repository and tags with placeholders"
    );

    let config = {
        let mut cmd = Command::new(testbed::require_tool("skopeo"));
        cmd.args(["inspect", "--config"])
            .args(registry.skopeo_flags(Side::Inspect))
            .arg(format!("docker://{repo}:sha-{sha}"));
        json(&run_ok(&mut cmd).stdout)
    };
    let c = &config["config"];
    assert_eq!(c["Cmd"], serde_json::json!(["serve", "--verbose"]), "args");
    assert_eq!(c["User"], "1234:1234", "user");
    assert_eq!(c["WorkingDir"], "/", "not the nonroot user's private home");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "9090/tcp": {}}),
        "ports"
    );
    assert_eq!(c["Labels"]["org.example.team"], "platform", "labels");
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"GREETING=ahoy") && env.contains(&"RUST_LOG=info"),
        "env: {env:?}"
    );
    assert_eq!(config["architecture"], "amd64", "platforms");
    assert!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len() >= 2,
        "on the base from the settings"
    );

    // The extra file is in the image with its mode, and Cmd/Env reach the program.
    let dir = tempfile::tempdir().unwrap();
    let flags = registry.skopeo_flags(Side::Src);
    let layout = pull_layout(&flags, &format!("{repo}:2.3.4"), None, dir.path());
    let bundle = unpack(&layout, "x", None, dir.path());
    let motd = bundle.join("rootfs/etc/motd");
    assert_eq!(std::fs::read_to_string(&motd).unwrap(), "welcome aboard\n");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&motd).unwrap().permissions())
            & 0o7777,
        0o600
    );
    let printed = run_bundle(&bundle, &[]);
    assert!(
        printed.contains(r#"configured args=["serve", "--verbose"] GREETING=Some("ahoy")"#),
        "{printed}"
    );
}

#[test]
fn flags_and_stevedore_repo_override_the_metadata() {
    let registry = Registry::start(Mode::Http);
    registry.push_base();
    let (_one_at_a_time, manifest) = shared_project(&registry);
    let elsewhere = format!("{}/elsewhere/app", registry.addr());
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("o");
    let out = run_ok(
        build(&manifest)
            .args(["--json", "--base", "scratch", "--output"])
            .arg(format!("oci-layout={}", layout.display()))
            .env("STEVEDORE_REPO", &elsewhere),
    );
    let result = json(&out.stdout);
    let bin = result["bin"].as_str().unwrap();
    assert_eq!(
        result["tags"][0],
        format!("{elsewhere}/{bin}:2.3.4"),
        "STEVEDORE_REPO, a prefix, wins over `repository`"
    );
    let bare = json(
        &run_ok(
            build(&manifest)
                .args(["--json", "--bare", "--base", "scratch", "--output"])
                .arg(format!("oci-layout={}", dir.path().join("bare").display()))
                .env("STEVEDORE_REPO", &elsewhere),
        )
        .stdout,
    );
    assert_eq!(
        bare["tags"][0],
        format!("{elsewhere}:2.3.4"),
        "--bare names STEVEDORE_REPO itself"
    );
    let named = json(
        &run_ok(
            build(&manifest)
                .args(["--json", "--tags", "9.9,at-{version}", "--base", "scratch"])
                .arg("--output")
                .arg(format!("oci-layout={}", dir.path().join("named").display())),
        )
        .stdout,
    );
    let repository = format!("{}/configured/app", registry.addr());
    assert_eq!(
        named["tags"],
        serde_json::json!([
            format!("{repository}:9.9"),
            format!("{repository}:at-2.3.4")
        ]),
        "--tags (ko's) names tags of `repository`, in place of `tags`"
    );
    let config = skopeo_inspect(&["--config"], &format!("oci:{}:2.3.4", layout.display()));
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        2,
        "--base scratch beats `base`: the accounts layer and the application's"
    );
}

#[test]
fn bad_metadata_names_the_key_and_the_file() {
    let cases: [(&str, &str, &str); 3] = [
        ("ports = [8080, 9090]", "ports = [\"http\"]", "`ports[0]`"),
        (
            "user = \"1234:1234\"",
            "user = \"1234:1234\"\ncolour = \"blue\"",
            "colour",
        ),
        (
            "platforms = [\"linux/amd64\"]",
            "platforms = [\"linux/mips64le\"]",
            "`platforms[0]`",
        ),
    ];
    for (from, to, key) in cases {
        let dir = tempfile::tempdir().unwrap();
        let manifest = configured_project(dir.path(), "127.0.0.1:1", |m| m.replace(from, to));
        let err = run_err(
            build(&manifest)
                .arg("--output")
                .arg(format!("oci-layout={}", dir.path().join("out").display())),
        );
        assert!(
            err.contains(key)
                && err.contains(&manifest.display().to_string())
                && err.contains("package.metadata.stevedore"),
            "{to}:\n{err}"
        );
        assert!(!dir.path().join("out").exists());
    }
}
