//! A base image is a stranger's input: what its descriptors declare and what its layers hold
//! must not decide how much memory a build takes, and how its layers are compressed must not
//! decide what its SBOM lists. Each base here is the distroless stand-in's linux/amd64 image,
//! changed and pushed blob by blob straight into the real registry, as a careless or hostile
//! publisher could, past any tool that would check it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use flate2::write::GzEncoder;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use stevedore_testbed::{base_layout, Mode, Registry, TokenFront};

use crate::util::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The stand-in's linux/amd64 image: its config and each layer's uncompressed tar.
struct Base {
    config: Value,
    tars: Vec<Vec<u8>>,
}

fn amd64_base() -> Base {
    let layout = base_layout();
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "amd64-nonroot")
        .expect("the base layout has an amd64-nonroot manifest");
    let manifest = layout_json(layout, entry["digest"].as_str().unwrap());
    let config = layout_json(layout, manifest["config"]["digest"].as_str().unwrap());
    let tars = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let gz = layout_blob(layout, layer["digest"].as_str().unwrap());
            let mut tar = Vec::new();
            flate2::read::MultiGzDecoder::new(&gz[..])
                .read_to_end(&mut tar)
                .unwrap();
            tar
        })
        .collect();
    Base { config, tars }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
}

/// Uploads `bytes` into `repo` of the plain-HTTP registry at `addr`; returns its digest.
fn put_blob(addr: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let started = http()
        .post(format!("http://{addr}/v2/{repo}/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(started.status(), 202, "{:?}", started.text());
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let url = match location.starts_with("http") {
        true => location,
        false => format!("http://{addr}{location}"),
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let put = http()
        .put(format!("{url}{separator}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .unwrap();
    assert_eq!(put.status(), 201, "{:?}", put.text());
    digest
}

/// Pushes an image of `config` and `layers` (media type, bytes) as `repo:1` to the registry at
/// `addr`; returns `reference_host/repo:1`.
fn push_image(
    addr: &str,
    reference_host: &str,
    repo: &str,
    config: &[u8],
    layers: &[(&str, Vec<u8>)],
) -> String {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(media_type, bytes)| {
            json!({"mediaType": media_type, "digest": put_blob(addr, repo, bytes), "size": bytes.len()})
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": put_blob(addr, repo, config), "size": config.len()},
        "layers": layers,
    });
    let put = http()
        .put(format!("http://{addr}/v2/{repo}/manifests/1"))
        .header("content-type", OCI_MANIFEST)
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .unwrap();
    assert_eq!(put.status(), 201, "{:?}", put.text());
    format!("{reference_host}/{repo}:1")
}

/// The base as it is, each layer gzipped.
fn push_plain(registry: &Registry, repo: &str, base: &Base) -> String {
    let layers: Vec<_> = base.tars.iter().map(|t| (LAYER_GZIP, gzip(t))).collect();
    let config = serde_json::to_vec(&base.config).unwrap();
    push_image(&registry.addr(), &registry.addr(), repo, &config, &layers)
}

/// A build of the hello fixture on `base` with a fresh blob cache, into a layout in it.
fn build(base: &str, cache: &Path) -> Command {
    let mut cmd = build_on(base, cache);
    cmd.arg("--output")
        .arg(format!("oci-layout={}", cache.join("out").display()));
    cmd
}

/// The Debian packages (name → version and license) the SBOM of a build's layout lists.
fn debian_packages(cache: &Path) -> BTreeMap<String, (Value, Value)> {
    let layout = cache.join("out");
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let sbom = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == "application/spdx+json")
        .expect("the layout lists an SBOM");
    let manifest = layout_json(&layout, sbom["digest"].as_str().unwrap());
    let doc = layout_json(&layout, manifest["layers"][0]["digest"].as_str().unwrap());
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .is_some_and(|l| l.starts_with("pkg:deb/"))
        })
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_owned();
            (
                name,
                (p["versionInfo"].clone(), p["licenseDeclared"].clone()),
            )
        })
        .collect()
}

const STAND_IN_PACKAGES: [&str; 4] = ["base-files", "ca-certificates", "netbase", "tzdata"];

#[test]
fn a_config_declared_over_four_mib_is_refused_before_it_is_downloaded() {
    let front = TokenFront::start(Registry::start(Mode::Http), None);
    let base = amd64_base();
    // A real 64 MiB config, so only the declared size can have stopped its download.
    let mut config = base.config.clone();
    config["padding"] = json!("x".repeat(64 << 20));
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = sha256(&config);
    let layers: Vec<_> = base.tars.iter().map(|t| (LAYER_GZIP, gzip(t))).collect();
    let upstream = front.upstream().addr();
    let image = push_image(&upstream, &front.addr(), "big-config", &config, &layers);

    front.clear_requests();
    let cache = tempfile::tempdir().unwrap();
    let err = run_err(&mut build(&image, cache.path()));
    assert!(
        err.contains(&format!(
            "the config of {image} is {} bytes, more than the 4194304 bytes",
            config.len()
        )),
        "{err}"
    );
    let requests = front.requests();
    assert!(
        requests
            .iter()
            .any(|(m, path)| m == "GET" && path.contains("/big-config/manifests/1")),
        "the manifest was read: {requests:?}"
    );
    assert!(
        !requests
            .iter()
            .any(|(_, path)| path.contains(&config_digest)),
        "no request for the config {config_digest}: {requests:?}"
    );
    assert!(!cache.path().join("out").exists(), "no output");
}

