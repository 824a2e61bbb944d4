//! Settings a project keeps in its Cargo.toml: `[package.metadata.stevedore]`, with defaults
//! from `[workspace.metadata.stevedore]`. Flags beat the environment, which beats these.
//!
//! Every mistake names the key and the file: `unknown field`, a wrong type, a bad platform or
//! reference, a file to copy that does not exist.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::oci::Compression;
use crate::platform::{GlibcVersion, Libc, Platform};
use crate::reference::{Base, Reference};

/// The table as written; every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    base: Option<String>,
    platforms: Option<Vec<String>>,
    libc: Option<String>,
    glibc: Option<String>,
    repository: Option<String>,
    tags: Option<Vec<String>>,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    ports: Option<Vec<u16>>,
    labels: Option<BTreeMap<String, String>>,
    user: Option<String>,
    files: Option<Vec<FileEntry>>,
    annotations: Option<BTreeMap<String, String>>,
    compression: Option<String>,
    auditable: Option<bool>,
    #[serde(rename = "split-debuginfo")]
    split_debuginfo: Option<bool>,
    /// The signing key's path, relative to the Cargo.toml that names it.
    #[serde(rename = "sign-key")]
    sign_key: Option<PathBuf>,
    healthcheck: Option<HealthcheckEntry>,
}

/// `healthcheck = { cmd = [...], interval = "30s", timeout = "5s", start-period = "10s",
/// retries = 3 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HealthcheckEntry {
    cmd: Vec<String>,
    interval: Option<String>,
    timeout: Option<String>,
    start_period: Option<String>,
    retries: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    src: PathBuf,
    dst: String,
    mode: Option<Mode>,
}

/// A file mode: an integer (TOML `0o644`) or an octal string (`"0644"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Mode {
    Number(u32),
    Octal(String),
}

/// What the image's runtime config and layer get from the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageSettings {
    /// The image's Cmd: arguments after the entrypoint.
    pub args: Option<Vec<String>>,
    /// Environment variables for the process, over the base's.
    pub env: BTreeMap<String, String>,
    /// TCP ports the image exposes, beside the base's.
    pub ports: Vec<u16>,
    /// The image config's labels, over the base's and stevedore's own.
    pub labels: BTreeMap<String, String>,
    /// Who the process runs as (`UID`, `UID:GID` or a name); `None`: the base's user, else
    /// distroless's nonroot user.
    pub user: Option<String>,
    /// Files copied into the application layer.
    pub files: Vec<ExtraFile>,
    /// Manifest annotations beside the ones stevedore writes.
    pub annotations: BTreeMap<String, String>,
    /// Docker's `Healthcheck`, which docker and podman run; `None` writes no field at all, so
    /// images without one keep their digests.
    pub healthcheck: Option<Healthcheck>,
}

/// A health check as docker's image config holds it: durations in nanoseconds, 0 for the
/// engine's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["CMD", program, args…]` (exec form, no shell).
    pub test: Vec<String>,
    /// Nanoseconds between two checks.
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: u64,
    /// Nanoseconds a check may run before it counts as failed.
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// Nanoseconds after the start during which failed checks do not count.
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: u64,
    /// Failed checks in a row that make the container unhealthy.
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Image settings given as flags (`--label`, `--env`, …): they beat Cargo.toml's. Maps add to
/// the settings' entries (a flag's value wins for its key); the others replace the setting.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImageFlags {
    /// `--label KEY=VALUE`: the image config's labels.
    pub labels: BTreeMap<String, String>,
    /// `--annotation KEY=VALUE`: the manifest's and index's annotations.
    pub annotations: BTreeMap<String, String>,
    /// `--env KEY=VALUE`: the process's environment.
    pub env: BTreeMap<String, String>,
    /// `--user`: who the process runs as; none: the setting, else the base's nonroot user.
    pub user: Option<String>,
    /// Empty: not given.
    pub ports: Vec<u16>,
    /// Empty: not given.
    pub args: Vec<String>,
    /// `--healthcheck`: a command, or none at all.
    pub healthcheck: Option<HealthcheckFlag>,
}

