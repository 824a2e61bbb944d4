//! `resolve` and `apply`: `stevedore://` references in Kubernetes YAML built, pushed and
//! replaced by digests, every other byte left as it was; `apply` hands the result to kubectl.

use std::path::Path;
use std::process::{Command, Stdio};

use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::util::*;

/// Two documents, comments (one naming a reference, which stays), a quoted and a plain
/// reference, and a value that only contains the scheme.
const MANIFESTS: &str = "\
# Deployed with stevedore://multibin/one, resolved by `cargo stevedore resolve`.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: one   # trailing comment
spec:
  template:
    spec:
      containers:
        - name: one
          image: stevedore://multibin/one
          args: [\"--peer=stevedore://multibin/two\"]
---
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  containers:
  - name: two
    image: \"stevedore://multibin/two\"
  - name: again
    image: 'stevedore://multibin/one'
";

/// What `resolve` must print: `MANIFESTS` with exactly the three references replaced.
fn expected(one: &str, two: &str) -> String {
    MANIFESTS
        .replacen(
            "image: stevedore://multibin/one",
            &format!("image: {one}"),
            1,
        )
        .replace("\"stevedore://multibin/two\"", &format!("\"{two}\""))
        .replace("'stevedore://multibin/one'", &format!("'{one}'"))
}

fn write_manifests(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("deploy.yaml");
    std::fs::write(&file, MANIFESTS).unwrap();
    file
}

#[test]
fn resolve_replaces_exactly_the_references_with_digests_skopeo_reads() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let file = write_manifests(dir.path());
    let team = format!("{}/team", registry.addr());
    let out = run_ok(
        stevedore("resolve", "multibin")
            .env("STEVEDORE_REPO", &team)
            .args(["--base", &base, "-f"])
            .arg(&file),
    );
    let printed = text(&out.stdout);
    let reference = |bin: &str| {
        let prefix = format!("{team}/{bin}@sha256:");
        let at = printed
            .find(&prefix)
            .unwrap_or_else(|| panic!("{prefix} in:\n{printed}"));
        printed[at..at + prefix.len() + 64].to_owned()
    };
    let (one, two) = (reference("one"), reference("two"));
    assert_eq!(printed, expected(&one, &two), "every other byte as it was");
    for image in [&one, &two] {
        let raw = run_ok(
            Command::new(testbed::require_tool("skopeo"))
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{image}")),
        )
        .stdout;
        let digest = stevedore::Digest::of(&raw);
        assert!(image.ends_with(digest.as_str()), "{image} holds {digest}");
    }

    // The same YAML from stdin and as a directory gives the same text.
    let mut child = stevedore("resolve", "multibin")
        .env("STEVEDORE_REPO", &team)
        .args(["--base", &base, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), MANIFESTS.as_bytes()).unwrap();
    let from_stdin = child.wait_with_output().unwrap();
    assert!(from_stdin.status.success());
    assert_eq!(text(&from_stdin.stdout), printed);
    let from_dir = run_ok(
        stevedore("resolve", "multibin")
            .env("STEVEDORE_REPO", &team)
            .args(["--base", &base, "-f"])
            .arg(dir.path()),
    );
    assert_eq!(text(&from_dir.stdout), printed);
}

