//! The trust boundary, against the real registry behind a hostile front: a registry's
//! credentials go only to its own origin, whatever a redirect or an upload `Location` says;
//! the environment's credential goes only to the registries a run writes to (or reads its own
//! image from); what a registry says is printed with its terminal escapes escaped; and docker's
//! identity tokens are used as OAuth2 refresh tokens.

use std::path::Path;
use std::process::Command;

use stevedore_testbed::{Elsewhere, Fault, Mode, Registry, Seen, TokenFront, PASSWORD, USERNAME};

use crate::util::*;

/// The environment's credential in these tests: distinct from anything else the test bed uses.
const CI_USER: &str = "ci-user";
const CI_SECRET: &str = "ci-secret-7f3a";

/// A run with no credential from this machine: an empty cache, no docker config, no
/// environment credential unless the test adds one.
fn isolated(mut cmd: Command, home: &Path) -> Command {
    cmd.env("STEVEDORE_CACHE_DIR", home.join("cache"))
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("REGISTRY_AUTH_FILE", home.join("auth.json"))
        .env_remove("STEVEDORE_USERNAME")
        .env_remove("STEVEDORE_PASSWORD")
        .env_remove("STEVEDORE_REGISTRY");
    cmd
}

fn with_env_credential<'c>(cmd: &'c mut Command, user: &str, secret: &str) -> &'c mut Command {
    cmd.env("STEVEDORE_USERNAME", user)
        .env("STEVEDORE_PASSWORD", secret)
}

/// Every request `seen` that carried any `Authorization` header.
fn authorized(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter().filter(|s| s.authorization.is_some()).collect()
}

/// Pushes the hello fixture on `base` to `image` through `front` with the environment's
/// credential; the upload `Location`s point at `elsewhere`.
fn push_through(front: &TokenFront, elsewhere: &Elsewhere, home: &Path) -> Command {
    front.inject(Fault::location_to(
        "POST",
        "/blobs/uploads/",
        &elsewhere.url(),
        1000,
    ));
    front.inject(Fault::location_to(
        "PATCH",
        "/blobs/uploads/",
        &elsewhere.url(),
        1000,
    ));
    let image = format!("{}/trust/hello:moved", front.addr());
    let mut cmd = isolated(stevedore_build("hello"), home);
    cmd.args(["--base", "scratch", "-t", &image, "--push"]);
    let (user, secret) = front.credentials().expect("a front with credentials");
    with_env_credential(&mut cmd, user, secret);
    cmd
}

#[test]
fn an_upload_location_on_another_origin_gets_no_credential() {
    let home = tempfile::tempdir().unwrap();
    // A registry asking for Basic auth, and one behind a token server: each credential kind.
    let fronts = [
        || TokenFront::start_basic(Registry::start(Mode::Http), (USERNAME, PASSWORD)),
        || TokenFront::start(Registry::start(Mode::Http), Some((USERNAME, PASSWORD))),
    ];
    for front in fronts {
        // Another origin that relays to the registry: the push completes without credentials.
        let relayed = front();
        let relay = Elsewhere::relaying_to(relayed.upstream());
        run_ok(&mut push_through(&relayed, &relay, home.path()));
        let seen = relay.seen();
        assert!(
            seen.iter().any(|s| s.method == "PUT"),
            "the uploads went to the other origin: {seen:?}"
        );
        assert_eq!(
            authorized(&seen),
            Vec::<&Seen>::new(),
            "no credential went there"
        );
        assert!(
            !authorized(&relayed.authorizations()).is_empty(),
            "the registry itself got the credential"
        );

        // Another origin that asks for credentials of its own: the push stops, naming both.
        let challenged = front();
        let hostile = Elsewhere::challenging();
        let err = run_err(&mut push_through(&challenged, &hostile, home.path()));
        let hostile_origin = hostile.url().replace("http://", "");
        assert!(
            err.contains(&hostile_origin) && err.contains(&challenged.addr()),
            "the error names both origins:\n{err}"
        );
        assert!(!hostile.seen().is_empty(), "the upload went there");
        assert_eq!(authorized(&hostile.seen()), Vec::<&Seen>::new());
        assert!(
            !hostile.seen().iter().any(|s| s.path == "/token"),
            "its realm is never asked"
        );
    }
}

#[test]
fn a_redirected_blob_download_gets_no_credential_and_a_foreign_challenge_stops_it() {
    let front = TokenFront::start(Registry::start(Mode::Http), Some((USERNAME, PASSWORD)));
    let base = front.push_base();
    let build = |front: &TokenFront, base: &str, home: &Path| {
        let mut cmd = isolated(stevedore_build("hello"), home);
        cmd.env("STEVEDORE_REGISTRY", front.addr())
            .args(["--base", base, "--output"])
            .arg(format!("oci-layout={}", home.join("out").display()));
        with_env_credential(&mut cmd, USERNAME, PASSWORD);
        cmd
    };

    // A CDN that serves the blobs: followed, without the registry's token.
    let cdn = Elsewhere::relaying_to(front.upstream());
    front.inject(Fault::redirect("GET", "/blobs/sha256:", &cdn.url(), 1000));
    let home = tempfile::tempdir().unwrap();
    run_ok(&mut build(&front, &base, home.path()));
    let seen = cdn.seen();
    assert!(
        seen.iter().any(|s| s.path.contains("/blobs/sha256:")),
        "the blobs came from the CDN: {seen:?}"
    );
    assert_eq!(authorized(&seen), Vec::<&Seen>::new());

    // A redirect target that asks for a token from its own realm: refused, naming both.
    let hostile = Elsewhere::challenging();
    let front = TokenFront::start(Registry::start(Mode::Http), Some((USERNAME, PASSWORD)));
    let base = front.push_base();
    front.inject(Fault::redirect(
        "GET",
        "/blobs/sha256:",
        &hostile.url(),
        1000,
    ));
    let home = tempfile::tempdir().unwrap();
    let err = run_err(&mut build(&front, &base, home.path()));
    let hostile_origin = hostile.url().replace("http://", "");
    assert!(
        err.contains(&hostile_origin) && err.contains(&front.addr()),
        "the error names both origins:\n{err}"
    );
    assert_eq!(authorized(&hostile.seen()), Vec::<&Seen>::new());
    assert!(!hostile.seen().iter().any(|s| s.path == "/token"));
    assert!(!err.contains(PASSWORD), "{err}");
}

