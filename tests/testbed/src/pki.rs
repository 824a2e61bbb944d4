//! A private CA, a server certificate for 127.0.0.1/localhost, and an htpasswd file.
//!
//! Made once and kept in the test bed directory: a process-wide temporary directory would be
//! leaked on every run (statics are never dropped), and RSA key generation is the slowest part of
//! starting a TLS registry.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::registry::{PASSWORD, USERNAME};
use crate::tools::{require_tool, run_ok};

pub(crate) struct Pki {
    /// PEM of the CA that signed the server certificate.
    pub ca_cert: PathBuf,
    /// Directory holding only `ca.crt`, for skopeo's `--cert-dir`.
    pub certs_dir: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// `USERNAME:bcrypt(PASSWORD)`.
    pub htpasswd: PathBuf,
}

impl Pki {
    fn at(dir: &Path) -> Pki {
        Pki {
            ca_cert: dir.join("ca.crt"),
            certs_dir: dir.join("certs.d"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            htpasswd: dir.join("htpasswd"),
        }
    }
}

/// Bump when the recipe changes, so old material is not reused.
const PKI_DIR: &str = "pki-v1";

pub(crate) fn get() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = crate::testbed_dir().join(PKI_DIR);
        if !dir.join("htpasswd").is_file() {
            let work = crate::scratch_dir("pki-");
            make(work.path());
            // Renaming a complete directory into place is atomic; a concurrent test process may
            // have won the race, and its copy is as good as ours.
            if std::fs::rename(work.path(), &dir).is_err() && !dir.join("htpasswd").is_file() {
                panic!("cannot move the test PKI into {}", dir.display());
            }
        }
        Pki::at(&dir)
    })
}

fn make(dir: &Path) {
    let openssl = require_tool("openssl");
    let openssl = || {
        let mut cmd = Command::new(&openssl);
        cmd.current_dir(dir);
        cmd
    };
    // No argument contains a space: file names are relative to `dir`.
    let openssl_ok = |args: &str| run_ok(openssl().args(args.split_whitespace()));
    openssl_ok(
        "req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 -subj /CN=stevedore-testbed-ca \
         -keyout ca.key -out ca.crt -addext basicConstraints=critical,CA:TRUE \
         -addext keyUsage=critical,keyCertSign,cRLSign",
    );
    openssl_ok("req -newkey rsa:2048 -nodes -sha256 -subj /CN=localhost -keyout server.key -out server.csr");
    write(
        &dir.join("server.ext"),
        "basicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
    openssl_ok(
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
         -extfile server.ext -out server.crt",
    );
    openssl_ok("verify -CAfile ca.crt server.crt");

    let certs_dir = dir.join("certs.d");
    std::fs::create_dir(&certs_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", certs_dir.display()));
    std::fs::copy(dir.join("ca.crt"), certs_dir.join("ca.crt")).expect("copy ca.crt into certs.d");

    let htpasswd =
        run_ok(Command::new(require_tool("htpasswd")).args(["-Bbn", USERNAME, PASSWORD]));
    write(
        &dir.join("htpasswd"),
        &String::from_utf8_lossy(&htpasswd.stdout),
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