/// What `--healthcheck` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthcheckFlag {
    /// `--healthcheck 'PROGRAM ARG…'`: the command (split on blanks); the timings stay those of
    /// Cargo.toml's `healthcheck`, if any.
    Command(Vec<String>),
    /// `--healthcheck none`: no health check, whatever Cargo.toml says (docker's
    /// `HEALTHCHECK NONE`).
    None,
}

impl std::str::FromStr for HealthcheckFlag {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let words: Vec<String> = text.split_whitespace().map(String::from).collect();
        match words.as_slice() {
            [] => Err(
                "an empty health check: give 'PROGRAM ARG…', or `none` for no health check".into(),
            ),
            [none] if none.eq_ignore_ascii_case("none") => Ok(HealthcheckFlag::None),
            _ => Ok(HealthcheckFlag::Command(words)),
        }
    }
}

impl ImageSettings {
    /// These settings with `flags` applied over them.
    pub fn with_flags(mut self, flags: &ImageFlags) -> ImageSettings {
        self.labels.extend(flags.labels.clone());
        self.annotations.extend(flags.annotations.clone());
        self.env.extend(flags.env.clone());
        if flags.user.is_some() {
            self.user = flags.user.clone();
        }
        if !flags.ports.is_empty() {
            self.ports = flags.ports.clone();
        }
        if !flags.args.is_empty() {
            self.args = Some(flags.args.clone());
        }
        match &flags.healthcheck {
            Some(HealthcheckFlag::Command(cmd)) => {
                let mut check = self.healthcheck.take().unwrap_or_default();
                check.test = exec_form(cmd.clone());
                self.healthcheck = Some(check);
            }
            Some(HealthcheckFlag::None) => self.healthcheck = None,
            None => {}
        }
        self
    }
}

fn exec_form(cmd: Vec<String>) -> Vec<String> {
    std::iter::once("CMD".to_owned()).chain(cmd).collect()
}

/// `30s`, `1m30s`, `500ms`, `2h` → nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a duration: write it like 30s, 1m30s, 500ms or 2h");
    let (mut total, mut rest) = (0u64, text.trim());
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

fn healthcheck(entry: &HealthcheckEntry) -> Result<Healthcheck, (String, String)> {
    if entry.cmd.is_empty() {
        return Err((
            "healthcheck.cmd".into(),
            "the command is empty: give the program and its arguments, e.g. [\"/usr/local/bin/app\", \"--health\"]".into(),
        ));
    }
    let duration = |key: &str, value: &Option<String>| match value {
        None => Ok(0),
        Some(v) => parse_duration(v).map_err(|e| (format!("healthcheck.{key}"), e)),
    };
    Ok(Healthcheck {
        test: exec_form(entry.cmd.clone()),
        interval: duration("interval", &entry.interval)?,
        timeout: duration("timeout", &entry.timeout)?,
        start_period: duration("start-period", &entry.start_period)?,
        retries: entry.retries.unwrap_or(0).into(),
    })
}

/// A file copied into the application layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExtraFile {
    /// The file on this machine (a path in Cargo.toml is relative to the Cargo.toml).
    pub src: PathBuf,
    /// Its path in the image; a leading `/` is optional.
    pub dst: String,
    /// Its permission bits, e.g. `0o644` (the default).
    pub mode: u32,
}

/// The settings, checked and resolved against the package.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub base: Option<Base>,
    pub platforms: Vec<Platform>,
    /// `libc = "gnu"`: build against glibc.
    pub libc: Option<Libc>,
    /// `glibc = "2.36"`: the glibc to link against in place of the base's.
    pub glibc: Option<GlibcVersion>,
    /// Image names from `repository` and `tags`, placeholders filled in.
    pub tags: Vec<Reference>,
    pub image: ImageSettings,
    /// How the application layer is compressed.
    pub compression: Option<Compression>,
    /// `auditable = false`: embed no dependency list in the binary.
    pub auditable: Option<bool>,
    /// `split-debuginfo = true`: strip the binary, ship its DWARF as a referrer.
    pub split_debuginfo: Option<bool>,
    /// `sign-key`, resolved against the directory of the Cargo.toml that names it.
    pub sign_key: Option<PathBuf>,
}

