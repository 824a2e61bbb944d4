//! An SPDX 2.3 JSON SBOM for one platform's image: the image, its base and the Debian packages
//! the base's dpkg recorded, the crates compiled into its binary for that platform, and whatever
//! else stevedore put in.
//!
//! The document is a function of its input alone (no clock, no paths of this machine, no hash
//! map order), so rebuilding an image rebuilds a byte-identical SBOM with the same digest.

use std::collections::{BTreeMap, BTreeSet};

mod base;
mod debian;
mod graph;
mod license;
mod sources;

pub use base::{read_base, BaseContents};
pub use debian::{DebPackage, OsRelease};

use cargo_metadata::cargo_platform::Cfg;
use cargo_metadata::{Metadata, Package, PackageId};
use serde_json::{json, Value};

use graph::{Edge, Graph};
use license::license_expression;
use sources::{cargo_purl, download_location, lock_checksums, oci_purl, percent_encode, split_tag};

use crate::cache::CacheError;
use crate::digest::Digest;
use crate::oci::{canonical_json, rfc3339};
use crate::platform::Platform;
use crate::reference::Reference;

const NOASSERTION: &str = "NOASSERTION";
/// Everything one platform's SBOM is made from.
#[derive(Debug, Clone, Copy)]
pub struct SbomInput<'a> {
    /// `cargo metadata --format-version 1` (with the build's feature flags) output, parsed.
    pub metadata: &'a Metadata,
    /// The package whose binary is in the image.
    pub root: &'a PackageId,
    /// The Rust target the binary is compiled for.
    pub target: &'a str,
    /// Its `cfg` values: only dependencies whose platform matches them are in the binary.
    pub cfg: &'a [Cfg],
    pub bin: &'a str,
    pub platform: &'a Platform,
    /// Contents of the workspace's Cargo.lock, if any (for SHA256 checksums of registry crates).
    pub cargo_lock: Option<&'a str>,
    /// The base image, if not scratch: its reference as the user wrote it and the platform
    /// manifest digest it resolved to.
    pub base: Option<(&'a Reference, &'a Digest)>,
    /// What the base's layers hold (Debian packages), listed as the base's contents.
    pub base_contents: &'a BaseContents,
    /// A name for the image this SBOM describes (e.g. `registry.example/app` or the bin name).
    pub image_name: &'a str,
    /// The manifest digest of the image this SBOM describes.
    pub image_digest: &'a Digest,
    /// Other components stevedore adds to the image: (name, version, comment).
    pub extra: &'a [(&'a str, &'a str, &'a str)],
    /// SOURCE_DATE_EPOCH seconds, for `creationInfo.created`.
    pub created: i64,
}

