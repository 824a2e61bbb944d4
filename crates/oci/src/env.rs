//! Every environment variable stevedore reads, in one place.
//!
//! This crate reads the blob store's root and the registry credential (`STEVEDORE_USERNAME`,
//! `STEVEDORE_PASSWORD` and `STEVEDORE_REGISTRY`); the other names are for the `stevedore` crate
//! and the command line, kept here so every crate spells them alike. [`without_secrets`] keeps
//! the secret ones from the programs stevedore starts.

/// Root of the blob cache (default: `$XDG_CACHE_HOME/stevedore` or `~/.cache/stevedore`).
pub const CACHE_DIR: &str = "STEVEDORE_CACHE_DIR";
/// Where the scripts cargo runs for stevedore live (zig wrappers, the `rustc` shim), default
/// `~/.cache/stevedore/tools` whatever `STEVEDORE_CACHE_DIR` says: their paths are part of what
/// cargo and sccache key on, so they must not move when the blob cache does. Only when that
/// cannot be written (a service user's HOME) they go to `$STEVEDORE_CACHE_DIR/tools`.
pub const TOOLS_DIR: &str = "STEVEDORE_TOOLS_DIR";
/// `off` turns off the std cache: with `-Zbuild-std`, cargo then compiles the standard library
/// into each new target dir itself rather than stevedore copying it from `TOOLS_DIR/std`.
pub const STD_CACHE: &str = "STEVEDORE_STD_CACHE";
/// Timestamp (seconds since the epoch) for every file and the image's `created`.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// Username for the registry, overriding docker config (for CI).
pub const USERNAME: &str = "STEVEDORE_USERNAME";
/// Password or token for the registry, overriding docker config (for CI).
pub const PASSWORD: &str = "STEVEDORE_PASSWORD";
/// Comma-separated registries the STEVEDORE_USERNAME/PASSWORD credential is for (default:
/// the registries pushed to, or every registry when nothing is pushed).
pub const REGISTRY: &str = "STEVEDORE_REGISTRY";
/// Default image repository (like ko's KO_DOCKER_REPO): tags become `$STEVEDORE_REPO:TAG`
/// unless `-t` names the image; wins over `repository` in Cargo.toml.
pub const REPO: &str = "STEVEDORE_REPO";
/// Seconds a registry connection may stay silent before a request is given up and retried
/// (`--timeout`; default 30).
pub const TIMEOUT: &str = "STEVEDORE_TIMEOUT";
/// A zig to use instead of stevedore's pinned one (a path, or a name looked up on PATH); the
/// image's digest then depends on it.
pub const ZIG: &str = "STEVEDORE_ZIG";
/// Where to fetch the pinned zig's wheel from instead of PyPI (a URL holding the same file
/// names); its sha256 is checked either way.
pub const ZIG_MIRROR: &str = "STEVEDORE_ZIG_MIRROR";
/// The cargo to run when `--toolchain` is not given (set by cargo for subcommands).
pub const CARGO: &str = "CARGO";
/// Set by stevedore for the cargo it runs, never by users: the target dir that its `rustc`
/// shim remaps to `/target`. Passed in the environment rather than in flags so compile caches
/// (sccache), which hash flags and `CARGO_*` variables, give hits across target dirs.
pub const REMAP_TARGET_DIR: &str = "STEVEDORE_REMAP_TARGET_DIR";
/// Set by stevedore for the cargo it runs, never by users: the workspace that its workspace
/// wrapper remaps to `/src` for workspace members. In the environment rather than in the
/// wrapper's text, whose name cargo hashes into members' `-C metadata`.
pub const REMAP_WORKSPACE: &str = "STEVEDORE_REMAP_WORKSPACE";
/// The signing key file (`--sign-key`): EC P-256 PKCS#8 PEM, encrypted PKCS#8, or a cosign.key.
pub const SIGN_KEY: &str = "STEVEDORE_SIGN_KEY";
/// The password of an encrypted signing key.
pub const SIGN_PASSWORD: &str = "STEVEDORE_SIGN_PASSWORD";
/// cosign's variable for the same password, read when `STEVEDORE_SIGN_PASSWORD` is not set.
pub const COSIGN_PASSWORD: &str = "COSIGN_PASSWORD";

/// The variables above that hold secrets. No program stevedore starts may get them: cargo would
/// hand them to every build script of every dependency (and to rustc, the shim, zig), and
/// kubectl, git or docker have no use for them. [`without_secrets`] removes them.
pub const SECRETS: [&str; 3] = [PASSWORD, SIGN_PASSWORD, COSIGN_PASSWORD];

/// `cmd` with every variable of [`SECRETS`] removed from the environment it will start with;
/// call it on every `Command` stevedore builds.
pub fn without_secrets(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for name in SECRETS {
        cmd.env_remove(name);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_without_secrets_starts_without_them() {
        let mut cmd = std::process::Command::new("env");
        for name in SECRETS {
            cmd.env(name, "hunter2");
        }
        cmd.env(USERNAME, "ci");
        let out = without_secrets(&mut cmd).output().expect("env runs");
        let seen = String::from_utf8(out.stdout).expect("UTF-8 environment");
        for name in SECRETS {
            assert!(
                !seen.contains(&format!("{name}=")),
                "{name} reached the child"
            );
        }
        assert!(
            seen.contains("STEVEDORE_USERNAME=ci"),
            "other variables stay"
        );
    }
}
