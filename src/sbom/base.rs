//! What the base image holds, read from its layers in the blob store: the Debian packages dpkg
//! recorded and the distribution they belong to. Each layer is streamed (gunzip → tar), keeping
//! only the few small files asked for; later layers override earlier ones and whiteouts delete.
//! What a base's layers hold is kept as a record in the store, so a rebuild on the same base
//! (every build but the first) reads no layer.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use oci_spec::image::Descriptor;

use super::debian::{copyright_license, parse_status, DebPackage, OsRelease};
use super::SbomError;
use crate::cache::BlobStore;
use crate::digest::Digest;

const STATUS_D: &str = "var/lib/dpkg/status.d/";
const STATUS: &str = "var/lib/dpkg/status";
const DOC: &str = "usr/share/doc/";
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
/// A control paragraph or a copyright file larger than this is not one dpkg wrote.
const MAX_FILE: u64 = 4 << 20;

/// The store's bucket for what bases hold. Bump the number when what [`read_base`] keeps, or
/// how it reads it (a license mapped anew), changes: a kept record would otherwise outlive it.
const RECORDS: &str = "sbom-base-v1";

/// The Debian packages of a base image and its distribution, if it names one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseContents {
    pub os: Option<OsRelease>,
    /// Sorted by name, version and architecture.
    pub packages: Vec<DebPackage>,
}

/// A file kept from a layer: only what the SBOM reads, already reduced.
#[derive(Debug, Clone)]
enum Kept {
    Status(Vec<DebPackage>),
    /// A package's copyright file, as a license expression (None: none could be read).
    License(Option<String>),
    Os(OsRelease),
}

/// What `layers` (the base's, bottom first) hold: from the store's record for these layers,
/// else read from the layers in `store` and recorded.
pub fn read_base(store: &BlobStore, layers: &[Descriptor]) -> Result<BaseContents, SbomError> {
    let digests: Vec<String> = layers.iter().map(|l| l.digest().to_string()).collect();
    let name = format!(
        "{}.json",
        Digest::of(format!("{}\n{}", env!("CARGO_PKG_VERSION"), digests.join("\n")).as_bytes())
            .hex()
    );
    let kept = store.record(RECORDS, &name);
    if let Some(contents) = kept.and_then(|bytes| serde_json::from_slice(&bytes).ok()) {
        return Ok(contents);
    }
    let contents = read_layers(store, layers)?;
    let json = serde_json::to_vec(&contents).expect("base contents serialise");
    // A record only saves work: one that cannot be written is read again next time.
    let _ = store.put_record(RECORDS, &name, &json);
    Ok(contents)
}

fn read_layers(store: &BlobStore, layers: &[Descriptor]) -> Result<BaseContents, SbomError> {
    let mut files: BTreeMap<String, Kept> = BTreeMap::new();
    for layer in layers {
        let digest: Digest = layer
            .digest()
            .to_string()
            .parse()
            .map_err(|_| SbomError::BadDigest(layer.digest().to_string()))?;
        let read = |source| SbomError::Layer {
            digest: digest.to_string(),
            source,
        };
        let blob = store.open_blob(&digest)?;
        let mut stream = BufReader::new(blob);
        let head = stream.fill_buf().map_err(read)?;
        let tar: Box<dyn Read> = match head {
            [0x1f, 0x8b, ..] => Box::new(flate2::bufread::GzDecoder::new(stream)),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => {
                tracing::warn!(
                    "the SBOM leaves out the base layer {digest}: it is zstd-compressed, which \
                     stevedore does not read"
                );
                continue;
            }
            _ => Box::new(stream),
        };
        apply_layer(tar, &mut files).map_err(read)?;
    }
    Ok(contents(files))
}

/// Applies one layer's whiteouts to what earlier layers left, then adds its own files.
fn apply_layer(tar: impl Read, files: &mut BTreeMap<String, Kept>) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(tar);
    let mut added = BTreeMap::new();
    let mut deleted: Vec<String> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").trim_start_matches('/');
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        if name == ".wh..wh..opq" {
            deleted.push(format!("{dir}/"));
            continue;
        }
        if let Some(gone) = name.strip_prefix(".wh.") {
            let gone = if dir.is_empty() {
                gone.to_owned()
            } else {
                format!("{dir}/{gone}")
            };
            deleted.push(format!("{gone}/"));
            deleted.push(gone);
            continue;
        }
        if !entry.header().entry_type().is_file() || entry.size() > MAX_FILE {
            continue;
        }
        if let Some(kind) = wanted(path) {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            if let Some(kept) = kind(&text) {
                added.insert(path.to_owned(), kept);
            }
        }
    }
    files.retain(|path, _| {
        !deleted
            .iter()
            .any(|d| path == d || (d.ends_with('/') && path.starts_with(d.as_str())))
    });
    files.extend(added);
    Ok(())
}