/// Why the SBOM cannot be made: the dependency graph is incomplete, or a base layer cannot
/// be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SbomError {
    /// The plan's `cargo metadata` answer has no resolved dependency graph.
    #[error("cargo metadata has no dependency graph (it must run without --no-deps)")]
    NoResolve,
    /// A package id (the field) is missing from the dependency graph; cargo's answer is
    /// inconsistent.
    #[error("package `{0}` is not in cargo metadata's dependency graph")]
    NotInGraph(String),
    /// A package id (the field) of the dependency graph has no package; cargo's answer is
    /// inconsistent.
    #[error("package `{0}` is in cargo metadata's dependency graph but not in its package list")]
    NoPackage(String),
    /// A base layer cannot be decompressed or is not a valid tar archive.
    #[error("cannot read the base layer {digest} to list its Debian packages")]
    Layer {
        /// The layer's digest.
        digest: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A base layer cannot be opened in the blob store.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The SPDX document for `input`, as compact JSON with sorted keys.
pub fn spdx_json(input: &SbomInput) -> Result<Vec<u8>, SbomError> {
    let graph = Graph::walk(input.metadata, input.root, (input.target, input.cfg))?;
    let mut doc = Document::default();
    let image = doc.containers(input);
    doc.crates(input, &graph, &image);
    Ok(canonical_json(&doc.finish(input)))
}

type Relationship = (String, &'static str, String);

/// Packages and relationships as they are added; sorted when finished.
#[derive(Default)]
struct Document {
    ids: Ids,
    packages: Vec<Value>,
    relationships: BTreeSet<Relationship>,
}

impl Document {
    /// The image, its base and the extras; returns the image's SPDX id.
    fn containers(&mut self, input: &SbomInput) -> String {
        let image = self.ids.claim(&["image"]);
        self.packages.push(image_package(&image, input));
        self.relate("SPDXRef-DOCUMENT", "DESCRIBES", &image);
        if let Some((reference, digest)) = input.base {
            let base = self.ids.claim(&["base-image"]);
            let contents = input.base_contents;
            self.packages.push(base_package(
                &base,
                reference,
                digest,
                input.platform,
                &contents.warnings,
            ));
            self.relate(&image, "DESCENDANT_OF", &base);
            for deb in &contents.packages {
                let id = self
                    .ids
                    .claim(&["deb", &deb.name, &deb.version, &deb.architecture]);
                self.packages
                    .push(deb_package(&id, deb, contents.os.as_ref()));
                self.relate(&base, "CONTAINS", &id);
            }
        }
        for (name, version, comment) in input.extra {
            let extra = self.ids.claim(&["extra", name, version]);
            self.packages
                .push(extra_package(&extra, name, version, comment));
            self.relate(&image, "CONTAINS", &extra);
        }
        image
    }

    fn crates(&mut self, input: &SbomInput, graph: &Graph, image: &str) {
        let checksums = input.cargo_lock.map(lock_checksums).unwrap_or_default();
        let crate_ids = claim_crate_ids(graph, &mut self.ids);
        for (id, package) in &graph.packages {
            let purpose = if *id == input.root {
                "APPLICATION"
            } else {
                "LIBRARY"
            };
            let checksum = package.source.as_ref().and_then(|source| {
                checksums.get(&(
                    package.name.to_string(),
                    package.version.to_string(),
                    source.repr.clone(),
                ))
            });
            self.packages
                .push(crate_package(&crate_ids[id], package, purpose, checksum));
        }
        self.relate(image, "CONTAINS", &crate_ids[input.root]);
        for (from, to, edge) in &graph.edges {
            let (from, to) = (&crate_ids[from], &crate_ids[to]);
            match edge {
                Edge::Normal => self.relate(from, "DEPENDS_ON", to),
                Edge::Build => self.relate(to, "BUILD_DEPENDENCY_OF", from),
            }
        }
    }

    fn relate(&mut self, element: &str, kind: &'static str, related: &str) {
        self.relationships
            .insert((element.to_owned(), kind, related.to_owned()));
    }

    fn finish(mut self, input: &SbomInput) -> Value {
        self.packages
            .sort_by(|a, b| a["SPDXID"].as_str().cmp(&b["SPDXID"].as_str()));
        let relationships: Vec<Value> = self
            .relationships
            .into_iter()
            .map(|(element, kind, related)| {
                json!({
                    "spdxElementId": element,
                    "relationshipType": kind,
                    "relatedSpdxElement": related,
                })
            })
            .collect();
        json!({
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": format!("{}-{}", input.image_name, input.platform),
            // Unique per image because the digest is; no randomness, so rebuilds match.
            "documentNamespace": format!(
                "https://spdx.stevedore.dev/{}/{}",
                percent_encode(input.bin),
                input.image_digest.hex()
            ),
            "creationInfo": {
                "created": rfc3339(input.created),
                "creators": [format!("Tool: cargo-stevedore-{}", env!("CARGO_PKG_VERSION"))],
            },
            "packages": self.packages,
            "relationships": relationships,
        })
    }
}

/// SPDX ids for every crate, claimed in an order that depends on names, versions and
/// sources only (a path crate's package id holds this machine's path).
fn claim_crate_ids<'m>(graph: &Graph<'m>, ids: &mut Ids) -> BTreeMap<&'m PackageId, String> {
    let mut order: Vec<(&PackageId, &Package)> =
        graph.packages.iter().map(|(i, p)| (*i, *p)).collect();
    let key = |(id, p): &(&'m PackageId, &'m Package)| {
        (&p.name, &p.version, p.source.as_ref().map(|s| &s.repr), *id)
    };
    order.sort_by(|a, b| key(a).cmp(&key(b)));
    order
        .into_iter()
        .map(|(id, p)| (id, ids.claim(&["crate", &p.name, &p.version.to_string()])))
        .collect()
}

