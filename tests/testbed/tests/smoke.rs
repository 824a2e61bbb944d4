//! The test bed itself works: every registry mode serves the distroless stand-in to skopeo,
//! credentials and CAs are enforced, the token front behaves like a token registry, static
//! binaries run as nonroot (natively and through qemu), and docker pulls and runs from the
//! registry.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use stevedore_testbed::{self as testbed, run_fails, run_ok, Mode, Registry, Side, TokenFront};

fn skopeo() -> Command {
    Command::new(testbed::require_tool("skopeo"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(bytes)))
}

fn inspect(flags: &[String], extra: &[&str], reference: &str) -> Value {
    json(
        &run_ok(
            skopeo()
                .arg("inspect")
                .args(flags)
                .args(extra)
                .arg(format!("docker://{reference}")),
        )
        .stdout,
    )
}

/// The reference is an OCI index of the stand-in's six platforms, in distroless's order with
/// 386 after arm/v7.
fn assert_base_index(flags: &[String], reference: &str) {
    let index = inspect(flags, &["--raw"], reference);
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index:#}"
    );
    let platforms: Vec<&Value> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| &m["platform"])
        .collect();
    assert_eq!(
        platforms,
        [
            &serde_json::json!({ "architecture": "amd64", "os": "linux" }),
            &serde_json::json!({ "architecture": "arm64", "os": "linux", "variant": "v8" }),
            &serde_json::json!({ "architecture": "arm", "os": "linux", "variant": "v7" }),
            &serde_json::json!({ "architecture": "386", "os": "linux" }),
            &serde_json::json!({ "architecture": "ppc64le", "os": "linux" }),
            &serde_json::json!({ "architecture": "s390x", "os": "linux" }),
        ],
        "{index:#}"
    );
}

#[test]
fn every_tool_is_installed() {
    testbed::require_all();
}

#[test]
fn http_registry_serves_the_base() {
    let registry = Registry::start(Mode::Http);
    assert!(registry.url().starts_with("http://127.0.0.1:"));
    assert_eq!(registry.ca_cert(), None);
    let base = registry.push_base();
    assert_eq!(
        base,
        format!("{}/distroless/static-debian12:nonroot", registry.addr())
    );
    let flags = registry.skopeo_flags(Side::Inspect);
    assert_eq!(flags, ["--tls-verify=false"]);
    assert_base_index(&flags, &base);
    let nonroot = inspect(&flags, &["--config"], &base);
    assert_eq!(nonroot["config"]["User"], "65532");
    assert_eq!(nonroot["config"]["WorkingDir"], "/home/nonroot");
    let env = nonroot["config"]["Env"].to_string();
    assert!(
        env.contains("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
            && env.contains("PATH=/usr/local/sbin"),
        "{env}"
    );
    let latest = inspect(&flags, &["--config"], &base.replace(":nonroot", ":latest"));
    assert_eq!(latest["config"]["User"], "0");
    assert_eq!(latest["config"]["WorkingDir"], "/");
}

#[test]
fn tls_registry_needs_its_ca() {
    let registry = Registry::start(Mode::Tls);
    assert!(registry.url().starts_with("https://127.0.0.1:"));
    let base = registry.push_base();
    assert_base_index(&registry.skopeo_flags(Side::Inspect), &base);

    let refused = run_fails(
        skopeo()
            .args(["inspect", "--raw"])
            .arg(format!("docker://{base}")),
    );
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("certificate signed by unknown authority"),
        "{stderr}"
    );

    // The PEM alone is enough for other clients (this is what stevedore's --registry-ca gets).
    let ca = registry.ca_cert().expect("TLS mode has a CA");
    let ping = run_ok(
        Command::new(testbed::require_tool("curl"))
            .args(["--silent", "--show-error", "--fail", "--cacert"])
            .arg(ca)
            .arg(format!("{}/v2/", registry.url())),
    );
    assert_eq!(text(&ping.stdout), "{}");
}

