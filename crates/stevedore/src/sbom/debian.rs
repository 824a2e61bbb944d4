//! Debian packages as a base image records them: dpkg's control paragraphs (one file per package
//! in `/var/lib/dpkg/status.d/`, as distroless writes them, or the one `/var/lib/dpkg/status`),
//! the licenses of their machine-readable copyright files, and their package URLs.

use super::license::license_expression;
use super::sources::percent_encode;

/// One installed Debian package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// `Maintainer:` as dpkg has it: `Name <email>`.
    pub maintainer: Option<String>,
    /// The SPDX expression of its copyright file's `License:` fields, when all of them map.
    pub license: Option<String>,
}

/// The distribution from `/etc/os-release`: `ID` and `VERSION_ID` (`debian`, `12`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OsRelease {
    pub id: String,
    pub version_id: Option<String>,
}

impl OsRelease {
    pub(super) fn parse(text: &str) -> Option<Self> {
        let field = |key: &str| {
            text.lines().find_map(|line| {
                let value = line.strip_prefix(key)?.strip_prefix('=')?;
                Some(value.trim().trim_matches('"').to_owned())
            })
        };
        Some(OsRelease {
            id: field("ID").filter(|id| !id.is_empty())?,
            version_id: field("VERSION_ID").filter(|v| !v.is_empty()),
        })
    }
}

/// The control fields of one deb822 paragraph; continuation lines are left out (no field we
/// read spans lines).
fn fields(paragraph: &str) -> impl Iterator<Item = (&str, &str)> {
    paragraph.lines().filter_map(|line| {
        if line.starts_with([' ', '\t']) {
            return None;
        }
        let (key, value) = line.split_once(':')?;
        Some((key.trim(), value.trim()))
    })
}

fn field<'p>(paragraph: &'p str, key: &str) -> Option<&'p str> {
    fields(paragraph)
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The installed packages in a status file: each paragraph with a name, a version and an
/// architecture whose `Status:`, if any, says installed (distroless's files have none).
pub(super) fn parse_status(text: &str) -> Vec<DebPackage> {
    text.split("\n\n")
        .filter(|p| field(p, "Status").is_none_or(|s| s.ends_with(" installed")))
        .filter_map(|p| {
            Some(DebPackage {
                name: field(p, "Package")?.to_owned(),
                version: field(p, "Version")?.to_owned(),
                architecture: field(p, "Architecture")?.to_owned(),
                maintainer: field(p, "Maintainer").map(str::to_owned),
                license: None,
            })
        })
        .collect()
}