/// Hands out SPDX ids, each unique within the document.
#[derive(Default)]
struct Ids(BTreeSet<String>);

impl Ids {
    fn claim(&mut self, parts: &[&str]) -> String {
        let base = format!("SPDXRef-{}", spdx_id_chars(&parts.join("-")));
        let mut id = base.clone();
        let mut n = 2;
        while !self.0.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }
}

/// SPDX ids allow only letters, digits, `.` and `-`.
fn spdx_id_chars(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
            _ => '-',
        })
        .collect()
}

/// The fields every package has, with nothing asserted about licenses or copyright.
fn package(spdx_id: &str, name: &str, version: &str) -> Value {
    json!({
        "SPDXID": spdx_id,
        "name": name,
        "versionInfo": version,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
    })
}

fn purl_ref(purl: String) -> Value {
    json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    }])
}

fn image_package(spdx_id: &str, input: &SbomInput) -> Value {
    let (repository, tag) = split_tag(input.image_name);
    let mut p = package(spdx_id, input.image_name, input.image_digest.as_str());
    p["primaryPackagePurpose"] = json!("CONTAINER");
    p["comment"] = json!(format!("platform {}", input.platform));
    p["externalRefs"] = purl_ref(oci_purl(
        repository,
        tag,
        input.image_digest,
        input.platform,
    ));
    p
}

fn base_package(
    spdx_id: &str,
    reference: &Reference,
    digest: &Digest,
    platform: &Platform,
    warnings: &[String],
) -> Value {
    let mut p = package(spdx_id, &reference.name(), digest.as_str());
    p["primaryPackagePurpose"] = json!("CONTAINER");
    let mut comment = format!("base image {reference}, platform {platform}");
    // What of the base could not be read, so a reader of the SBOM knows it is incomplete.
    if !warnings.is_empty() {
        comment.push_str(&format!("; not read: {}", warnings.join("; ")));
    }
    p["comment"] = json!(comment);
    p["externalRefs"] = purl_ref(oci_purl(
        &reference.name(),
        reference.tag(),
        digest,
        platform,
    ));
    p
}

fn extra_package(spdx_id: &str, name: &str, version: &str, comment: &str) -> Value {
    let mut p = package(spdx_id, name, version);
    p["comment"] = json!(comment);
    p
}

fn deb_package(spdx_id: &str, deb: &DebPackage, os: Option<&OsRelease>) -> Value {
    let mut p = package(spdx_id, &deb.name, &deb.version);
    p["primaryPackagePurpose"] = json!("LIBRARY");
    p["comment"] = json!(format!(
        "Debian package in the base image, architecture {}",
        deb.architecture
    ));
    if let Some(maintainer) = &deb.maintainer {
        p["supplier"] = json!(debian::supplier(maintainer));
    }
    if let Some(license) = &deb.license {
        p["licenseDeclared"] = json!(license);
    }
    p["externalRefs"] = purl_ref(debian::deb_purl(deb, os));
    p
}

