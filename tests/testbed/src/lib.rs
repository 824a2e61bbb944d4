//! Test bed for stevedore: real components started on 127.0.0.1 for integration tests and the
//! xtask.
//!
//! - [`Registry`]: the Debian `docker-registry` (CNCF distribution 2.8) over plain HTTP, TLS with
//!   a private CA, or htpasswd basic auth over TLS; [`TokenFront`] puts a bearer-token server in
//!   front of one; [`Elsewhere`] is another origin a hostile front sends clients to.
//! - [`base_layout`]: a stand-in for `gcr.io/distroless/static-debian12` built from Debian
//!   packages, as an OCI layout (`latest` and `nonroot`, each an index for amd64 and arm64);
//!   [`OtherBase`]: Debian-like and Alpine-like bases ([`Registry::push_other_base`]).
//! - [`Rootless`]: an unprivileged user (uid 65534, its own HOME, no capabilities) to run
//!   stevedore and podman as.
//! - [`Sccache`]: a private sccache server on a shared local-disk cache.
//! - [`zig_mirror`]: stevedore's pinned zig (PyPI's `ziglang` wheel, fetched by setup) served
//!   on 127.0.0.1 as `STEVEDORE_ZIG_MIRROR`; [`FileServer`] serves any directory so.
//! - [`umoci_unpack`] and [`run_entrypoint`]: run what an image contains as its user, natively or
//!   through qemu; [`Dockerd`]: a private Docker engine.
//!
//! Nothing is skipped: a missing tool is a loud panic that says to run `cargo xtask setup`, which
//! installs everything listed in [`DEBIAN_PACKAGES`], the Python venv with zig, and the zig
//! wheel the mirror serves.

mod base;
mod dockerd;
mod elsewhere;
mod mirror;
mod other_bases;
mod pki;
mod registry;
mod rootless;
mod run;
mod sccache;
mod serve;
mod token;
mod tools;
mod util;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use base::{
    base_inputs, base_layout, cc_base_layout, debian_arches, fixed_base_layout, BASE_REPOSITORY,
    BASE_TAGS, CC_BASE_REPOSITORY,
};
pub use dockerd::Dockerd;
pub use elsewhere::Elsewhere;
pub use mirror::{zig_mirror, zig_mirror_dir, zig_wheel, FileServer, ZIG_MIRROR_ENV};
pub use other_bases::OtherBase;
pub use registry::{Mode, Registry, Side, PASSWORD, USERNAME};
pub use rootless::{rootless_dir, Rootless, DEFAULT_ROOTLESS_DIR, ROOTLESS_DIR_ENV, ROOTLESS_ID};
pub use run::{run_entrypoint, umoci_unpack, umoci_unpack_platform};
pub use sccache::Sccache;
pub use serve::serve_and_probe;
pub use token::{Fault, Seen, TokenFront, TOKEN_SERVICE};
pub use tools::{
    crate_tools_dir, require_all, require_crate_tool, require_tool, run_fails, run_ok, shell_line,
    validate_spdx, CRATE_TOOLS, DEBIAN_PACKAGES, PYPI_PACKAGES, ZIGLANG_VERSION,
};

/// Environment variable that moves [`testbed_dir`] (relative paths start at the workspace root).
pub const TESTBED_DIR_ENV: &str = "STEVEDORE_TESTBED_DIR";

/// The root of the stevedore workspace (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/testbed sits two levels below the workspace root")
        .to_path_buf()
}

/// Where persistent test-bed state lives (downloaded .debs, the venv, the fixture target dir,
/// the base layout): `$STEVEDORE_TESTBED_DIR`, else `<workspace>/target/testbed`. Created if
/// missing.
pub fn testbed_dir() -> PathBuf {
    let dir = match std::env::var_os(TESTBED_DIR_ENV).filter(|d| !d.is_empty()) {
        Some(d) => workspace_root().join(d),
        None => workspace_root().join("target").join("testbed"),
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| {
        panic!(
            "cannot create the test bed directory {}: {e}",
            dir.display()
        )
    });
    dir
}

/// The `CARGO_TARGET_DIR` every fixture build shares: building musl std from source costs about a
/// minute per target, so it must happen once, not once per test.
pub fn fixture_target_dir() -> PathBuf {
    let dir = testbed_dir().join("fixture-target");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The Python venv that holds zig (PyPI `ziglang`), made by `cargo xtask setup`.
pub fn venv_dir() -> PathBuf {
    testbed_dir().join("venv")
}

/// `PATH` with the venv's `bin` first, so the stevedore under test finds zig as
/// `python3 -m ziglang`. Panics if the venv or ziglang is missing.
pub fn tool_path_env() -> OsString {
    let bin = venv_dir().join("bin");
    tools::require_venv();
    let mut paths = vec![bin];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH entries contain no ':'")
}

/// A fresh directory under `<testbed_dir>/tmp`, removed on drop; keeping scratch space inside the
/// test bed means one `rm -rf target/testbed` cleans up after killed test runs too.
pub(crate) fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let parent = testbed_dir().join("tmp");
    std::fs::create_dir_all(&parent)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .unwrap_or_else(|e| {
            panic!(
                "cannot create a temporary directory in {}: {e}",
                parent.display()
            )
        })
}

#[cfg(test)]
mod tests {
    /// Tests may keep these in statics or hand them to threads.
    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::Registry>();
        check::<crate::TokenFront>();
        check::<crate::Dockerd>();
    }
}