#[test]
fn resolve_names_every_reference_that_fails_and_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "a: stevedore://nosuchpackage\n---\nb: stevedore://multibin/three\n",
    )
    .unwrap();
    let out = stevedore("resolve", "multibin")
        .env("STEVEDORE_REPO", "127.0.0.1:1/team")
        .args(["--base", "scratch", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", out.stdout);
    assert!(
        stderr.contains("2 references could not be resolved"),
        "{stderr}"
    );
    assert!(
        stderr.contains("stevedore://nosuchpackage: the workspace has no package `nosuchpackage`"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("stevedore://multibin/three: package `multibin` has no binary named `three`"),
        "{stderr}"
    );

    // A value that looks like a reference but is none stops before anything is built.
    std::fs::write(&file, "image: stevedore://multibin:1.0\n").unwrap();
    let err = run_exit(stevedore("resolve", "multibin").args(["-f"]).arg(&file), 1);
    assert!(
        err.contains("line 1: `stevedore://multibin:1.0` is not a reference"),
        "{err}"
    );
}

/// kubectl cannot apply even with `--dry-run=client` without an API server: it asks the
/// server for its API groups (and OpenAPI schema) to map kinds to resources, so with a
/// kubeconfig naming an unreachable server it fails with "connection refused". The test puts a
/// stand-in `kubectl` first on PATH that records its argv and stdin and exits 7.
#[test]
fn apply_pipes_the_resolved_yaml_to_kubectl_and_passes_its_exit_code_on() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let file = write_manifests(dir.path());
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let stand_in = bin.join("kubectl");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {0}/argv\ncat > {0}/stdin\nexit 7\n",
            dir.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &stand_in,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut path = vec![bin.clone()];
    path.extend(std::env::split_paths(&testbed::tool_path_env()));
    let team = format!("{}/team", registry.addr());
    let out = stevedore("apply", "multibin")
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("STEVEDORE_REPO", &team)
        .args(["--base", &base, "-f"])
        .arg(&file)
        .args(["--", "--dry-run=client", "-n", "prod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap();
    assert_eq!(argv, "apply\n-f\n-\n--dry-run=client\n-n\nprod\n");
    let piped = std::fs::read_to_string(dir.path().join("stdin")).unwrap();
    assert!(piped.contains(&format!("{team}/one@sha256:")), "{piped}");
    let resolved = run_ok(
        stevedore("resolve", "multibin")
            .env("STEVEDORE_REPO", &team)
            .args(["--base", &base, "-f"])
            .arg(&file),
    );
    assert_eq!(piped, text(&resolved.stdout), "what resolve prints");
}

#[test]
fn apply_without_kubectl_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: Namespace\n").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = run_exit(
        stevedore("apply", "multibin")
            .env("PATH", &empty)
            .args(["-f"])
            .arg(&file),
        1,
    );
    assert!(err.contains("cannot run `kubectl`"), "{err}");
    assert!(err.contains("kubernetes-client"), "{err}");
}

/// A directory holding `loop -> .` (and a link to its parent) is read once: links to
/// directories are not followed, links to files are read, and nothing is built when no
/// reference is found.
#[test]
fn resolve_of_a_directory_follows_no_directory_link() {
    let dir = tempfile::tempdir().unwrap();
    let k8s = dir.path().join("k8s");
    std::fs::create_dir_all(k8s.join("sub")).unwrap();
    std::fs::write(k8s.join("a.yaml"), "kind: A\n").unwrap();
    std::fs::write(k8s.join("sub/b.yml"), "kind: B\n").unwrap();
    std::fs::write(dir.path().join("outside.yaml"), "kind: C\n").unwrap();
    std::os::unix::fs::symlink(".", k8s.join("loop")).unwrap();
    std::os::unix::fs::symlink("..", k8s.join("sub/up")).unwrap();
    std::os::unix::fs::symlink("../outside.yaml", k8s.join("c.yaml")).unwrap();
    let out = run_ok(stevedore("resolve", "multibin").args(["-f"]).arg(&k8s));
    assert_eq!(
        text(&out.stdout),
        "kind: A\n---\nkind: C\n---\nkind: B\n",
        "each file once, in path order"
    );
}

/// A file name and a value under `-f DIR` are a stranger's text: the error shows them with
/// terminal control characters escaped.
#[test]
fn resolve_errors_escape_the_file_name_and_value_they_quote() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("\x1b[2Jx.yaml"),
        "image: \"stevedore://a\x1b]0;pwned\x07\"\n",
    )
    .unwrap();
    let err = run_exit(
        stevedore("resolve", "multibin")
            .args(["-f"])
            .arg(dir.path()),
        1,
    );
    assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
    assert!(err.contains("\\u{1b}[2Jx.yaml"), "{err}");
    assert!(
        err.contains("line 1: `stevedore://a\\u{1b}]0;pwned\\u{7}` is not a reference"),
        "{err}"
    );
}
