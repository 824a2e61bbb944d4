//! What the base image holds, read from its layers in the blob store: the Debian packages dpkg
//! recorded and the distribution they belong to, and the accounts and CA bundle the image's
//! own layer adds to where the base lacks them ([`BaseFiles`]). Each layer is streamed (decompressed → tar,
//! with bounded memory whatever it holds), keeping only the few small files asked for; later
//! layers override earlier ones and whiteouts delete. What cannot be read (a file too large or
//! not UTF-8, an entry with an oversized name) is a warning, kept with the contents.
//! What a base's layers hold is kept as a record in the store, so a rebuild on the same base
//! (every build but the first) reads no layer.

use std::collections::BTreeMap;
use std::io::{self, Read};

use super::debian::{copyright_license, parse_status, DebPackage, OsRelease};
use super::SbomError;
use crate::cache::BlobStore;
use crate::digest::Digest;
use crate::layer::BaseFiles;
use crate::oci::entries::Entries;
use crate::oci::{decompress, Descriptor};
use crate::text::printable;

const STATUS_D: &str = "var/lib/dpkg/status.d/";
const STATUS: &str = "var/lib/dpkg/status";
const DOC: &str = "usr/share/doc/";
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
const PASSWD: &str = "etc/passwd";
const GROUP: &str = "etc/group";
/// Where distributions keep their CA bundle: Debian, Ubuntu, Alpine, Wolfi and distroless
/// first, then Alpine's other name and Fedora's, RHEL's and their kin's.
const CA_BUNDLES: [&str; 3] = [
    "etc/ssl/certs/ca-certificates.crt",
    "etc/ssl/cert.pem",
    "etc/pki/tls/certs/ca-bundle.crt",
];
/// An account file larger than this is not one to merge an account into.
const MAX_ACCOUNTS: u64 = 1 << 20;
/// A control paragraph, copyright file or os-release larger than this is not one dpkg wrote.
const MAX_FILE: u64 = 4 << 20;
/// dpkg's one status file lists every package (about 2 KiB each): room for several thousand.
const MAX_STATUS: u64 = 16 << 20;

/// The store's bucket for what bases hold. Bump the number when what [`read_base`] keeps, or
/// how it reads it (a license mapped anew), changes: a kept record would otherwise outlive it.
const RECORDS: &str = "sbom-base-v3";

/// The Debian packages of a base image and its distribution, if it names one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseContents {
    pub os: Option<OsRelease>,
    /// Sorted by name, version and architecture.
    pub packages: Vec<DebPackage>,
    /// What could not be read, in words (printable), for the log and the SBOM.
    pub warnings: Vec<String>,
    /// Its accounts and CA bundle, for the layer the image adds.
    #[serde(default)]
    pub files: BaseFiles,
}

/// A file kept from a layer: only what the SBOM reads, already reduced.
#[derive(Debug, Clone)]
enum Kept {
    Status(Vec<DebPackage>),
    /// A package's copyright file, as a license expression (None: none could be read).
    License(Option<String>),
    Os(OsRelease),
    /// `/etc/passwd` or `/etc/group`, whole.
    Accounts(String),
    /// A CA bundle: a file, or a link to one, at one of [`CA_BUNDLES`].
    CaBundle,
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
    let contents = match kept.and_then(|bytes| serde_json::from_slice(&bytes).ok()) {
        Some(contents) => contents,
        None => {
            let contents = read_layers(store, layers)?;
            let json = serde_json::to_vec(&contents).expect("base contents serialise");
            // A record only saves work: one that cannot be written is read again next time.
            let _ = store.put_record(RECORDS, &name, &json);
            contents
        }
    };
    // Every build says it, not only the one that read the layers.
    for warning in &contents.warnings {
        tracing::warn!("the SBOM of the base is incomplete: {warning}");
    }
    Ok(contents)
}

fn read_layers(store: &BlobStore, layers: &[Descriptor]) -> Result<BaseContents, SbomError> {
    let mut files: BTreeMap<String, Kept> = BTreeMap::new();
    let mut warnings = Vec::new();
    for layer in layers {
        let digest = layer.digest();
        let read = |source| SbomError::Layer {
            digest: digest.to_string(),
            source,
        };
        let tar = decompress(store.open_blob(digest)?).map_err(read)?;
        apply_layer(tar, digest, &mut files, &mut warnings).map_err(read)?;
    }
    Ok(contents(files, warnings))
}

