//! Any base keeps what it has: its own accounts and CA bundle stay, nonroot is added only where
//! the base lacks it (in a small layer of its own), and on distroless, which has it all, the
//! image is the base plus the application's layer.

use std::path::Path;

use stevedore_testbed::{self as testbed, Mode, OtherBase, Registry, Side};

use crate::util::*;

const NONROOT_PASSWD: &str = "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const NONROOT_GROUP: &str = "nonroot:x:65532:\n";

/// The hello fixture for linux/amd64 on `base`, into `dir/out`; returns the layout and the
/// image's manifest.
fn build_on_base(base: &str, dir: &Path) -> (std::path::PathBuf, serde_json::Value) {
    let layout = dir.join("out");
    run_ok(
        stevedore_build("hello")
            .args(["--platform", "linux/amd64", "--base", base, "--output"])
            .arg(format!("oci-layout={}", layout.display())),
    );
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let mut top = layout_json(&layout, index["manifests"][0]["digest"].as_str().unwrap());
    if top["manifests"].is_array() {
        top = layout_json(&layout, top["manifests"][0]["digest"].as_str().unwrap());
    }
    (layout, top)
}

/// The paths in one layer blob of `layout`.
fn paths_in_layer(layout: &Path, digest: &str) -> Vec<String> {
    let blob = layout_blob(layout, digest);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn debian_and_alpine_bases_keep_their_accounts_and_ca_bundle_and_gain_nonroot() {
    let registry = Registry::start(Mode::Http);
    for base in [OtherBase::DebianLike, OtherBase::AlpineLike] {
        let image = registry.push_other_base(base);
        let dir = tempfile::tempdir().unwrap();
        let (layout, manifest) = build_on_base(&image, dir.path());
        let bundle = unpack(&layout, "latest", None, dir.path());
        let printed = run_bundle(&bundle, &[]);
        let ca = base.ca_bundle();
        assert!(
            printed.contains("uid=65532 gid=65532")
                && printed.contains(&format!("cabundle_bytes={} ", ca.len())),
            "{base:?}: {printed}"
        );

        let rootfs = bundle.join("rootfs");
        let read = |path: &str| std::fs::read_to_string(rootfs.join(path)).unwrap();
        let with_newline = |text: &str| match text.ends_with('\n') {
            true => text.to_owned(),
            false => format!("{text}\n"),
        };
        assert_eq!(
            read("etc/passwd"),
            with_newline(base.passwd()) + NONROOT_PASSWD,
            "{base:?}: the base's accounts first, then nonroot"
        );
        assert_eq!(
            read("etc/group"),
            with_newline(base.group()) + NONROOT_GROUP
        );
        assert_eq!(
            read("etc/ssl/certs/ca-certificates.crt"),
            ca,
            "{base:?}: the base's own bundle"
        );

        // Base layer, the accounts layer, the application's on top.
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 3, "{base:?}: {manifest}");
        let accounts = paths_in_layer(&layout, layers[1]["digest"].as_str().unwrap());
        assert_eq!(accounts, ["etc/", "etc/group", "etc/passwd"], "{base:?}");
        let application = paths_in_layer(&layout, layers[2]["digest"].as_str().unwrap());
        assert!(
            application.iter().all(|p| !p.starts_with("etc")),
            "{base:?}: the application's layer holds nothing of the base's: {application:?}"
        );
    }
}

#[test]
fn on_distroless_the_image_is_the_base_plus_the_application_s_layer() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let (layout, manifest) = build_on_base(&base, dir.path());

    let flags = registry.skopeo_flags(Side::Inspect);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut amd64 = flags.clone();
    amd64.extend(["--override-os", "linux", "--override-arch", "amd64"]);
    let base_layers = skopeo_inspect(&amd64, &format!("docker://{base}"))["Layers"].clone();
    let layers: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let base_layers: Vec<&str> = base_layers
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(layers.len(), base_layers.len() + 1, "{manifest}");
    assert_eq!(&layers[..base_layers.len()], &base_layers[..]);
    let application = paths_in_layer(&layout, layers.last().unwrap());
    assert!(
        application.iter().all(|p| !p.starts_with("etc")),
        "distroless has the accounts and the bundle: {application:?}"
    );

    // The running image sees distroless's own files.
    let bundle = unpack(&layout, "latest", None, dir.path());
    let printed = run_bundle(&bundle, &[]);
    assert!(printed.contains("uid=65532 gid=65532"), "{printed}");
    let base_layout = testbed::base_layout();
    let unpacked = tempfile::tempdir().unwrap();
    let base_bundle = unpack(base_layout, "nonroot", Some("amd64"), unpacked.path());
    for file in [
        "etc/passwd",
        "etc/group",
        "etc/ssl/certs/ca-certificates.crt",
    ] {
        let ours = std::fs::read(bundle.join("rootfs").join(file)).unwrap();
        let theirs = std::fs::read(base_bundle.join("rootfs").join(file)).unwrap();
        assert!(ours == theirs, "{file} is not the base's");
    }
}
