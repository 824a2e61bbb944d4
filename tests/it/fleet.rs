//! Fleet scale: a compile cache shared by checkouts at different paths (sccache, as CI runners
//! share one), the CI examples' per-arch jobs merged into one index, and every service of a
//! workspace pushed in one run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry, Sccache, TokenFront};

use crate::util::*;

/// Copies a fixture's sources (not its target dir) to `to`; returns the copy's manifest.
/// `cargo stevedore build` of `manifest` for both platforms (std from source), as a CI runner
/// would run it: its own CARGO_TARGET_DIR, the user's sccache settings, printing JSON.
fn runner_build(manifest: &Path, target_dir: &Path, base: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"));
    cmd.env("PATH", testbed::tool_path_env())
        .env(testbed::ZIG_MIRROR_ENV, testbed::zig_mirror())
        .env("CARGO_TARGET_DIR", target_dir)
        .env("STEVEDORE_CACHE_DIR", testbed::testbed_dir().join("cache"))
        .env("SOURCE_DATE_EPOCH", FIXTURE_EPOCH.to_string())
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        // As on a runner whose tools dir is new: std is compiled, through sccache. With this
        // machine's std cache it would be copied instead, leaving sccache only the project's
        // few crates to show hits for.
        .env("STEVEDORE_STD_CACHE", "off")
        .args(["stevedore", "build", "--toolchain", "debweb", "--json"])
        .args(["--platform", "linux/amd64,linux/arm64", "--base", base])
        .arg("--manifest-path")
        .arg(manifest);
    cmd
}

/// Compiles of `language` (`Rust`, `C/C++`) sccache counted as (hits, misses).
fn counts(stats: &serde_json::Value, language: &str) -> (u64, u64) {
    let count = |what: &str| {
        stats["stats"][what]["counts"][language]
            .as_u64()
            .unwrap_or(0)
    };
    (count("cache_hits"), count("cache_misses"))
}

#[test]
fn sccache_hits_every_dependency_from_a_second_checkout_and_the_digests_match() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    // The shared backend outlives the test, as a CI cache does, so the cold compiles (std for
    // two targets, every dependency) miss once per machine; the checkouts and target dirs are
    // new every run.
    let sccache = Sccache::start(&testbed::testbed_dir().join("fleet/sccache"));

    // Runner one: RUSTC_WRAPPER in the environment.
    let first = copy_fixture("hello", &dir.path().join("runner-1/checkout"));
    let mut build = runner_build(&first, &dir.path().join("runner-1/target"), &base);
    build
        .envs(sccache.env())
        .env("RUSTC_WRAPPER", sccache.wrapper());
    let one = json(&run_ok(&mut build).stdout);
    let first = sccache.stats();
    let (hits, misses) = counts(&first, "Rust");
    let compiled = hits + misses;
    assert!(
        compiled > 20,
        "the first build compiles std and its dependencies through sccache: {hits} hits, \
         {misses} misses"
    );
    // The fixture's build script compiles csrc/checksum.c with cc-rs, which puts sccache in
    // front of the C compiler too.
    let (c_hits, c_misses) = counts(&first, "C/C++");
    let c_compiled = c_hits + c_misses;
    assert!(
        c_compiled >= 1,
        "no C compile went through sccache: {first:#}"
    );

    // Runner two: another path, another target dir, and the wrapper from cargo's config
    // (`build.rustc-wrapper`), read from the directory cargo runs in.
    sccache.zero_stats();
    let second = copy_fixture("hello", &dir.path().join("ci/build-7/checkout"));
    let checkout = second.parent().unwrap();
    std::fs::create_dir_all(checkout.join(".cargo")).unwrap();
    std::fs::write(
        checkout.join(".cargo/config.toml"),
        format!(
            "[build]\nrustc-wrapper = {:?}\n",
            sccache.wrapper().display().to_string()
        ),
    )
    .unwrap();
    let mut build = runner_build(&second, &dir.path().join("ci/target-7"), &base);
    build.envs(sccache.env()).current_dir(checkout);
    let two = json(&run_ok(&mut build).stdout);
    let stats = sccache.stats();
    let (hits, misses) = counts(&stats, "Rust");
    eprintln!(
        "second checkout: {hits} Rust cache hits, {misses} misses (first compiled {compiled})"
    );
    assert_eq!(
        (hits, misses),
        (compiled, 0),
        "every crate the first build compiled through sccache hits from the second checkout: {stats:#}"
    );
    assert_eq!(
        counts(&stats, "C/C++"),
        (c_compiled, 0),
        "every C file the first build compiled hits from the second checkout (no checkout or \
         target-dir path in the C compiler's arguments): {stats:#}"
    );

    assert_eq!(one["index"], two["index"], "the index digests differ");
    assert_eq!(one["images"], two["images"], "the platform digests differ");
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ci")
        .join(name)
}

/// A YAML file as JSON, read by PyYAML (in the test bed's venv) so no YAML crate is needed.
fn yaml(path: &Path) -> serde_json::Value {
    let python = testbed::venv_dir().join("bin/python3");
    let script = "import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)";
    json(&run_ok(Command::new(python).args(["-c", script]).arg(path)).stdout)
}

