//! Target platforms (`linux/amd64`, `linux/arm64`, …) and the Rust targets that build for them.

use std::fmt;
use std::str::FromStr;

/// An OCI platform: operating system, CPU architecture and optional variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x` or `riscv64`, as OCI names them.
    pub architecture: String,
    /// `v8` for arm64, `v7` for arm; none for the others.
    pub variant: Option<String>,
}

/// The platforms stevedore builds, in the order `--platform all` on `scratch` lists them: OCI
/// architecture, variant, and the Rust targets that compile for it: musl (static) and glibc.
const BUILT: [(&str, Option<&str>, &str, &str); 7] = [
    (
        "amd64",
        None,
        "x86_64-unknown-linux-musl",
        "x86_64-unknown-linux-gnu",
    ),
    (
        "arm64",
        Some("v8"),
        "aarch64-unknown-linux-musl",
        "aarch64-unknown-linux-gnu",
    ),
    (
        "arm",
        Some("v7"),
        "armv7-unknown-linux-musleabihf",
        "armv7-unknown-linux-gnueabihf",
    ),
    (
        "386",
        None,
        "i686-unknown-linux-musl",
        "i686-unknown-linux-gnu",
    ),
    (
        "ppc64le",
        None,
        "powerpc64le-unknown-linux-musl",
        "powerpc64le-unknown-linux-gnu",
    ),
    (
        "s390x",
        None,
        "s390x-unknown-linux-musl",
        "s390x-unknown-linux-gnu",
    ),
    (
        "riscv64",
        None,
        "riscv64gc-unknown-linux-musl",
        "riscv64gc-unknown-linux-gnu",
    ),
];

/// The C library a binary is built against: musl, linked in statically (the default, for any
/// base), or glibc, linked dynamically against the base's (`--libc gnu`, on a base with
/// glibc such as `distroless/cc`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    /// Static musl binaries (`*-unknown-linux-musl`).
    #[default]
    Musl,
    /// Dynamic glibc binaries (`*-unknown-linux-gnu`).
    Gnu,
}

/// A glibc version as symbol versions and zig name it: `2.36` (major, minor), for
/// [`Libc::Gnu`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion(pub u32, pub u32);

impl GlibcVersion {
    /// `2.36`, from the start of a version such as `2.36-9+deb12u10` (Debian's) or `2.36`.
    pub fn parse(text: &str) -> Option<Self> {
        let upstream = text.split(['-', '+', '~']).next()?;
        let mut parts = upstream.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(GlibcVersion(major, minor))
    }
}

impl FromStr for GlibcVersion {
    type Err = PlatformError;

    /// `MAJOR.MINOR` only, as a flag or setting writes it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PlatformError::Glibc(s.to_owned());
        let (major, minor) = s.trim().split_once('.').ok_or_else(bad)?;
        Ok(GlibcVersion(
            major.parse().map_err(|_| bad())?,
            minor.parse().map_err(|_| bad())?,
        ))
    }
}

impl serde::Serialize for GlibcVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl FromStr for Libc {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "musl" => Ok(Libc::Musl),
            "gnu" | "glibc" => Ok(Libc::Gnu),
            other => Err(PlatformError::Libc(other.to_owned())),
        }
    }
}

impl fmt::Display for Libc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Libc::Musl => "musl",
            Libc::Gnu => "gnu",
        })
    }
}

/// Other spellings of an architecture that tools write (Go's, Debian's, the kernel's), as
/// containerd normalises them.
const ALIASES: [(&str, &str); 5] = [
    ("x86_64", "amd64"),
    ("aarch64", "arm64"),
    ("armhf", "arm"),
    ("i386", "386"),
    ("ppc64el", "ppc64le"),
];

/// Why no platform came of the text or the host: not a platform, one not built for, or a host
/// CPU with no default.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The text is not `OS/ARCH` or `OS/ARCH/VARIANT`; it holds the text.
    #[error("`{0}` is not a platform: write it as OS/ARCH, e.g. linux/amd64 or linux/arm64")]
    Syntax(String),
    /// A well-formed platform stevedore does not build; it holds the text.
    #[error(
        "platform `{0}` is not supported: stevedore builds {supported}",
        supported = list(&Platform::supported())
    )]
    Unsupported(String),
    /// A glibc version that is not `MAJOR.MINOR`; it holds the text.
    #[error("`{0}` is not a glibc version: write it as MAJOR.MINOR, e.g. 2.36")]
    Glibc(String),
    /// A C library other than `musl` and `gnu`; it holds the text.
    #[error("`{0}` is not a C library stevedore builds for: use `musl` (static, the default) or `gnu` (glibc)")]
    Libc(String),
    /// [`Platform::host`] on a CPU no supported platform runs on; it holds Rust's name for the
    /// CPU (`std::env::consts::ARCH`).
    #[error("the host architecture `{0}` has no default platform: pass --platform, e.g. linux/amd64 or linux/arm64")]
    UnknownHost(String),
}