#[test]
fn basic_auth_registry_needs_credentials() {
    let registry = Registry::start(Mode::BasicAuth);
    assert_eq!(
        registry.credentials(),
        Some((testbed::USERNAME, testbed::PASSWORD))
    );
    let base = registry.push_base();
    assert_base_index(&registry.skopeo_flags(Side::Inspect), &base);

    let cert_dir = format!("--cert-dir={}", registry.certs_dir().unwrap().display());
    for creds in [vec![], vec!["--creds=tbuser:wrong".to_owned()]] {
        let denied = run_fails(
            skopeo()
                .args(["inspect", "--raw", &cert_dir])
                .args(&creds)
                .arg(format!("docker://{base}")),
        );
        let stderr = text(&denied.stderr);
        assert!(
            stderr.contains("unauthorized") || stderr.contains("authentication required"),
            "{creds:?}: {stderr}"
        );
    }

    // A Docker-style config file carries the same credentials.
    let config_dir = tempfile::tempdir().unwrap();
    let config = registry.write_docker_config(config_dir.path());
    let via_file = run_ok(
        skopeo()
            .args(["inspect", "--raw", &cert_dir, "--authfile"])
            .arg(&config)
            .arg(format!("docker://{base}")),
    );
    assert_eq!(
        json(&via_file.stdout)["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
}

#[test]
fn arm64_base_unpacks_with_distroless_users() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("arm");
    run_ok(
        skopeo()
            .args(["copy", "--quiet", "--override-arch", "arm64"])
            .args(registry.skopeo_flags(Side::Src))
            .arg(format!("docker://{base}"))
            .arg(format!("oci:{}:nonroot", layout.display())),
    );
    let config = json(
        &run_ok(
            skopeo()
                .args(["inspect", "--config"])
                .arg(format!("oci:{}:nonroot", layout.display())),
        )
        .stdout,
    );
    assert_eq!(config["architecture"], "arm64");

    let bundle = dir.path().join("bundle");
    testbed::umoci_unpack(&layout, "nonroot", &bundle);
    let rootfs = bundle.join("rootfs");
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains("nonroot:x:65532:65532:nonroot:/home/nonroot:"),
        "{passwd}"
    );
    assert!(std::fs::read_to_string(rootfs.join("etc/group"))
        .unwrap()
        .contains("nonroot:x:65532:"));
    use std::os::unix::fs::MetadataExt;
    let home = std::fs::metadata(rootfs.join("home/nonroot")).unwrap();
    assert_eq!(
        (home.uid(), home.gid(), home.mode() & 0o7777),
        (65532, 65532, 0o700)
    );
    assert_eq!(
        std::fs::metadata(rootfs.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    let bundle_size = std::fs::metadata(rootfs.join("etc/ssl/certs/ca-certificates.crt"))
        .unwrap()
        .len();
    assert!(bundle_size > 100_000, "CA bundle is {bundle_size} bytes");
    assert!(
        rootfs.join("usr/share/zoneinfo/Europe/Berlin").exists(),
        "tzdata"
    );
    assert!(rootfs.join("etc/services").exists(), "netbase");
    assert!(
        !rootfs.join("bin/sh").exists() && !rootfs.join("usr/bin/sh").exists(),
        "distroless has no shell"
    );
    let os_release = std::fs::read_to_string(rootfs.join("usr/lib/os-release")).unwrap();
    assert!(os_release.contains("bookworm"), "{os_release}");

    let spec = json(&std::fs::read(bundle.join("config.json")).unwrap());
    assert_eq!(spec["process"]["user"]["uid"], 65532);
    assert_eq!(spec["process"]["cwd"], "/home/nonroot");
}

/// A static C program that reports who and where it runs.
const PROBE_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
int main(int argc, char **argv) {
    struct utsname u;
    char cwd[4096];
    struct stat certs;
    uname(&u);
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
    FILE *tmp = fopen("/tmp/probe", "w");
    const char *home = getenv("HOME"), *ssl = getenv("SSL_CERT_FILE");
    printf("probe arch=%s uid=%d gid=%d cwd=%s home=%s tmp_writable=%s cabundle=%s args=",
           u.machine, (int)getuid(), (int)getgid(), cwd, home ? home : "-", tmp ? "true" : "false",
           ssl && stat(ssl, &certs) == 0 && certs.st_size > 100000 ? "ok" : "missing");
    for (int i = 1; i < argc; i++) printf("%s%s", i > 1 ? "," : "", argv[i]);
    printf("\n");
    return 0;
}
"#;

/// The probe compiled statically for `arch`: musl-gcc for amd64, zig (from the venv) for arm64.
fn probe(arch: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("probe.c"), PROBE_C).unwrap();
        dir
    });
    let out = dir.path().join(format!("probe-{arch}"));
    if !out.exists() {
        let scratch = dir.path().join(format!(
            "probe-{arch}.{}",
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace("::", "-")
        ));
        let mut cc = match arch {
            "amd64" => Command::new(testbed::require_tool("musl-gcc")),
            "arm64" => {
                let mut cmd = Command::new(testbed::venv_dir().join("bin/python3"));
                cmd.env("PATH", testbed::tool_path_env()).args([
                    "-m",
                    "ziglang",
                    "cc",
                    "-target",
                    "aarch64-linux-musl",
                ]);
                cmd
            }
            other => panic!("no compiler for {other}"),
        };
        run_ok(
            cc.args(["-static", "-O2", "-o"])
                .arg(&scratch)
                .arg(dir.path().join("probe.c")),
        );
        std::fs::rename(&scratch, &out).unwrap();
    }
    out
}

