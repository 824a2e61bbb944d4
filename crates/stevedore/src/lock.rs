//! `stevedore.lock`: the base images a workspace builds on, pinned by digest, and the tools
//! that build its images.
//!
//! It sits beside Cargo.lock and is committed like it. A base named by tag is resolved once and
//! the digest is kept, so later builds (and other machines, and `--offline`) use the same bytes
//! until the user asks for a newer base (`--update-base`, `cargo stevedore lock`). The tools
//! (rustc, zig, stevedore) are recorded by each build, and `--locked` refuses to build with
//! others: the image's bytes depend on them as much as on the base.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::reference::Reference;

mod toolchain;

pub(crate) use toolchain::Tools;

pub const FILE_NAME: &str = "stevedore.lock";
const VERSION: u32 = 1;
const HEADER: &str = "# Base images pinned by digest, and the tools that build the images. Written by\n\
                      # cargo-stevedore; commit it like Cargo.lock. Refresh with `cargo stevedore lock`\n\
                      # or `cargo stevedore build --update-base`.\n";

/// Why the base cannot be pinned: `stevedore.lock` cannot be read or written, or the lock
/// policy ([`Build::locked`](crate::Build::locked), [`Build::offline`](crate::Build::offline),
/// [`Build::update_base`](crate::Build::update_base)) forbids what the build needs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The lock file exists but cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The lock file is not valid TOML of the lock's shape, or pins one base twice.
    #[error("{path} is not a stevedore lock file: {message}; fix it or delete it to pin the bases again")]
    Parse {
        /// The lock file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The lock file was written by a newer stevedore.
    #[error("{path} has version {found}, but this stevedore reads version {VERSION}: update cargo-stevedore")]
    Version {
        /// The lock file.
        path: PathBuf,
        /// The version it has.
        found: u32,
    },
    /// The lock file cannot be written.
    #[error("cannot write {path}")]
    Write {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A locked build found its base not pinned yet.
    #[error(
        "the base {reference} is not pinned in {path}, and --locked forbids changing it: \
         run `cargo stevedore lock` and commit {FILE_NAME}"
    )]
    Unpinned {
        /// The base, as the project names it.
        reference: String,
        /// The lock file.
        path: PathBuf,
    },
    /// A locked build found that its base's tag now names another digest than the pinned one.
    #[error(
        "the base {reference} moved: {path} pins {locked}, the registry now has {current}; \
         --locked forbids changing the lock: run `cargo stevedore lock` (or build with \
         --update-base) to take the new base, or build without --locked to keep the pinned one"
    )]
    Moved {
        /// The base, as the project names it.
        reference: String,
        /// The lock file.
        path: PathBuf,
        /// The digest the lock pins.
        locked: Digest,
        /// The digest the tag names now.
        current: Digest,
    },
    /// A locked build runs other tools (rustc, zig, stevedore) than the lock records.
    #[error(
        "this build's toolchain is not the one {path} records: {differences}. --locked forbids \
         changing the lock: build with the recorded toolchain (for rustc, a rust-toolchain.toml \
         naming it, or --toolchain; for cargo-stevedore, `cargo install cargo-stevedore \
         --locked --version V`), or run `cargo stevedore lock` to record this one and commit \
         {FILE_NAME}"
    )]
    Toolchain {
        /// The lock file.
        path: PathBuf,
        /// Each tool that differs, both versions named, `; ` between them.
        differences: String,
    },
    /// An offline build found its base not pinned, and cannot ask the registry for it.
    #[error(
        "the base {reference} is not pinned in {path}, and --offline cannot ask the registry: \
         build once online (or run `cargo stevedore lock`), or name the base by digest"
    )]
    OfflineUnpinned {
        /// The base, as the project names it.
        reference: String,
        /// The lock file.
        path: PathBuf,
    },
    /// The registry could not say which digest the base's tag names.
    #[error("cannot resolve the base {reference} to a digest")]
    Resolve {
        /// The base, as the project names it.
        reference: String,
        /// Whatever asked the registry (the lock knows no transport, only that it failed).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The build is both offline and asked to update the base; drop one of the two.
    #[error("--update-base asks the registry for the newest base, which --offline forbids")]
    OfflineUpdate,
}

/// How a build treats the lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Resolve tags again and record what they name now (`--update-base`).
    pub update: bool,
    /// Fail rather than change the lock; also check a pinned tag still names its digest.
    pub locked: bool,
    /// Never ask the registry; everything must be pinned already.
    pub offline: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LockedBase {
    reference: String,
    digest: Digest,
}