impl Platform {
    /// `linux/amd64`.
    pub fn linux_amd64() -> Self {
        Self::linux("amd64", None)
    }

    /// `linux/arm64/v8`.
    pub fn linux_arm64() -> Self {
        Self::linux("arm64", Some("v8"))
    }

    /// Every platform stevedore builds, amd64 and arm64 first.
    pub fn supported() -> Vec<Self> {
        BUILT
            .iter()
            .map(|(architecture, variant, ..)| Self::linux(architecture, *variant))
            .collect()
    }

    fn linux(architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The supported platform that `os`/`architecture`/`variant` names, allowing for other
    /// spellings of the architecture and a left-out default variant.
    fn known(os: &str, architecture: &str, variant: Option<&str>) -> Option<Self> {
        let architecture = ALIASES
            .iter()
            .find(|(alias, _)| *alias == architecture)
            .map_or(architecture, |(_, name)| name);
        Self::supported()
            .into_iter()
            .find(|p| p.matches(os, architecture, variant))
    }

    /// The platform matching the machine stevedore runs on.
    pub fn host() -> Result<Self, PlatformError> {
        let arch = std::env::consts::ARCH;
        let oci = match arch {
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "riscv64" => "riscv64",
            other => other,
        };
        Self::known("linux", oci, None).ok_or_else(|| PlatformError::UnknownHost(arch.to_owned()))
    }

    /// The Rust target triple that compiles a static (musl) binary for this platform; for a
    /// platform stevedore does not build (made by hand, not parsed), amd64's.
    pub fn rust_target(&self) -> &'static str {
        self.rust_target_for(Libc::Musl)
    }

    /// The Rust target triple that compiles for this platform against `libc`; for a platform
    /// stevedore does not build (made by hand, not parsed), amd64's.
    pub fn rust_target_for(&self, libc: Libc) -> &'static str {
        let row = BUILT
            .iter()
            .find(|(architecture, variant, ..)| self.matches("linux", architecture, *variant))
            .unwrap_or(&BUILT[0]);
        match libc {
            Libc::Musl => row.2,
            Libc::Gnu => row.3,
        }
    }

    /// Whether an index entry's platform is this one. A missing variant means the default one
    /// (v8 on arm64, v7 on arm), which is how most registries and tools write it.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        let normalise = |v: Option<&str>| match (architecture, v) {
            ("arm64", None) => Some("v8".to_owned()),
            ("arm", None) => Some("v7".to_owned()),
            (_, v) => v.map(str::to_owned),
        };
        self.os == os
            && self.architecture == architecture
            && normalise(variant) == normalise(self.variant.as_deref())
    }

    /// The same platform as oci-spec's type, for descriptors and configs.
    pub fn to_oci(&self) -> oci_spec::image::Platform {
        let mut p = oci_spec::image::Platform::default();
        p.set_os(self.os.as_str().into());
        p.set_architecture(self.architecture.as_str().into());
        p.set_variant(self.variant.clone());
        p
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            ["linux", "amd64", "v1"] => ("linux", "amd64", None),
            [os, arch, variant] if !variant.is_empty() => (*os, *arch, Some(*variant)),
            _ => return Err(PlatformError::Syntax(s.to_owned())),
        };
        if os.is_empty() || arch.is_empty() {
            return Err(PlatformError::Syntax(s.to_owned()));
        }
        Self::known(os, arch, variant).ok_or_else(|| PlatformError::Unsupported(s.to_owned()))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// `linux/amd64, linux/arm64/v8`, for messages.