/// A setting in Cargo.toml (or `STEVEDORE_REPO`) is unknown, of the wrong type or invalid.
#[derive(Debug, thiserror::Error)]
#[error("invalid `{key}` in [{table}] of {}: {message}", file.display())]
pub struct ConfigError {
    /// The table: `package.metadata.stevedore`, `workspace.metadata.stevedore`,
    /// `environment` for `STEVEDORE_REPO`, or `command line` for `--tags`.
    pub table: &'static str,
    /// The Cargo.toml the setting is in (`STEVEDORE_REPO` for the variable).
    pub file: PathBuf,
    /// The key, e.g. `healthcheck.interval`; `(table)` when the table itself is wrong.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

/// Where the settings come from and what fills their placeholders.
pub struct Sources<'a> {
    pub package: Option<(&'a serde_json::Value, &'a Path)>,
    pub workspace: Option<(&'a serde_json::Value, &'a Path)>,
    pub version: &'a str,
    pub revision: Option<&'a str>,
    /// `STEVEDORE_REPO`, which wins over `repository`.
    pub repository_override: Option<&'a str>,
    /// Tag names given on the command line (`--tags`), which win over `tags`.
    pub tags_override: Option<&'a [String]>,
}

const PACKAGE: &str = "package.metadata.stevedore";
const WORKSPACE: &str = "workspace.metadata.stevedore";

/// Reads, merges (package over workspace, key by key) and checks the settings.
pub fn settings(sources: &Sources) -> Result<Settings, ConfigError> {
    let workspace = match sources.workspace {
        Some((value, file)) => Some((table(value, file, WORKSPACE)?, file)),
        None => None,
    };
    let package = match sources.package {
        Some((value, file)) => Some((table(value, file, PACKAGE)?, file)),
        None => None,
    };
    // Each key is checked against the file it came from, so errors point at the right one.
    let origin = |has: &dyn Fn(&Table) -> bool| -> Origin {
        match (&package, &workspace) {
            (Some((t, f)), _) if has(t) => Origin {
                table: PACKAGE,
                file: f.to_path_buf(),
            },
            (_, Some((t, f))) if has(t) => Origin {
                table: WORKSPACE,
                file: f.to_path_buf(),
            },
            _ => Origin {
                table: PACKAGE,
                file: PathBuf::from("Cargo.toml"),
            },
        }
    };
    let merged = merge(
        workspace.as_ref().map(|(t, _)| t),
        package.as_ref().map(|(t, _)| t),
    );

    let base = match &merged.base {
        Some(b) => Some(
            b.parse::<Base>()
                .map_err(|e| origin(&|t| t.base.is_some()).error("base", e))?,
        ),
        None => None,
    };
    let mut platforms = Vec::new();
    for (i, p) in merged.platforms.iter().flatten().enumerate() {
        let parsed = p.parse::<Platform>();
        platforms.push(parsed.map_err(|e| {
            origin(&|t| t.platforms.is_some()).error(&format!("platforms[{i}]"), e)
        })?);
    }
    let libc = match &merged.libc {
        Some(l) => Some(
            l.parse::<Libc>()
                .map_err(|e| origin(&|t| t.libc.is_some()).error("libc", e))?,
        ),
        None => None,
    };
    let glibc = match &merged.glibc {
        Some(v) => Some(
            v.parse::<GlibcVersion>()
                .map_err(|e| origin(&|t| t.glibc.is_some()).error("glibc", e))?,
        ),
        None => None,
    };
    let compression = match &merged.compression {
        Some(c) => Some(
            c.parse::<Compression>()
                .map_err(|e| origin(&|t| t.compression.is_some()).error("compression", e))?,
        ),
        None => None,
    };
    let tags = image_names(
        &merged,
        sources,
        &origin(&|t| t.tags.is_some() || t.repository.is_some()),
    )?;
    let mut files = Vec::new();
    let files_origin = origin(&|t| t.files.is_some());
    for (i, f) in merged.files.iter().flatten().enumerate() {
        files.push(
            extra_file(f, &files_origin.file)
                .map_err(|e| files_origin.error(&format!("files[{i}]"), e))?,
        );
    }
    let image = ImageSettings {
        args: merged.args.clone(),
        env: merged.env.clone().unwrap_or_default(),
        ports: merged.ports.clone().unwrap_or_default(),
        labels: merged.labels.clone().unwrap_or_default(),
        user: merged.user.clone(),
        files,
        annotations: merged.annotations.clone().unwrap_or_default(),
        healthcheck: match &merged.healthcheck {
            Some(entry) => Some(healthcheck(entry).map_err(|(key, message)| {
                origin(&|t| t.healthcheck.is_some()).error(&key, message)
            })?),
            None => None,
        },
    };
    let sign_key = merged.sign_key.as_ref().map(|key| {
        let file = origin(&|t| t.sign_key.is_some()).file;
        file.parent().unwrap_or(Path::new(".")).join(key)
    });
    Ok(Settings {
        base,
        platforms,
        libc,
        glibc,
        tags,
        image,
        compression,
        auditable: merged.auditable,
        split_debuginfo: merged.split_debuginfo,
        sign_key,
    })
}