/// A layer whose one file has a GNU long name of `size` bytes: its tar's digest, and the
/// layer gzipped (small: the name is one repeated byte).
fn long_name_layer(size: u64) -> (String, Vec<u8>) {
    struct Hashed<W> {
        inner: W,
        hasher: Sha256,
    }
    impl<W: Write> Write for Hashed<W> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = self.inner.write(buf)?;
            self.hasher.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }
    let mut hashed = Hashed {
        // Deflate's best ratio (about 1:1000) is what makes the name cheap to publish.
        inner: GzEncoder::new(Vec::new(), flate2::Compression::best()),
        hasher: Sha256::new(),
    };
    let mut tar = tar::Builder::new(&mut hashed);
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_path("././@LongLink").unwrap();
    header.set_size(size);
    header.set_cksum();
    tar.append(&header, io::repeat(b'n').take(size)).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "etc/long-named", &b"hello"[..])
        .unwrap();
    tar.finish().unwrap();
    drop(tar);
    let diff_id = format!("sha256:{:x}", hashed.hasher.finalize());
    (diff_id, hashed.inner.finish().unwrap())
}

/// Runs `cmd` (stdout and stderr to files) and polls its own peak resident set (`VmHWM`, which
/// its children, cargo and rustc, do not count in) until it exits: (output, peak bytes).
fn peak_rss(cmd: &mut Command, dir: &Path) -> (Output, u64) {
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = cmd
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        // A zombie's status has no VmHWM: the last reading before it is the peak.
        let status = std::fs::read_to_string(&status_file).unwrap_or_default();
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        peak_kib = peak_kib.max(hwm.unwrap_or(0));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = Output {
        status,
        stdout: std::fs::read(out).unwrap(),
        stderr: std::fs::read(err).unwrap(),
    };
    (output, peak_kib * 1024)
}

#[test]
fn a_base_layer_with_a_512_mib_long_name_is_read_in_bounded_memory() {
    let registry = Registry::start(Mode::Http);
    let base = amd64_base();
    let (diff_id, layer) = long_name_layer(512 << 20);
    assert!(layer.len() < 1 << 20, "{} bytes gzipped", layer.len());
    let mut config = base.config.clone();
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(diff_id));
    if let Some(history) = config["history"].as_array_mut() {
        history.push(json!({"created_by": "one file with a 512 MiB name"}));
    }
    let mut layers: Vec<_> = base.tars.iter().map(|t| (LAYER_GZIP, gzip(t))).collect();
    layers.push((LAYER_GZIP, layer));
    let config = serde_json::to_vec(&config).unwrap();
    let addr = registry.addr();
    let image = push_image(&addr, &addr, "long-name", &config, &layers);

    // The same build on the base as it is first, so cargo has nothing left to compile.
    let plain = push_plain(&registry, "plain", &base);
    let warm = tempfile::tempdir().unwrap();
    run_ok(&mut build(&plain, warm.path()));

    let cache = tempfile::tempdir().unwrap();
    let (out, peak) = peak_rss(&mut build(&image, cache.path()), cache.path());
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    eprintln!("peak RSS of cargo-stevedore: {:.1} MB", peak as f64 / 1e6);
    assert!(peak > 0, "VmHWM was read");
    assert!(peak < 64_000_000, "peak RSS {peak} bytes:\n{stderr}");
    assert!(
        stderr.contains("has a GNU long name of 536870912 bytes, more than the 1048576 read"),
        "the skipped entry is a warning:\n{stderr}"
    );
    // The other layers are read as before.
    let packages = debian_packages(cache.path());
    assert_eq!(packages.keys().collect::<Vec<_>>(), STAND_IN_PACKAGES);
}

/// `tar` compressed as eStargz does: a gzip member for every `chunk` bytes (eStargz starts one
/// per file), one after another.
fn multi_member_gzip(tar: &[u8], chunk: usize) -> Vec<u8> {
    tar.chunks(chunk).flat_map(gzip).collect()
}

#[test]
fn estargz_like_and_zstd_bases_list_the_same_debian_packages_as_gzip() {
    let registry = Registry::start(Mode::Http);
    let base = amd64_base();
    let addr = registry.addr();
    let config = serde_json::to_vec(&base.config).unwrap();
    let gzipped = push_plain(&registry, "gzip", &base);
    let members: Vec<_> = base
        .tars
        .iter()
        .map(|t| (LAYER_GZIP, multi_member_gzip(t, 16 << 10)))
        .collect();
    // A reader of the first gzip member alone gets one chunk of each tar.
    for (_, gz) in &members {
        let mut first = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut first)
            .unwrap();
        assert!(first.len() <= 16 << 10);
    }
    let estargz = push_image(&addr, &addr, "estargz", &config, &members);
    let zstd: Vec<_> = base
        .tars
        .iter()
        .map(|t| (LAYER_ZSTD, zstd::encode_all(t.as_slice(), 3).unwrap()))
        .collect();
    let zstd = push_image(&addr, &addr, "zstd", &config, &zstd);

    let read = |image: &str| {
        let cache = tempfile::tempdir().unwrap();
        run_ok(&mut build(image, cache.path()));
        debian_packages(cache.path())
    };
    let expected = read(&gzipped);
    assert_eq!(expected.keys().collect::<Vec<_>>(), STAND_IN_PACKAGES);
    assert!(
        expected
            .values()
            .any(|(_, license)| license != "NOASSERTION"),
        "licenses were read from the copyright files: {expected:?}"
    );
    assert_eq!(read(&estargz), expected, "multi-member gzip");
    assert_eq!(read(&zstd), expected, "zstd");
}