/// Applies one layer's whiteouts to what earlier layers left, then adds its own files.
fn apply_layer(
    tar: impl Read,
    layer: &Digest,
    files: &mut BTreeMap<String, Kept>,
    warnings: &mut Vec<String>,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(tar);
    let mut entries = Entries::new(&mut archive)?;
    let mut added = BTreeMap::new();
    let mut deleted: Vec<String> = Vec::new();
    while let Some(mut entry) = entries.next_entry()? {
        let path = entry.path_lossy().into_owned();
        if let Some(over) = entry.oversized {
            // No path the SBOM reads is that long: whatever it names, it is none of them.
            warnings.push(format!(
                "an entry of layer {layer} ({}) has {} of {} bytes, more than the {} read; it was \
                 skipped",
                printable(&path),
                over.what,
                over.size,
                crate::oci::entries::MAX_EXTENSION
            ));
            continue;
        }
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
        let kind = entry.inner.header().entry_type();
        // Only whether the base has a bundle matters, not what it holds.
        if (kind.is_file() || kind.is_symlink()) && CA_BUNDLES.contains(&path) {
            added.insert(path.to_owned(), Kept::CaBundle);
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let Some((kind, max)) = wanted(path) else {
            continue;
        };
        match read_text(&mut entry.inner, max)? {
            Ok(text) => {
                if let Some(kept) = kind(&text) {
                    added.insert(path.to_owned(), kept);
                }
            }
            Err(problem) => {
                warnings.push(format!("{} in layer {layer} {problem}", printable(path)));
                // A copyright file that cannot be read is a package whose license is unknown
                // (NOASSERTION), not one whose earlier license still holds.
                if path.ends_with("/copyright") {
                    added.insert(path.to_owned(), Kept::License(None));
                }
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

/// A wanted file's text, or why it was not read: larger than `max` (left unread), or not
/// UTF-8.
fn read_text<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    max: u64,
) -> io::Result<Result<String, String>> {
    if entry.size() > max {
        return Ok(Err(format!(
            "is {} bytes, more than the {max} read of it (no dpkg writes one that large); it \
             was not read",
            entry.size()
        )));
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut bytes)?;
    Ok(String::from_utf8(bytes).map_err(|e| {
        format!(
            "is not UTF-8 (byte {} is not), as Debian's files are; it was not read",
            e.utf8_error().valid_up_to()
        )
    }))
}

type Reduce = fn(&str) -> Option<Kept>;

/// How a file the SBOM reads is reduced to what it keeps, and the most of it read; `None` for
/// other files.
fn wanted(path: &str) -> Option<(Reduce, u64)> {
    if path == STATUS {
        return Some((|text| Some(Kept::Status(parse_status(text))), MAX_STATUS));
    }
    if let Some(name) = path.strip_prefix(STATUS_D) {
        // Beside each package's paragraph distroless keeps its `NAME.md5sums`.
        if !name.contains('/') && !name.ends_with(".md5sums") && !name.ends_with(".list") {
            return Some((|text| Some(Kept::Status(parse_status(text))), MAX_FILE));
        }
    }
    if let Some(rest) = path.strip_prefix(DOC) {
        if rest.split_once('/').is_some_and(|(_, f)| f == "copyright") {
            return Some((
                |text| Some(Kept::License(copyright_license(text))),
                MAX_FILE,
            ));
        }
    }
    if OS_RELEASE.contains(&path) {
        return Some((|text| OsRelease::parse(text).map(Kept::Os), MAX_FILE));
    }
    if path == PASSWD || path == GROUP {
        return Some((|text| Some(Kept::Accounts(text.to_owned())), MAX_ACCOUNTS));
    }
    None
}

fn contents(files: BTreeMap<String, Kept>, warnings: Vec<String>) -> BaseContents {
    let mut licenses: BTreeMap<&str, &Option<String>> = BTreeMap::new();
    let mut os = None;
    let mut packages = Vec::new();
    let mut base_files = BaseFiles::default();
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
            Kept::Accounts(text) if path == PASSWD => base_files.passwd = Some(text.clone()),
            Kept::Accounts(text) => base_files.group = Some(text.clone()),
            Kept::CaBundle => {}
        }
    }
    for p in &mut packages {
        p.license = licenses.get(p.name.as_str()).and_then(|l| (*l).clone());
    }
    packages.sort();
    packages.dedup();
    base_files.ca_bundle = CA_BUNDLES
        .iter()
        .find(|path| files.contains_key(**path))
        .map(|path| path.to_string());
    BaseContents {
        os,
        packages,
        warnings,
        files: base_files,
    }
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
        let descriptors = descriptors_of(&store, &[first, second]);
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
            std::fs::remove_file(store.path(layer.digest())).unwrap();
        }
        assert_eq!(read_base(&store, &descriptors).unwrap(), base);
        // Other layers are other contents, read from them.
        assert!(read_base(&store, &descriptors[..1]).is_err());
    }

    /// Each layer put in the store, and its descriptor.
    fn descriptors_of(store: &BlobStore, layers: &[Vec<u8>]) -> Vec<Descriptor> {
        layers
            .iter()
            .map(|bytes| {
                let digest = store.put_bytes(bytes).unwrap();
                Descriptor::new(
                    oci_spec::image::MediaType::ImageLayerGzip,
                    digest,
                    bytes.len() as u64,
                )
            })
            .collect()
    }

    fn base_of(store: &BlobStore, layers: &[Vec<u8>]) -> BaseContents {
        read_base(store, &descriptors_of(store, layers)).unwrap()
    }

    /// A layer with one symlink, `path` → `target`.
    fn link_layer(path: &str, target: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, path, target).unwrap();
        gzip(&builder.into_inner().unwrap())
    }

    #[test]
    fn accounts_and_where_the_ca_bundle_is_across_layers_and_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let lower = layer(&[
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", "root:x:0:\n"),
            ("etc/ssl/cert.pem", "-----BEGIN CERTIFICATE-----\n"),
        ]);
        let base = base_of(&store, std::slice::from_ref(&lower));
        assert_eq!(
            base.files.passwd.as_deref(),
            Some("root:x:0:0:root:/root:/bin/sh\n")
        );
        assert_eq!(base.files.group.as_deref(), Some("root:x:0:\n"));
        assert_eq!(base.files.ca_bundle.as_deref(), Some("etc/ssl/cert.pem"));

        // A later layer deletes that bundle and links Fedora's name to another file.
        let upper = layer(&[
            ("etc/ssl/.wh.cert.pem", ""),
            ("etc/passwd", "app:x:1:1::/:/x\n"),
        ]);
        let link = link_layer("etc/pki/tls/certs/ca-bundle.crt", "../../ca-trust/tls.pem");
        let base = base_of(&store, &[lower, upper, link]);
        assert_eq!(base.files.passwd.as_deref(), Some("app:x:1:1::/:/x\n"));
        assert_eq!(
            base.files.ca_bundle.as_deref(),
            Some("etc/pki/tls/certs/ca-bundle.crt")
        );

        let scratch = base_of(&store, &[layer(&[("bin/app", "x")])]);
        assert_eq!(scratch.files, crate::layer::BaseFiles::default());
    }

    const NETBASE: (&str, &str) = (
        "var/lib/dpkg/status.d/netbase",
        "Package: netbase\nVersion: 6.4\nArchitecture: all\n",
    );

    #[test]
    fn zstd_and_multi_member_gzip_layers_are_read_as_gzip_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let tar = layer(&[NETBASE, ("usr/share/doc/netbase/copyright", COPYRIGHT)]);
        let expected = base_of(&store, &[gzip(&tar)]);
        assert_eq!(expected.packages.len(), 1);
        assert_eq!(
            expected.packages[0].license.as_deref(),
            Some("GPL-2.0-only")
        );
        // eStargz: a gzip member per file and one for the end of the archive.
        let (head, tail) = tar.split_at(1024);
        let estargz = [gzip(head), gzip(tail)].concat();
        let zstd = zstd::encode_all(tar.as_slice(), 3).unwrap();
        for compressed in [estargz, zstd] {
            let dir = tempfile::tempdir().unwrap();
            let store = BlobStore::open(dir.path()).unwrap();
            assert_eq!(base_of(&store, &[compressed]), expected);
        }
    }

    #[test]
    fn unreadable_files_are_warnings_and_noassertion_not_failures() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |path: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, bytes).unwrap();
        };
        add(NETBASE.0, NETBASE.1.as_bytes());
        // Latin-1, as some old copyright files are.
        add(
            "usr/share/doc/netbase/copyright",
            b"Files: *\nCopyright: Jos\xe9\nLicense: GPL-2\n",
        );
        add(STATUS, &vec![b'#'; MAX_STATUS as usize + 1]);
        let base = base_of(&store, &[gzip(&tar.into_inner().unwrap())]);
        assert_eq!(base.packages.len(), 1);
        assert_eq!(base.packages[0].license, None, "NOASSERTION");
        assert_eq!(base.warnings.len(), 2, "{:?}", base.warnings);
        assert!(base.warnings[0].contains("copyright in layer sha256:"));
        assert!(base.warnings[0].contains("is not UTF-8 (byte 23 is not)"));
        assert!(base.warnings[1].starts_with("var/lib/dpkg/status in layer"));
        assert!(base.warnings[1].contains("is 16777217 bytes, more than the 16777216 read"));
    }

    #[test]
    fn an_entry_with_an_oversized_name_is_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let size = crate::oci::entries::MAX_EXTENSION + 1;
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_path("././@LongLink").unwrap();
        header.set_size(size);
        header.set_cksum();
        tar.append(&header, std::io::repeat(b'a').take(size))
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(NETBASE.1.len() as u64);
        header.set_cksum();
        // Named as a status paragraph in its header: an oversized name hides what it is.
        tar.append_data(&mut header, NETBASE.0, NETBASE.1.as_bytes())
            .unwrap();
        let base = base_of(&store, &[gzip(&tar.into_inner().unwrap())]);
        assert!(base.packages.is_empty());
        assert_eq!(base.warnings.len(), 1);
        assert!(
            base.warnings[0]
                .contains("has a GNU long name of 1048577 bytes, more than the 1048576 read"),
            "{}",
            base.warnings[0]
        );
    }
}
