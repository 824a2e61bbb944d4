//! Secrets stay with stevedore: the registry password and the signing key's passwords reach
//! none of the programs it starts (cargo, and through it every build script; kubectl, docker,
//! git).

use std::path::Path;

use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::util::*;

/// Every variable stevedore reads a secret from (`stevedore::env::SECRETS` is private).
const SECRETS: [&str; 3] = [
    "STEVEDORE_PASSWORD",
    "STEVEDORE_SIGN_PASSWORD",
    "COSIGN_PASSWORD",
];

/// A crate whose build script writes the name of every secret variable it sees, one a line,
/// to the file `$SECRETS_PROBE` names (and re-runs whenever any of them changes).
fn probe_crate(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    let names = SECRETS.map(|s| format!("{s:?}")).join(", ");
    std::fs::write(
        dir.join("build.rs"),
        format!(
            "fn main() {{\n\
             \x20   let mut seen = String::new();\n\
             \x20   for name in [{names}] {{\n\
             \x20       println!(\"cargo:rerun-if-env-changed={{name}}\");\n\
             \x20       if std::env::var_os(name).is_some() {{\n\
             \x20           seen.push_str(name);\n\
             \x20           seen.push('\\n');\n\
             \x20       }}\n\
             \x20   }}\n\
             \x20   println!(\"cargo:rerun-if-env-changed=SECRETS_PROBE\");\n\
             \x20   std::fs::write(std::env::var(\"SECRETS_PROBE\").unwrap(), seen).unwrap();\n\
             }}\n"
        ),
    )
    .unwrap();
    dir.join("Cargo.toml")
}

/// Stand-ins first on PATH for the programs stevedore starts besides cargo: each appends
/// `== NAME ARGS` and its environment to `DIR/seen`; kubectl reads the YAML, docker answers
/// (so `--load` picks it and loads), git fails (as outside a repository). Returns that PATH.
fn stand_ins(dir: &Path) -> std::ffi::OsString {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, then) in [
        ("kubectl", "cat > /dev/null"),
        ("docker", "exit 0"),
        ("git", "exit 1"),
    ] {
        let program = bin.join(name);
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\n{{ echo \"== {name} $*\"; env; }} >> {}/seen\n{then}\n",
                dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &program,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    let mut path = vec![bin];
    path.extend(std::env::split_paths(&testbed::tool_path_env()));
    std::env::join_paths(path).unwrap()
}

/// `cargo stevedore SUBCOMMAND` of the probe crate with every secret set, the stand-ins first
/// on PATH and a registry credential as CI gives one.
fn with_secrets(subcommand: &str, manifest: &Path, dir: &Path) -> std::process::Command {
    let mut cmd = stevedore_on(subcommand, manifest);
    for name in SECRETS {
        cmd.env(name, "hunter2");
    }
    cmd.env("PATH", stand_ins(dir))
        .env("SECRETS_PROBE", dir.join("build-script-saw"))
        .env("STEVEDORE_USERNAME", "ci");
    cmd
}

#[test]
fn no_secret_reaches_build_scripts_kubectl_docker_or_git() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let manifest = probe_crate(&dir.path().join("probe"));
    let yaml = dir.path().join("deploy.yaml");
    std::fs::write(&yaml, "image: stevedore://\n").unwrap();
    run_ok(
        with_secrets("apply", &manifest, dir.path())
            .env("STEVEDORE_REPO", format!("{}/team", registry.addr()))
            .args(["--base", &base, "-f"])
            .arg(&yaml),
    );
    let build_script =
        std::fs::read_to_string(dir.path().join("build-script-saw")).expect("the build script ran");
    assert_eq!(build_script, "", "secrets the build script saw");
    run_ok(
        with_secrets("build", &manifest, dir.path())
            .args(["--base", &base, "-t", "probe:1", "--load"]),
    );
    let seen = std::fs::read_to_string(dir.path().join("seen")).unwrap();
    for ran in [
        "== kubectl apply -f -",
        "== docker version",
        "== docker load -i ",
        "== git ",
    ] {
        assert!(seen.contains(ran), "`{ran}` ran: {seen}");
    }
    assert!(
        seen.contains("SECRETS_PROBE="),
        "their environments: {seen}"
    );
    for name in SECRETS {
        assert!(
            !seen.lines().any(|l| l.starts_with(&format!("{name}="))),
            "{name} reached one of them: {seen}"
        );
    }
}
