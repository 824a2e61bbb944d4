//! Signing and provenance, judged by verifiers that share no code with stevedore: the `.sig`
//! manifests read back from the real registry and checked with `openssl dgst -verify`, the
//! provenance envelope checked with securesystemslib (the in-toto project's DSSE library) and
//! with openssl over the PAE.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::util::*;

const PASSWORD: &str = "correct-horse-7f3a";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

fn openssl() -> Command {
    Command::new(testbed::require_tool("openssl"))
}

/// An EC key made by openssl: `genpkey` on `curve`, then encrypted PKCS#8 (`pkcs8 -topk8 -v2
/// aes-256-cbc`) under `PASSWORD`. Returns (plain key, encrypted key, public key).
pub fn keys(dir: &Path, curve: &str) -> (PathBuf, PathBuf, PathBuf) {
    let plain = dir.join(format!("{curve}.pem"));
    let encrypted = dir.join(format!("{curve}.enc.pem"));
    let public = dir.join(format!("{curve}.pub.pem"));
    run_ok(
        openssl()
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
            .arg(format!("ec_paramgen_curve:{curve}"))
            .arg("-out")
            .arg(&plain),
    );
    run_ok(
        openssl()
            .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout"])
            .arg(format!("pass:{PASSWORD}"))
            .arg("-in")
            .arg(&plain)
            .arg("-out")
            .arg(&encrypted),
    );
    run_ok(
        openssl()
            .args(["pkey", "-pubout", "-in"])
            .arg(&plain)
            .arg("-out")
            .arg(&public),
    );
    (plain, encrypted, public)
}

/// GET from the registry's HTTP API (`/v2/REPO/…`).
fn get(registry: &Registry, repo: &str, path: &str, accept: &str) -> Option<Vec<u8>> {
    let out = Command::new(testbed::require_tool("curl"))
        .args(["-fsS", "-H", &format!("Accept: {accept}")])
        .arg(format!("{}/v2/{repo}/{path}", registry.url()))
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

fn manifest(registry: &Registry, repo: &str, reference: &str) -> Option<serde_json::Value> {
    let accept =
        "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json";
    get(registry, repo, &format!("manifests/{reference}"), accept).map(|b| json(&b))
}

fn blob(registry: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    get(registry, repo, &format!("blobs/{digest}"), "*/*").expect("blob in the registry")
}

/// `openssl dgst -sha256 -verify PUB -signature SIG FILE`: true when it prints Verified OK.
pub fn openssl_verifies(public: &Path, signature_der: &[u8], message: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (sig, msg) = (dir.path().join("sig.der"), dir.path().join("message"));
    std::fs::write(&sig, signature_der).unwrap();
    std::fs::write(&msg, message).unwrap();
    let out = openssl()
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(&sig)
        .arg(&msg)
        .output()
        .unwrap();
    out.status.success() && text(&out.stdout).contains("Verified OK")
}

pub fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// The `.sig` manifest for `digest`, read back: its payload and DER signature.
fn signature(registry: &Registry, repo: &str, digest: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    let manifest = manifest(registry, repo, &tag)?;
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], SIMPLE_SIGNING, "{manifest:#}");
    let payload = blob(registry, repo, layer["digest"].as_str().unwrap());
    let sig = layer["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap();
    Some((payload, b64(sig)))
}