#[derive(Debug, Serialize, Deserialize)]
struct Document {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    toolchain: Option<Tools>,
    #[serde(default, rename = "base")]
    bases: Vec<LockedBase>,
}

/// The lock file's contents, keyed by the base reference as written in the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockfile {
    path: PathBuf,
    bases: BTreeMap<String, Digest>,
    tools: Option<Tools>,
    changed: bool,
}

/// A base whose pin in `stevedore.lock` is not what its tag names now: what `outdated` lists
/// for a project.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MovedPin {
    /// The base, as the project names it.
    pub base: String,
    /// The digest the lock pins.
    pub pinned: Digest,
    /// The digest its tag names now.
    pub now: Digest,
}

/// What [`Lockfile::record_tools`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolsChange {
    /// The lock already records these tools.
    Same,
    /// The lock recorded none; now it does.
    First,
    /// The lock recorded others, each difference in words; now it records these.
    Changed(Vec<String>),
    /// `--locked`, and the lock records none to check against: nothing was written.
    Unchecked,
}

impl Lockfile {
    /// Each pinned base whose tag `resolve` now answers with another digest. A base written by
    /// digest cannot move and is not asked about.
    pub fn moved<E>(
        &self,
        resolve: impl Fn(&Reference) -> Result<Digest, E>,
    ) -> Result<Vec<MovedPin>, LockError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut moved = Vec::new();
        for (key, pinned) in &self.bases {
            let Ok(base) = key.parse::<Reference>() else {
                continue;
            };
            if base.digest().is_some() {
                continue;
            }
            let now = resolve(&base).map_err(|source| LockError::Resolve {
                reference: key.clone(),
                source: Box::new(source),
            })?;
            if &now != pinned {
                moved.push(MovedPin {
                    base: key.clone(),
                    pinned: pinned.clone(),
                    now,
                });
            }
        }
        Ok(moved)
    }

    /// The lock of the workspace at `workspace_root` (empty when there is none yet).
    pub fn load(workspace_root: &Path) -> Result<Self, LockError> {
        let path = workspace_root.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(LockError::Read { path, source }),
        };
        Self::from_text(path, &text)
    }

    /// The lock whose file at `path` holds `text` (empty or blank: nothing pinned yet).
    pub(crate) fn from_text(path: PathBuf, text: &str) -> Result<Self, LockError> {
        let (bases, tools) = match text.trim().is_empty() {
            true => (BTreeMap::new(), None),
            false => parse(&path, text)?,
        };
        Ok(Lockfile {
            path,
            bases,
            tools,
            changed: false,
        })
    }

    /// The tools the lock records, if it records any.
    pub(crate) fn tools(&self) -> Option<&Tools> {
        self.tools.as_ref()
    }

    /// Checks the tools a build runs (`now`) against the ones recorded: under `--locked` a
    /// difference is an error; otherwise the lock records `now`, as Cargo.lock takes a new
    /// dependency. `--offline` changes nothing here: no network is involved.
    pub(crate) fn record_tools(
        &mut self,
        now: Tools,
        policy: Policy,
    ) -> Result<ToolsChange, LockError> {
        let recorded = match &self.tools {
            None if policy.locked => return Ok(ToolsChange::Unchecked),
            None => ToolsChange::First,
            Some(old) => {
                let differences = old.differences(&now, "in the lock", "here");
                match (differences.is_empty(), policy.locked) {
                    (true, _) => return Ok(ToolsChange::Same),
                    (false, true) => {
                        return Err(LockError::Toolchain {
                            path: self.path.clone(),
                            differences: differences.join("; "),
                        })
                    }
                    (false, false) => ToolsChange::Changed(differences),
                }
            }
        };
        self.tools = Some(now);
        self.changed = true;
        Ok(recorded)
    }

    /// What `base` resolves to under `policy`: the pinned digest, or a fresh one from `resolve`
    /// (which asks the registry), recorded in the lock.
    pub fn pin<E>(
        &mut self,
        base: &Reference,
        policy: Policy,
        resolve: impl FnOnce(&Reference) -> Result<Digest, E>,
    ) -> Result<Digest, LockError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        if let Some(digest) = base.digest() {
            return Ok(digest.clone());
        }
        let key = base.to_string();
        let pinned = self.bases.get(&key).cloned();
        match (policy.offline, policy.update, pinned.clone()) {
            (true, true, _) => return Err(LockError::OfflineUpdate),
            (true, false, None) => {
                return Err(LockError::OfflineUnpinned {
                    reference: key,
                    path: self.path.clone(),
                })
            }
            (true, false, Some(digest)) => return Ok(digest),
            (false, false, Some(digest)) if !policy.locked => return Ok(digest),
            _ => {}
        }
        let current = resolve(base).map_err(|source| LockError::Resolve {
            reference: key.clone(),
            source: Box::new(source),
        })?;
        if policy.locked {
            return match pinned {
                None => Err(LockError::Unpinned {
                    reference: key,
                    path: self.path.clone(),
                }),
                Some(locked) if locked != current => Err(LockError::Moved {
                    reference: key,
                    path: self.path.clone(),
                    locked,
                    current,
                }),
                Some(locked) => Ok(locked),
            };
        }
        if pinned.as_ref() != Some(&current) {
            self.bases.insert(key, current.clone());
            self.changed = true;
        }
        Ok(current)
    }

    /// Keeps only the entries for `references` (what `cargo stevedore lock` found in use).
    pub fn retain(&mut self, references: &[Reference]) {
        let keep: Vec<String> = references.iter().map(ToString::to_string).collect();
        let before = self.bases.len();
        self.bases.retain(|k, _| keep.contains(k));
        self.changed |= self.bases.len() != before;
    }

    /// Writes the lock if it changed: to a temporary file beside it, then renamed, so a reader
    /// (or a concurrent build) sees the old file or the new one, never half of one.
    pub fn save(&mut self) -> Result<(), LockError> {
        if !self.changed {
            return Ok(());
        }
        let fail = |source| LockError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".stevedore.lock.")
            .tempfile_in(dir)
            .map_err(fail)?;
        tmp.write_all(self.render().as_bytes()).map_err(fail)?;
        tmp.as_file().sync_data().map_err(fail)?;
        // tempfile's private 0600 is not a lock file's; Windows has no mode bits (a file
        // there takes its directory's ACL).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
                .map_err(fail)?;
        }
        tmp.persist(&self.path).map_err(|e| fail(e.error))?;
        self.changed = false;
        Ok(())
    }

    pub(crate) fn render(&self) -> String {
        let document = Document {
            version: VERSION,
            toolchain: self.tools.clone(),
            bases: self
                .bases
                .iter()
                .map(|(reference, digest)| LockedBase {
                    reference: reference.clone(),
                    digest: digest.clone(),
                })
                .collect(),
        };
        let body = toml::to_string(&document).expect("a lock document always serializes");
        format!("{HEADER}\n{body}")
    }
}