type Reduce = fn(&str) -> Option<Kept>;

/// How a file the SBOM reads is reduced to what it keeps, or `None` for other files.
fn wanted(path: &str) -> Option<Reduce> {
    if path == STATUS {
        return Some(|text| Some(Kept::Status(parse_status(text))));
    }
    if let Some(name) = path.strip_prefix(STATUS_D) {
        // Beside each package's paragraph distroless keeps its `NAME.md5sums`.
        if !name.contains('/') && !name.ends_with(".md5sums") && !name.ends_with(".list") {
            return Some(|text| Some(Kept::Status(parse_status(text))));
        }
    }
    if let Some(rest) = path.strip_prefix(DOC) {
        if rest.split_once('/').is_some_and(|(_, f)| f == "copyright") {
            return Some(|text| Some(Kept::License(copyright_license(text))));
        }
    }
    if OS_RELEASE.contains(&path) {
        return Some(|text| OsRelease::parse(text).map(Kept::Os));
    }
    None
}

fn contents(files: BTreeMap<String, Kept>) -> BaseContents {
    let mut licenses: BTreeMap<&str, &Option<String>> = BTreeMap::new();
    let mut os = None;
    let mut packages = Vec::new();
    for (path, kept) in &files {
        match kept {
            Kept::Status(found) => packages.extend(found.iter().cloned()),
            Kept::License(license) => {
                let package = path[DOC.len()..].split('/').next().unwrap_or_default();
                licenses.insert(package, license);
            }
            // /etc/os-release sorts first and wins, as it does for readers of the image.
            Kept::Os(release) => {
                os.get_or_insert_with(|| release.clone());
            }
        }
    }
    for p in &mut packages {
        p.license = licenses.get(p.name.as_str()).and_then(|l| (*l).clone());
    }
    packages.sort();
    packages.dedup();
    BaseContents { os, packages }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, text.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    const COPYRIGHT: &str =
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n\
         Files: *\nCopyright: x\nLicense: GPL-2\n";

    #[test]
    fn packages_across_layers_with_whiteouts() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(store_dir.path()).unwrap();
        let first = gzip(&layer(&[
            ("./usr/lib/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
            ("./usr/share/doc/netbase/copyright", COPYRIGHT),
            (
                "./var/lib/dpkg/status.d/netbase",
                "Package: netbase\nVersion: 6.4\nArchitecture: all\nMaintainer: Marco d'Itri <md@linux.it>\n",
            ),
            ("./var/lib/dpkg/status.d/netbase.md5sums", "abc  etc/protocols\n"),
            (
                "./var/lib/dpkg/status.d/gone",
                "Package: gone\nVersion: 1\nArchitecture: amd64\n",
            ),
        ]));
        // Uncompressed, as some layers are.
        let second = layer(&[
            ("var/lib/dpkg/status.d/.wh.gone", ""),
            (
                "var/lib/dpkg/status.d/base-files",
                "Package: base-files\nVersion: 12.4+deb12u15\nArchitecture: amd64\n",
            ),
        ]);
        let descriptors: Vec<Descriptor> = [first, second]
            .iter()
            .map(|bytes| {
                let digest = store.put_bytes(bytes).unwrap();
                Descriptor::new(
                    oci_spec::image::MediaType::ImageLayerGzip,
                    bytes.len() as u64,
                    digest.to_oci(),
                )
            })
            .collect();
        let base = read_base(&store, &descriptors).unwrap();
        assert_eq!(
            base.os,
            Some(OsRelease {
                id: "debian".into(),
                version_id: Some("12".into())
            })
        );
        let listed: Vec<(&str, &str, Option<&str>)> = base
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.license.as_deref()))
            .collect();
        assert_eq!(
            listed,
            [
                ("base-files", "12.4+deb12u15", None),
                ("netbase", "6.4", Some("GPL-2.0-only")),
            ]
        );

        // Kept: the same contents again without reading a layer (here, with none left).
        for layer in &descriptors {
            let digest: Digest = layer.digest().to_string().parse().unwrap();
            std::fs::remove_file(store.path(&digest)).unwrap();
        }
        assert_eq!(read_base(&store, &descriptors).unwrap(), base);
        // Other layers are other contents, read from them.
        assert!(read_base(&store, &descriptors[..1]).is_err());
    }
}
