//! Target platforms (`linux/amd64`, `linux/arm64`) and the Rust targets that build for them.

use std::fmt;
use std::str::FromStr;

/// An OCI platform: operating system, CPU architecture and optional variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64` or `arm64`, as OCI names them.
    pub architecture: String,
    /// `v8` for arm64; none for amd64.
    pub variant: Option<String>,
}

/// Why no platform came of the text or the host: not a platform, one not built for, or a host
/// CPU with no default.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The text is not `OS/ARCH` or `OS/ARCH/VARIANT`; it holds the text.
    #[error("`{0}` is not a platform: write it as OS/ARCH, e.g. linux/amd64 or linux/arm64")]
    Syntax(String),
    /// A well-formed platform other than `linux/amd64` and `linux/arm64`; it holds the text.
    #[error("platform `{0}` is not supported yet: stevedore builds linux/amd64 and linux/arm64")]
    Unsupported(String),
    /// [`Platform::host`] on a CPU neither platform runs on; it holds Rust's name for the CPU
    /// (`std::env::consts::ARCH`).
    #[error("the host architecture `{0}` has no default platform: pass --platform linux/amd64 or linux/arm64")]
    UnknownHost(String),
}

impl Platform {
    /// `linux/amd64`.
    pub fn linux_amd64() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    /// `linux/arm64/v8`.
    pub fn linux_arm64() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        }
    }

    /// The platform matching the machine stevedore runs on.
    pub fn host() -> Result<Self, PlatformError> {
        match std::env::consts::ARCH {
            "x86_64" => Ok(Self::linux_amd64()),
            "aarch64" => Ok(Self::linux_arm64()),
            other => Err(PlatformError::UnknownHost(other.to_owned())),
        }
    }

    /// The Rust target triple that compiles a static binary for this platform.
    pub fn rust_target(&self) -> &'static str {
        match self.architecture.as_str() {
            "arm64" => "aarch64-unknown-linux-musl",
            _ => "x86_64-unknown-linux-musl",
        }
    }

    /// Whether an index entry's platform is this one. A missing variant on arm64 means v8,
    /// which is how most registries and tools write it.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        let normalise = |v: Option<&str>| match (architecture, v) {
            ("arm64", None) => Some("v8".to_owned()),
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
        match parts.as_slice() {
            ["linux", "amd64" | "x86_64"] | ["linux", "amd64", "v1"] => Ok(Self::linux_amd64()),
            ["linux", "arm64" | "aarch64"] | ["linux", "arm64", "v8"] => Ok(Self::linux_arm64()),
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => {
                Err(PlatformError::Unsupported(s.to_owned()))
            }
            _ => Err(PlatformError::Syntax(s.to_owned())),
        }
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
        let known = [Platform::linux_amd64(), Platform::linux_arm64()]
            .into_iter()
            .find(|ours| ours.matches(&os, &arch, p.variant().as_deref()));
        match known {
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
        assert!(matches!(
            "linux/s390x".parse::<Platform>(),
            Err(PlatformError::Unsupported(_))
        ));
        assert!(matches!(
            "amd64".parse::<Platform>(),
            Err(PlatformError::Syntax(_))
        ));
        assert_eq!(
            Platform::linux_arm64().rust_target(),
            "aarch64-unknown-linux-musl"
        );
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
        ];
        let (ours, skipped) = buildable(&listed);
        assert_eq!(ours, [Platform::linux_arm64(), Platform::linux_amd64()]);
        assert_eq!(skipped, ["linux/arm/v7", "linux/s390x"]);
    }

    #[test]
    fn arm64_variant_defaults_to_v8() {
        let arm = Platform::linux_arm64();
        assert!(arm.matches("linux", "arm64", None));
        assert!(arm.matches("linux", "arm64", Some("v8")));
        assert!(!arm.matches("linux", "arm64", Some("v7")));
        assert!(!Platform::linux_amd64().matches("linux", "arm64", None));
    }
}