#[test]
fn a_signed_push_verifies_with_openssl_and_securesystemslib_and_a_moved_tag_does_not() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let (_, encrypted, public) = keys(dir.path(), "P-256");
    let repo = "test/signed";
    let image = format!("{}/{repo}:1", registry.addr());
    let refs_file = dir.path().join("refs.txt");
    let layout = dir.path().join("layout");
    let out = run_ok(
        stevedore_build("hello")
            .args([
                "-vv",
                "--base",
                &base,
                "--platform",
                "linux/amd64,linux/arm64",
            ])
            .args(["-t", &image, "--push", "--json", "--sign-key"])
            .arg(&encrypted)
            .arg("--image-refs")
            .arg(&refs_file)
            .arg("-o")
            .arg(format!("oci-layout={}", layout.display()))
            .env("STEVEDORE_SIGN_PASSWORD", PASSWORD),
    );
    // Neither the password nor the key shows, even at trace level.
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let key_text = std::fs::read_to_string(&encrypted).unwrap();
    let key_body = key_text.lines().nth(1).unwrap();
    assert!(!printed.contains(PASSWORD), "the password was printed");
    assert!(!printed.contains(key_body), "the key was printed");

    let result = json(&out.stdout);
    let index = result["digest"].as_str().unwrap().to_owned();
    let manifests: Vec<String> = result["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(manifests.len(), 2);
    let reference = format!("{}/{repo}", registry.addr());

    // The index and each platform's manifest: a .sig whose payload names it and this
    // repository, signed so that openssl accepts it with the public key.
    for digest in std::iter::once(&index).chain(&manifests) {
        let (payload, sig) = signature(&registry, repo, digest)
            .unwrap_or_else(|| panic!("no signature for {digest}"));
        let claims = json(&payload);
        assert_eq!(
            claims["critical"]["image"]["docker-manifest-digest"],
            *digest
        );
        assert_eq!(
            claims["critical"]["identity"]["docker-reference"],
            reference
        );
        assert_eq!(
            claims["critical"]["type"],
            "cosign container image signature"
        );
        assert!(openssl_verifies(&public, &sig, &payload), "{digest}");
        // The same signature over a payload naming another image is worthless.
        let forged = text(&payload).replace(digest.as_str(), &manifests[0]);
        if forged.as_bytes() != payload.as_slice() {
            assert!(!openssl_verifies(&public, &sig, forged.as_bytes()));
        }
    }

    // --image-refs lists the signatures and the provenance beside the image.
    let listed = std::fs::read_to_string(&refs_file).unwrap();
    let raw_sig = get(
        &registry,
        repo,
        &format!("manifests/sha256-{}.sig", &index[7..]),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .unwrap();
    assert!(
        listed.contains(stevedore::Digest::of(&raw_sig).as_str()),
        "{listed}"
    );

    // The provenance: a referrer of the index (fallback tag: distribution 2.8 has no
    // referrers API) holding a DSSE envelope.
    let referrers = manifest(&registry, repo, &format!("sha256-{}", &index[7..])).unwrap();
    let entry = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == "application/vnd.in-toto+json")
        .unwrap_or_else(|| panic!("no provenance referrer: {referrers:#}"));
    let provenance_digest = entry["digest"].as_str().unwrap();
    assert!(listed.contains(provenance_digest), "{listed}");
    let artifact = manifest(&registry, repo, provenance_digest).unwrap();
    assert_eq!(artifact["subject"]["digest"], index);
    let layer = &artifact["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
    let envelope_bytes = blob(&registry, repo, layer["digest"].as_str().unwrap());
    let envelope = json(&envelope_bytes);
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let statement_bytes = b64(envelope["payload"].as_str().unwrap());
    check_statement(&json(&statement_bytes), &index, &base);

    // openssl over the PAE, as the DSSE spec defines it.
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        statement_bytes.len()
    )
    .into_bytes();
    pae.extend_from_slice(&statement_bytes);
    let sig = b64(envelope["signatures"][0]["sig"].as_str().unwrap());
    assert!(openssl_verifies(&public, &sig, &pae));
    assert!(
        !openssl_verifies(&public, &sig, &statement_bytes),
        "the PAE is signed, not the bare payload"
    );

    // securesystemslib's Envelope.verify with the public key.
    let envelope_file = dir.path().join("envelope.json");
    std::fs::write(&envelope_file, &envelope_bytes).unwrap();
    securesystemslib_verifies(&envelope_file, &public);

    // cosign's .att beside it, holding the same envelope.
    let att = manifest(&registry, repo, &format!("sha256-{}.att", &index[7..])).unwrap();
    assert_eq!(att["layers"][0]["digest"], layer["digest"], "{att:#}");
    assert_eq!(
        att["layers"][0]["annotations"]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );

    // The layout output carries the same signatures under cosign's tag names.
    let layout_index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let names: Vec<String> = layout_index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_owned)
        .collect();
    for digest in std::iter::once(&index).chain(&manifests) {
        let tag = format!("sha256-{}.sig", &digest[7..]);
        assert!(names.contains(&tag), "{names:?}");
    }

    // `verify --key` rebuilds, and checks every signature and the provenance.
    let verified = run_ok(
        stevedore("verify", "hello")
            .args(["--base", &base, "--key"])
            .arg(&public)
            .arg(format!("{reference}@{index}")),
    );
    let printed = text(&verified.stdout);
    assert_eq!(printed.matches("signature ok").count(), 4, "{printed}");
    assert!(printed.contains("provenance signed"), "{printed}");

    // An image of another digest (another base), pushed unsigned, has no signature; and once
    // the tag moves to it, what the tag names no longer matches the signature made for it.
    let other = run_ok(
        stevedore_build("hello")
            .args([
                "--base",
                "scratch",
                "--platform",
                "linux/amd64",
                "--no-provenance",
            ])
            .args(["-t", &image, "--push", "--json"]),
    );
    let moved = json(&other.stdout)["digest"].as_str().unwrap().to_owned();
    assert_ne!(moved, index);
    assert!(
        signature(&registry, repo, &moved).is_none(),
        "an unsigned image has a .sig"
    );
    let now = get(
        &registry,
        repo,
        "manifests/1",
        "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json",
    )
    .unwrap();
    assert_eq!(stevedore::Digest::of(&now).as_str(), moved);
    // verify --key: the rebuild matches, the signatures are missing: exit 3.
    let unsigned = run_exit(
        stevedore("verify", "hello")
            .args(["--base", "scratch", "--key"])
            .arg(&public)
            .arg(&image),
        3,
    );
    assert!(unsigned.contains("not signed"), "{unsigned}");
    let (old_payload, old_sig) = signature(&registry, repo, &index).unwrap();
    assert!(openssl_verifies(&public, &old_sig, &old_payload));
    assert_ne!(
        json(&old_payload)["critical"]["image"]["docker-manifest-digest"],
        moved,
        "the old signature does not cover what the tag names now"
    );
}