/// Which table and file a key was read from.
struct Origin {
    table: &'static str,
    file: PathBuf,
}

impl Origin {
    fn error(&self, key: &str, message: impl ToString) -> ConfigError {
        ConfigError {
            table: self.table,
            file: self.file.clone(),
            key: key.to_owned(),
            message: message.to_string(),
        }
    }
}

fn table(
    value: &serde_json::Value,
    file: &Path,
    table: &'static str,
) -> Result<Table, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ConfigError {
            table,
            file: file.to_path_buf(),
            key: if path == "." { "(table)".into() } else { path },
            message: e.into_inner().to_string(),
        }
    })
}

fn merge(workspace: Option<&Table>, package: Option<&Table>) -> Table {
    let (w, p) = (
        workspace.cloned().unwrap_or_default(),
        package.cloned().unwrap_or_default(),
    );
    Table {
        base: p.base.or(w.base),
        platforms: p.platforms.or(w.platforms),
        libc: p.libc.or(w.libc),
        glibc: p.glibc.or(w.glibc),
        repository: p.repository.or(w.repository),
        tags: p.tags.or(w.tags),
        args: p.args.or(w.args),
        env: p.env.or(w.env),
        ports: p.ports.or(w.ports),
        labels: p.labels.or(w.labels),
        user: p.user.or(w.user),
        files: p.files.or(w.files),
        compression: p.compression.or(w.compression),
        annotations: p.annotations.or(w.annotations),
        healthcheck: p.healthcheck.or(w.healthcheck),
        auditable: p.auditable.or(w.auditable),
        split_debuginfo: p.split_debuginfo.or(w.split_debuginfo),
        sign_key: p.sign_key.or(w.sign_key),
    }
}

/// `repository:tag` for every tag template, `{version}` and `{git_sha}` filled in.
fn image_names(
    merged: &Table,
    sources: &Sources,
    origin: &Origin,
) -> Result<Vec<Reference>, ConfigError> {
    let Some(repository) = sources.repository_override.or(merged.repository.as_deref()) else {
        return Ok(Vec::new());
    };
    let templates = match sources.tags_override {
        Some(names) => names.to_vec(),
        None => merged
            .tags
            .clone()
            .unwrap_or_else(|| vec!["latest".to_owned()]),
    };
    let mut names = Vec::new();
    for (i, template) in templates.iter().enumerate() {
        let key = format!("tags[{i}]");
        let tag = template.replace("{version}", sources.version);
        let tag = match (tag.contains("{git_sha}"), sources.revision) {
            (false, _) => tag,
            (true, Some(rev)) => tag.replace("{git_sha}", &rev[..rev.len().min(12)]),
            (true, None) => {
                return Err(origin.error(
                    &key,
                    "{git_sha} needs the project to be a git checkout with a commit",
                ))
            }
        };
        let reference = format!("{repository}:{tag}")
            .parse::<Reference>()
            .map_err(
                |e| match (sources.tags_override, sources.repository_override) {
                    (Some(_), _) => ConfigError {
                        table: "command line",
                        file: "--tags".into(),
                        key: format!("--tags {template}"),
                        message: e.to_string(),
                    },
                    (None, Some(_)) => ConfigError {
                        table: "environment",
                        file: "STEVEDORE_REPO".into(),
                        key: "STEVEDORE_REPO".into(),
                        message: e.to_string(),
                    },
                    (None, None) => origin.error(&key, e),
                },
            )?;
        names.push(reference);
    }
    Ok(names)
}