/// An OCI layout `app:TAG` = the base's `{arch}-{tag}` + the probe as `/app` (Cmd `default`).
fn app_image(dir: &Path, arch: &str, tag: &str) -> PathBuf {
    let layout = dir.join(format!("app-{arch}"));
    let image = format!("{}:{tag}", layout.display());
    run_ok(
        skopeo()
            .args(["copy", "--quiet"])
            .arg(format!(
                "oci:{}:{arch}-{tag}",
                testbed::base_layout().display()
            ))
            .arg(format!("oci:{image}")),
    );
    let umoci = testbed::require_tool("umoci");
    run_ok(
        Command::new(&umoci)
            .args(["insert", "--image", &image])
            .arg(probe(arch))
            .arg("/app"),
    );
    run_ok(Command::new(&umoci).args([
        "config",
        "--image",
        &image,
        "--config.entrypoint",
        "/app",
        "--config.cmd",
        "default",
    ]));
    layout
}

fn run_probe(arch: &str, tag: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let layout = app_image(dir.path(), arch, tag);
    let bundle = dir.path().join("bundle");
    testbed::umoci_unpack(&layout, tag, &bundle);
    let out = testbed::run_entrypoint(&bundle, args);
    assert!(
        out.status.success(),
        "probe failed ({}): {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        !bundle
            .join("rootfs")
            .read_dir()
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("qemu")),
        "qemu copy left behind"
    );
    text(&out.stdout)
}

#[test]
fn static_binary_runs_as_nonroot() {
    let printed = run_probe("amd64", "nonroot", &["x", "y"]);
    assert!(
        printed.contains("arch=x86_64 uid=65532 gid=65532 cwd=/home/nonroot home=/home/nonroot tmp_writable=true cabundle=ok args=x,y"),
        "{printed}"
    );
    let printed = run_probe("amd64", "nonroot", &[]);
    assert!(
        printed.contains("args=default"),
        "empty args keep the image's Cmd: {printed}"
    );
    let printed = run_probe("amd64", "latest", &[]);
    assert!(printed.contains("uid=0 gid=0 cwd=/ "), "{printed}");
}

#[test]
fn arm64_binary_runs_through_qemu() {
    let printed = run_probe("arm64", "nonroot", &["a"]);
    assert!(
        printed.contains("arch=aarch64 uid=65532 gid=65532 cwd=/home/nonroot"),
        "{printed}"
    );
    assert!(
        printed.contains("tmp_writable=true cabundle=ok args=a"),
        "{printed}"
    );
}

