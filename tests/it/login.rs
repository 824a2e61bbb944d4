//! `login` and `logout` against the real registry behind Basic auth and behind a token server:
//! a credential is checked before it is kept, kept readable by its owner only where the
//! keychain reads first, used by a push with no other credential, and forgotten by `logout`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use stevedore_testbed::{Mode, Registry, TokenFront, PASSWORD, USERNAME};

use crate::util::*;

/// `cargo stevedore ARGS` with `home` as the only place credentials live: podman's auth file
/// under `XDG_RUNTIME_DIR`, docker's config dir (HOME stays, with the toolchain and caches).
fn in_home(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"));
    cmd.arg("stevedore")
        .args(args)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("DOCKER_CONFIG", home.join("docker"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("STEVEDORE_USERNAME")
        .env_remove("STEVEDORE_PASSWORD")
        .env_remove("STEVEDORE_REGISTRY");
    cmd
}

fn login(home: &Path, registry: &str, user: &str, password: &str) -> Output {
    let mut child = in_home(home, &["login", registry, "-u", user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo-stevedore runs");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{password}").unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn push(home: &Path, image: &str) -> Command {
    let mut cmd = stevedore_build("hello");
    cmd.env("XDG_RUNTIME_DIR", home.join("run"))
        .env("DOCKER_CONFIG", home.join("docker"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("STEVEDORE_USERNAME")
        .env_remove("STEVEDORE_PASSWORD")
        .args(["--base", "scratch", "-t", image, "--push"]);
    cmd
}

#[test]
fn login_keeps_a_checked_credential_a_push_uses_and_logout_forgets() {
    let fronts = [
        TokenFront::start_basic(Registry::start(Mode::Http), (USERNAME, PASSWORD)),
        TokenFront::start(Registry::start(Mode::Http), Some((USERNAME, PASSWORD))),
    ];
    for front in fronts {
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join("run/containers/auth.json");

        let wrong = login(home.path(), &front.addr(), USERNAME, "not-the-password");
        let said = format!("{}{}", text(&wrong.stdout), text(&wrong.stderr));
        assert!(
            !wrong.status.success(),
            "a wrong password is refused: {said}"
        );
        assert!(said.contains("401"), "{said}");
        assert!(!said.contains("not-the-password"), "{said}");
        assert!(!file.exists(), "nothing is kept from a failed login");

        let right = login(home.path(), &front.addr(), USERNAME, PASSWORD);
        assert!(right.status.success(), "{}", text(&right.stderr));
        assert_eq!(text(&right.stdout), "Login Succeeded\n");
        assert!(!text(&right.stderr).contains(PASSWORD));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");

        let image = format!("{}/login/hello:1", front.addr());
        run_ok(&mut push(home.path(), &image));

        let out = run_ok(&mut in_home(home.path(), &["logout", &front.addr()]));
        assert!(
            text(&out.stdout).contains("Removed"),
            "{}",
            text(&out.stdout)
        );
        let err = run_err(&mut push(
            home.path(),
            &format!("{}/login/hello:2", front.addr()),
        ));
        assert!(
            err.contains("401"),
            "without the login the push is refused:\n{err}"
        );
    }
}

#[test]
fn login_takes_the_password_only_from_standard_input() {
    let home = tempfile::tempdir().unwrap();
    let err = run_err(&mut in_home(
        home.path(),
        &["login", "127.0.0.1:9", "-u", "me"],
    ));
    assert!(err.contains("--password-stdin"), "{err}");
}
