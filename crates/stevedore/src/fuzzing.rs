//! Entry points for the fuzz targets in `fuzz/` (`cargo xtask fuzz`).
//!
//! Each takes the fuzzer's raw input, runs it through the parser stevedore really uses, and
//! panics when a property the rest of stevedore relies on fails: a value that does not survive
//! being printed and parsed again, a lookup that names a helper with no name, a platform chosen
//! from an index that is not the one asked for. A panic is what libFuzzer reports as a crash.
//!
//! The module exists only under `--cfg fuzzing` (cargo-fuzz passes it) and in unit tests, which
//! replay the committed seeds so it keeps compiling and the seeds keep passing with plain
//! `cargo test`; the public API of a normal build does not change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::{self, ConfigError, Settings, Sources};
use crate::digest::Digest;
use crate::lock::Lockfile;
use crate::reference::Reference;
use crate::resolve::{Found, Target};

/// `stevedore.lock`: a lock stevedore reads is written back as a file that reads the same.
pub fn lock(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = PathBuf::from(crate::lock::FILE_NAME);
    let Ok(lock) = Lockfile::from_text(path.clone(), text) else {
        return;
    };
    let written = lock.render();
    let again = Lockfile::from_text(path, &written).unwrap_or_else(|e| {
        panic!("{text:?} read, but written as {written:?}, which does not: {e}")
    });
    assert_eq!(again, lock, "{text:?} written as {written:?}");
    assert_eq!(again.render(), written, "{text:?}: writing is not stable");
    // Every pin read is written back: of two pins of one reference, one would vanish unseen.
    assert_eq!(
        pins(text),
        pins(&written),
        "{text:?} written as {written:?}"
    );
}

/// The (reference, digest) pairs of a lock file's `[[base]]` tables, read as plain TOML.
fn pins(text: &str) -> BTreeSet<(String, String)> {
    // A blank file (by `str::trim`, which knows more spaces than TOML) is an empty lock.
    if text.trim().is_empty() {
        return BTreeSet::new();
    }
    let document: toml::Table = toml::from_str(text).expect("the lock file is TOML");
    let field = |base: &toml::Value, key: &str| {
        base.get(key)
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let bases = document.get("base").and_then(toml::Value::as_array);
    bases
        .into_iter()
        .flatten()
        .map(|base| (field(base, "reference"), field(base, "digest")))
        .collect()
}

/// `[package.metadata.stevedore]` and `[workspace.metadata.stevedore]` as cargo metadata hands
/// them over: the input is JSON `{"package": TABLE, "workspace": TABLE}`, either optional.
/// Paths in `files` are relative to this repository's Cargo.toml, so seeds can name its files.
pub fn settings(data: &[u8]) {
    let Ok(input) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let (package, workspace) = (input.get("package"), input.get("workspace"));
    if let Ok(settings) = read_settings(package, workspace, &manifest) {
        check_settings(&settings);
    }
    // A table means the same alone in a package, alone in the workspace, or in both.
    if let Some(table) = package {
        let alone = read_settings(Some(table), None, &manifest);
        let inherited = read_settings(None, Some(table), &manifest);
        let both = read_settings(Some(table), Some(table), &manifest);
        same_outcome(&alone, &inherited, "as the workspace's default");
        same_outcome(&alone, &both, "in both tables");
    }
}

fn read_settings(
    package: Option<&serde_json::Value>,
    workspace: Option<&serde_json::Value>,
    manifest: &Path,
) -> Result<Settings, ConfigError> {
    config::settings(&Sources {
        package: package.map(|v| (v, manifest)),
        workspace: workspace.map(|v| (v, manifest)),
        version: "1.2.3",
        revision: Some("0123456789abcdef0123456789abcdef01234567"),
        repository_override: None,
        tags_override: None,
    })
}

/// What the build takes from the settings as given: image names that survive printing, and
/// file modes that fit a tar header's permission bits.
fn check_settings(settings: &Settings) {
    for tag in &settings.tags {
        let printed = tag.to_string();
        let again: Reference = printed
            .parse()
            .unwrap_or_else(|e| panic!("{printed:?} does not parse again: {e}"));
        assert_eq!(&again, tag, "{printed:?}");
        assert!(tag.tag().is_some(), "{tag} has no tag");
    }
    for file in &settings.image.files {
        assert!(file.mode <= 0o7777, "mode {:o} for {}", file.mode, file.dst);
    }
}

fn same_outcome(a: &Result<Settings, ConfigError>, b: &Result<Settings, ConfigError>, how: &str) {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.base, b.base, "base differs {how}");
            assert_eq!(a.platforms, b.platforms, "platforms differ {how}");
            assert_eq!(a.tags, b.tags, "tags differ {how}");
            assert_eq!(a.image, b.image, "image settings differ {how}");
        }
        (Err(a), Err(b)) => assert_eq!(
            (&a.key, &a.message),
            (&b.key, &b.message),
            "another error {how}"
        ),
        (a, b) => panic!("the same table gives {a:?} alone, {b:?} {how}"),
    }
}