#[test]
fn multi_platform_tags_unpack_per_platform() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    testbed::umoci_unpack_platform(testbed::base_layout(), "nonroot", "arm64", &bundle);
    let config = json(&std::fs::read(bundle.join("testbed-image-config.json")).unwrap());
    assert_eq!(config["architecture"], "arm64");
}

fn curl() -> Command {
    let mut cmd = Command::new(testbed::require_tool("curl"));
    cmd.args(["--silent", "--show-error", "--max-time", "30"]);
    cmd
}

/// (status, headers, body) of a curl request; `args` go before the URL.
fn http(args: &[&str], url: &str) -> (u16, String, String) {
    let out = run_ok(curl().args(["--include"]).args(args).arg(url));
    let response = text(&out.stdout);
    // The last head wins (curl prints "100 Continue" heads too).
    let (head, body) = response
        .rsplit_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_default();
    let head = head
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, body)
}

fn token(front: &TokenFront, scope: &str) -> String {
    let creds = front
        .credentials()
        .map(|(u, p)| format!("{u}:{p}"))
        .unwrap_or_default();
    let (status, _, body) = http(
        &["--user", &creds],
        &format!("{}?service=testbed&scope={scope}", front.realm()),
    );
    assert_eq!(status, 200, "{body}");
    json(body.as_bytes())["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

#[test]
fn token_front_demands_scoped_tokens() {
    let front = TokenFront::start(Registry::start(Mode::Http), Some(("alice", "secret")));
    let (status, head, _) = http(&[], &format!("{}/v2/", front.url()));
    assert_eq!(status, 401, "{head}");
    let realm = format!("Bearer realm=\"{}\",service=\"testbed\"", front.realm());
    assert!(head.contains(&realm), "{head}");

    let (status, head, _) = http(
        &["--head"],
        &format!("{}/v2/some/repo/manifests/latest", front.url()),
    );
    assert_eq!(status, 401);
    assert!(
        head.contains("scope=\"repository:some/repo:pull\""),
        "{head}"
    );

    let (status, _, _) = http(&[], &format!("{}?service=testbed", front.realm()));
    assert_eq!(status, 401, "the token endpoint wants credentials");
    let (status, _, _) = http(
        &["--user", "alice:wrong"],
        &format!("{}?service=testbed", front.realm()),
    );
    assert_eq!(status, 401);

    let pull = token(&front, "repository:some/repo:pull");
    let bearer = format!("Authorization: Bearer {pull}");
    let (status, _, body) = http(&["--header", &bearer], &format!("{}/v2/", front.url()));
    assert_eq!((status, body.as_str()), (200, "{}"));
    let (status, _, body) = http(
        &["--header", &bearer],
        &format!("{}/v2/some/repo/tags/list", front.url()),
    );
    assert_eq!(
        status, 404,
        "authorised and forwarded, and the registry has no such repo: {body}"
    );
    let (status, head, _) = http(
        &["--header", &bearer, "--request", "POST"],
        &format!("{}/v2/some/repo/blobs/uploads/", front.url()),
    );
    assert_eq!(status, 401, "pull does not allow push");
    assert!(
        head.contains("scope=\"repository:some/repo:pull,push\",error=\"insufficient_scope\""),
        "{head}"
    );
}

#[test]
fn token_front_relays_chunked_uploads() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let token = token(&front, "repository:raw/blob:pull,push");
    let bearer = format!("Authorization: Bearer {token}");
    let (status, head, _) = http(
        &["--header", &bearer, "--request", "POST"],
        &format!("{}/v2/raw/blob/blobs/uploads/", front.url()),
    );
    assert_eq!(status, 202, "{head}");
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .expect("Location header")
        .trim()
        .to_owned();
    assert!(
        location.starts_with(&format!("{}/v2/raw/blob/blobs/uploads/", front.url())),
        "rewritten to the front: {location}"
    );

    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = dir.path().join("blob");
    std::fs::write(&file, &data).unwrap();
    let (status, head, body) = http(
        &[
            "--header",
            &bearer,
            "--header",
            "Transfer-Encoding: chunked",
            "--header",
            "Content-Type: application/octet-stream",
            "--request",
            "PATCH",
            "--data-binary",
            &format!("@{}", file.display()),
        ],
        &location,
    );
    assert_eq!(status, 202, "{head}{body}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .expect("Location")
        .trim()
        .to_owned();
    let sum = run_ok(Command::new(testbed::require_tool("sha256sum")).arg(&file));
    let digest = format!(
        "sha256:{}",
        text(&sum.stdout).split_whitespace().next().unwrap()
    );
    let sep = if location.contains('?') { '&' } else { '?' };
    let (status, head, body) = http(
        &["--header", &bearer, "--request", "PUT"],
        &format!("{location}{sep}digest={digest}"),
    );
    assert_eq!(status, 201, "{head}{body}");

    let fetched = run_ok(
        curl()
            .args(["--fail", "--header", &bearer])
            .arg(format!("{}/v2/raw/blob/blobs/{digest}", front.url())),
    );
    assert!(
        fetched.stdout == data,
        "blob came back different ({} bytes)",
        fetched.stdout.len()
    );
    let requests = front.requests();
    assert!(
        requests.contains(&(
            "PATCH".to_owned(),
            location
                .split('?')
                .next()
                .unwrap()
                .replace(&front.url(), "")
        )),
        "{requests:?}"
    );
}

#[test]
fn skopeo_pushes_and_pulls_through_the_token_front() {
    let front = TokenFront::start(Registry::start(Mode::Http), Some(("alice", "secret")));
    let base = front.push_base();
    assert!(base.starts_with(&front.addr()));
    let flags = front.skopeo_flags(Side::Inspect);
    assert_base_index(&flags, &base);
    let requests = front.requests();
    assert!(
        requests.iter().any(|(m, p)| m == "GET" && p == "/token"),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|(m, p)| m == "PUT" && p.contains("/blobs/uploads/")),
        "{requests:?}"
    );

    let denied = run_fails(
        skopeo()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{base}")),
    );
    assert!(
        text(&denied.stderr).contains("401") || text(&denied.stderr).contains("unauthorized"),
        "{}",
        text(&denied.stderr)
    );

    // A second push finds every blob present: no upload starts.
    front.clear_requests();
    front.push_base();
    let uploads: Vec<_> = front
        .requests()
        .into_iter()
        .filter(|(_, p)| p.contains("/blobs/uploads/"))
        .collect();
    assert!(uploads.is_empty(), "{uploads:?}");
    assert!(front
        .requests()
        .iter()
        .any(|(m, p)| m == "HEAD" && p.contains("/blobs/sha256:")));
}

#[test]
fn dockerd_pulls_and_runs_from_the_registry() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let app = app_image(dir.path(), "amd64", "nonroot");
    let app_ref = format!("{}/test/probe:nonroot", registry.addr());
    run_ok(
        skopeo()
            .args(["copy", "--quiet"])
            .args(registry.skopeo_flags(Side::Dest))
            .arg(format!("oci:{}:nonroot", app.display()))
            .arg(format!("docker://{app_ref}")),
    );

    let dockerd = testbed::Dockerd::start(&[&registry.addr()]);
    run_ok(dockerd.docker().args(["pull", "--quiet", &base]));
    let user = run_ok(dockerd.docker().args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{.Os}}/{{.Architecture}}",
        &base,
    ]));
    assert_eq!(text(&user.stdout).trim(), "65532 linux/amd64");

    run_ok(dockerd.docker().args(["pull", "--quiet", &app_ref]));
    let ran =
        run_ok(
            dockerd
                .docker()
                .args(["run", "--rm", "--network", "none", &app_ref, "p", "q"]),
        );
    let printed = text(&ran.stdout);
    assert!(
        printed.contains("arch=x86_64 uid=65532 gid=65532 cwd=/home/nonroot"),
        "{printed}"
    );
    assert!(
        printed.contains("tmp_writable=true cabundle=ok args=p,q"),
        "{printed}"
    );
}
