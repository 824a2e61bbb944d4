//! `cargo metadata`'s answer kept from the last build of the same manifest and flags, used
//! while nothing it was read from has changed: a no-op build then starts cargo at once instead
//! of after metadata's 80–100 ms (a 70-crate service), most of stevedore's own cost on it.
//!
//! What the answer is read from, and so what is checked, by content: Cargo.lock, the manifest
//! of every package in the workspace or reached by path and the names in the directories cargo
//! finds its targets in (a new `src/bin/NAME.rs` is a new binary), the directories a `members`
//! glob lists, cargo's config files and the rust-toolchain files from the working directory and the
//! workspace root upwards (and `$CARGO_HOME`'s config), the cargo that answered (path and file
//! identity), the environment cargo reads (`CARGO_*` but its terminal settings, `RUSTUP_TOOLCHAIN`,
//! `HOME`) and the working directory. Registry and git packages are pinned by Cargo.lock. A
//! config file's `include` is not followed. An answer is kept only when no file it was read
//! from changed while cargo ran, and a cache that cannot be read or written is not used.

use std::path::{Path, PathBuf};

use cargo_metadata::Metadata;

use crate::digest::Digest;
use crate::toolchain::files::{tools_dir, write_file};
use crate::toolchain::identity;

/// The kept answer for `cargo` run with `args`, when everything it was read from is as it
/// was; else `run`'s, kept for next time; parsed by `parse` either way.
pub(super) fn metadata<E>(
    cargo: &Path,
    args: &[String],
    run: impl FnOnce() -> Result<String, E>,
    parse: impl Fn(&str) -> Result<Metadata, E>,
) -> Result<Metadata, E> {
    let slot = tools_dir(None).map(|dir| dir.join("metadata").join(slot_name(cargo, args)));
    if let Some(kept) = slot.as_deref().and_then(|s| still_true(s, cargo, args)) {
        if let Ok(metadata) = parse(&kept) {
            return Ok(metadata);
        }
    }
    let started = std::time::SystemTime::now();
    let json = run()?;
    let metadata = parse(&json)?;
    if let Some(slot) = slot {
        let inputs = inputs(&metadata);
        if unchanged_since(&inputs, started) {
            let record = Record {
                key: key(cargo, args, &inputs),
                inputs,
            };
            // Losing the answer costs one `cargo metadata` next time, nothing else.
            let _ = keep(&slot, &record, &json);
        }
    }
    Ok(metadata)
}

/// What the kept answer was read from, and the key over them then.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    key: String,
    inputs: Vec<Input>,
}

/// One thing an answer was read from.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
enum Input {
    /// A file, by content (absent counts: creating it changes the answer).
    File(PathBuf),
    /// The names in a directory (a `members` glob's).
    Listing(PathBuf),
}

/// One slot per cargo, manifest and flags, so the cache does not grow with each edit.
fn slot_name(cargo: &Path, args: &[String]) -> String {
    let what = format!("{}\n{}", cargo.display(), args.join("\n"));
    Digest::of(what.as_bytes()).hex().to_owned()
}

/// The kept JSON, if its record's key is the key over its inputs now.
fn still_true(slot: &Path, cargo: &Path, args: &[String]) -> Option<String> {
    let mut text = std::fs::read_to_string(slot).ok()?;
    // The JSON is most of the file (hundreds of KB for a real service): split off, not copied.
    let json = text.split_off(text.find('\n')? + 1);
    let record: Record = serde_json::from_str(&text).ok()?;
    (record.key == key(cargo, args, &record.inputs)).then_some(json)
}

fn keep(slot: &Path, record: &Record, json: &str) -> std::io::Result<()> {
    let mut text = serde_json::to_string(record)?;
    text.push('\n');
    text.push_str(json);
    write_file(slot, text.as_bytes(), 0o644)
}

/// Everything the answer in `metadata` was read from.
fn inputs(metadata: &Metadata) -> Vec<Input> {
    let root = metadata.workspace_root.as_std_path();
    // Path packages (the workspace's and those reached by path): their manifests and the
    // directories their targets are found in.
    let local: Vec<&Path> = metadata
        .packages
        .iter()
        .filter(|p| p.source.is_none())
        .map(|p| p.manifest_path.as_std_path())
        .collect();
    let mut files = vec![root.join("Cargo.lock")];
    files.extend(local.iter().map(|m| m.to_path_buf()));
    let mut dirs: Vec<PathBuf> = std::env::current_dir().into_iter().collect();
    dirs.push(root.to_path_buf());
    for dir in &dirs {
        for ancestor in dir.ancestors() {
            for name in [
                ".cargo/config.toml",
                ".cargo/config",
                "rust-toolchain.toml",
                "rust-toolchain",
            ] {
                files.push(ancestor.join(name));
            }
        }
    }
    if let Some(home) = crate::toolchain::files::home_dir("CARGO_HOME", ".cargo") {
        files.extend([home.join("config.toml"), home.join("config")]);
    }
    files.sort();
    files.dedup();
    let mut inputs: Vec<Input> = files.into_iter().map(Input::File).collect();
    inputs.extend(member_globs(root).into_iter().map(Input::Listing));
    let package_dirs = local.iter().filter_map(|m| m.parent());
    inputs.extend(package_dirs.flat_map(target_dirs).map(Input::Listing));
    inputs
}