fn crate_package(spdx_id: &str, c: &Package, purpose: &str, checksum: Option<&String>) -> Value {
    let mut p = package(spdx_id, &c.name, &c.version.to_string());
    p["primaryPackagePurpose"] = json!(purpose);
    p["downloadLocation"] = json!(download_location(c).unwrap_or_else(|| NOASSERTION.into()));
    if let Some(license) = c.license.as_deref().and_then(license_expression) {
        p["licenseDeclared"] = json!(license);
    }
    p["externalRefs"] = purl_ref(cargo_purl(c));
    if let Some(sum) = checksum {
        p["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": sum }]);
    }
    p
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::sources::CRATES_IO_GIT;
    use super::*;

    const BASE_DIGEST: &str =
        "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const IMAGE_DIGEST: &str =
        "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn metadata(manifest: &Path, extra_args: &[&str]) -> Metadata {
        metadata_of(manifest, &[&["--offline"], extra_args].concat())
    }

    fn metadata_of(manifest: &Path, args: &[&str]) -> Metadata {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1"])
            .args(args)
            .arg("--manifest-path")
            .arg(manifest)
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cargo_metadata::MetadataCommand::parse(String::from_utf8(out.stdout).unwrap()).unwrap()
    }

    const AMD64: &str = "x86_64-unknown-linux-musl";
    const ARM64: &str = "aarch64-unknown-linux-musl";

    /// `rustc --print cfg --target TARGET`, as the plan asks it.
    fn cfg(target: &str) -> Vec<Cfg> {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let out = Command::new(rustc)
            .args(["--print", "cfg", "--target", target])
            .output()
            .expect("rustc runs");
        assert!(out.status.success(), "rustc --print cfg failed");
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines().map(|l| l.parse().unwrap()).collect()
    }

    fn root_id(metadata: &Metadata) -> &PackageId {
        metadata.resolve.as_ref().unwrap().root.as_ref().unwrap()
    }

    /// The document, parsed, after checking what holds for every document.
    fn generate(input: &SbomInput) -> Value {
        let bytes = spdx_json(input).unwrap();
        assert_eq!(bytes, spdx_json(input).unwrap(), "not deterministic");
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(canonical_json(&doc), bytes, "not canonical JSON");
        let ids: Vec<&str> = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["SPDXID"].as_str().unwrap())
            .collect();
        for id in &ids {
            let rest = id.strip_prefix("SPDXRef-").unwrap();
            assert!(
                !rest.is_empty()
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
                "bad SPDX id {id}"
            );
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted, "package ids unsorted or repeated");
        let rels = doc["relationships"].as_array().unwrap();
        for r in rels {
            for end in [&r["spdxElementId"], &r["relatedSpdxElement"]] {
                let end = end.as_str().unwrap();
                assert!(end == "SPDXRef-DOCUMENT" || ids.contains(&end), "{end}");
            }
        }
        let keys: Vec<String> = rels.iter().map(|r| r.to_string()).collect();
        let mut sorted_keys = keys.clone();
        sorted_keys.dedup();
        assert_eq!(keys.len(), sorted_keys.len(), "repeated relationships");
        doc
    }

    fn package<'d>(doc: &'d Value, name: &str) -> Option<&'d Value> {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
    }

    fn id(doc: &Value, name: &str) -> String {
        let p = package(doc, name).unwrap_or_else(|| panic!("no package {name}"));
        p["SPDXID"].as_str().unwrap().to_owned()
    }

    fn has(doc: &Value, from: &str, kind: &str, to: &str) -> bool {
        doc["relationships"].as_array().unwrap().iter().any(|r| {
            r["spdxElementId"] == from
                && r["relationshipType"] == kind
                && r["relatedSpdxElement"] == to
        })
    }

    fn purl(p: &Value) -> &str {
        p["externalRefs"][0]["referenceLocator"].as_str().unwrap()
    }

    fn debian_base() -> BaseContents {
        BaseContents {
            os: Some(OsRelease {
                id: "debian".into(),
                version_id: Some("12".into()),
            }),
            packages: vec![DebPackage {
                name: "ca-certificates".into(),
                version: "20250419~deb12u2".into(),
                architecture: "all".into(),
                maintainer: Some("Julien Cristau <jcristau@debian.org>".into()),
                license: Some("GPL-2.0-or-later AND MPL-2.0".into()),
            }],
            warnings: Vec::new(),
            files: Default::default(),
        }
    }

    #[test]
    fn hello_service_lists_its_build_dependencies() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello-service");
        let metadata = metadata(&dir.join("Cargo.toml"), &["--locked"]);
        let lock = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
        let base: Reference = "gcr.io/distroless/static-debian12:nonroot".parse().unwrap();
        let base_digest: Digest = BASE_DIGEST.parse().unwrap();
        let image_digest: Digest = IMAGE_DIGEST.parse().unwrap();
        let cfg = cfg(AMD64);
        let input = SbomInput {
            metadata: &metadata,
            root: root_id(&metadata),
            target: AMD64,
            cfg: &cfg,
            bin: "hello-service",
            platform: &Platform::linux_amd64(),
            cargo_lock: Some(&lock),
            base: Some((&base, &base_digest)),
            base_contents: &debian_base(),
            image_name: "registry.example:5000/team/hello-service",
            image_digest: &image_digest,
            extra: &[(
                "webpki-root-certs",
                "1.0.4",
                "CA certificates at /etc/ssl/certs/ca-certificates.crt",
            )],
            created: 1_700_000_000,
        };
        let doc = generate(&input);
        let bytes = spdx_json(&input).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            !text.contains(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../..")
                    .canonicalize()
                    .unwrap()
                    .to_str()
                    .unwrap()
            ),
            "a local path leaked"
        );

        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
        assert_eq!(
            doc["documentNamespace"],
            format!(
                "https://spdx.stevedore.dev/hello-service/{}",
                &IMAGE_DIGEST[7..]
            )
        );

        let image = id(&doc, "registry.example:5000/team/hello-service");
        let root = id(&doc, "hello-service");
        let cc = id(&doc, "cc");
        let base = id(&doc, "gcr.io/distroless/static-debian12");
        assert!(has(&doc, "SPDXRef-DOCUMENT", "DESCRIBES", &image));
        assert!(has(&doc, &image, "CONTAINS", &root));
        assert!(has(
            &doc,
            &image,
            "CONTAINS",
            &id(&doc, "webpki-root-certs")
        ));
        assert!(has(&doc, &image, "DESCENDANT_OF", &base));
        assert!(has(&doc, &cc, "BUILD_DEPENDENCY_OF", &root));
        assert!(!has(&doc, &root, "DEPENDS_ON", &cc));
        for dep in ["shlex", "find-msvc-tools"] {
            assert!(has(&doc, &cc, "DEPENDS_ON", &id(&doc, dep)), "cc → {dep}");
        }

        let versions = lock_checksums(&lock);
        for name in ["cc", "shlex", "find-msvc-tools"] {
            let p = package(&doc, name).unwrap();
            let version = p["versionInfo"].as_str().unwrap();
            let sum = &versions[&(
                name.to_owned(),
                version.to_owned(),
                CRATES_IO_GIT.to_owned(),
            )];
            assert_eq!(p["checksums"][0]["checksumValue"], *sum);
            assert_eq!(p["checksums"][0]["algorithm"], "SHA256");
            assert_eq!(
                p["downloadLocation"],
                format!("https://crates.io/api/v1/crates/{name}/{version}/download")
            );
            assert_eq!(purl(p), format!("pkg:cargo/{name}@{version}"));
            assert_eq!(p["licenseDeclared"], "MIT OR Apache-2.0");
            assert_eq!(p["primaryPackagePurpose"], "LIBRARY");
        }
        let root = package(&doc, "hello-service").unwrap();
        assert_eq!(root["primaryPackagePurpose"], "APPLICATION");
        assert_eq!(root["downloadLocation"], NOASSERTION);
        assert_eq!(root["licenseDeclared"], NOASSERTION);
        assert!(root.get("checksums").is_none());

        let image = package(&doc, "registry.example:5000/team/hello-service").unwrap();
        assert_eq!(image["primaryPackagePurpose"], "CONTAINER");
        assert_eq!(
            purl(image),
            format!("pkg:oci/hello-service@sha256%3A{}?arch=amd64&repository_url=registry.example%3A5000/team/hello-service", &IMAGE_DIGEST[7..])
        );
        let base = package(&doc, "gcr.io/distroless/static-debian12").unwrap();
        assert_eq!(
            purl(base),
            format!("pkg:oci/static-debian12@sha256%3A{}?arch=amd64&repository_url=gcr.io/distroless/static-debian12&tag=nonroot", &BASE_DIGEST[7..])
        );
        let deb = package(&doc, "ca-certificates").unwrap();
        let base = id(&doc, "gcr.io/distroless/static-debian12");
        assert!(has(&doc, &base, "CONTAINS", &id(&doc, "ca-certificates")));
        assert_eq!(
            purl(deb),
            "pkg:deb/debian/ca-certificates@20250419~deb12u2?arch=all&distro=debian-12"
        );
        assert_eq!(deb["versionInfo"], "20250419~deb12u2");
        assert_eq!(deb["licenseDeclared"], "GPL-2.0-or-later AND MPL-2.0");
        assert_eq!(
            deb["supplier"],
            "Person: Julien Cristau (jcristau@debian.org)"
        );
        assert_eq!(doc["packages"].as_array().unwrap().len(), 8);
    }

    fn write_crate(dir: &Path, name: &str, version: &str, license: &str, rest: &str) {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/lib.rs"), "").unwrap();
        let license = match license {
            "" => String::new(),
            l => format!("license = \"{l}\"\n"),
        };
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n{license}\n{rest}\n"
        );
        std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    }

    /// A workspace whose root has a dev-, a build- and a Windows-only dependency, and whose
    /// member `liba` (a workspace member, so cargo resolves its dev-dependencies) has a dev one.
    fn fixture(dir: &Path) {
        write_crate(
            dir,
            "app",
            "0.1.0",
            "MIT/Apache-2.0",
            r#"[workspace]
[dependencies]
liba = { path = "crates/liba" }
[dev-dependencies]
devdep = { path = "crates/devdep" }
[build-dependencies]
builddep = { path = "crates/builddep" }
[target.'cfg(windows)'.dependencies]
winonly = { path = "crates/winonly" }
"#,
        );
        let crates = dir.join("crates");
        write_crate(
            &crates.join("liba"),
            "liba",
            "1.2.3+build.5",
            "MIT and (Apache-2.0 or BSD-3-Clause)",
            "[dev-dependencies]\ndevinner = { path = \"../devinner\" }\n",
        );
        write_crate(&crates.join("devdep"), "devdep", "0.1.0", "MIT", "");
        write_crate(&crates.join("devinner"), "devinner", "0.1.0", "MIT", "");
        write_crate(&crates.join("winonly"), "winonly", "0.1.0", "MIT", "");
        write_crate(
            &crates.join("builddep"),
            "builddep",
            "0.2.0",
            "Apache-2.0 WITH LLVM-exception",
            "[dependencies]\nbdinner = { path = \"../bdinner\" }\n",
        );
        write_crate(
            &crates.join("bdinner"),
            "bdinner",
            "0.3.0",
            "LicenseRef-Proprietary",
            "",
        );
    }

    #[test]
    fn dev_and_other_platform_dependencies_stay_out() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let metadata = metadata(&dir.path().join("Cargo.toml"), &[]);
        let known: Vec<&str> = metadata.packages.iter().map(|p| p.name.as_str()).collect();
        for name in ["devdep", "devinner"] {
            assert!(known.contains(&name), "fixture does not exercise {name}");
        }
        let digest: Digest = IMAGE_DIGEST.parse().unwrap();
        let cfg = cfg(ARM64);
        let input = SbomInput {
            metadata: &metadata,
            root: root_id(&metadata),
            target: ARM64,
            cfg: &cfg,
            bin: "app",
            platform: &Platform::linux_arm64(),
            cargo_lock: None,
            base: None,
            base_contents: &BaseContents::default(),
            image_name: "app",
            image_digest: &digest,
            extra: &[],
            created: 0,
        };
        let doc = generate(&input);
        for absent in ["devdep", "devinner", "winonly"] {
            assert!(package(&doc, absent).is_none(), "{absent} is listed");
        }
        let [app, liba, builddep, bdinner] =
            ["app", "liba", "builddep", "bdinner"].map(|n| id(&doc, n));
        assert!(has(&doc, &app, "DEPENDS_ON", &liba));
        assert!(has(&doc, &builddep, "BUILD_DEPENDENCY_OF", &app));
        assert!(has(&doc, &builddep, "DEPENDS_ON", &bdinner));
        assert_eq!(doc["packages"].as_array().unwrap().len(), 5);
        assert_eq!(liba, "SPDXRef-crate-liba-1.2.3-build.5");

        let license = |name| package(&doc, name).unwrap()["licenseDeclared"].clone();
        assert_eq!(license("app"), "MIT OR Apache-2.0");
        assert_eq!(license("liba"), "MIT AND (Apache-2.0 OR BSD-3-Clause)");
        assert_eq!(license("builddep"), "Apache-2.0 WITH LLVM-exception");
        assert_eq!(license("bdinner"), NOASSERTION);
        assert_eq!(
            purl(package(&doc, "liba").unwrap()),
            "pkg:cargo/liba@1.2.3%2Bbuild.5"
        );
        let image = package(&doc, "app").filter(|p| p["primaryPackagePurpose"] == "CONTAINER");
        assert!(
            image.is_none(),
            "the image and the crate share a name, not an entry"
        );
        assert!(doc["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["relationshipType"] != "DESCENDANT_OF"));
    }

    /// The plan runs `cargo metadata` once for every platform and the SBOM keeps one
    /// platform's part by its cfg values: the crates and edges must be those cargo's own
    /// `--filter-platform` gives, on a real dependency tree with platform-specific crates.
    #[test]
    fn filtering_by_cfg_matches_cargo_filter_platform() {
        // stevedore's own tree: reqwest, rustls, ring, tokio, with cfg(windows), cfg(target_arch)
        // and cfg(target_os) dependencies.
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        // Not offline: every platform's crates must be known, Windows' too (crates.io is
        // reachable wherever the tests run; cargo caches what it fetched).
        let all = metadata_of(&manifest, &["--locked"]);
        for target in [AMD64, ARM64] {
            let cfg = cfg(target);
            let ours = Graph::walk(&all, root_id(&all), (target, &cfg)).unwrap();
            let cargos_metadata =
                metadata_of(&manifest, &["--locked", "--filter-platform", target]);
            // cargo's filtered graph keeps each edge's cfg, so walking it filters nothing more.
            let cargos =
                Graph::walk(&cargos_metadata, root_id(&cargos_metadata), (target, &cfg)).unwrap();
            let names = |g: &Graph| -> Vec<String> {
                g.packages.keys().map(|id| id.repr.clone()).collect()
            };
            let edges = |g: &Graph| -> Vec<(String, String, Edge)> {
                g.edges
                    .iter()
                    .map(|(a, b, e)| (a.repr.clone(), b.repr.clone(), *e))
                    .collect()
            };
            assert_eq!(names(&ours), names(&cargos), "{target}: crates differ");
            assert_eq!(edges(&ours), edges(&cargos), "{target}: edges differ");
            let windows = all.packages.iter().any(|p| p.name.starts_with("windows"));
            assert!(
                windows && !names(&ours).iter().any(|n| n.contains("windows")),
                "{target}: the example must have (and drop) Windows-only crates"
            );
        }
    }

    #[test]
    fn missing_graph_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let mut metadata = metadata(&dir.path().join("Cargo.toml"), &[]);
        let root = root_id(&metadata).clone();
        let digest: Digest = IMAGE_DIGEST.parse().unwrap();
        let platform = Platform::linux_amd64();
        let cfg = cfg(AMD64);
        let run = |metadata: &Metadata| {
            spdx_json(&SbomInput {
                metadata,
                root: &root,
                target: AMD64,
                cfg: &cfg,
                bin: "app",
                platform: &platform,
                cargo_lock: None,
                base: None,
                base_contents: &BaseContents::default(),
                image_name: "app",
                image_digest: &digest,
                extra: &[],
                created: 0,
            })
        };
        metadata.packages.retain(|p| p.name != "bdinner");
        let err = run(&metadata).unwrap_err();
        assert!(
            matches!(&err, SbomError::NoPackage(id) if id.contains("bdinner")),
            "{err:?}"
        );
        metadata.resolve = None;
        assert!(matches!(run(&metadata), Err(SbomError::NoResolve)));
    }

    #[test]
    fn spdx_ids_are_unique_and_clean() {
        let mut ids = Ids::default();
        assert_eq!(
            ids.claim(&["crate", "a_b", "1.0.0+x"]),
            "SPDXRef-crate-a-b-1.0.0-x"
        );
        assert_eq!(
            ids.claim(&["crate", "a-b", "1.0.0-x"]),
            "SPDXRef-crate-a-b-1.0.0-x-2"
        );
        assert_eq!(
            ids.claim(&["crate", "a-b", "1.0.0-x"]),
            "SPDXRef-crate-a-b-1.0.0-x-3"
        );
    }
}