fn extra_file(entry: &FileEntry, manifest: &Path) -> Result<ExtraFile, String> {
    // Paths in Cargo.toml are relative to it.
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let src = dir.join(&entry.src);
    if !src.is_file() {
        return Err(format!(
            "`src` {} is not a file (paths are relative to {})",
            src.display(),
            dir.display()
        ));
    }
    let mode = match &entry.mode {
        None => 0o644,
        Some(Mode::Number(n)) => *n,
        Some(Mode::Octal(s)) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .map_err(|_| format!("`mode` {s:?} is not an octal mode like \"0644\""))?,
    };
    if mode > 0o7777 {
        return Err(format!(
            "`mode` {mode:o} is not a file mode (at most 7777 octal)"
        ));
    }
    Ok(ExtraFile {
        src,
        dst: entry.dst.clone(),
        mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sources<'a>(
        package: &'a serde_json::Value,
        workspace: Option<&'a serde_json::Value>,
    ) -> Sources<'a> {
        Sources {
            package: Some((package, Path::new("/p/Cargo.toml"))),
            workspace: workspace.map(|w| (w, Path::new("/w/Cargo.toml"))),
            version: "1.2.3",
            revision: Some("0123456789abcdef0123"),
            repository_override: None,
            tags_override: None,
        }
    }

    #[test]
    fn merges_package_over_workspace_and_fills_placeholders() {
        let package = json!({"repository": "ghcr.io/me/app", "tags": ["{version}", "{git_sha}"], "ports": [8080]});
        let workspace = json!({"base": "scratch", "ports": [9], "env": {"A": "1"}});
        let s = settings(&sources(&package, Some(&workspace))).unwrap();
        assert_eq!(s.base, Some(Base::Scratch));
        assert_eq!(s.image.ports, [8080]);
        assert_eq!(s.image.env["A"], "1");
        let tags: Vec<String> = s.tags.iter().map(ToString::to_string).collect();
        assert_eq!(
            tags,
            ["ghcr.io/me/app:1.2.3", "ghcr.io/me/app:0123456789ab"]
        );
    }

    #[test]
    fn tag_names_from_the_command_line_replace_the_settings_tags() {
        let package = json!({"repository": "ghcr.io/me/app", "tags": ["{version}"]});
        let names = ["v1".to_owned(), "{git_sha}".to_owned()];
        let s = settings(&Sources {
            tags_override: Some(&names),
            ..sources(&package, None)
        })
        .unwrap();
        let tags: Vec<String> = s.tags.iter().map(ToString::to_string).collect();
        assert_eq!(tags, ["ghcr.io/me/app:v1", "ghcr.io/me/app:0123456789ab"]);

        let bad = ["no/slash".to_owned()];
        let e = settings(&Sources {
            tags_override: Some(&bad),
            ..sources(&package, None)
        })
        .unwrap_err();
        assert_eq!(
            (e.table, e.key.as_str()),
            ("command line", "--tags no/slash")
        );
    }

    #[test]
    fn healthcheck_durations_are_nanoseconds_and_flags_win() {
        let package = json!({"healthcheck": {"cmd": ["/app", "--health"], "interval": "1m30s",
                             "timeout": "500ms", "retries": 3}, "env": {"A": "1", "B": "2"},
                             "ports": [80]});
        let s = settings(&sources(&package, None)).unwrap();
        let check = s.image.healthcheck.clone().unwrap();
        assert_eq!(check.test, ["CMD", "/app", "--health"]);
        assert_eq!(
            (check.interval, check.timeout),
            (90_000_000_000, 500_000_000)
        );
        assert_eq!((check.start_period, check.retries), (0, 3));
        let json = serde_json::to_value(&check).unwrap();
        assert_eq!(
            json,
            json!({"Test": ["CMD", "/app", "--health"], "Interval": 90_000_000_000u64,
                   "Timeout": 500_000_000, "Retries": 3})
        );
        let flags = ImageFlags {
            env: BTreeMap::from([("B".into(), "flag".into())]),
            ports: vec![8080],
            healthcheck: Some("/app  ping".parse().unwrap()),
            ..ImageFlags::default()
        };
        let none = ImageFlags {
            healthcheck: Some("NONE".parse().unwrap()),
            ..ImageFlags::default()
        };
        assert_eq!(s.image.clone().with_flags(&none).healthcheck, None);
        assert!(" "
            .parse::<HealthcheckFlag>()
            .unwrap_err()
            .contains("`none`"));
        let image = s.image.with_flags(&flags);
        assert_eq!(image.env["A"], "1");
        assert_eq!(image.env["B"], "flag");
        assert_eq!(image.ports, [8080]);
        let check = image.healthcheck.unwrap();
        assert_eq!(check.test, ["CMD", "/app", "ping"]);
        assert_eq!(check.retries, 3, "the timings stay");
        let err = settings(&sources(
            &json!({"healthcheck": {"cmd": ["/a"], "interval": "30"}}),
            None,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`healthcheck.interval`") && err.contains("not a duration"),
            "{err}"
        );
        assert!(parse_duration("2h").is_ok() && parse_duration("1x").is_err());
    }

    #[test]
    fn split_debuginfo_is_a_boolean_the_package_wins_on() {
        assert_eq!(
            settings(&sources(&json!({}), None))
                .unwrap()
                .split_debuginfo,
            None
        );
        let on = json!({"split-debuginfo": true});
        let s = settings(&sources(&json!({}), Some(&on))).unwrap();
        assert_eq!(s.split_debuginfo, Some(true), "from the workspace");
        let off = json!({"split-debuginfo": false});
        let s = settings(&sources(&off, Some(&on))).unwrap();
        assert_eq!(s.split_debuginfo, Some(false), "the package wins");
        let err = settings(&sources(&json!({"split_debuginfo": true}), None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("split_debuginfo"),
            "the key is spelt with a dash: {err}"
        );
    }

    #[test]
    fn auditable_is_a_boolean_the_package_can_turn_off() {
        let on = settings(&sources(&json!({}), None)).unwrap();
        assert_eq!(on.auditable, None, "unset: the default (on) is the plan's");
        let off = json!({"auditable": false});
        let s = settings(&sources(&json!({}), Some(&off))).unwrap();
        assert_eq!(s.auditable, Some(false), "from the workspace");
        let s = settings(&sources(&json!({"auditable": true}), Some(&off))).unwrap();
        assert_eq!(s.auditable, Some(true), "the package wins");
        let err = settings(&sources(&json!({"auditable": "no"}), None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auditable") && err.contains("boolean"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let err = settings(&sources(&json!({"bse": "x"}), None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bse") && err.contains("/p/Cargo.toml"),
            "{err}"
        );
        let err = settings(&sources(&json!({"ports": ["http"]}), None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`ports[0]`") && err.contains("/p/Cargo.toml"),
            "{err}"
        );
        let err = settings(&sources(
            &json!({}),
            Some(&json!({"platforms": ["linux/mips64le"]})),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`platforms[0]`")
                && err.contains("/w/Cargo.toml")
                && err.contains("workspace.metadata"),
            "{err}"
        );
        let err = settings(&sources(
            &json!({"files": [{"src": "nope", "dst": "/x"}]}),
            None,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`files[0]`") && err.contains("not a file"),
            "{err}"
        );
    }
}
