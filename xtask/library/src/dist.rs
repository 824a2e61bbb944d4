//! `cargo xtask dist`: the release files of cargo-stevedore, made by stevedore itself. One
//! build of the `cargo-stevedore` package for linux/amd64 and linux/arm64 through the library
//! (static musl binaries, linked by stevedore's pinned zig) gives both the image, an OCI layout
//! for CI jobs that run in containers, and the binaries, which go into one archive per Rust
//! target with the README, both licenses, shell completions and manual pages; `SHA256SUMS`
//! lists the archives. The archives' names are the ones `[package.metadata.binstall]` in
//! Cargo.toml asks for, so `cargo binstall cargo-stevedore` finds them on a release.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use stevedore::{Build, Digest, Output, Platform};

use crate::project_root;

pub const USAGE: &str = "cargo xtask dist [--out DIR] [--manifest-path PATH] [--base REF] [--profile NAME] [--toolchain NAME] [--target-dir DIR]";

/// The package and binary released.
const NAME: &str = "cargo-stevedore";
/// The shells `completions` writes a script for, and each script's file name.
const SHELLS: [(&str, &str); 5] = [
    ("bash", "cargo-stevedore.bash"),
    ("zsh", "_cargo-stevedore"),
    ("fish", "cargo-stevedore.fish"),
    ("elvish", "cargo-stevedore.elv"),
    ("powershell", "_cargo-stevedore.ps1"),
];

struct Options {
    out: PathBuf,
    manifest: PathBuf,
    base: Option<String>,
    profile: String,
    toolchain: Option<String>,
    target_dir: PathBuf,
}

pub fn run(args: &[String]) -> ExitCode {
    match parse(args).and_then(|options| dist(&options)) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let root = project_root();
    let mut options = Options {
        out: root.join("target/dist"),
        manifest: root.join("Cargo.toml"),
        base: None,
        profile: "release".into(),
        toolchain: None,
        target_dir: std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), PathBuf::from),
    };
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .cloned()
            .ok_or_else(|| format!("{flag} needs a value\nusage: {USAGE}"))?;
        match flag.as_str() {
            "--out" => options.out = value.into(),
            "--manifest-path" => options.manifest = value.into(),
            "--base" => options.base = Some(value),
            "--profile" => options.profile = value,
            "--toolchain" => options.toolchain = Some(value),
            "--target-dir" => options.target_dir = value.into(),
            other => return Err(format!("unknown argument {other}\nusage: {USAGE}")),
        }
    }
    Ok(options)
}

fn dist(options: &Options) -> Result<Vec<String>, String> {
    // The layout is named by the package's version, which the build reads.
    let building = options.out.join(format!(".{NAME}-image"));
    let built = build(options, &building)?;
    let version = &built.plan.version;
    let image = options.out.join(format!("{NAME}-{version}-image"));
    let _ = std::fs::remove_dir_all(&image);
    std::fs::rename(&building, &image).map_err(|e| format!("{}: {e}", image.display()))?;
    let mut lines = vec![format!("oci-layout={}@{}", image.display(), built.digest())];
    let extras = extras(options)?;
    let mut sums = String::new();
    for platform in &built.plan.platforms {
        let target = built.plan.rust_target(platform);
        let binary = built_binary(options, target);
        let archive = options
            .out
            .join(format!("{NAME}-{version}-{target}.tar.gz"));
        write_archive(
            &archive,
            &format!("{NAME}-{version}-{target}"),
            &binary,
            &extras,
        )?;
        let bytes = std::fs::read(&archive).map_err(|e| format!("{}: {e}", archive.display()))?;
        let name = archive.file_name().unwrap().to_string_lossy().into_owned();
        sums.push_str(&format!("{}  {name}\n", Digest::of(&bytes).hex()));
        lines.push(archive.display().to_string());
    }
    let sums_path = options.out.join("SHA256SUMS");
    std::fs::write(&sums_path, sums).map_err(|e| format!("{}: {e}", sums_path.display()))?;
    lines.push(sums_path.display().to_string());
    Ok(lines)
}

/// The image of cargo-stevedore for amd64 and arm64, written to `layout`; its compile leaves
/// the binaries in the target dir.
fn build(options: &Options, layout: &Path) -> Result<stevedore::Outcome, String> {
    let platforms = ["linux/amd64", "linux/arm64"]
        .map(|p| p.parse::<Platform>().expect("a supported platform"));
    let mut build = Build::from_manifest(&options.manifest)
        .map_err(|e| e.report())?
        .package(NAME)
        .bin(NAME)
        .profile(&options.profile)
        .platforms(platforms)
        .target_dir(&options.target_dir)
        .output(Output::OciLayout(layout.to_path_buf()));
    if let Some(base) = &options.base {
        build = build.base(base).map_err(|e| e.report())?;
    }
    if let Some(toolchain) = &options.toolchain {
        build = build.toolchain(toolchain);
    }
    build.run().map_err(|e| e.report())
}

/// cargo's directory for a profile's output.
fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// What goes beside the binary: the README and licenses, then the completion scripts and
/// manual pages, written by the built binary that runs here (amd64's on an x86_64 host).
fn extras(options: &Options) -> Result<Vec<(String, Vec<u8>)>, String> {
    let root = options.manifest.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for name in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
        let bytes = std::fs::read(root.join(name)).map_err(|e| format!("{name}: {e}"))?;
        files.push((name.to_owned(), bytes));
    }
    let host = Platform::host().map_err(|e| e.to_string())?;
    let host = built_binary(options, host.rust_target());
    for (shell, file) in SHELLS {
        let script = output(Command::new(&host).args(["stevedore", "completions", shell]))?;
        files.push((format!("completions/{file}"), script));
    }
    let pages = tempfile::tempdir().map_err(|e| e.to_string())?;
    output(
        Command::new(&host)
            .args(["stevedore", "man", "--dir"])
            .arg(pages.path()),
    )?;
    let mut names: Vec<String> = std::fs::read_dir(pages.path())
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let page = std::fs::read(pages.path().join(&name)).map_err(|e| e.to_string())?;
        files.push((format!("man/{name}"), page));
    }
    Ok(files)
}

/// Where cargo left the binary for the Rust target `target`.
fn built_binary(options: &Options, target: &str) -> PathBuf {
    options
        .target_dir
        .join(target)
        .join(profile_dir(&options.profile))
        .join(NAME)
}

fn output(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// A tar.gz of `binary` and `extras` under `dir/`, with no time, owner or order of this
/// machine in it: every entry has mtime 0, uid and gid 0, and the files are in name order.
fn write_archive(
    archive: &Path,
    dir: &str,
    binary: &Path,
    extras: &[(String, Vec<u8>)],
) -> Result<(), String> {
    let exe = std::fs::read(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    let mut entries: Vec<(String, &[u8], u32)> = vec![(NAME.to_owned(), &exe, 0o755)];
    entries.extend(extras.iter().map(|(n, b)| (n.clone(), b.as_slice(), 0o644)));
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(parent) = archive.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let file = std::fs::File::create(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("{dir}/{name}"), bytes)
            .map_err(|e| format!("{}: {e}", archive.display()))?;
    }
    let mut gz = tar
        .into_inner()
        .map_err(|e| format!("{}: {e}", archive.display()))?;
    gz.flush().map_err(|e| e.to_string())?;
    gz.finish()
        .map(drop)
        .map_err(|e| format!("{}: {e}", archive.display()))
}