/// The `cargo stevedore …` lines of some shell scripts, in order.
fn stevedore_lines<'a>(scripts: impl Iterator<Item = &'a str>) -> Vec<String> {
    scripts
        .flat_map(str::lines)
        .map(str::trim)
        .filter(|l| l.starts_with("cargo stevedore "))
        .map(str::to_owned)
        .collect()
}

/// The commands the GitHub workflow's jobs run, job by job, in the order of its jobs.
fn github_commands() -> Vec<String> {
    let workflow = yaml(&example("github-actions.yml"));
    let jobs = workflow["jobs"].as_object().expect("jobs");
    stevedore_lines(
        jobs.values()
            .flat_map(|job| job["steps"].as_array().expect("steps"))
            .filter_map(|step| step["run"].as_str()),
    )
}

/// The commands the GitLab pipeline's jobs run (`script` of every job, in file order).
fn gitlab_commands() -> Vec<String> {
    let pipeline = yaml(&example("gitlab-ci.yml"));
    let jobs = pipeline.as_object().expect("a mapping of jobs");
    stevedore_lines(
        jobs.values()
            .filter_map(|job| job["script"].as_array())
            .flatten()
            .filter_map(|line| line.as_str()),
    )
}

#[test]
fn ci_examples_pass_actionlint_and_name_the_same_commands() {
    testbed::tool_path_env(); // panics unless the venv, with actionlint, is there
    let actionlint = testbed::venv_dir().join("bin/actionlint");
    run_ok(Command::new(&actionlint).arg(example("github-actions.yml")));

    let github = github_commands();
    assert_eq!(
        github,
        gitlab_commands(),
        "the two CI examples run different commands"
    );
    assert_eq!(
        github.len(),
        2,
        "a build per runner, then the merge: {github:?}"
    );
    assert!(github[0].contains("--platform \"linux/$ARCH\"") && github[0].contains("--push"));
    assert!(github[1].starts_with("cargo stevedore index create"));
}

/// A tag can be moved to other code, a commit cannot: every action the GitHub example and the
/// README's snippet use is pinned by a full commit hash, its release named in a comment.
#[test]
fn ci_actions_are_pinned_by_commit() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let example = std::fs::read_to_string(example("github-actions.yml"));
    let (readme, example) = (readme.unwrap(), example.unwrap());
    let uses: Vec<&str> = [readme.as_str(), example.as_str()]
        .iter()
        .flat_map(|text| text.lines())
        .filter_map(|line| line.trim().trim_start_matches("- ").strip_prefix("uses: "))
        .collect();
    assert!(uses.len() >= 4, "{uses:?}");
    for action in uses {
        let (name, rest) = action.split_once('@').expect("ACTION@REVISION");
        let (commit, release) = rest.split_once(" # v").unwrap_or((rest, ""));
        assert!(
            commit.len() == 40
                && commit.bytes().all(|b| b.is_ascii_hexdigit())
                && !release.is_empty(),
            "{name} is pinned by `{rest}`, not by a commit with its release in a comment"
        );
    }
}

/// Runs an example's command as a CI job would: `sh -c`, in `checkout`, with the job's
/// variables, stevedore on PATH as `cargo stevedore`, and the runner's own target dir and cache.
fn run_job(command: &str, checkout: &Path, runner: &Path, vars: &[(&str, &str)]) -> Vec<u8> {
    let bin = Path::new(env!("CARGO_BIN_EXE_cargo-stevedore"))
        .parent()
        .unwrap();
    let mut path = vec![bin.to_path_buf()];
    path.extend(std::env::split_paths(&testbed::tool_path_env()));
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(checkout)
        .env("PATH", std::env::join_paths(path).unwrap())
        .env(testbed::ZIG_MIRROR_ENV, testbed::zig_mirror())
        // The runner's Rust: the test bed's toolchain with rust-src, picked the rustup way.
        .env("RUSTUP_TOOLCHAIN", "debweb")
        .env("CARGO_TARGET_DIR", runner.join("target"))
        .env("STEVEDORE_CACHE_DIR", runner.join("cache"))
        .env("DOCKER_CONFIG", runner.join("no-docker-config"))
        .env("SOURCE_DATE_EPOCH", FIXTURE_EPOCH.to_string())
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .envs(vars.iter().copied());
    run_ok(&mut cmd).stdout
}

