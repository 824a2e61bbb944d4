//! The toolchain in `stevedore.lock`: what compiles and links the images (rustc, zig and
//! stevedore itself), so that a build on another machine, or after `rustup update`, says what
//! changed instead of giving another digest without a word.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The tools a build ran, as the lock records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Tools {
    /// cargo-stevedore's version: layers, configs and manifests are its output.
    pub stevedore: String,
    /// rustc's release (`1.95.0`).
    pub rustc: String,
    /// The commit rustc was built from; distributions' builds may not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rustc_commit_hash: Option<String>,
    /// zig's version: it compiles musl's C runtime and the C dependencies, and links.
    pub zig: String,
    /// Set when zig is not stevedore's pinned one: what chose it (`STEVEDORE_ZIG`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zig_chosen_by: Option<String>,
    /// The pinned zig's archive digests, one per host (`linux-x86_64`), as pinned by this
    /// stevedore: hosts download different archives of one zig.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub zig_sha256: BTreeMap<String, String>,
}

impl Tools {
    /// rustc as people name it: `1.95.0 (59807616e)`.
    pub(crate) fn rustc_named(&self) -> String {
        match &self.rustc_commit_hash {
            Some(hash) => format!("{} ({})", self.rustc, &hash[..hash.len().min(9)]),
            None => self.rustc.clone(),
        }
    }

    /// zig as people name it: `0.17.1`, or `0.14.1 (chosen by STEVEDORE_ZIG)`.
    fn zig_named(&self) -> String {
        match &self.zig_chosen_by {
            Some(by) => format!("{} (chosen by {by})", self.zig),
            None => self.zig.clone(),
        }
    }

    /// Each tool that differs between `self` (what was recorded) and `now`, in words:
    /// `rustc 1.94.0 (4d91de4e4) there, 1.95.0 (59807616e) here`. Empty when they agree.
    ///
    /// zig's archive digest is compared for the hosts both name: another stevedore may pin
    /// the same zig version from other archives.
    pub(crate) fn differences(&self, now: &Tools, there: &str, here: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut differ = |tool: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{tool} {a} {there}, {b} {here}"));
            }
        };
        differ("rustc", self.rustc_named(), now.rustc_named());
        differ("zig", self.zig_named(), now.zig_named());
        let archives = |tools: &Tools| {
            let mut text = String::new();
            for (host, sha) in &tools.zig_sha256 {
                if self.zig_sha256.contains_key(host) && now.zig_sha256.contains_key(host) {
                    let _ = write!(text, "{host} sha256:{sha} ");
                }
            }
            text.trim_end().to_owned()
        };
        differ("zig's archives", archives(self), archives(now));
        differ(
            "cargo-stevedore",
            self.stevedore.clone(),
            now.stevedore.clone(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tools(rustc: &str, hash: &str) -> Tools {
        Tools {
            stevedore: "0.3.0".into(),
            rustc: rustc.into(),
            rustc_commit_hash: Some(hash.into()),
            zig: "0.17.1".into(),
            zig_chosen_by: None,
            zig_sha256: BTreeMap::from([("linux-x86_64".into(), "ea6c".into())]),
        }
    }

    #[test]
    fn differences_name_each_tool_on_both_sides() {
        let old = tools("1.94.0", "4d91de4e48198da2e33413efdcd9cd2cc0c46688");
        let new = tools("1.95.0", "59807616e1a2b3c4d5e6f708192a3b4c5d6e7f80");
        assert_eq!(
            old.differences(&old, "in the lock", "here"),
            Vec::<String>::new()
        );
        assert_eq!(
            old.differences(&new, "in the lock", "here"),
            ["rustc 1.94.0 (4d91de4e4) in the lock, 1.95.0 (59807616e) here"]
        );
        let chosen = Tools {
            zig: "0.14.1".into(),
            zig_chosen_by: Some("STEVEDORE_ZIG".into()),
            zig_sha256: BTreeMap::new(),
            ..old.clone()
        };
        assert_eq!(
            old.differences(&chosen, "there", "here"),
            ["zig 0.17.1 there, 0.14.1 (chosen by STEVEDORE_ZIG) here"],
            "archives are compared only where both name the host"
        );
        let repinned = Tools {
            zig_sha256: BTreeMap::from([("linux-x86_64".into(), "9999".into())]),
            ..old.clone()
        };
        assert_eq!(
            old.differences(&repinned, "there", "here"),
            ["zig's archives linux-x86_64 sha256:ea6c there, linux-x86_64 sha256:9999 here"]
        );
    }
}
