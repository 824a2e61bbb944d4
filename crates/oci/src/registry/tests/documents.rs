//! Documents read whole (manifests, referrers), against the scripted server of `tests/mod.rs`:
//! a body that breaks off is asked for again; the referrers API and its 404.

use super::*;

#[test]
fn a_manifest_whose_body_breaks_off_is_asked_for_again() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#.to_vec();
    let server = Server::start(vec![
        ok(),
        Reply::Cut(200, vec![], manifest.clone(), 20),
        Reply::Full(200, vec![], manifest.clone()),
    ]);
    let tagged: Reference = format!("{}/test/app:1", server.addr).parse().unwrap();
    let fetched = client(Duration::from_secs(5))
        .fetch_manifest(&tagged)
        .unwrap();
    assert_eq!(fetched.bytes, manifest);
    assert_eq!(fetched.digest, Digest::of(&manifest));
    let lines = server.finish();
    assert_eq!(
        lines.iter().filter(|l| l.contains("/manifests/1")).count(),
        2,
        "{lines:?}"
    );
}

#[test]
fn the_fallback_tag_is_read_once_and_written_only_for_referrers_it_lacks() {
    let subject = Digest::of(b"subject");
    let listed = serde_json::json!({"mediaType": crate::registry::OCI_MANIFEST, "digest": Digest::of(b"a").as_str(), "size": 1});
    let new = serde_json::json!({"mediaType": crate::registry::OCI_MANIFEST, "digest": Digest::of(b"b").as_str(), "size": 1});
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": crate::registry::OCI_INDEX, "manifests": [listed]});
    let index = || {
        Reply::Full(
            200,
            vec![("Content-Type", crate::registry::OCI_INDEX.to_owned())],
            serde_json::to_vec(&index).unwrap(),
        )
    };
    let server = Server::start(vec![
        ok(),
        index(),
        index(),
        Reply::Full(201, vec![], vec![]),
    ]);
    let registry = client(Duration::from_secs(5));
    let repo = repo(&server);
    registry
        .add_to_referrers_tag(&repo, &subject, std::slice::from_ref(&listed))
        .unwrap();
    registry
        .add_to_referrers_tag(&repo, &subject, &[listed.clone(), new])
        .unwrap();
    let tag = format!("/v2/test/app/manifests/sha256-{}", subject.hex());
    assert_eq!(
        server.finish(),
        [
            "TLS ".to_owned(),
            "GET /v2/".to_owned(),
            format!("GET {tag}"),
            format!("GET {tag}"),
            format!("PUT {tag}"),
        ]
    );
}

#[test]
fn referrers_come_from_the_api_and_a_404_means_the_registry_has_none() {
    let subject = Digest::of(b"subject");
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let server = Server::start(vec![
        ok(),
        Reply::Full(
            200,
            vec![("Content-Type", crate::registry::OCI_INDEX.to_owned())],
            index.to_vec(),
        ),
        Reply::Full(404, vec![], b"404 page not found".to_vec()),
    ]);
    let registry = client(Duration::from_secs(5));
    let repo = repo(&server);
    assert_eq!(
        registry.referrers(&repo, &subject).unwrap().as_deref(),
        Some(&index[..])
    );
    assert_eq!(registry.referrers(&repo, &subject).unwrap(), None);
    let seen = server.seen();
    let api = format!("GET /v2/test/app/referrers/{subject}");
    assert_eq!(server.finish()[2..], [api.clone(), api]);
    assert_eq!(seen[2].header("accept"), Some(crate::registry::OCI_INDEX));
}
