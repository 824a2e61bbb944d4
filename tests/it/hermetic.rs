//! stevedore.lock, `--offline` and `verify`: a base named by tag is pinned once and built on
//! until the user refreshes it, a pinned build needs no network, and a rebuild is checked.

use std::path::Path;
use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry, Side};

use crate::config::{build, shared_project, stevedore};
use crate::util::*;

fn lock_text(manifest: &Path) -> String {
    let path = manifest.with_file_name("stevedore.lock");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The digest a tag names in the registry, as skopeo (not stevedore) reads it.
fn tag_digest(registry: &Registry, image: &str) -> String {
    let mut flags: Vec<&str> = vec!["--raw"];
    let registry_flags = registry.skopeo_flags(Side::Inspect);
    flags.extend(registry_flags.iter().map(String::as_str));
    let skopeo = testbed::require_tool("skopeo");
    let raw = run_ok(
        Command::new(skopeo)
            .arg("inspect")
            .args(&flags)
            .arg(format!("docker://{image}")),
    )
    .stdout;
    stevedore::Digest::of(&raw).to_string()
}

/// Points the base's tag at another image: its own amd64 manifest alone, not the index.
fn move_tag(registry: &Registry, image: &str) {
    let skopeo = testbed::require_tool("skopeo");
    let (src, dest) = (
        registry.skopeo_flags(Side::Src),
        registry.skopeo_flags(Side::Dest),
    );
    run_ok(
        Command::new(skopeo)
            .args(["copy", "--override-arch", "amd64", "--override-os", "linux"])
            .args(&src)
            .args(&dest)
            .arg(format!("docker://{image}"))
            .arg(format!("docker://{image}")),
    );
}

#[test]
fn the_lock_pins_the_base_until_updated_and_locked_fails_when_the_tag_moved() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let index_digest = tag_digest(&registry, &base);
    let (_one_at_a_time, manifest) = shared_project(&registry);

    // --locked with no lock yet changes nothing and says what to run.
    let err = run_err(build(&manifest).arg("--locked"));
    assert!(
        err.contains("not pinned") && err.contains("cargo stevedore lock"),
        "{err}"
    );
    assert!(!manifest.with_file_name("stevedore.lock").exists());

    // The first build pins the tag to what it names now.
    let first = json(&run_ok(build(&manifest).arg("--json")).stdout);
    let pinned = format!("reference = \"{base}\"\ndigest = \"{index_digest}\"");
    assert!(
        lock_text(&manifest).contains(&pinned),
        "{}",
        lock_text(&manifest)
    );
    run_ok(build(&manifest).arg("--locked"));

    move_tag(&registry, &base);
    let moved_digest = tag_digest(&registry, &base);
    assert_ne!(moved_digest, index_digest, "the tag must have moved");

    // A plain build keeps the pinned base; --locked notices the move and refuses.
    let again = json(&run_ok(build(&manifest).arg("--json")).stdout);
    assert_eq!(again["digest"], first["digest"]);
    assert!(lock_text(&manifest).contains(&pinned));
    let err = run_err(build(&manifest).arg("--locked"));
    assert!(
        err.contains("moved") && err.contains(&index_digest) && err.contains(&moved_digest),
        "{err}"
    );
    let lock_cmd = || stevedore("lock", &manifest);
    run_err(lock_cmd().arg("--locked"));
    assert!(
        lock_text(&manifest).contains(&pinned),
        "--locked must not write"
    );

    // --update-base (or `cargo stevedore lock`) takes the new base.
    run_ok(build(&manifest).arg("--update-base"));
    let updated = format!("reference = \"{base}\"\ndigest = \"{moved_digest}\"");
    assert!(
        lock_text(&manifest).contains(&updated),
        "{}",
        lock_text(&manifest)
    );
    let printed = text(&run_ok(&mut lock_cmd()).stdout);
    assert_eq!(printed.trim(), format!("{base}@{moved_digest}"));
    run_ok(lock_cmd().arg("--locked"));
}

