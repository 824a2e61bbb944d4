//! A real registry: Debian's `docker-registry` (CNCF distribution 2.8.2) on 127.0.0.1.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::{self, Pki};
use crate::tools::{log_tail, output_within, require_tool, run_ok};
use crate::util::{base64_encode, free_port};

/// User name the [`Mode::BasicAuth`] registry accepts.
pub const USERNAME: &str = "tbuser";
/// Password the [`Mode::BasicAuth`] registry accepts.
pub const PASSWORD: &str = "tbpass";

/// How a [`Registry`] talks to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP, no authentication.
    Http,
    /// HTTPS with a certificate from the test bed's private CA ([`Registry::ca_cert`]).
    Tls,
    /// HTTPS as [`Mode::Tls`], plus htpasswd basic auth with [`USERNAME`]/[`PASSWORD`].
    BasicAuth,
}

/// Which side of a skopeo command a set of flags is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `skopeo inspect` and `skopeo list-tags`: `--tls-verify`, `--cert-dir`, `--creds`.
    Inspect,
    /// The source of `skopeo copy`: `--src-…`.
    Src,
    /// The destination of `skopeo copy`: `--dest-…`.
    Dest,
}

/// The skopeo flags for a registry at `side`, given what it needs.
pub(crate) fn skopeo_flags(
    side: Side,
    plain_http: bool,
    certs_dir: Option<&Path>,
    creds: Option<(&str, &str)>,
) -> Vec<String> {
    let prefix = match side {
        Side::Inspect => "",
        Side::Src => "src-",
        Side::Dest => "dest-",
    };
    let mut flags = Vec::new();
    if plain_http {
        flags.push(format!("--{prefix}tls-verify=false"));
    }
    if let Some(dir) = certs_dir {
        flags.push(format!("--{prefix}cert-dir={}", dir.display()));
    }
    if let Some((user, password)) = creds {
        flags.push(format!("--{prefix}creds={user}:{password}"));
    }
    flags
}

/// A running `docker-registry serve` with its storage in a fresh directory; killed on drop.
pub struct Registry {
    mode: Mode,
    port: u16,
    child: Child,
    log: PathBuf,
    pki: Option<&'static Pki>,
    _dir: tempfile::TempDir,
}

/// How long a registry may take to answer `/v2/` (it takes ~30 ms on an idle machine).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

enum Start {
    Ready(Child),
    PortTaken,
}

