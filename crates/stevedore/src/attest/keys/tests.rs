use super::*;
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::{DecodePublicKey, EncodePrivateKey};

/// `pemcosigneckey` from the same file: an older cosign's sealing of a SEC1 `EC PRIVATE KEY`
/// (scrypt N=65536), password `hello`.
const COSIGN_EC_KEY: &str = "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6
OCwicCI6MX0sInNhbHQiOiJHK3F5WTYrNzhNS0JzMXNGTGs1ajYwcS9kS3Z1czBW
VkhlSHZybC9POTF3PSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJRc2JGdG13WDRDK2ttV3ZCcVRaMEFGOUFYdk1jRmg1SCJ9LCJj
aXBoZXJ0ZXh0IjoiREM5T28zeldiYVQzSXYwdFVnWEdycjUxYW1samwwNlQ5MTNP
VkxPbWpuMWhnK2o2WXRUbWg3SGhZSlY1N2J5eGE0Q281bE9YYmRqbTJ3aklubEd1
Um5aZCt5OExnekpSNzFSeEhKVzgrWmRlcFJmYWJMTjdHbDgrSFZEcERVQ3NxQnRh
VngyblpGbFEwWUl1anZwbFphblNGaUVvdERLVGkxZ3VhUXIwUHNzYU01NXZxbTRY
WS9rPSJ9
-----END ENCRYPTED COSIGN PRIVATE KEY-----
";

fn password(value: &str) -> impl FnOnce() -> Option<Password> + '_ {
    move || {
        Some(Password {
            value: Zeroizing::new(value.to_owned()),
            var: env::COSIGN_PASSWORD,
        })
    }
}

fn path() -> &'static Path {
    Path::new("cosign.key")
}

/// The public keys of the two vectors, found once by decrypting them: pinned so that a change
/// in the scrypt or secretbox handling shows.
const COSIGN_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7z9gA/tqa9iHt/f9F3ulyVi4lwqU
LfHWfhG2mK4eyJ8LDcLstb+VVhxj3pkMjc3fNo+sSfiIY2NLR7c+DG1V4w==
-----END PUBLIC KEY-----
";
const COSIGN_EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE+9E3Qe+h25ofmz3Uo2T004Dfy49i
X06MMbxf9rsGmLkOPrS0KYDl1QMfFuSbrtf8wTWNT9HNxrW/Foz39mDhHw==
-----END PUBLIC KEY-----
";

#[test]
fn reads_cosigns_own_test_key_with_its_password() {
    let key = SigningKey::from_pem(COSIGN_KEY.as_bytes(), path(), password("hello")).unwrap();
    assert_eq!(key.public_pem(), COSIGN_PUBLIC);
    let verifying = p256::ecdsa::VerifyingKey::from_public_key_pem(COSIGN_PUBLIC).unwrap();
    let signature = p256::ecdsa::Signature::from_der(&key.sign(b"payload")).unwrap();
    verifying.verify(b"payload", &signature).unwrap();
}

#[test]
fn reads_an_older_cosign_key_that_seals_sec1() {
    // cosign today refuses this one ("use ParseECPrivateKey instead"); it is still a P-256 key.
    let key = SigningKey::from_pem(COSIGN_EC_KEY.as_bytes(), path(), password("hello")).unwrap();
    assert_eq!(key.public_pem(), COSIGN_EC_PUBLIC);
}