#[test]
fn offline_builds_from_the_cache_alone_or_says_what_is_missing() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let mut flags = registry.skopeo_flags(Side::Inspect);
    flags.extend(["--override-arch", "amd64"].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let base_layers = skopeo_inspect(&flags, &format!("docker://{base}"))["Layers"].clone();
    let first_layer = base_layers[0]
        .as_str()
        .expect("the base has layers")
        .to_owned();
    let (_one_at_a_time, manifest) = shared_project(&registry);
    let cache = tempfile::tempdir().unwrap();
    let online = json(
        &run_ok(
            build(&manifest)
                .env("STEVEDORE_CACHE_DIR", cache.path())
                .arg("--json"),
        )
        .stdout,
    );
    drop(registry);

    let offline = json(
        &run_ok(
            build(&manifest)
                .env("STEVEDORE_CACHE_DIR", cache.path())
                .args(["--offline", "--json"]),
        )
        .stdout,
    );
    assert_eq!(offline["digest"], online["digest"]);

    // Another cache has none of it: every missing blob is named, and nothing is written.
    let empty = tempfile::tempdir().unwrap();
    let out = empty.path().join("out");
    let err = run_err(
        build(&manifest)
            .env("STEVEDORE_CACHE_DIR", empty.path())
            .arg("--offline")
            .arg("--output")
            .arg(format!("oci-layout={}", out.display())),
    );
    assert!(
        err.contains("--offline") && err.contains("the manifest sha256:"),
        "{err}"
    );
    assert!(!out.exists(), "a failed build must write nothing");

    // A corrupt cached layer is found on read, dropped, and named as missing.
    let victim = cache
        .path()
        .join("blobs/sha256")
        .join(first_layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&victim).expect("the online build cached the base's layers");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let err = run_err(
        build(&manifest)
            .env("STEVEDORE_CACHE_DIR", cache.path())
            .arg("--offline"),
    );
    assert!(
        err.contains("layer 1 of linux/amd64") && err.contains(&first_layer),
        "{err}"
    );
    assert!(!victim.exists(), "a corrupt blob must leave the cache");
}

#[test]
fn verify_rebuilds_and_names_the_first_differing_file() {
    let registry = Registry::start(Mode::Http);
    registry.push_base();
    let (_one_at_a_time, manifest) = shared_project(&registry);
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("image");
    let archive = out.path().join("image.tar");
    let built = json(
        &run_ok(
            build(&manifest)
                .args(["--push", "--json", "--output"])
                .arg(format!("oci-layout={}", layout.display()))
                .arg("--output")
                .arg(format!("oci-archive={}", archive.display())),
        )
        .stdout,
    );
    let digest = built["digest"].as_str().unwrap();
    let pushed = format!("{}/configured/app:2.3.4", registry.addr());
    let verify = |published: &str| {
        let mut cmd = stevedore("verify", &manifest);
        cmd.arg(published);
        cmd
    };

    for published in [
        format!("oci-layout={}", layout.display()),
        format!("oci-archive={}", archive.display()),
        pushed.clone(),
    ] {
        let printed = text(&run_ok(&mut verify(&published)).stdout);
        assert!(
            printed.contains(&format!("linux/amd64: identical {digest}")),
            "{printed}"
        );
    }

    // The pushed image's SBOM hangs off the fallback tag (distribution 2.8 has no referrers
    // API), as a valid SPDX document about this image.
    let image_manifest = built["images"][0]["digest"].as_str().unwrap();
    let fallback = format!(
        "{}/configured/app:sha256-{}",
        registry.addr(),
        image_manifest.trim_start_matches("sha256:")
    );
    let mut flags = registry.skopeo_flags(Side::Inspect);
    flags.push("--raw".into());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let referrers = skopeo_inspect(&flags, &format!("docker://{fallback}"));
    let entry = &referrers["manifests"][0];
    assert_eq!(
        entry["artifactType"], "application/spdx+json",
        "{referrers:#}"
    );
    let get = |path: String| {
        run_ok(
            Command::new(testbed::require_tool("curl"))
                .args([
                    "-fsS",
                    "-H",
                    "Accept: application/vnd.oci.image.manifest.v1+json",
                ])
                .arg(format!("{}/v2/configured/app/{path}", registry.url())),
        )
        .stdout
    };
    let sbom_manifest = json(&get(format!(
        "manifests/{}",
        entry["digest"].as_str().unwrap()
    )));
    assert_eq!(sbom_manifest["subject"]["digest"], image_manifest);
    let document = get(format!(
        "blobs/{}",
        sbom_manifest["layers"][0]["digest"].as_str().unwrap()
    ));
    let spdx = out.path().join("configured.spdx.json");
    std::fs::write(&spdx, &document).unwrap();
    testbed::validate_spdx(&spdx);
    assert!(text(&document).contains("\"configured\""));

    // A change in the source shows as the binary differing, named by its path in the image.
    let main_rs = manifest.with_file_name("src/main.rs");
    let source = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(
        &main_rs,
        source.replace("configured args=", "changed args="),
    )
    .unwrap();
    let mut cmd = verify(&pushed);
    let out = cmd.output().unwrap();
    std::fs::write(&main_rs, source).unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(3),
        "verify exits 3 on a difference (README's exit codes):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("linux/amd64: differs")
            && stdout.contains("(the application): usr/local/bin/configured: content differs"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&pushed) && stderr.contains(digest),
        "{stderr}"
    );
}

