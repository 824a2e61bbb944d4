//! Secrets stay with stevedore: the registry password and the signing key's passwords reach
//! none of the programs it starts (cargo, and through it every build script and rustc; kubectl).

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

/// A `kubectl` first on PATH that writes its environment to `DIR/kubectl-env` and reads the
/// YAML; the PATH to give stevedore.
fn kubectl_stand_in(dir: &Path) -> std::ffi::OsString {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let kubectl = bin.join("kubectl");
    std::fs::write(
        &kubectl,
        format!(
            "#!/bin/sh\nenv > {}/kubectl-env\ncat > /dev/null\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &kubectl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut path = vec![bin];
    path.extend(std::env::split_paths(&testbed::tool_path_env()));
    std::env::join_paths(path).unwrap()
}

#[test]
fn no_secret_reaches_build_scripts_or_kubectl() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let manifest = probe_crate(&dir.path().join("probe"));
    let seen = dir.path().join("build-script-saw");
    let yaml = dir.path().join("deploy.yaml");
    std::fs::write(&yaml, "image: stevedore://\n").unwrap();
    let mut apply = stevedore_on("apply", &manifest);
    for name in SECRETS {
        apply.env(name, "hunter2");
    }
    run_ok(
        apply
            .env("PATH", kubectl_stand_in(dir.path()))
            .env("SECRETS_PROBE", &seen)
            .env("STEVEDORE_USERNAME", "ci")
            .env("STEVEDORE_REPO", format!("{}/team", registry.addr()))
            .args(["--base", &base, "-f"])
            .arg(&yaml),
    );
    let build_script = std::fs::read_to_string(&seen).expect("the build script ran");
    assert_eq!(build_script, "", "secrets the build script saw");
    let kubectl = std::fs::read_to_string(dir.path().join("kubectl-env")).expect("kubectl ran");
    assert!(
        kubectl.contains("SECRETS_PROBE="),
        "kubectl's environment: {kubectl}"
    );
    for name in SECRETS {
        assert!(
            !kubectl.lines().any(|l| l.starts_with(&format!("{name}="))),
            "{name} reached kubectl"
        );
    }
}