#[test]
fn ci_example_jobs_merge_into_the_index_a_single_build_makes() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let repo = format!("{}/fleet/hello", registry.addr());
    let sha = "0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let checkout = |name: &str| {
        let manifest = copy_fixture("hello", &dir.path().join(name).join("checkout"));
        let mut toml = std::fs::read_to_string(&manifest).unwrap();
        toml.push_str(&format!(
            "\n[package.metadata.stevedore]\nbase = \"{base}\"\n"
        ));
        std::fs::write(&manifest, toml).unwrap();
        manifest.parent().unwrap().to_path_buf()
    };
    let commands = github_commands();
    let (build, merge) = (&commands[0], &commands[1]);

    for arch in ["amd64", "arm64"] {
        // Each runner keeps its own target dir and cache, as a CI runner's cache step would:
        // in the test bed, so musl std is built from source in them once per machine.
        let runner = testbed::testbed_dir()
            .join("fleet")
            .join(format!("runner-{arch}"));
        let checkout = checkout(&format!("runner-{arch}"));
        let vars = [("ARCH", arch), ("REPO", repo.as_str()), ("SHA", sha)];
        run_job(build, &checkout, &runner, &vars);
    }
    let runner = dir.path().join("runner-index");
    std::fs::create_dir_all(&runner).unwrap();
    run_job(merge, &runner, &runner, &[("REPO", &repo), ("SHA", sha)]);
    let merged = run_ok(Command::new(testbed::require_tool("skopeo")).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}:{sha}"),
    ]))
    .stdout;

    // The single build shares the fixtures' warm target dir: only the runners need their own.
    let single = checkout("single");
    let target = testbed::fixture_target_dir();
    let out = run_job(
        "cargo stevedore build --platform linux/amd64,linux/arm64 -t \"$REPO:single\" --push --json",
        &single,
        &dir.path().join("single"),
        &[("REPO", &repo), ("CARGO_TARGET_DIR", target.to_str().unwrap())],
    );
    let single = json(&out);
    assert_eq!(
        stevedore::Digest::of(&merged).to_string(),
        single["index"].as_str().expect("index digest"),
        "the merged index differs from the single build's: {}",
        text(&merged)
    );
}

/// How many times the registry behind `front` got `digest`'s bytes (an upload's closing PUT)
/// and how many times it was mounted instead.
fn uploads_and_mounts(front: &TokenFront, digest: &str) -> (usize, usize) {
    let hex = digest.trim_start_matches("sha256:");
    let requests = front.requests_with_query();
    let count = |method: &str, param: &str| {
        requests
            .iter()
            .filter(|(m, path, query)| {
                m == method && path.contains("/blobs/uploads/") && {
                    let query = query.replace("%3A", ":").replace("%3a", ":");
                    query
                        .split('&')
                        .any(|p| p == format!("{param}=sha256:{hex}"))
                }
            })
            .count()
    };
    (count("PUT", "digest"), count("POST", "mount"))
}

#[test]
fn workspace_pushes_every_service_with_the_base_uploaded_once() {
    // The base on one registry, the images pushed to another: its layers must be uploaded,
    // to the first service's repository only, and mounted into the second's.
    let base_registry = Registry::start(Mode::Http);
    let base = base_registry.push_base();
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let dir = tempfile::tempdir().unwrap();
    let manifest = copy_fixture("services", &dir.path().join("services"));
    let repo = format!("{}/team", front.addr());
    let out = run_ok(
        stevedore_build_manifest(&manifest)
            .env("STEVEDORE_REPO", &repo)
            .args(["--workspace", "--push", "--json", "--push-jobs", "2"])
            .args(["--base", &base]),
    );
    let results = json(&out.stdout);
    let results = results.as_array().expect("one result per service");
    let pushed: BTreeMap<&str, &str> = results
        .iter()
        .map(|r| (r["bin"].as_str().unwrap(), r["pushed"][0].as_str().unwrap()))
        .collect();
    assert_eq!(
        pushed.keys().copied().collect::<Vec<_>>(),
        ["alpha", "beta"]
    );
    let mut base_layers = Vec::new();
    for (bin, reference) in &pushed {
        assert!(
            reference.starts_with(&format!("{repo}/{bin}@sha256:")),
            "{reference}"
        );
        let manifest = skopeo_inspect(
            &["--raw", "--tls-verify=false"],
            &format!("docker://{reference}"),
        );
        let config = skopeo_inspect(
            &["--config", "--tls-verify=false"],
            &format!("docker://{reference}"),
        );
        assert_eq!(
            config["config"]["Entrypoint"][0],
            format!("/usr/local/bin/{bin}"),
            "{config:#}"
        );
        let layers: Vec<String> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect();
        // The application layer is the last; the ones before are the base's, in both images.
        let (_app, below) = layers.split_last().unwrap();
        if base_layers.is_empty() {
            base_layers = below.to_vec();
        }
        assert_eq!(below, base_layers, "{bin} is on the same base");
    }
    assert!(!base_layers.is_empty());
    for layer in &base_layers {
        let (uploaded, mounted) = uploads_and_mounts(&front, layer);
        assert_eq!(
            uploaded,
            1,
            "base layer {layer} uploaded once: {:#?}",
            front.requests_with_query()
        );
        assert!(
            mounted >= 1,
            "base layer {layer} mounted into the other repository"
        );
    }

    // Each image is the one a build of its package alone makes.
    let alone = run_ok(
        stevedore_build_manifest(&manifest)
            .env("STEVEDORE_REPO", &repo)
            .args(["-p", "beta", "--json", "--base", &base])
            .arg("--output")
            .arg(format!("oci-layout={}", dir.path().join("beta").display())),
    );
    let alone = json(&alone.stdout)["digest"].as_str().unwrap().to_owned();
    assert!(
        pushed["beta"].ends_with(&alone),
        "{} vs {alone}",
        pushed["beta"]
    );
}