/// The lock records the tools a build runs; `--locked` refuses others before compiling and
/// `cargo stevedore lock` takes them; `verify` names another toolchain (from the image's
/// provenance, else the lock) before any byte difference.
#[test]
fn the_lock_records_the_toolchain_and_verify_names_another_first() {
    let registry = Registry::start(Mode::Http);
    registry.push_base();
    let (_one_at_a_time, manifest) = shared_project(&registry);
    let (release, commit) = testbed_rustc();
    let out = tempfile::tempdir().unwrap();
    let layout = |name: &str| format!("oci-layout={}", out.path().join(name).display());

    // A zig chosen by STEVEDORE_ZIG is recorded as chosen, in the lock and the provenance.
    // It is the pinned zig's own file, which the first build fetches: the wrapper scripts then
    // name the same path, and cargo keeps what it built (another path would rebuild std and
    // every crate, twice).
    run_ok(build(&manifest).args(["--no-provenance", "--output", &layout("first")]));
    run_ok(
        build(&manifest)
            .env("STEVEDORE_ZIG", crate::zig::pinned_zig())
            .args(["--output", &layout("chosen")]),
    );
    let recorded = lock_text(&manifest);
    let expected = format!(
        "[toolchain]\nstevedore = \"{}\"\nrustc = \"{release}\"\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(recorded.contains(&expected), "{recorded}");
    if let Some(commit) = &commit {
        assert!(
            recorded.contains(&format!("rustc-commit-hash = \"{commit}\"")),
            "{recorded}"
        );
    }
    assert!(
        recorded.contains("zig = \"0.17.1\"\nzig-chosen-by = \"STEVEDORE_ZIG\"\n"),
        "{recorded}"
    );
    let verify =
        |published: String| text(&run_ok(stevedore("verify", &manifest).arg(published)).stdout);
    let printed = verify(layout("chosen"));
    let line = "toolchain differs: zig 0.17.1 (chosen by STEVEDORE_ZIG) in the image's provenance, 0.17.1 here";
    assert!(printed.starts_with(line), "said first:\n{printed}");

    // Without the override the pinned zig is recorded again, and the log says what changed.
    let log = text(
        &run_ok(build(&manifest).args(["--no-provenance", "--output", &layout("pinned")])).stderr,
    );
    assert!(
        log.contains(
            "stevedore.lock: zig 0.17.1 (chosen by STEVEDORE_ZIG) in the lock, 0.17.1 here"
        ),
        "{log}"
    );
    let recorded = lock_text(&manifest);
    assert!(
        recorded.contains("zig = \"0.17.1\"\n\n[toolchain.zig-sha256]\n")
            && recorded.contains(
                "linux-x86_64 = \"ea6cc5d87b033cf0aedfbc8f9549a908cae6c50ac31f1698188fa48a74524b54\""
            ),
        "{recorded}"
    );

    // Another rustc in the lock: --locked stops before compiling and names both.
    let lock_path = manifest.with_file_name("stevedore.lock");
    let other = recorded.replace(&format!("rustc = \"{release}\""), "rustc = \"1.0.0\"");
    assert_ne!(other, recorded);
    std::fs::write(&lock_path, &other).unwrap();
    let err = run_err(build(&manifest).arg("--locked"));
    let short = commit
        .as_ref()
        .map_or_else(String::new, |c| format!(" ({})", &c[..9]));
    let named = format!("rustc 1.0.0{short} in the lock, {release}{short} here");
    assert!(
        err.contains(&named) && err.contains("cargo stevedore lock"),
        "{err}"
    );
    assert!(
        !err.contains("Compiling"),
        "stopped before compiling:\n{err}"
    );
    assert_eq!(lock_text(&manifest), other, "--locked must not write");

    // An image without provenance is explained by the lock; verify writes no lock.
    let printed = verify(layout("pinned"));
    assert!(
        printed.starts_with(&format!(
            "toolchain differs: rustc 1.0.0{short} in stevedore.lock, {release}{short} here"
        )),
        "{printed}"
    );
    assert!(printed.contains("linux/amd64: identical"), "{printed}");
    assert_eq!(
        lock_text(&manifest),
        other,
        "verify must not write the lock"
    );

    // `cargo stevedore lock` records the toolchain that runs; --locked then builds.
    run_ok(&mut stevedore("lock", &manifest));
    assert_eq!(lock_text(&manifest), recorded);
    run_ok(build(&manifest).arg("--locked"));
}
