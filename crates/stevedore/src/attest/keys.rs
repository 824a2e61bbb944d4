//! The signing key: an EC P-256 private key read from PKCS#8 PEM (plain or encrypted), SEC1
//! `EC PRIVATE KEY` PEM, or cosign's own `cosign.key`.
//!
//! cosign's format (`ENCRYPTED SIGSTORE PRIVATE KEY`, or `ENCRYPTED COSIGN PRIVATE KEY` from
//! older versions) is a PEM whose body is JSON written by go-securesystemslib's `encrypted`
//! package: scrypt parameters and salt, a NaCl secretbox nonce, and the secretbox of the key's
//! PKCS#8 DER. The password comes from `STEVEDORE_SIGN_PASSWORD`, else `COSIGN_PASSWORD`.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::der::pem;
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding, ObjectIdentifier};
// Through p256's `der`, which wipes its own secret documents with it: no dependency of our own.
use pkcs8::der::zeroize::Zeroizing;

use crate::env;

/// id-ecPublicKey, the algorithm of every EC key in PKCS#8.
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// prime256v1 (P-256), the one curve stevedore signs with, as cosign does by default.
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// An EC P-256 private key. Its `Debug` shows only the public key's fingerprint.
#[derive(Clone)]
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(P-256, public {})", self.public_pem().len())
    }
}

/// Why the signing key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file cannot be read.
    #[error("cannot read the signing key {}: check --sign-key, STEVEDORE_SIGN_KEY or `sign-key` in [package.metadata.stevedore]", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a PEM private key stevedore reads.
    #[error("{} is not a private key stevedore reads ({what}): give an EC P-256 key as PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`), encrypted PKCS#8, or a cosign.key", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        what: String,
    },
    /// A key of another algorithm or curve.
    #[error("{} holds a key of {found}, and stevedore signs with EC P-256 only (as cosign does by default): make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` or `cosign generate-key-pair`", path.display())]
    Curve {
        /// The file.
        path: PathBuf,
        /// The algorithm or curve found.
        found: String,
    },
    /// The key is encrypted and no password is set.
    #[error("{} is encrypted and no password is set: put it in {} (or {})", path.display(), env::SIGN_PASSWORD, env::COSIGN_PASSWORD)]
    NoPassword {
        /// The file.
        path: PathBuf,
    },
    /// The password does not decrypt the key.
    #[error("the password in {var} does not decrypt {}: set the key's password there", path.display())]
    WrongPassword {
        /// The file.
        path: PathBuf,
        /// The variable the password came from.
        var: &'static str,
    },
}

/// A password and the variable it came from (named in errors; the value never is). Wiped when
/// dropped, as the key bytes are.
struct Password {
    value: Zeroizing<String>,
    var: &'static str,
}

impl Password {
    fn from_env() -> Option<Password> {
        [env::SIGN_PASSWORD, env::COSIGN_PASSWORD]
            .into_iter()
            .find_map(|var| {
                let value = Zeroizing::new(std::env::var(var).ok()?);
                Some(Password { value, var })
            })
    }
}

/// Permission bits that let others than the key's owner read or change it: ssh refuses such a
/// private key; stevedore warns.
#[cfg(unix)]
const OPEN_TO_OTHERS: u32 = 0o077;

/// The warning for a key file whose `mode` lets others read or change it, as ssh words it.
#[cfg(unix)]
fn too_open(path: &Path, mode: u32) -> Option<String> {
    let mode = mode & 0o7777;
    let shown = crate::text::printable_bytes(path.as_os_str().as_encoded_bytes());
    (mode & OPEN_TO_OTHERS != 0).then(|| {
        format!(
            "the signing key {shown} has permissions {mode:04o}: users other than its owner can \
             read it (ssh would refuse it); run `chmod 600 {shown}`"
        )
    })
}

