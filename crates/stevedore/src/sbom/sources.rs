//! Where each package comes from, as SPDX and purl write it: download locations, package URLs
//! and the SHA256 checksums Cargo.lock records.

use std::collections::BTreeMap;

use cargo_metadata::Package;

use crate::digest::Digest;
use crate::platform::Platform;

pub(super) const CRATES_IO_GIT: &str = "registry+https://github.com/rust-lang/crates.io-index";
const CRATES_IO_SPARSE: &str = "sparse+https://index.crates.io/";

fn is_crates_io(source: &str) -> bool {
    source == CRATES_IO_GIT || source == CRATES_IO_SPARSE
}

/// Where the crate's exact source can be fetched from by anyone, if we know.
pub(super) fn download_location(c: &Package) -> Option<String> {
    let source = &c.source.as_ref()?.repr;
    if is_crates_io(source) {
        return Some(format!(
            "https://crates.io/api/v1/crates/{}/{}/download",
            c.name, c.version
        ));
    }
    // Another registry's download URL is in its index's config.json, which metadata lacks; a
    // path crate has no public location at all.
    git_location(source)
}

/// `git+https://host/repo?branch=x#<commit>` as SPDX writes a VCS location:
/// `git+https://host/repo@<commit>`. A `file://` repository is on this machine only.
fn git_location(source: &str) -> Option<String> {
    let rest = source.strip_prefix("git+")?;
    let (url, commit) = rest.split_once('#').unwrap_or((rest, ""));
    let url = url.split_once('?').map_or(url, |(u, _)| u);
    if url.starts_with("file:") {
        return None;
    }
    Some(match commit {
        "" => format!("git+{url}"),
        commit => format!("git+{url}@{commit}"),
    })
}

/// `pkg:cargo/NAME@VERSION`, qualified by where the crate came from unless it is crates.io.
pub(super) fn cargo_purl(c: &Package) -> String {
    let purl = format!(
        "pkg:cargo/{}@{}",
        c.name,
        percent_encode(&c.version.to_string())
    );
    let Some(source) = c.source.as_ref().map(|s| s.repr.as_str()) else {
        return purl;
    };
    if is_crates_io(source) {
        return purl;
    }
    if let Some(vcs) = git_location(source) {
        return format!("{purl}?vcs_url={}", percent_encode(&vcs));
    }
    match source.split_once('+') {
        Some(("registry" | "sparse", url)) => {
            format!("{purl}?repository_url={}", percent_encode(url))
        }
        _ => purl,
    }
}

/// `name:tag` or `registry/repo:tag` (any `@digest` dropped) as the name and the tag.
pub(super) fn split_tag(name: &str) -> (&str, Option<&str>) {
    let name = name.split_once('@').map_or(name, |(n, _)| n);
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].find(':') {
        Some(i) => (&name[..last + i], Some(&name[last + i + 1..])),
        None => (name, None),
    }
}

/// `pkg:oci/NAME@sha256%3AHEX?arch=…&repository_url=…&tag=…` (qualifiers sorted, as purl's
/// canonical form wants). A name with no `/` is no repository, so it gets no URL.
pub(super) fn oci_purl(
    repository: &str,
    tag: Option<&str>,
    digest: &Digest,
    platform: &Platform,
) -> String {
    let name = repository.rsplit('/').next().unwrap_or(repository);
    let mut purl = format!(
        "pkg:oci/{}@{}?arch={}",
        percent_encode(&name.to_lowercase()),
        percent_encode(digest.as_str()),
        percent_encode(&platform.architecture)
    );
    if repository.contains('/') {
        purl.push_str(&format!("&repository_url={}", percent_encode(repository)));
    }
    if let Some(tag) = tag {
        purl.push_str(&format!("&tag={}", percent_encode(tag)));
    }
    purl
}

/// Percent-encodes all but unreserved characters and `/`, which purl and URL paths both keep.
pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// SHA256 checksums of registry crates from Cargo.lock, keyed by (name, version, source).
///
/// Version 1 lock files, which kept checksums in a `[metadata]` table, simply give none. A lock
/// that is not TOML gives none either: cargo, which ran before us, accepts no such file.
pub(super) fn lock_checksums(lock: &str) -> BTreeMap<(String, String, String), String> {
    #[derive(serde::Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Locked>,
    }
    #[derive(serde::Deserialize)]
    struct Locked {
        name: String,
        version: String,
        source: Option<String>,
        checksum: Option<String>,
    }
    let Ok(lock) = toml::from_str::<Lock>(lock) else {
        return BTreeMap::new();
    };
    let is_sha256 =
        |sum: &str| sum.len() == 64 && sum.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    lock.package
        .into_iter()
        .filter_map(|p| {
            let (source, sum) = (p.source?, p.checksum?);
            is_sha256(&sum).then_some(((p.name, p.version, source), sum))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE_DIGEST: &str =
        "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn lock_file_checksums() {
        let sum = "02f0e023adb368345ce0ca6cdfc0f24a06554468d0e8503e14a0841de79bfa69";
        let lock = format!(
            r#"version = 4

[[package]]
name = "cc"
version = "1.11.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{sum}"
dependencies = [
 "shlex",
]

[[package]]
name = "local"
version = "0.1.0"

[[package]]
name = "bad"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "not-hex"

[metadata]
name = "ignored"
version = "1"
source = "x"
checksum = "{sum}"
"#
        );
        let sums = lock_checksums(&lock);
        assert_eq!(sums.len(), 1, "{sums:?}");
        let key = (
            "cc".to_owned(),
            "1.11.3".to_owned(),
            CRATES_IO_GIT.to_owned(),
        );
        assert_eq!(sums[&key], sum);
    }

    #[test]
    fn locations_and_purls() {
        assert_eq!(
            git_location("git+https://github.com/a/b?branch=main#0123abc").as_deref(),
            Some("git+https://github.com/a/b@0123abc")
        );
        assert_eq!(git_location("git+file:///tmp/repo#0123abc"), None);
        assert_eq!(git_location("registry+https://x"), None);
        assert_eq!(split_tag("app"), ("app", None));
        assert_eq!(
            split_tag("host:5000/app:1.0"),
            ("host:5000/app", Some("1.0"))
        );
        assert_eq!(
            split_tag("host:5000/app@sha256:00"),
            ("host:5000/app", None)
        );
        let digest: Digest = IMAGE_DIGEST.parse().unwrap();
        assert_eq!(
            oci_purl("App", None, &digest, &Platform::linux_arm64()),
            format!("pkg:oci/app@sha256%3A{}?arch=arm64", &IMAGE_DIGEST[7..])
        );
    }
}