impl Registry {
    /// Where the registry keeps a blob on disk, so a test can make it serve bad content
    /// (the registry trusts its storage and serves whatever the file holds).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self._dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Starts a registry in `mode` on a free port of 127.0.0.1 and waits until `/v2/` answers.
    pub fn start(mode: Mode) -> Registry {
        let binary = require_tool("docker-registry");
        let pki = (mode != Mode::Http).then(pki::get);
        let dir = crate::scratch_dir("registry-");
        // The port is chosen before the registry binds it, so another process can take it in
        // between; the registry then exits at once and a new port is tried.
        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let config = dir.path().join(format!("config-{attempt}.yml"));
            write_config(&config, mode, port, &dir.path().join("data"), pki);
            let log = dir.path().join(format!("registry-{attempt}.log"));
            let log_file = File::create(&log)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
            let child = Command::new(&binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("clone log file handle"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {} serve {}: {e}",
                        binary.display(),
                        config.display()
                    )
                });
            match wait_ready(child, mode, port, &log, pki) {
                Start::Ready(child) => {
                    return Registry {
                        mode,
                        port,
                        child,
                        log,
                        pki,
                        _dir: dir,
                    }
                }
                Start::PortTaken => continue,
            }
        }
        panic!("docker-registry found no free port on 127.0.0.1 in {ATTEMPTS} attempts (see the logs in {})", dir.path().display());
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.mode == Mode::Http {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", self.addr())
    }

    /// How the registry was started.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The PEM CA certificate clients must trust (TLS modes only).
    pub fn ca_cert(&self) -> Option<&Path> {
        self.pki.map(|p| p.ca_cert.as_path())
    }

    /// A directory holding only `ca.crt`, for skopeo's `--cert-dir` (TLS modes only).
    pub fn certs_dir(&self) -> Option<&Path> {
        self.pki.map(|p| p.certs_dir.as_path())
    }

    /// User name and password ([`Mode::BasicAuth`] only).
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        (self.mode == Mode::BasicAuth).then_some((USERNAME, PASSWORD))
    }

    /// The flags skopeo needs to reach this registry at `side`: `--tls-verify=false` for HTTP,
    /// `--cert-dir` for TLS, and `--creds` for basic auth (each with the side's prefix).
    pub fn skopeo_flags(&self, side: Side) -> Vec<String> {
        skopeo_flags(
            side,
            self.mode == Mode::Http,
            self.certs_dir(),
            self.credentials(),
        )
    }

    /// Writes a Docker-style `config.json` into `dir` with this registry's credentials (none for
    /// modes without auth), for `DOCKER_CONFIG=dir`; returns the file's path.
    pub fn write_docker_config(&self, dir: &Path) -> PathBuf {
        let auths = match self.credentials() {
            Some((user, password)) => {
                serde_json::json!({ self.addr(): { "auth": base64_encode(format!("{user}:{password}").as_bytes()) } })
            }
            None => serde_json::json!({}),
        };
        let path = dir.join("config.json");
        std::fs::write(&path, serde_json::json!({ "auths": auths }).to_string())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Pushes the distroless stand-in ([`crate::base_layout`]) as
    /// `distroless/static-debian12:{latest,nonroot}` and returns the `:nonroot` reference,
    /// `127.0.0.1:PORT/distroless/static-debian12:nonroot`.
    pub fn push_base(&self) -> String {
        push_base_to(&self.addr(), &self.skopeo_flags(Side::Dest))
    }

    /// Pushes the glibc stand-in ([`crate::cc_base_layout`]) as
    /// `distroless/cc-debian12:{latest,nonroot}`; returns the `:nonroot` reference.
    pub fn push_cc_base(&self) -> String {
        let layout = crate::cc_base_layout();
        for tag in crate::BASE_TAGS {
            run_ok(
                Command::new(require_tool("skopeo"))
                    .args(["copy", "--quiet", "--all"])
                    .args(self.skopeo_flags(Side::Dest))
                    .arg(format!("oci:{}:{tag}", layout.display()))
                    .arg(format!(
                        "docker://{}/{}:{tag}",
                        self.addr(),
                        crate::CC_BASE_REPOSITORY
                    )),
            );
        }
        format!("{}/{}:nonroot", self.addr(), crate::CC_BASE_REPOSITORY)
    }

    /// Pushes the stand-in with a fix ([`crate::fixed_base_layout`], `/etc/base-fix` holding
    /// `note`) as `distroless/static-debian12:{tag}`, every platform; returns the reference.
    /// With `tag` `nonroot`, the base tag [`Registry::push_base`] pushed moves, as when
    /// distroless publishes a fix.
    pub fn push_fixed_base(&self, tag: &str, note: &str) -> String {
        let (_work, layout) = crate::fixed_base_layout(note);
        let image = format!("{}/{}:{tag}", self.addr(), crate::BASE_REPOSITORY);
        run_ok(
            Command::new(require_tool("skopeo"))
                .args(["copy", "--quiet", "--all"])
                .args(self.skopeo_flags(Side::Dest))
                .arg(format!("oci:{}:nonroot", layout.display()))
                .arg(format!("docker://{image}")),
        );
        image
    }

    /// Builds `base` (a Debian-like or Alpine-like stand-in, linux/amd64) and pushes it;
    /// returns its `:latest` reference.
    pub fn push_other_base(&self, base: crate::OtherBase) -> String {
        let work = crate::scratch_dir("other-base-");
        let layout = work.path().join("layout");
        crate::other_bases::build(base, &layout, work.path());
        let image = format!("{}/{}:latest", self.addr(), base.repository());
        run_ok(
            Command::new(require_tool("skopeo"))
                .args(["copy", "--quiet"])
                .args(self.skopeo_flags(Side::Dest))
                .arg(format!("oci:{}:latest", layout.display()))
                .arg(format!("docker://{image}")),
        );
        image
    }

    /// Everything the registry has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `skopeo copy --all` of both base tags to `addr`; returns the `:nonroot` reference.
pub(crate) fn push_base_to(addr: &str, dest_flags: &[String]) -> String {
    let layout = crate::base_layout();
    let skopeo = require_tool("skopeo");
    for tag in crate::BASE_TAGS {
        run_ok(
            Command::new(&skopeo)
                .args(["copy", "--quiet", "--all"])
                .args(dest_flags)
                .arg(format!("oci:{}:{tag}", layout.display()))
                .arg(format!("docker://{addr}/{}:{tag}", crate::BASE_REPOSITORY)),
        );
    }
    format!("{addr}/{}:nonroot", crate::BASE_REPOSITORY)
}

fn write_config(path: &Path, mode: Mode, port: u16, data: &Path, pki: Option<&Pki>) {
    // JSON strings are valid YAML double-quoted scalars, whatever the path contains.
    let quote = |p: &Path| serde_json::to_string(&p.display().to_string()).expect("string to JSON");
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: stevedore-testbed\n  headers:\n    X-Content-Type-Options: [nosniff]\n",
        data = quote(data),
    );
    if let Some(pki) = pki {
        yaml += &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            quote(&pki.server_cert),
            quote(&pki.server_key)
        );
    }
    if mode == Mode::BasicAuth {
        let pki = pki.expect("basic auth runs over TLS");
        yaml += &format!(
            "auth:\n  htpasswd:\n    realm: stevedore-testbed\n    path: {}\n",
            quote(&pki.htpasswd)
        );
    }
    std::fs::write(path, yaml).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn wait_ready(mut child: Child, mode: Mode, port: u16, log: &Path, pki: Option<&Pki>) -> Start {
    let curl = require_tool("curl");
    let scheme = if mode == Mode::Http { "http" } else { "https" };
    let url = format!("{scheme}://127.0.0.1:{port}/v2/");
    let expected = if mode == Mode::BasicAuth {
        "401"
    } else {
        "200"
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for docker-registry") {
            if std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains("address already in use")
            {
                return Start::PortTaken;
            }
            panic!(
                "docker-registry ({mode:?}) exited with {status} before answering {url}\n{}",
                log_tail(log, 30)
            );
        }
        // "listening on" proves this port belongs to our child, not to a neighbour.
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("listening on")
        {
            let mut probe = Command::new(&curl);
            probe.args([
                "--silent",
                "--show-error",
                "--max-time",
                "2",
                "--output",
                "/dev/null",
                "--write-out",
                "%{http_code}",
            ]);
            if let Some(pki) = pki {
                probe.arg("--cacert").arg(&pki.ca_cert);
            }
            probe.arg(&url);
            if let Ok(out) = output_within(&mut probe, Duration::from_secs(5)) {
                if out.status.success() && out.stdout == expected.as_bytes() {
                    return Start::Ready(child);
                }
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "docker-registry ({mode:?}) did not answer {url} with {expected} within {} s\n{}",
                READY_TIMEOUT.as_secs(),
                log_tail(log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