/// The key file's bytes, wiped when dropped; a warning first if others may read it.
fn read_key_file(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    // Windows has no mode bits to check (a key there is guarded by its directory's ACL).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Some(warning) = too_open(path, metadata.permissions().mode()) {
            tracing::warn!("{warning}");
        }
    }
    // Sized up front, so reading leaves no copy of the key behind in a smaller buffer.
    let mut text = Zeroizing::new(Vec::with_capacity(metadata.len() as usize + 1));
    file.read_to_end(&mut text)?;
    Ok(text)
}

impl SigningKey {
    /// Reads the key at `path`, decrypting it with the password from the environment.
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let text = read_key_file(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        SigningKey::from_pem(&text, path, Password::from_env)
    }

    fn from_pem(
        text: &[u8],
        path: &Path,
        password: impl FnOnce() -> Option<Password>,
    ) -> Result<SigningKey, KeyError> {
        let format = |what: &str| KeyError::Format {
            path: path.to_path_buf(),
            what: what.to_owned(),
        };
        let (label, der) = pem::decode_vec(text).map_err(|_| format("no PEM block"))?;
        let der = Zeroizing::new(der);
        let password = |path: &Path| {
            password().ok_or_else(|| KeyError::NoPassword {
                path: path.to_path_buf(),
            })
        };
        let pkcs8 = match label {
            "PRIVATE KEY" => der,
            "EC PRIVATE KEY" => {
                return p256::SecretKey::from_sec1_der(&der)
                    .map(|k| SigningKey { key: k.into() })
                    .map_err(|_| KeyError::Curve {
                        path: path.to_path_buf(),
                        found: "an EC curve other than P-256".into(),
                    })
            }
            "ENCRYPTED PRIVATE KEY" => {
                let password = password(path)?;
                let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|_| format("an unreadable ENCRYPTED PRIVATE KEY"))?;
                let doc = info.decrypt(password.value.as_bytes()).map_err(|_| {
                    KeyError::WrongPassword {
                        path: path.to_path_buf(),
                        var: password.var,
                    }
                })?;
                Zeroizing::new(doc.as_bytes().to_vec())
            }
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                let password = password(path)?;
                cosign::decrypt(&der, password.value.as_bytes())
                    .map_err(|e| match e {
                        cosign::Failure::Format(what) => format(what),
                        cosign::Failure::Decrypt => KeyError::WrongPassword {
                            path: path.to_path_buf(),
                            var: password.var,
                        },
                    })
                    .map(Zeroizing::new)?
            }
            other => return Err(format(&format!("a PEM block labelled `{other}`"))),
        };
        match SigningKey::from_pkcs8(&pkcs8, path) {
            // Older cosign versions sealed an imported `EC PRIVATE KEY` as SEC1 DER.
            Err(KeyError::Format { .. }) if label.contains("COSIGN") => {
                p256::SecretKey::from_sec1_der(&pkcs8)
                    .map(|k| SigningKey { key: k.into() })
                    .map_err(|_| format("a cosign key holding neither PKCS#8 nor SEC1 P-256"))
            }
            other => other,
        }
    }

    /// A PKCS#8 PrivateKeyInfo, checked to be EC P-256 first so that another curve is named.
    fn from_pkcs8(der: &[u8], path: &Path) -> Result<SigningKey, KeyError> {
        let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|_| KeyError::Format {
            path: path.to_path_buf(),
            what: "an unreadable PKCS#8 key".into(),
        })?;
        let curve = info.algorithm.parameters_oid().ok();
        if info.algorithm.oid != EC_PUBLIC_KEY || curve != Some(P256) {
            let found = match (info.algorithm.oid, curve) {
                (EC_PUBLIC_KEY, Some(curve)) => format!("the EC curve {}", curve_name(curve)),
                (oid, _) => format!("algorithm {}", algorithm_name(oid)),
            };
            return Err(KeyError::Curve {
                path: path.to_path_buf(),
                found,
            });
        }
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|_| KeyError::Format {
            path: path.to_path_buf(),
            what: "a damaged P-256 key".into(),
        })?;
        Ok(SigningKey { key })
    }

    /// The DER ECDSA-SHA256 signature of `message`; RFC 6979 nonces make it deterministic.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: p256::ecdsa::Signature = self.key.sign(message);
        signature.to_der().as_bytes().to_vec()
    }

    /// The same, base64 (standard alphabet), as cosign and DSSE carry it.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        B64.encode(self.sign(message))
    }

    /// The public key as `PUBLIC KEY` PEM (what `cosign public-key` prints).
    pub fn public_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key encodes")
    }
}

