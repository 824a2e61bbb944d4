//! The library API, through the runnable programs in `examples/`: what an xtask would write.
//! They run the way a user without rustup runs them: Debian's cargo and rustc, std from source.

use std::path::{Path, PathBuf};
use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry, Side};

use crate::util::*;

/// A program from `examples/`, built by `cargo test` beside the integration tests.
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let path: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/PROFILE/deps")
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test` (it builds the examples)",
        path.display()
    );
    let mut cmd = Command::new(path);
    cmd.env("PATH", testbed::tool_path_env())
        .env(testbed::ZIG_MIRROR_ENV, testbed::zig_mirror())
        .env("CARGO", "/usr/bin/cargo")
        .env("RUSTC", "/usr/bin/rustc")
        .env("CARGO_TARGET_DIR", testbed::fixture_target_dir())
        .env("STEVEDORE_CACHE_DIR", testbed::testbed_dir().join("cache"))
        .env("SOURCE_DATE_EPOCH", FIXTURE_EPOCH.to_string())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTFLAGS");
    cmd
}

#[test]
fn library_examples_build_a_layout_and_push() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");

    let out = run_ok(
        example("oci_layout")
            .arg(fixture("hello"))
            .arg(&layout)
            .arg(&base),
    );
    let printed = text(&out.stdout);
    assert!(
        printed.starts_with(&format!("{}@sha256:", layout.display())),
        "{printed}"
    );
    let printed = run_layout(&layout, "latest", None, &[]);
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");

    let image = format!("{}/library/hello:1", registry.addr());
    let out = run_ok(example("push").arg(fixture("hello")).arg(&image).arg(&base));
    let pushed = text(&out.stdout);
    let pushed = pushed.trim();
    let (repo, digest) = pushed.split_once('@').expect("REPO@DIGEST");
    assert_eq!(repo, format!("{}/library/hello", registry.addr()));
    let mut inspect = Command::new(testbed::require_tool("skopeo"));
    inspect
        .arg("inspect")
        .arg("--raw")
        .args(registry.skopeo_flags(Side::Inspect))
        .arg(format!("docker://{image}"));
    let raw = run_ok(&mut inspect).stdout;
    assert_eq!(
        stevedore::Digest::of(&raw).to_string(),
        digest,
        "the index stevedore reported is the one in the registry"
    );
    assert_eq!(json(&raw)["manifests"].as_array().unwrap().len(), 2);
}

/// stevedore-oci alone (its `copy` example): one platform of the base goes to another
/// repository byte for byte, as skopeo reads it back.
#[test]
fn the_registry_crate_alone_copies_an_image() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let copy = format!("{}/copied/static:1", registry.addr());
    let out = run_ok(example("copy").arg(&base).arg(&copy).arg("linux/arm64"));
    let printed = text(&out.stdout);
    let (repo, digest) = printed.trim().split_once('@').expect("REPO@DIGEST");
    assert_eq!(repo, format!("{}/copied/static", registry.addr()));
    let raw = |image: &str| {
        let mut inspect = Command::new(testbed::require_tool("skopeo"));
        inspect.arg("inspect").arg("--raw");
        inspect.args(registry.skopeo_flags(Side::Inspect));
        run_ok(inspect.arg(format!("docker://{image}"))).stdout
    };
    let copied = raw(&copy);
    assert_eq!(stevedore::Digest::of(&copied).to_string(), digest);
    let index = json(&raw(&base));
    let arm64 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .expect("the base has arm64");
    assert_eq!(
        arm64["digest"], digest,
        "the copy is the base's arm64 manifest"
    );
}

/// The crates a user's xtask compiles when it depends on the library the way README shows:
/// none of the command line's (clap, indicatif, tracing-subscriber), and at most 190 in all.
#[test]
fn an_xtask_on_the_library_compiles_no_command_line_crates() {
    const MOST: usize = 190;
    let dir = tempfile::tempdir().unwrap();
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/stevedore");
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"xtask\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nstevedore = {{ path = {:?} }}\n\n[workspace]\n",
            library.display().to_string()
        ),
    )
    .unwrap();
    // The workspace's lock, so the versions are the ones the tests ran with.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"),
        dir.path().join("Cargo.lock"),
    )
    .unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = run_ok(
        Command::new(cargo)
            .args(["tree", "--offline", "--edges", "normal", "--prefix", "none"])
            .current_dir(dir.path()),
    );
    let crates: std::collections::BTreeSet<String> = text(&out.stdout)
        .lines()
        .filter_map(|line| line.split(" (").next())
        .filter(|c| !c.starts_with("xtask "))
        .map(str::to_owned)
        .collect();
    for cli_only in ["clap ", "indicatif ", "tracing-subscriber "] {
        let found: Vec<_> = crates.iter().filter(|c| c.starts_with(cli_only)).collect();
        assert!(found.is_empty(), "the library pulls in {found:?}");
    }
    assert!(
        crates.len() <= MOST,
        "an xtask on the library compiles {} crates (at most {MOST}):\n{}",
        crates.len(),
        crates.iter().cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        crates.len() > 20,
        "cargo tree listed too little: {crates:?}"
    );
}
