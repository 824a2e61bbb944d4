//! `cargo stevedore init`: adds a `[package.metadata.stevedore]` table, every key commented
//! with its default, and says what to paste into an xtask.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already has a [package.metadata.stevedore] table: edit it there")]
    AlreadyThere { path: PathBuf },
    #[error("{path} has no [package] table: run init in the package to containerise, or pass --manifest-path")]
    NoPackage { path: PathBuf },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The table `init` appends.
pub const TABLE: &str = r#"
[package.metadata.stevedore]
# Every key is optional; `cargo stevedore build` flags override them. Shown: the defaults.
# base = "gcr.io/distroless/static-debian12:nonroot"  # or "scratch"
# platforms = ["linux/amd64"]                          # default: the host's
# libc = "musl"                                        # or "gnu": glibc, on distroless/cc
# glibc = "2.36"                                       # with "gnu": for a base without dpkg records
# repository = "ghcr.io/you/app"                       # $STEVEDORE_REPO/BIN overrides it
# tags = ["latest"]                                    # also "{version}", "{git_sha}"
# args = []                                            # the image's Cmd
# env = { RUST_LOG = "info" }
# ports = [8080]
# labels = { "org.opencontainers.image.description" = "…" }
# user = "65532:65532"
# files = [{ src = "config/app.toml", dst = "/etc/app/app.toml", mode = "0644" }]
# annotations = { "com.example.team" = "payments" }   # on each platform's manifest
# healthcheck = { cmd = ["/usr/local/bin/app", "health"], interval = "30s", timeout = "5s", start-period = "10s", retries = 3 }
# compression = "gzip"                                 # or "zstd"
# auditable = true                                     # false: no dependency list in the binary
# split-debuginfo = false                              # true: stripped binary, DWARF as a referrer
# sign-key = "cosign.key"                              # sign the image and its provenance
"#;

/// What to put in `xtask/src/main.rs` (with stevedore in its dependencies).
pub const XTASK_SNIPPET: &str = r#"// xtask/Cargo.toml: [dependencies] stevedore = { git = "https://github.com/stevedore-rs/stevedore" }
fn image(push: bool) -> Result<(), stevedore::Error> {
    let build = stevedore::Build::from_manifest("Cargo.toml")?;
    if push {
        for pushed in build.push()? {
            println!("{pushed}");
        }
    } else {
        println!("{}", build.run()?.digest());
    }
    Ok(())
}"#;

/// Appends [`TABLE`] to the manifest at `path`, atomically.
pub fn init(path: &Path) -> Result<(), InitError> {
    let text = std::fs::read_to_string(path).map_err(|source| InitError::Read {
        path: path.into(),
        source,
    })?;
    let has = |header: &str| text.lines().any(|l| l.trim() == header);
    if has("[package.metadata.stevedore]") {
        return Err(InitError::AlreadyThere { path: path.into() });
    }
    if !has("[package]") {
        return Err(InitError::NoPackage { path: path.into() });
    }
    let fail = |source| InitError::Write {
        path: path.into(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    let separator = if text.ends_with('\n') { "" } else { "\n" };
    write!(tmp, "{text}{separator}{TABLE}").map_err(fail)?;
    let permissions = std::fs::metadata(path).map_err(fail)?.permissions();
    std::fs::set_permissions(tmp.path(), permissions).map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}
