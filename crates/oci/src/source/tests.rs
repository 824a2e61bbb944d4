use std::path::Path;

use super::*;
use crate::registry::RegistryOptions;

/// A layout source over `dir`, with a registry client that is never asked.
fn check(dir: &Path, test: impl FnOnce(&ImageSource)) {
    let store_dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(store_dir.path()).unwrap();
    let registry = Registry::new(RegistryOptions {
        offline: true,
        ..Default::default()
    })
    .unwrap();
    test(&ImageSource::new(
        Location::Layout(dir.to_path_buf()),
        &registry,
        &store,
    ));
}

fn descriptor(digest: &Digest, size: u64) -> Descriptor {
    Descriptor::new(
        oci_spec::image::MediaType::Other("x".into()),
        size,
        digest.to_oci(),
    )
}

fn write_index(dir: &Path, manifests: &[serde_json::Value]) {
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": manifests });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

fn entry(digest: &Digest, size: usize, name: Option<&str>) -> serde_json::Value {
    let mut entry = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest.as_str(),
        "size": size,
    });
    if let Some(name) = name {
        entry["annotations"] = serde_json::json!({ REF_NAME: name });
    }
    entry
}

#[test]
fn locations_parse_and_print_as_given() {
    for text in [
        "oci-layout=out/img",
        "oci-archive=img.tar",
        "r.example/a/b:1",
    ] {
        let location: Location = text.parse().unwrap();
        assert_eq!(location.to_string(), text);
    }
    assert!(matches!("oci=d".parse(), Ok(Location::Layout(_))));
}

#[test]
fn a_document_declared_over_its_cap_or_without_a_size_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    // No blob is there: reading one would fail otherwise.
    let digest = Digest::of(b"payload");
    check(dir.path(), |source| {
        let err = source
            .small_blob(&descriptor(&digest, 5 << 20), limits::SIGNATURE)
            .unwrap_err();
        assert!(
            matches!(err, SourceError::Refused(Refused::TooLarge { size, .. }) if size == 5 << 20),
            "{err}"
        );
        let err = source
            .small_blob(&descriptor(&digest, 0), limits::PROVENANCE)
            .unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::Refused(Refused::NoSize {
                    what: "provenance envelope",
                    ..
                })
            ),
            "{err}"
        );
    });
}

#[test]
fn a_layout_index_over_its_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let padding = " ".repeat(limits::LAYOUT_INDEX.max as usize);
    std::fs::write(dir.path().join("index.json"), format!("{{{padding}}}")).unwrap();
    check(dir.path(), |source| {
        let err = source.top().unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::Refused(Refused::Overran {
                    what: "layout's index.json",
                    ..
                })
            ),
            "{err}"
        );
    });
}

#[test]
fn a_layout_gives_its_one_image_and_its_tagged_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = Digest::of(bytes);
        std::fs::write(blobs.join(digest.hex()), bytes).unwrap();
        digest
    };
    let image = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
    let signature = br#"{"schemaVersion":2,"layers":[1]}"#;
    let (image_digest, sig_digest) = (put(image), put(signature));
    let sig_tag = format!("sha256-{}.sig", image_digest.hex());
    write_index(
        dir.path(),
        &[
            entry(&image_digest, image.len(), Some("latest")),
            entry(&image_digest, image.len(), Some("1.0")),
            entry(&sig_digest, signature.len(), Some(&sig_tag)),
        ],
    );
    check(dir.path(), |source| {
        let top = source.top().unwrap();
        assert_eq!(
            (top.digest, top.bytes),
            (image_digest.clone(), image.to_vec())
        );
        assert_eq!(top.media_type, "application/vnd.oci.image.manifest.v1+json");
        let tagged = source.tagged(&sig_tag).unwrap().unwrap();
        assert_eq!(tagged.bytes, signature);
        assert!(source.tagged("nothing").unwrap().is_none());
    });
}

#[test]
fn a_layout_of_two_images_names_them_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (Digest::of(b"one"), Digest::of(b"two"));
    write_index(
        dir.path(),
        &[entry(&one, 3, Some("a\u{1b}]0;x")), entry(&two, 3, None)],
    );
    check(dir.path(), |source| {
        let err = source.top().unwrap_err().to_string();
        assert!(
            err.contains("holds 2 images (a\\u{1b}]0;x, (untagged))"),
            "{err}"
        );
    });
}

#[test]
fn a_blob_longer_than_declared_fails_when_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
    let digest = Digest::of(b"0123456789");
    std::fs::write(
        dir.path().join("blobs/sha256").join(digest.hex()),
        b"0123456789",
    )
    .unwrap();
    check(dir.path(), |source| {
        let mut read = Vec::new();
        let err = source
            .blob(&descriptor(&digest, 4))
            .unwrap()
            .read_to_end(&mut read)
            .unwrap_err();
        assert!(
            err.to_string().contains("larger than its descriptor says"),
            "{err}"
        );
    });
}