#[test]
fn a_wrong_password_is_named_by_its_variable_not_its_value() {
    let err =
        SigningKey::from_pem(COSIGN_KEY.as_bytes(), path(), password("s3cret-wrong")).unwrap_err();
    assert!(matches!(err, KeyError::WrongPassword { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("COSIGN_PASSWORD") && !text.contains("s3cret-wrong"),
        "{text}"
    );
}

#[test]
fn an_encrypted_key_without_a_password_says_where_to_put_one() {
    let err = SigningKey::from_pem(COSIGN_EC_KEY.as_bytes(), path(), || None).unwrap_err();
    assert!(err.to_string().contains("STEVEDORE_SIGN_PASSWORD"), "{err}");
}

#[test]
fn signatures_are_deterministic_and_verify() {
    let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = SigningKey::from_pem(pem.as_bytes(), path(), || None).unwrap();
    assert_eq!(key.sign(b"abc"), key.sign(b"abc"));
    let signature = p256::ecdsa::Signature::from_der(&key.sign(b"abc")).unwrap();
    key.key.verifying_key().verify(b"abc", &signature).unwrap();
    assert!(!format!("{key:?}").contains(&pem[30..60]));
}

#[test]
fn another_curve_is_named() {
    // A P-256 PKCS#8 key with its curve OID changed in place (same length) to another curve;
    // the integration tests use a real P-384 key from openssl.
    let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let der = secret.to_pkcs8_der().unwrap();
    let mut bytes = der.as_bytes().to_vec();
    let p256_oid = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let at = bytes.windows(8).position(|w| w == p256_oid).unwrap();
    bytes[at + 7] = 0x08; // 1.2.840.10045.3.1.8: some other curve
    let err = SigningKey::from_pkcs8(&bytes, path()).unwrap_err();
    assert!(matches!(err, KeyError::Curve { .. }), "{err:?}");
}

#[test]
fn a_missing_file_is_named() {
    let err = SigningKey::load(Path::new("/nonexistent/key.pem")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/key.pem"), "{err}");
}
/// `pemsigstorekey` from cosign's pkg/cosign/keys_test.go (sigstore/cosign @d6d86c2), which
/// cosign's `TestReadingPrivatePemTypes` loads with the password `hello`: an EC P-256 PKCS#8 key
/// sealed with scrypt (N=32768, r=8, p=1) and nacl/secretbox.
const COSIGN_KEY: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiI3T3VGd2VsbWZZNXVId2NoaURSc210anNwZ2ZlZjFG
Mk5lOGFDTjVLYVpZPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJQNHk4OGhCb3ZTa09MbXN0bFVBaGJwdDJ0K2xTNUxQSCJ9LCJj
aXBoZXJ0ZXh0IjoiMnB1QzdyZldJOWh3bnJlQ2s4aUZDRlVwQlRrSzRJNlIvbFBF
cnBDekpXUGpJWXl4eGVIL1A2VW52cFJHdVhla1NNb3JMdGhLamdoQ1JlNy82NDVH
QWtoVm1LRC92eEF0S2EvbE1abENSQ3FlekJGUFd1dzNpeFRtZ2xhb2J1ZFVSbUVs
bmNGOGlZbzBTMVl6Y1ZOMVFwY2J2c0dNcUlYRzVlbmdteGp5dCtBcXlyZTF0Q0Y0
V01tU1BlaEljNlBqd2h1Q2xHaVpJUWRvTGc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
";

#[test]
fn a_key_others_can_read_or_change_gets_a_warning_naming_it_and_the_fix() {
    let path = Path::new("keys/cosign.key");
    for mode in [0o100600, 0o400, 0o700] {
        assert_eq!(too_open(path, mode), None, "{mode:o}");
    }
    for (mode, shown) in [(0o100644, "0644"), (0o640, "0640"), (0o602, "0602")] {
        let warning = too_open(path, mode).unwrap_or_else(|| panic!("{mode:o}"));
        assert!(
            warning.contains(&format!("keys/cosign.key has permissions {shown}")),
            "{warning}"
        );
        assert!(
            warning.ends_with("run `chmod 600 keys/cosign.key`"),
            "{warning}"
        );
    }
}

#[test]
fn a_key_is_read_whatever_its_permissions() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key.pem");
    let key = p256::SecretKey::from_slice(&[7; 32]).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    std::fs::write(&file, pem.as_bytes()).unwrap();
    for mode in [0o600, 0o644] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let read = SigningKey::load(&file).unwrap();
        assert_eq!(
            read.public_pem(),
            SigningKey {
                key: key.clone().into()
            }
            .public_pem()
        );
    }
}