pub fn list<'a>(platforms: impl IntoIterator<Item = &'a Platform>) -> String {
    platforms
        .into_iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--platform all`: of the platforms an index lists, those stevedore builds (in the index's
/// order, each once) and the others, written out for a warning. Entries for no platform
/// (`unknown/unknown`, which BuildKit gives its attestations) are neither.
pub fn buildable(listed: &[oci_spec::image::Platform]) -> (Vec<Platform>, Vec<String>) {
    let (mut ours, mut skipped) = (Vec::new(), Vec::new());
    for p in listed {
        let (os, arch) = (p.os().to_string(), p.architecture().to_string());
        if os == "unknown" || arch == "unknown" {
            continue;
        }
        match Platform::known(&os, &arch, p.variant().as_deref()) {
            Some(platform) if !ours.contains(&platform) => ours.push(platform),
            Some(_) => {}
            None => skipped.push(match p.variant() {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            }),
        }
    }
    (ours, skipped)
}

impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_and_rejects_others() {
        assert_eq!(
            "linux/amd64".parse::<Platform>().unwrap(),
            Platform::linux_amd64()
        );
        assert_eq!(
            "linux/arm64/v8".parse::<Platform>().unwrap(),
            Platform::linux_arm64()
        );
        for (text, canonical, target) in [
            (
                "linux/arm/v7",
                "linux/arm/v7",
                "armv7-unknown-linux-musleabihf",
            ),
            (
                "linux/arm",
                "linux/arm/v7",
                "armv7-unknown-linux-musleabihf",
            ),
            (
                "linux/armhf",
                "linux/arm/v7",
                "armv7-unknown-linux-musleabihf",
            ),
            ("linux/386", "linux/386", "i686-unknown-linux-musl"),
            ("linux/i386", "linux/386", "i686-unknown-linux-musl"),
            (
                "linux/ppc64le",
                "linux/ppc64le",
                "powerpc64le-unknown-linux-musl",
            ),
            ("linux/s390x", "linux/s390x", "s390x-unknown-linux-musl"),
            (
                "linux/riscv64",
                "linux/riscv64",
                "riscv64gc-unknown-linux-musl",
            ),
            (
                "linux/aarch64",
                "linux/arm64/v8",
                "aarch64-unknown-linux-musl",
            ),
            ("linux/amd64/v1", "linux/amd64", "x86_64-unknown-linux-musl"),
        ] {
            let p: Platform = text.parse().unwrap();
            assert_eq!(
                (p.to_string().as_str(), p.rust_target()),
                (canonical, target)
            );
        }
        for unsupported in [
            "linux/arm/v6",
            "linux/mips64le",
            "windows/amd64",
            "linux/amd64/v3",
        ] {
            let err = unsupported.parse::<Platform>().unwrap_err();
            assert!(
                matches!(err, PlatformError::Unsupported(_)),
                "{unsupported}"
            );
            assert!(err.to_string().contains("linux/ppc64le"), "{err}");
        }
        for malformed in ["amd64", "linux/", "/amd64", "linux/arm/", "linux/arm/v7/x"] {
            assert!(
                matches!(malformed.parse::<Platform>(), Err(PlatformError::Syntax(_))),
                "{malformed}"
            );
        }
        let supported = Platform::supported();
        assert_eq!(supported.len(), 7);
        assert_eq!(
            supported[..2],
            [Platform::linux_amd64(), Platform::linux_arm64()]
        );
        for p in &supported {
            assert_eq!(p.to_string().parse::<Platform>().unwrap(), *p);
        }
    }

    #[test]
    fn all_keeps_what_stevedore_builds_and_names_the_rest() {
        let p = |os: &str, arch: &str, variant: Option<&str>| {
            let mut p = oci_spec::image::Platform::default();
            p.set_os(os.into());
            p.set_architecture(arch.into());
            p.set_variant(variant.map(str::to_owned));
            p
        };
        let listed = [
            p("linux", "arm", Some("v7")),
            p("linux", "arm64", Some("v8")),
            p("unknown", "unknown", None),
            p("linux", "amd64", None),
            p("linux", "s390x", None),
            p("linux", "amd64", None),
            p("linux", "arm", Some("v6")),
            p("linux", "mips64le", None),
        ];
        let (ours, skipped) = buildable(&listed);
        let built: Vec<String> = ours.iter().map(ToString::to_string).collect();
        assert_eq!(
            built,
            [
                "linux/arm/v7",
                "linux/arm64/v8",
                "linux/amd64",
                "linux/s390x"
            ]
        );
        assert_eq!(skipped, ["linux/arm/v6", "linux/mips64le"]);
    }

    #[test]
    fn arm_variants_default_to_v8_and_v7() {
        let arm = Platform::linux_arm64();
        assert!(arm.matches("linux", "arm64", None));
        assert!(arm.matches("linux", "arm64", Some("v8")));
        assert!(!arm.matches("linux", "arm64", Some("v7")));
        assert!(!Platform::linux_amd64().matches("linux", "arm64", None));
        let arm: Platform = "linux/arm/v7".parse().unwrap();
        assert!(arm.matches("linux", "arm", None));
        assert!(!arm.matches("linux", "arm", Some("v6")));
    }
}
