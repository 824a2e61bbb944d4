//! What a registry declares is checked before anything it declares is fetched.

use std::time::Duration;

use super::super::OCI_MANIFEST;
use super::{client, ok, BlobStore, Digest, Reference, RegistryError, Reply, Server};

/// Pulls an image whose manifest's config descriptor is `config`; returns the error and every
/// request the registry saw.
fn pull_with_config(config: serde_json::Value) -> (RegistryError, Vec<String>) {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": [],
    });
    let server = Server::start(vec![
        ok(),
        Reply::Full(
            200,
            vec![("Content-Type", OCI_MANIFEST.to_owned())],
            serde_json::to_vec(&manifest).unwrap(),
        ),
    ]);
    let store_dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(store_dir.path()).unwrap();
    let reference: Reference = format!("{}/test/app:1", server.addr).parse().unwrap();
    let platform: crate::platform::Platform = "linux/amd64".parse().unwrap();
    let err = client(Duration::from_secs(5))
        .pull(&reference, None, &[platform], &store)
        .unwrap_err();
    (err, server.finish())
}

#[test]
fn a_config_over_its_cap_or_without_a_size_is_refused_before_a_request_for_it() {
    let digest = Digest::of(b"a config").to_string();
    let config = |size: serde_json::Value| {
        let mut c = serde_json::json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest});
        if !size.is_null() {
            c["size"] = size;
        }
        c
    };
    let (err, lines) = pull_with_config(config((64u64 << 20).into()));
    assert!(
        err.to_string().contains("the config of 127.0.0.1:")
            && err
                .to_string()
                .contains("is 67108864 bytes, more than the 4194304 bytes"),
        "{err}"
    );
    assert_eq!(lines, ["TLS ", "GET /v2/", "GET /v2/test/app/manifests/1"]);
    // A size of 0 is none; a missing one is a manifest oci-spec does not parse.
    let (err, lines) = pull_with_config(config(0.into()));
    assert!(err.to_string().contains("declares no size"), "{err}");
    assert_eq!(lines.len(), 3, "no request for the config: {lines:?}");
    let (err, lines) = pull_with_config(config(serde_json::Value::Null));
    assert!(matches!(err, RegistryError::Json { .. }), "{err}");
    assert_eq!(lines.len(), 3, "no request for the config: {lines:?}");
}