/// The base's registry in [`the_environment_credential_never_reaches_a_pull_only_registry`]:
/// anonymous tokens for anyone, every `Authorization` recorded.
fn assert_no_basic(base: &TokenFront, command: &str) {
    let basic: Vec<Seen> = base
        .authorizations()
        .into_iter()
        .filter(|s| {
            s.authorization
                .as_deref()
                .is_some_and(|a| a.to_ascii_lowercase().starts_with("basic"))
        })
        .collect();
    assert_eq!(
        basic,
        [],
        "`{command}` sent a credential to the base's registry"
    );
    base.clear_requests();
}

#[test]
fn the_environment_credential_never_reaches_a_pull_only_registry() {
    let base_front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = base_front.push_base();
    let target = TokenFront::start_basic(Registry::start(Mode::Http), (CI_USER, CI_SECRET));
    let image = format!("{}/trust/hello:env", target.addr());
    let home = tempfile::tempdir().unwrap();
    let run = |cmd: Command, command: &str| {
        let mut cmd = isolated(cmd, home.path());
        run_ok(with_env_credential(&mut cmd, CI_USER, CI_SECRET));
        assert_no_basic(&base_front, command);
    };
    base_front.clear_requests();

    let mut layout = stevedore_build("hello");
    layout
        .args(["--base", &base, "--output"])
        .arg(format!("oci-layout={}", home.path().join("out").display()));
    run(layout, "build --output oci-layout");

    let mut push = stevedore_build("hello");
    push.args(["--base", &base, "-t", &image, "--push"]);
    run(push, "build --push");
    assert!(
        !authorized(&target.authorizations()).is_empty(),
        "the registry pushed to got the credential"
    );

    let mut verify = stevedore("verify", "hello");
    verify.args(["--base", &base, &image]);
    run(verify, "verify");

    // debuginfo reads only the image's own registry, which is the one pushed to: it gets the
    // credential (the image has no debug file, so the command says so and exits 4).
    target.clear_requests();
    let mut debuginfo = isolated(
        Command::new(env!("CARGO_BIN_EXE_cargo-stevedore")),
        home.path(),
    );
    debuginfo.args(["stevedore", "debuginfo", &image, "-o"]);
    debuginfo.arg(home.path().join("debuginfo"));
    run_exit(with_env_credential(&mut debuginfo, CI_USER, CI_SECRET), 4);
    assert!(!authorized(&target.authorizations()).is_empty());

    let mut lock = stevedore("lock", "hello");
    lock.args(["--base", &base]);
    run(lock, "lock");

    let mut index = Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"));
    let indexed = format!("{}/trust/hello:index", target.addr());
    index.args(["stevedore", "index", "create", &indexed, "--from", &image]);
    run(index, "index create");

    let yaml = home.path().join("deploy.yaml");
    std::fs::write(&yaml, "image: stevedore://\n").unwrap();
    let mut resolve = stevedore("resolve", "hello");
    resolve
        .env("STEVEDORE_REPO", format!("{}/trust", target.addr()))
        .args(["--base", &base, "-f"])
        .arg(&yaml);
    run(resolve, "resolve");
}

#[test]
fn a_registry_message_full_of_terminal_escapes_is_printed_escaped() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = front.push_base();
    let hostile = "denied\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[1A\r\nfake: ok";
    front.inject(Fault::message("GET", "/manifests/", 400, hostile, 10));
    let home = tempfile::tempdir().unwrap();
    let mut cmd = isolated(stevedore_build("hello"), home.path());
    let err = run_err(cmd.args(["--base", &base]));
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{7}') && !err.contains('\r'),
        "no escape reaches the terminal:\n{err:?}"
    );
    assert!(
        err.contains("denied\\u{1b}]0;pwned\\u{7}\\u{1b}[2J"),
        "the message is shown, escaped:\n{err}"
    );
}

#[test]
fn an_identity_token_is_exchanged_as_an_oauth2_refresh_token() {
    let front = TokenFront::start(Registry::start(Mode::Http), Some((USERNAME, PASSWORD)));
    let base = front.push_base();
    let refresh = "identity-token-9c1e";
    front.accept_refresh_token(refresh);
    front.clear_requests();
    let home = tempfile::tempdir().unwrap();
    let docker = home.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let config = serde_json::json!({"auths": {front.addr(): {"identitytoken": refresh}}});
    std::fs::write(docker.join("config.json"), config.to_string()).unwrap();
    let mut cmd = isolated(stevedore_build("hello"), home.path());
    run_ok(cmd.args(["--base", &base]));
    let tokens: Vec<(String, String)> = front
        .requests()
        .into_iter()
        .filter(|(_, path)| path == "/token")
        .collect();
    assert!(
        !tokens.is_empty() && tokens.iter().all(|(method, _)| method == "POST"),
        "every token came from the refresh-token grant: {tokens:?}"
    );
    let sent_as_basic = front
        .authorizations()
        .into_iter()
        .filter(|s| {
            s.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Basic"))
        })
        .count();
    assert_eq!(
        sent_as_basic, 0,
        "the identity token is never sent as a password"
    );
}