/// An EC P-256 public key (`PUBLIC KEY` PEM, what `openssl pkey -pubout` and `cosign
/// generate-key-pair` write), to check signatures with.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: p256::ecdsa::VerifyingKey,
}

impl PublicKey {
    /// Reads the public key at `path`.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        use p256::pkcs8::DecodePublicKey;
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        p256::ecdsa::VerifyingKey::from_public_key_pem(&text)
            .map(|key| PublicKey { key })
            .map_err(|_| KeyError::Curve {
                path: path.to_path_buf(),
                found: "something other than an EC P-256 `PUBLIC KEY` PEM".into(),
            })
    }

    /// Whether `der` (an ASN.1 DER ECDSA-SHA256 signature) signs `message`.
    pub fn verifies(&self, message: &[u8], der: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        p256::ecdsa::Signature::from_der(der)
            .is_ok_and(|sig| self.key.verify(message, &sig).is_ok())
    }
}

fn curve_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        other => other.into(),
    }
}

fn algorithm_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.3.101.112" => "Ed25519".into(),
        other => other.into(),
    }
}

/// go-securesystemslib's `encrypted` format, as cosign writes its keys.
mod cosign {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;
    use crypto_secretbox::aead::{Aead, KeyInit};
    use crypto_secretbox::XSalsa20Poly1305;
    use serde::Deserialize;

    pub enum Failure {
        Format(&'static str),
        Decrypt,
    }

    #[derive(Deserialize)]
    struct Sealed {
        kdf: Kdf,
        cipher: Cipher,
        ciphertext: String,
    }

    #[derive(Deserialize)]
    struct Kdf {
        name: String,
        params: Params,
        salt: String,
    }

    #[derive(Deserialize)]
    #[allow(non_snake_case)]
    struct Params {
        N: u64,
        r: u32,
        p: u32,
    }

    #[derive(Deserialize)]
    struct Cipher {
        name: String,
        nonce: String,
    }

    /// The PKCS#8 DER inside a cosign key.
    pub fn decrypt(body: &[u8], password: &[u8]) -> Result<Vec<u8>, Failure> {
        let sealed: Sealed = serde_json::from_slice(body)
            .map_err(|_| Failure::Format("a cosign key whose JSON is unreadable"))?;
        if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
            return Err(Failure::Format(
                "a cosign key with a KDF or cipher other than scrypt and nacl/secretbox",
            ));
        }
        let bad = |_| Failure::Format("a cosign key with malformed base64");
        let salt = B64.decode(&sealed.kdf.salt).map_err(bad)?;
        let nonce = B64.decode(&sealed.cipher.nonce).map_err(bad)?;
        let ciphertext = B64.decode(&sealed.ciphertext).map_err(bad)?;
        let n = sealed.kdf.params.N;
        if !n.is_power_of_two() || n < 2 || nonce.len() != 24 {
            return Err(Failure::Format("a cosign key with bad scrypt N or nonce"));
        }
        let params = scrypt::Params::new(
            n.trailing_zeros() as u8,
            sealed.kdf.params.r,
            sealed.kdf.params.p,
            32,
        )
        .map_err(|_| Failure::Format("a cosign key with bad scrypt parameters"))?;
        let mut key = super::Zeroizing::new([0u8; 32]);
        scrypt::scrypt(password, &salt, &params, key.as_mut())
            .map_err(|_| Failure::Format("a cosign key with bad scrypt parameters"))?;
        let cipher = XSalsa20Poly1305::new(key.as_ref().into());
        cipher
            .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
            .map_err(|_| Failure::Decrypt)
    }
}

#[cfg(test)]
mod tests;
