//! `cargo stevedore login` and `logout`: keep a registry's credential without docker or podman
//! (`ko login`, `crane auth login` and `podman login` do the same).

use std::io::Read;

use clap::Args;

use super::args::RegistryArgs;
use super::error::Error;
use stevedore::registry::{self, Credential, Registry, RegistryError, Stored};

/// The most of standard input read as a password: a token is a few kilobytes.
const MAX_PASSWORD: u64 = 64 << 10;

#[derive(Debug, Args)]
pub(super) struct LoginArgs {
    /// The registry, `host[:port]` (e.g. ghcr.io, 127.0.0.1:5000).
    #[arg(value_name = "REGISTRY")]
    registry: String,
    /// The user name.
    #[arg(short, long, value_name = "USER")]
    username: String,
    /// Read the password (or token) from standard input: never from an argument, which the
    /// process list and the shell's history would show.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    connection: RegistryArgs,
}

#[derive(Debug, Args)]
pub(super) struct LogoutArgs {
    /// The registry, `host[:port]`.
    #[arg(value_name = "REGISTRY")]
    registry: String,
}

/// Checks the credential against the registry, then keeps it; prints `Login Succeeded` as
/// docker does, and where it went on stderr.
pub(super) fn login(args: LoginArgs) -> Result<(), Error> {
    let fail = |message: String| RegistryError::Login {
        registry: args.registry.clone(),
        message,
    };
    if !args.password_stdin {
        return Err(fail(
            "give the password on standard input with --password-stdin (e.g. \
             `echo \"$TOKEN\" | cargo stevedore login REGISTRY -u USER --password-stdin`); \
             an argument would show it in the process list"
                .into(),
        )
        .into());
    }
    let file = registry::auth_file().ok_or_else(|| {
        fail("no HOME, XDG_RUNTIME_DIR or REGISTRY_AUTH_FILE says where to keep it".into())
    })?;
    let credential = Credential {
        username: args.username.clone(),
        secret: read_password().map_err(fail)?,
    };
    Registry::check_credential(
        args.connection.options(),
        &args.registry,
        credential.clone(),
    )?;
    match registry::store_credential(&file, &args.registry, &credential)? {
        Stored::File(path) => tracing::info!("credential kept in {}", path.display()),
        Stored::Helper(helper) => tracing::info!("credential kept by docker-credential-{helper}"),
        other => tracing::info!("credential kept: {other:?}"),
    }
    println!("Login Succeeded");
    Ok(())
}

/// Forgets what `login` kept for the registry.
pub(super) fn logout(args: LogoutArgs) -> Result<(), Error> {
    let Some(file) = registry::auth_file() else {
        return Ok(());
    };
    match registry::erase_credential(&file, &args.registry)? {
        true => println!("Removed login credentials for {}", args.registry),
        false => tracing::warn!("not logged in to {}", args.registry),
    }
    Ok(())
}

/// Standard input up to its end, without the line break a shell's `echo` adds.
fn read_password() -> Result<String, String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_PASSWORD + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    if bytes.len() as u64 > MAX_PASSWORD {
        return Err(format!(
            "standard input holds more than {MAX_PASSWORD} bytes, no password"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| "the password is not UTF-8".to_owned())?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err("standard input held no password".into());
    }
    Ok(password.to_owned())
}