/// The SPDX expression of a machine-readable copyright file (DEP-5): every `License:` field's
/// first line, mapped from Debian's short names, joined with AND. `None` for a free-form file
/// or when any field does not map (`public-domain`, an unknown name): asserting part of the
/// licenses would claim too little.
pub(super) fn copyright_license(text: &str) -> Option<String> {
    let header = text.split("\n\n").next()?;
    field(header, "Format").filter(|f| f.contains("copyright-format"))?;
    let mut expressions: Vec<String> = Vec::new();
    for paragraph in text.split("\n\n") {
        if let Some(raw) = field(paragraph, "License") {
            let expression = debian_expression(raw)?;
            if !expressions.contains(&expression) {
                expressions.push(expression);
            }
        }
    }
    expressions.sort();
    match expressions.len() {
        0 => None,
        1 => expressions.pop(),
        _ => Some(
            expressions
                .iter()
                .map(|e| match e.contains(' ') {
                    true => format!("({e})"),
                    false => e.clone(),
                })
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    }
}

/// A DEP-5 license expression (`GPL-2+ or Artistic`, `, and` allowed) in SPDX ids.
fn debian_expression(raw: &str) -> Option<String> {
    let spaced = raw
        .replace(',', " ")
        .replace('(', " ( ")
        .replace(')', " ) ");
    let words: Vec<String> = spaced
        .split_whitespace()
        .map(|w| match w.to_ascii_lowercase().as_str() {
            "(" | ")" | "and" | "or" => Some(w.to_ascii_uppercase()),
            _ => spdx_id(w),
        })
        .collect::<Option<_>>()?;
    license_expression(&words.join(" "))
}

/// SPDX's id for one of Debian's short license names, `+` meaning "or later".
fn spdx_id(short: &str) -> Option<String> {
    let (name, later) = match short.strip_suffix('+') {
        Some(name) => (name, true),
        None => (short, false),
    };
    let lower = name.to_ascii_lowercase();
    let (family, version) = match lower.rsplit_once('-') {
        Some((f, v)) if v.starts_with(|c: char| c.is_ascii_digit()) => (f, v),
        _ => (lower.as_str(), ""),
    };
    let version = match version {
        "1" | "2" | "3" => format!("{version}.0"),
        v => v.to_owned(),
    };
    let gnu = |id: &str| {
        let suffix = if later { "or-later" } else { "only" };
        Some(format!("{id}-{version}-{suffix}"))
    };
    let exact = |id: &str| (!later).then(|| id.to_owned());
    match (family, version.as_str()) {
        ("gpl", "1.0" | "2.0" | "3.0") => gnu("GPL"),
        ("lgpl", "2.0" | "2.1" | "3.0") => gnu("LGPL"),
        ("agpl", "3.0") => gnu("AGPL"),
        ("gfdl", "1.1" | "1.2" | "1.3") => gnu("GFDL"),
        ("apache", "2.0") => exact("Apache-2.0"),
        ("mpl", "1.1" | "2.0") => exact(&format!("MPL-{version}")),
        ("artistic", "2.0") => exact("Artistic-2.0"),
        ("cc0", "1.0") => exact("CC0-1.0"),
        ("bsd-2-clause" | "bsd-3-clause" | "bsd-4-clause", "") => {
            exact(&format!("BSD-{}-Clause", &family[4..5]))
        }
        ("expat" | "mit", "") => exact("MIT"),
        ("isc", "") => exact("ISC"),
        ("zlib", "") => exact("Zlib"),
        _ => None,
    }
}

/// `pkg:deb/ID/NAME@VERSION?arch=ARCH&distro=ID-VERSION_ID`, as the purl spec's deb type and
/// scanners (Trivy, Syft) write it.
pub(super) fn deb_purl(p: &DebPackage, os: Option<&OsRelease>) -> String {
    let namespace = os.map_or("debian", |o| o.id.as_str());
    let mut purl = format!(
        "pkg:deb/{}/{}@{}?arch={}",
        percent_encode(namespace),
        percent_encode(&p.name),
        percent_encode(&p.version),
        percent_encode(&p.architecture)
    );
    if let Some(OsRelease {
        id,
        version_id: Some(version),
    }) = os
    {
        purl.push_str(&format!(
            "&distro={}",
            percent_encode(&format!("{id}-{version}"))
        ));
    }
    purl
}

/// SPDX's supplier form of a maintainer: `Person: Name (email)`.
pub(super) fn supplier(maintainer: &str) -> String {
    match maintainer.split_once('<') {
        Some((name, rest)) => format!(
            "Person: {} ({})",
            name.trim(),
            rest.trim_end().trim_end_matches('>')
        ),
        None => format!("Person: {}", maintainer.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TZDATA: &str = "Package: tzdata\nVersion: 2026f-0+deb12u1\nArchitecture: all\n\
        Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nInstalled-Size: 2571\n\
        Depends: debconf (>= 0.5) | debconf-2.0\nDescription: time zone and daylight-saving time data\n \
        This package contains data required for the implementation of\n";

    #[test]
    fn status_paragraphs() {
        let packages = parse_status(TZDATA);
        assert_eq!(
            packages,
            [DebPackage {
                name: "tzdata".into(),
                version: "2026f-0+deb12u1".into(),
                architecture: "all".into(),
                maintainer: Some("GNU Libc Maintainers <debian-glibc@lists.debian.org>".into()),
                license: None,
            }]
        );
        let status = "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n\
                      Package: b\nStatus: deinstall ok config-files\nVersion: 2\nArchitecture: amd64\n\n\
                      Package: c\nVersion: 3\n";
        let names: Vec<_> = parse_status(status).into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            ["a"],
            "removed and incomplete paragraphs are left out"
        );
    }

    #[test]
    fn copyright_licenses() {
        let dep5 = |licenses: &[&str]| {
            let mut text =
                "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                 Source: https://example.org\n"
                    .to_owned();
            for l in licenses {
                text.push_str(&format!(
                    "\nFiles: *\nCopyright: someone\nLicense: {l}\n text\n"
                ));
            }
            text
        };
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["GPL-2"], Some("GPL-2.0-only")),
            (&["GPL-2+", "MPL-2.0"], Some("GPL-2.0-or-later AND MPL-2.0")),
            (&["GPL-2+", "GPL-2+"], Some("GPL-2.0-or-later")),
            (
                &["LGPL-2.1+ or BSD-3-clause", "Expat"],
                Some("(LGPL-2.1-or-later OR BSD-3-Clause) AND MIT"),
            ),
            (&["public-domain"], None),
            (&["GPL-2", "public-domain"], None),
            (&["Apache-2.0+"], None),
        ];
        for (licenses, want) in cases {
            assert_eq!(
                copyright_license(&dep5(licenses)).as_deref(),
                *want,
                "{licenses:?}"
            );
        }
        assert_eq!(
            copyright_license("This is the Debian prepackaged version...\nLicense: GPL-2\n"),
            None,
            "a free-form file asserts nothing"
        );
    }

    #[test]
    fn purls_and_suppliers() {
        let p = &parse_status(TZDATA)[0];
        let os = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n",
        );
        assert_eq!(
            deb_purl(p, os.as_ref()),
            "pkg:deb/debian/tzdata@2026f-0%2Bdeb12u1?arch=all&distro=debian-12"
        );
        assert_eq!(
            deb_purl(p, None),
            "pkg:deb/debian/tzdata@2026f-0%2Bdeb12u1?arch=all"
        );
        assert_eq!(
            supplier(p.maintainer.as_deref().unwrap()),
            "Person: GNU Libc Maintainers (debian-glibc@lists.debian.org)"
        );
    }
}