/// A lock file's pins and tools.
type Parsed = (BTreeMap<String, Digest>, Option<Tools>);

fn parse(path: &Path, text: &str) -> Result<Parsed, LockError> {
    let error = |e: toml::de::Error| LockError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_owned(),
    };
    // The whole file as TOML first: read straight into `Document`, tables it does not know are
    // skipped unchecked, so a file that is not TOML at all (an integer beyond 64 bits there,
    // as the fuzzer found) would pass, and its rest be dropped when the lock is written back.
    let table: toml::Table = toml::from_str(text).map_err(error)?;
    let document: Document = table.try_into().map_err(error)?;
    if document.version != VERSION {
        return Err(LockError::Version {
            path: path.to_path_buf(),
            found: document.version,
        });
    }
    let mut bases = BTreeMap::new();
    for LockedBase { reference, digest } in document.bases {
        // Two pins of one base (a merge that kept both sides) leave the build's base to
        // chance, and writing the lock back would drop one without a word.
        if let Some(other) = bases.get(&reference).filter(|&d| d != &digest) {
            return Err(LockError::Parse {
                path: path.to_path_buf(),
                message: format!("{reference} is pinned twice, to {other} and to {digest}"),
            });
        }
        bases.insert(reference, digest);
    }
    Ok((bases, document.toolchain))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `cargo xtask fuzz` (target `lock`): TOML integers are 64-bit, and an unknown
    /// table is no place to hide a longer one. (The input is also a seed of the target, which
    /// `fuzzing::tests::seeds_pass_their_targets` runs.)
    #[test]
    fn a_file_that_is_not_toml_is_refused_even_where_the_lock_reads_nothing() {
        let text =
            "version = 1\n\n[[7777777777base]]\nrefrneece = \"docker.io/libraxy/alping:3.20\"\n\
                    digest = 777777777777777777777777777777777777";
        let err = Lockfile::from_text(PathBuf::from(FILE_NAME), text).unwrap_err();
        assert!(matches!(err, LockError::Parse { .. }), "{err}");
    }

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn base() -> Reference {
        "registry.example/distroless/static:nonroot"
            .parse()
            .unwrap()
    }

    fn never(_: &Reference) -> Result<Digest, std::io::Error> {
        panic!("the registry must not be asked")
    }

    fn pin(lock: &mut Lockfile, policy: Policy, now: u8) -> Result<Digest, LockError> {
        lock.pin(&base(), policy, |_| Ok::<_, std::io::Error>(digest(now)))
    }

    #[test]
    fn pins_once_then_keeps_the_digest_until_updated() {
        let dir = tempfile::tempdir().unwrap();
        let mut lock = Lockfile::load(dir.path()).unwrap();
        assert_eq!(pin(&mut lock, Policy::default(), 1).unwrap(), digest(1));
        lock.save().unwrap();

        let mut lock = Lockfile::load(dir.path()).unwrap();
        let kept = lock.pin(&base(), Policy::default(), never).unwrap();
        assert_eq!(kept, digest(1), "a pinned tag is not resolved again");
        assert!(!lock.changed);

        let update = Policy {
            update: true,
            ..Policy::default()
        };
        assert_eq!(pin(&mut lock, update, 2).unwrap(), digest(2));
        assert!(lock.changed);
        lock.save().unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.contains(&digest(2).to_string()), "{text}");
        assert!(text.contains("reference = \"registry.example/distroless/static:nonroot\""));
    }

    #[test]
    fn moved_names_the_pins_whose_tag_names_another_digest_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut lock = Lockfile::load(dir.path()).unwrap();
        pin(&mut lock, Policy::default(), 1).unwrap();
        let same = lock.moved(|_| Ok::<_, std::io::Error>(digest(1))).unwrap();
        assert!(same.is_empty(), "{same:?}");
        let moved = lock.moved(|_| Ok::<_, std::io::Error>(digest(2))).unwrap();
        assert_eq!(
            moved,
            [MovedPin {
                base: base().to_string(),
                pinned: digest(1),
                now: digest(2),
            }]
        );
    }

    #[test]
    fn locked_fails_when_the_tag_moved_or_is_not_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let locked = Policy {
            locked: true,
            ..Policy::default()
        };
        let mut lock = Lockfile::load(dir.path()).unwrap();
        assert!(matches!(
            pin(&mut lock, locked, 1),
            Err(LockError::Unpinned { .. })
        ));
        pin(&mut lock, Policy::default(), 1).unwrap();
        assert_eq!(pin(&mut lock, locked, 1).unwrap(), digest(1));
        let err = pin(&mut lock, locked, 2).unwrap_err();
        assert!(matches!(err, LockError::Moved { .. }), "{err}");
        assert!(err.to_string().contains("cargo stevedore lock"), "{err}");
        let both = Policy {
            locked: true,
            update: true,
            offline: false,
        };
        assert!(matches!(
            pin(&mut lock, both, 2),
            Err(LockError::Moved { .. })
        ));
    }

    #[test]
    fn offline_uses_the_pin_or_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let offline = Policy {
            offline: true,
            ..Policy::default()
        };
        let mut lock = Lockfile::load(dir.path()).unwrap();
        let err = lock.pin(&base(), offline, never).unwrap_err();
        assert!(err.to_string().contains("not pinned"), "{err}");
        pin(&mut lock, Policy::default(), 3).unwrap();
        assert_eq!(lock.pin(&base(), offline, never).unwrap(), digest(3));
    }

    #[test]
    fn a_digest_reference_needs_no_lock() {
        let dir = tempfile::tempdir().unwrap();
        let mut lock = Lockfile::load(dir.path()).unwrap();
        let pinned = base().with_digest(digest(9));
        let got = lock.pin(&pinned, Policy::default(), never).unwrap();
        assert_eq!(got, digest(9));
        assert!(!lock.changed);
    }

    #[test]
    fn a_failed_resolve_names_the_base_and_keeps_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let mut lock = Lockfile::load(dir.path()).unwrap();
        let down = |_: &Reference| Err(std::io::Error::other("registry down"));
        let err = lock.pin(&base(), Policy::default(), down).unwrap_err();
        assert!(err.to_string().contains(&base().to_string()), "{err}");
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("registry down"));
        assert!(!lock.changed);
    }

    /// A property of the `lock` fuzz target (every pin read is written back): the second of two
    /// pins of one base used to replace the first silently.
    #[test]
    fn a_base_pinned_twice_is_an_error() {
        let entry = |n| {
            format!(
                "[[base]]\nreference = \"a.io/b:c\"\ndigest = \"{}\"\n",
                digest(n)
            )
        };
        let conflicting = format!("version = 1\n{}{}", entry(1), entry(2));
        let err = Lockfile::from_text(FILE_NAME.into(), &conflicting).unwrap_err();
        assert!(
            err.to_string().contains("a.io/b:c is pinned twice"),
            "{err}"
        );
        let repeated = format!("version = 1\n{}{}", entry(1), entry(1));
        let lock = Lockfile::from_text(FILE_NAME.into(), &repeated).unwrap();
        assert_eq!(lock.bases.len(), 1, "the same pin twice is one pin");
    }

    #[test]
    fn a_broken_lock_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "version = 1\n[[base]]\nreference = 3\n",
        )
        .unwrap();
        let err = Lockfile::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains(FILE_NAME), "{err}");
        std::fs::write(dir.path().join(FILE_NAME), "version = 7\n").unwrap();
        assert!(matches!(
            Lockfile::load(dir.path()),
            Err(LockError::Version { found: 7, .. })
        ));
    }

    fn tools(rustc: &str) -> Tools {
        Tools {
            stevedore: "0.3.0".into(),
            rustc: rustc.into(),
            rustc_commit_hash: None,
            zig: "0.17.1".into(),
            zig_chosen_by: None,
            zig_sha256: BTreeMap::from([("linux-x86_64".into(), "ea6c".into())]),
        }
    }

    #[test]
    fn tools_are_recorded_kept_and_checked_by_locked() {
        let dir = tempfile::tempdir().unwrap();
        let locked = Policy {
            locked: true,
            ..Policy::default()
        };
        let mut lock = Lockfile::load(dir.path()).unwrap();
        let unchecked = lock.record_tools(tools("1.94.0"), locked).unwrap();
        assert_eq!(unchecked, ToolsChange::Unchecked);
        assert!(!lock.changed, "--locked writes nothing");
        let first = lock.record_tools(tools("1.94.0"), Policy::default());
        assert_eq!(first.unwrap(), ToolsChange::First);
        lock.save().unwrap();

        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            text.contains(
                "[toolchain]\nstevedore = \"0.3.0\"\nrustc = \"1.94.0\"\nzig = \"0.17.1\"\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("[toolchain.zig-sha256]\nlinux-x86_64 = \"ea6c\""),
            "{text}"
        );
        let mut lock = Lockfile::load(dir.path()).unwrap();
        assert_eq!(lock.tools(), Some(&tools("1.94.0")));
        let same = lock.record_tools(tools("1.94.0"), locked).unwrap();
        assert_eq!(same, ToolsChange::Same);

        let err = lock.record_tools(tools("1.95.0"), locked).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("rustc 1.94.0 in the lock, 1.95.0 here")
                && message.contains("cargo stevedore lock"),
            "{message}"
        );
        assert_eq!(
            lock.tools(),
            Some(&tools("1.94.0")),
            "--locked keeps the record"
        );
        let changed = lock
            .record_tools(tools("1.95.0"), Policy::default())
            .unwrap();
        assert_eq!(
            changed,
            ToolsChange::Changed(vec!["rustc 1.94.0 in the lock, 1.95.0 here".into()])
        );
        lock.save().unwrap();
        assert_eq!(
            Lockfile::load(dir.path()).unwrap().tools(),
            Some(&tools("1.95.0"))
        );
    }

    /// A lock written before tools were recorded reads as one that records none.
    #[test]
    fn a_lock_without_tools_still_reads() {
        let text = format!(
            "version = 1\n[[base]]\nreference = \"a.io/b:c\"\ndigest = \"{}\"\n",
            digest(1)
        );
        let lock = Lockfile::from_text(FILE_NAME.into(), &text).unwrap();
        assert_eq!(lock.tools(), None);
        assert_eq!(lock.bases.len(), 1);
    }
}