/// `resolve`'s YAML scanner on any text: it never panics; an error names a line and prints
/// nothing a terminal acts on; each reference found is, byte for byte, the reference as written;
/// replacing them changes only their spans (a document without any comes back whole) and
/// leaves nothing that reads as a reference.
pub fn resolve(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let found = match crate::resolve::find(text) {
        Ok(found) => found,
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("line "), "{message:?}");
            assert!(!message.chars().any(char::is_control), "{message:?}");
            return;
        }
    };
    let mut at = 0;
    for f in &found {
        assert!(
            at <= f.span.start && f.span.start <= f.span.end,
            "{text:?}: {found:?}"
        );
        assert_eq!(
            text.get(f.span.clone()),
            Some(&*f.target.to_string()),
            "{text:?}"
        );
        at = f.span.end;
    }
    let resolved = crate::resolve::replace(text, &found, digest_of);
    if let Err(what) = only_spans_changed(text, &found, &resolved) {
        panic!("{text:?} resolved as {resolved:?}: {what}");
    }
    let again = crate::resolve::find(&resolved);
    assert!(
        again.as_ref().is_ok_and(Vec::is_empty),
        "{text:?} resolved as {resolved:?}, which has {again:?}"
    );
}

/// What a build would put in a reference's place.
fn digest_of(target: &Target) -> String {
    let name = format!(
        "{}/{}",
        target.package.as_deref().unwrap_or("current"),
        target.bin.as_deref().unwrap_or("default")
    );
    format!("registry.example/{name}@{}", Digest::of(name.as_bytes()))
}

/// `resolved` is `text` with each span of `found` replaced by [`digest_of`] its target.
fn only_spans_changed(text: &str, found: &[Found], resolved: &str) -> Result<(), String> {
    let (mut from, mut to) = (0, 0);
    for f in found {
        let kept = &text[from..f.span.start];
        let put = digest_of(&f.target);
        if resolved.get(to..to + kept.len()) != Some(kept) {
            return Err(format!("the text before byte {} changed", f.span.start));
        }
        to += kept.len();
        if resolved.get(to..to + put.len()) != Some(&*put) {
            return Err(format!(
                "the reference at byte {} is not {put}",
                f.span.start
            ));
        }
        to += put.len();
        from = f.span.end;
    }
    match resolved.get(to..) == Some(&text[from..]) {
        true => Ok(()),
        false => Err(format!("the text after byte {from} changed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed seed passes its target, so the seeds stay valid inputs and this module
    /// keeps compiling without `--cfg fuzzing`.
    #[test]
    fn seeds_pass_their_targets() {
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 3] =
            [("lock", lock), ("settings", settings), ("resolve", resolve)];
        for (name, target) in targets {
            let dir = seeds.join(name);
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("a readable seed directory").path());
            let mut count = 0;
            for path in entries {
                target(&std::fs::read(&path).expect("a readable seed"));
                count += 1;
            }
            assert!(count >= 3, "{name}: only {count} seeds");
        }
    }
}