fn check_statement(statement: &serde_json::Value, index: &str, base: &str) {
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], index[7..]);
    let predicate = &statement["predicate"];
    let definition = &predicate["buildDefinition"];
    assert!(definition["buildType"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    let external = &definition["externalParameters"];
    assert_eq!(external["package"], "hello");
    assert_eq!(external["bin"], "hello");
    assert_eq!(external["profile"], "release");
    assert_eq!(external["base"], base);
    assert_eq!(
        external["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64/v8"])
    );
    let deps = definition["resolvedDependencies"].as_array().unwrap();
    assert!(
        deps.iter().any(
            |d| d["uri"].as_str().is_some_and(|u| u.starts_with("oci://"))
                && d["digest"]["sha256"]
                    .as_str()
                    .is_some_and(|h| h.len() == 64)
        ),
        "the base by digest: {deps:?}"
    );
    assert!(
        deps.iter()
            .any(|d| d["name"] == "rustc" && d["uri"].as_str().unwrap().contains("rustc@")),
        "rustc: {deps:?}"
    );
    assert!(deps.iter().any(|d| d["name"] == "Cargo.lock"), "{deps:?}");
    // arm64 is cross-linked: by stevedore's pinned zig, named by its wheel's digest.
    let zig = deps.iter().find(|d| d["name"] == "zig").expect("zig");
    assert_eq!(
        zig["uri"],
        format!("pkg:pypi/ziglang@{}", testbed::ZIGLANG_VERSION)
    );
    let wheel = std::fs::read(testbed::zig_wheel()).unwrap();
    assert_eq!(
        zig["digest"]["sha256"],
        stevedore::Digest::of(&wheel).hex(),
        "the wheel the zig came from: {zig}"
    );
    // The test bed's toolchain has no musl std: it is built from rust-src, named by rustc's
    // release and the sources' digest.
    let (release, _) = testbed_rustc();
    let rust_src = deps
        .iter()
        .find(|d| d["name"] == "rust-src")
        .expect("rust-src");
    assert_eq!(rust_src["uri"], format!("pkg:generic/rust-src@{release}"));
    assert!(
        rust_src["digest"]["sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64),
        "{rust_src}"
    );
    // stevedore by version and by the bytes of the executable that ran.
    let exe = std::fs::read(env!("CARGO_BIN_EXE_cargo-stevedore")).unwrap();
    let stevedore = deps
        .iter()
        .find(|d| d["name"] == "stevedore")
        .expect("stevedore");
    assert_eq!(
        stevedore["uri"],
        format!("pkg:cargo/stevedore@{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        stevedore["digest"]["sha256"],
        stevedore::Digest::of(&exe).hex(),
        "{stevedore}"
    );
    let run = &predicate["runDetails"];
    assert_eq!(
        run["builder"]["id"],
        "https://github.com/stevedore-rs/stevedore"
    );
    // SOURCE_DATE_EPOCH, not the clock.
    assert_eq!(run["metadata"]["startedOn"], "2023-11-14T22:13:20Z");
    assert_eq!(run["metadata"]["finishedOn"], "2023-11-14T22:13:20Z");
}

/// securesystemslib (PyPI) verifies the envelope with the public key, or the test fails.
fn securesystemslib_verifies(envelope: &Path, public: &Path) {
    let python = testbed::venv_dir().join("bin/python3");
    let script = r#"
import json, sys
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
envelope = Envelope.from_dict(json.load(open(sys.argv[1])))
public = serialization.load_pem_public_key(open(sys.argv[2], "rb").read())
found = SSlibKey.from_crypto(public, scheme="ecdsa-sha2-nistp256")
# from_crypto computes a keyid for an empty one; the envelope's keyid is "" (as cosign's).
key = SSlibKey("", found.keytype, found.scheme, found.keyval)
accepted = envelope.verify([key], 1)
print("verified", len(accepted))
"#;
    let out = run_ok(
        Command::new(&python)
            .args(["-c", script])
            .arg(envelope)
            .arg(public),
    );
    assert!(
        text(&out.stdout).contains("verified 1"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn key_mistakes_are_one_paragraph_before_any_compile() {
    let dir = tempfile::tempdir().unwrap();
    let (_, encrypted, _) = keys(dir.path(), "P-256");
    let (p384, _, _) = keys(dir.path(), "P-384");
    let attempt = |key: &Path, password: Option<&str>| {
        let mut cmd = stevedore_build("hello");
        cmd.args([
            "-vv",
            "--base",
            "scratch",
            "--platform",
            "linux/amd64",
            "--sign-key",
        ])
        .arg(key)
        .env_remove("STEVEDORE_SIGN_PASSWORD")
        .env_remove("COSIGN_PASSWORD");
        if let Some(password) = password {
            cmd.env("COSIGN_PASSWORD", password);
        }
        let err = run_exit(&mut cmd, 1);
        assert!(!err.contains("Compiling"), "cargo ran: {err}");
        err
    };
    let wrong = attempt(&encrypted, Some("not-the-password-91c2"));
    assert!(
        wrong.contains("COSIGN_PASSWORD") && wrong.contains("does not decrypt"),
        "{wrong}"
    );
    assert!(!wrong.contains("not-the-password-91c2"), "{wrong}");
    let none = attempt(&encrypted, None);
    assert!(none.contains("STEVEDORE_SIGN_PASSWORD"), "{none}");
    let curve = attempt(&p384, None);
    assert!(
        curve.contains("P-384") && curve.contains("P-256"),
        "{curve}"
    );
    let missing = attempt(&dir.path().join("nope.pem"), None);
    assert!(
        missing.contains("nope.pem") && missing.contains("--sign-key"),
        "{missing}"
    );
}

/// As ssh does, a key file others may read is named in a warning with the fix; once it is
/// `chmod 600`, nothing is said. The build signs either way.
#[test]
fn a_key_others_can_read_gets_a_warning_naming_it_and_chmod_600() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, _, _) = keys(dir.path(), "P-256");
    let sign = |mode: u32| {
        std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
        let out = run_ok(
            stevedore_build("hello")
                .args(["--base", "scratch", "--platform", "linux/amd64"])
                .arg("--sign-key")
                .arg(&plain)
                .arg("--output")
                .arg(format!("oci-layout={}", dir.path().join("image").display())),
        );
        text(&out.stderr)
    };
    let open = sign(0o644);
    let shown = plain.display();
    assert!(
        open.contains(&format!("the signing key {shown} has permissions 0644"))
            && open.contains(&format!("run `chmod 600 {shown}`")),
        "{open}"
    );
    let closed = sign(0o600);
    assert!(!closed.contains("signing key"), "{closed}");
}
