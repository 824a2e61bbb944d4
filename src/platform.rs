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

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("`{0}` is not a platform: write it as OS/ARCH, e.g. linux/amd64 or linux/arm64")]
    Syntax(String),
    #[error("platform `{0}` is not supported yet: stevedore builds linux/amd64 and linux/arm64")]
    Unsupported(String),
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
    fn arm64_variant_defaults_to_v8() {
        let arm = Platform::linux_arm64();
        assert!(arm.matches("linux", "arm64", None));
        assert!(arm.matches("linux", "arm64", Some("v8")));
        assert!(!arm.matches("linux", "arm64", Some("v7")));
        assert!(!Platform::linux_amd64().matches("linux", "arm64", None));
    }
}
