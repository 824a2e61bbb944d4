//! The GNU build-id of an executable, and where a debugger looks for its symbols by it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A GNU build-id (the `NT_GNU_BUILD_ID` note the linker writes): the name by which gdb and
/// debuginfod find an executable's separate debug file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildId(Vec<u8>);

/// A build-id that is not an even number of hex digits, at least two bytes long.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a GNU build-id (an even number of hex digits, at least 4)")]
pub struct BuildIdError(String);

impl BuildId {
    /// The build-id note of an ELF executable, if it has one.
    pub fn of_elf(data: &[u8]) -> Option<BuildId> {
        use object::Object;
        let file = object::File::parse(data).ok()?;
        let id = file.build_id().ok()??;
        (id.len() >= 2).then(|| BuildId(id.to_vec()))
    }

    /// Where gdb's `debug-file-directory` (and debuginfod's cache) expects the debug file:
    /// `.build-id/xx/yyyy.debug`, `xx` the first byte in hex and `yyyy` the rest.
    pub fn debug_path(&self) -> PathBuf {
        let hex = self.to_string();
        let (first, rest) = hex.split_at(2);
        PathBuf::from(".build-id")
            .join(first)
            .join(format!("{rest}.debug"))
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl FromStr for BuildId {
    type Err = BuildIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BuildIdError(s.to_owned());
        if s.len() < 4 || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| bad()))
            .collect::<Result<_, _>>()
            .map(BuildId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_path_splits_off_the_first_byte() {
        let id: BuildId = "4fa2c31b09e8d7".parse().unwrap();
        assert_eq!(
            id.debug_path(),
            PathBuf::from(".build-id/4f/a2c31b09e8d7.debug")
        );
        assert_eq!(id.to_string(), "4fa2c31b09e8d7");
    }

    #[test]
    fn hex_round_trips_in_lower_case() {
        let id: BuildId = "ABCDEF0123".parse().unwrap();
        assert_eq!(id.to_string(), "abcdef0123");
        assert_eq!(
            id.debug_path(),
            PathBuf::from(".build-id/ab/cdef0123.debug")
        );
    }

    #[test]
    fn rejects_what_is_not_a_build_id() {
        for bad in ["", "ab", "abc", "zz11", "12345", "../../etc", "ab/cd"] {
            assert!(bad.parse::<BuildId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn reads_nothing_from_what_is_not_elf() {
        assert_eq!(BuildId::of_elf(b"#!/bin/sh\n"), None);
    }
}