/// The directories whose files cargo finds targets by (`build.rs`, `src/main.rs`,
/// `src/bin/NAME.rs`, `src/bin/NAME/main.rs`, examples, tests, benches): a new binary changes
/// the answer with no manifest changed.
fn target_dirs(package: &Path) -> Vec<PathBuf> {
    let bins = package.join("src/bin");
    let mut dirs = vec![package.to_path_buf(), package.join("src"), bins.clone()];
    dirs.extend(["examples", "tests", "benches"].map(|d| package.join(d)));
    let mut bin_dirs: Vec<PathBuf> = std::fs::read_dir(&bins)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    bin_dirs.sort();
    dirs.extend(bin_dirs);
    dirs
}

/// The directories whose entries a `workspace.members` glob matches: a new member there
/// changes the workspace without any file above changing.
fn member_globs(root: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(root.join("Cargo.toml")) else {
        return Vec::new();
    };
    let Ok(manifest) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let members = manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array());
    let mut dirs = Vec::new();
    for pattern in members.into_iter().flatten().filter_map(|m| m.as_str()) {
        let mut dir = root.to_path_buf();
        for part in pattern.split('/') {
            if part.contains(['*', '?', '[']) {
                dirs.push(dir);
                break;
            }
            dir.push(part);
        }
    }
    dirs
}

/// Whether no input file was modified after `started` (a file written while cargo ran may
/// not be what the answer describes).
fn unchanged_since(inputs: &[Input], started: std::time::SystemTime) -> bool {
    inputs.iter().all(|input| {
        let Input::File(path) = input else {
            return true;
        };
        match std::fs::metadata(path).and_then(|m| m.modified()) {
            Ok(modified) => modified < started,
            Err(_) => true,
        }
    })
}

/// The key over the inputs as they are now, cargo and the environment it reads.
fn key(cargo: &Path, args: &[String], inputs: &[Input]) -> String {
    let mut text = format!(
        "stevedore metadata 1\n{}\n{}\n{}\n",
        cargo.display(),
        identity(cargo).unwrap_or_default(),
        args.join("\n")
    );
    let cwd = std::env::current_dir().unwrap_or_default();
    text.push_str(&format!("cwd {}\n", cwd.display()));
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| read_by_cargo(k))
        .collect();
    vars.sort();
    for (k, v) in vars {
        text.push_str(&format!("env {k}={v}\n"));
    }
    for input in inputs {
        let line = match input {
            Input::File(path) => match std::fs::read(path) {
                Ok(bytes) => format!("file {} {}", path.display(), Digest::of(&bytes)),
                Err(_) => format!("file {} absent", path.display()),
            },
            Input::Listing(dir) => format!("listing {} {}", dir.display(), listing(dir)),
        };
        text.push_str(&line);
        text.push('\n');
    }
    Digest::of(text.as_bytes()).hex().to_owned()
}

/// The variables that can change what `cargo metadata` answers.
fn read_by_cargo(name: &str) -> bool {
    (name.starts_with("CARGO") && !name.starts_with("CARGO_TERM_"))
        || matches!(
            name,
            "RUSTUP_TOOLCHAIN" | "HOME" | "RUSTC" | "RUSTC_WRAPPER"
        )
}

fn listing(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return "absent".into();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_globs_name_the_directory_of_the_first_glob_part() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = "[workspace]\nmembers = [\"crates/*\", \"tools/x\", \"a/b?/c\"]\n";
        std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
        assert_eq!(
            member_globs(dir.path()),
            [dir.path().join("crates"), dir.path().join("a")]
        );
    }

    #[test]
    fn the_key_changes_with_a_file_its_absence_and_a_listing() {
        let dir = tempfile::tempdir().unwrap();
        let (file, members) = (dir.path().join("Cargo.lock"), dir.path().join("crates"));
        std::fs::create_dir(&members).unwrap();
        let inputs = [Input::File(file.clone()), Input::Listing(members.clone())];
        let cargo = Path::new("/no/cargo");
        let args = ["metadata".to_owned()];
        let absent = key(cargo, &args, &inputs);
        std::fs::write(&file, "a").unwrap();
        let a = key(cargo, &args, &inputs);
        assert_ne!(absent, a);
        assert_eq!(a, key(cargo, &args, &inputs));
        std::fs::create_dir(members.join("new")).unwrap();
        let listed = key(cargo, &args, &inputs);
        assert_ne!(a, listed);
        std::fs::write(&file, "b").unwrap();
        assert_ne!(listed, key(cargo, &args, &inputs));
        assert_ne!(
            listed,
            key(cargo, &["metadata".into(), "--locked".into()], &inputs)
        );
    }
}
